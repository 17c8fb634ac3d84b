"""The VRRP codec: one API, two implementations.

``fastka._vrrp`` (compiled) is used unless ``FASTKA_NO_EXTENSIONS=1`` selects the
pure-Python reference ``fastka._vrrp_py``; type checkers always see the reference, which
is the typed specification. Constants and the ``Reason`` enum live in
``fastka.vrrp.constants`` (both implementations import them, so they cannot live here
without an import cycle) and are re-exported.

Sending (MASTER)::

    n = encode_ipv4_into(buf, 0, 2, vrid, prio, 1, vips, VRRP_AUTH_NONE, b"", src, group, 255, ip_id)
    # raw IPv4 socket with IP_HDRINCL: send buf[:n]; IPv6: encode_into(..., src, dst), kernel adds the header
    advert = Template(3, vrid, 100, vips, src=src, dst=group)   # prepared once: only the priority varies
    n = advert.encode_into(buf, 0, prio)

Receiving (BACKUP), one packet::

    advert = decode_ipv4(packet, expect)           # IPv4 raw socket: IP header included
    advert = decode(payload, src, dst, hoplimit, expect)   # IPv6: from the ancillary data

Receiving, a batch (one ``recvmmsg``), no Python object per packet::

    table = VridTable(); table[vrid] = expect
    batch = Batch(64)                              # recvmmsg into batch.slot(i), set batch.length[i]
    table.validate(batch, n)                       # batch.status[i] == ACCEPTED, batch.priority[i] ...
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from fastka._compat import USE_EXTENSIONS
from fastka.vrrp.constants import (
    ACCEPTED,
    AF_INET,
    AF_INET6,
    AH_HEADER_LEN,
    AH_ICV_LEN,
    DROP_REASONS,
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
    IPV4_HEADER_LEN,
    VRRP_AUTH_AH,
    VRRP_AUTH_DATA_LEN,
    VRRP_AUTH_NONE,
    VRRP_AUTH_PASS,
    VRRP_HEADER_LEN,
    VRRP_MAX_ADDRESSES,
    VRRP_MCAST_GROUP4,
    VRRP_MCAST_GROUP4_PACKED,
    VRRP_MCAST_GROUP6,
    VRRP_MCAST_GROUP6_PACKED,
    VRRP_PRIO_OWNER,
    VRRP_PRIO_STOP,
    VRRP_TOS,
    VRRP_TTL,
    VRRP_TYPE_ADVERTISEMENT,
    VRRP_V3_MAX_ADVER_INT,
    VRRP_VERSION_2,
    VRRP_VERSION_3,
    Reason,
)

if TYPE_CHECKING:
    from fastka._vrrp_py import (
        Advert,
        Batch,
        Expect,
        Template,
        VridTable,
        decode,
        decode_ipv4,
        encode,
        encode_into,
        encode_ipv4,
        encode_ipv4_into,
        inet_checksum,
        ipv4_header_into,
        update_priority,
        vrrp_checksum,
    )
elif USE_EXTENSIONS:
    from fastka._vrrp import (
        Advert,
        Batch,
        Expect,
        Template,
        VridTable,
        decode,
        decode_ipv4,
        encode,
        encode_into,
        encode_ipv4,
        encode_ipv4_into,
        inet_checksum,
        ipv4_header_into,
        update_priority,
        vrrp_checksum,
    )
else:
    from fastka._vrrp_py import (
        Advert,
        Batch,
        Expect,
        Template,
        VridTable,
        decode,
        decode_ipv4,
        encode,
        encode_into,
        encode_ipv4,
        encode_ipv4_into,
        inet_checksum,
        ipv4_header_into,
        update_priority,
        vrrp_checksum,
    )

IMPLEMENTATION = "fastka._vrrp" if USE_EXTENSIONS else "fastka._vrrp_py"

__all__ = [
    "ACCEPTED",
    "AF_INET",
    "AF_INET6",
    "AH_HEADER_LEN",
    "AH_ICV_LEN",
    "DROP_REASONS",
    "FLAG_ADDRESS_MISMATCH",
    "FLAG_ADVER_INT_DIFFERS",
    "FLAG_AH",
    "FLAG_AUTH_UNVERIFIED",
    "FLAG_CHECKSUM_UNVERIFIED",
    "FLAG_MULTICAST",
    "FLAG_OLD_UNICAST_CHECKSUM",
    "FLAG_UNCHANGED",
    "IMPLEMENTATION",
    "IPPROTO_AH",
    "IPPROTO_VRRP",
    "IPV4_HEADER_LEN",
    "VRRP_AUTH_AH",
    "VRRP_AUTH_DATA_LEN",
    "VRRP_AUTH_NONE",
    "VRRP_AUTH_PASS",
    "VRRP_HEADER_LEN",
    "VRRP_MAX_ADDRESSES",
    "VRRP_MCAST_GROUP4",
    "VRRP_MCAST_GROUP4_PACKED",
    "VRRP_MCAST_GROUP6",
    "VRRP_MCAST_GROUP6_PACKED",
    "VRRP_PRIO_OWNER",
    "VRRP_PRIO_STOP",
    "VRRP_TOS",
    "VRRP_TTL",
    "VRRP_TYPE_ADVERTISEMENT",
    "VRRP_V3_MAX_ADVER_INT",
    "VRRP_VERSION_2",
    "VRRP_VERSION_3",
    "Advert",
    "Batch",
    "Expect",
    "Reason",
    "Template",
    "VridTable",
    "decode",
    "decode_ipv4",
    "demo",
    "encode",
    "encode_into",
    "encode_ipv4",
    "encode_ipv4_into",
    "inet_checksum",
    "ipv4_header_into",
    "pack_addresses",
    "update_priority",
    "vrrp_checksum",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def pack_addresses(addresses: Iterable[str | IPAddress]) -> bytes:
    """Addresses (strings or ``ipaddress`` objects, one family) in the packed form the
    codec takes, keeping their order (Keepalived sends them in configuration order)."""
    packed = [ipaddress.ip_address(a).packed for a in addresses]
    if len({len(p) for p in packed}) > 1:
        raise ValueError("all addresses of an advert are of one family")
    return b"".join(packed)


# The first advert of each golden capture of Keepalived 2.2.7 (shared/vrrp-golden), as it
# went on the wire: (scenario, version, vrid, priority, interval, addresses, auth type,
# auth_pass, source, destination, IPv4 ID, AH sequence, IPv4 packet -- or, for IPv6, the
# VRRP message -- in hex).
_GOLDEN: tuple[tuple[str, int, int, int, int, tuple[str, ...], int, str, str, str, int, int, str], ...] = (
    ("vrrpv2-noauth", 2, 51, 150, 1, ("10.99.0.100",), 0, "", "10.99.0.11", "224.0.0.18", 1, 0,
     "45c0002800010000ff70d0240a63000be00000122133960100013e030a6300640000000000000000"),
    ("vrrpv2-noauth-3vips", 2, 52, 150, 1, ("10.99.0.100", "10.99.0.101", "10.99.0.102"), 0, "",
     "10.99.0.11", "224.0.0.18", 1, 0,
     "45c0003000010000ff70d01c0a63000be0000012213496030001286f0a6300640a6300650a6300660000000000000000"),
    ("vrrpv2-auth-pass", 2, 53, 150, 1, ("10.99.0.100",), 1, "secret12", "10.99.0.11", "224.0.0.18", 1, 0,
     "45c0002800010000ff70d0240a63000be0000012213596010101cf820a6300647365637265743132"),
    ("vrrpv2-auth-ah", 2, 54, 150, 1, ("10.99.0.100",), 2, "secret12", "10.99.0.11", "224.0.0.18", 1, 1,
     "45c0004000010000ff33d0490a63000be0000012700400000a63000b0000000176e2376cab4e7cb171e4f6c3"
     "2136960102013c000a6300640000000000000000"),
    ("vrrpv2-unicast", 2, 58, 150, 1, ("10.99.0.100",), 0, "", "10.99.0.11", "10.99.0.12", 1, 0,
     "45c0002800010000ff70a5c80a63000b0a63000c213a960100013dfc0a6300640000000000000000"),
    ("vrrpv3-ipv4", 3, 55, 150, 100, ("10.99.0.100",), 0, "", "10.99.0.11", "224.0.0.18", 1, 0,
     "45c0002000010000ff70d02c0a63000be0000012313796010064429f0a630064"),
    ("vrrpv3-ipv4-adv50ms", 3, 56, 100, 5, ("10.99.0.100",), 0, "", "10.99.0.12", "224.0.0.18", 1, 0,
     "45c0002000010000ff70d02b0a63000ce000001231386401000574fc0a630064"),
    ("vrrpv3-unicast", 3, 59, 150, 100, ("10.99.0.100",), 0, "", "10.99.0.11", "10.99.0.12", 1, 0,
     "45c0002000010000ff70a5d00a63000b0a63000c313b96010064183f0a630064"),
    ("vrrpv3-ipv6", 3, 57, 150, 100, ("fd99::100",), 0, "", "fe80::99:ff:fe00:11", "ff02::12", 0, 0,
     "3139960100643bfffd990000000000000000000000000100"),
)  # fmt: skip

_AUTH_NAMES = {VRRP_AUTH_NONE: "none", VRRP_AUTH_PASS: "PASS", VRRP_AUTH_AH: "AH"}


def demo(out: TextIO | None = None) -> bool:
    """Build the adverts of the golden Keepalived captures from their fields, decode
    them back, and print a table; returns True if every one is byte-identical to what
    Keepalived 2.2.7 sent."""
    w = out if out is not None else sys.stdout
    print(f"fastka VRRP codec ({IMPLEMENTATION}): adverts built from their fields, decoded back,", file=w)
    print("and compared with captures of Keepalived 2.2.7 (shared/vrrp-golden)", file=w)
    print(file=w)
    head = (
        f"{'scenario':<20} {'v':>1} {'vrid':>4} {'prio':>4} {'interval':>8} {'auth':<13} "
        f"{'src -> dst':<34} {'addresses':<36} {'csum':>6}  keepalived"
    )
    print(head, file=w)
    print("-" * len(head), file=w)
    all_same = True
    hexes: list[tuple[str, str]] = []
    for name, ver, vrid, prio, interval, addrs, auth, pw, src, dst, ident, seq, wire in _GOLDEN:
        packed = pack_addresses(addrs)
        s = ipaddress.ip_address(src).packed
        d = ipaddress.ip_address(dst).packed
        if len(s) == 4:
            built = encode_ipv4(
                ver, vrid, prio, interval, packed, auth, pw.encode(), s, d, VRRP_TTL, ident, seq
            )
            advert = decode_ipv4(
                built, Expect(ver, auth_type=auth if ver == 2 else -1, auth_data=pw.encode())
            )
        else:
            built = encode(ver, vrid, prio, interval, packed, 0, b"", s, d)
            advert = decode(built, s, d, VRRP_TTL, Expect(ver))
        same = built.hex() == wire
        all_same &= same
        unit = "s" if ver == 2 else "cs"
        auth_text = _AUTH_NAMES.get(advert.auth_type, str(advert.auth_type)) + (f":{pw}" if pw else "")
        print(
            f"{name:<20} {advert.version:>1} {advert.vrid:>4} {advert.priority:>4} "
            f"{str(advert.adver_int) + unit:>8} {auth_text:<13} {src + ' -> ' + dst:<34} "
            f"{','.join(str(a) for a in advert.addresses):<36} {advert.checksum:#06x}  "
            f"{'identical' if same else 'DIFFERENT'}",
            file=w,
        )
        hexes.append((name, built.hex()))
    print(file=w)
    print("bytes on the wire (IPv4: whole packet from the IP header on, as sent with IP_HDRINCL;", file=w)
    print("IPv6: the VRRP message, the kernel adds the header):", file=w)
    for name, h in hexes:
        print(f"  {name:<20} {h}", file=w)
    return all_same


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0 if demo() else 1)
