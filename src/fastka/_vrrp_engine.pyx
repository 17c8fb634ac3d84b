# cython: language_level=3
"""The VRRP steady state, compiled (same API as ``fastka._vrrp_engine_py``, its reference).

Everything that happens per advert runs here in C, on the compiled loop's C level
(``_loop.pxd``) and the codec's C level (``_vrrp.pxd``), without creating a Python object:

* a MASTER's advert timer fires (``fk_timer``): its prebuilt packets get a new IPv4 ID
  (and AH sequence number and ICV, for VRRPv2 with AH) and are queued; the adverts that
  fall due in the same loop iteration go out together with one ``sendmmsg`` per socket;
* a receive socket is readable (``fk_io``): up to 64 datagrams are read with one
  ``recvmmsg`` into a codec ``Batch`` and validated with one ``vrrp_validate_batch``
  call; an advert from the master a BACKUP follows re-arms its master-down timer;
  refused packets are counted per reason.

Python runs only when something changes: an advert the state machine has to judge, a
master-down timer that expires, the first refused packet of each reason per instance, a
send error (``EngineHandler``), and the router's calls on transitions.
"""

import logging

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.stdint cimport int16_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.math cimport ceil
from libc.string cimport memcmp, memcpy, memset

from fastka._loop cimport (Loop, fk_io, fk_io_start, fk_io_stop, fk_now, fk_timer,
                           fk_timer_active, fk_timer_init, fk_timer_start, fk_timer_stop)
from fastka._vrrp cimport (Batch, Expect, VridTable, vrrp_ah_sign, vrrp_batch_t, vrrp_encode, vrrp_fold,
                           vrrp_ipv4_header, vrrp_sum, vrrp_update_priority, vrrp_validate_batch)

from fastka._vrrp_engine_py import SlotStats


from fastka._include.linux cimport (AF_INET, AF_INET6, CMSG_DATA, CMSG_FIRSTHDR, CMSG_LEN, CMSG_NXTHDR,
                                    CMSG_SPACE, CLOCK_MONOTONIC, EAGAIN, EINTR, IPPROTO_IPV6,
                                    IPV6_HOPLIMIT, IPV6_PKTINFO, MSG_DONTROUTE, MSG_DONTWAIT, MSG_TRUNC,
                                    PR_SET_TIMERSLACK, TIMER_ABSTIME, clock_nanosleep, cmsghdr, errno,
                                    in6_pktinfo, iovec, mmsghdr, msghdr, prctl, recvmmsg, sendmmsg,
                                    sockaddr, sockaddr_in, sockaddr_in6, socklen_t, time_t, timespec)


cdef enum:
    BATCH = 64               # datagrams per recvmmsg
    SLOT_SIZE = 4096 + 128   # one datagram (the largest legal advert fits)
    CBUF = 64                # ancillary data per datagram (pktinfo + hop limit)
    NREASONS = 32
    SEND_QUEUE = 256         # adverts queued for one sendmmsg flush
    MAX_PEERS = 64           # per-peer counters per instance (more: counted together)
    IPPROTO_VRRP = 112
    IPPROTO_AH = 51
    VRRP_AUTH_AH = 2
    FLAG_ADDRESS_MISMATCH = 0x20

# The loop's timers have millisecond ticks, and each wait rounds up: a timer fires up to
# 1-2 ms late. The master-down timer is the failover time, so its loop timer is armed
# this much early and the rest is slept precisely (see _down_fired).
cdef double DOWN_EARLY = 0.002

_log = logging.getLogger("fastka.vrrp")


cdef void _report(object fn, tuple args) noexcept:
    """Call into Python from a C callback; an exception is logged, never propagated."""
    try:
        fn(*args)
    except BaseException:
        _log.exception("VRRP engine: handler %r failed", getattr(fn, "__name__", fn))


# ---------------------------------------------------------------------------- slots

cdef class _Slot:
    cdef Engine engine
    cdef fk_timer advert_timer
    cdef fk_timer down_timer
    cdef int sid
    cdef int vrid
    cdef bint listening
    cdef _Receiver rx
    # sending
    cdef object sock
    cdef int fd
    cdef int family
    cdef int version
    cdef int priority
    cdef int adver_int
    cdef int auth_type
    cdef uint8_t auth_data[8]
    cdef bytes addresses
    cdef uint8_t src[16]
    cdef int alen
    cdef int ndst
    cdef uint8_t *dsts            # 16 bytes per destination
    cdef sockaddr_in6 *dst_sa     # one sockaddr per destination (sockaddr_in for IPv4)
    cdef uint8_t *pkts            # one prebuilt packet per destination, plen bytes apart
    cdef Py_ssize_t plen          # whole IPv4 packet, or the VRRP message for IPv6
    cdef Py_ssize_t msg_off       # where the VRRP message starts in a packet
    cdef int link_len             # 14 with a link-layer (Ethernet) header, else 0
    cdef uint8_t link[14]
    cdef bint multicast
    cdef int ttl
    cdef bint pseudo_header
    cdef int ifindex
    cdef uint16_t ident
    cdef uint32_t ah_seq
    cdef double interval
    cdef bint csum_other          # the checksum's pseudo-header destination is csum_dst
    cdef uint8_t csum_dst[16]
    cdef double late_limit        # timer_expired_backup; 0 = none
    cdef double last_sent
    # receiving
    cdef bint following
    cdef uint8_t follow_src[16]
    cdef int follow_prio
    cdef int follow_int
    cdef double down_interval
    cdef double down_deadline     # exact; the loop timer is armed DOWN_EARLY before it
    # statistics
    cdef uint64_t sent
    cdef uint64_t received
    cdef uint64_t fast
    cdef uint64_t send_errors
    cdef uint64_t drops[NREASONS]
    cdef dict peers               # source -> (count, last priority, last arrival)
    cdef uint64_t follow_hits     # fast-path adverts of the followed master, not yet in peers
    cdef int follow_len
    cdef double follow_last
    cdef uint32_t reported
    cdef bint send_error_reported
    cdef bint dead

    def __cinit__(self):
        self.dsts = NULL
        self.dst_sa = NULL
        self.pkts = NULL
        self.fd = -1
        self.interval = 1.0
        self.peers = {}

    def __dealloc__(self):
        fk_timer_stop(&self.advert_timer)
        fk_timer_stop(&self.down_timer)
        PyMem_Free(self.dsts)
        PyMem_Free(self.dst_sa)
        PyMem_Free(self.pkts)

    cdef int build(self) except -1:
        """(Re)build every destination's packet at the current priority."""
        cdef int i
        cdef Py_ssize_t n, hlen
        cdef uint8_t *p
        cdef const uint8_t *addrs = <const uint8_t *><char *>self.addresses
        cdef Py_ssize_t alen_total = len(self.addresses)
        cdef bint ah = self.family == AF_INET and self.version == 2 and self.auth_type == VRRP_AUTH_AH
        cdef int L = self.link_len
        cdef uint8_t *csum_dst = self.csum_dst
        if self.family == AF_INET:
            hlen = 20 + (24 if ah else 0)
        else:
            hlen = 40 if L else 0  # with a link header we write the IPv6 header too
        n = 8 + alen_total + (8 if self.version == 2 else 0)
        PyMem_Free(self.pkts)
        self.pkts = NULL
        self.plen = L + hlen + n
        self.msg_off = L + hlen
        if self.ndst == 0:
            return 0
        self.pkts = <uint8_t *>PyMem_Malloc(self.plen * self.ndst)
        if self.pkts == NULL:
            raise MemoryError()
        memset(self.pkts, 0, self.plen * self.ndst)
        for i in range(self.ndst):
            p = self.pkts + i * self.plen
            if L:
                memcpy(p, self.link, 14)
            vrrp_encode(p + self.msg_off, self.version, self.vrid, self.priority, self.adver_int, addrs,
                        alen_total, self.auth_type, self.auth_data, 8, self.src,
                        csum_dst if self.csum_other else self.dsts + 16 * i, self.alen,
                        self.pseudo_header)
            if self.family == AF_INET:
                vrrp_ipv4_header(p + L, self.src, self.dsts + 16 * i, self.ttl, 0,
                                 IPPROTO_AH if ah else IPPROTO_VRRP, <int>(self.plen - L))
            elif L:
                # version 6, traffic class 0xc0 (as Keepalived), flow label 0
                p[L] = 0x6C
                p[L + 1] = 0
                p[L + 2] = 0
                p[L + 3] = 0
                p[L + 4] = <uint8_t>(n >> 8)
                p[L + 5] = <uint8_t>n
                p[L + 6] = IPPROTO_VRRP
                p[L + 7] = <uint8_t>self.ttl
                memcpy(p + L + 8, self.src, 16)
                memcpy(p + L + 24, self.dsts + 16 * i, 16)
        return 0


# ---------------------------------------------------------------------------- receivers

cdef class _Receiver:
    cdef Engine engine
    cdef fk_io io
    cdef object sock
    cdef int fd
    cdef int family
    cdef int rid
    cdef VridTable table
    cdef Batch batch
    cdef PyObject *by_vrid[256]   # borrowed: Engine._slots holds the references
    cdef mmsghdr msgs[BATCH]
    cdef iovec iov[BATCH]
    cdef sockaddr_in6 names[BATCH]
    cdef uint8_t cbuf[BATCH][CBUF]
    cdef uint64_t drops[NREASONS]
    cdef uint32_t reported
    cdef uint64_t truncated
    cdef bint dead

    def __dealloc__(self):
        fk_io_stop(&self.io)

    cdef void read(self) noexcept:
        cdef vrrp_batch_t *c = &self.batch.c
        cdef bint ipv6 = self.family == AF_INET6
        cdef int i, n
        cdef msghdr *m
        cdef cmsghdr *cm
        cdef in6_pktinfo *pi
        cdef int hops
        for i in range(BATCH):
            self.iov[i].iov_base = c.buffer + i * c.slot_size
            self.iov[i].iov_len = <size_t>c.slot_size
            m = &self.msgs[i].msg_hdr
            m.msg_iov = &self.iov[i]
            m.msg_iovlen = 1
            m.msg_flags = 0
            if ipv6:
                m.msg_name = &self.names[i]
                m.msg_namelen = sizeof(sockaddr_in6)
                m.msg_control = self.cbuf[i]
                m.msg_controllen = CBUF
            else:
                m.msg_name = NULL
                m.msg_namelen = 0
                m.msg_control = NULL
                m.msg_controllen = 0
        n = recvmmsg(self.fd, self.msgs, BATCH, MSG_DONTWAIT, NULL)
        if n <= 0:
            return
        for i in range(n):
            m = &self.msgs[i].msg_hdr
            if m.msg_flags & MSG_TRUNC:
                c.length[i] = 0
                self.truncated += 1
            else:
                c.length[i] = self.msgs[i].msg_len
            if ipv6:
                memcpy(c.src + 16 * i, self.names[i].sin6_addr.s6_addr, 16)
                memset(c.dst + 16 * i, 0, 16)
                hops = -1
                cm = CMSG_FIRSTHDR(m)
                while cm != NULL:
                    if cm.cmsg_level == IPPROTO_IPV6:
                        if cm.cmsg_type == IPV6_PKTINFO and cm.cmsg_len >= CMSG_LEN(sizeof(in6_pktinfo)):
                            pi = <in6_pktinfo *>CMSG_DATA(cm)
                            memcpy(c.dst + 16 * i, pi.ipi6_addr.s6_addr, 16)
                        elif cm.cmsg_type == IPV6_HOPLIMIT and cm.cmsg_len >= CMSG_LEN(sizeof(int)):
                            memcpy(&hops, CMSG_DATA(cm), sizeof(int))
                    cm = CMSG_NXTHDR(m, cm)
                c.hoplimit[i] = <int16_t>(hops if -1 <= hops <= 255 else -1)
        vrrp_validate_batch(self.table.entries, c, n)
        self.dispatch(n)

    cdef void dispatch(self, int n) noexcept:
        cdef vrrp_batch_t *c = &self.batch.c
        cdef Engine eng = self.engine
        cdef double now = fk_now(eng.loop)
        cdef int i, status
        cdef int alen = 4 if self.family == AF_INET else 16
        cdef PyObject *sp
        cdef _Slot s
        cdef uint8_t *src
        cdef bytes srcb
        for i in range(n):
            if self.dead:
                return
            status = c.status[i]
            sp = self.by_vrid[c.vrid[i]]
            src = c.src + 16 * i
            if status:
                if status >= NREASONS:
                    status = NREASONS - 1
                if sp == NULL:
                    self.drops[status] += 1
                    if not (self.reported & (1u << status)):
                        self.reported |= 1u << status
                        _report(eng.handler.engine_drop, (-1, status, PyBytes_FromStringAndSize(<char *>src, alen)))
                else:
                    s = <_Slot>sp
                    s.drops[status] += 1
                    if not (s.reported & (1u << status)):
                        s.reported |= 1u << status
                        _report(eng.handler.engine_drop, (s.sid, status, PyBytes_FromStringAndSize(<char *>src, alen)))
                continue
            if sp == NULL:
                continue
            s = <_Slot>sp
            s.received += 1
            if not s.listening:
                continue
            if (s.following and c.priority[i] == s.follow_prio and c.adver_int[i] == s.follow_int
                    and not (c.flags[i] & FLAG_ADDRESS_MISMATCH) and memcmp(src, s.follow_src, alen) == 0):
                # the steady state of a BACKUP: the master it follows is alive
                _arm_down(eng, s, now + s.down_interval)
                s.fast += 1
                s.follow_hits += 1
                s.follow_last = now
                continue
            srcb = PyBytes_FromStringAndSize(<char *>src, alen)
            _count_peer(s, srcb, c.priority[i], 1, now)
            _report(eng.handler.engine_advert, (s.sid, srcb, c.priority[i], c.adver_int[i], c.flags[i]))


# ---------------------------------------------------------------------------- C callbacks

cdef inline void _pktinfo6(msghdr *m, uint8_t *cbuf, _Slot s) noexcept:
    """The IPV6_PKTINFO control message of an IPv6 advert (our source address and
    interface) in ``cbuf`` (CBUF bytes), attached to ``m``."""
    cdef cmsghdr *cm
    cdef in6_pktinfo *pi
    memset(cbuf, 0, CBUF)
    m.msg_control = cbuf
    m.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo))
    cm = CMSG_FIRSTHDR(m)
    cm.cmsg_level = IPPROTO_IPV6
    cm.cmsg_type = IPV6_PKTINFO
    cm.cmsg_len = CMSG_LEN(sizeof(in6_pktinfo))
    pi = <in6_pktinfo *>CMSG_DATA(cm)
    memcpy(pi.ipi6_addr.s6_addr, s.src, 16)
    pi.ipi6_ifindex = s.ifindex


cdef inline void _stamp(_Slot s, uint8_t *p) noexcept:
    """Per-send fields of an IPv4 packet: the next IP ID, the AH sequence number and ICV,
    and (link-layer path, where the kernel adds nothing) the header checksum."""
    cdef uint8_t *ip
    cdef uint16_t csum
    if s.family != AF_INET:
        return
    ip = p + s.link_len
    s.ident = <uint16_t>(s.ident % 0xFFFF + 1)
    ip[4] = <uint8_t>(s.ident >> 8)
    ip[5] = <uint8_t>s.ident
    if s.version == 2 and s.auth_type == VRRP_AUTH_AH:
        s.ah_seq += 1
        vrrp_ah_sign(ip, s.plen - s.link_len, s.auth_data, s.ah_seq)
    if s.link_len:
        ip[10] = 0
        ip[11] = 0
        csum = <uint16_t>~vrrp_fold(vrrp_sum(ip, 20, 0))
        memcpy(ip + 10, &csum, 2)


cdef void _readable(fk_io *io, uint32_t events, void *data) noexcept:
    (<_Receiver>data).read()


cdef inline double _phase(double t, double interval) noexcept:
    """The first periodic advert of a new MASTER, moved up to 1/16 interval (at most
    50 ms) later onto a common grid: instances with the same interval then fall due in
    the same loop iteration and leave in one sendmmsg. Adverts stay exactly one interval
    apart; only this first gap grows, far below what a backup waits for."""
    cdef double g = interval / 16.0
    if g < 0.001:
        g = 0.001
    elif g > 0.05:
        g = 0.05
    return ceil(t / g - 1e-9) * g


cdef inline void _arm_down(Engine eng, _Slot s, double when) noexcept:
    s.down_deadline = when
    fk_timer_start(eng.loop, &s.down_timer, when - DOWN_EARLY if eng.precise else when)


cdef void _down_fired(fk_timer *t, void *data) noexcept:
    """The master-down timer's loop timer: sleep the last stretch precisely, read what
    arrived meanwhile (an advert from the master re-arms the timer: no takeover), then
    tell the state machine."""
    cdef _Slot s = <_Slot>data
    cdef Engine eng = s.engine
    cdef timespec ts
    cdef double deadline = s.down_deadline
    if eng.precise and fk_now(eng.loop) < deadline:
        ts.tv_sec = <time_t>deadline
        ts.tv_nsec = <long>((deadline - <double>ts.tv_sec) * 1e9)
        if ts.tv_nsec >= 1000000000:
            ts.tv_nsec = 999999999
        with nogil:
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
        if s.rx is not None:
            s.rx.read()
        if s.dead or fk_timer_active(&s.down_timer):
            return  # re-armed by a fresh advert, or gone
    _report(eng.handler.engine_down_timer, (s.sid,))


cdef void _count_peer(_Slot s, bytes src, int priority, uint64_t count, double when) noexcept:
    """Per-peer counters (a slow-path advert, or the fast path's count of its master)."""
    cdef object prev
    try:
        prev = s.peers.get(src)
        if prev is None:
            if len(s.peers) >= MAX_PEERS:
                src = b""
                prev = s.peers.get(src)
        s.peers[src] = ((<tuple>prev)[0] + count if prev is not None else count, priority, when)
    except BaseException:
        _log.exception("VRRP engine: peer counters")


cdef void _flush_follow(_Slot s) noexcept:
    if s.following and s.follow_hits:
        _count_peer(s, PyBytes_FromStringAndSize(<char *>s.follow_src, s.follow_len),
                    s.follow_prio, s.follow_hits, s.follow_last)
    s.follow_hits = 0


cdef void _advert_tick(fk_timer *t, void *data) noexcept:
    cdef _Slot s = <_Slot>data
    cdef Engine eng = s.engine
    cdef double nxt = t.when + s.interval
    cdef double now = fk_now(eng.loop)
    if s.late_limit > 0 and s.last_sent > 0 and now - s.last_sent > s.late_limit:
        # timer_expired_backup: we were not running; a backup may be master by now
        _report(eng.handler.engine_late, (s.sid, now - s.last_sent))
        return
    if nxt <= now:  # the loop was held up for a whole interval: skip, do not bunch
        nxt = now + s.interval
    fk_timer_start(eng.loop, t, nxt)
    eng.queue(s, s.priority, True)


cdef void _flush_fired(fk_timer *t, void *data) noexcept:
    (<Engine>data).flush()


# ---------------------------------------------------------------------------- the engine

cdef class Engine:
    """Periodic adverts and batched receive/validate/dispatch for every instance."""

    cdef Loop loop
    cdef readonly object handler
    cdef bint precise              # the loop runs on CLOCK_MONOTONIC (not a test clock)
    cdef dict _slots
    cdef dict _receivers
    cdef int _next_sid
    cdef int _next_rid
    # the send queue: adverts of this iteration, flushed with sendmmsg per socket
    cdef fk_timer flush_timer
    cdef int nq
    cdef mmsghdr qmsg[SEND_QUEUE]
    cdef iovec qiov[SEND_QUEUE]
    cdef uint8_t qcbuf[SEND_QUEUE][CBUF]
    cdef int qfd[SEND_QUEUE]
    cdef int qflags[SEND_QUEUE]
    cdef PyObject *qslot[SEND_QUEUE]   # strong references while queued

    def __cinit__(self):
        self.nq = 0

    def __init__(self, Loop loop not None, handler):
        self.loop = loop
        self.handler = handler
        self.precise = loop.clock is None
        if self.precise:
            # timers of this thread wake within 1 us rather than the default 50 us
            prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0)
        self._slots = {}
        self._receivers = {}
        self._next_sid = 1
        self._next_rid = 1
        fk_timer_init(&self.flush_timer, _flush_fired, <void *>self)

    def __dealloc__(self):
        fk_timer_stop(&self.flush_timer)
        self.drop_queue()

    cdef void drop_queue(self) noexcept:
        cdef int i
        for i in range(self.nq):
            if self.qslot[i] != NULL:
                Py_DECREF(<object>self.qslot[i])
                self.qslot[i] = NULL
        self.nq = 0

    # -- receivers ---------------------------------------------------------------------------

    def add_receiver(self, sock, int family):
        cdef _Receiver r = _Receiver.__new__(_Receiver)
        cdef int rc
        r.engine = self
        r.sock = sock
        r.fd = sock.fileno()
        r.family = family
        r.rid = self._next_rid
        self._next_rid += 1
        r.table = VridTable()
        r.batch = Batch(BATCH, SLOT_SIZE, family)
        memset(r.by_vrid, 0, sizeof(r.by_vrid))
        rc = fk_io_start(self.loop, &r.io, r.fd, 1, _readable, <void *>r)  # EPOLLIN
        if rc < 0:
            raise OSError(-rc, "cannot watch the VRRP receive socket")
        self._receivers[r.rid] = r
        return r.rid

    def remove_receiver(self, int rid):
        cdef _Receiver r = self._receivers.pop(rid, None)
        cdef _Slot s
        cdef int v
        if r is None:
            return
        fk_io_stop(&r.io)
        r.dead = True
        for v in range(256):
            if r.by_vrid[v] != NULL:
                s = <_Slot>r.by_vrid[v]
                s.rx = None
                r.by_vrid[v] = NULL

    def receiver_stats(self, int rid):
        cdef _Receiver r = self._receivers[rid]
        return {i: r.drops[i] for i in range(NREASONS) if r.drops[i]}, r.truncated

    # -- slots -------------------------------------------------------------------------------

    def add_slot(self, int vrid):
        cdef _Slot s = _Slot.__new__(_Slot)
        s.engine = self
        s.sid = self._next_sid
        self._next_sid += 1
        s.vrid = vrid
        fk_timer_init(&s.advert_timer, _advert_tick, <void *>s)
        fk_timer_init(&s.down_timer, _down_fired, <void *>s)
        self._slots[s.sid] = s
        return s.sid

    def remove_slot(self, int sid):
        cdef _Slot s = self._slots.get(sid)
        if s is None:
            return
        self.detach(sid)
        fk_timer_stop(&s.advert_timer)
        fk_timer_stop(&s.down_timer)
        s.dead = True
        del self._slots[sid]

    def attach(self, int sid, int rid, Expect expect not None):
        cdef _Slot s = self._slots[sid]
        cdef _Receiver r
        self.detach(sid)
        r = self._receivers[rid]
        if r.by_vrid[s.vrid] != NULL:
            raise ValueError(f"VRID {s.vrid} is already registered on this receiver")
        r.table[s.vrid] = expect
        r.by_vrid[s.vrid] = <PyObject *>s
        s.rx = r

    def detach(self, int sid):
        cdef _Slot s = self._slots.get(sid)
        cdef _Receiver r
        if s is None or s.rx is None:
            return
        r = s.rx
        if r.by_vrid[s.vrid] == <PyObject *>s:
            r.by_vrid[s.vrid] = NULL
            del r.table[s.vrid]
        s.rx = None

    def set_listening(self, int sid, bint listening):
        (<_Slot>self._slots[sid]).listening = listening

    # -- sending -----------------------------------------------------------------------------

    def set_advert(self, int sid, sock, *, int family, int version, int priority, int adver_int,
                   bytes addresses, int auth_type=0, bytes auth_data=b"", bytes src, dsts,
                   bint multicast, int ttl=255, bint pseudo_header=True, int ifindex=0,
                   double interval, link=None, checksum_dst=None):
        cdef _Slot s = self._slots[sid]
        cdef list dl = [bytes(d) for d in dsts]
        cdef int alen = 4 if family == AF_INET else 16
        cdef int i
        cdef bytes d
        cdef sockaddr_in *sa4
        if len(src) != alen or any(len(x) != alen for x in dl):
            raise ValueError("addresses of the wrong family")
        if len(auth_data) > 8:
            raise ValueError("auth_data longer than 8 bytes")
        if link is not None and len(link) != 14:
            raise ValueError("link must be a 14-byte Ethernet header")
        self.flush()  # queued packets point into the buffers rebuilt below
        cdef bytes lk
        if link is None:
            s.link_len = 0
        else:
            lk = bytes(link)
            s.link_len = 14
            memcpy(s.link, <char *>lk, 14)
        s.sock = sock
        s.fd = sock.fileno() if sock is not None else -1
        s.family = family
        s.version = version
        s.priority = priority
        s.adver_int = adver_int
        s.addresses = addresses
        s.auth_type = auth_type
        memset(s.auth_data, 0, 8)
        memcpy(s.auth_data, <char *>auth_data, len(auth_data))
        memset(s.src, 0, 16)
        memcpy(s.src, <char *>src, alen)
        s.alen = alen
        PyMem_Free(s.dsts)
        PyMem_Free(s.dst_sa)
        s.dsts = NULL
        s.dst_sa = NULL
        s.ndst = len(dl)
        if s.ndst:
            s.dsts = <uint8_t *>PyMem_Malloc(16 * s.ndst)
            s.dst_sa = <sockaddr_in6 *>PyMem_Malloc(sizeof(sockaddr_in6) * s.ndst)
            if s.dsts == NULL or s.dst_sa == NULL:
                raise MemoryError()
            memset(s.dst_sa, 0, sizeof(sockaddr_in6) * s.ndst)
            for i in range(s.ndst):
                d = dl[i]
                memcpy(s.dsts + 16 * i, <char *>d, alen)
                if family == AF_INET:
                    sa4 = <sockaddr_in *>&s.dst_sa[i]
                    sa4.sin_family = AF_INET
                    memcpy(&sa4.sin_addr, <char *>d, 4)
                else:
                    s.dst_sa[i].sin6_family = AF_INET6
                    memcpy(s.dst_sa[i].sin6_addr.s6_addr, <char *>d, 16)
                    s.dst_sa[i].sin6_scope_id = ifindex
        s.multicast = multicast
        s.ttl = ttl
        s.pseudo_header = pseudo_header
        s.ifindex = ifindex
        cdef bytes cd
        s.csum_other = False
        if checksum_dst is not None and family == AF_INET:
            cd = bytes(checksum_dst)
            if len(cd) != 4:
                raise ValueError("checksum_dst must be an IPv4 address")
            memset(s.csum_dst, 0, 16)
            memcpy(s.csum_dst, <char *>cd, 4)
            s.csum_other = True
        if auth_type == VRRP_AUTH_AH and s.ah_seq == 0:
            # a restarted router must not look like a replay to peers that remember our
            # last sequence number: start from the clock (see the reference)
            import time
            s.ah_seq = <uint32_t>(int(time.time()) & 0xFFFFFFFF)
        s.build()
        if s.interval != interval:
            s.interval = interval
            if fk_timer_active(&s.advert_timer):
                self.start_adverts(sid)

    def set_late_limit(self, int sid, double limit):
        (<_Slot>self._slots[sid]).late_limit = limit if limit > 0 else 0.0

    def set_priority(self, int sid, int priority):
        cdef _Slot s = self._slots[sid]
        cdef int i
        if priority == s.priority:
            return
        s.priority = priority
        for i in range(s.ndst):
            vrrp_update_priority(s.pkts + i * s.plen + s.msg_off, priority)

    def send_now(self, int sid, priority=None, *, bint reset_timer=False):
        cdef _Slot s = self._slots[sid]
        cdef int prio = s.priority if priority is None else priority
        # what the periodic timers queued goes first: a priority-0 advert must be the
        # last a peer hears from a leaving master, or its takeover waits a whole interval
        self.flush()
        self.queue(s, prio, False)
        self.flush()
        if reset_timer and fk_timer_active(&s.advert_timer):
            fk_timer_start(self.loop, &s.advert_timer, _phase(fk_now(self.loop) + s.interval, s.interval))

    def start_adverts(self, int sid):
        cdef _Slot s = self._slots[sid]
        fk_timer_start(self.loop, &s.advert_timer, _phase(fk_now(self.loop) + s.interval, s.interval))

    def stop_adverts(self, int sid):
        fk_timer_stop(&(<_Slot>self._slots[sid]).advert_timer)

    cdef void queue(self, _Slot s, int priority, bint batched) noexcept:
        """Queue ``s``'s packets (every destination) for the next flush."""
        cdef int i
        cdef uint8_t *p
        cdef msghdr *m
        if s.fd < 0 or s.ndst == 0 or s.pkts == NULL:
            return
        s.last_sent = fk_now(self.loop)
        for i in range(s.ndst):
            if self.nq >= SEND_QUEUE:
                self.flush()
            p = s.pkts + i * s.plen
            if priority != s.priority:
                # a one-off priority (0 when leaving): sent at once from a patched copy
                self.send_one(s, i, priority)
                continue
            _stamp(s, p)
            m = &self.qmsg[self.nq].msg_hdr
            self.qiov[self.nq].iov_base = p
            self.qiov[self.nq].iov_len = <size_t>s.plen
            m.msg_iov = &self.qiov[self.nq]
            m.msg_iovlen = 1
            m.msg_name = &s.dst_sa[i]
            m.msg_flags = 0
            if s.link_len:  # a packet socket bound to the interface: the frame says it all
                m.msg_name = NULL
                m.msg_namelen = 0
                m.msg_control = NULL
                m.msg_controllen = 0
            elif s.family == AF_INET:
                m.msg_namelen = sizeof(sockaddr_in)
                m.msg_control = NULL
                m.msg_controllen = 0
            else:
                m.msg_namelen = sizeof(sockaddr_in6)
                _pktinfo6(m, self.qcbuf[self.nq], s)
            self.qfd[self.nq] = s.fd
            self.qflags[self.nq] = MSG_DONTROUTE if s.multicast and not s.link_len else 0
            Py_INCREF(s)
            self.qslot[self.nq] = <PyObject *>s
            self.nq += 1
        if batched and self.nq and not fk_timer_active(&self.flush_timer):
            # after every timer of this tick: one sendmmsg for all of them
            fk_timer_start(self.loop, &self.flush_timer, fk_now(self.loop))

    cdef void send_one(self, _Slot s, int i, int priority) noexcept:
        """Send destination ``i`` of ``s`` now with another priority (a copy is patched)."""
        cdef uint8_t buf[14 + 40 + 16 + 255 * 16]
        cdef mmsghdr mm
        cdef iovec iov
        cdef uint8_t cb[CBUF]
        cdef int rc
        if s.plen > <Py_ssize_t>sizeof(buf):
            return
        memcpy(buf, s.pkts + i * s.plen, s.plen)
        vrrp_update_priority(buf + s.msg_off, priority)
        _stamp(s, buf)
        iov.iov_base = buf
        iov.iov_len = <size_t>s.plen
        memset(&mm, 0, sizeof(mm))
        mm.msg_hdr.msg_iov = &iov
        mm.msg_hdr.msg_iovlen = 1
        mm.msg_hdr.msg_name = &s.dst_sa[i]
        if s.link_len:
            mm.msg_hdr.msg_name = NULL
        elif s.family == AF_INET:
            mm.msg_hdr.msg_namelen = sizeof(sockaddr_in)
        else:
            mm.msg_hdr.msg_namelen = sizeof(sockaddr_in6)
            _pktinfo6(&mm.msg_hdr, cb, s)
        rc = sendmmsg(s.fd, &mm, 1, MSG_DONTROUTE if s.multicast and not s.link_len else 0)
        if rc == 1:
            s.sent += 1
        else:
            self.send_failed(s, errno)

    cdef void send_failed(self, _Slot s, int err) noexcept:
        s.send_errors += 1
        if not s.send_error_reported:
            s.send_error_reported = True
            _report(self.handler.engine_send_error, (s.sid, err))

    cdef void flush(self) noexcept:
        """Send the queue: one sendmmsg per run of packets for the same socket."""
        cdef int start = 0, end, k, rc, flags
        cdef _Slot s
        fk_timer_stop(&self.flush_timer)
        while start < self.nq:
            end = start + 1
            while end < self.nq and self.qfd[end] == self.qfd[start] and self.qflags[end] == self.qflags[start]:
                end += 1
            flags = self.qflags[start]
            k = start
            while k < end:
                rc = sendmmsg(self.qfd[k], &self.qmsg[k], end - k, flags)
                if rc <= 0:
                    self.send_failed(<_Slot>self.qslot[k], errno)
                    k += 1  # skip the packet that failed, send the rest
                    continue
                while rc > 0:
                    (<_Slot>self.qslot[k]).sent += 1
                    k += 1
                    rc -= 1
            start = end
        for k in range(self.nq):
            Py_DECREF(<object>self.qslot[k])
            self.qslot[k] = NULL
        self.nq = 0

    # -- master-down timer -------------------------------------------------------------------

    def arm_down(self, int sid, double when):
        _arm_down(self, <_Slot>self._slots[sid], when)

    def cancel_down(self, int sid):
        fk_timer_stop(&(<_Slot>self._slots[sid]).down_timer)

    def down_deadline(self, int sid):
        cdef _Slot s = self._slots[sid]
        return s.down_deadline if fk_timer_active(&s.down_timer) else None

    def follow(self, int sid, src, int priority, int adver_int, double down_interval):
        cdef _Slot s = self._slots[sid]
        cdef bytes b
        _flush_follow(s)
        s.down_interval = down_interval
        if src is None:
            s.following = False
            return
        b = bytes(src)
        if len(b) > 16:
            raise ValueError("address too long")
        memset(s.follow_src, 0, 16)
        memcpy(s.follow_src, <char *>b, len(b))
        s.follow_len = <int>len(b)
        s.follow_prio = priority
        s.follow_int = adver_int
        s.following = True

    # -- statistics --------------------------------------------------------------------------

    def stats(self, int sid):
        cdef _Slot s = self._slots[sid]
        _flush_follow(s)
        return SlotStats(s.sent, s.received, s.fast, s.send_errors,
                         {i: s.drops[i] for i in range(NREASONS) if s.drops[i]}, dict(s.peers))

    def clear_stats(self, int sid):
        cdef _Slot s = self._slots[sid]
        s.sent = s.received = s.fast = s.send_errors = 0
        memset(s.drops, 0, sizeof(s.drops))
        s.peers = {}
        s.follow_hits = 0

    def reset_reports(self, int sid):
        cdef _Slot s = self._slots[sid]
        s.reported = 0
        s.send_error_reported = False
