# cython: language_level=3
"""The event loop, compiled: epoll, a hierarchical timer wheel, signalfd, pidfd, eventfd.

API: docs/loop-api.md (the reference ``fastka._loop_py`` has the same API and behaviour;
both pass the same tests). The C level for other compiled modules is in ``_loop.pxd``.

Timer wheel: 5 levels of 256 slots over 1 ms ticks counted from the loop's creation
(2^40 ticks, ~34.8 years). A timer goes to the level of the highest 8-bit digit in which
its tick differs from the current tick, so that a level's slot is cascaded to the levels
below exactly when the current tick enters its range. Slots are vectors appended at the
end, and cascades keep their order, which gives FIFO order within a tick. A bitmap per
level finds the next non-empty slot with count-trailing-zeros, so time jumps (a loop
asleep for an hour) cost O(levels) per occupied slot, not O(ticks). Arm, cancel and
re-arm are O(1) (amortised); see "the timer wheel" below for the memory layout.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport ceil, floor
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memset

from fastka._include.linux cimport *

import collections
import logging
import os

from fastka._loop_py import DEVNULL, MAX_TICKS, TICK, _spawn_prepare

cdef extern from "Python.h":
    void Py_DECREF_p "Py_DECREF"(PyObject *o)
    void Py_XDECREF_p "Py_XDECREF"(PyObject *o)
    void Py_INCREF_p "Py_INCREF"(PyObject *o)
    int PyObject_AsFileDescriptor(object o) except -1

cdef extern from *:
    """
    static inline int fk_clz64(unsigned long long x) { return __builtin_clzll(x); }
    static inline int fk_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    #define fk_prefetch(p) __builtin_prefetch((p), 1, 3)
    /* A timer to be fired: a Python Timer object spans up to three cache lines around
       its embedded fk_timer (refcount and fields before and after it). */
    #define fk_prefetch_timer(p) do { const char *q_ = (const char *)(p); \
        if (q_) { __builtin_prefetch(q_ - 16, 1, 3); __builtin_prefetch(q_ + 32, 1, 3); \
                  __builtin_prefetch(q_ + 80, 1, 3); } } while (0)
    """
    int fk_clz64(unsigned long long x) nogil
    int fk_ctz64(unsigned long long x) nogil
    void fk_prefetch(const void *p) nogil
    void fk_prefetch_timer(const void *p) nogil
    void Py_FatalError(const char *message) nogil

_logger = logging.getLogger("fastka.loop")

cdef enum:
    READ_EVENTS = EPOLLIN | EPOLLERR | EPOLLHUP
    WRITE_EVENTS = EPOLLOUT | EPOLLERR | EPOLLHUP
    INITIAL_EVENTS = 256
    MAX_EVENTS = 8192
    SIGINFO_BATCH = 16

cdef int64_t C_MAX_TICKS = MAX_TICKS
cdef double EPS = 1e-6
cdef int C_DEVNULL = DEVNULL


# --- the timer wheel ----------------------------------------------------------------
#
# Each slot is a vector of (tick, timer) entries in arming order (see fk_vec in
# _loop.pxd), not a linked list: a cascade reads a slot sequentially and a due level-0
# slot moves to the batch as a whole, without touching its timers; dispatch walks the
# batch by index and prefetches the timers ahead. (With random deadlines a linked list
# costs a cache miss per timer and per move: ~450 ns/timer here, against ~40.) A
# cancelled timer leaves a tombstone (timer NULL) that is skipped; a vector that is
# mostly tombstones is compacted, so re-arming one timer forever stays bounded.

cdef enum:
    PREFETCH_AHEAD = 24
    VEC_MIN_CAP = 8
    VEC_KEEP_CAP = 256      # bigger entry arrays are freed when their vector empties

cdef void wheel_init(fk_wheel *w, double t0) noexcept nogil:
    cdef int i
    w.cur = 0
    w.t0 = t0
    w.count = 0
    for i in range(FK_LEVELS * FK_WORDS):
        w.occupied[i] = 0
    for i in range(FK_LEVELS * FK_SLOTS):
        w.slot_vec[i] = -1
    w.overdue = -1
    w.vecs = NULL
    w.nvecs = 0
    w.free_vec = -1
    w.batch = NULL
    w.nbatch = 0
    w.capbatch = 0

cdef void wheel_free(fk_wheel *w) noexcept nogil:
    """Free the vectors (their timers must have been detached)."""
    cdef int i
    for i in range(w.nvecs):
        free(w.vecs[i].e)
    free(w.vecs)
    free(w.batch)
    wheel_init(w, w.t0)

cdef void wheel_oom() noexcept nogil:
    with gil:
        Py_FatalError(b"fastka loop: out of memory in the timer wheel")

cdef inline int64_t tick_of(const fk_wheel *w, double when) noexcept nogil:
    """Deadline -> tick, rounded up (never early); float noise below 1 ns ignored.
    The same float operations as the reference, so both pick the same tick."""
    cdef double x = (when - w.t0) * 1000.0 - EPS
    if x >= <double>C_MAX_TICKS:
        return C_MAX_TICKS
    if x <= -1.0:
        return 0
    return <int64_t>ceil(x)

cdef inline int64_t now_tick(const fk_wheel *w, double now) noexcept nogil:
    cdef double x = (now - w.t0) * 1000.0 + EPS
    if x >= <double>C_MAX_TICKS:
        return C_MAX_TICKS
    if x < 0.0:
        return 0
    return <int64_t>floor(x)

cdef int vec_new(fk_wheel *w, int slot) noexcept nogil:
    """A vector from the pool (growing it); its id, or -1 without memory."""
    cdef int vid, i, n
    cdef fk_vec *p
    if w.free_vec < 0:
        n = w.nvecs * 2 if w.nvecs else 64
        p = <fk_vec *>realloc(w.vecs, n * sizeof(fk_vec))
        if p == NULL:
            return -1
        w.vecs = p
        for i in range(n - 1, w.nvecs - 1, -1):
            p[i].e = NULL
            p[i].cap = 0
            p[i].len = 0
            p[i].live = 0
            p[i].slot = FK_VEC_FREE
            p[i].next_free = w.free_vec
            w.free_vec = i
        w.nvecs = n
    vid = w.free_vec
    w.free_vec = w.vecs[vid].next_free
    w.vecs[vid].len = 0
    w.vecs[vid].live = 0
    w.vecs[vid].slot = slot
    return vid

cdef inline void vec_release(fk_wheel *w, int vid) noexcept nogil:
    cdef fk_vec *v = &w.vecs[vid]
    if v.cap > VEC_KEEP_CAP:
        free(v.e)
        v.e = NULL
        v.cap = 0
    v.len = 0
    v.live = 0
    v.slot = FK_VEC_FREE
    v.next_free = w.free_vec
    w.free_vec = vid

cdef inline int vec_push(fk_wheel *w, int vid, int64_t tick, fk_timer *t) noexcept nogil:
    cdef fk_vec *v = &w.vecs[vid]
    cdef fk_entry *p
    cdef int i = v.len
    if i == v.cap:
        p = <fk_entry *>realloc(v.e, (v.cap * 2 if v.cap else VEC_MIN_CAP) * sizeof(fk_entry))
        if p == NULL:
            return -1
        v.e = p
        v.cap = v.cap * 2 if v.cap else VEC_MIN_CAP
    v.e[i].tick = tick
    v.e[i].timer = t
    v.len = i + 1
    v.live += 1
    t.vec = vid
    t.idx = i
    return 0

cdef void vec_compact(fk_vec *v) noexcept nogil:
    cdef int i, j = 0
    cdef fk_timer *t
    for i in range(v.len):
        t = v.e[i].timer
        if t != NULL:
            v.e[j] = v.e[i]
            t.idx = j
            j += 1
    v.len = j

cdef inline int slot_of(const fk_wheel *w, int64_t tick) noexcept nogil:
    """The slot of a tick > cur: the highest 8-bit digit where it differs from cur."""
    cdef int level = (63 - fk_clz64(<uint64_t>(tick ^ w.cur))) >> 3
    return level * FK_SLOTS + <int>((tick >> (FK_LEVEL_BITS * level)) & (FK_SLOTS - 1))

cdef inline int wheel_put(fk_wheel *w, fk_timer *t, int64_t tick) noexcept nogil:
    """Append t at tick (> cur) to its slot."""
    cdef int slot = slot_of(w, tick)
    cdef int vid = w.slot_vec[slot]
    if vid < 0:
        vid = vec_new(w, slot)
        if vid < 0:
            return -1
        w.slot_vec[slot] = vid
    if vec_push(w, vid, tick, t) < 0:
        return -1
    w.occupied[slot >> 6] |= (<uint64_t>1) << (slot & 63)
    return 0

cdef inline int wheel_arm(fk_wheel *w, fk_timer *t, int64_t tick) noexcept nogil:
    """Arm an idle timer; 0, or -1 without memory."""
    if tick <= w.cur:
        if w.overdue < 0:
            w.overdue = vec_new(w, FK_VEC_OVERDUE)
            if w.overdue < 0:
                return -1
        if vec_push(w, w.overdue, w.cur, t) < 0:
            return -1
    elif wheel_put(w, t, tick) < 0:
        return -1
    t.wheel = w
    w.count += 1
    return 0

cdef inline void wheel_unlink(fk_timer *t) noexcept nogil:
    """Disarm an armed timer: its entry becomes a tombstone."""
    cdef fk_wheel *w = t.wheel
    cdef int t_vec = t.vec
    cdef fk_vec *v = &w.vecs[t_vec]
    v.e[t.idx].timer = NULL
    v.live -= 1
    t.wheel = NULL
    t.vec = -1
    w.count -= 1
    if v.live == 0:
        # empty: back to the pool (a batch vector only once the dispatch is over)
        v.len = 0
        if v.slot >= 0:
            w.occupied[v.slot >> 6] &= ~((<uint64_t>1) << (v.slot & 63))
            w.slot_vec[v.slot] = -1
            vec_release(w, t_vec)
        elif v.slot == FK_VEC_OVERDUE:
            w.overdue = -1
            vec_release(w, t_vec)
    elif v.slot != FK_VEC_BATCH and v.len - v.live > 32 and v.len - v.live > v.live:
        vec_compact(v)  # (never a batch vector: dispatch walks it by index)

cdef inline int64_t wheel_next_event(const fk_wheel *w, int *slot_out) noexcept nogil:
    """The next tick > cur where a slot is due (level 0) or cascades (level > 0), or -1.
    Lower levels hold only the current block of the level above, so the first level
    with an occupied slot after the current position has the earliest event."""
    cdef int level, shift, pos, word, base, idx
    cdef uint64_t m
    cdef int64_t cur = w.cur
    for level in range(FK_LEVELS):
        shift = FK_LEVEL_BITS * level
        pos = <int>((cur >> shift) & (FK_SLOTS - 1))
        base = level * FK_WORDS
        word = pos >> 6
        m = w.occupied[base + word] & ~(((<uint64_t>2) << (pos & 63)) - 1)
        while True:
            if m:
                idx = (word << 6) + fk_ctz64(m)
                slot_out[0] = level * FK_SLOTS + idx
                return ((cur >> (shift + FK_LEVEL_BITS)) << (shift + FK_LEVEL_BITS)) | ((<int64_t>idx) << shift)
            word += 1
            if word == FK_WORDS:
                break
            m = w.occupied[base + word]
    return -1

cdef inline int64_t wheel_next_tick(const fk_wheel *w) noexcept nogil:
    """When the loop must wake up: cur if something is overdue, else the next event."""
    cdef int slot
    if w.overdue >= 0 and w.vecs[w.overdue].live > 0:
        return w.cur
    return wheel_next_event(w, &slot)

cdef void batch_push(fk_wheel *w, int vid) noexcept nogil:
    cdef int *p
    if w.nbatch == w.capbatch:
        p = <int *>realloc(w.batch, (w.capbatch * 2 if w.capbatch else 64) * sizeof(int))
        if p == NULL:
            wheel_oom()
        w.batch = p
        w.capbatch = w.capbatch * 2 if w.capbatch else 64
    w.batch[w.nbatch] = vid
    w.nbatch += 1
    w.vecs[vid].slot = FK_VEC_BATCH

cdef void wheel_cascade(fk_wheel *w, int vid, int64_t now) noexcept nogil:
    """Redistribute a higher-level slot reached by the current tick; its timers due
    now go to the batch (in order)."""
    cdef int i, n = w.vecs[vid].len, due = -1
    cdef fk_entry e
    for i in range(n):
        e = w.vecs[vid].e[i]  # (w.vecs may move: vec_new grows the pool)
        if e.timer == NULL:
            continue
        if i + PREFETCH_AHEAD < n:
            fk_prefetch(w.vecs[vid].e[i + PREFETCH_AHEAD].timer)
        if e.tick <= now:
            if due < 0:
                due = vec_new(w, FK_VEC_BATCH)
                if due < 0:
                    wheel_oom()
                batch_push(w, due)
            if vec_push(w, due, e.tick, e.timer) < 0:
                wheel_oom()
        elif wheel_put(w, e.timer, e.tick) < 0:
            wheel_oom()
    w.slot_vec[w.vecs[vid].slot] = -1
    vec_release(w, vid)

cdef void wheel_advance(fk_wheel *w, int64_t target) noexcept nogil:
    """Move every timer due at or before target to the batch, in firing order."""
    cdef int slot = 0, vid
    cdef int64_t nxt
    if w.overdue >= 0 and w.vecs[w.overdue].live > 0:
        batch_push(w, w.overdue)
        w.overdue = -1
    while w.cur < target:
        nxt = wheel_next_event(w, &slot)
        if nxt < 0 or nxt > target:
            w.cur = target
            return
        w.cur = nxt
        w.occupied[slot >> 6] &= ~((<uint64_t>1) << (slot & 63))
        vid = w.slot_vec[slot]
        if slot < FK_SLOTS:  # level 0: all of the slot is due at this tick
            w.slot_vec[slot] = -1
            batch_push(w, vid)
        else:
            wheel_cascade(w, vid, nxt)

cdef inline void prefetch_next(fk_wheel *w, int *pj, int *pi) noexcept nogil:
    """Prefetch the timer of the batch entry at the cursor and move the cursor on."""
    cdef fk_vec *v
    while pj[0] < w.nbatch:
        v = &w.vecs[w.batch[pj[0]]]
        if pi[0] < v.len:
            fk_prefetch_timer(v.e[pi[0]].timer)
            pi[0] += 1
            return
        pj[0] += 1
        pi[0] = 0

cdef void wheel_requeue_batch(fk_wheel *w, int j, int i) noexcept nogil:
    """A BaseException stopped the dispatch at entry i of batch vector j: what is left
    of the batch goes in front of the overdue timers (first in the next iteration)."""
    cdef int nv = vec_new(w, FK_VEC_OVERDUE)
    cdef int k, vid, n
    cdef fk_timer *t
    if nv < 0:
        wheel_oom()
    while j < w.nbatch:
        vid = w.batch[j]
        n = w.vecs[vid].len
        while i < n:
            t = w.vecs[vid].e[i].timer
            if t != NULL and vec_push(w, nv, w.vecs[vid].e[i].tick, t) < 0:
                wheel_oom()
            i += 1
        i = 0
        j += 1
    if w.overdue >= 0:
        vid = w.overdue
        for k in range(w.vecs[vid].len):
            t = w.vecs[vid].e[k].timer
            if t != NULL and vec_push(w, nv, w.vecs[vid].e[k].tick, t) < 0:
                wheel_oom()
        vec_release(w, vid)
    w.overdue = nv
    for k in range(w.nbatch):
        vec_release(w, w.batch[k])
    w.nbatch = 0


# --- calling Python -------------------------------------------------------------------

cdef inline void call_py(Loop loop, object cb, object args) noexcept:
    """cb(*args); an Exception is logged, a BaseException kept for run_once to raise."""
    cdef Py_ssize_t n
    try:
        n = PyTuple_GET_SIZE(args)
        if n == 0:
            cb()
        elif n == 1:
            cb(<object>PyTuple_GET_ITEM(args, 0))
        else:
            cb(*args)
    except Exception:
        _log_exception(cb)
    except BaseException as e:
        loop.deferred = e

cdef inline void call_py1(Loop loop, object cb, object arg) noexcept:
    try:
        cb(arg)
    except Exception:
        _log_exception(cb)
    except BaseException as e:
        loop.deferred = e

cdef inline void call_py2(Loop loop, object cb, object a, object b) noexcept:
    try:
        cb(a, b)
    except Exception:
        _log_exception(cb)
    except BaseException as e:
        loop.deferred = e

cdef void _log_exception(object cb) noexcept:
    try:
        _logger.exception("exception in loop callback %r", cb)
    except BaseException:
        pass

cdef inline int _fileno(object fd) except -1:
    cdef long n
    if type(fd) is int:
        n = fd
    else:
        n = PyObject_AsFileDescriptor(fd)
    if n < 0 or n > 0x7fffffff:
        raise ValueError(f"invalid file descriptor {n}")
    return <int>n

cdef inline object _oserror(int e, object filename=None):
    if filename is None:
        return OSError(e, os.strerror(e))
    return OSError(e, os.strerror(e), filename)

cdef inline int ceil_ms(double seconds) noexcept nogil:
    if seconds <= 0.0:
        return 0
    seconds = ceil(seconds * 1000.0)
    if seconds > 2147483647.0:
        return 2147483647
    return <int>seconds


# --- Timer ------------------------------------------------------------------------------

@cython.final
@cython.freelist(1024)
cdef class Timer:
    """A one-shot or periodic timer (``Loop.call_at`` and friends return it)."""

    cdef fk_timer t
    cdef Loop loop
    cdef object callback
    cdef tuple args
    cdef double interval        # > 0: periodic
    cdef double base            # periodic: deadlines are base + k * interval
    cdef int64_t k

    def __init__(self) -> None:
        raise TypeError("timers are made by Loop.call_at/call_later/call_soon/call_periodic")

    @property
    def when(self) -> float:
        """The deadline (for a periodic timer: the next one)."""
        return self.t.when

    @property
    def active(self) -> bool:
        """Armed and neither fired (one-shot) nor cancelled."""
        return self.t.wheel != NULL

    def cancel(self) -> None:
        """Disarm; idempotent, safe from any callback including the timer's own."""
        if self.t.wheel != NULL:
            wheel_unlink(&self.t)
            Py_DECREF(self)  # the wheel's reference

    def reschedule(self, double when) -> None:
        """Re-arm at ``when`` (absolute); works on fired and cancelled timers too.

        A periodic timer continues at ``when + k*interval``.
        """
        if self.interval > 0.0:
            self.base = when
            self.k = 0
        arm_py(self.loop, self, when, False)

    def __repr__(self) -> str:
        state = "active" if self.t.wheel != NULL else "idle"
        return f"<Timer {state} when={self.t.when:.6f} {self.callback!r}>"


cdef inline Timer new_timer(Loop loop, object callback, tuple args):
    cdef Timer tm = Timer.__new__(Timer)
    tm.t.wheel = NULL
    tm.t.vec = -1
    tm.t.fn = timer_fire
    tm.t.data = <void *>tm
    tm.loop = loop
    tm.callback = callback
    tm.args = args
    return tm

cdef inline int arm_py(Loop loop, Timer tm, double when, bint soon) except -1:
    if loop.is_closed:
        raise RuntimeError("the loop is closed")
    if when != when:
        raise ValueError("timer deadline is NaN")
    cdef int64_t tick = 0 if soon else tick_of(&loop.wheel, when)
    tm.t.when = when
    if tm.t.wheel != NULL:
        wheel_unlink(&tm.t)
    else:
        Py_INCREF(tm)  # the wheel's reference, dropped when it fires or is cancelled
    if wheel_arm(&loop.wheel, &tm.t, tick) < 0:
        Py_DECREF(tm)
        raise MemoryError()
    return 0

cdef double periodic_next(Loop loop, Timer tm) noexcept:
    """The first deadline of tm's schedule in a tick after the current one (skipping
    missed ticks); the same arithmetic as the reference."""
    cdef fk_wheel *w = &loop.wheel
    cdef int64_t cur = w.cur
    cdef int64_t k = tm.k + 1
    cdef int64_t k2
    cdef double when = tm.base + k * tm.interval
    cdef double now
    if tick_of(w, when) <= cur:
        now = w.t0 + cur / 1000.0
        k2 = <int64_t>floor((now - tm.base) / tm.interval)
        if k2 > k:
            k = k2
        when = tm.base + k * tm.interval
        while tick_of(w, when) <= cur:
            k += 1
            when = tm.base + k * tm.interval
    tm.k = k
    return when

cdef void timer_fire(fk_timer *ft, void *data) noexcept:
    cdef Timer tm = <Timer>data  # a local reference...
    Py_DECREF(tm)                # ...taking over the wheel's
    cdef Loop loop = tm.loop
    cdef double when
    if tm.interval > 0.0:
        when = periodic_next(loop, tm)
        tm.t.when = when
        Py_INCREF(tm)
        if wheel_arm(&loop.wheel, &tm.t, tick_of(&loop.wheel, when)) < 0:
            wheel_oom()
    call_py(loop, tm.callback, tm.args)


# --- Waiter -----------------------------------------------------------------------------

@cython.final
cdef class Waiter:
    """A one-shot wait for an fd to become readable/writable, or a timeout."""

    cdef Loop loop
    cdef int fd                 # -1 once fired or cancelled
    cdef int slot               # 0 reader, 1 writer
    cdef object callback
    cdef fk_timer timer         # the timeout (no reference: the fd table holds one)

    def __init__(self) -> None:
        raise TypeError("waiters are made by Loop.wait_readable/wait_writable")

    @property
    def active(self) -> bool:
        """Still waiting (neither fired nor cancelled)."""
        return self.fd >= 0

    def cancel(self) -> None:
        """Stop waiting; the callback is not called. Idempotent."""
        if self.fd >= 0:
            self.loop.fd_clear(self.fd, self.slot, self)

    cdef inline void finish(self) noexcept:
        self.fd = -1
        if self.timer.wheel != NULL:
            wheel_unlink(&self.timer)


cdef void waiter_timeout(fk_timer *ft, void *data) noexcept:
    cdef Waiter w = <Waiter>data
    cdef Loop loop = w.loop
    if w.fd < 0:
        return
    try:
        loop.fd_clear(w.fd, w.slot, w)
    except BaseException:
        _log_exception(w.callback)
    call_py1(loop, w.callback, False)


# --- datagram readers --------------------------------------------------------------------

@cython.final
cdef class _DgramGroup:
    """The readers added with Loop.add_datagram_batch_reader and one callback."""
    cdef object callback
    cdef list items             # (fd, data) read this iteration
    cdef bint queued


@cython.final
cdef class _Dgram:
    """The reader of an fd added with Loop.add_datagram_reader (or _batch_reader)."""
    cdef object callback
    cdef tuple args
    cdef _DgramGroup group      # batch reader: its group, else None
    cdef object fdobj           # the fd as an int object (batch readers)
    cdef object error_callback
    cdef int batch
    cdef int bufsize
    cdef int bursting           # the last wake-up found several datagrams: recvmmsg(batch)
    cdef int probe              # single mode: wake-ups until the next recvmmsg(batch) probe


cdef int buffer_of(object data, Py_buffer *view, const char **p, Py_ssize_t *n) except -1:
    """Point p/n at data's bytes: bytes directly (0), anything else through the buffer
    protocol (1: the view must be released)."""
    if PyBytes_CheckExact(data):
        p[0] = PyBytes_AS_STRING(data)
        n[0] = PyBytes_GET_SIZE(data)
        return 0
    PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    p[0] = <const char *>view.buf
    n[0] = view.len
    return 1


# --- connect checks --------------------------------------------------------------------------

cdef int sockaddr_of(object host, object port, sockaddr_storage *ss, socklen_t *size) except -1:
    """A numeric IPv4/IPv6 address (no name lookup) and a port -> sockaddr; the family."""
    cdef sockaddr_in *sin = <sockaddr_in *>ss
    cdef sockaddr_in6 *sin6 = <sockaddr_in6 *>ss
    cdef int p = port
    cdef bytes b = host.encode("ascii") if isinstance(host, str) else bytes(host)
    if not 0 <= p <= 65535:
        raise ValueError(f"port out of range: {port}")
    memset(ss, 0, sizeof(sockaddr_storage))
    if inet_pton(AF_INET, b, &sin.sin_addr) == 1:
        sin.sin_family = AF_INET
        sin.sin_port = htons(<uint16_t>p)
        size[0] = sizeof(sockaddr_in)
        return AF_INET
    if inet_pton(AF_INET6, b, &sin6.sin6_addr) == 1:
        sin6.sin6_family = AF_INET6
        sin6.sin6_port = htons(<uint16_t>p)
        size[0] = sizeof(sockaddr_in6)
        return AF_INET6
    raise ValueError(f"not an IP address: {host!r}")


@cython.final
cdef class ConnectCheck:
    """A pending ``Loop.connect_check``."""

    cdef Loop loop
    cdef int fd                 # -1 once settled or cancelled
    cdef int result             # errno known at once (reported next iteration), or -1
    cdef object callback
    cdef fk_io io
    cdef fk_timer timer

    def __init__(self) -> None:
        raise TypeError("checks are made by Loop.connect_check")

    @property
    def active(self) -> bool:
        """Still pending (neither reported nor cancelled)."""
        return self.fd >= 0

    def cancel(self) -> None:
        """Abort: the socket is closed, the callback not called. Idempotent."""
        if self.fd >= 0:
            self.finish()

    cdef void finish(self) noexcept:
        io_detach(&self.io)  # no EPOLL_CTL_DEL: close() drops the registration (our fd only)
        fk_timer_stop(&self.timer)
        close(self.fd)
        self.fd = -1
        Py_DECREF(self)  # the pending reference (the caller holds another)


cdef void check_ready(fk_io *io, uint32_t events, void *data) noexcept:
    cdef ConnectCheck c = <ConnectCheck>data
    cdef int err = 0
    cdef socklen_t size = sizeof(err)
    if getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &size) < 0:
        err = errno
    c.finish()
    call_py1(c.loop, c.callback, err)


cdef void check_timer(fk_timer *t, void *data) noexcept:
    cdef ConnectCheck c = <ConnectCheck>data
    cdef int err = ETIMEDOUT if c.result < 0 else c.result
    c.finish()
    call_py1(c.loop, c.callback, err)


# --- children -----------------------------------------------------------------------------

@cython.final
cdef class _Child:
    cdef Loop loop
    cdef int pid
    cdef int pidfd
    cdef object callback
    cdef fk_io io


cdef void child_ready(fk_io *io, uint32_t events, void *data) noexcept:
    cdef _Child ch = <_Child>data
    cdef Loop loop = ch.loop
    cdef siginfo_t info
    cdef int rc
    memset(&info, 0, sizeof(info))
    if waitid(P_PIDFD, ch.pidfd, &info, WEXITED | WNOHANG) < 0:
        rc = 255  # reaped by someone else: the status is lost
    elif info.si_pid == 0:
        return  # not yet
    elif info.si_code == CLD_EXITED:
        rc = info.si_status
    else:
        rc = -info.si_status
    loop.children.pop(ch.pid, None)
    fk_io_stop(&ch.io)
    close(ch.pidfd)
    ch.pidfd = -1
    try:
        ch.callback(ch.pid, rc)
    except Exception:
        _log_exception(ch.callback)
    except BaseException as e:
        loop.deferred = e


# --- internal watchers ----------------------------------------------------------------------

cdef void eventfd_ready(fk_io *io, uint32_t events, void *data) noexcept:
    cdef Loop loop = <Loop>data
    cdef eventfd_t value
    eventfd_read(loop.evfd, &value)
    q = loop.threadsafe
    try:
        while q:
            cb, args = q.popleft()
            arm_py(loop, new_timer(loop, cb, args), loop.now(), True)
    except BaseException:
        _log_exception(loop.call_soon_threadsafe)


cdef void signalfd_ready(fk_io *io, uint32_t events, void *data) noexcept:
    cdef Loop loop = <Loop>data
    cdef signalfd_siginfo infos[SIGINFO_BATCH]
    cdef ssize_t n = read(loop.sigfd, infos, SIGINFO_BATCH * sizeof(signalfd_siginfo))
    cdef Py_ssize_t i
    if n <= 0:
        return
    for i in range(n // <ssize_t>sizeof(signalfd_siginfo)):
        signum = <int>infos[i].ssi_signo
        cb = loop.signal_handlers.get(signum)
        if cb is not None:
            call_py1(loop, cb, signum)


# --- spawn (the child side runs between fork and exec: async-signal-safe calls only) --------

cdef void child_exec(const char *prog, char **argv, char **envp, int uid, int gid,
                     const gid_t *gids, int ngids, const char *cwd, const int *stdio,
                     int errfd) noexcept nogil:
    """Set the child up and exec; returns only on failure (errno says why)."""
    cdef sigaction_t sa
    cdef sigset_t empty
    cdef int s, i
    cdef int tmp[3]
    memset(&sa, 0, sizeof(sa))
    sa.sa_handler = SIG_DFL
    for s in range(1, NSIG):
        if s != SIGKILL and s != SIGSTOP:
            sigaction(s, &sa, NULL)  # (fails harmlessly for libc-internal signals)
    sigemptyset(&empty)
    sigprocmask(SIG_SETMASK, &empty, NULL)
    if setpgid(0, 0) < 0:
        return
    for i in range(3):
        tmp[i] = -1
        if stdio[i] == C_DEVNULL:
            tmp[i] = open(b"/dev/null", O_RDWR | O_CLOEXEC)
        elif stdio[i] >= 0:
            tmp[i] = fcntl(stdio[i], F_DUPFD_CLOEXEC, 3)  # out of 0-2 first: swaps work
        if stdio[i] != -1 and tmp[i] < 0:
            return
    for i in range(3):
        if tmp[i] >= 0 and dup2(tmp[i], i) < 0:
            return
    if ngids >= 0 and setgroups(<size_t>ngids, gids) < 0:
        return
    if gid >= 0 and setgid(<gid_t>gid) < 0:
        return
    if uid >= 0 and setuid(<uid_t>uid) < 0:
        return
    if cwd != NULL and chdir(cwd) < 0:
        return
    if errfd > 3:
        close_range(3, <unsigned int>(errfd - 1), 0)
    close_range(<unsigned int>(errfd + 1), <unsigned int>0xffffffff, 0)
    execve(prog, argv, envp)


cdef void child_fail(int errfd) noexcept nogil:
    cdef int e = errno
    write(errfd, &e, sizeof(e))
    _exit(127)


cdef char **bytes_array(list items) except NULL:
    """A NULL-terminated char* array over the bytes of items (which must outlive it)."""
    cdef char **arr = <char **>PyMem_Malloc((len(items) + 1) * sizeof(char *))
    cdef Py_ssize_t i
    cdef bytes b
    if arr == NULL:
        raise MemoryError()
    for i in range(len(items)):
        b = items[i]
        arr[i] = b
    arr[len(items)] = NULL
    return arr


# --- the loop -------------------------------------------------------------------------------

cdef class Loop:
    """One scheduler per process: epoll, timers, signals, children, thread wake-ups.

    ``clock`` is a test hook: a callable returning the time in seconds, used instead of
    CLOCK_MONOTONIC for timers and ``time()`` (the loop still waits in real time, so drive
    it with ``run_once(0)``).
    """

    def __cinit__(self, *args, **kwargs):
        self.epfd = -1
        self.evfd = -1
        self.sigfd = -1
        self.fds = NULL
        self.nfds = 0
        self.events = NULL
        self.nevents = 0
        self.rbuf = NULL
        self.rbuf_size = 0
        self.rmsgs = NULL
        self.riov = NULL
        self.nrmsgs = 0
        self.is_closed = True  # until __init__ succeeds
        self.sig_ours[0] = 0
        self.sig_ours[1] = 0
        self.ev_io.loop = NULL
        self.sig_io.loop = NULL
        wheel_init(&self.wheel, 0.0)

    def __init__(self, *, clock=None) -> None:
        if self.epfd >= 0:
            raise RuntimeError("Loop.__init__ called twice")
        self.clock = clock
        self.signal_handlers = {}
        self.children = {}
        self.threadsafe = collections.deque()
        self.deferred = None
        self.dgram_groups = {}
        self.dgram_queue = []
        self.wheel.t0 = self.now()
        self.events = PyMem_Malloc(INITIAL_EVENTS * sizeof(epoll_event))
        if self.events == NULL:
            raise MemoryError()
        self.nevents = INITIAL_EVENTS
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            raise _oserror(errno)
        self.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self.evfd < 0:
            raise _oserror(errno)
        self.is_closed = False
        cdef int r = fk_io_start(self, &self.ev_io, self.evfd, EPOLLIN, eventfd_ready, <void *>self)
        if r < 0:
            self.close()
            raise _oserror(-r)

    def __dealloc__(self):
        self.release()

    # --- time ----------------------------------------------------------------------

    cdef double now(self) except? -1.0:
        cdef timespec ts
        if self.clock is None:
            clock_gettime(CLOCK_MONOTONIC, &ts)
            return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9
        return float(self.clock())

    def time(self) -> float:
        """Now, CLOCK_MONOTONIC seconds (or the test clock)."""
        return self.now()

    # --- timers --------------------------------------------------------------------

    def call_at(self, double when, callback, *args) -> Timer:
        """Call ``callback(*args)`` at ``when`` (loop time)."""
        cdef Timer tm = new_timer(self, callback, args)
        arm_py(self, tm, when, False)
        return tm

    def call_later(self, double delay, callback, *args) -> Timer:
        """Call ``callback(*args)`` after ``delay`` seconds."""
        cdef Timer tm = new_timer(self, callback, args)
        arm_py(self, tm, self.now() + delay, False)
        return tm

    def call_soon(self, callback, *args) -> Timer:
        """Call ``callback(*args)`` in the next iteration (FIFO with other due timers)."""
        cdef Timer tm = new_timer(self, callback, args)
        arm_py(self, tm, self.now(), True)
        return tm

    def call_periodic(self, double interval, callback, *args, first=None) -> Timer:
        """Call ``callback(*args)`` at ``first + k*interval`` (no drift; late ticks are skipped)."""
        if not interval > 0.0:
            raise ValueError("interval must be > 0")
        cdef Timer tm = new_timer(self, callback, args)
        cdef double f = self.now() + interval if first is None else first
        tm.interval = interval
        tm.base = f
        tm.k = 0
        arm_py(self, tm, f, False)
        return tm

    # --- file descriptors ----------------------------------------------------------

    cdef int ensure_fd(self, int fd) except -1:
        cdef int n
        cdef fk_fdent *p
        if fd < self.nfds:
            return 0
        n = self.nfds * 2 if self.nfds else 64
        if n <= fd:
            n = fd + 64
        p = <fk_fdent *>PyMem_Realloc(self.fds, n * sizeof(fk_fdent))
        if p == NULL:
            raise MemoryError()
        memset(&p[self.nfds], 0, (n - self.nfds) * sizeof(fk_fdent))
        self.fds = p
        self.nfds = n
        return 0

    cdef int epoll_apply(self, int fd, fk_fdent *ent, bint adding) except -1:
        """Tell epoll the interest of ent (see the reference's _epoll_update: when a
        callback is added the call is made even if the mask is unchanged, because the fd
        may have been closed and its number reused since it was registered)."""
        cdef uint32_t mask = (EPOLLIN if ent.rcb != NULL else 0) | (EPOLLOUT if ent.wcb != NULL else 0)
        cdef uint32_t old = ent.mask
        cdef epoll_event ev
        cdef int r
        if mask == old and not adding:
            return 0
        ev.events = mask
        ev.data.u64 = 0
        ev.data.fd = fd
        if not adding:
            # less interest: a failure means the kernel dropped the closed fd already
            epoll_ctl(self.epfd, EPOLL_CTL_DEL if mask == 0 else EPOLL_CTL_MOD, fd, &ev)
        elif old == 0:
            r = epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &ev)
            if r < 0 and errno == EEXIST:
                r = epoll_ctl(self.epfd, EPOLL_CTL_MOD, fd, &ev)
            if r < 0:
                raise _oserror(errno)
        else:
            r = epoll_ctl(self.epfd, EPOLL_CTL_MOD, fd, &ev)
            if r < 0 and errno == ENOENT:
                r = epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &ev)
            if r < 0:
                raise _oserror(errno)
        ent.mask = mask
        return 0

    cdef int fd_set(self, int fd, int slot, object cb, object args) except -1:
        """Install cb (with args, or a Waiter when args is None) in fd's slot."""
        cdef fk_fdent *ent
        cdef PyObject *ocb
        cdef PyObject *oargs
        cdef PyObject *nargs = NULL if args is None else <PyObject *>args
        if self.is_closed:
            raise RuntimeError("the loop is closed")
        self.ensure_fd(fd)
        ent = &self.fds[fd]
        if ent.cio != NULL:
            raise _oserror(EBUSY, "fd watched by C code")
        if slot == 0:
            ocb = ent.rcb
            oargs = ent.rargs
            ent.rcb = <PyObject *>cb
            ent.rargs = nargs
        else:
            ocb = ent.wcb
            oargs = ent.wargs
            ent.wcb = <PyObject *>cb
            ent.wargs = nargs
        Py_INCREF(cb)
        if nargs != NULL:
            Py_INCREF_p(nargs)
        try:
            self.epoll_apply(fd, ent, True)
        except BaseException:
            ent = &self.fds[fd]
            if slot == 0:
                ent.rcb = ocb
                ent.rargs = oargs
            else:
                ent.wcb = ocb
                ent.wargs = oargs
            Py_DECREF(cb)
            if nargs != NULL:
                Py_DECREF_p(nargs)
            raise
        if ocb != NULL:
            if oargs == NULL and type(<object>ocb) is Waiter:
                (<Waiter>ocb).finish()
            Py_DECREF_p(ocb)
            Py_XDECREF_p(oargs)
        return 0

    cdef bint fd_clear(self, int fd, int slot, object expect) except -1:
        """Empty fd's slot (only if it holds `expect`, when given); False if it was empty."""
        cdef fk_fdent *ent
        cdef PyObject *ocb
        cdef PyObject *oargs
        cdef epoll_event ev
        if fd < 0 or fd >= self.nfds:
            return False
        ent = &self.fds[fd]
        ocb = ent.rcb if slot == 0 else ent.wcb
        if ocb == NULL or (expect is not None and ocb != <PyObject *>expect):
            return False
        if slot == 0:
            oargs = ent.rargs
            ent.rcb = NULL
            ent.rargs = NULL
        else:
            oargs = ent.wargs
            ent.wcb = NULL
            ent.wargs = NULL
        if ent.rcb == NULL and ent.wcb == NULL:
            if ent.mask:
                ev.events = 0
                ev.data.u64 = 0
                epoll_ctl(self.epfd, EPOLL_CTL_DEL, fd, &ev)  # (fails if closed: fine)
                ent.mask = 0
        else:
            self.epoll_apply(fd, ent, False)
        if oargs == NULL and type(<object>ocb) is Waiter:
            (<Waiter>ocb).finish()
        Py_DECREF_p(ocb)
        Py_XDECREF_p(oargs)
        return True

    def add_reader(self, fd, callback, *args) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is readable (replaces a previous reader)."""
        self.fd_set(_fileno(fd), 0, callback, args)

    def remove_reader(self, fd) -> bool:
        """Stop watching ``fd`` for reading; False if it was not watched."""
        return self.fd_clear(_fileno(fd), 0, None)

    def add_writer(self, fd, callback, *args) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is writable (replaces a previous writer)."""
        self.fd_set(_fileno(fd), 1, callback, args)

    def remove_writer(self, fd) -> bool:
        """Stop watching ``fd`` for writing; False if it was not watched."""
        return self.fd_clear(_fileno(fd), 1, None)

    cdef object wait(self, object fd, int slot, object timeout, object callback):
        cdef int n = _fileno(fd)
        cdef Waiter w = Waiter.__new__(Waiter)
        w.loop = self
        w.fd = n
        w.slot = slot
        w.callback = callback
        fk_timer_init(&w.timer, waiter_timeout, <void *>w)
        self.fd_set(n, slot, w, None)
        if timeout is not None:
            w.timer.when = self.now() + <double>timeout
            if w.timer.when != w.timer.when:
                w.cancel()
                raise ValueError("timeout is NaN")
            if wheel_arm(&self.wheel, &w.timer, tick_of(&self.wheel, w.timer.when)) < 0:
                w.cancel()
                raise MemoryError()
        return w

    def wait_readable(self, fd, timeout, callback) -> Waiter:
        """One-shot: ``callback(True)`` when ``fd`` is readable, ``callback(False)`` on timeout."""
        return self.wait(fd, 0, timeout, callback)

    def wait_writable(self, fd, timeout, callback) -> Waiter:
        """One-shot: ``callback(True)`` when ``fd`` is writable, ``callback(False)`` on timeout."""
        return self.wait(fd, 1, timeout, callback)

    # --- datagrams -----------------------------------------------------------------

    def add_datagram_reader(self, fd, callback, *args, error_callback=None, int batch=16,
                            int bufsize=2048) -> None:
        """Read the datagrams of ``fd`` in the loop: ``callback(*args, data)`` for each.

        Up to ``batch`` datagrams per wake-up (one recvmmsg), each up to ``bufsize`` bytes
        (longer ones are truncated). A read error (e.g. ECONNREFUSED on a connected UDP
        socket) goes to ``error_callback(exc)``. Occupies the fd's reader slot.
        """
        if not 1 <= batch <= 1024 or bufsize < 1:
            raise ValueError("batch must be 1..1024 and bufsize >= 1")
        cdef _Dgram dg = _Dgram.__new__(_Dgram)
        dg.callback = callback
        dg.args = args
        dg.error_callback = error_callback
        dg.batch = batch
        dg.bufsize = bufsize
        dg.bursting = 0
        dg.probe = 1
        dg.group = None
        self.fd_set(_fileno(fd), 0, dg, None)

    def add_datagram_batch_reader(self, fd, callback, *, error_callback=None, int batch=16,
                                  int bufsize=2048) -> None:
        """Like ``add_datagram_reader``, but ``callback(datagrams)`` is called once per loop
        iteration with the ``(fd, data)`` read by every batch reader sharing ``callback``
        (after the iteration's fd events, before its timers). It may return an iterable
        of ``(fd, data)`` replies, which the loop sends (send() in C; errors are logged
        at debug level and skipped). One Python call per iteration, not per datagram.
        """
        if not 1 <= batch <= 1024 or bufsize < 1:
            raise ValueError("batch must be 1..1024 and bufsize >= 1")
        cdef int n = _fileno(fd)
        group = self.dgram_groups.get(callback)
        if group is None:
            group = _DgramGroup.__new__(_DgramGroup)
            (<_DgramGroup>group).callback = callback
            (<_DgramGroup>group).items = []
            (<_DgramGroup>group).queued = False
            self.dgram_groups[callback] = group
        cdef _Dgram dg = _Dgram.__new__(_Dgram)
        dg.callback = callback
        dg.args = ()
        dg.error_callback = error_callback
        dg.batch = batch
        dg.bufsize = bufsize
        dg.bursting = 0
        dg.probe = 1
        dg.group = <_DgramGroup>group
        dg.fdobj = n
        self.fd_set(n, 0, dg, None)

    cdef int flush_datagram_groups(self) except -1:
        cdef _DgramGroup g
        cdef Py_buffer view
        cdef const char *p
        cdef Py_ssize_t size
        cdef int release, fd
        cdef ssize_t r
        while self.dgram_queue:
            queue = self.dgram_queue
            self.dgram_queue = []
            for go in queue:
                g = <_DgramGroup>go
                items = g.items
                g.items = []
                g.queued = False
                try:
                    replies = g.callback(items)
                except Exception:
                    _log_exception(g.callback)
                    continue
                except BaseException as e:
                    self.deferred = e
                    return 0
                if replies is None:
                    continue
                try:
                    for reply in replies:
                        fd = reply[0]
                        release = buffer_of(reply[1], &view, &p, &size)
                        r = send(fd, p, size, MSG_DONTWAIT)
                        if release:
                            PyBuffer_Release(&view)
                        if r < 0:
                            _logger.debug("datagram reply on fd %d: %s", fd, os.strerror(errno))
                except Exception:
                    _log_exception(g.callback)
        return 0

    cdef int read_datagrams(self, int fd, object dgo) except -1:
        cdef _Dgram dg = <_Dgram>dgo
        cdef int i, n, e
        cdef size_t need = <size_t>dg.batch * <size_t>dg.bufsize
        cdef void *p
        cdef mmsghdr *msgs
        cdef iovec *iov
        cdef char *buf
        cdef int vlen
        cdef ssize_t r
        cdef _DgramGroup group
        if need > self.rbuf_size:
            p = PyMem_Realloc(self.rbuf, need)
            if p == NULL:
                raise MemoryError()
            self.rbuf = <char *>p
            self.rbuf_size = need
        if dg.batch > self.nrmsgs:
            p = PyMem_Realloc(self.rmsgs, dg.batch * sizeof(mmsghdr))
            if p == NULL:
                raise MemoryError()
            self.rmsgs = p
            p = PyMem_Realloc(self.riov, dg.batch * sizeof(iovec))
            if p == NULL:
                raise MemoryError()
            self.riov = p
            self.nrmsgs = dg.batch
        msgs = <mmsghdr *>self.rmsgs
        iov = <iovec *>self.riov
        buf = self.rbuf
        # One datagram per wake-up is the common case (a reply, an advert): recv() then,
        # as recvmmsg() would try (and fail) to read a second one. After a burst, or on
        # every 16th wake-up as a probe, read a whole batch with one recvmmsg().
        vlen = 1
        if dg.batch > 1:
            if dg.bursting:
                vlen = dg.batch
            else:
                dg.probe -= 1
                if dg.probe <= 0:
                    dg.probe = 16
                    vlen = dg.batch
        if vlen == 1:
            r = recv(fd, buf, dg.bufsize, MSG_DONTWAIT)
            n = -1 if r < 0 else 1
            msgs[0].msg_len = <unsigned int>r
        else:
            memset(msgs, 0, vlen * sizeof(mmsghdr))
            for i in range(vlen):
                iov[i].iov_base = buf + <size_t>i * dg.bufsize
                iov[i].iov_len = dg.bufsize
                msgs[i].msg_hdr.msg_iov = &iov[i]
                msgs[i].msg_hdr.msg_iovlen = 1
            n = recvmmsg(fd, msgs, vlen, MSG_DONTWAIT, NULL)
            dg.bursting = n > 1
        if n < 0:
            e = errno
            if e == EAGAIN or e == EINTR:
                return 0
            exc = _oserror(e)
            if dg.error_callback is not None:
                call_py1(self, dg.error_callback, exc)
            else:
                _logger.debug("datagram reader on fd %d: %s", fd, exc)
            return 0
        if dg.group is not None:
            group = dg.group
            for i in range(n):
                group.items.append((dg.fdobj, PyBytes_FromStringAndSize(buf + <size_t>i * dg.bufsize, msgs[i].msg_len)))
            if not group.queued:
                group.queued = True
                self.dgram_queue.append(group)
            return 0
        for i in range(n):
            data = PyBytes_FromStringAndSize(buf + <size_t>i * dg.bufsize, msgs[i].msg_len)
            if PyTuple_GET_SIZE(dg.args) == 0:
                call_py1(self, dg.callback, data)
            elif PyTuple_GET_SIZE(dg.args) == 1:
                call_py2(self, dg.callback, <object>PyTuple_GET_ITEM(dg.args, 0), data)
            else:
                call_py(self, dg.callback, dg.args + (data,))
            if self.deferred is not None or fd >= self.nfds or self.fds[fd].rcb != <PyObject *>dgo:
                break  # stopped, or the reader was removed or replaced: drop the rest
        return 0

    def send_datagram(self, fd, data) -> int:
        """send() one datagram on a connected socket without blocking; the bytes sent."""
        cdef int n = _fileno(fd)
        cdef Py_buffer view
        cdef const char *p
        cdef Py_ssize_t size
        cdef ssize_t r
        cdef int release = buffer_of(data, &view, &p, &size)
        r = send(n, p, size, MSG_DONTWAIT)
        if release:
            PyBuffer_Release(&view)
        if r < 0:
            raise _oserror(errno)
        return r

    def send_datagrams(self, fd, datagrams) -> int:
        """sendmmsg() several datagrams on a connected socket in one call, without
        blocking; how many were sent (raises if not even the first one was)."""
        cdef int n = _fileno(fd)
        cdef list items = list(datagrams)
        cdef Py_ssize_t count = len(items), i, got = 0
        cdef mmsghdr *msgs
        cdef iovec *iov
        cdef Py_buffer *views
        cdef char *held
        cdef const char *p
        cdef Py_ssize_t size
        cdef int r, e = 0
        if count == 0:
            return 0
        if count > 1024:
            count = 1024  # (UIO_MAXIOV: sendmmsg takes no more at once)
        msgs = <mmsghdr *>PyMem_Malloc(count * (sizeof(mmsghdr) + sizeof(iovec) + sizeof(Py_buffer) + 1))
        if msgs == NULL:
            raise MemoryError()
        iov = <iovec *>(msgs + count)
        views = <Py_buffer *>(iov + count)
        held = <char *>(views + count)
        try:
            memset(msgs, 0, count * sizeof(mmsghdr))
            for i in range(count):
                held[i] = <char>buffer_of(items[i], &views[i], &p, &size)
                got = i + 1
                iov[i].iov_base = <void *>p
                iov[i].iov_len = size
                msgs[i].msg_hdr.msg_iov = &iov[i]
                msgs[i].msg_hdr.msg_iovlen = 1
            r = sendmmsg(n, msgs, <unsigned int>count, MSG_DONTWAIT)
            e = errno
        finally:
            for i in range(got):
                if held[i]:
                    PyBuffer_Release(&views[i])
            PyMem_Free(msgs)
        if r < 0:
            raise _oserror(e)
        return r

    # --- connect checks -------------------------------------------------------------

    def connect_check(self, host, port, double timeout, callback, *, source=None, mark=None) -> ConnectCheck:
        """Keepalived's TCP_CHECK: a non-blocking TCP connect to ``host`` (a numeric IPv4
        or IPv6 address) and ``port``, then close; ``callback(err)`` once, in a later
        iteration: 0 when connected, the errno otherwise (ECONNREFUSED, ETIMEDOUT when
        ``timeout`` passes first, ...). ``source=(addr, port)`` binds first, ``mark`` sets
        SO_MARK. Errors setting the socket up raise here.
        """
        cdef sockaddr_storage dst, src
        cdef socklen_t dlen, slen
        cdef int af, fd, m, r, e
        cdef ConnectCheck c
        if self.is_closed:
            raise RuntimeError("the loop is closed")
        if timeout != timeout:
            raise ValueError("timeout is NaN")
        af = sockaddr_of(host, port, &dst, &dlen)
        fd = socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
        if fd < 0:
            raise _oserror(errno)
        try:
            if mark is not None:
                m = mark
                if setsockopt(fd, SOL_SOCKET, SO_MARK, &m, sizeof(m)) < 0:
                    raise _oserror(errno)
            if source is not None:
                sockaddr_of(source[0], source[1], &src, &slen)
                if bind(fd, <sockaddr *>&src, slen) < 0:
                    raise _oserror(errno)
        except BaseException:
            close(fd)
            raise
        c = ConnectCheck.__new__(ConnectCheck)
        c.loop = self
        c.fd = fd
        c.callback = callback
        c.io.loop = NULL
        fk_timer_init(&c.timer, check_timer, <void *>c)
        r = connect(fd, <sockaddr *>&dst, dlen)
        e = errno
        Py_INCREF(c)  # the pending reference, dropped by finish()
        if r == 0 or e != EINPROGRESS:
            # settled at once (refused, unreachable, connected): reported next iteration
            c.result = 0 if r == 0 else e
            wheel_arm(&self.wheel, &c.timer, 0)
        else:
            c.result = -1
            r = fk_io_start(self, &c.io, fd, EPOLLOUT, check_ready, <void *>c)
            if r < 0:
                c.finish()
                raise _oserror(-r)
            c.timer.when = self.now() + timeout
            if wheel_arm(&self.wheel, &c.timer, tick_of(&self.wheel, c.timer.when)) < 0:
                c.finish()
                raise MemoryError()
        return c

    # --- signals -------------------------------------------------------------------

    cdef int signalfd_update(self) except -1:
        cdef sigset_t mask
        cdef int fd
        sigemptyset(&mask)
        for s in self.signal_handlers:
            sigaddset(&mask, <int>s)
        fd = signalfd(self.sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC)
        if fd < 0:
            raise _oserror(errno)
        if self.sigfd < 0:
            self.sigfd = fd
            r = fk_io_start(self, &self.sig_io, fd, EPOLLIN, signalfd_ready, <void *>self)
            if r < 0:
                raise _oserror(-r)
        return 0

    def add_signal_handler(self, signum, callback) -> None:
        """Deliver ``signum`` through signalfd as ``callback(signum)`` (the signal is blocked)."""
        cdef int s = int(signum)
        cdef sigset_t one, old
        if not 0 < s < NSIG or s == SIGKILL or s == SIGSTOP:
            raise ValueError(f"cannot handle signal {s}")
        if self.is_closed:
            raise RuntimeError("the loop is closed")
        if s not in self.signal_handlers:
            sigemptyset(&one)
            sigaddset(&one, s)
            pthread_sigmask(SIG_BLOCK, &one, &old)
            if not sigismember(&old, s):
                self.sig_ours[(s - 1) >> 6] |= (<uint64_t>1) << ((s - 1) & 63)
            self.signal_handlers[s] = callback
            try:
                self.signalfd_update()
            except BaseException:
                del self.signal_handlers[s]
                self.unblock(s)
                raise
        self.signal_handlers[s] = callback

    cdef void unblock(self, int s) noexcept:
        """Unblock s if we blocked it, discarding a pending instance first (its default
        action could kill the process)."""
        cdef sigset_t one
        cdef timespec zero
        cdef uint64_t bit = (<uint64_t>1) << ((s - 1) & 63)
        if not self.sig_ours[(s - 1) >> 6] & bit:
            return
        self.sig_ours[(s - 1) >> 6] &= ~bit
        sigemptyset(&one)
        sigaddset(&one, s)
        zero.tv_sec = 0
        zero.tv_nsec = 0
        while sigtimedwait(&one, NULL, &zero) > 0:
            pass
        pthread_sigmask(SIG_UNBLOCK, &one, NULL)

    def remove_signal_handler(self, signum) -> bool:
        """Stop handling ``signum``; its mask and pending state are restored. False if not handled."""
        cdef int s = int(signum)
        if self.signal_handlers.pop(s, None) is None:
            return False
        if self.sigfd >= 0:
            self.signalfd_update()
        self.unblock(s)
        return True

    # --- children ------------------------------------------------------------------

    def watch_child(self, int pid, callback) -> None:
        """``callback(pid, returncode)`` once the child exits (it is reaped by the loop).

        ``returncode`` is the exit status, or ``-signum`` if a signal killed it.
        Raises ``ChildProcessError`` if ``pid`` is not a child of this process.
        """
        cdef siginfo_t info
        cdef _Child ch
        cdef int r
        if self.is_closed:
            raise RuntimeError("the loop is closed")
        old = self.children.get(pid)
        if old is not None:
            (<_Child>old).callback = callback
            return
        if waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0:
            raise _oserror(errno)
        ch = _Child.__new__(_Child)
        ch.loop = self
        ch.pid = pid
        ch.callback = callback
        ch.pidfd = pidfd_open(pid, 0)
        if ch.pidfd < 0:
            raise _oserror(errno)
        r = fk_io_start(self, &ch.io, ch.pidfd, EPOLLIN, child_ready, <void *>ch)
        if r < 0:
            close(ch.pidfd)
            raise _oserror(-r)
        self.children[pid] = ch

    def unwatch_child(self, int pid) -> bool:
        """Stop watching ``pid`` (it is not reaped). False if it was not watched."""
        cdef _Child ch
        old = self.children.pop(pid, None)
        if old is None:
            return False
        ch = <_Child>old
        fk_io_stop(&ch.io)
        close(ch.pidfd)
        ch.pidfd = -1
        return True

    def spawn(self, argv, callback, *, env=None, uid=None, gid=None, groups=None,
              cwd=None, stdin=None, stdout=None, stderr=None) -> int:
        """Run a program; ``callback(pid, returncode)`` when it exits. Returns the pid.

        The child gets an empty signal mask, default signal dispositions, its own process
        group, only fds 0-2, and the user/group switch asked for. ``stdin``/``stdout``/
        ``stderr``: None inherits, an fd is dup'ed, ``DEVNULL`` is /dev/null. Failing to
        exec raises ``OSError`` here (the child never runs).
        """
        cdef bytes prog
        cdef bytes bcwd = None
        cdef char **c_argv = NULL
        cdef char **c_envp = NULL
        cdef gid_t *c_gids = NULL
        cdef int ngids = -1, c_uid = -1, c_gid = -1
        cdef const char *c_cwd = NULL
        cdef int stdio[3]
        cdef int pfd[2]
        cdef int code = 0, e, i
        cdef pid_t pid
        cdef ssize_t n
        cdef char *p
        prog, args, envp, gids = _spawn_prepare(argv, env, groups, uid, gid)
        if self.is_closed:
            raise RuntimeError("the loop is closed")
        if cwd is not None:
            bcwd = os.fsencode(cwd)
            c_cwd = bcwd
        if uid is not None:
            c_uid = uid
        if gid is not None:
            c_gid = gid
        for i, s in enumerate((stdin, stdout, stderr)):
            stdio[i] = -1 if s is None else <int>s
            if stdio[i] < 0 and stdio[i] != C_DEVNULL and s is not None:
                raise ValueError(f"invalid stdio fd {s}")
        try:
            c_argv = bytes_array(args)
            c_envp = bytes_array(envp) if envp is not None else environ
            if gids is not None:
                ngids = len(gids)
                c_gids = <gid_t *>PyMem_Malloc((ngids + 1) * sizeof(gid_t))
                if c_gids == NULL:
                    raise MemoryError()
                for i in range(ngids):
                    c_gids[i] = <gid_t>gids[i]
            if pipe2(pfd, O_CLOEXEC) < 0:
                raise _oserror(errno)
            if pfd[1] < 3:  # keep the error pipe out of the way of the stdio dup2s
                e = fcntl(pfd[1], F_DUPFD_CLOEXEC, 3)
                close(pfd[1])
                pfd[1] = e
            pid = fork()
            if pid == 0:
                child_exec(<char *>prog, c_argv, c_envp, c_uid, c_gid, c_gids, ngids, c_cwd, stdio, pfd[1])
                child_fail(pfd[1])
            e = errno
            close(pfd[1])
            if pid < 0:
                close(pfd[0])
                raise _oserror(e)
            p = <char *>&code
            i = 0
            with nogil:
                while i < <int>sizeof(code):
                    n = read(pfd[0], p + i, sizeof(code) - i)
                    if n < 0 and errno == EINTR:
                        continue
                    if n <= 0:
                        break
                    i += n
            close(pfd[0])
        finally:
            PyMem_Free(c_argv)
            if envp is not None:
                PyMem_Free(c_envp)
            PyMem_Free(c_gids)
        if i > 0:
            with nogil:
                while waitpid(pid, NULL, 0) < 0 and errno == EINTR:
                    pass
            raise _oserror(code, argv[0])
        self.watch_child(pid, callback)
        return pid

    # --- threads -------------------------------------------------------------------

    def call_soon_threadsafe(self, callback, *args) -> None:
        """From any thread: call ``callback(*args)`` on the loop's thread soon."""
        self.threadsafe.append((callback, args))
        if self.evfd >= 0:
            eventfd_write(self.evfd, 1)

    # --- running -------------------------------------------------------------------

    def run(self) -> None:
        """Run until ``stop()`` (a ``stop()`` before ``run()`` makes it one iteration)."""
        if self.running:
            raise RuntimeError("the loop is already running")
        try:
            while True:
                self.run_once()
                if self.stopping:
                    break
        finally:
            self.stopping = False

    def stop(self) -> None:
        """Make ``run()`` return after the current iteration."""
        self.stopping = True

    def run_once(self, timeout=None) -> None:
        """One iteration: wait up to ``timeout`` (None: until something is due), then dispatch."""
        cdef int ms, tms, n, e
        cdef int64_t nt, cur
        cdef double t
        cdef epoll_event *evs
        if self.running:
            raise RuntimeError("the loop is already running")
        if self.is_closed:
            raise RuntimeError("the loop is closed")
        self.running = True
        try:
            nt = wheel_next_tick(&self.wheel)
            if nt < 0:
                ms = -1
            elif nt <= self.wheel.cur:
                ms = 0
            else:
                ms = ceil_ms(self.wheel.t0 + nt / 1000.0 - self.now())
            if timeout is not None:
                t = timeout
                if t != t:
                    raise ValueError("timeout is NaN")
                tms = ceil_ms(t)
                if ms < 0 or tms < ms:
                    ms = tms
            evs = <epoll_event *>self.events
            if ms == 0:
                n = epoll_wait(self.epfd, evs, self.nevents, 0)
            else:
                with nogil:
                    n = epoll_wait(self.epfd, evs, self.nevents, ms)
            if n < 0:
                e = errno
                if e != EINTR:
                    raise _oserror(e)
                n = 0
            cur = now_tick(&self.wheel, self.now())
            if cur < self.wheel.cur:
                cur = self.wheel.cur
            wheel_advance(&self.wheel, cur)
            self.dispatch_fds(n)
            self.dispatch_timers()
            if n == self.nevents and self.nevents < MAX_EVENTS:
                self.grow_events()
        finally:
            self.running = False

    cdef int grow_events(self) except -1:
        cdef void *p = PyMem_Realloc(self.events, 2 * self.nevents * sizeof(epoll_event))
        if p == NULL:
            raise MemoryError()
        self.events = p
        self.nevents *= 2
        return 0

    cdef int raise_deferred(self) except -1:
        exc = self.deferred
        self.deferred = None
        raise exc

    cdef int dispatch_fds(self, int n) except -1:
        cdef epoll_event *evs = <epoll_event *>self.events
        cdef int i, fd
        cdef uint32_t ev
        cdef fk_fdent *ent
        cdef fk_io *io
        for i in range(n):
            fd = evs[i].data.fd
            ev = evs[i].events
            if fd >= self.nfds:
                continue
            ent = &self.fds[fd]
            io = ent.cio
            if io != NULL:
                io.fn(io, ev, io.data)
            else:
                if ev & READ_EVENTS and ent.rcb != NULL:
                    self.call_slot(fd, 0)
                    ent = &self.fds[fd]  # the table may have moved
                if ev & WRITE_EVENTS and ent.wcb != NULL:
                    self.call_slot(fd, 1)
            if self.deferred is not None:
                wheel_requeue_batch(&self.wheel, 0, 0)
                self.raise_deferred()
        if self.dgram_queue:
            self.flush_datagram_groups()
            if self.deferred is not None:
                wheel_requeue_batch(&self.wheel, 0, 0)
                self.raise_deferred()
        return 0

    cdef int call_slot(self, int fd, int slot) except -1:
        cdef fk_fdent *ent = &self.fds[fd]
        cdef PyObject *cbp = ent.rcb if slot == 0 else ent.wcb
        cdef PyObject *argsp = ent.rargs if slot == 0 else ent.wargs
        cdef object cb = <object>cbp  # own references: the callback may remove itself
        cdef object args
        if argsp == NULL:
            if type(cb) is _Dgram:
                self.read_datagrams(fd, cb)
            else:
                self.fd_clear(fd, slot, cb)  # a Waiter: one-shot
                call_py1(self, (<Waiter>cb).callback, True)
        else:
            args = <object>argsp
            call_py(self, cb, args)
        return 0

    cdef int dispatch_timers(self) except -1:
        cdef fk_wheel *w = &self.wheel
        cdef fk_vec *v
        cdef fk_timer *t
        cdef int j = 0, i, vid, k
        cdef int pj = 0, pi = 0  # prefetch cursor, PREFETCH_AHEAD entries ahead (across vectors)
        for k in range(PREFETCH_AHEAD):
            prefetch_next(w, &pj, &pi)
        while j < w.nbatch:
            vid = w.batch[j]
            i = 0
            while True:
                v = &w.vecs[vid]  # (callbacks arming timers may move the pool)
                if i >= v.len:
                    break
                t = v.e[i].timer
                i += 1
                prefetch_next(w, &pj, &pi)
                if t == NULL:
                    continue
                v.e[i - 1].timer = NULL
                v.live -= 1
                t.wheel = NULL
                t.vec = -1
                w.count -= 1
                t.fn(t, t.data)
                if self.deferred is not None:
                    wheel_requeue_batch(w, j, i)
                    self.raise_deferred()
            j += 1
        for j in range(w.nbatch):
            vec_release(w, w.batch[j])
        w.nbatch = 0
        return 0

    # --- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Release epoll/signalfd/eventfd/pidfds, restore the signal mask, drop timers."""
        if self.is_closed:
            return
        if self.running:
            raise RuntimeError("cannot close a running loop")
        for s in list(self.signal_handlers):
            self.remove_signal_handler(s)
        for pid in list(self.children):
            self.unwatch_child(pid)
        self.release()

    cdef void release(self) noexcept:
        """Free everything without calling Python code (also from __dealloc__)."""
        cdef int i, fd
        cdef fk_fdent *ent
        cdef fk_timer *t
        cdef fk_wheel *w = &self.wheel
        cdef int k
        self.is_closed = True
        for i in range(1, 128):
            self.unblock(i)
        # disarm every timer; Python timers drop the wheel's reference
        for i in range(w.nvecs):
            if w.vecs[i].slot == FK_VEC_FREE:
                continue
            for k in range(w.vecs[i].len):
                t = w.vecs[i].e[k].timer
                if t == NULL:
                    continue
                w.vecs[i].e[k].timer = NULL
                t.wheel = NULL
                t.vec = -1
                if t.fn == timer_fire:
                    Py_DECREF_p(<PyObject *>t.data)
                elif t.fn == check_timer:  # a pending connect check: close its socket
                    fk_io_stop(&(<ConnectCheck>t.data).io)
                    close((<ConnectCheck>t.data).fd)
                    (<ConnectCheck>t.data).fd = -1
                    Py_DECREF_p(<PyObject *>t.data)
        wheel_free(w)
        # the fd table
        if self.fds != NULL:
            for fd in range(self.nfds):
                ent = &self.fds[fd]
                if ent.cio != NULL:
                    ent.cio.loop = NULL
                    ent.cio = NULL
                if ent.rcb != NULL:
                    if ent.rargs == NULL and type(<object>ent.rcb) is Waiter:
                        (<Waiter>ent.rcb).fd = -1
                    Py_DECREF_p(ent.rcb)
                    Py_XDECREF_p(ent.rargs)
                    ent.rcb = NULL
                    ent.rargs = NULL
                if ent.wcb != NULL:
                    if ent.wargs == NULL:
                        (<Waiter>ent.wcb).fd = -1
                    Py_DECREF_p(ent.wcb)
                    Py_XDECREF_p(ent.wargs)
                    ent.wcb = NULL
                    ent.wargs = NULL
            PyMem_Free(self.fds)
            self.fds = NULL
            self.nfds = 0
        PyMem_Free(self.events)
        self.events = NULL
        self.nevents = 0
        PyMem_Free(self.rbuf)
        self.rbuf = NULL
        self.rbuf_size = 0
        PyMem_Free(self.rmsgs)
        PyMem_Free(self.riov)
        self.rmsgs = NULL
        self.riov = NULL
        self.nrmsgs = 0
        if self.sigfd >= 0:
            close(self.sigfd)
            self.sigfd = -1
        if self.evfd >= 0:  # (-1 first: call_soon_threadsafe checks it from other threads)
            fd = self.evfd
            self.evfd = -1
            close(fd)
        if self.epfd >= 0:
            close(self.epfd)
            self.epfd = -1

    @property
    def closed(self) -> bool:
        return self.is_closed

    def _wheel_stats(self) -> dict:
        """Test hook: the wheel's bookkeeping (armed timers, vectors, entries, capacity)."""
        cdef fk_wheel *w = &self.wheel
        cdef int i
        cdef long entries = 0, cap = 0, used = 0
        for i in range(w.nvecs):
            cap += w.vecs[i].cap
            if w.vecs[i].slot != FK_VEC_FREE:
                used += 1
                entries += w.vecs[i].len
        return {"armed": w.count, "vectors": w.nvecs, "in_use": used, "entries": entries, "capacity": cap}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the C API (declared in _loop.pxd) ---------------------------------------------------------

cdef double fk_now(Loop loop) noexcept:
    try:
        return loop.now()
    except BaseException:
        _log_exception(loop.clock)
        return loop.wheel.t0 + loop.wheel.cur / 1000.0

cdef void fk_timer_init(fk_timer *t, fk_timer_fn fn, void *data) noexcept:
    memset(t, 0, sizeof(fk_timer))
    t.vec = -1
    t.fn = fn
    t.data = data

cdef int fk_timer_start(Loop loop, fk_timer *t, double when) noexcept:
    if loop.is_closed or when != when:
        return -1
    if t.wheel != NULL:
        wheel_unlink(t)
    t.when = when
    return wheel_arm(&loop.wheel, t, tick_of(&loop.wheel, when))

cdef void fk_timer_stop(fk_timer *t) noexcept:
    if t.wheel != NULL:
        wheel_unlink(t)

cdef bint fk_timer_active(const fk_timer *t) noexcept:
    return t.wheel != NULL

cdef int fk_io_start(Loop loop, fk_io *io, int fd, uint32_t events, fk_io_fn fn, void *data) noexcept:
    cdef fk_fdent *ent
    cdef epoll_event ev
    cdef int r
    if loop.is_closed:
        return -EBADF
    if io.loop != NULL:
        fk_io_stop(io)
    if fd < 0:
        return -EBADF
    try:
        loop.ensure_fd(fd)
    except BaseException:
        return -ENOMEM
    ent = &loop.fds[fd]
    if ent.rcb != NULL or ent.wcb != NULL or ent.cio != NULL:
        return -EBUSY
    ev.events = events
    ev.data.u64 = 0
    ev.data.fd = fd
    r = epoll_ctl(loop.epfd, EPOLL_CTL_ADD, fd, &ev)
    if r < 0 and errno == EEXIST:
        r = epoll_ctl(loop.epfd, EPOLL_CTL_MOD, fd, &ev)
    if r < 0:
        return -errno
    ent.cio = io
    ent.mask = events
    io.fd = fd
    io.events = events
    io.fn = fn
    io.data = data
    io.loop = <void *>loop
    return 0

cdef int fk_io_modify(fk_io *io, uint32_t events) noexcept:
    cdef Loop loop
    cdef epoll_event ev
    if io.loop == NULL:
        return -EINVAL
    loop = <Loop>io.loop
    ev.events = events
    ev.data.u64 = 0
    ev.data.fd = io.fd
    if epoll_ctl(loop.epfd, EPOLL_CTL_MOD, io.fd, &ev) < 0:
        return -errno
    io.events = events
    loop.fds[io.fd].mask = events
    return 0

cdef inline void io_detach(fk_io *io) noexcept:
    """Forget a C watcher whose fd is about to be closed (which removes it from epoll)."""
    cdef Loop loop
    cdef fk_fdent *ent
    if io.loop == NULL:
        return
    loop = <Loop>io.loop
    io.loop = NULL
    if io.fd < loop.nfds:
        ent = &loop.fds[io.fd]
        if ent.cio == io:
            ent.cio = NULL
            ent.mask = 0

cdef void fk_io_stop(fk_io *io) noexcept:
    cdef Loop loop
    cdef fk_fdent *ent
    cdef epoll_event ev
    if io.loop == NULL:
        return
    loop = <Loop>io.loop
    io.loop = NULL
    if io.fd < loop.nfds:
        ent = &loop.fds[io.fd]
        if ent.cio == io:
            ent.cio = NULL
            ev.events = 0
            ev.data.u64 = 0
            epoll_ctl(loop.epfd, EPOLL_CTL_DEL, io.fd, &ev)
            ent.mask = 0

cdef void fk_io_forget(fk_io *io) noexcept:
    io_detach(io)



# --- test and benchmark hook: the C API driven from Python -------------------------------------

cdef struct probe_timer:
    fk_timer t
    int id
    double interval         # > 0: re-arms itself at when + interval (the advert timer)
    void *probe


cdef void probe_timer_fired(fk_timer *t, void *data) noexcept:
    cdef probe_timer *pt = <probe_timer *>data
    cdef _CProbe p = <_CProbe>pt.probe
    p.count += 1
    if p.nlog < p.caplog:
        p.log[p.nlog] = pt.id
        p.nlog += 1
    if pt.interval > 0.0:
        fk_timer_start(p.loop, t, t.when + pt.interval)


cdef void probe_io_ready(fk_io *io, uint32_t events, void *data) noexcept:
    cdef _CProbe p = <_CProbe>data
    cdef char buf[2048]
    cdef ssize_t n
    p.io_events += 1
    if events & EPOLLIN:
        n = recv(io.fd, buf, sizeof(buf), MSG_DONTWAIT)
        if n > 0:
            p.io_bytes += n
    if events & EPOLLOUT:
        p.io_writable += 1
        if p.stop_writer:
            fk_io_modify(io, EPOLLIN)


@cython.final
cdef class _CProbe:
    """Test hook: ``n`` C-level timers and one fd watcher driven through the C API of
    ``_loop.pxd`` (fk_timer_*, fk_io_*); their callbacks are C functions that never enter
    Python and record what happened (firing order, counts) in C arrays."""

    cdef Loop loop
    cdef probe_timer *timers
    cdef int n
    cdef int *log
    cdef int nlog
    cdef int caplog
    cdef public long count
    cdef fk_io io
    cdef public long io_events
    cdef public long io_bytes
    cdef public long io_writable
    cdef bint stop_writer

    def __cinit__(self, Loop loop, int n, int log_capacity=1 << 16):
        cdef int i
        self.loop = loop
        self.io.loop = NULL
        self.timers = <probe_timer *>PyMem_Malloc(max(n, 1) * sizeof(probe_timer))
        self.log = <int *>PyMem_Malloc(max(log_capacity, 1) * sizeof(int))
        if self.timers == NULL or self.log == NULL:
            raise MemoryError()
        self.n = n
        self.caplog = log_capacity
        for i in range(n):
            fk_timer_init(&self.timers[i].t, probe_timer_fired, <void *>&self.timers[i])
            self.timers[i].id = i
            self.timers[i].interval = 0.0
            self.timers[i].probe = <void *>self

    def __dealloc__(self):
        cdef int i
        if self.timers != NULL:
            for i in range(self.n):
                fk_timer_stop(&self.timers[i].t)
        fk_io_stop(&self.io)
        PyMem_Free(self.timers)
        PyMem_Free(self.log)

    cdef inline probe_timer *get(self, int i) except NULL:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return &self.timers[i]

    def arm(self, int i, double when, double interval=0.0) -> None:
        cdef probe_timer *pt = self.get(i)
        pt.interval = interval
        if fk_timer_start(self.loop, &pt.t, when) < 0:
            raise RuntimeError("fk_timer_start failed")

    def cancel(self, int i) -> None:
        fk_timer_stop(&self.get(i).t)

    def active(self, int i) -> bool:
        return fk_timer_active(&self.get(i).t)

    def when(self, int i) -> float:
        return self.get(i).t.when

    def fired(self) -> list:
        return [self.log[i] for i in range(self.nlog)]

    def now(self) -> float:
        return fk_now(self.loop)

    def arm_many(self, double[:] deadlines, int start=0) -> None:
        """Arm timers start.. at the given deadlines (benchmarks: no Python per timer)."""
        cdef Py_ssize_t i
        if start < 0 or start + deadlines.shape[0] > self.n:
            raise IndexError("too many deadlines")
        for i in range(deadlines.shape[0]):
            fk_timer_start(self.loop, &self.timers[start + i].t, deadlines[i])

    def cancel_many(self, int start, int stop) -> None:
        cdef int i
        for i in range(max(start, 0), min(stop, self.n)):
            fk_timer_stop(&self.timers[i].t)

    def watch(self, fd, int events, bint stop_writer=False) -> None:
        """Watch fd with a C callback (reads what arrives; counts events)."""
        self.stop_writer = stop_writer
        cdef int r = fk_io_start(self.loop, &self.io, _fileno(fd), events, probe_io_ready, <void *>self)
        if r < 0:
            raise _oserror(-r)

    def modify(self, int events) -> None:
        cdef int r = fk_io_modify(&self.io, events)
        if r < 0:
            raise _oserror(-r)

    def unwatch(self) -> None:
        fk_io_stop(&self.io)

    @property
    def watching(self) -> bool:
        return self.io.loop != NULL


cdef enum:
    ECHO_BATCH = 16
    ECHO_BUF = 2048

cdef struct echo_watch:
    fk_io io
    void *echo
    int bursting
    int probe


cdef void echo_ready(fk_io *io, uint32_t events, void *data) noexcept:
    cdef echo_watch *ew = <echo_watch *>data
    cdef _CEcho e = <_CEcho>ew.echo
    cdef int i, n
    cdef ssize_t r
    ew.probe -= 1
    if not ew.bursting and ew.probe > 0:  # one datagram per wake-up: recv/send
        r = recv(io.fd, e.buf, ECHO_BUF, MSG_DONTWAIT)
        if r < 0:
            return
        send(io.fd, e.buf, r, MSG_DONTWAIT)
        n = 1
    else:  # a burst (or a probe for one): recvmmsg/sendmmsg
        ew.probe = 16
        for i in range(ECHO_BATCH):
            e.iov[i].iov_len = ECHO_BUF
        n = recvmmsg(io.fd, e.msgs, ECHO_BATCH, MSG_DONTWAIT, NULL)
        ew.bursting = n > 1
        if n <= 0:
            return
        for i in range(n):
            e.iov[i].iov_len = e.msgs[i].msg_len
        sendmmsg(io.fd, e.msgs, n, MSG_DONTWAIT)
    e.count += n
    if e.count >= e.limit:
        e.loop.stopping = True


@cython.final
cdef class _CEcho:
    """Benchmark hook: echo every datagram received on each fd back on it, from C
    callbacks registered through the C API (recvmmsg + sendmmsg); stop the loop after
    ``limit`` datagrams."""

    cdef Loop loop
    cdef echo_watch *watches
    cdef int n
    cdef mmsghdr msgs[ECHO_BATCH]
    cdef iovec iov[ECHO_BATCH]
    cdef char buf[ECHO_BATCH * ECHO_BUF]
    cdef public long count
    cdef public long limit

    def __cinit__(self, Loop loop, fds, long limit):
        cdef int i, r
        fds = [_fileno(f) for f in fds]
        self.loop = loop
        self.limit = limit
        self.watches = <echo_watch *>PyMem_Malloc(max(len(fds), 1) * sizeof(echo_watch))
        if self.watches == NULL:
            raise MemoryError()
        memset(self.msgs, 0, sizeof(self.msgs))
        for i in range(ECHO_BATCH):
            self.iov[i].iov_base = &self.buf[i * ECHO_BUF]
            self.msgs[i].msg_hdr.msg_iov = &self.iov[i]
            self.msgs[i].msg_hdr.msg_iovlen = 1
        for i in range(len(fds)):
            self.watches[i].io.loop = NULL
            self.watches[i].echo = <void *>self
            self.watches[i].bursting = 0
            self.watches[i].probe = 1
        self.n = len(fds)
        for i in range(self.n):
            r = fk_io_start(loop, &self.watches[i].io, fds[i], EPOLLIN, echo_ready, &self.watches[i])
            if r < 0:
                raise _oserror(-r)

    def stop(self) -> None:
        cdef int i
        for i in range(self.n):
            fk_io_stop(&self.watches[i].io)

    def __dealloc__(self):
        if self.watches != NULL:
            self.stop()
            PyMem_Free(self.watches)


EPOLLIN_ = EPOLLIN
EPOLLOUT_ = EPOLLOUT

__all__ = ["DEVNULL", "MAX_TICKS", "TICK", "ConnectCheck", "Loop", "Timer", "Waiter"]
