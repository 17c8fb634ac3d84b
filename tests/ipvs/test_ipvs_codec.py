"""The IPVS codec: the C implementation equals the Python reference on random input,
every message decodes back to what was encoded, and pyroute2's ``ipvsmsg`` (an
independent decoder) reads what fastka writes."""

from __future__ import annotations

import socket
import struct
from array import array
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import implementations, load
from fastka._compat import USE_EXTENSIONS
from fastka.ipvs import msg
from fastka.ipvs.ipvs import Dest, Service
from fastka.ipvs.msg import (
    IP_VS_CONN_F_TUNNEL,
    IP_VS_CONN_F_TUNNEL_TYPE_GUE,
    IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
    IPVS_CMD,
    NLMSG_ERROR,
)

CMDS = [c for c in IPVS_CMD if c in msg.SERVICE_COMMANDS | msg.DEST_COMMANDS]
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
name = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=15).map(str.encode)

service_rec = st.builds(
    msg.SERVICE.pack,
    st.binary(min_size=16, max_size=16),
    st.sampled_from([socket.AF_INET, socket.AF_INET6]),
    u16,
    u16,
    st.just(0),
    st.one_of(st.just(0), u32),
    u32,
    u32,
    u32,
    name,
    name,
)
dest_rec = st.builds(
    msg.DEST.pack,
    st.binary(min_size=16, max_size=16),
    st.sampled_from([0, socket.AF_INET, socket.AF_INET6]),
    u16,
    st.one_of(st.integers(0, 7), u32),
    u32,
    u32,
    u32,
    u16,
    u16,
    st.integers(0, 255),
)

py = load("fastka._ipvs_py")
IMPLS = implementations("fastka.ipvs._cffi", "fastka._ipvs_py")
needs_c = pytest.mark.skipif(not USE_EXTENSIONS, reason="FASTKA_NO_EXTENSIONS=1: no compiled codec")


@pytest.fixture(scope="module", params=IMPLS)
def codec(request: pytest.FixtureRequest) -> ModuleType:
    return load(request.param)


def test_record_sizes_match_the_c_structs(codec: ModuleType) -> None:
    assert codec.sizes() == (msg.SERVICE.size, msg.DEST.size, msg.OP.size, msg.DAEMON.size, msg.STATS.size)
    assert codec.sizes() == (72, 44, 12, 48, 96)


@st.composite
def batches(draw: st.DrawFn) -> tuple[bytes, bytes, bytes, int, int | None, int, bool, int]:
    svcs = draw(st.lists(service_rec, min_size=1, max_size=4))
    dests = draw(st.lists(dest_rec, min_size=1, max_size=4))
    nops = draw(st.integers(1, 12))
    ops = b"".join(
        msg.OP.pack(
            draw(st.sampled_from(CMDS)),
            draw(st.integers(0, len(svcs) - 1)),
            draw(st.integers(0, len(dests) - 1)),
        )
        for _ in range(nops)
    )
    start = draw(st.integers(0, nops))
    stop = draw(st.one_of(st.none(), st.integers(0, nops + 2)))
    cap = draw(st.sampled_from([100, 256, 300, 700, 4096]))
    seq = draw(u32)
    return b"".join(svcs), b"".join(dests), ops, start, stop, cap, draw(st.booleans()), seq


@needs_c
@settings(max_examples=300, deadline=None)
@given(batches())
def test_c_batch_equals_reference(b: tuple[bytes, bytes, bytes, int, int | None, int, bool, int]) -> None:
    c = load("fastka.ipvs._cffi")
    svcs, dests, ops, start, stop, cap, ack_all, seq = b
    buf_c, buf_p = bytearray(cap), bytearray(cap)
    got_c = c.build_batch(buf_c, 0x1C, seq, 77, ops, svcs, dests, start, stop, ack_all)
    got_p = py.build_batch(buf_p, 0x1C, seq, 77, ops, svcs, dests, start, stop, ack_all)
    assert got_c == got_p
    assert buf_c[: got_c[0]] == buf_p[: got_p[0]]


@pytest.mark.parametrize(
    "ops",
    [
        msg.OP.pack(99, 0, 0),  # not a service/dest command
        msg.OP.pack(IPVS_CMD.GET_SERVICE, 0, 0),
        msg.OP.pack(IPVS_CMD.NEW_SERVICE, 1, 0),  # no service record 1
        msg.OP.pack(IPVS_CMD.NEW_DEST, 0, 1),  # no dest record 1
    ],
)
def test_bad_ops_are_refused(codec: ModuleType, ops: bytes) -> None:
    svc = Service(addr="10.0.0.1", port=80).record
    dest = Dest("10.0.0.2", 80).record
    with pytest.raises(ValueError):
        codec.build_batch(
            bytearray(4096), 0x1C, 1, 0, msg.OP.pack(IPVS_CMD.NEW_SERVICE, 0, 0) + ops, svc, dest
        )


def test_batch_stops_when_the_buffer_is_full(codec: ModuleType) -> None:
    svc = Service(addr="10.0.0.1", port=80).record
    ops = msg.OP.pack(IPVS_CMD.NEW_SERVICE, 0, 0) * 100
    buf = bytearray(1000)
    n, nxt = codec.build_batch(buf, 0x1C, 1, 0, ops, svc, b"")
    assert 0 < nxt < 100 and n == 104 * nxt and 1000 - n < msg.MSG_MAX
    _n2, nxt2 = codec.build_batch(buf, 0x1C, 1, 0, ops, svc, b"", nxt)
    assert nxt2 == 2 * nxt
    assert int.from_bytes(buf[8:12], "little") == 1 + nxt  # seq follows the op index


def _service_expected(rec: bytes) -> bytes:
    """What decoding the encoded record gives back: key fields of fwmark services and the
    reserved field are not sent; names are truncated at their NUL."""
    addr, af, proto, port, _r, fwmark, flags, timeout, netmask, sched, pe = msg.SERVICE.unpack(rec)
    if fwmark:
        addr, proto, port = bytes(16), 0, 0
    return msg.SERVICE.pack(addr, af, proto, port, 0, fwmark, flags, timeout, netmask, sched, pe)


def _dest_expected(rec: bytes) -> bytes:
    """Tunnel attributes go only with TUN: the type always, the port for GUE, the
    checksum flags unless IPIP (as Keepalived sends them)."""
    addr, af, port, fwd, weight, uth, lth, tport, tflags, ttype = msg.DEST.unpack(rec)
    if fwd & 7 != IP_VS_CONN_F_TUNNEL:
        tport = tflags = ttype = 0
    if ttype != IP_VS_CONN_F_TUNNEL_TYPE_GUE:
        tport = 0
    if ttype == IP_VS_CONN_F_TUNNEL_TYPE_IPIP:
        tflags = 0
    return msg.DEST.pack(addr, af, port, fwd, weight, uth, lth, tport, tflags, ttype)


@settings(max_examples=150, deadline=None)
@given(service_rec, dest_rec, st.sampled_from(CMDS))
def test_round_trip(codec: ModuleType, svc: bytes, dest: bytes, cmd: IPVS_CMD) -> None:
    buf = bytearray(512)
    n, _ = codec.build_batch(buf, 0x1C, 5, 0, msg.OP.pack(cmd, 0, 0), svc, dest)
    m = bytes(buf[:n])
    assert codec.parse_service(m) == (_service_expected(svc), (0,) * 13)
    if cmd in msg.DEST_COMMANDS:
        assert codec.parse_dest(m) == (_dest_expected(dest), (0,) * 13)
    else:
        with pytest.raises(ValueError):
            codec.parse_dest(m)


def _nla(t: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), t) + payload + b"\0" * (-len(payload) % 4)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=10, max_size=10), st.integers(0, 2**32 - 1), st.booleans()
)
def test_dump_reply_stats(codec: ModuleType, counters: list[int], conns: int, wide: bool) -> None:
    """A kernel-style dump reply (no NLA_F_NESTED, PAD attributes before u64s, STATS and
    STATS64) decodes to the 64-bit counters, or to the 32-bit ones without STATS64."""
    s64 = b"".join(_nla(11, b"") + _nla(i + 1, struct.pack("=Q", v)) for i, v in enumerate(counters))
    small = [v & 0xFFFFFFFF for v in counters]
    s32 = b"".join(
        (_nla(11, b"") + _nla(i + 1, struct.pack("=Q", v)))
        if i in (3, 4)
        else _nla(i + 1, struct.pack("=I", v))
        for i, v in enumerate(small)
    )
    dest = (
        _nla(1, socket.inet_aton("10.1.1.1") + bytes(12))
        + _nla(2, struct.pack("!H", 80))
        + _nla(7, struct.pack("=I", conns))
        + _nla(8, struct.pack("=I", 2))
        + _nla(9, struct.pack("=I", 3))
        + _nla(10, s32)
        + (_nla(12, s64) if wide else b"")
    )
    body = struct.pack("=BBH", 5, 1, 0) + _nla(2, dest)
    m = struct.pack("=IHHII", 16 + len(body), 0x1C, 2, 1, 0) + body
    rec, stats = codec.parse_dest(m)
    assert stats == (*(counters if wide else small), conns, 2, 3)
    assert Dest.from_record(rec) == Dest("10.1.1.1", 80, weight=0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(-200, 0), st.booleans()), max_size=20), u32)
def test_parse_acks_equal(codec: ModuleType, replies: list[tuple[int, int, bool]], seq: int) -> None:
    data = b""
    for off, err, other in replies:
        mtype = 0x1C if other else NLMSG_ERROR
        data += struct.pack("=IHHIIi", 36, mtype, 0, (seq + off) & 0xFFFFFFFF, 0, err) + bytes(16)
    nops = 30
    errors_c = array("i", [-1] * nops)
    errors_p = array("i", [-1] * nops)
    assert codec.parse_acks(data, len(data), seq, nops, errors_c) == py.parse_acks(
        data, len(data), seq, nops, errors_p
    )
    assert errors_c == errors_p
    want = {}
    for off, err, other in replies:
        if not other and off < nops:
            want[off] = -err
    assert {i: e for i, e in enumerate(errors_p) if e != -1 or i in want} == want


def test_parse_acks_truncated(codec: ModuleType) -> None:
    data = struct.pack("=IHHIIi", 36, NLMSG_ERROR, 0, 1, 0, 0) + bytes(16)
    with pytest.raises(ValueError):
        codec.parse_acks(data, 30, 1, 1, array("i", [0]))


daemons = st.builds(
    msg.DAEMON.pack,
    st.sampled_from([1, 2]),
    u32,
    name,
    u16,
    u16,
    st.sampled_from([0, socket.AF_INET, socket.AF_INET6]),
    st.integers(0, 255),
    st.binary(min_size=16, max_size=16),
)


@settings(max_examples=100, deadline=None)
@given(daemons, st.sampled_from([IPVS_CMD.NEW_DAEMON, IPVS_CMD.DEL_DAEMON]))
def test_daemon_round_trip(codec: ModuleType, d: bytes, cmd: IPVS_CMD) -> None:
    buf = bytearray(512)
    n = codec.build_daemon(buf, 0x1C, 9, 0, cmd, d)
    assert bytes(buf[:n]) == bytes(_ref_buf(lambda b: py.build_daemon(b, 0x1C, 9, 0, cmd, d)))
    state, syncid, ifn, maxlen, port, af, ttl, group = msg.DAEMON.unpack(d)
    if cmd == IPVS_CMD.DEL_DAEMON:  # only the state is sent
        want = msg.DAEMON.pack(state, 0, b"", 0, 0, 0, 0, b"")
    else:
        group = group[:4] if af == socket.AF_INET else group if af else b""
        want = msg.DAEMON.pack(state, syncid, ifn, maxlen, port, af, ttl, group)
    assert codec.parse_daemon(bytes(buf[:n])) == want


def _ref_buf(f: object) -> bytearray:
    buf = bytearray(512)
    n = f(buf)  # type: ignore[operator]
    return buf[:n]


@settings(max_examples=50, deadline=None)
@given(u32, u32, u32, service_rec)
def test_config_and_dump_requests_equal(codec: ModuleType, tcp: int, fin: int, udp: int, svc: bytes) -> None:
    buf = bytearray(512)
    n = codec.build_set_config(buf, 0x1C, 3, 0, tcp, fin, udp)
    assert bytes(buf[:n]) == bytes(_ref_buf(lambda b: py.build_set_config(b, 0x1C, 3, 0, tcp, fin, udp)))
    reply = bytearray(buf[:n])
    reply[16] = IPVS_CMD.SET_CONFIG
    assert codec.parse_config(bytes(reply)) == (tcp, fin, udp)
    n = codec.build_get_dests(buf, 0x1C, 3, 0, svc)
    assert bytes(buf[:n]) == bytes(_ref_buf(lambda b: py.build_get_dests(b, 0x1C, 3, 0, svc)))
    key = codec.parse_service(bytes(buf[:n]))[0]
    addr, af, proto, port, _r, fwmark, *_ = msg.SERVICE.unpack(_service_expected(svc))
    assert msg.SERVICE.unpack(key)[:6] == (addr, af, proto, port, 0, fwmark)


def test_small_buffers_are_refused(codec: ModuleType) -> None:
    svc = Service(addr="10.0.0.1", port=80).record
    with pytest.raises(ValueError):
        codec.build_simple(bytearray(10), 0x1C, 1, 0, IPVS_CMD.FLUSH, 5)
    with pytest.raises(ValueError):
        codec.build_get_dests(bytearray(100), 0x1C, 1, 0, svc)
    with pytest.raises(ValueError):
        codec.build_getfamily(bytearray(20), 1, 0, b"IPVS")
    with pytest.raises(ValueError):
        codec.parse_service(b"\x10\0\0\0" + bytes(12))


# -- pyroute2 as an independent decoder -------------------------------------------------

addrs4 = st.ip_addresses(v=4).map(str)
addrs6 = st.ip_addresses(v=6).map(str)
services = st.one_of(
    st.builds(
        Service,
        addr=st.one_of(addrs4, addrs6),
        port=u16,
        protocol=st.sampled_from([socket.IPPROTO_TCP, socket.IPPROTO_UDP, socket.IPPROTO_SCTP]),
        sched_name=st.sampled_from(msg.SCHEDULERS),
        flags=st.integers(0, 0x3D),
        timeout=st.integers(0, 100000),
        pe_name=st.sampled_from(["", "sip"]),
    ),
    st.builds(
        Service,
        fwmark=st.integers(1, 2**32 - 1),
        af=st.sampled_from([2, 10]),
        sched_name=st.sampled_from(msg.SCHEDULERS),
    ),
)
dests = st.builds(
    Dest,
    addr=st.one_of(addrs4, addrs6),
    port=u16,
    weight=st.integers(0, 2**31 - 1),
    fwd_method=st.sampled_from([0, 1, 2, 3]),
    u_threshold=u32,
    l_threshold=u32,
    tun_type=st.integers(0, 2),
    tun_port=u16,
    tun_flags=st.integers(0, 3),
)


@pytest.fixture(scope="module")
def pyroute2_ipvsmsg() -> type:
    pytest.importorskip("pyroute2")
    from pyroute2.netlink.generic.ipvs import ipvsmsg

    return ipvsmsg  # type: ignore[no-any-return]


@settings(max_examples=80, deadline=None)
@given(services, dests, st.sampled_from(CMDS))
def test_pyroute2_decodes_fastka(
    codec: ModuleType, pyroute2_ipvsmsg: type, svc: Service, dest: Dest, cmd: IPVS_CMD
) -> None:
    """pyroute2 0.9.7 decodes every attribute as written. Its known quirks are accounted
    for: NETMASK is shown as an IPv4 address even for IPv6 (the prefix length's bytes)
    and TUN_PORT is read in host order (byte-swapped)."""
    buf = bytearray(512)
    n, _ = codec.build_batch(buf, 0x1C, 42, 0, msg.OP.pack(cmd, 0, 0), svc.record, dest.record, ack_all=True)
    m = pyroute2_ipvsmsg(bytes(buf[:n]))
    m.decode()
    assert m["cmd"] == cmd and m["header"]["sequence_number"] == 42 and m["header"]["type"] == 0x1C
    s = m.get_attr("IPVS_CMD_ATTR_SERVICE")
    assert s.get_attr("IPVS_SVC_ATTR_AF") == svc.af
    if svc.fwmark:
        assert s.get_attr("IPVS_SVC_ATTR_FWMARK") == svc.fwmark
        assert s.get_attr("IPVS_SVC_ATTR_ADDR") is None
    else:
        assert s.get_attr("IPVS_SVC_ATTR_PROTOCOL") == svc.protocol
        assert s.get_attr("IPVS_SVC_ATTR_ADDR") == svc.addr
        assert s.get_attr("IPVS_SVC_ATTR_PORT") == svc.port
    assert s.get_attr("IPVS_SVC_ATTR_SCHED_NAME") == svc.sched_name
    assert s.get_attr("IPVS_SVC_ATTR_PE_NAME") == (svc.pe_name or None)
    assert s.get_attr("IPVS_SVC_ATTR_FLAGS") == {"flags": svc.flags, "mask": 0xFFFFFFFF}
    assert s.get_attr("IPVS_SVC_ATTR_TIMEOUT") == svc.timeout
    mask = s.get_attr("IPVS_SVC_ATTR_NETMASK")
    if svc.af == socket.AF_INET:
        assert mask == socket.inet_ntoa(svc.netmask.to_bytes(4, "big"))
    else:
        assert mask == socket.inet_ntoa(svc.netmask.to_bytes(4, "little"))
    d = m.get_attr("IPVS_CMD_ATTR_DEST")
    if cmd not in msg.DEST_COMMANDS:
        assert d is None
        return
    assert d.get_attr("IPVS_DEST_ATTR_ADDR_FAMILY") == dest.af
    assert d.get_attr("IPVS_DEST_ATTR_ADDR") == dest.addr
    assert d.get_attr("IPVS_DEST_ATTR_PORT") == dest.port
    assert d.get_attr("IPVS_DEST_ATTR_FWD_METHOD") == dest.fwd_method
    assert d.get_attr("IPVS_DEST_ATTR_WEIGHT") == dest.weight
    assert d.get_attr("IPVS_DEST_ATTR_U_THRESH") == dest.u_threshold
    assert d.get_attr("IPVS_DEST_ATTR_L_THRESH") == dest.l_threshold
    if dest.fwd_method == IP_VS_CONN_F_TUNNEL:
        gue = dest.tun_type == IP_VS_CONN_F_TUNNEL_TYPE_GUE
        ipip = dest.tun_type == IP_VS_CONN_F_TUNNEL_TYPE_IPIP
        assert d.get_attr("IPVS_DEST_ATTR_TUN_TYPE") == dest.tun_type
        port = d.get_attr("IPVS_DEST_ATTR_TUN_PORT")
        assert port == (socket.htons(dest.tun_port) if gue else None)  # pyroute2 byte-swaps it
        assert d.get_attr("IPVS_DEST_ATTR_TUN_FLAGS") == (None if ipip else dest.tun_flags)
    else:
        assert d.get_attr("IPVS_DEST_ATTR_TUN_TYPE") is None
