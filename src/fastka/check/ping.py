"""PING_CHECK (behaviour.md §C1): an ICMP / ICMPv6 echo reply within ``connect_timeout``.

Uses an unprivileged ICMP datagram socket where ``net.ipv4.ping_group_range`` allows it
(the kernel then owns the identifier and the checksum), otherwise a raw socket (root):
there we set the identifier, compute the IPv4 checksum (the kernel does it for ICMPv6)
and ignore replies that are not ours.
"""

from __future__ import annotations

import _socket
import itertools
import os
import socket
import struct

from fastka.check.base import LoopLike, Target, open_socket
from fastka.check.udp import DatagramProbe

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0  # RFC 792
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129  # RFC 4443 §4
_seq = itertools.count(1)


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class PingProbe(DatagramProbe):
    __slots__ = ("ident", "raw", "seq")

    def __init__(self, loop: LoopLike, target: Target, timeout: float) -> None:
        super().__init__(loop, target, timeout)
        self.raw = False
        self.ident = os.getpid() & 0xFFFF
        self.seq = 0

    @property
    def v6(self) -> bool:
        return self.target.family == socket.AF_INET6

    def open(self) -> _socket.socket:
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        try:
            self.raw = False
            return open_socket(self.target, socket.SOCK_DGRAM, proto)
        except PermissionError:
            self.raw = True
            return open_socket(self.target, socket.SOCK_RAW, proto)

    def request(self) -> bytes:
        self.seq = next(_seq) & 0xFFFF
        kind = ICMP6_ECHO_REQUEST if self.v6 else ICMP_ECHO_REQUEST
        payload = b"fastka-ping-check"
        packet = struct.pack("!BBHHH", kind, 0, 0, self.ident, self.seq) + payload
        if self.raw and not self.v6:
            csum = inet_checksum(packet)
            packet = packet[:2] + struct.pack("!H", csum) + packet[4:]
        return packet

    def reply(self, data: bytes, length: int) -> bool | None:
        if self.raw and not self.v6 and len(data) >= 20:
            data = data[(data[0] & 0x0F) * 4 :]  # raw IPv4 sockets see the IP header
        if len(data) < 8:
            return None
        kind, _code, _csum, ident, seq = struct.unpack("!BBHHH", data[:8])
        if kind != (ICMP6_ECHO_REPLY if self.v6 else ICMP_ECHO_REPLY):
            return None
        if self.raw and ident != self.ident:
            return None
        if seq != self.seq:
            return None
        return True
