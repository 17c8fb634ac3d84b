"""VRRP raw sockets, opened as Keepalived opens them (behaviour.md §V1.3).

One send socket per (interface, family) and one receive socket per (interface, family,
protocol, unicast source); instances sharing them demultiplex by VRID. Every socket is
non-blocking and exposes ``fileno()`` for the event loop (and, later, for the compiled core
to batch with ``recvmmsg``/``sendmmsg`` on the same descriptors).

Send, IPv4 (:class:`SendSocket4`): the caller builds the whole IP header (TOS 0xc0, TTL 255,
our IP ID), so the socket is ``IPPROTO_RAW`` -- ``IP_HDRINCL`` implied, and unlike Keepalived's
protocol-112 send socket it receives nothing, so it needs no "drop everything" filter.
``SO_BINDTODEVICE``, multicast loop off, ``IP_MULTICAST_ALL`` off, multicast sent with
``MSG_DONTROUTE``. The kernel fills the total length and header checksum.

Send, IPv6 (:class:`SendSocket6`): protocol 112, ``IPV6_CHECKSUM`` at offset 6 (the kernel
computes the pseudo-header checksum), multicast hop limit 255, traffic class 0xc0, multicast
loop off, source address and ifindex per packet through ``IPV6_PKTINFO``; a BPF filter that
accepts nothing and a minimal receive buffer, since a protocol-112 socket would otherwise
queue every advert.

Receive (:class:`RecvSocket4`, :class:`RecvSocket6`): bound to the interface, multicast
sockets join 224.0.0.18 / ff02::12 *on that interface only* (``IP(V6)_MULTICAST_ALL`` off) and
bind to the group, unicast sockets bind to ``unicast_src_ip`` with ``IP(V6)_FREEBIND`` (so the
address need not be configured yet). :meth:`RecvSocket4.recv` returns the whole IPv4 datagram
(TTL, addresses and any AH header come from it; the ifindex from ``IP_PKTINFO``);
:meth:`RecvSocket6.recv` returns the VRRP message with hop limit, destination and ifindex from
``IPV6_HOPLIMIT``/``IPV6_PKTINFO``. With ``IPV6_CHECKSUM`` set the kernel drops IPv6 adverts
with a bad checksum before they reach us.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct
from typing import NamedTuple, Self

from fastka._linux import (
    IP_FREEBIND,
    IP_MULTICAST_ALL,
    IP_PKTINFO,
    IPPROTO_AH,
    IPPROTO_VRRP,
    IPV6_FREEBIND,
    IPV6_MULTICAST_ALL,
    SO_ATTACH_FILTER,
    VRRP_MCAST_GROUP4,
    VRRP_MCAST_GROUP6,
)
from fastka.vrrp.codec import ipv4_header_into

__all__ = [
    "IPPROTO_AH",
    "IPPROTO_VRRP",
    "RECV_BUFSIZE",
    "Received",
    "RecvSocket4",
    "RecvSocket6",
    "SendSocket4",
    "SendSocket6",
    "build_ipv4_header",
    "parse_cmsg4",
    "parse_cmsg6",
]

# The largest legal advert is an IPv6 one with 255 addresses (8 + 255 x 16 = 4088 bytes);
# IPv4 with a 60-byte header, AH and 255 addresses is smaller. Anything longer arrives with
# MSG_TRUNC set and is reported as truncated.
RECV_BUFSIZE = 4096 + 128
_ANC4 = socket.CMSG_SPACE(12)  # struct in_pktinfo
_ANC6 = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4)  # in6_pktinfo + hop limit
_IN_PKTINFO = struct.Struct("=i4s4s")  # ipi_ifindex, ipi_spec_dst, ipi_addr
_IN6_PKTINFO = struct.Struct("=16sI")  # ipi6_addr, ipi6_ifindex
_IP_MREQN = struct.Struct("=4s4si")  # imr_multiaddr, imr_address, imr_ifindex
_IPV6_MREQ = struct.Struct("=16sI")
_INT = struct.Struct("=i")
_TOS_INTERNETWORK_CONTROL = 0xC0


class Received(NamedTuple):
    """One packet from a receive socket.

    ``data[offset:]`` is the VRRP message (or, for the IPv4 AH socket, the AH header). For
    IPv4 ``data`` is the whole datagram as received, IP header included; for IPv6 the kernel
    has stripped the header and ``offset`` is 0. ``src``/``dst`` are packed addresses (4 or
    16 bytes: comparing them as bytes is comparing them as unsigned integers, RFC 5798's
    tie-break). ``ttl`` is the IPv4 TTL or IPv6 hop limit. ``truncated`` means the datagram
    was longer than :data:`RECV_BUFSIZE` (``data`` holds only the start of it).
    """

    data: bytes
    offset: int
    src: bytes
    dst: bytes
    ttl: int
    ifindex: int
    truncated: bool = False


def build_ipv4_header(
    src: bytes, dst: bytes, payload_len: int, *, ident: int, ttl: int = 255, protocol: int = IPPROTO_VRRP
) -> bytes:
    """The 20-byte header Keepalived puts in front of an advert (the codec's
    ``ipv4_header_into``: TOS 0xc0, DF clear, valid checksum), as ``bytes``."""
    hdr = bytearray(20)
    ipv4_header_into(hdr, 0, src, dst, ttl, ident, protocol, payload_len)
    return bytes(hdr)


# --------------------------------------------------------------------------- helpers


def _bind_to_device(sock: socket.socket, ifname: str | None) -> None:
    if ifname:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())


def _ifindex(ifname: str | None, ifindex: int | None) -> int:
    # socket.if_nametoindex resolves in the *calling thread's* namespace: callers that
    # create sockets for another namespace pass the ifindex they got from netlink there.
    if ifindex is not None:
        return ifindex
    return socket.if_nametoindex(ifname) if ifname else 0


def _attach_drop_all_filter(sock: socket.socket) -> None:
    """A classic BPF program of one instruction, ``ret #0``: the socket queues nothing."""
    insn = (ctypes.c_uint8 * 8).from_buffer_copy(struct.pack("=HBBI", 0x06, 0, 0, 0))  # BPF_RET|BPF_K
    prog = struct.pack("@HP", 1, ctypes.addressof(insn))  # struct sock_fprog (native alignment)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


def parse_cmsg4(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The ifindex from an ``IP_PKTINFO`` control message (0 if absent)."""
    for level, typ, val in ancdata:
        if level == socket.IPPROTO_IP and typ == IP_PKTINFO and len(val) >= _IN_PKTINFO.size:
            return int(_IN_PKTINFO.unpack_from(val)[0])
    return 0


def parse_cmsg6(ancdata: list[tuple[int, int, bytes]]) -> tuple[bytes, int, int]:
    """``(dst, ifindex, hop_limit)`` from ``IPV6_PKTINFO``/``IPV6_HOPLIMIT`` (zeros/-1 if absent)."""
    dst, ifindex, hops = bytes(16), 0, -1
    for level, typ, val in ancdata:
        if level != socket.IPPROTO_IPV6:
            continue
        if typ == socket.IPV6_PKTINFO and len(val) >= _IN6_PKTINFO.size:
            dst, ifindex = _IN6_PKTINFO.unpack_from(val)
        elif typ == socket.IPV6_HOPLIMIT and len(val) >= 4:
            hops = _INT.unpack_from(val)[0]
    return dst, ifindex, hops


class _Socket:
    sock: socket.socket
    ifname: str | None
    ifindex: int
    unicast: bool = False

    @classmethod
    def from_socket(
        cls, sock: socket.socket, *, ifname: str | None = None, ifindex: int = 0, unicast: bool = False
    ) -> Self:
        """Wrap a ready socket as it is -- no option is set (tests, and sockets opened
        elsewhere). It is made non-blocking."""
        obj = cls.__new__(cls)
        obj.sock, obj.ifname, obj.ifindex, obj.unicast = sock, ifname, ifindex, unicast
        sock.setblocking(False)
        return obj

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- send


class SendSocket4(_Socket):
    """IPv4 advert sender for one interface; packets carry their own IP header."""

    def __init__(self, ifname: str | None, ifindex: int | None = None) -> None:
        self.ifname = ifname
        self.ifindex = _ifindex(ifname, ifindex)
        s = socket.socket(
            socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, socket.IPPROTO_RAW
        )
        try:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            _bind_to_device(s, ifname)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            if self.ifindex:
                s.setsockopt(
                    socket.IPPROTO_IP,
                    socket.IP_MULTICAST_IF,
                    _IP_MREQN.pack(bytes(4), bytes(4), self.ifindex),
                )
        except BaseException:
            s.close()
            raise
        self.sock = s

    def send(self, packet: bytes | bytearray | memoryview, dst: str, *, multicast: bool) -> int:
        """Send ``packet`` (IPv4 header + VRRP/AH) to ``dst``; multicast goes ``MSG_DONTROUTE``."""
        return self.sock.sendto(packet, socket.MSG_DONTROUTE if multicast else 0, (dst, 0))


class SendSocket6(_Socket):
    """IPv6 advert sender for one interface; the kernel adds the header and the checksum."""

    def __init__(
        self, ifname: str | None, ifindex: int | None = None, *, unicast_hops: int | None = None
    ) -> None:
        self.ifname = ifname
        self.ifindex = _ifindex(ifname, ifindex)
        s = socket.socket(
            socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, IPPROTO_VRRP
        )
        try:
            _attach_drop_all_filter(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)  # the kernel rounds up to its minimum
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 6)
            _bind_to_device(s, ifname)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _TOS_INTERNETWORK_CONTROL)
            if self.ifindex:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            if unicast_hops is not None:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, unicast_hops)
        except BaseException:
            s.close()
            raise
        self.sock = s

    def send(self, message: bytes | bytearray | memoryview, src: bytes, dst: str) -> int:
        """Send the VRRP ``message`` (checksum field is overwritten by the kernel) from the
        packed IPv6 address ``src`` to ``dst`` (``"ff02::12"`` or a unicast peer)."""
        pktinfo = _IN6_PKTINFO.pack(src, self.ifindex)
        return self.sock.sendmsg(
            [message], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)], 0, (dst, 0, 0, self.ifindex)
        )


# --------------------------------------------------------------------------- receive


class RecvSocket4(_Socket):
    """IPv4 receive socket for one interface: the multicast group, or one unicast address.

    ``protocol`` is 112 (VRRP) or 51 (AH, for ``auth_type AH``).
    """

    def __init__(
        self,
        ifname: str | None,
        ifindex: int | None = None,
        *,
        unicast_src: str | None = None,
        group: str = VRRP_MCAST_GROUP4,
        protocol: int = IPPROTO_VRRP,
        rcvbuf: int | None = None,
    ) -> None:
        self.ifname = ifname
        self.ifindex = _ifindex(ifname, ifindex)
        self.unicast = unicast_src is not None
        s = socket.socket(
            socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, protocol
        )
        try:
            _bind_to_device(s, ifname)
            s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            if rcvbuf is not None:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if unicast_src is not None:
                s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
                s.bind((unicast_src, 0))
            else:
                mreq = _IP_MREQN.pack(socket.inet_aton(group), bytes(4), self.ifindex)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                s.bind((group, 0))
        except BaseException:
            s.close()
            raise
        self.sock = s

    def recv(self) -> Received | None:
        """The next packet, or None when none is queued."""
        try:
            data, anc, flags, _addr = self.sock.recvmsg(RECV_BUFSIZE, _ANC4)
        except BlockingIOError:
            return None
        ihl = (data[0] & 0x0F) * 4 if data else 0
        if len(data) < 20 or ihl < 20:
            # the kernel only delivers whole IP headers; keep the contract anyway
            return Received(data, len(data), bytes(4), bytes(4), 0, self.ifindex, True)
        return Received(
            data,
            ihl,
            data[12:16],
            data[16:20],
            data[8],
            parse_cmsg4(anc) or self.ifindex,
            bool(flags & socket.MSG_TRUNC),
        )


class RecvSocket6(_Socket):
    """IPv6 receive socket for one interface: ff02::12 joined on it, or one unicast address."""

    def __init__(
        self,
        ifname: str | None,
        ifindex: int | None = None,
        *,
        unicast_src: str | None = None,
        group: str = VRRP_MCAST_GROUP6,
        rcvbuf: int | None = None,
    ) -> None:
        self.ifname = ifname
        self.ifindex = _ifindex(ifname, ifindex)
        self.unicast = unicast_src is not None
        s = socket.socket(
            socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, IPPROTO_VRRP
        )
        try:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 6)
            _bind_to_device(s, ifname)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            if rcvbuf is not None:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if unicast_src is not None:
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
                s.bind((unicast_src, 0, 0, self.ifindex if _link_local(unicast_src) else 0))
            else:
                mreq = _IPV6_MREQ.pack(socket.inet_pton(socket.AF_INET6, group), self.ifindex)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
                s.bind((group, 0, 0, self.ifindex))
        except BaseException:
            s.close()
            raise
        self.sock = s

    def recv(self) -> Received | None:
        """The next packet, or None when none is queued."""
        try:
            data, anc, flags, addr = self.sock.recvmsg(RECV_BUFSIZE, _ANC6)
        except BlockingIOError:
            return None
        dst, ifindex, hops = parse_cmsg6(anc)
        src = socket.inet_pton(socket.AF_INET6, addr[0].partition("%")[0])
        return Received(data, 0, src, dst, hops, ifindex or self.ifindex, bool(flags & socket.MSG_TRUNC))


def _link_local(address: str) -> bool:
    return ipaddress.IPv6Address(address.partition("%")[0]).is_link_local
