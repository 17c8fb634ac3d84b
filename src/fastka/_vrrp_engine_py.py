"""The VRRP steady state, pure-Python reference (the typed specification of
``fastka._vrrp_engine``; ``fastka.vrrp.engine`` picks one): what runs per advert.

The :class:`Engine` owns, for every instance (a *slot*):

* sending: the advert packets, prebuilt per destination (the multicast group or each
  unicast peer), sent every advert interval from a periodic loop timer, or at once on
  request (``send_now``, also with another priority, e.g. 0);
* receiving: the raw sockets shared by the instances of one interface and family
  (*receivers*), read in batches into a codec ``Batch`` and validated in one call by
  the receiver's ``VridTable``; the master-down timer.

An accepted advert from the master a BACKUP follows -- same source, priority and
interval as the one the state machine last accepted (``follow``) -- only re-arms the
master-down timer; anything else goes to the handler (the router, hence the state
machine), and so does the timer's expiry. Refused packets are counted per reason; the
handler hears of the first of each reason per slot until ``reset_reports``.

This module is the typed specification of the compiled engine; both have this API.

Departure from DESIGN.md (which puts the hot path in ``_vrrp.pyx``): the engine is its
own module pair beside the codec, ``cimport``-ing the codec's and the loop's C levels
(``_vrrp.pxd``, ``_loop.pxd``). The codec stays a pure function library with its own
tests and fuzzing; the engine, which owns sockets and timers, changes for other reasons.
"""

from __future__ import annotations

import errno
import math
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastka.vrrp.codec import (
    AF_INET,
    AF_INET6,
    FLAG_ADDRESS_MISMATCH,
    VRRP_AUTH_AH,
    Batch,
    Expect,
    VridTable,
    encode,
    encode_ipv4_into,
    ipv4_header_into,
)

__all__ = ["Engine", "EngineHandler", "SlotStats"]

_IN6_PKTINFO = struct.Struct("=16sI")
_IP6 = struct.Struct("!IHBB16s16s")
_ANC4 = socket.CMSG_SPACE(12)
_ANC6 = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4)
_INT = struct.Struct("=i")
BATCH = 64
SLOT_SIZE = 4096 + 128
# per-peer counters kept per instance; more sources than this are counted together
# under the empty address (a flood of forged sources must not grow memory)
MAX_PEERS = 64


def _phase(t: float, interval: float) -> float:
    """The first periodic advert of a new MASTER, moved up to 1/16 interval (at most 50 ms)
    later onto a common grid, so that instances with the same interval fall due together
    (one ``sendmmsg`` in the compiled engine). Later adverts are exactly one interval apart."""
    g = min(max(interval / 16, 0.001), 0.05)
    return math.ceil(t / g - 1e-9) * g


class EngineHandler(Protocol):
    def engine_advert(self, sid: int, src: bytes, priority: int, adver_int: int, flags: int) -> None:
        """An accepted advert the engine does not handle itself."""

    def engine_down_timer(self, sid: int) -> None:
        """The master-down timer of ``sid`` fired."""

    def engine_drop(self, sid: int, reason: int, src: bytes) -> None:
        """First refused packet of ``reason`` for ``sid`` (-1: no slot) since the last reset."""

    def engine_send_error(self, sid: int, err: int) -> None:
        """First failed send of ``sid`` since the last reset."""

    def engine_late(self, sid: int, gap: float) -> None:
        """A periodic advert of ``sid`` fell due ``gap`` s after the previous one, more
        than its late limit (``set_late_limit``): it was not sent, the adverts stopped."""


class _LoopLike(Protocol):
    def time(self) -> float: ...
    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Any: ...
    def call_periodic(
        self, interval: float, callback: Callable[..., object], *args: Any, first: float | None = ...
    ) -> Any: ...
    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_reader(self, fd: int) -> bool: ...


@dataclass
class SlotStats:
    adverts_sent: int = 0
    adverts_received: int = 0
    fast_path: int = 0
    send_errors: int = 0
    drops: dict[int, int] = field(default_factory=dict)
    # accepted adverts per source address: (count, last priority, last arrival, loop time)
    peers: dict[bytes, tuple[int, int, float]] = field(default_factory=dict)


@dataclass(eq=False)
class _Receiver:
    rid: int
    sock: socket.socket
    family: int
    table: VridTable
    batch: Batch
    by_vrid: dict[int, int] = field(default_factory=dict)
    drops: dict[int, int] = field(default_factory=dict)
    truncated: int = 0
    reported: set[int] = field(default_factory=set)


@dataclass(eq=False)
class _Slot:
    sid: int
    rid: int | None
    vrid: int
    listening: bool = False
    # -- sending
    sock: socket.socket | None = None
    family: int = AF_INET
    version: int = 2
    priority: int = 100
    adver_int: int = 1
    addresses: bytes = b""
    auth_type: int = 0
    auth_data: bytes = b""
    src: bytes = b""
    dsts: list[bytes] = field(default_factory=list)
    dst_addrs: list[tuple[Any, ...]] = field(default_factory=list)
    multicast: bool = True
    link: bytes | None = None
    ttl: int = 255
    pseudo_header: bool = True
    ifindex: int = 0
    ident: int = 0
    ah_seq: int = 0
    buf: bytearray = field(default_factory=lambda: bytearray(20 + 24 + 16 + 255 * 16))
    interval: float = 1.0
    advert_timer: Any = None
    checksum_dst: bytes | None = None
    late_limit: float = 0.0
    last_sent: float = 0.0
    # -- receiving
    down_timer: Any = None
    follow: tuple[bytes, int, int] | None = None
    down_interval: float = 0.0
    stats: SlotStats = field(default_factory=SlotStats)
    follow_hits: int = 0
    follow_last: float = 0.0
    reported: set[int] = field(default_factory=set)
    send_error_reported: bool = False


class Engine:
    """Periodic adverts and batched receive/validate/dispatch for every instance."""

    def __init__(self, loop: _LoopLike, handler: EngineHandler) -> None:
        self.loop = loop
        self.handler = handler
        self._receivers: dict[int, _Receiver] = {}
        self._slots: dict[int, _Slot] = {}
        self._next_rid = 1
        self._next_sid = 1

    # -- receivers ---------------------------------------------------------------------------

    def add_receiver(self, sock: socket.socket, family: int) -> int:
        """Watch ``sock`` (a VRRP receive socket of ``family``); returns its id."""
        rid = self._next_rid
        self._next_rid += 1
        r = _Receiver(rid, sock, family, VridTable(), Batch(BATCH, SLOT_SIZE, family))
        self._receivers[rid] = r
        self.loop.add_reader(sock.fileno(), self._readable, r)
        return rid

    def remove_receiver(self, rid: int) -> None:
        r = self._receivers.pop(rid, None)
        if r is None:
            return
        self.loop.remove_reader(r.sock.fileno())
        for sid in list(r.by_vrid.values()):
            s = self._slots.get(sid)
            if s is not None:
                s.rid = None

    def receiver_stats(self, rid: int) -> tuple[dict[int, int], int]:
        r = self._receivers[rid]
        return dict(r.drops), r.truncated

    # -- slots -------------------------------------------------------------------------------

    def add_slot(self, vrid: int) -> int:
        sid = self._next_sid
        self._next_sid += 1
        self._slots[sid] = _Slot(sid, None, vrid)
        return sid

    def remove_slot(self, sid: int) -> None:
        if sid not in self._slots:
            return
        self.detach(sid)
        s = self._slots.pop(sid)
        for t in (s.advert_timer, s.down_timer):
            if t is not None:
                t.cancel()

    def attach(self, sid: int, rid: int, expect: Expect) -> None:
        """Receive ``sid``'s VRID on receiver ``rid``, validated against ``expect``."""
        s = self._slots[sid]
        self.detach(sid)
        r = self._receivers[rid]
        if s.vrid in r.by_vrid:
            raise ValueError(f"VRID {s.vrid} is already registered on this receiver")
        r.table[s.vrid] = expect
        r.by_vrid[s.vrid] = sid
        s.rid = rid

    def detach(self, sid: int) -> None:
        s = self._slots.get(sid)
        if s is None or s.rid is None:
            return
        r = self._receivers.get(s.rid)
        if r is not None and r.by_vrid.get(s.vrid) == sid:
            del r.by_vrid[s.vrid]
            del r.table[s.vrid]
        s.rid = None

    def set_listening(self, sid: int, listening: bool) -> None:
        """BACKUP/MASTER: accepted adverts are handled; INIT/FAULT: counted and ignored."""
        self._slots[sid].listening = listening

    # -- sending -----------------------------------------------------------------------------

    def set_advert(
        self,
        sid: int,
        sock: socket.socket | None,
        *,
        family: int,
        version: int,
        priority: int,
        adver_int: int,
        addresses: bytes,
        auth_type: int = 0,
        auth_data: bytes = b"",
        src: bytes,
        dsts: Sequence[bytes],
        multicast: bool,
        ttl: int = 255,
        pseudo_header: bool = True,
        ifindex: int = 0,
        interval: float,
        link: bytes | None = None,
        checksum_dst: bytes | None = None,
    ) -> None:
        """What ``sid`` sends and where (the socket may be None while it cannot send).

        ``link``: the 14-byte Ethernet header (destination MAC, source MAC, EtherType):
        ``sock`` is then a packet socket bound to the interface and the engine sends whole
        frames, IP header included (IPv6 too, with the VRRP checksum computed here) --
        the multicast fast path, past the kernel's IP output. Otherwise ``sock`` is the
        raw IPv4 (header included) or IPv6 (kernel header and checksum) socket.
        ``checksum_dst``: VRRPv3/IPv4 only -- the pseudo-header destination of the
        checksum when it is not the packet's own (224.0.0.18 for the unicast checksum of
        Keepalived before 1.3.6, ``old_unicast_checksum``).
        """
        if link is not None and len(link) != 14:
            raise ValueError("link must be a 14-byte Ethernet header")
        s = self._slots[sid]
        s.sock = sock
        s.link = link
        s.family = family
        s.version = version
        s.priority = priority
        s.adver_int = adver_int
        s.addresses = addresses
        s.auth_type = auth_type
        s.auth_data = auth_data
        s.src = src
        s.dsts = list(dsts)
        fam = socket.AF_INET if family == AF_INET else socket.AF_INET6
        s.dst_addrs = [
            (socket.inet_ntop(fam, d), 0) if family == AF_INET else (socket.inet_ntop(fam, d), 0, 0, ifindex)
            for d in s.dsts
        ]
        s.multicast = multicast
        s.ttl = ttl
        s.pseudo_header = pseudo_header
        s.ifindex = ifindex
        s.checksum_dst = bytes(checksum_dst) if checksum_dst is not None and family == AF_INET else None
        if auth_type == VRRP_AUTH_AH and not s.ah_seq:
            # a restarted router must not look like a replay to peers that remember our
            # last sequence number: start from the clock (at most one advert per second
            # and peer in VRRPv2, so the count stays behind it)
            s.ah_seq = int(time.time()) & 0xFFFFFFFF
        if s.interval != interval:
            s.interval = interval
            if s.advert_timer is not None and s.advert_timer.active:
                self.start_adverts(sid)

    def set_priority(self, sid: int, priority: int) -> None:
        self._slots[sid].priority = priority

    def set_late_limit(self, sid: int, limit: float) -> None:
        """``timer_expired_backup``: a periodic advert due more than ``limit`` s after the
        previous one (the process was stopped or starved) is not sent; the adverts stop
        and the handler hears ``engine_late``. 0: no limit."""
        self._slots[sid].late_limit = max(limit, 0.0)

    def send_now(self, sid: int, priority: int | None = None, *, reset_timer: bool = False) -> None:
        s = self._slots[sid]
        self._send(s, s.priority if priority is None else priority)
        if reset_timer and s.advert_timer is not None and s.advert_timer.active:
            s.advert_timer.reschedule(_phase(self.loop.time() + s.interval, s.interval))

    def start_adverts(self, sid: int) -> None:
        """An advert every interval from one interval from now."""
        s = self._slots[sid]
        if s.advert_timer is not None:
            s.advert_timer.cancel()
        s.advert_timer = self.loop.call_periodic(
            s.interval, self._advert_tick, s, first=_phase(self.loop.time() + s.interval, s.interval)
        )

    def stop_adverts(self, sid: int) -> None:
        s = self._slots[sid]
        if s.advert_timer is not None:
            s.advert_timer.cancel()
            s.advert_timer = None

    def _advert_tick(self, s: _Slot) -> None:
        if s.late_limit > 0 and s.last_sent > 0:
            gap = self.loop.time() - s.last_sent
            if gap > s.late_limit:
                self.stop_adverts(s.sid)
                self.handler.engine_late(s.sid, gap)
                return
        self._send(s, s.priority)

    def _send(self, s: _Slot, priority: int) -> None:
        sock = s.sock
        if sock is None:
            return
        s.last_sent = self.loop.time()
        for dst, addr in zip(s.dsts, s.dst_addrs, strict=True):
            try:
                if s.link is not None:
                    sock.send(s.link + self._ip_packet(s, priority, dst))
                elif s.family == AF_INET:
                    n = self._encode4(s, priority, dst)
                    sock.sendto(memoryview(s.buf)[:n], socket.MSG_DONTROUTE if s.multicast else 0, addr)
                else:
                    msg = encode(3, s.vrid, priority, s.adver_int, s.addresses, 0, b"", s.src, dst)
                    pktinfo = _IN6_PKTINFO.pack(s.src, s.ifindex)
                    sock.sendmsg([msg], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)], 0, addr)
                s.stats.adverts_sent += 1
            except OSError as exc:
                s.stats.send_errors += 1
                if not s.send_error_reported:
                    s.send_error_reported = True
                    self.handler.engine_send_error(s.sid, exc.errno or errno.EIO)

    @staticmethod
    def _encode4(s: _Slot, priority: int, dst: bytes) -> int:
        """The next IPv4 packet of ``s`` to ``dst`` into ``s.buf``; returns its length."""
        s.ident = s.ident % 0xFFFF + 1
        if s.version == 2 and s.auth_type == VRRP_AUTH_AH:
            s.ah_seq += 1
        n = encode_ipv4_into(
            s.buf, 0, s.version, s.vrid, priority, s.adver_int, s.addresses, s.auth_type, s.auth_data,
            s.src, s.checksum_dst or dst, s.ttl, s.ident, s.ah_seq or 1, s.pseudo_header,
        )  # fmt: skip
        if s.checksum_dst is not None and s.checksum_dst != dst:
            # the checksum was made for checksum_dst: now the real destination
            ipv4_header_into(s.buf, 0, s.src, dst, s.ttl, s.ident, s.buf[9], n - 20)
        return n

    @staticmethod
    def _ip_packet(s: _Slot, priority: int, dst: bytes) -> bytes:
        """The whole IP packet for the link-layer path (the kernel adds nothing)."""
        if s.family == AF_INET:
            n = Engine._encode4(s, priority, dst)
            return bytes(s.buf[:n])
        msg = encode(3, s.vrid, priority, s.adver_int, s.addresses, 0, b"", s.src, dst)
        # version 6, traffic class 0xc0 (as Keepalived), flow label 0, next header 112
        return _IP6.pack(0x6C000000, len(msg), 112, s.ttl, s.src, dst) + msg

    # -- master-down timer -------------------------------------------------------------------

    def arm_down(self, sid: int, when: float) -> None:
        s = self._slots[sid]
        if s.down_timer is None:
            s.down_timer = self.loop.call_at(when, self._down_fired, s)
        else:
            s.down_timer.reschedule(when)

    def cancel_down(self, sid: int) -> None:
        s = self._slots[sid]
        if s.down_timer is not None:
            s.down_timer.cancel()

    def down_deadline(self, sid: int) -> float | None:
        s = self._slots[sid]
        return s.down_timer.when if s.down_timer is not None and s.down_timer.active else None

    def follow(
        self, sid: int, src: bytes | None, priority: int, adver_int: int, down_interval: float
    ) -> None:
        s = self._slots[sid]
        self._flush_follow(s)
        s.follow = None if src is None else (bytes(src), priority, adver_int)
        s.down_interval = down_interval

    @staticmethod
    def _count_peer(s: _Slot, src: bytes, priority: int, count: int, when: float) -> None:
        peers = s.stats.peers
        if src not in peers and len(peers) >= MAX_PEERS:
            src = b""
        n = peers.get(src, (0, 0, 0.0))[0]
        peers[src] = (n + count, priority, when)

    def _flush_follow(self, s: _Slot) -> None:
        """Move the fast path's count of the followed master into the per-peer counters."""
        if s.follow is not None and s.follow_hits:
            self._count_peer(s, s.follow[0], s.follow[1], s.follow_hits, s.follow_last)
        s.follow_hits = 0

    def _down_fired(self, s: _Slot) -> None:
        self.handler.engine_down_timer(s.sid)

    # -- receiving ---------------------------------------------------------------------------

    def _readable(self, r: _Receiver) -> None:
        batch = r.batch
        n = 0
        ipv6 = r.family == AF_INET6
        while n < batch.capacity:
            try:
                nbytes, anc, flags, addr = r.sock.recvmsg_into([batch.slot(n)], _ANC6 if ipv6 else _ANC4)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if flags & socket.MSG_TRUNC:
                r.truncated += 1
                continue
            batch.length[n] = nbytes
            if ipv6:
                dst, hops = bytes(16), -1
                for level, typ, val in anc:
                    if level != socket.IPPROTO_IPV6:
                        continue
                    if typ == socket.IPV6_PKTINFO and len(val) >= _IN6_PKTINFO.size:
                        dst = _IN6_PKTINFO.unpack_from(val)[0]
                    elif typ == socket.IPV6_HOPLIMIT and len(val) >= 4:
                        hops = _INT.unpack_from(val)[0]
                src = socket.inet_pton(socket.AF_INET6, addr[0].partition("%")[0])
                batch.src[16 * n : 16 * n + 16] = src
                batch.dst[16 * n : 16 * n + 16] = dst
                batch.hoplimit[n] = hops if -1 <= hops <= 255 else -1
            n += 1
        if n:
            self._dispatch(r, n)

    def _dispatch(self, r: _Receiver, n: int) -> None:
        batch = r.batch
        r.table.validate(batch, n)
        now = self.loop.time()
        for i in range(n):
            status = batch.status[i]
            sid = r.by_vrid.get(batch.vrid[i])
            s = self._slots.get(sid) if sid is not None else None
            if status:
                if s is None:
                    r.drops[status] = r.drops.get(status, 0) + 1
                    if status not in r.reported:
                        r.reported.add(status)
                        self.handler.engine_drop(-1, status, batch.source(i))
                else:
                    d = s.stats.drops
                    d[status] = d.get(status, 0) + 1
                    if status not in s.reported:
                        s.reported.add(status)
                        self.handler.engine_drop(s.sid, status, batch.source(i))
                continue
            assert s is not None
            s.stats.adverts_received += 1
            if not s.listening:
                continue
            src = batch.source(i)
            prio = batch.priority[i]
            adv = batch.adver_int[i]
            flags = batch.flags[i]
            f = s.follow
            if (
                f is not None
                and f[0] == src
                and f[1] == prio
                and f[2] == adv
                and not flags & FLAG_ADDRESS_MISMATCH
            ):
                s.down_timer.reschedule(now + s.down_interval)
                s.stats.fast_path += 1
                s.follow_hits += 1
                s.follow_last = now
                continue
            self._count_peer(s, src, prio, 1, now)
            self.handler.engine_advert(s.sid, src, prio, adv, flags)

    # -- statistics --------------------------------------------------------------------------

    def stats(self, sid: int) -> SlotStats:
        s = self._slots[sid]
        self._flush_follow(s)
        st = s.stats
        return SlotStats(
            st.adverts_sent, st.adverts_received, st.fast_path, st.send_errors, dict(st.drops), dict(st.peers)
        )

    def clear_stats(self, sid: int) -> None:
        s = self._slots[sid]
        s.stats = SlotStats()
        s.follow_hits = 0

    def reset_reports(self, sid: int) -> None:
        """Report the next refused packet of each reason (and send error) again."""
        s = self._slots[sid]
        s.reported.clear()
        s.send_error_reported = False
