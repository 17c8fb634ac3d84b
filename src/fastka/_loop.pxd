# The compiled event loop's C level: what other Cython modules (the VRRP hot path in
# _vrrp.pyx) `cimport` to arm timers and watch fds with C callbacks that never enter
# Python.
#
#     from fastka._loop cimport Loop, fk_timer, fk_io, fk_timer_init, fk_timer_start, ...
#
# Rules of the C level:
# * Everything runs on the loop's thread with the GIL held (the loop calls C callbacks
#   from its dispatch, exactly where it calls Python callbacks). A C callback must not
#   raise; it may call any fk_* function, including on its own timer/watcher.
# * fk_timer / fk_io structs are owned by the caller (embed them in your own struct or
#   cdef class) and must stay valid while armed/started; stop them before freeing.
#   Loop.close() disarms every timer and stops every watcher.
# * Deadlines are absolute loop times in seconds (fk_now()), with the same rounding,
#   order (deadline, then FIFO) and overdue rules as Python timers (docs/loop-api.md);
#   Python and C timers share one wheel, so their relative order is well defined.
# * A C watcher owns its fd: add_reader/add_writer on the same fd raise, and vice versa.

from libc.stdint cimport int64_t, uint32_t, uint64_t
from cpython.object cimport PyObject

cdef enum:
    FK_LEVEL_BITS = 8
    FK_SLOTS = 256         # slots per level
    FK_LEVELS = 5          # 5 x 8 bits of 1 ms ticks: ~34.8 years
    FK_WORDS = 4           # 64-bit words in a level's occupancy bitmap
    FK_VEC_OVERDUE = -2    # fk_vec.slot of the overdue vector
    FK_VEC_BATCH = -3      # ... of a vector in the batch being dispatched
    FK_VEC_FREE = -4       # ... of a pooled vector

cdef struct fk_timer
cdef struct fk_io
cdef struct fk_wheel

ctypedef void (*fk_timer_fn)(fk_timer *timer, void *data) noexcept
ctypedef void (*fk_io_fn)(fk_io *io, uint32_t events, void *data) noexcept

cdef struct fk_timer:
    fk_wheel *wheel        # NULL while idle (fired, cancelled, never armed)
    int vec                # internal: the wheel vector holding it, and where
    int idx
    double when            # the deadline as given (seconds, loop time)
    fk_timer_fn fn
    void *data

cdef struct fk_entry:
    int64_t tick           # deadline in ticks since the loop's creation
    fk_timer *timer        # NULL: cancelled (a tombstone)

cdef struct fk_vec:
    # a slot's timers in arming (FIFO) order; cascades and dispatch read it sequentially
    fk_entry *e
    int len
    int cap
    int live               # entries that are not tombstones
    int slot               # level * FK_SLOTS + index, or FK_VEC_*
    int next_free

cdef struct fk_wheel:
    int64_t cur            # last processed tick
    double t0              # loop time of tick 0
    Py_ssize_t count       # armed timers
    uint64_t occupied[FK_LEVELS * FK_WORDS]   # bit: that slot's vector has live timers
    int slot_vec[FK_LEVELS * FK_SLOTS]        # vector of each slot, or -1
    int overdue            # vector of timers armed for ticks <= cur, or -1
    fk_vec *vecs           # the vector pool (ids index it)
    int nvecs
    int free_vec
    int *batch             # vectors due now, in firing order
    int nbatch
    int capbatch

cdef struct fk_io:
    int fd
    uint32_t events        # EPOLLIN / EPOLLOUT interest
    fk_io_fn fn            # fn(io, epoll events, data)
    void *data
    void *loop             # the Loop while started, NULL when stopped

cdef struct fk_fdent:
    PyObject *rcb          # reader callback (strong); a Waiter or datagram reader when rargs is NULL
    PyObject *rargs        # reader args tuple (strong)
    PyObject *wcb
    PyObject *wargs
    fk_io *cio             # a C watcher owning the fd, or NULL
    uint32_t mask          # interest currently registered with epoll

cdef class Loop:
    cdef fk_wheel wheel
    cdef int epfd
    cdef int evfd
    cdef int sigfd
    cdef fk_fdent *fds
    cdef int nfds
    cdef object clock
    cdef bint is_closed
    cdef bint running
    cdef bint stopping
    cdef object deferred           # a BaseException raised by a callback, re-raised by run_once
    cdef object threadsafe         # collections.deque of (callback, args)
    cdef dict signal_handlers
    cdef uint64_t sig_ours[2]      # signals blocked by us (bit signum-1)
    cdef dict children             # pid -> _Child
    cdef fk_io ev_io
    cdef fk_io sig_io
    cdef void *events              # struct epoll_event[nevents]
    cdef int nevents
    cdef char *rbuf                # datagram readers' scratch: batch x bufsize
    cdef size_t rbuf_size
    cdef void *rmsgs               # struct mmsghdr[nrmsgs] and struct iovec[nrmsgs]
    cdef void *riov
    cdef int nrmsgs
    cdef dict dgram_groups         # callback -> _DgramGroup (add_datagram_batch_reader)
    cdef list dgram_queue          # groups with datagrams to deliver this iteration

    cdef double now(self) except? -1.0
    cdef int ensure_fd(self, int fd) except -1
    cdef int epoll_apply(self, int fd, fk_fdent *ent, bint adding) except -1
    cdef int fd_set(self, int fd, int slot, object cb, object args) except -1
    cdef bint fd_clear(self, int fd, int slot, object expect) except -1
    cdef object wait(self, object fd, int slot, object timeout, object callback)
    cdef int signalfd_update(self) except -1
    cdef void unblock(self, int s) noexcept
    cdef int grow_events(self) except -1
    cdef int raise_deferred(self) except -1
    cdef int dispatch_fds(self, int n) except -1
    cdef int call_slot(self, int fd, int slot) except -1
    cdef int read_datagrams(self, int fd, object dg) except -1
    cdef int flush_datagram_groups(self) except -1
    cdef int dispatch_timers(self) except -1
    cdef void release(self) noexcept


# --- the C API ----------------------------------------------------------------------

cdef double fk_now(Loop loop) noexcept
    # the loop's clock (CLOCK_MONOTONIC seconds, or the test clock)
cdef void fk_timer_init(fk_timer *t, fk_timer_fn fn, void *data) noexcept
cdef int fk_timer_start(Loop loop, fk_timer *t, double when) noexcept
    # arm (or re-arm) at `when`; 0, or -1 if the loop is closed / when is NaN
cdef void fk_timer_stop(fk_timer *t) noexcept
    # disarm; idempotent
cdef bint fk_timer_active(const fk_timer *t) noexcept
cdef int fk_io_start(Loop loop, fk_io *io, int fd, uint32_t events, fk_io_fn fn, void *data) noexcept
    # watch fd for events (EPOLLIN|EPOLLOUT); 0 or -errno (EBUSY: Python callbacks on fd)
cdef int fk_io_modify(fk_io *io, uint32_t events) noexcept
    # change the interest of a started watcher; 0 or -errno
cdef void fk_io_stop(fk_io *io) noexcept
    # stop watching; idempotent
cdef void fk_io_forget(fk_io *io) noexcept
    # stop watching an fd the caller closes right after: no EPOLL_CTL_DEL, close() drops
    # the registration (only for fds never duplicated, e.g. close-on-exec sockets, as
    # Loop.spawn returns after the child's exec); idempotent
