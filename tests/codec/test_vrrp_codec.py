"""The VRRP codec, both implementations: building, checksums, AH, every validation
reason in Keepalived's order, lazy addresses, the batch path, argument errors."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import struct
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vrrp_strategies import MCAST4, MCAST6, any_fields, expect_for, packet_of, v2_fields, v3_fields

from conftest import implementations, load
from fastka._compat import USE_EXTENSIONS
from fastka.errors import VrrpDecodeError
from fastka.vrrp import codec, constants
from fastka.vrrp.constants import (
    FLAG_ADDRESS_MISMATCH,
    FLAG_ADVER_INT_DIFFERS,
    FLAG_AH,
    FLAG_AUTH_UNVERIFIED,
    FLAG_CHECKSUM_UNVERIFIED,
    FLAG_MULTICAST,
    FLAG_OLD_UNICAST_CHECKSUM,
    FLAG_UNCHANGED,
    Reason,
)

IMPLS = implementations("fastka._vrrp", "fastka._vrrp_py")
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

SRC = bytes([10, 99, 0, 11])
PEER = bytes([10, 99, 0, 12])
VIP = bytes([10, 99, 0, 100])
SRC6 = socket.inet_pton(socket.AF_INET6, "fe80::99:ff:fe00:11")
VIP6 = socket.inet_pton(socket.AF_INET6, "fd99::100")


@pytest.fixture(params=IMPLS)
def vrrp(request: pytest.FixtureRequest) -> ModuleType:
    return load(request.param)


# ----------------------------------------------------------------------------- independent helpers


def ref_checksum(data: bytes) -> int:
    """RFC 1071, written out plainly (independent of both implementations)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fix_ip_checksum(pkt: bytearray) -> bytearray:
    pkt[10:12] = b"\0\0"
    pkt[10:12] = ref_checksum(bytes(pkt[:20])).to_bytes(2, "big")
    return pkt


def fix_vrrp_checksum(pkt: bytearray, off: int, pseudo: bytes = b"") -> bytearray:
    pkt[off + 6 : off + 8] = b"\0\0"
    pkt[off + 6 : off + 8] = ref_checksum(pseudo + bytes(pkt[off:])).to_bytes(2, "big")
    return pkt


def resign_ah(pkt: bytearray, key: bytes) -> bytearray:
    """Recompute an AH ICV as RFC 2402 + Keepalived: TOS, frag, checksum (and TTL for
    unicast) zeroed in the IP header, ICV zeroed, HMAC-MD5 truncated to 96 bits."""
    hdr = bytearray(pkt[:20])
    hdr[1] = 0
    hdr[6:8] = b"\0\0"
    hdr[10:12] = b"\0\0"
    if not ipaddress.IPv4Address(bytes(hdr[16:20])).is_multicast:
        hdr[8] = 0
    ah = bytearray(pkt[20:44])
    ah[12:24] = bytes(12)
    pkt[32:44] = hmac.new(key, bytes(hdr) + bytes(ah) + bytes(pkt[44:]), hashlib.md5).digest()[:12]
    return pkt


def v2_packet(vrrp: ModuleType, **kw: Any) -> bytearray:
    args: dict[str, Any] = dict(
        version=2,
        vrid=51,
        priority=150,
        adver_int=1,
        addresses=VIP,
        auth_type=0,
        auth_data=b"",
        src=SRC,
        dst=MCAST4,
    )
    ttl = kw.pop("ttl", 255)
    seq = kw.pop("ah_seq", 1)
    args.update(kw)
    return bytearray(vrrp.encode_ipv4(*args.values(), ttl, 1, seq))


def v3_packet(vrrp: ModuleType, dst: bytes = MCAST4, **kw: Any) -> bytearray:
    args: dict[str, Any] = dict(
        version=3,
        vrid=55,
        priority=150,
        adver_int=100,
        addresses=VIP,
        auth_type=0,
        auth_data=b"",
        src=SRC,
        dst=dst,
    )
    ttl = kw.pop("ttl", 255)
    pseudo = kw.pop("pseudo_header", True)
    args.update(kw)
    return bytearray(vrrp.encode_ipv4(*args.values(), ttl, 1, 1, pseudo))


def reason(fn: Callable[..., Any], *args: Any) -> Reason:
    with pytest.raises(VrrpDecodeError) as info:
        fn(*args)
    assert isinstance(info.value.reason, Reason)
    return info.value.reason


# ----------------------------------------------------------------------------- selection, constants


def test_codec_selects_the_compiled_module() -> None:
    """Fails if the compiled codec did not load (a broken build must not pass as the reference)."""
    if not USE_EXTENSIONS:
        pytest.skip("FASTKA_NO_EXTENSIONS=1: references only")
    import fastka._vrrp as compiled

    assert compiled.__file__ is not None and compiled.__file__.endswith(".so")
    assert codec.IMPLEMENTATION == "fastka._vrrp"
    assert codec.decode is compiled.decode
    assert codec.Advert is compiled.Advert
    assert type(codec.decode).__name__ == "builtin_function_or_method"


@pytest.mark.compiled
def test_compiled_constants_match_the_enum() -> None:
    if not USE_EXTENSIONS:
        pytest.skip("FASTKA_NO_EXTENSIONS=1: references only")
    import fastka._vrrp as compiled

    assert {r.name: r.value for r in Reason} == compiled._REASON_CODES
    assert {k: v for k, v in vars(constants).items() if k.startswith("FLAG_")} == compiled._FLAG_BITS


def test_public_api_is_identical() -> None:
    ref = load("fastka._vrrp_py")
    assert set(ref.__all__) <= set(codec.__all__)
    for name in ref.__all__:
        assert getattr(codec, name) is not None
    if USE_EXTENSIONS:
        compiled = load("fastka._vrrp")
        assert sorted(compiled.__all__) == sorted(ref.__all__)
        for cls in ("Advert", "Expect", "Batch", "VridTable"):
            public = {n for n in dir(getattr(ref, cls)) if not n.startswith("_")}
            assert public <= set(dir(getattr(compiled, cls))), cls


def test_reason_values_follow_keepalived_order() -> None:
    assert [r.value for r in Reason] == list(range(1, len(Reason) + 1))
    assert Reason.ADVER_INT_MISMATCH.is_drop and Reason.UNKNOWN_VRID.is_drop
    assert not Reason.BAD_CHECKSUM.is_drop
    assert constants.IPPROTO_VRRP == 112 and constants.IPPROTO_AH == 51
    assert constants.VRRP_MCAST_GROUP4_PACKED == MCAST4 and constants.VRRP_MCAST_GROUP6_PACKED == MCAST6


# ----------------------------------------------------------------------------- building


def test_v2_wire_format(vrrp: ModuleType) -> None:
    msg = vrrp.encode(2, 53, 150, 1, VIP, 1, b"secret12")
    assert msg.hex() == "213596010101cf820a6300647365637265743132"  # Keepalived, vrrpv2-auth-pass
    assert vrrp.encode(2, 51, 150, 1, VIP, 1, b"abc")[-8:] == b"abc\0\0\0\0\0"  # zero-padded
    assert vrrp.encode(2, 51, 150, 1, VIP, 0, b"ignored")[-8:] == bytes(8)  # NONE: zeros
    assert vrrp.encode(2, 51, 150, 1, VIP, 2, b"key")[-8:] == bytes(8)  # AH: zeros in VRRP


def test_v3_wire_format(vrrp: ModuleType) -> None:
    msg = vrrp.encode(3, 59, 150, 100, VIP, 0, b"", SRC, PEER)
    assert msg.hex() == "313b96010064183f0a630064"  # Keepalived, vrrpv3-unicast (peer in pseudo-header)
    msg = vrrp.encode(3, 1, 100, 0xFFF, b"", 0, b"", SRC, MCAST4)
    assert msg[4:6] == b"\x0f\xff"  # 4 reserved bits zero, 12-bit interval
    msg6 = vrrp.encode(3, 57, 150, 100, VIP6, 0, b"", SRC6, MCAST6)
    assert msg6.hex() == "3139960100643bfffd990000000000000000000000000100"  # Keepalived, vrrpv3-ipv6


def test_rfc9568_checksum_without_pseudo_header(vrrp: ModuleType) -> None:
    msg = vrrp.encode(3, 55, 150, 100, VIP, 0, b"", SRC, MCAST4, False)
    assert (
        int.from_bytes(msg[6:8], "big")
        == vrrp.vrrp_checksum(msg)
        == ref_checksum(msg[:6] + b"\0\0" + msg[8:])
    )
    with_pseudo = vrrp.encode(3, 55, 150, 100, VIP, 0, b"", SRC, MCAST4, True)
    assert msg[:6] == with_pseudo[:6] and msg[6:8] != with_pseudo[6:8]
    # IPv6 always carries the pseudo-header checksum (the kernel computes it anyway)
    assert vrrp.encode(3, 57, 150, 100, VIP6, 0, b"", SRC6, MCAST6, False) == vrrp.encode(
        3, 57, 150, 100, VIP6, 0, b"", SRC6, MCAST6
    )


@SETTINGS
@given(f=any_fields(max_addresses=30))
def test_encode_into_at_an_offset(vrrp: ModuleType, f: Any) -> None:
    whole = vrrp.encode(*f.encode_args())
    buf = bytearray(b"\xee" * (len(whole) + 9))
    assert vrrp.encode_into(buf, 5, *f.encode_args()) == len(whole)
    assert bytes(buf[5 : 5 + len(whole)]) == whole
    assert buf[:5] == b"\xee" * 5 and buf[5 + len(whole) :] == b"\xee" * 4
    mv = memoryview(bytearray(len(whole)))
    vrrp.encode_into(mv, 0, *f.encode_args())
    assert bytes(mv) == whole


@SETTINGS
@given(f=any_fields(max_addresses=40))
def test_checksums_against_rfc1071(vrrp: ModuleType, f: Any) -> None:
    msg = vrrp.encode(*f.encode_args())
    zeroed = msg[:6] + b"\0\0" + msg[8:]
    if f.version == 3 and (f.pseudo_header or f.family == socket.AF_INET6):
        n = len(msg)
        if f.family == socket.AF_INET:
            pseudo = f.src + f.dst + bytes([0, 112]) + n.to_bytes(2, "big")
        else:
            pseudo = f.src + f.dst + n.to_bytes(4, "big") + bytes([0, 0, 0, 112])
        want = ref_checksum(pseudo + zeroed)
        assert vrrp.vrrp_checksum(msg, f.src, f.dst) == want
    else:
        want = ref_checksum(zeroed)
        assert vrrp.vrrp_checksum(msg) == want
    assert int.from_bytes(msg[6:8], "big") == want
    assert vrrp.inet_checksum(zeroed) == ref_checksum(zeroed)
    assert vrrp.inet_checksum(msg[:-1]) == ref_checksum(msg[:-1])  # odd length


@SETTINGS
@given(f=any_fields(max_addresses=20), prio=st.integers(0, 255))
def test_update_priority_is_the_full_recompute(vrrp: ModuleType, f: Any, prio: int) -> None:
    buf = bytearray(3) + bytearray(vrrp.encode(*f.encode_args()))
    csum = vrrp.update_priority(buf, 3, prio)
    from dataclasses import replace

    want = vrrp.encode(*replace(f, priority=prio).encode_args())
    assert bytes(buf[3:]) == want
    assert csum == int.from_bytes(want[6:8], "big")


def test_ipv4_header_as_keepalived_builds_it(vrrp: ModuleType) -> None:
    buf = bytearray(20)
    assert vrrp.ipv4_header_into(buf, 0, SRC, MCAST4, 255, 1, 112, 20) == 20
    assert buf.hex() == "45c0002800010000ff70d0240a63000be0000012"  # vrrpv2-noauth's header
    vrrp.ipv4_header_into(buf, 0, SRC, MCAST4, 255, 1, 51, 44)
    assert buf.hex() == "45c0004000010000ff33d0490a63000be0000012"  # vrrpv2-auth-ah's header
    assert vrrp.inet_checksum(buf) == 0


def test_ah_packet_as_keepalived_builds_it(vrrp: ModuleType) -> None:
    pkt = v2_packet(vrrp, vrid=54, auth_type=2, auth_data=b"secret12", ah_seq=1)
    assert pkt.hex() == (
        "45c0004000010000ff33d0490a63000be0000012700400000a63000b0000000176e2376cab4e7cb171e4f6c3"
        "2136960102013c000a6300640000000000000000"
    )
    assert resign_ah(bytearray(pkt), b"secret12") == pkt  # independent ICV
    # unicast: the TTL is a mutable field too
    uni = v2_packet(vrrp, auth_type=2, auth_data=b"k", dst=PEER, ttl=64, ah_seq=7)
    assert resign_ah(bytearray(uni), b"k") == uni
    assert uni[20:24] == bytes([112, 4, 0, 0]) and uni[24:28] == SRC and uni[28:32] == (7).to_bytes(4, "big")


def test_built_in_md5_matches_hashlib(vrrp: ModuleType) -> None:
    for n in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000]:
        data = bytes((i * 7 + n) & 0xFF for i in range(n))
        for key in (b"", b"secret12", bytes(range(64))):
            assert vrrp._hmac_md5_96(key, data) == hmac.new(key, data, hashlib.md5).digest()[:12]


# ----------------------------------------------------------------------------- decoding


@SETTINGS
@given(f=any_fields(max_addresses=30), ttl=st.integers(0, 255))
def test_round_trip(vrrp: ModuleType, f: Any, ttl: int) -> None:
    pkt = packet_of(vrrp, f, ttl=ttl if f.dst not in (MCAST4, MCAST6) else 255)
    e = expect_for(vrrp, f)
    if f.family == socket.AF_INET:
        a = vrrp.decode_ipv4(pkt, e)
        assert a.ttl == pkt[8]
    else:
        a = vrrp.decode(pkt, f.src, f.dst, 255, e)
        assert a.ttl == 255
    assert (a.version, a.vrid, a.priority, a.adver_int) == (f.version, f.vrid, f.priority, f.adver_int)
    assert a.count == f.count and a.addresses_packed == f.addresses
    assert a.family == f.family and a.src == f.src and a.dst == f.dst
    assert a.addresses == tuple(
        ipaddress.ip_address(f.addresses[i : i + f.alen]) for i in range(0, len(f.addresses), f.alen)
    )
    if f.version == 2:
        assert a.auth_type == f.auth_type
        want = f.auth_data.ljust(8, b"\0") if f.auth_type == 1 else bytes(8)
        assert a.auth_data == want
        assert bool(a.flags & FLAG_AH) == (f.auth_type == 2)
    assert bool(a.flags & FLAG_CHECKSUM_UNVERIFIED) == (f.version == 3 and not f.pseudo_header)
    assert not a.flags & FLAG_UNCHANGED
    # the same packet again (new IP ID) is unchanged for this instance -- except with AH
    if f.family == socket.AF_INET and f.auth_type != 2:
        again = bytearray(pkt)
        again[4:6] = b"\x12\x34"
        b = vrrp.decode_ipv4(bytes(fix_ip_checksum(again)), e)
        assert b.flags & FLAG_UNCHANGED
        assert b.flags & ~FLAG_UNCHANGED == a.flags


def test_addresses_are_lazy_and_indexed(vrrp: ModuleType) -> None:
    vips = b"".join(bytes([10, 0, 0, i]) for i in range(20))
    a = vrrp.decode(vrrp.encode(2, 1, 100, 1, vips))
    assert a.count == 20
    assert a.address(0) == ipaddress.IPv4Address("10.0.0.0")
    assert a.address(19) == ipaddress.IPv4Address("10.0.0.19")
    assert len(a.addresses) == 20
    for bad in (-1, 20, 1 << 70):
        with pytest.raises(IndexError):
            a.address(bad)
    with pytest.raises(TypeError):
        a.address("1")
    six = vrrp.decode(vrrp.encode(3, 1, 100, 100, VIP6, 0, b"", SRC6, MCAST6), SRC6, MCAST6, 255)
    assert six.address(0) == ipaddress.IPv6Address("fd99::100")
    with pytest.raises(TypeError):
        vrrp.Advert()


def test_decode_keeps_a_copy_of_reused_buffers(vrrp: ModuleType) -> None:
    buf = bytearray(vrrp.encode(2, 1, 100, 1, VIP))
    a = vrrp.decode(buf)
    buf[8:12] = b"\0\0\0\0"
    assert a.address(0) == ipaddress.IPv4Address("10.99.0.100")
    b = vrrp.decode(memoryview(bytearray(vrrp.encode(2, 2, 100, 1, VIP))))
    c = vrrp.decode(vrrp.encode(2, 3, 100, 1, VIP))
    assert (a.vrid, b.vrid, c.vrid) == (1, 2, 3)  # earlier adverts are not recycled while held


def test_family_is_inferred_without_addresses(vrrp: ModuleType) -> None:
    six = vrrp.encode(3, 1, 100, 100, VIP6 * 2, 0, b"", SRC6, MCAST6)
    a = vrrp.decode(six)  # no src/dst: IPv6 by its length; checksum not verifiable
    assert a.family == socket.AF_INET6 and a.flags & FLAG_CHECKSUM_UNVERIFIED
    assert vrrp.decode(six, SRC6, MCAST6).flags & FLAG_CHECKSUM_UNVERIFIED == 0
    assert vrrp.decode(vrrp.encode(2, 1, 100, 1, VIP)).family == socket.AF_INET


def test_ethernet_padding_is_tolerated(vrrp: ModuleType) -> None:
    pkt = bytes(v3_packet(vrrp))  # 32 bytes: Ethernet pads the frame to 46 bytes of IP
    a = vrrp.decode_ipv4(pkt + bytes(14))
    assert a.length == 12 and a.message == pkt[20:]
    # beyond the Ethernet minimum, extra bytes are a length error
    assert reason(vrrp.decode_ipv4, pkt + bytes(15)) == Reason.BAD_LENGTH


# ----------------------------------------------------------------------------- validation reasons


def test_dispatcher_level_reasons(vrrp: ModuleType) -> None:
    pkt = v2_packet(vrrp)
    d = vrrp.decode_ipv4
    assert reason(d, bytes(pkt[:19])) == Reason.TOO_SHORT
    assert reason(d, bytes(pkt[:27])) == Reason.TOO_SHORT
    assert reason(vrrp.decode, bytes(pkt[20:27])) == Reason.TOO_SHORT
    assert reason(d, b"\x65" + bytes(pkt[1:])) == Reason.BAD_IP_HEADER  # IPv6 version nibble
    assert reason(d, b"\x44" + bytes(pkt[1:])) == Reason.BAD_IP_HEADER  # IHL 16 bytes
    assert reason(d, b"\x4f" + bytes(pkt[1:])) == Reason.BAD_IP_HEADER  # IHL 60 > packet
    udp = bytearray(pkt)
    udp[9] = 17
    assert reason(d, bytes(udp)) == Reason.BAD_IP_PROTOCOL
    ah = v2_packet(vrrp, auth_type=2)
    assert reason(d, bytes(ah[:51])) == Reason.TOO_SHORT  # AH without a whole VRRP header


def test_instance_reasons_in_keepalived_order(vrrp: ModuleType) -> None:
    d = vrrp.decode_ipv4
    e = vrrp.Expect(2, auth_type=0, adver_int=1, unicast=False)
    ok = v2_packet(vrrp)
    assert d(bytes(ok), e).vrid == 51
    # 1. AH present iff auth type AH
    assert reason(d, bytes(v2_packet(vrrp, auth_type=2)), e) == Reason.AH_UNEXPECTED
    e_ah = vrrp.Expect(2, auth_type=2, auth_data=b"secret12", adver_int=1, unicast=False)
    assert reason(d, bytes(ok), e_ah) == Reason.AH_MISSING
    # 2. length vs count (before the TTL and everything else)
    bad = bytearray(ok)
    bad[23] = 2
    bad[8] = 1
    assert reason(d, bytes(bad), e) == Reason.BAD_LENGTH
    v3 = v3_packet(vrrp)
    assert reason(d, bytes(v3), e) == Reason.BAD_LENGTH  # v3 layout where v2 is expected
    # 3. TTL 255 on multicast only
    assert reason(d, bytes(v2_packet(vrrp, ttl=254)), e) == Reason.BAD_TTL
    e_uni = vrrp.Expect(2, auth_type=0, adver_int=1, unicast=True)
    assert d(bytes(v2_packet(vrrp, dst=PEER, ttl=64)), e_uni).ttl == 64
    # 4. version
    bad = bytearray(ok)
    bad[20] = 0x31
    assert reason(d, bytes(bad), e) == Reason.BAD_VERSION
    bad[20] = 0x51
    assert reason(d, bytes(bad[:32])) == Reason.BAD_VERSION  # no expectation: only 2 and 3
    # 6./7./8. auth
    bad = bytearray(ok)
    bad[24] = 3
    assert reason(d, bytes(bad), e) == Reason.BAD_AUTH_TYPE
    pw = v2_packet(vrrp, auth_type=1, auth_data=b"secret12")
    assert reason(d, bytes(pw), e) == Reason.AUTH_TYPE_MISMATCH
    e_pw = vrrp.Expect(2, auth_type=1, auth_data=b"secret12", adver_int=1, unicast=False)
    assert d(bytes(pw), e_pw).auth_data == b"secret12"
    assert (
        reason(d, bytes(v2_packet(vrrp, auth_type=1, auth_data=b"secret13")), e_pw)
        == Reason.AUTH_DATA_MISMATCH
    )
    assert d(bytes(pw)).flags & FLAG_AUTH_UNVERIFIED  # nothing to compare with
    # 10. v2 interval mismatch: dropped (checked before the type and the checksum)
    slow = v2_packet(vrrp, adver_int=2)
    slow[20] = 0x22  # and a bad type
    assert reason(d, bytes(slow), e) == Reason.ADVER_INT_MISMATCH
    assert Reason.ADVER_INT_MISMATCH.is_drop
    # 11. type
    bad = bytearray(ok)
    bad[20] = 0x22
    assert reason(d, bytes(bad), e) == Reason.BAD_TYPE
    # 12. IPv4 total length
    bad = bytearray(ok)
    bad[2:4] = (len(ok) + 4).to_bytes(2, "big")
    assert reason(d, bytes(fix_ip_checksum(bad)), e) == Reason.BAD_IP_TOTAL_LENGTH
    # 14. checksum
    bad = bytearray(ok)
    bad[26] ^= 0xFF
    assert reason(d, bytes(bad), e) == Reason.BAD_CHECKSUM
    # 15. destination kind
    e_uni255 = vrrp.Expect(2, auth_type=0, adver_int=1, unicast=True)
    assert reason(d, bytes(ok), e_uni255) == Reason.EXPECTED_UNICAST
    assert reason(d, bytes(v2_packet(vrrp, dst=PEER)), e) == Reason.EXPECTED_MULTICAST


def test_ah_checks(vrrp: ModuleType) -> None:
    d = vrrp.decode_ipv4
    e = vrrp.Expect(2, auth_type=2, auth_data=b"secret12", adver_int=1, unicast=False)
    pkt = v2_packet(vrrp, auth_type=2, auth_data=b"secret12", ah_seq=5)
    a = d(bytes(pkt), e)
    assert a.ah_seq == 5 and a.flags & FLAG_AH and e.ah_last_seq == 5
    # replay and older sequence numbers
    assert reason(d, bytes(pkt), e) == Reason.AH_SEQUENCE
    assert (
        reason(d, bytes(v2_packet(vrrp, auth_type=2, auth_data=b"secret12", ah_seq=4)), e)
        == Reason.AH_SEQUENCE
    )
    assert d(bytes(v2_packet(vrrp, auth_type=2, auth_data=b"secret12", ah_seq=6)), e).ah_seq == 6
    e.ah_last_seq = -1  # the router may resync
    assert d(bytes(pkt), e).ah_seq == 5
    # ICV: wrong key, tampered message
    e2 = vrrp.Expect(2, auth_type=2, auth_data=b"secret13", adver_int=1, unicast=False)
    assert reason(d, bytes(pkt), e2) == Reason.BAD_AH_ICV
    bad = bytearray(pkt)
    bad[46] = 200  # priority
    assert reason(
        d, bytes(fix_vrrp_checksum(bad, 44)), vrrp.Expect(2, auth_type=2, auth_data=b"secret12")
    ) == (Reason.BAD_AH_ICV)
    # SPI must be the source address (ICV recomputed, so only the SPI is wrong)
    bad = bytearray(pkt)
    bad[24:28] = PEER
    assert reason(
        d, bytes(resign_ah(bad, b"secret12")), vrrp.Expect(2, auth_type=2, auth_data=b"secret12")
    ) == (Reason.BAD_AH_SPI)
    # next header not VRRP: dropped
    bad = bytearray(pkt)
    bad[20] = 17
    assert reason(
        d, bytes(resign_ah(bad, b"secret12")), vrrp.Expect(2, auth_type=2, auth_data=b"secret12")
    ) == (Reason.BAD_AH_HEADER)
    # without an expectation the ICV cannot be checked, and says so
    assert d(bytes(pkt)).flags & FLAG_AUTH_UNVERIFIED
    # nor without the IP header (the AH header is not there to check)
    assert vrrp.decode(bytes(pkt[44:]), SRC, MCAST4, 255, e).flags & FLAG_AUTH_UNVERIFIED
    # unicast AH (TTL is mutable there) with a different TTL on arrival still verifies
    uni = v2_packet(vrrp, auth_type=2, auth_data=b"k", dst=PEER, ttl=255)
    uni[8] = 60
    assert d(bytes(fix_ip_checksum(uni)), vrrp.Expect(2, auth_type=2, auth_data=b"k", unicast=True)).ttl == 60


def test_v3_rules(vrrp: ModuleType) -> None:
    d = vrrp.decode_ipv4
    e = vrrp.Expect(3, adver_int=100, unicast=False)
    # interval mismatch is accepted (Master_Adver_Interval is learned), and flagged
    a = d(bytes(v3_packet(vrrp, adver_int=5)), e)
    assert a.adver_int == 5 and a.flags & FLAG_ADVER_INT_DIFFERS
    assert not d(bytes(v3_packet(vrrp)), vrrp.Expect(3, adver_int=100)).flags & FLAG_ADVER_INT_DIFFERS
    # RFC 9568 / v3_checksum_as_v2: refused by a default receiver, not verified by one in that mode
    rfc9568 = bytes(v3_packet(vrrp, pseudo_header=False))
    assert reason(d, rfc9568, e) == Reason.BAD_CHECKSUM
    assert d(rfc9568, vrrp.Expect(3, v3_checksum_as_v2=True)).flags & FLAG_CHECKSUM_UNVERIFIED
    # pre-1.3.6 Keepalived: unicast checksum over 224.0.0.18 -- accepted and flagged
    old = bytearray(v3_packet(vrrp, dst=PEER))
    old[20:] = vrrp.encode(3, 55, 150, 100, VIP, 0, b"", SRC, MCAST4)
    e_uni = vrrp.Expect(3, unicast=True)
    assert d(bytes(old), e_uni).flags & FLAG_OLD_UNICAST_CHECKSUM
    assert (
        reason(d, bytes(old), vrrp.Expect(3, unicast=True, old_unicast_checksum=False)) == Reason.BAD_CHECKSUM
    )
    assert not d(bytes(v3_packet(vrrp, dst=PEER)), e_uni).flags & FLAG_OLD_UNICAST_CHECKSUM
    # v3 has no AH
    ah = bytearray(v2_packet(vrrp, auth_type=2))
    ah[44] = 0x31
    assert reason(d, bytes(ah)) == Reason.AH_UNEXPECTED


def test_ipv6_rules(vrrp: ModuleType) -> None:
    msg = vrrp.encode(3, 57, 150, 100, VIP6, 0, b"", SRC6, MCAST6)
    e = vrrp.Expect(3, adver_int=100, unicast=False)
    assert vrrp.decode(msg, SRC6, MCAST6, 255, e).family == socket.AF_INET6
    assert reason(vrrp.decode, msg, SRC6, MCAST6, 64, e) == Reason.BAD_TTL
    assert vrrp.decode(msg, SRC6, MCAST6, -1, e).ttl == -1  # hop limit unknown: not checked
    # the dispatcher drops a multicast packet on a unicast instance before any other check
    assert reason(vrrp.decode, msg, SRC6, MCAST6, 64, vrrp.Expect(3, unicast=True)) == Reason.EXPECTED_UNICAST
    peer6 = socket.inet_pton(socket.AF_INET6, "fe80::12")
    uni = vrrp.encode(3, 57, 150, 100, VIP6, 0, b"", SRC6, peer6)
    assert reason(vrrp.decode, uni, SRC6, peer6, 255, e) == Reason.EXPECTED_MULTICAST
    assert reason(vrrp.decode, msg, SRC6, peer6, 255) == Reason.BAD_CHECKSUM  # wrong pseudo dst
    # VRRPv2 is IPv4 only
    v2 = bytearray(msg) + bytes(8)
    v2[0] = 0x21
    assert reason(vrrp.decode, bytes(v2), SRC6, MCAST6, 255) == Reason.BAD_VERSION


def test_address_list_check(vrrp: ModuleType) -> None:
    d = vrrp.decode_ipv4
    three = b"".join(bytes([10, 0, 0, i]) for i in (1, 2, 3))
    pkt = bytes(v2_packet(vrrp, addresses=three))
    same_set = b"".join(bytes([10, 0, 0, i]) for i in (3, 1, 2))
    assert not d(pkt, vrrp.Expect(2, addresses=same_set)).flags & FLAG_ADDRESS_MISMATCH
    other = b"".join(bytes([10, 0, 0, i]) for i in (1, 2, 4))
    assert d(pkt, vrrp.Expect(2, addresses=other)).flags & FLAG_ADDRESS_MISMATCH
    assert d(pkt, vrrp.Expect(2, addresses=three[:8])).flags & FLAG_ADDRESS_MISMATCH
    assert reason(d, pkt, vrrp.Expect(2, addresses=other, strict_addresses=True)) == Reason.ADDRESS_MISMATCH


# ----------------------------------------------------------------------------- batch


def test_batch_classifies_without_objects(vrrp: ModuleType) -> None:
    table = vrrp.VridTable()
    e51 = vrrp.Expect(2, auth_type=0, adver_int=1, unicast=False)
    table[51] = e51
    table[52] = vrrp.Expect(2, auth_type=1, auth_data=b"pw", adver_int=1, unicast=False)
    assert len(table) == 2 and 51 in table and 53 not in table and table[51] is e51
    batch = vrrp.Batch(8)
    good = bytes(v2_packet(vrrp))
    batch.set(0, good)
    batch.set(1, good)  # same advert again: unchanged
    batch.set(2, bytes(v2_packet(vrrp, vrid=53)))  # nobody home
    batch.set(3, bytes(v2_packet(vrrp, vrid=52, auth_type=1, auth_data=b"pw", priority=200)))
    batch.set(4, bytes(v2_packet(vrrp, vrid=52, auth_type=1, auth_data=b"xx")))
    batch.set(5, good[:10])
    batch.set(6, bytes(v2_packet(vrrp, adver_int=3)))
    batch.set(7, bytes(v2_packet(vrrp, priority=10)))
    assert table.validate(batch, 8) == 4
    assert list(batch.status) == [
        0,
        0,
        Reason.UNKNOWN_VRID,
        0,
        Reason.AUTH_DATA_MISMATCH,
        Reason.TOO_SHORT,
        Reason.ADVER_INT_MISMATCH,
        0,
    ]
    assert list(batch.vrid) == [51, 51, 53, 52, 52, 0, 51, 51]
    assert list(batch.priority) == [150, 150, 0, 200, 0, 0, 0, 10]
    assert list(batch.adver_int) == [1, 1, 0, 1, 0, 0, 0, 1]
    assert batch.flags[0] == FLAG_MULTICAST and batch.flags[1] == FLAG_MULTICAST | FLAG_UNCHANGED
    assert batch.flags[7] == FLAG_MULTICAST  # a changed advert
    assert batch.source(0) == SRC and bytes(batch.dst[0:4]) == MCAST4 and batch.hoplimit[0] == 255
    assert batch.advert(3).priority == 200
    with pytest.raises(VrrpDecodeError):
        batch.advert(5)
    del table[53 - 1]
    assert 52 not in table
    with pytest.raises(KeyError):
        del table[52]
    with pytest.raises(KeyError):
        table[52]


def test_batch_ipv6_and_recv_into(vrrp: ModuleType) -> None:
    table = vrrp.VridTable()
    table[57] = vrrp.Expect(3, adver_int=100, unicast=False)
    batch = vrrp.Batch(4, 256, socket.AF_INET6)
    msg = vrrp.encode(3, 57, 150, 100, VIP6, 0, b"", SRC6, MCAST6)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        for i in range(3):
            a.send(msg)
            batch.length[i] = b.recv_into(batch.slot(i))  # the recv path writes into the slots
            batch.src[16 * i : 16 * i + 16] = SRC6
            batch.dst[16 * i : 16 * i + 16] = MCAST6
            batch.hoplimit[i] = 255 if i != 2 else 1
    assert table.validate(batch, 3) == 2
    assert list(batch.status[:3]) == [0, 0, Reason.BAD_TTL]
    assert batch.flags[1] & FLAG_UNCHANGED and not batch.flags[0] & FLAG_UNCHANGED
    assert batch.source(0) == SRC6
    assert batch.advert(0).addresses == (ipaddress.IPv6Address("fd99::100"),)


def test_batch_ah_replay_is_caught(vrrp: ModuleType) -> None:
    table = vrrp.VridTable()
    e = vrrp.Expect(2, auth_type=2, auth_data=b"secret12", adver_int=1, unicast=False)
    table[51] = e
    batch = vrrp.Batch(3)
    for i, seq in enumerate((1, 2, 2)):
        batch.set(i, bytes(v2_packet(vrrp, auth_type=2, auth_data=b"secret12", ah_seq=seq)))
    assert table.validate(batch, 3) == 2
    assert list(batch.status) == [0, 0, Reason.AH_SEQUENCE]
    assert not any(f & FLAG_UNCHANGED for f in batch.flags)
    assert e.ah_last_seq == 2


# ----------------------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        ((1, 1, 100, 1, VIP), ValueError),  # version
        ((2, 256, 100, 1, VIP), ValueError),  # vrid
        ((2, 1, -1, 1, VIP), ValueError),  # priority
        ((2, 1, 100, 256, VIP), ValueError),  # v2 interval is one byte
        ((2, 1, 100, 1, VIP + b"\0"), ValueError),  # not whole addresses
        ((2, 1, 100, 1, VIP * 256), ValueError),  # count is one byte
        ((2, 1, 100, 1, VIP, 1, b"123456789"), ValueError),  # auth_pass longer than 8
        ((2, 1, 100, 1, VIP, 0, b"", SRC6, MCAST6), ValueError),  # v2 over IPv6
        ((3, 1, 100, 1, VIP), ValueError),  # v3 without src/dst
        ((3, 1, 100, 4096, VIP, 0, b"", SRC, MCAST4), ValueError),  # 12-bit interval
        ((3, 1, 100, 1, VIP, 1, b"", SRC, MCAST4), ValueError),  # v3 has no auth
        ((3, 1, 100, 1, VIP, 0, b"", SRC, MCAST6), ValueError),  # mixed families
        ((3, 1, 100, 1, VIP, 0, b"", SRC6[:5], MCAST6), ValueError),  # bad address length
        ((2.0, 1, 100, 1, VIP), TypeError),
        ((2, 1, 100, 1, "10.0.0.1"), TypeError),
        ((2, 1, 1 << 80, 1, VIP), ValueError),
    ],
)
def test_encode_argument_errors(vrrp: ModuleType, args: tuple[Any, ...], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        vrrp.encode(*args)
    with pytest.raises(exc):
        vrrp.encode_into(bytearray(2048), 0, *args)


def test_buffer_errors(vrrp: ModuleType) -> None:
    with pytest.raises(TypeError):
        vrrp.encode_into(bytes(100), 0, 2, 1, 100, 1, VIP)  # read-only
    with pytest.raises(ValueError):
        vrrp.encode_into(bytearray(19), 0, 2, 1, 100, 1, VIP)  # too small
    with pytest.raises(ValueError):
        vrrp.encode_into(bytearray(100), 90, 2, 1, 100, 1, VIP)
    with pytest.raises(ValueError):
        vrrp.encode_into(bytearray(100), -1, 2, 1, 100, 1, VIP)
    with pytest.raises(TypeError):
        vrrp.decode("not bytes")
    with pytest.raises(TypeError):
        vrrp.decode(b"\0" * 20, b"", b"", -1, object())
    with pytest.raises(ValueError):
        vrrp.decode(b"\0" * 20, b"", b"", 256)
    with pytest.raises(ValueError):
        vrrp.vrrp_checksum(b"\0" * 7)
    with pytest.raises(ValueError):
        vrrp.vrrp_checksum(b"\0" * 8, SRC)
    with pytest.raises(ValueError):
        vrrp.Expect(1)
    with pytest.raises(ValueError):
        vrrp.Expect(2, auth_data=b"123456789")
    with pytest.raises(ValueError):
        vrrp.Batch(0)
    with pytest.raises(ValueError):
        vrrp.VridTable().validate(vrrp.Batch(2), 3)
    with pytest.raises(TypeError):
        vrrp.VridTable()[1] = "not an Expect"


def test_keywords_work(vrrp: ModuleType) -> None:
    a = vrrp.encode_into(bytearray(64), 0, 3, 1, 100, 100, VIP, src=SRC, dst=MCAST4, pseudo_header=False)
    assert a == 12
    msg = vrrp.encode(3, 1, 100, 100, VIP, src=SRC, dst=MCAST4)
    assert vrrp.decode(msg, src=SRC, dst=MCAST4, ttl=255, expect=None).vrid == 1
    assert vrrp.decode_ipv4(packet=bytes(v2_packet(vrrp))).vrid == 51
    assert vrrp.vrrp_checksum(msg=msg, src=SRC, dst=MCAST4) == int.from_bytes(msg[6:8], "big")
    with pytest.raises(TypeError):
        vrrp.decode(msg, nonsense=1)
    with pytest.raises(TypeError):
        vrrp.decode()


def test_demo_matches_keepalived(capsys: pytest.CaptureFixture[str]) -> None:
    assert codec.demo() is True
    out = capsys.readouterr().out
    assert "vrrpv2-auth-ah" in out and "DIFFERENT" not in out
    assert out.count("identical") == 9


def test_pack_addresses() -> None:
    assert codec.pack_addresses(["10.99.0.100", ipaddress.ip_address("10.99.0.101")]) == VIP + bytes(
        [10, 99, 0, 101]
    )
    with pytest.raises(ValueError):
        codec.pack_addresses(["10.0.0.1", "fd00::1"])


@SETTINGS
@given(f=v3_fields(family=socket.AF_INET6), g=v2_fields())
def test_expect_properties(vrrp: ModuleType, f: Any, g: Any) -> None:
    e = expect_for(vrrp, g, addresses=g.addresses)
    assert e.version == 2 and e.auth_type == g.auth_type and e.adver_int == g.adver_int
    assert e.auth_data == g.auth_data.ljust(8, b"\0") and e.addresses == g.addresses
    assert e.unicast == (g.dst != MCAST4) and e.ah_last_seq == -1
    e6 = expect_for(vrrp, f)
    assert e6.version == 3 and e6.auth_type == -1 and e6.v3_checksum_as_v2 is False


@SETTINGS
@given(f=any_fields(max_addresses=30), prios=st.lists(st.integers(0, 255), min_size=1, max_size=4))
def test_template_writes_what_encode_writes(vrrp: ModuleType, f: Any, prios: list[int]) -> None:
    """A MASTER's prepared advert: any priority, same bytes and length as a full encode."""
    from dataclasses import replace

    t = vrrp.Template(
        f.version, f.vrid, f.adver_int, f.addresses, f.auth_type, f.auth_data, f.src, f.dst, f.pseudo_header
    )
    for prio in prios:
        want = vrrp.encode(*replace(f, priority=prio).encode_args())
        assert t.length == len(want)
        buf = bytearray(b"\xee" * (len(want) + 7))
        assert t.encode_into(buf, 3, prio) == len(want)
        assert bytes(buf[3 : 3 + len(want)]) == want
        assert buf[:3] == b"\xee" * 3 and buf[3 + len(want) :] == b"\xee" * 4
        assert t.encode(prio) == want


def test_template_errors_are_encodes(vrrp: ModuleType) -> None:
    t = vrrp.Template(2, 1, 1, VIP)
    for bad in (-1, 256):
        with pytest.raises(ValueError):
            t.encode_into(bytearray(64), 0, bad)
        with pytest.raises(ValueError):
            t.encode(bad)
    with pytest.raises(TypeError):
        t.encode_into(bytearray(64), 0, 1.5)
    with pytest.raises(ValueError):
        t.encode_into(bytearray(19), 0, 100)  # too small
    with pytest.raises(ValueError):
        t.encode_into(bytearray(100), 90, 100)
    with pytest.raises(ValueError):
        t.encode_into(bytearray(100), -1, 100)
    with pytest.raises(TypeError):
        t.encode_into(bytes(100), 0, 100)  # read-only
    assert t.encode_into(buf=bytearray(64), offset=0, priority=7) == t.length == 20
    # the constructor rejects what encode rejects
    for args, exc in [
        ((1, 1, 1, VIP), ValueError),
        ((2, 256, 1, VIP), ValueError),
        ((2, 1, 256, VIP), ValueError),
        ((2, 1, 1, VIP + b"\0"), ValueError),
        ((3, 1, 100, VIP), ValueError),  # v3 without src/dst
        ((2, 1, 1, "10.0.0.1"), TypeError),
    ]:
        with pytest.raises(exc):
            vrrp.Template(*args)
    assert "vrid=1" in repr(t) and "count=1" in repr(t)
