"""Cross-check with an independent decoder/encoder: scapy reads what fastka builds and
fastka reads what scapy builds, for random adverts, with equal fields and checksums that
verify on both sides. (v3 adverts have at least one address here: scapy's dispatcher
takes an 8-byte VRRPv3 message for v2.)"""

from __future__ import annotations

import ipaddress
import socket
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers import ipsec
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum
from vrrp_strategies import MCAST4, MCAST6, Fields, expect_for, packet_of, v2_fields, v3_fields

from conftest import implementations, load

IMPLS = implementations("fastka._vrrp", "fastka._vrrp_py")
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(params=IMPLS)
def vrrp(request: pytest.FixtureRequest) -> ModuleType:
    return load(request.param)


def _ntop(addr: bytes) -> str:
    return str(ipaddress.ip_address(addr))


def _addresses(f: Fields) -> list[str]:
    return [_ntop(f.addresses[i : i + f.alen]) for i in range(0, len(f.addresses), f.alen)]


def _scapy_checksum_ok(layer: Any, underlayer: Any) -> bool:
    """Let scapy recompute the checksum of a parsed VRRP layer from scratch."""
    again = underlayer.copy()
    vr = again[type(layer)]
    want = vr.chksum
    vr.chksum = None
    rebuilt = type(underlayer)(bytes(again))
    return bool(rebuilt[type(layer)].chksum == want)


# ----------------------------------------------------------------------------- fastka -> scapy


@SETTINGS
@given(f=v2_fields(max_addresses=20))
def test_scapy_reads_fastka_v2(vrrp: ModuleType, f: Fields) -> None:
    pkt = packet_of(vrrp, f, ident=77, ah_seq=9)
    ip = IP(pkt)
    assert ip.tos == 0xC0 and ip.ttl == 255 and ip.id == 77 and ip.flags == 0
    assert ip.src == _ntop(f.src) and ip.dst == _ntop(f.dst)
    again = ip.copy()
    again.chksum = None
    assert IP(bytes(again)).chksum == ip.chksum  # scapy recomputes the same header checksum
    if f.auth_type == 2:
        assert ip.proto == 51
        ah = ip[ipsec.AH]
        assert ah.nh == 112 and ah.payloadlen == 4 and ah.spi == int.from_bytes(f.src, "big") and ah.seq == 9
        vr = VRRP(bytes(ah.payload))
        if f.dst != MCAST4:
            # RFC 2402 zeroes TTL among the mutable fields; Keepalived does so only for
            # unicast, so there scapy's own AH implementation verifies our ICV
            sa = ipsec.SecurityAssociation(
                ipsec.AH, spi=ah.spi, auth_algo="HMAC-MD5-96", auth_key=f.auth_data.ljust(8, b"\0")
            )
            assert sa.decrypt(ip.copy())
    else:
        assert ip.proto == 112
        vr = ip[VRRP]
        assert _scapy_checksum_ok(vr, ip)
    assert (vr.version, vr.type, vr.vrid, vr.priority, vr.ipcount) == (2, 1, f.vrid, f.priority, f.count)
    assert (vr.authtype, vr.adv) == (f.auth_type, f.adver_int)
    assert vr.addrlist == _addresses(f)
    auth = (vr.auth1 << 32 | vr.auth2).to_bytes(8, "big")
    assert auth == (f.auth_data.ljust(8, b"\0") if f.auth_type == 1 else bytes(8))
    assert scapy_checksum(bytes(vr)[:6] + b"\0\0" + bytes(vr)[8:]) == vr.chksum


@SETTINGS
@given(f=v3_fields(max_addresses=12, min_addresses=1))
def test_scapy_reads_fastka_v3(vrrp: ModuleType, f: Fields) -> None:
    pkt = packet_of(vrrp, f)
    if f.family == socket.AF_INET:
        under: Any = IP(pkt)
        vr = under[VRRPv3]
        if f.pseudo_header:
            assert _scapy_checksum_ok(vr, under)  # scapy's v3 over IPv4 includes the pseudo-header
        else:
            body = bytes(vr)
            assert scapy_checksum(body[:6] + b"\0\0" + body[8:]) == vr.chksum  # RFC 9568 variant
    else:
        under = IPv6(bytes(IPv6(src=_ntop(f.src), dst=_ntop(f.dst), hlim=255, nh=112) / Raw(pkt)))
        vr = under[VRRPv3]
        assert _scapy_checksum_ok(vr, under)
    assert (vr.version, vr.type, vr.vrid, vr.priority, vr.ipcount) == (3, 1, f.vrid, f.priority, f.count)
    assert (vr.res, vr.adv) == (0, f.adver_int)
    assert vr.addrlist == _addresses(f)


# ----------------------------------------------------------------------------- scapy -> fastka


@SETTINGS
@given(f=v2_fields(max_addresses=20).filter(lambda f: f.auth_type != 2), ttl=st.sampled_from([255, 64]))
def test_fastka_reads_scapy_v2(vrrp: ModuleType, f: Fields, ttl: int) -> None:
    if f.dst == MCAST4:
        ttl = 255  # a unicast advert may have crossed a router; a multicast one may not
    auth = f.auth_data.ljust(8, b"\0") if f.auth_type == 1 else bytes(8)
    built = IP(src=_ntop(f.src), dst=_ntop(f.dst), ttl=ttl, proto=112) / VRRP(
        vrid=f.vrid,
        priority=f.priority,
        addrlist=_addresses(f),
        authtype=f.auth_type,
        adv=f.adver_int,
        auth1=int.from_bytes(auth[:4], "big"),
        auth2=int.from_bytes(auth[4:], "big"),
    )
    a = vrrp.decode_ipv4(bytes(built), expect_for(vrrp, f))
    assert (a.version, a.vrid, a.priority, a.adver_int, a.auth_type) == (
        2,
        f.vrid,
        f.priority,
        f.adver_int,
        f.auth_type,
    )
    assert a.addresses_packed == f.addresses and a.auth_data == auth and a.ttl == ttl
    assert a.message == vrrp.encode(*f.encode_args())


@SETTINGS
@given(f=v2_fields(max_addresses=4).filter(lambda f: f.dst == MCAST4))
def test_fastka_refuses_scapy_multicast_with_a_low_ttl(vrrp: ModuleType, f: Fields) -> None:
    from fastka.errors import VrrpDecodeError
    from fastka.vrrp.constants import Reason

    built = IP(src=_ntop(f.src), dst=_ntop(f.dst), ttl=64, proto=112) / VRRP(
        vrid=f.vrid, addrlist=_addresses(f)
    )
    with pytest.raises(VrrpDecodeError) as info:
        vrrp.decode_ipv4(bytes(built), vrrp.Expect(2, unicast=False))
    assert info.value.reason == Reason.BAD_TTL


@SETTINGS
@given(f=v3_fields(max_addresses=12, min_addresses=1).filter(lambda f: f.pseudo_header))
def test_fastka_reads_scapy_v3(vrrp: ModuleType, f: Fields) -> None:
    layer = VRRPv3(vrid=f.vrid, priority=f.priority, adv=f.adver_int, addrlist=_addresses(f))
    if f.family == socket.AF_INET:
        built = bytes(IP(src=_ntop(f.src), dst=_ntop(f.dst), ttl=255, proto=112) / layer)
        a = vrrp.decode_ipv4(built, expect_for(vrrp, f))
    else:
        full = bytes(IPv6(src=_ntop(f.src), dst=_ntop(f.dst), hlim=255, nh=112) / layer)
        a = vrrp.decode(full[40:], f.src, f.dst, full[7], expect_for(vrrp, f))
    assert (a.version, a.vrid, a.priority, a.adver_int, a.count) == (
        3,
        f.vrid,
        f.priority,
        f.adver_int,
        f.count,
    )
    assert a.addresses_packed == f.addresses and a.src == f.src and a.dst == f.dst
    assert a.message == vrrp.encode(*f.encode_args())  # same bytes, checksum included
    assert f.dst != MCAST6 or a.family == socket.AF_INET6
