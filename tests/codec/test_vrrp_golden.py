"""Golden captures of real Keepalived 2.2.7 (and FRR vrrpd): every VRRP packet decodes to
the fields of its ``.expected.json``, and re-encoding those fields gives the same bytes --
VRRP message and checksum, and for Keepalived's IPv4 packets the whole IP header and the
AH header (ICV included)."""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import SHARED, implementations, load
from fastka.vrrp.constants import FLAG_AH, FLAG_MULTICAST, FLAG_UNCHANGED, IPPROTO_AH, IPPROTO_VRRP
from pcap import frames, ip_packet

GOLDEN = SHARED / "vrrp-golden"
CAPTURES = sorted(GOLDEN.glob("*.expected.json")) + sorted(GOLDEN.glob("*/*.expected.json"))
AUTH_PASS = b"secret12"  # auth_pass of the PASS and AH scenarios (their .r1.conf)


@pytest.fixture(params=implementations("fastka._vrrp", "fastka._vrrp_py"))
def vrrp(request: pytest.FixtureRequest) -> ModuleType:
    return load(request.param)


def _vrrp_packets(pcap: Path) -> list[bytes]:
    """IPv4 packets with protocol 112/51 and IPv6 packets with next header 112."""
    out = []
    for f in frames(pcap):
        pkt = ip_packet(f)
        if pkt is None:
            continue
        if (pkt[0] >> 4 == 4 and pkt[9] in (IPPROTO_VRRP, IPPROTO_AH)) or (
            pkt[0] >> 4 == 6 and pkt[6] == 112
        ):
            out.append(pkt)
    return out


def _expected(capture: Path) -> tuple[dict[str, Any], dict[bytes, dict[str, Any]]]:
    data = json.loads(capture.read_text())
    by_packet = {}
    for fr in data["distinct_vrrp_frames"]:
        frame = bytes.fromhex(fr["frame_hex"])
        payload = frame[14:]
        ip = fr.get("ip")
        by_packet[payload[: ip["total_len"]] if ip else payload[: 40 + fr["ip6"]["payload_len"]]] = fr
    return data, by_packet


def _decode(vrrp: ModuleType, pkt: bytes, expect: Any = None) -> Any:
    if pkt[0] >> 4 == 4:
        return vrrp.decode_ipv4(pkt, expect)
    return vrrp.decode(pkt[40:], pkt[8:24], pkt[24:40], pkt[7], expect)


def test_captures_are_there() -> None:
    assert len(CAPTURES) == 13, CAPTURES  # 12 Keepalived scenarios + FRR interop


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name.removesuffix(".expected.json"))
def test_golden_capture(vrrp: ModuleType, capture: Path) -> None:
    data, expected = _expected(capture)
    packets = _vrrp_packets(capture.with_name(data["pcap"]))
    assert len(packets) == data["vrrp_packets"]
    for pkt in packets:
        fr = expected[pkt]  # every packet of the capture is one of the distinct frames
        v = fr["vrrp"]
        a = _decode(vrrp, pkt)
        # fields
        assert a.version == v["version"]
        assert a.type == v["type"] == 1
        assert a.vrid == v["vrid"]
        assert a.priority == v["priority"]
        assert a.count == v["count_ip"]
        assert a.length == v["vrrp_len"]
        assert a.checksum == int(v["checksum"], 16)
        assert [str(x) for x in a.addresses] == v["addresses"]
        assert [str(a.address(i)) for i in range(a.count)] == v["addresses"]
        assert a.message.hex() == fr["vrrp_hex"]
        if a.version == 2:
            assert a.adver_int == v["adver_int_s"]
            assert a.auth_type == v["auth_type"]
            assert a.auth_data.hex() == v["auth_data"]
        else:
            assert a.adver_int == v["max_adver_int_cs"]
            assert a.auth_data == b""
        ip = fr.get("ip") or fr["ip6"]
        assert str(ipaddress.ip_address(a.src)) == ip["src"]
        assert str(ipaddress.ip_address(a.dst)) == ip["dst"]
        assert a.ttl == ip.get("ttl", ip.get("hop_limit"))
        assert bool(a.flags & FLAG_MULTICAST) == ipaddress.ip_address(ip["dst"]).is_multicast
        # the checksum as the capture's independent decoder computed it
        pseudo = () if a.version == 2 else (a.src, a.dst)
        assert vrrp.vrrp_checksum(a.message, *pseudo) == a.checksum
        # re-encoding the decoded fields gives the same message
        addrs = a.addresses_packed
        auth = AUTH_PASS if a.auth_type in (1, 2) else b""
        if a.version == 2:
            msg = vrrp.encode(2, a.vrid, a.priority, a.adver_int, addrs, a.auth_type, auth)
        else:
            msg = vrrp.encode(3, a.vrid, a.priority, a.adver_int, addrs, 0, b"", a.src, a.dst)
        assert msg == a.message
        if "ah" in fr:
            ah = fr["ah"]
            assert a.flags & FLAG_AH
            assert a.ah_seq == ah["seq"]
        if pkt[0] >> 4 == 4:
            assert vrrp.inet_checksum(pkt[:20]) == 0  # header checksum valid
            if ip["flags_frag"] == "0x0000":  # Keepalived's own header (FRR sets DF)
                again = vrrp.encode_ipv4(
                    a.version,
                    a.vrid,
                    a.priority,
                    a.adver_int,
                    addrs,
                    a.auth_type if a.version == 2 else 0,
                    auth if a.version == 2 else b"",
                    a.src,
                    a.dst,
                    a.ttl,
                    ip["id"],
                    a.ah_seq if a.ah_seq >= 0 else 1,
                )
                assert again == pkt  # IPv4 header, AH header with ICV, VRRP: byte-identical


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name.removesuffix(".expected.json"))
def test_golden_capture_validates_as_a_batch(vrrp: ModuleType, capture: Path) -> None:
    """The whole capture through VridTable.validate, as the receive path will see it;
    repeated adverts of a master are flagged UNCHANGED (IP ID and checksum aside)."""
    data, _ = _expected(capture)
    packets = _vrrp_packets(capture.with_name(data["pcap"]))
    for family in (socket.AF_INET, socket.AF_INET6):
        mine = [p for p in packets if (p[0] >> 4 == 4) == (family == socket.AF_INET)]
        if not mine:
            continue
        batch = vrrp.Batch(len(mine), 2048, family)
        table = vrrp.VridTable()
        for i, p in enumerate(mine):
            if family == socket.AF_INET:
                batch.set(i, p)
            else:
                batch.set(i, p[40:], p[8:24], p[24:40], p[7])
            a = _decode(vrrp, p)
            if a.vrid not in table:
                table[a.vrid] = vrrp.Expect(
                    a.version,
                    auth_type=a.auth_type if a.version == 2 else -1,
                    auth_data=AUTH_PASS if a.auth_type in (1, 2) else b"",
                    adver_int=a.adver_int,
                    unicast=not a.flags & FLAG_MULTICAST,
                )
        assert table.validate(batch, len(mine)) == len(mine), list(batch.status[: len(mine)])
        last: dict[int, tuple[bytes, bytes]] = {}
        for i, p in enumerate(mine):
            a = _decode(vrrp, p)
            assert batch.status[i] == 0
            assert batch.vrid[i] == a.vrid
            assert batch.priority[i] == a.priority
            assert batch.adver_int[i] == a.adver_int
            assert batch.source(i) == a.src
            assert bool(batch.flags[i] & FLAG_AH) == (a.ah_seq >= 0)
            # unchanged: the same advert from the same master as the previous one of this VRID
            unchanged = bool(batch.flags[i] & FLAG_UNCHANGED)
            assert unchanged == (a.ah_seq < 0 and last.get(a.vrid) == (a.message, a.src)), i
            last[a.vrid] = (a.message, a.src)
