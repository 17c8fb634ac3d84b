"""fastka's IPVS messages against the golden captures of real tools (../shared/ipvs-golden).

Requests are rebuilt for the same operation and compared byte for byte once the three
per-run fields (nlmsg_type = family id, nlmsg_seq, nlmsg_pid) are taken from the capture.
Both codecs (C and the Python reference) run every test.
"""

from __future__ import annotations

import json
import socket
from array import array
from types import ModuleType

import pytest

from conftest import SHARED, implementations, load, shared_path
from fastka.ipvs import msg
from fastka.ipvs.ipvs import Dest, Service
from fastka.ipvs.msg import IP_VS_CONN_F_DROUTE, IP_VS_SVC_F, IPVS_CMD, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST

GOLDEN = SHARED / "ipvs-golden"


def _vectors() -> dict[str, dict[str, object]]:
    if not (GOLDEN / "golden.json").exists():
        return {}  # test_vectors_are_there says so
    return {str(e["file"]): e for e in json.loads((GOLDEN / "golden.json").read_text()) if e.get("file")}


V = _vectors()


def test_vectors_are_there() -> None:
    shared_path("ipvs-golden", "golden.json")
    assert V


@pytest.fixture(params=implementations("fastka.ipvs._cffi", "fastka._ipvs_py"))
def codec(request: pytest.FixtureRequest) -> ModuleType:
    return load(request.param)


def golden(name: str) -> tuple[bytes, int, int, int]:
    """(bytes, family id, seq, pid) of a captured message."""
    e = V[name]
    return bytes.fromhex(str(e["hex"])), int(e["ipvs_family_id"]), int(e["seq"]), int(e["pid"])


VIP = Service(addr="10.10.0.100", port=80, sched_name="rr")
RS = Dest(addr="10.20.1.2", port=80, weight=1)


def one(
    codec: ModuleType,
    cmd: IPVS_CMD,
    svc: Service,
    dest: Dest | None,
    fam: int,
    seq: int,
    pid: int,
    **kw: bool,
) -> bytes:
    buf = bytearray(4096)
    ops = msg.OP.pack(cmd, 0, 0)
    n, nxt = codec.build_batch(buf, fam, seq, pid, ops, svc.record, dest.record if dest else b"", **kw)
    assert nxt == 1
    return bytes(buf[:n])


@pytest.mark.parametrize(
    ("name", "cmd", "with_dest"),
    [
        ("keepalived__NEW_SERVICE_request.hex", IPVS_CMD.NEW_SERVICE, False),
        ("keepalived__NEW_DEST_request.hex", IPVS_CMD.NEW_DEST, True),
        ("keepalived__DEL_DEST_request.hex", IPVS_CMD.DEL_DEST, True),
        ("keepalived__DEL_SERVICE_request.hex", IPVS_CMD.DEL_SERVICE, False),
        ("ipvsadm__NEW_SERVICE_request.hex", IPVS_CMD.NEW_SERVICE, False),
        ("raw__NEW_SERVICE_request.hex", IPVS_CMD.NEW_SERVICE, False),
        ("raw__NEW_DEST_request.hex", IPVS_CMD.NEW_DEST, True),
    ],
)
def test_keepalived_messages_byte_exact(codec: ModuleType, name: str, cmd: IPVS_CMD, with_dest: bool) -> None:
    want, fam, seq, pid = golden(name)
    assert one(codec, cmd, VIP, RS if with_dest else None, fam, seq, pid, ack_all=True) == want


@pytest.mark.parametrize(
    ("name", "cmd", "svc"),
    [
        ("ipvsadm-extra__NEW_SERVICE_svc-tcp-rr_request.hex", IPVS_CMD.NEW_SERVICE, VIP),
        (
            "ipvsadm-extra__SET_SERVICE_svc-sched-wlc_request.hex",
            IPVS_CMD.SET_SERVICE,
            Service(addr="10.10.0.100", port=80, sched_name="wlc"),
        ),
        (
            "ipvsadm-extra__DEL_SERVICE_del-svc_request.hex",
            IPVS_CMD.DEL_SERVICE,
            Service(addr="10.10.0.100", port=80, sched_name=""),
        ),
        (
            "ipvsadm-extra__NEW_SERVICE_svc-ipv6_request.hex",
            IPVS_CMD.NEW_SERVICE,
            Service(addr="fd00::100", port=80, sched_name="rr"),
        ),
        (
            "ipvsadm-extra__NEW_SERVICE_svc-fwmark42-wrr_request.hex",
            IPVS_CMD.NEW_SERVICE,
            Service(fwmark=42, sched_name="wrr"),
        ),
        (
            "ipvsadm-extra__NEW_SERVICE_svc-udp53-sh-flags-persist300-mask24_request.hex",
            IPVS_CMD.NEW_SERVICE,
            Service(
                addr="10.10.0.100",
                port=53,
                protocol=socket.IPPROTO_UDP,
                sched_name="sh",
                flags=IP_VS_SVC_F.SCHED_SH_FALLBACK | IP_VS_SVC_F.SCHED_SH_PORT,
                timeout=300,
                netmask=0xFFFFFF00,
            ),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_service_features_byte_exact(codec: ModuleType, name: str, cmd: IPVS_CMD, svc: Service) -> None:
    """IPv6 (NETMASK = prefix length 128), fwmark, UDP, sh flags, persistence, granularity."""
    want, fam, seq, pid = golden(name)
    assert one(codec, cmd, svc, None, fam, seq, pid, ack_all=True) == want


def test_default_framing_acks_only_the_last(codec: ModuleType) -> None:
    """Without ack_all only the last message asks for an ACK; the bytes are otherwise
    Keepalived's."""
    want, fam, seq, pid = golden("keepalived__NEW_DEST_request.hex")
    buf = bytearray(4096)
    ops = msg.OP.pack(IPVS_CMD.NEW_DEST, 0, 0) * 3
    n, nxt = codec.build_batch(buf, fam, seq, pid, ops, VIP.record, RS.record)
    assert nxt == 3 and n == 3 * len(want)
    for i in range(3):
        m = bytearray(buf[i * len(want) : (i + 1) * len(want)])
        flags = int.from_bytes(m[6:8], "little")
        assert flags == (NLM_F_REQUEST | NLM_F_ACK if i == 2 else NLM_F_REQUEST)
        assert int.from_bytes(m[8:12], "little") == seq + i
        m[6:8] = (NLM_F_REQUEST | NLM_F_ACK).to_bytes(2, "little")
        m[8:12] = seq.to_bytes(4, "little")
        assert bytes(m) == want


def test_control_and_dump_requests_byte_exact(codec: ModuleType) -> None:
    want, _fam, seq, pid = golden("ipvsadm__CTRL_GETFAMILY_request.hex")
    buf = bytearray(4096)
    assert bytes(buf[: codec.build_getfamily(buf, seq, pid, b"IPVS")]) == want

    want, fam, seq, pid = golden("ipvsadm__GET_INFO_request.hex")
    n = codec.build_simple(buf, fam, seq, pid, IPVS_CMD.GET_INFO, NLM_F_REQUEST | NLM_F_ACK)
    assert bytes(buf[:n]) == want

    want, fam, seq, pid = golden("ipvsadm-extra__FLUSH_flush_request.hex")
    n = codec.build_simple(buf, fam, seq, pid, IPVS_CMD.FLUSH, NLM_F_REQUEST | NLM_F_ACK)
    assert bytes(buf[:n]) == want

    want, fam, seq, pid = golden("ipvsadm-extra__GET_SERVICE_dump-services_request.hex")
    n = codec.build_simple(buf, fam, seq, pid, IPVS_CMD.GET_SERVICE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP)
    assert bytes(buf[:n]) == want

    want, fam, seq, pid = golden("ipvsadm-extra__GET_DEST_dump-dests_request.hex")
    assert bytes(buf[: codec.build_get_dests(buf, fam, seq, pid, VIP.record)]) == want


@pytest.mark.parametrize(
    ("name", "dest"),
    [
        ("ipvsadm-extra__NEW_DEST_dest-masq-w1_request.hex", Dest("10.20.1.2", 80)),
        ("ipvsadm-extra__NEW_DEST_dest-dr-w2_request.hex", Dest("10.20.2.2", 80, weight=2, fwd_method=3)),
        ("ipvsadm-extra__SET_DEST_dest-weight0_request.hex", Dest("10.20.1.2", 80, weight=0)),
        ("ipvsadm-extra__NEW_DEST_dest-ipv6-port8080_request.hex", Dest("fd00::2", 8080)),
        ("keepalived__NEW_DEST_request.hex", RS),
        ("pyroute2__NEW_DEST_request.hex", RS),
    ],
)
def test_decode_other_tools_dests(codec: ModuleType, name: str, dest: Dest) -> None:
    """ipvsadm (TUN attributes always, empty scheduler) and pyroute2 (4-byte ADDR, no
    NLA_F_NESTED, dest fwd default DR but 0 sent) requests decode to the intended dest."""
    data, *_ = golden(name)
    rec, _stats = codec.parse_dest(data)
    af = socket.AF_INET6 if ":" in dest.addr else socket.AF_INET
    assert Dest.from_record(rec, af) == dest


def test_decode_dump_replies(codec: ModuleType) -> None:
    data, *_ = golden("ipvsadm-extra__NEW_SERVICE_reply.hex")
    rec, stats = codec.parse_service(data)
    svc = Service.from_record(rec)
    assert svc == Service(addr="10.10.0.100", port=80, sched_name="wlc")  # HASHED stripped
    assert msg.SERVICE.unpack(rec)[6] == IP_VS_SVC_F.HASHED  # ... but decoded
    assert stats == (0,) * 13

    data, *_ = golden("ipvsadm-extra__NEW_DEST_reply.hex")
    rec, stats = codec.parse_dest(data)
    assert Dest.from_record(rec) == Dest("10.20.2.2", 80, weight=2, fwd_method=IP_VS_CONN_F_DROUTE)
    assert stats == (0,) * 13

    data, *_ = golden("ipvsadm__SET_INFO_reply.hex")
    assert codec.parse_info(data) == (0x010201, 4096)

    data, fam, *_ = golden("ipvsadm__CTRL_NEWFAMILY_reply.hex")
    assert codec.parse_family(data) == fam == 28


def test_parse_ack(codec: ModuleType) -> None:
    data, _fam, seq, _pid = golden("ipvsadm__ACK_reply.hex")
    errors = array("i", [7, 7])
    assert codec.parse_acks(data, len(data), seq, 2, errors) == (1, 0, 0)
    assert list(errors) == [0, 7]
    # an error reply for the second request of a batch
    err = bytearray(data)
    err[8:12] = (seq + 1).to_bytes(4, "little")
    err[16:20] = (-17).to_bytes(4, "little", signed=True)
    assert codec.parse_acks(bytes(data) + bytes(err), 2 * len(data), seq, 2, errors) == (2, 1, 1)
    assert list(errors) == [0, 17]
    assert codec.parse_acks(data, len(data), seq + 5, 2, errors) == (0, 0, -1)  # not ours
