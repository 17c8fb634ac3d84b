"""Gratuitous ARP and unsolicited neighbour advertisements (behaviour.md §V6).

A new MASTER tells the segment that the VIPs moved: for each IPv4 VIP an ARP *request*
broadcast with sender = target = the VIP and target MAC ff:ff:ff:ff:ff:ff; for each IPv6
VIP an ICMPv6 neighbour advertisement to ff02::1 with the Override flag (and the Router flag
when the interface forwards IPv6), hop limit 255, IPv6 source = the VIP and the MAC in a
target link-layer address option. Both are whole Ethernet frames written to an AF_PACKET
socket, byte for byte what Keepalived 2.2.7 sends (``vrrp-golden`` captures), with the
Ethernet source = the interface's MAC (the VMAC when the VIP lives on a VMAC interface).

:class:`GarpSender` sends bursts for one interface -- ``repeat`` rounds over the address
list, as Keepalived orders them (round-robin: VIP1, VIP2, VIP1, VIP2 ...) -- and spaces
packets by ``garp_interval`` (ARP) / ``gna_interval`` (NA) with loop timers: it never
sleeps. Bursts queue behind each other; :meth:`GarpSender.cancel` drops what is still
queued (e.g. when leaving MASTER).
"""

from __future__ import annotations

import logging
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Protocol

from fastka._linux import ETH_P_ARP, ETH_P_IPV6

__all__ = [
    "GarpSender",
    "garp_frame",
    "mac_bytes",
    "unsolicited_na_frame",
]

log = logging.getLogger("fastka.vrrp.arp")

ETH_BROADCAST = b"\xff" * 6
ETH_ALL_NODES = bytes.fromhex("333300000001")  # ff02::1 mapped to Ethernet
IP6_ALL_NODES = IPv6Address("ff02::1").packed
ND_NEIGHBOR_ADVERT = 136
ND_OPT_TARGET_LINKADDR = 2
NA_FLAG_ROUTER = 0x80000000
NA_FLAG_OVERRIDE = 0x20000000
IPPROTO_ICMPV6 = 58

_ARP = struct.Struct("!6s6sHHHBBH6s4s6s4s")
_ETH_IP6 = struct.Struct("!6s6sHIHBB16s16s")
_NA = struct.Struct("!BBHI16sBB6s")


def mac_bytes(mac: str | bytes) -> bytes:
    """``"02:99:00:00:00:11"`` (or 6 bytes) as 6 bytes."""
    if isinstance(mac, bytes):
        if len(mac) != 6:
            raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")
        return mac
    out = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(out) != 6:
        raise ValueError(f"bad MAC address {mac!r}")
    return out


def garp_frame(mac: bytes, address: IPv4Address) -> bytes:
    """The 42-byte gratuitous ARP request for ``address`` from ``mac`` (no Ethernet padding)."""
    ip = address.packed
    return _ARP.pack(ETH_BROADCAST, mac, ETH_P_ARP, 1, 0x0800, 6, 4, 1, mac, ip, ETH_BROADCAST, ip)


def _icmp6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    data = src + dst + struct.pack("!I3xB", len(message), IPPROTO_ICMPV6) + message
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))  # always even here
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def unsolicited_na_frame(mac: bytes, address: IPv6Address, *, router: bool = False) -> bytes:
    """The 86-byte unsolicited neighbour advertisement for ``address`` from ``mac``."""
    target = address.packed
    flags = NA_FLAG_OVERRIDE | (NA_FLAG_ROUTER if router else 0)
    message = _NA.pack(ND_NEIGHBOR_ADVERT, 0, 0, flags, target, ND_OPT_TARGET_LINKADDR, 1, mac)
    csum = _icmp6_checksum(target, IP6_ALL_NODES, message)
    message = message[:2] + struct.pack("!H", csum) + message[4:]
    header = _ETH_IP6.pack(
        ETH_ALL_NODES, mac, ETH_P_IPV6, 0x60000000, len(message), IPPROTO_ICMPV6, 255, target, IP6_ALL_NODES
    )
    return header + message


class _TimerHandle(Protocol):
    def cancel(self) -> None: ...


class TimerLoop(Protocol):
    """What :class:`GarpSender` needs of ``fastka.loop.Loop``."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> _TimerHandle: ...


class _Queue:
    """Frames of one kind (ARP or NA) waiting for their turn on the interface."""

    __slots__ = ("frames", "interval", "next_ok", "timer")

    def __init__(self, interval: float) -> None:
        self.frames: deque[bytes] = deque()
        self.interval = interval
        self.next_ok = 0.0
        self.timer: _TimerHandle | None = None


class GarpSender:
    """Sends gratuitous ARPs / unsolicited NAs on one interface, spaced on the event loop.

    ``sock`` (tests) replaces the AF_PACKET socket, which is otherwise opened here and bound
    to ``ifname`` in the caller's network namespace. ``mac`` is the interface's (or VMAC's)
    address. ``sent``/``errors`` count frames; send errors are logged, never raised from a
    timer.
    """

    def __init__(
        self,
        loop: TimerLoop,
        ifname: str,
        mac: str | bytes,
        *,
        garp_interval: float = 0.0,
        gna_interval: float = 0.0,
        sock: socket.socket | None = None,
    ) -> None:
        self.loop = loop
        self.ifname = ifname
        self.mac = mac_bytes(mac)
        if sock is None:
            # protocol 0: a send-only packet socket (the kernel delivers it nothing)
            sock = socket.socket(
                socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0
            )
            try:
                sock.bind((ifname, 0))
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self._arp = _Queue(garp_interval)
        self._na = _Queue(gna_interval)
        self.sent = 0
        self.errors = 0

    @property
    def garp_interval(self) -> float:
        return self._arp.interval

    @property
    def gna_interval(self) -> float:
        return self._na.interval

    @property
    def pending(self) -> int:
        """Frames queued and not yet sent."""
        return len(self._arp.frames) + len(self._na.frames)

    def send_burst(
        self, addresses: Iterable[IPv4Address | IPv6Address], repeat: int = 1, *, router: bool = False
    ) -> None:
        """Queue ``repeat`` rounds of one GARP/NA per address and send what is due now.

        ``router`` sets the NA Router flag (IPv6 forwarding enabled on the interface).
        """
        addrs = list(addresses)
        for _ in range(repeat):
            for a in addrs:
                if isinstance(a, IPv4Address):
                    self._arp.frames.append(garp_frame(self.mac, a))
                else:
                    self._na.frames.append(unsolicited_na_frame(self.mac, a, router=router))
        self._pump(self._arp)
        self._pump(self._na)

    def cancel(self) -> None:
        """Drop everything still queued (the timers are cancelled too)."""
        for q in (self._arp, self._na):
            q.frames.clear()
            if q.timer is not None:
                q.timer.cancel()
                q.timer = None

    def close(self) -> None:
        self.cancel()
        self.sock.close()

    def _send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame)
            self.sent += 1
        except OSError as e:
            self.errors += 1
            log.warning("%s: cannot send gratuitous ARP/NA: %s", self.ifname, e)

    def _pump(self, q: _Queue) -> None:
        if q.interval <= 0:
            while q.frames:
                self._send(q.frames.popleft())
            return
        if q.timer is not None:  # the next frame already waits for its timer
            return
        if q.frames and self.loop.time() >= q.next_ok:
            self._send_next(q)
        if q.frames:
            q.timer = self.loop.call_at(q.next_ok, self._on_timer, q)

    def _send_next(self, q: _Queue) -> None:
        now = self.loop.time()
        self._send(q.frames.popleft())
        # a timer that fires a hair early keeps the cadence; a late one restarts from now
        q.next_ok = max(now, q.next_ok) + q.interval

    def _on_timer(self, q: _Queue) -> None:
        q.timer = None
        if q.frames:
            self._send_next(q)
        if q.frames:
            q.timer = self.loop.call_at(q.next_ok, self._on_timer, q)
