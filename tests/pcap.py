"""A small reader for classic pcap files (tcpdump's default format), for golden tests.

Handles both byte orders and both timestamp resolutions (magic a1b2c3d4 / a1b23c4d);
not pcapng. ``frames(path)`` yields :class:`Frame` records; ``ip_packet(frame)`` strips
the Ethernet header (with or without one 802.1Q tag) and returns the IP packet without
Ethernet padding, or None for other link/ether types.

    from pcap import frames, ip_packet
    for f in frames("capture.pcap"):
        pkt = ip_packet(f)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

LINKTYPE_ETHERNET = 1
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}


class PcapError(ValueError):
    """Not a classic pcap file, or a truncated one."""


class Frame(NamedTuple):
    index: int  # 0-based position in the file
    time: float  # seconds since the epoch
    data: bytes  # captured bytes (may be shorter than orig_len with a snaplen)
    orig_len: int
    linktype: int


def frames(path: str | Path) -> Iterator[Frame]:
    raw = Path(path).read_bytes()
    if len(raw) < 24 or raw[:4] not in _MAGIC:
        raise PcapError(f"{path}: not a classic pcap file")
    order, resolution = _MAGIC[raw[:4]]
    _major, _minor, _zone, _sigfigs, _snaplen, linktype = struct.unpack_from(order + "HHiIII", raw, 4)
    off = 24
    index = 0
    while off < len(raw):
        if off + 16 > len(raw):
            raise PcapError(f"{path}: truncated record header at byte {off}")
        sec, frac, incl, orig = struct.unpack_from(order + "IIII", raw, off)
        off += 16
        if off + incl > len(raw):
            raise PcapError(f"{path}: truncated frame {index} at byte {off}")
        yield Frame(index, sec + frac * resolution, raw[off : off + incl], orig, linktype)
        off += incl
        index += 1


def ethertype(frame: Frame) -> tuple[int, bytes] | None:
    """(ether type, payload) of an Ethernet frame, after one optional 802.1Q tag."""
    if frame.linktype != LINKTYPE_ETHERNET or len(frame.data) < 14:
        return None
    etype = struct.unpack_from("!H", frame.data, 12)[0]
    off = 14
    if etype == ETH_P_8021Q and len(frame.data) >= 18:
        etype = struct.unpack_from("!H", frame.data, 16)[0]
        off = 18
    return etype, frame.data[off:]


def ip_packet(frame: Frame) -> bytes | None:
    """The IPv4 or IPv6 packet of an Ethernet frame, cut to its IP length (no padding)."""
    et = ethertype(frame)
    if et is None:
        return None
    etype, payload = et
    if etype == ETH_P_IP and len(payload) >= 20 and payload[0] >> 4 == 4:
        return payload[: struct.unpack_from("!H", payload, 2)[0]]
    if etype == ETH_P_IPV6 and len(payload) >= 40 and payload[0] >> 4 == 6:
        return payload[: 40 + struct.unpack_from("!H", payload, 4)[0]]
    return None
