"""VRRP codec, pure-Python reference (the typed specification of ``fastka._vrrp``).

Same public API as the compiled module; ``fastka.vrrp.codec`` picks one. Wire formats:
RFC 3768 (VRRPv2, IPv4, 8-byte auth trailer, checksum over the message), RFC 5798 /
RFC 9568 (VRRPv3, IPv4 and IPv6, 12-bit centisecond interval, checksum with the IP
pseudo-header -- or without it for IPv4 in Keepalived's ``v3_checksum_as_v2`` mode),
RFC 2402 AH with HMAC-MD5-96 as Keepalived uses it for VRRPv2. Receive validation
follows Keepalived's ``vrrp_check_packet()`` order (behaviour.md V2).

Conventions shared by both implementations:

* Addresses travel *packed* (``bytes``: 4 bytes per IPv4 address, 16 per IPv6 address,
  concatenated in configuration order); ``Advert.address(i)`` / ``Advert.addresses``
  build ``ipaddress`` objects only when asked.
* ``auth_data`` is Keepalived's ``auth_pass`` (at most 8 bytes, zero-padded): the
  password on the wire for PASS, the HMAC key for AH (whose VRRP auth field is zero).
* Wrong *arguments* raise ``ValueError``/``TypeError``; wrong *bytes* raise only
  ``VrrpDecodeError(reason)``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import operator
import struct
from typing import Final

from fastka.errors import VrrpDecodeError
from fastka.vrrp.constants import (
    AF_INET,
    AF_INET6,
    FLAG_ADDRESS_MISMATCH,
    FLAG_ADVER_INT_DIFFERS,
    FLAG_AH,
    FLAG_AUTH_UNVERIFIED,
    FLAG_CHECKSUM_UNVERIFIED,
    FLAG_MULTICAST,
    FLAG_OLD_UNICAST_CHECKSUM,
    FLAG_UNCHANGED,
    IPPROTO_AH,
    IPPROTO_VRRP,
    VRRP_AUTH_AH,
    VRRP_AUTH_PASS,
    VRRP_MCAST_GROUP4_PACKED,
    VRRP_TOS,
    Reason,
)

BytesLike = bytes | bytearray | memoryview

__all__ = [
    "Advert",
    "Batch",
    "Expect",
    "Template",
    "VridTable",
    "decode",
    "decode_ipv4",
    "encode",
    "encode_into",
    "encode_ipv4",
    "encode_ipv4_into",
    "inet_checksum",
    "ipv4_header_into",
    "update_priority",
    "vrrp_checksum",
]

_REASONS: Final = {int(r): r for r in Reason}
# Ethernet frames are padded to 60 bytes (46 of IP); the kernel may hand the padding on.
_MIN_IP_PAYLOAD = 46


# --------------------------------------------------------------------------- helpers


def _int(value: int, lo: int, hi: int, name: str) -> int:
    v = operator.index(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} {v} out of range [{lo}, {hi}]")
    return v


def _bytes(value: BytesLike, name: str, lengths: tuple[int, ...]) -> bytes:
    b = bytes(memoryview(value).cast("B"))
    if len(b) not in lengths:
        raise ValueError(f"{name} must be {' or '.join(map(str, lengths))} bytes, not {len(b)}")
    return b


def _writable(buf: BytesLike, offset: int, length: int) -> memoryview:
    mv = memoryview(buf).cast("B")
    if mv.readonly:
        raise TypeError("buffer is read-only")
    off = operator.index(offset)
    if off < 0 or off + length > len(mv):
        raise ValueError(f"buffer too small: {length} bytes at offset {off} of {len(mv)}")
    return mv[off : off + length]


def _sum16(data: bytes) -> int:
    """RFC 1071: plain sum of the big-endian 16-bit words (odd length padded with zero)."""
    if len(data) & 1:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _pseudo(src: bytes, dst: bytes, length: int) -> bytes:
    if len(src) == 4:  # RFC 5798 §5.2.8 with the IPv4 pseudo-header of RFC 768
        return src + dst + struct.pack("!BBH", 0, IPPROTO_VRRP, length)
    return src + dst + struct.pack("!I3xB", length, IPPROTO_VRRP)  # RFC 8200 §8.1


def _is_multicast(addr: bytes) -> bool:
    return (addr[0] & 0xF0) == 0xE0 if len(addr) == 4 else addr[0] == 0xFF


def _src_dst(src: BytesLike, dst: BytesLike) -> tuple[bytes, bytes]:
    s = _bytes(src, "src", (0, 4, 16))
    d = _bytes(dst, "dst", (0, 4, 16))
    if s and d and len(s) != len(d):
        raise ValueError("src and dst must be of the same family")
    return s, d


# --------------------------------------------------------------------------- checksums


def inet_checksum(data: BytesLike) -> int:
    """RFC 1071 Internet checksum of ``data`` (the value to store; 0 over a valid whole)."""
    return ~_fold(_sum16(bytes(memoryview(data).cast("B")))) & 0xFFFF


def vrrp_checksum(msg: BytesLike, src: BytesLike = b"", dst: BytesLike = b"") -> int:
    """The checksum a VRRP message should carry; its own checksum field counts as zero.

    Without ``src``/``dst``: over the message only (VRRPv2, or v3 per RFC 9568 /
    ``v3_checksum_as_v2``). With both: over the IPv4 or IPv6 pseudo-header too (v3).
    """
    m = bytearray(memoryview(msg).cast("B"))
    if len(m) < 8:
        raise ValueError("a VRRP message has at least 8 bytes")
    m[6:8] = b"\0\0"
    s, d = _src_dst(src, dst)
    if bool(s) != bool(d):
        raise ValueError("give both src and dst, or neither")
    data = (_pseudo(s, d, len(m)) if s else b"") + bytes(m)
    return ~_fold(_sum16(data)) & 0xFFFF


def update_priority(buf: BytesLike, offset: int, priority: int) -> int:
    """Set the priority of the VRRP message at ``buf[offset:]`` and patch its checksum
    incrementally (RFC 1624 eqn. 3), as Keepalived does; returns the new checksum.

    Valid for v2 and v3 (the pseudo-header does not change). An AH ICV is not updated.
    """
    prio = _int(priority, 0, 255, "priority")
    m = _writable(buf, offset, 8)
    old_word = (m[2] << 8) | m[3]
    new_word = (prio << 8) | m[3]
    hc = (m[6] << 8) | m[7]
    total = _fold((~hc & 0xFFFF) + (~old_word & 0xFFFF) + new_word)
    csum = ~total & 0xFFFF
    m[2] = prio
    m[6] = csum >> 8
    m[7] = csum & 0xFF
    return csum


# --------------------------------------------------------------------------- encoding


def _message_len(version: int, addresses: bytes, alen: int) -> int:
    if len(addresses) % alen:
        raise ValueError(f"addresses must be a multiple of {alen} bytes, not {len(addresses)}")
    if len(addresses) // alen > 255:
        raise ValueError("at most 255 addresses fit in an advert")
    return 8 + len(addresses) + (8 if version == 2 else 0)


def _prepare(
    version: int,
    vrid: int,
    priority: int,
    adver_int: int,
    addresses: BytesLike,
    auth_type: int,
    auth_data: BytesLike,
    src: BytesLike,
    dst: BytesLike,
) -> tuple[int, int, int, int, bytes, int, bytes, bytes, bytes, int]:
    version = _int(version, 2, 3, "version")
    vrid = _int(vrid, 0, 255, "vrid")
    priority = _int(priority, 0, 255, "priority")
    addrs = bytes(memoryview(addresses).cast("B"))
    auth_type = _int(auth_type, 0, 255, "auth_type")
    auth = _bytes(auth_data, "auth_data", tuple(range(9)))
    s, d = _src_dst(src, dst)
    if version == 2:
        adver_int = _int(adver_int, 0, 255, "adver_int")
        if len(s) == 16 or len(d) == 16:
            raise ValueError("VRRPv2 is IPv4 only (RFC 3768)")
        alen = 4
    else:
        adver_int = _int(adver_int, 0, 0xFFF, "adver_int")
        if auth_type or auth:
            raise ValueError("VRRPv3 has no authentication (RFC 5798)")
        if not s or not d:
            raise ValueError("VRRPv3 needs src and dst (checksum pseudo-header, family)")
        alen = len(s)
    length = _message_len(version, addrs, alen)
    return version, vrid, priority, adver_int, addrs, auth_type, auth, s, d, length


def _write(
    m: memoryview,
    version: int,
    vrid: int,
    priority: int,
    adver_int: int,
    addrs: bytes,
    auth_type: int,
    auth: bytes,
    s: bytes,
    d: bytes,
    pseudo_header: bool,
) -> None:
    length = len(m)
    alen = 4 if version == 2 else len(s)
    count = len(addrs) // alen
    if version == 2:
        field = auth.ljust(8, b"\0") if auth_type == VRRP_AUTH_PASS else bytes(8)
        m[:] = struct.pack("!BBBBBBH", 0x21, vrid, priority, count, auth_type, adver_int, 0) + addrs + field
        csum = ~_fold(_sum16(bytes(m))) & 0xFFFF
    else:
        m[:] = struct.pack("!BBBBHH", 0x31, vrid, priority, count, adver_int, 0) + addrs
        pseudo = _pseudo(s, d, length) if (pseudo_header or alen == 16) else b""
        csum = ~_fold(_sum16(pseudo + bytes(m))) & 0xFFFF
    m[6] = csum >> 8
    m[7] = csum & 0xFF


def encode_into(
    buf: BytesLike,
    offset: int,
    version: int,
    vrid: int,
    priority: int,
    adver_int: int,
    addresses: BytesLike,
    auth_type: int = 0,
    auth_data: BytesLike = b"",
    src: BytesLike = b"",
    dst: BytesLike = b"",
    pseudo_header: bool = True,
) -> int:
    """Write one advertisement at ``buf[offset:]``; returns its length.

    ``adver_int`` is in seconds for v2 and centiseconds for v3. v2 is IPv4 only and needs
    no ``src``/``dst``. v3 needs both (4 or 16 bytes: they give the family and the
    checksum pseudo-header; ``dst`` is the unicast peer in unicast mode);
    ``pseudo_header=False`` is the RFC 9568 / ``v3_checksum_as_v2`` checksum (IPv4 only).
    """
    version, vrid, priority, adver_int, addrs, auth_type, auth, s, d, length = _prepare(
        version, vrid, priority, adver_int, addresses, auth_type, auth_data, src, dst
    )
    m = _writable(buf, offset, length)
    _write(m, version, vrid, priority, adver_int, addrs, auth_type, auth, s, d, bool(pseudo_header))
    return length


def encode(
    version: int,
    vrid: int,
    priority: int,
    adver_int: int,
    addresses: BytesLike,
    auth_type: int = 0,
    auth_data: BytesLike = b"",
    src: BytesLike = b"",
    dst: BytesLike = b"",
    pseudo_header: bool = True,
) -> bytes:
    """``encode_into`` returning a new ``bytes``."""
    version, vrid, priority, adver_int, addrs, auth_type, auth, s, d, length = _prepare(
        version, vrid, priority, adver_int, addresses, auth_type, auth_data, src, dst
    )
    out = bytearray(length)
    _write(
        memoryview(out), version, vrid, priority, adver_int, addrs, auth_type, auth, s, d, bool(pseudo_header)
    )
    return bytes(out)


class Template:
    """An advertisement prepared once and written with any priority: a MASTER's steady
    state, whose adverts change only when its priority does.

    The constructor takes ``encode``'s fields but the priority, and raises what
    ``encode`` raises for them. ``encode_into(buf, offset, priority)`` writes exactly what
    ``encode_into(buf, offset, version, vrid, priority, adver_int, addresses, ...)`` would
    (same bytes, same length, same errors for the priority and the buffer), without
    checking and packing the fields again.
    """

    __slots__ = ("_fields", "_length")

    def __init__(
        self,
        version: int,
        vrid: int,
        adver_int: int,
        addresses: BytesLike,
        auth_type: int = 0,
        auth_data: BytesLike = b"",
        src: BytesLike = b"",
        dst: BytesLike = b"",
        pseudo_header: bool = True,
    ) -> None:
        version, vrid, _, adver_int, addrs, auth_type, auth, s, d, length = _prepare(
            version, vrid, 0, adver_int, addresses, auth_type, auth_data, src, dst
        )
        self._fields = (version, vrid, adver_int, addrs, auth_type, auth, s, d, bool(pseudo_header))
        self._length = length

    @property
    def length(self) -> int:
        """The advert's length in bytes."""
        return self._length

    def encode_into(self, buf: BytesLike, offset: int, priority: int) -> int:
        """Write the advert with ``priority`` at ``buf[offset:]``; returns its length."""
        prio = _int(priority, 0, 255, "priority")
        m = _writable(buf, offset, self._length)
        version, vrid, adver_int, addrs, auth_type, auth, s, d, pseudo = self._fields
        _write(m, version, vrid, prio, adver_int, addrs, auth_type, auth, s, d, pseudo)
        return self._length

    def encode(self, priority: int) -> bytes:
        """``encode_into`` returning a new ``bytes``."""
        out = bytearray(self._length)
        self.encode_into(out, 0, priority)
        return bytes(out)

    def __repr__(self) -> str:
        version, vrid, _, addrs, *_rest = self._fields
        count = len(addrs) // (4 if version == 2 else len(self._fields[6]))
        return f"<Template v{version} vrid={vrid} count={count} length={self._length}>"


def _ipv4_header(
    m: memoryview, src: bytes, dst: bytes, ttl: int, ident: int, protocol: int, total: int
) -> None:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, VRRP_TOS, total, ident, 0, ttl, protocol, 0, src, dst))
    csum = inet_checksum(hdr)
    hdr[10] = csum >> 8
    hdr[11] = csum & 0xFF
    m[:20] = hdr


def ipv4_header_into(
    buf: BytesLike,
    offset: int,
    src: BytesLike,
    dst: BytesLike,
    ttl: int,
    ident: int,
    protocol: int,
    payload_len: int,
) -> int:
    """Write the 20-byte IPv4 header Keepalived sends (TOS 0xc0, DF clear, no options,
    header checksum) at ``buf[offset:]``, for a raw socket with ``IP_HDRINCL``; returns 20."""
    s = _bytes(src, "src", (4,))
    d = _bytes(dst, "dst", (4,))
    ttl = _int(ttl, 0, 255, "ttl")
    ident = _int(ident, 0, 0xFFFF, "ident")
    protocol = _int(protocol, 0, 255, "protocol")
    payload_len = _int(payload_len, 0, 0xFFFF - 20, "payload_len")
    _ipv4_header(_writable(buf, offset, 20), s, d, ttl, ident, protocol, 20 + payload_len)
    return 20


def _hmac_md5_96(key: BytesLike, data: BytesLike) -> bytes:
    """HMAC-MD5 truncated to 96 bits (RFC 2403), the AH ICV (keys of at most one block)."""
    k = bytes(memoryview(key).cast("B"))
    if len(k) > 64:
        raise ValueError("keys longer than one MD5 block are not supported")
    return hmac.new(k, bytes(memoryview(data).cast("B")), hashlib.md5).digest()[:12]


def _ah_icv(pkt: bytes, ihl: int, key: bytes) -> bytes:
    """ICV over the IPv4 header with its mutable fields zeroed (TOS, flags/fragment,
    checksum; TTL too for unicast, as Keepalived), the AH header with a zero ICV, and the
    VRRP message (RFC 2402 §3.3.3.1)."""
    hdr = bytearray(pkt[:ihl])
    hdr[1] = 0
    hdr[6:8] = b"\0\0"
    hdr[10:12] = b"\0\0"
    if not _is_multicast(bytes(hdr[16:20])):
        hdr[8] = 0
    ah = bytearray(pkt[ihl : ihl + 24])
    ah[12:24] = bytes(12)
    return _hmac_md5_96(key, bytes(hdr) + bytes(ah) + pkt[ihl + 24 :])


def encode_ipv4_into(
    buf: BytesLike,
    offset: int,
    version: int,
    vrid: int,
    priority: int,
    adver_int: int,
    addresses: BytesLike,
    auth_type: int,
    auth_data: BytesLike,
    src: BytesLike,
    dst: BytesLike,
    ttl: int = 255,
    ident: int = 1,
    ah_seq: int = 1,
    pseudo_header: bool = True,
) -> int:
    """A whole IPv4 packet as Keepalived sends it: IPv4 header (protocol 112, or 51 with
    ``auth_type`` AH), the RFC 2402 AH header for AH (SPI = ``src``, sequence
    ``ah_seq``, HMAC-MD5-96 keyed with ``auth_data``), then the advert. Returns its length."""
    s = _bytes(src, "src", (4,))
    d = _bytes(dst, "dst", (4,))
    ttl = _int(ttl, 0, 255, "ttl")
    ident = _int(ident, 0, 0xFFFF, "ident")
    seq = _int(ah_seq, 0, 0xFFFFFFFF, "ah_seq")
    version, vrid, priority, adver_int, addrs, auth_type, auth, s, d, length = _prepare(
        version, vrid, priority, adver_int, addresses, auth_type, auth_data, s, d
    )
    ah = version == 2 and auth_type == VRRP_AUTH_AH
    hlen = 20 + (24 if ah else 0)
    total = hlen + length
    m = _writable(buf, offset, total)
    _ipv4_header(m, s, d, ttl, ident, IPPROTO_AH if ah else IPPROTO_VRRP, total)
    _write(m[hlen:], version, vrid, priority, adver_int, addrs, auth_type, auth, s, d, bool(pseudo_header))
    if ah:
        m[20:44] = struct.pack("!BBH4sI12x", IPPROTO_VRRP, 4, 0, s, seq)
        m[32:44] = _ah_icv(bytes(m), 20, auth)
    return total


def encode_ipv4(
    version: int,
    vrid: int,
    priority: int,
    adver_int: int,
    addresses: BytesLike,
    auth_type: int,
    auth_data: BytesLike,
    src: BytesLike,
    dst: BytesLike,
    ttl: int = 255,
    ident: int = 1,
    ah_seq: int = 1,
    pseudo_header: bool = True,
) -> bytes:
    """``encode_ipv4_into`` returning a new ``bytes``."""
    buf = bytearray(20 + 24 + 16 + 255 * 4)
    n = encode_ipv4_into(
        buf,
        0,
        version,
        vrid,
        priority,
        adver_int,
        addresses,
        auth_type,
        auth_data,
        src,
        dst,
        ttl,
        ident,
        ah_seq,
        pseudo_header,
    )
    return bytes(buf[:n])


# --------------------------------------------------------------------------- receiving


class Expect:
    """What one VRRP instance accepts (behaviour.md V2); built once, checked per packet.

    ``version`` 0, ``auth_type`` -1 and ``adver_int`` 0 mean "not checked";
    ``unicast`` None means unknown (TTL is then checked unless the destination is known
    to be unicast, and the destination kind is not checked). ``v3_checksum_as_v2``: the
    v3 checksum is not verified at all (Keepalived's receiver in that mode).
    ``old_unicast_checksum``: a v3 unicast checksum computed with 224.0.0.18 as the
    pseudo-header destination (Keepalived < 1.3.6) is accepted and flagged.
    ``addresses`` (packed): count and every address must appear in the advert; a
    mismatch is flagged, or refused with ``strict_addresses`` (Keepalived 2.2.7).
    ``ah_last_seq``: last accepted AH sequence number (-1: none yet); a packet must carry
    a greater one, and accepting it stores its number here.
    An ``Expect`` also remembers the last packet it accepted (without AH), to flag an
    identical successor ``FLAG_UNCHANGED`` -- which lets the compiled batch path accept
    it without running the checks again.
    """

    __slots__ = (
        "_addresses",
        "_adver_int",
        "_ah_last_seq",
        "_auth_data",
        "_auth_type",
        "_last_sig",
        "_old_unicast_checksum",
        "_strict_addresses",
        "_unicast",
        "_v3_checksum_as_v2",
        "_version",
    )

    def __init__(
        self,
        version: int = 0,
        *,
        auth_type: int = -1,
        auth_data: BytesLike = b"",
        adver_int: int = 0,
        unicast: bool | None = None,
        v3_checksum_as_v2: bool = False,
        old_unicast_checksum: bool = True,
        addresses: BytesLike | None = None,
        strict_addresses: bool = False,
    ) -> None:
        version = _int(version, 0, 3, "version")
        if version == 1:
            raise ValueError("version must be 0 (any), 2 or 3")
        self._version = version
        self._auth_type = _int(auth_type, -1, 2, "auth_type")
        self._auth_data = _bytes(auth_data, "auth_data", tuple(range(9))).ljust(8, b"\0")
        self._adver_int = _int(adver_int, 0, 0xFFF, "adver_int")
        self._unicast = None if unicast is None else bool(unicast)
        self._v3_checksum_as_v2 = bool(v3_checksum_as_v2)
        self._old_unicast_checksum = bool(old_unicast_checksum)
        if addresses is None:
            self._addresses: bytes | None = None
        else:
            a = bytes(memoryview(addresses).cast("B"))
            if len(a) % 4 or len(a) > 255 * 16:
                raise ValueError("addresses must be packed IPv4 (4 bytes each) or IPv6 (16 bytes each)")
            self._addresses = a
        self._strict_addresses = bool(strict_addresses)
        self._ah_last_seq = -1
        self._last_sig: bytes | None = None

    @property
    def version(self) -> int:
        """2, 3, or 0 for any."""
        return self._version

    @property
    def auth_type(self) -> int:
        """0 none, 1 PASS, 2 AH; -1 not checked."""
        return self._auth_type

    @property
    def auth_data(self) -> bytes:
        """The 8-byte ``auth_pass`` (zero-padded)."""
        return self._auth_data

    @property
    def adver_int(self) -> int:
        """Seconds (v2) / centiseconds (v3); 0 not checked."""
        return self._adver_int

    @property
    def unicast(self) -> bool | None:
        """Unicast instance (None: unknown)."""
        return self._unicast

    @property
    def v3_checksum_as_v2(self) -> bool:
        return self._v3_checksum_as_v2

    @property
    def old_unicast_checksum(self) -> bool:
        return self._old_unicast_checksum

    @property
    def addresses(self) -> bytes | None:
        """Packed expected addresses, or None (not checked)."""
        return self._addresses

    @property
    def strict_addresses(self) -> bool:
        return self._strict_addresses

    @property
    def ah_last_seq(self) -> int:
        """Last accepted AH sequence number, -1 before the first (the router may resync it)."""
        return self._ah_last_seq

    @ah_last_seq.setter
    def ah_last_seq(self, value: int) -> None:
        self._ah_last_seq = _int(value, -1, 0xFFFFFFFF, "ah_last_seq")

    def __repr__(self) -> str:
        return (
            f"Expect(version={self._version}, auth_type={self._auth_type}, adver_int={self._adver_int}, "
            f"unicast={self._unicast}, ah_last_seq={self._ah_last_seq})"
        )


_ANY: Final = Expect()


class Advert:
    """A received advertisement that passed validation. Fields are plain ints; the
    address list stays packed until ``address(i)`` / ``addresses`` is asked for."""

    __slots__ = (
        "_dst",
        "_msg",
        "_src",
        "adver_int",
        "ah_seq",
        "auth_type",
        "checksum",
        "count",
        "family",
        "flags",
        "priority",
        "ttl",
        "type",
        "version",
        "vrid",
    )

    version: int
    type: int
    vrid: int
    priority: int
    count: int
    auth_type: int
    adver_int: int
    checksum: int
    family: int
    ttl: int
    flags: int
    ah_seq: int
    _msg: bytes
    _src: bytes
    _dst: bytes

    def __init__(self) -> None:
        raise TypeError("Advert objects come from decode(), decode_ipv4() or Batch.advert()")

    @property
    def length(self) -> int:
        """Length of the VRRP message in bytes."""
        return len(self._msg)

    @property
    def message(self) -> bytes:
        """The VRRP message (no IP header, no padding)."""
        return self._msg

    @property
    def auth_data(self) -> bytes:
        """v2: the 8-byte authentication field; v3: ``b""``."""
        return self._msg[-8:] if self.version == 2 else b""

    @property
    def src(self) -> bytes:
        """Packed source address (4 or 16 bytes), ``b""`` if unknown."""
        return self._src

    @property
    def dst(self) -> bytes:
        """Packed destination address, ``b""`` if unknown."""
        return self._dst

    @property
    def addresses_packed(self) -> bytes:
        alen = 4 if self.family == AF_INET else 16
        return self._msg[8 : 8 + alen * self.count]

    def address(self, i: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The ``i``-th address (0-based, advert order)."""
        i = operator.index(i)
        if not 0 <= i < self.count:
            raise IndexError("address index out of range")
        if self.family == AF_INET:
            return ipaddress.IPv4Address(self._msg[8 + 4 * i : 12 + 4 * i])
        return ipaddress.IPv6Address(self._msg[8 + 16 * i : 24 + 16 * i])

    @property
    def addresses(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
        return tuple(self.address(i) for i in range(self.count))

    def as_dict(self) -> dict[str, object]:
        """Every field, addresses as strings (tests, dumps)."""
        return {
            "version": self.version,
            "type": self.type,
            "vrid": self.vrid,
            "priority": self.priority,
            "count": self.count,
            "auth_type": self.auth_type,
            "adver_int": self.adver_int,
            "checksum": self.checksum,
            "auth_data": self.auth_data,
            "family": self.family,
            "ttl": self.ttl,
            "flags": self.flags,
            "ah_seq": self.ah_seq,
            "src": self._src,
            "dst": self._dst,
            "addresses": [str(a) for a in self.addresses],
            "message": self._msg,
        }

    def __repr__(self) -> str:
        return (
            f"<Advert v{self.version} vrid={self.vrid} priority={self.priority} "
            f"adver_int={self.adver_int} count={self.count} auth_type={self.auth_type}>"
        )


class _Info:
    """What the checks learn about one packet (the reference's ``vrrp_info``)."""

    __slots__ = ("ah_seq", "flags", "msg_len", "msg_off")

    def __init__(self) -> None:
        self.msg_off = 0
        self.msg_len = 0
        self.flags = 0
        self.ah_seq = -1


def _parse_ipv4(p: bytes) -> tuple[int, int, int, int, int]:
    """Dispatcher-level parse of a raw IPv4 packet: (reason, ihl, ah offset or -1,
    VRRP offset, length after Ethernet padding is trimmed)."""
    n = len(p)
    if n < 20:
        return Reason.TOO_SHORT, 0, -1, 0, n
    ihl = (p[0] & 0x0F) * 4
    if p[0] >> 4 != 4 or ihl < 20 or ihl > n:
        return Reason.BAD_IP_HEADER, 0, -1, 0, n
    proto = p[9]
    if proto == IPPROTO_AH:
        ah, mo = ihl, ihl + 24
    elif proto == IPPROTO_VRRP:
        ah, mo = -1, ihl
    else:
        return Reason.BAD_IP_PROTOCOL, 0, -1, 0, n
    if n < mo + 8:
        return Reason.TOO_SHORT, 0, -1, 0, n
    tot_len = (p[2] << 8) | p[3]
    ip_len = tot_len if (mo + 8 <= tot_len < n <= _MIN_IP_PAYLOAD) else n
    return 0, ihl, ah, mo, ip_len


def _signature(p: bytes, ihl: int, mo: int, end: int, src: bytes, dst: bytes, ttl: int) -> bytes:
    """What must not change for an advert to count as unchanged: with an IPv4 header,
    all of it but the ID, fragment and checksum fields; without, TTL, addresses, message."""
    if ihl:
        return p[0:4] + p[8:10] + p[12:end]
    return bytes((0, len(src), len(dst))) + (ttl & 0xFFFF).to_bytes(2, "big") + src + dst + p[mo:end]


def _check(
    p: bytes,
    ihl: int,
    ah: int,
    mo: int,
    end: int,
    family: int,
    src: bytes,
    dst: bytes,
    ttl: int,
    e: Expect,
    track: bool,
    out: _Info,
) -> int:
    """The instance checks of ``vrrp_check_packet()``, in order. ``ihl`` is 0 when there is
    no IPv4 header; ``p[mo:end]`` is the VRRP message as received."""
    ver = p[mo] >> 4
    vtype = p[mo] & 0x0F
    count = p[mo + 3]
    avail = end - mo
    flags = 0
    mcast: bool | None = _is_multicast(dst) if dst else None
    if mcast:
        flags |= FLAG_MULTICAST
    unicast = e._unicast
    # IPv6: the dispatcher drops the wrong kind of destination before any check
    if family == AF_INET6 and mcast is not None and unicast is not None and mcast == unicast:
        return Reason.EXPECTED_UNICAST if unicast else Reason.EXPECTED_MULTICAST
    # 1. AH header present iff auth type AH (IPv4 with header only)
    if ihl:
        want = e._auth_type if e._auth_type >= 0 else (p[mo + 4] if ver == 2 else 0)
        if ah >= 0 and want != VRRP_AUTH_AH:
            return Reason.AH_UNEXPECTED
        if ah < 0 and want == VRRP_AUTH_AH:
            return Reason.AH_MISSING
    # 2. length against the address count (the instance's version decides the layout)
    v = e._version or ver
    alen = 4 if family == AF_INET else 16
    length = 8 + alen * count + (8 if v == 2 else 0)
    if avail != length:
        return Reason.BAD_LENGTH
    # 3. TTL / hop limit 255, multicast only
    if ttl >= 0 and ttl != 255 and (not unicast if unicast is not None else mcast is not False):
        return Reason.BAD_TTL
    # 4. version
    if (e._version and ver != e._version) or ver not in (2, 3) or (ver == 2 and family == AF_INET6):
        return Reason.BAD_VERSION
    seq = -1
    if ver == 2:
        at = p[mo + 4]
        if at > VRRP_AUTH_AH:  # 6
            return Reason.BAD_AUTH_TYPE
        if e._auth_type >= 0 and at != e._auth_type:  # 7
            return Reason.AUTH_TYPE_MISMATCH
        if at == VRRP_AUTH_PASS:  # 8
            if e._auth_type == VRRP_AUTH_PASS:
                if not hmac.compare_digest(p[end - 8 : end], e._auth_data):
                    return Reason.AUTH_DATA_MISMATCH
            else:
                flags |= FLAG_AUTH_UNVERIFIED
        elif at == VRRP_AUTH_AH and ah >= 0:  # 9
            if p[ah] != IPPROTO_VRRP or p[ah + 1] != 4:
                return Reason.BAD_AH_HEADER
            if e._auth_type == VRRP_AUTH_AH:
                if not hmac.compare_digest(_ah_icv(p[:end], ihl, e._auth_data), p[ah + 12 : ah + 24]):
                    return Reason.BAD_AH_ICV
            else:
                flags |= FLAG_AUTH_UNVERIFIED
            if p[ah + 4 : ah + 8] != p[12:16]:
                return Reason.BAD_AH_SPI
            seq = int.from_bytes(p[ah + 8 : ah + 12], "big")
            if seq <= e._ah_last_seq:
                return Reason.AH_SEQUENCE
        elif at == VRRP_AUTH_AH:  # a VRRP message given without its IP header: AH unseen
            flags |= FLAG_AUTH_UNVERIFIED
        if e._adver_int and p[mo + 5] != e._adver_int:  # 10
            return Reason.ADVER_INT_MISMATCH
    # 11. type
    if vtype != 1:
        return Reason.BAD_TYPE
    # 12. IPv4 total length against what arrived
    if ihl and ((p[2] << 8) | p[3]) != end:
        return Reason.BAD_IP_TOTAL_LENGTH
    # 13. v3 interval: accepted, flagged (RFC 5798 learns Master_Adver_Interval)
    if ver == 3 and e._adver_int and (((p[mo + 4] & 0x0F) << 8) | p[mo + 5]) != e._adver_int:
        flags |= FLAG_ADVER_INT_DIFFERS
    # 14. checksum
    msg = p[mo:end]
    if ver == 2:
        if _fold(_sum16(msg)) != 0xFFFF:
            return Reason.BAD_CHECKSUM
    elif e._v3_checksum_as_v2 or not (src and dst):
        flags |= FLAG_CHECKSUM_UNVERIFIED
    elif _fold(_sum16(_pseudo(src, dst, length) + msg)) != 0xFFFF:
        if (
            family == AF_INET
            and mcast is False
            and e._old_unicast_checksum
            and _fold(_sum16(_pseudo(src, VRRP_MCAST_GROUP4_PACKED, length) + msg)) == 0xFFFF
        ):
            flags |= FLAG_OLD_UNICAST_CHECKSUM
        else:
            return Reason.BAD_CHECKSUM
    # 15. destination kind (IPv4; IPv6 was done by the dispatcher above)
    if family == AF_INET and mcast is not None and unicast is not None and mcast == unicast:
        return Reason.EXPECTED_UNICAST if unicast else Reason.EXPECTED_MULTICAST
    # 17. address list
    want_addrs = e._addresses
    if want_addrs is not None:
        got = {msg[8 + i : 8 + i + alen] for i in range(0, alen * count, alen)}
        ok = len(want_addrs) == alen * count and all(
            want_addrs[i : i + alen] in got for i in range(0, len(want_addrs), alen)
        )
        if not ok:
            if e._strict_addresses:
                return Reason.ADDRESS_MISMATCH
            flags |= FLAG_ADDRESS_MISMATCH
    if ah >= 0:
        flags |= FLAG_AH
        if track:
            e._ah_last_seq = seq
    elif track:
        sig = _signature(p, ihl, mo, end, src, dst, ttl)
        if sig == e._last_sig:
            flags |= FLAG_UNCHANGED
        else:
            e._last_sig = sig
    out.msg_off = mo
    out.msg_len = length
    out.flags = flags
    out.ah_seq = seq
    return 0


def _advert(p: bytes, info: _Info, family: int, src: bytes, dst: bytes, ttl: int) -> Advert:
    a = object.__new__(Advert)
    mo = info.msg_off
    msg = p[mo : mo + info.msg_len]
    a._msg = msg
    a.version = msg[0] >> 4
    a.type = msg[0] & 0x0F
    a.vrid = msg[1]
    a.priority = msg[2]
    a.count = msg[3]
    if a.version == 2:
        a.auth_type = msg[4]
        a.adver_int = msg[5]
    else:
        a.auth_type = 0
        a.adver_int = ((msg[4] & 0x0F) << 8) | msg[5]
    a.checksum = (msg[6] << 8) | msg[7]
    a.family = family
    a.ttl = ttl
    a.flags = info.flags
    a.ah_seq = info.ah_seq
    a._src = src
    a._dst = dst
    return a


def _expect_arg(expect: object) -> None:
    if expect is not None and not isinstance(expect, Expect):
        raise TypeError("expect must be an Expect or None")


def _fail(code: int) -> VrrpDecodeError:
    return VrrpDecodeError(_REASONS[code])


def decode(
    data: BytesLike, src: BytesLike = b"", dst: BytesLike = b"", ttl: int = -1, expect: Expect | None = None
) -> Advert:
    """Validate and decode a VRRP message without IP header (an IPv6 raw socket's payload,
    or an IPv4 payload). ``src``/``dst`` (packed, from the header or ``IPV6_PKTINFO``) set
    the family and the v3 pseudo-header; ``ttl`` is the TTL / hop limit (-1: unknown).
    Raises ``VrrpDecodeError`` for any invalid input."""
    _expect_arg(expect)
    p = bytes(memoryview(data).cast("B"))
    s, d = _src_dst(src, dst)
    ttl = _int(ttl, -1, 255, "ttl")
    if len(p) < 8:
        raise _fail(Reason.TOO_SHORT)
    if s:
        family = AF_INET if len(s) == 4 else AF_INET6
    elif d:
        family = AF_INET if len(d) == 4 else AF_INET6
    elif p[0] >> 4 != 3 or len(p) != 8 + 16 * p[3] or not p[3]:
        family = AF_INET
    else:
        family = AF_INET6
    e = _ANY if expect is None else expect
    info = _Info()
    code = _check(p, 0, -1, 0, len(p), family, s, d, ttl, e, expect is not None, info)
    if code:
        raise _fail(code)
    return _advert(p, info, family, s, d, ttl)


def decode_ipv4(packet: BytesLike, expect: Expect | None = None) -> Advert:
    """Validate and decode a whole IPv4 packet as a raw socket returns it (IP header, AH
    when protocol 51, VRRP). TTL, source and destination come from the header."""
    _expect_arg(expect)
    p = bytes(memoryview(packet).cast("B"))
    code, ihl, ah, mo, end = _parse_ipv4(p)
    if code:
        raise _fail(code)
    e = _ANY if expect is None else expect
    info = _Info()
    src, dst, ttl = p[12:16], p[16:20], p[8]
    code = _check(p, ihl, ah, mo, end, AF_INET, src, dst, ttl, e, expect is not None, info)
    if code:
        raise _fail(code)
    return _advert(p, info, AF_INET, src, dst, ttl)


class Batch:
    """Preallocated buffers for validating many packets in one call (one ``recvmmsg``).

    Inputs: packet ``i`` is ``buffer[i*slot_size : i*slot_size + length[i]]``; for
    ``family`` AF_INET6 also ``src``/``dst`` (16 bytes per packet, from the source address
    and ``IPV6_PKTINFO``) and ``hoplimit`` (``IPV6_HOPLIMIT``, -1 unknown). AF_INET packets
    include their IP header, and ``src``/``dst``/``hoplimit`` are outputs taken from it.
    Outputs of ``VridTable.validate``: ``status`` (0 = accepted, else a ``Reason``),
    ``vrid``, ``priority``, ``adver_int``, ``flags``. All are writable memoryviews; the
    compiled module's C code reads and writes the same memory without any Python object.
    """

    def __init__(self, capacity: int = 64, slot_size: int = 2048, family: int = AF_INET) -> None:
        self._capacity = _int(capacity, 1, 1 << 20, "capacity")
        self._slot_size = _int(slot_size, 8, 65535, "slot_size")
        if family not in (AF_INET, AF_INET6):
            raise ValueError("family must be AF_INET or AF_INET6")
        self._family = int(family)
        n = self._capacity
        self._buffer = bytearray(n * self._slot_size)
        self.buffer = memoryview(self._buffer)
        self.length = memoryview(bytearray(4 * n)).cast("I")
        self.hoplimit = memoryview(bytearray(2 * n)).cast("h")
        self.src = memoryview(bytearray(16 * n))
        self.dst = memoryview(bytearray(16 * n))
        self.status = memoryview(bytearray(n))
        self.vrid = memoryview(bytearray(n))
        self.priority = memoryview(bytearray(n))
        self.flags = memoryview(bytearray(n))
        self.adver_int = memoryview(bytearray(2 * n)).cast("H")

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def slot_size(self) -> int:
        return self._slot_size

    @property
    def family(self) -> int:
        return self._family

    def slot(self, i: int) -> memoryview:
        """Writable view of slot ``i`` (a ``recv_into`` target)."""
        i = _int(i, 0, self._capacity - 1, "slot")
        return self.buffer[i * self._slot_size : (i + 1) * self._slot_size]

    def set(
        self, i: int, data: BytesLike, src: BytesLike = b"", dst: BytesLike = b"", hoplimit: int = -1
    ) -> None:
        """Copy one received packet (and, for IPv6, its metadata) into slot ``i``."""
        i = _int(i, 0, self._capacity - 1, "slot")
        d = bytes(memoryview(data).cast("B"))
        if len(d) > self._slot_size:
            raise ValueError(f"packet of {len(d)} bytes does not fit a {self._slot_size}-byte slot")
        s16 = bytes(memoryview(src).cast("B")).ljust(16, b"\0")[:16]
        d16 = bytes(memoryview(dst).cast("B")).ljust(16, b"\0")[:16]
        off = i * self._slot_size
        self.buffer[off : off + len(d)] = d
        self.length[i] = len(d)
        self.src[16 * i : 16 * i + 16] = s16
        self.dst[16 * i : 16 * i + 16] = d16
        self.hoplimit[i] = _int(hoplimit, -1, 255, "hoplimit")

    def source(self, i: int) -> bytes:
        """Packed source address of packet ``i`` (4 or 16 bytes)."""
        i = _int(i, 0, self._capacity - 1, "slot")
        alen = 4 if self._family == AF_INET else 16
        return bytes(self.src[16 * i : 16 * i + alen])

    def advert(self, i: int, expect: Expect | None = None) -> Advert:
        """Decode packet ``i`` into an ``Advert`` (the slow path, when something changed)."""
        _expect_arg(expect)
        i = _int(i, 0, self._capacity - 1, "slot")
        off = i * self._slot_size
        pkt = self.buffer[off : off + min(self.length[i], self._slot_size)]
        if self._family == AF_INET:
            return decode_ipv4(pkt, expect)
        return decode(
            pkt, self.src[16 * i : 16 * i + 16], self.dst[16 * i : 16 * i + 16], self.hoplimit[i], expect
        )


class VridTable:
    """The instances sharing one receive socket, by VRID (Keepalived's socket pool)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[Expect | None] = [None] * 256

    def __setitem__(self, vrid: int, expect: Expect) -> None:
        if not isinstance(expect, Expect):
            raise TypeError("VridTable values are Expect objects")
        self._entries[_int(vrid, 0, 255, "vrid")] = expect

    def __getitem__(self, vrid: int) -> Expect:
        e = self._entries[_int(vrid, 0, 255, "vrid")]
        if e is None:
            raise KeyError(vrid)
        return e

    def __delitem__(self, vrid: int) -> None:
        v = _int(vrid, 0, 255, "vrid")
        if self._entries[v] is None:
            raise KeyError(vrid)
        self._entries[v] = None

    def __contains__(self, vrid: object) -> bool:
        return isinstance(vrid, int) and 0 <= vrid <= 255 and self._entries[vrid] is not None

    def __len__(self) -> int:
        return sum(e is not None for e in self._entries)

    def validate(self, batch: Batch, count: int) -> int:
        """Validate packets ``0..count-1`` of ``batch`` against the instance of each one's
        VRID; fills ``batch.status`` & co. and returns how many were accepted."""
        if not isinstance(batch, Batch):
            raise TypeError("batch must be a Batch")
        n = _int(count, 0, batch.capacity, "count")
        ipv4 = batch.family == AF_INET
        slot = batch.slot_size
        buf = batch.buffer
        info = _Info()
        accepted = 0
        for i in range(n):
            off = i * slot
            p = bytes(buf[off : off + min(batch.length[i], slot)])
            batch.vrid[i] = batch.priority[i] = batch.flags[i] = 0
            batch.adver_int[i] = 0
            if ipv4:
                code, ihl, ah, mo, end = _parse_ipv4(p)
                if not code:
                    src, dst, ttl = p[12:16], p[16:20], p[8]
                    batch.src[16 * i : 16 * i + 4] = src
                    batch.dst[16 * i : 16 * i + 4] = dst
                    batch.hoplimit[i] = ttl
            else:
                ihl, ah, mo, end = 0, -1, 0, len(p)
                code = Reason.TOO_SHORT if len(p) < 8 else 0
                src = bytes(batch.src[16 * i : 16 * i + 16])
                dst = bytes(batch.dst[16 * i : 16 * i + 16])
                ttl = batch.hoplimit[i]
            if not code:
                batch.vrid[i] = p[mo + 1]
                e = self._entries[p[mo + 1]]
                if e is None:
                    code = Reason.UNKNOWN_VRID
                else:
                    family = AF_INET if ipv4 else AF_INET6
                    code = _check(p, ihl, ah, mo, end, family, src, dst, ttl, e, True, info)
                    if not code:
                        accepted += 1
                        batch.priority[i] = p[mo + 2]
                        v3 = p[mo] >> 4 == 3
                        batch.adver_int[i] = (((p[mo + 4] & 0x0F) << 8) | p[mo + 5]) if v3 else p[mo + 5]
                        batch.flags[i] = info.flags
            batch.status[i] = code
        return accepted
