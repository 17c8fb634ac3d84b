"""VIPs in and out of the kernel fast: RTM_NEWADDR / RTM_DELADDR on a raw rtnetlink socket.

A new MASTER adds its addresses, a leaving one removes them -- with a thousand instances
becoming MASTER together that is a thousand requests. pyroute2's synchronous API runs an
asyncio loop per request (about 5 ms each here); a hand-built message and its
acknowledgement take tens of microseconds. :class:`AddressOps` does exactly what
:meth:`fastka.vrrp.netlink.Netlink.add_address` / ``del_address`` do for a VIP (same
attributes, same idempotence: adding what exists or removing what is gone returns False),
and :class:`fastka.vrrp.netlink.Netlink` stays the place for everything else (routes,
rules, VMACs, queries).
"""

from __future__ import annotations

import errno as _errno
import socket
import struct
from ipaddress import IPv4Interface, IPv6Interface

from fastka.config.model import IpAddress
from fastka.errors import NetlinkOpError
from fastka.vrrp.netlink import INFINITY_LIFE_TIME, SCOPES, address_flags

__all__ = ["AddressOps"]

RTM_NEWADDR, RTM_DELADDR = 20, 21
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST, IFA_CACHEINFO, IFA_FLAGS = 1, 2, 3, 4, 6, 8
_NLMSGHDR = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTA = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    pad = (-(4 + len(payload))) % 4
    return _RTA.pack(4 + len(payload), kind) + payload + bytes(pad)


class AddressOps:
    """Adds and removes addresses with one rtnetlink round trip each."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            self.sock.bind((0, 0))
            self.sock.settimeout(2.0)
        except BaseException:
            self.sock.close()
            raise
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _request(self, op: str, mtype: int, flags: int, body: bytes, ok: tuple[int, ...]) -> bool:
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        seq = self.seq
        msg = _NLMSGHDR.pack(16 + len(body), mtype, flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body
        try:
            self.sock.send(msg)
            while True:
                data = self.sock.recv(65536)
                off = 0
                while off + 16 <= len(data):
                    length, rtype, _f, rseq, _pid = _NLMSGHDR.unpack_from(data, off)
                    if rtype == NLMSG_ERROR and rseq == seq:
                        code = -struct.unpack_from("=i", data, off + 16)[0]
                        if code == 0:
                            return True
                        if code in ok:
                            return False
                        raise NetlinkOpError(code, op)
                    off += max((length + 3) & ~3, 16)
        except OSError as exc:
            raise NetlinkOpError(exc.errno or _errno.EIO, op) from exc

    @staticmethod
    def _body(ip: IpAddress, ifindex: int, *, full: bool) -> bytes:
        addr = ip.address
        v6 = isinstance(addr, IPv6Interface)
        family = socket.AF_INET6 if v6 else socket.AF_INET
        local = addr.ip.packed
        prefixlen = addr.network.prefixlen
        peer = None
        if ip.peer is not None:
            peer = ip.peer.ip.packed
            prefixlen = ip.peer.network.prefixlen
        attrs = b""
        if not full:
            # deleting: the kernel matches on the address (and the peer)
            if v6:
                attrs += _attr(IFA_ADDRESS, local)
            else:
                attrs += _attr(IFA_LOCAL, local) + _attr(IFA_ADDRESS, peer or local)
            return _IFADDRMSG.pack(family, prefixlen, 0, 0, ifindex) + attrs
        if v6 or peer is not None:
            attrs += _attr(IFA_LOCAL, local) + _attr(IFA_ADDRESS, peer or local)
        else:
            attrs += _attr(IFA_LOCAL, local) + _attr(IFA_ADDRESS, local)
        flags, preferred = address_flags(ip)
        if preferred is not None:
            attrs += _attr(IFA_CACHEINFO, struct.pack("=IIII", preferred, INFINITY_LIFE_TIME, 0, 0))
        if flags:
            attrs += _attr(IFA_FLAGS, struct.pack("=I", flags))
        if ip.label:
            attrs += _attr(IFA_LABEL, ip.label.encode() + b"\0")
        if isinstance(addr, IPv4Interface):
            brd = None
            if ip.broadcast is not None:
                brd = ip.broadcast.packed
            elif ip.broadcast_mode == "+":
                brd = addr.network.broadcast_address.packed
            elif ip.broadcast_mode == "-":
                brd = addr.network.network_address.packed
            if brd is not None:
                attrs += _attr(IFA_BROADCAST, brd)
        scope = 0
        if ip.scope is not None:
            scope = SCOPES[ip.scope] if ip.scope in SCOPES else int(ip.scope)
        return _IFADDRMSG.pack(family, prefixlen, flags & 0xFF, scope, ifindex) + attrs

    def add_address(self, ip: IpAddress, ifindex: int) -> bool:
        """Add a VIP; False if it was already there."""
        body = self._body(ip, ifindex, full=True)
        return self._request(
            f"add address {ip.address} dev #{ifindex}",
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            body,
            (_errno.EEXIST,),
        )

    def del_address(self, ip: IpAddress, ifindex: int) -> bool:
        """Remove a VIP; False if it was not there (or its interface is gone)."""
        return self._request(
            f"del address {ip.address} dev #{ifindex}",
            RTM_DELADDR,
            0,
            self._body(ip, ifindex, full=False),
            (_errno.EADDRNOTAVAIL, _errno.ENODEV, _errno.ENOENT),
        )
