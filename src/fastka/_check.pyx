# cython: language_level=3
"""TCP_CHECK and plain HTTP_GET in C: the same API and verdicts as the reference
``fastka._check_py`` (read its docstring first), on the compiled loop's C level
(``_loop.pxd``).

What one attempt costs here, in system calls: ``socket`` (SOCK_NONBLOCK|SOCK_CLOEXEC, no
fcntl), ``connect``, one ``epoll_ctl(ADD)``, then for HTTP_GET ``send`` and ``recv``
(usually one: the verdict is known at the status line unless there is a digest), and
``close``. No clock read (deadlines come from the attempt's start and the loop's time of
the current iteration), no ``getsockopt(SO_ERROR)`` unless epoll reports an error, no
``epoll_ctl(MOD/DEL)``: the socket is registered once, edge-triggered, for both
directions, and ``close`` removes it from epoll (the socket is never duplicated: it is
close-on-exec and ``Loop.spawn`` returns only after the child has exec'ed). When the
target is in the same kernel (``at_once``, see the reference) a TCP_CHECK is ``socket``,
``connect``, ``connect``, ``close`` -- no epoll at all -- and an HTTP_GET sends its
request without waiting for the connection's writability.

In steady state (``arm``) a verdict equal to the expected one re-arms the next attempt
in C; Python runs only when the verdict differs. An unusual response head (one the quick
grammar does not accept) is handed to h11 through ``fastka._check_py.slow_head``.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.math cimport rint
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from fastka._include.linux cimport (AF_INET, AF_INET6, EAGAIN, EINPROGRESS, EINTR, EINVAL, MSG_DONTWAIT,
                                    EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP,
                                    SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SO_ERROR, SO_MARK,
                                    SOL_SOCKET, bind, close, connect, errno, getsockopt, htons,
                                    inet_pton, recv, send, setsockopt, sockaddr, sockaddr_in,
                                    sockaddr_in6, sockaddr_storage, socket, socklen_t, ssize_t)
from fastka._include.md5 cimport fk_md5_final, fk_md5_init, fk_md5_t, fk_md5_update
from fastka._loop cimport (Loop, fk_io, fk_io_forget, fk_io_modify, fk_io_start, fk_now, fk_timer,
                           fk_timer_init, fk_timer_start, fk_timer_stop)

import logging

from fastka._check_py import HttpUrl, reason_text, slow_head
from fastka.check.base import GRID_MAX as _GRID_MAX, GRID_MIN as _GRID_MIN, GRID_PER_DELAY as _GRID_PER_DELAY, Result

from fastka._check_py import (MAX_BODY as _MAX_BODY, MAX_HEAD as _MAX_HEAD,
                              RECV_SIZE as _RECV_SIZE)

__all__ = ["Check", "HttpUrl"]


cdef extern from "<sys/socket.h>" nogil:
    enum:
        MSG_NOSIGNAL
        SO_BINDTODEVICE

cdef extern from "<errno.h>" nogil:
    enum:
        EALREADY
        EISCONN
        EPIPE
        ECONNRESET

cdef extern from "<net/if.h>" nogil:
    unsigned int if_nametoindex(const char *ifname)

cdef extern from "<string.h>" nogil:
    void *memmem(const void *haystack, size_t hlen, const void *needle, size_t nlen)

_log = logging.getLogger("fastka.check")

# Failure codes: the reference's (E_SOCKET ...), so that reason_text() reads both.
cdef enum:
    OK = 0
    E_SOCKET = 1
    E_CONNECT = 2
    E_TIMEOUT_CONNECT = 3
    E_TIMEOUT_EXCHANGE = 4
    E_SEND = 5
    E_RECV = 6
    E_CLOSED = 7
    E_HEAD_TOO_LONG = 8
    E_BAD_HTTP = 9
    E_STATUS = 10
    E_BODY_TOO_LARGE = 11
    E_DIGEST = 12

cdef enum:
    IDLE = 0
    ARMED = 1
    CONNECTING = 2
    READING = 3

cdef enum:
    RECV_SIZE = 65536
    READS_PER_WAKEUP = 16       # then the socket goes level-triggered (a big body)
    QUICK_REPROBE = 16          # a check whose connect never completes at once asks every 16th attempt

cdef Py_ssize_t MAX_HEAD = _MAX_HEAD
cdef int64_t MAX_BODY = _MAX_BODY
cdef double GRID_PER_DELAY = _GRID_PER_DELAY, GRID_MAX = _GRID_MAX, GRID_MIN = _GRID_MIN
cdef int64_t NO_LENGTH = -1
cdef int64_t BIG_LENGTH = (<int64_t>1) << 62
assert RECV_SIZE == _RECV_SIZE

# One receive buffer for every check: callbacks run one at a time on the loop's thread.
cdef char scratch[RECV_SIZE]

cdef object _OK_RESULT = Result(True)


# --- MD5 (fastka._include.md5), for HTTP_GET digests ---------------------------------------

def md5(data) -> bytes:
    """MD5 of ``data`` with this module's C code (a test hook: hashlib is the reference)."""
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef fk_md5_t s
    cdef uint8_t out[16]
    fk_md5_init(&s)
    if view.shape[0]:
        fk_md5_update(&s, &view[0], view.shape[0])
    fk_md5_final(&s, out)
    return PyBytes_FromStringAndSize(<char *>out, 16)


# --- the response head (fastka.check.http: find_head_end, quick_parse_head) --------------

cdef Py_ssize_t head_end(const char *p, Py_ssize_t n) noexcept nogil:
    """Index just past the blank line ending the head, or -1 (CRLF CRLF, or LF LF first)."""
    cdef const char *i = <const char *>memmem(p, n, b"\r\n\r\n", 4)
    cdef const char *j = <const char *>memmem(p, n, b"\n\n", 2)
    if i != NULL and (j == NULL or i + 2 <= j):
        return i - p + 4
    if j != NULL:
        return j - p + 2
    return -1

cdef bint VCHAR[256]      # RFC 9110 VCHAR and obs-text
cdef bint TCHAR[256]      # RFC 9110 tchar

cdef void char_tables() noexcept:
    cdef int c
    for c in range(256):
        VCHAR[c] = 0x21 <= c <= 0x7e or c >= 0x80
        TCHAR[c] = (c'0' <= c <= c'9' or c'a' <= c <= c'z' or c'A' <= c <= c'Z'
                    or c == c'!' or c == c'#' or c == c'$' or c == c'%' or c == c'&' or c == c"'"
                    or c == c'*' or c == c'+' or c == c'-' or c == c'.' or c == c'^' or c == c'_'
                    or c == c'`' or c == c'|' or c == c'~')

char_tables()

cdef inline bint is_vchar(uint8_t c) noexcept nogil:
    return VCHAR[c]

cdef inline bint is_tchar(uint8_t c) noexcept nogil:
    return TCHAR[c]

cdef inline uint8_t lower(uint8_t c) noexcept nogil:
    return c + 32 if c'A' <= c <= c'Z' else c

cdef int quick_head(const uint8_t *h, Py_ssize_t n, int *status, int64_t *length) noexcept nogil:
    """1 and (status, Content-Length or -1) for an ordinary head; 0 when anything is
    unusual (then h11 decides). Exactly the grammar of http.quick_parse_head."""
    cdef Py_ssize_t pos, start, vstart, vend, end, k
    cdef int s
    cdef int64_t v
    cdef uint8_t ch
    length[0] = NO_LENGTH
    # status-line: HTTP/1.[01] SP [1-9]DIGIT DIGIT [SP reason] CRLF
    if n < 14 or memcmp(h, b"HTTP/1.", 7) != 0 or (h[7] != c'0' and h[7] != c'1') or h[8] != c' ':
        return 0
    if not (c'1' <= h[9] <= c'9' and c'0' <= h[10] <= c'9' and c'0' <= h[11] <= c'9'):
        return 0
    s = (h[9] - c'0') * 100 + (h[10] - c'0') * 10 + (h[11] - c'0')
    pos = 12
    if h[pos] == c' ':
        pos += 1
        while pos < n and (h[pos] == c' ' or h[pos] == c'\t' or is_vchar(h[pos])):
            pos += 1
    if pos + 1 >= n or h[pos] != c'\r' or h[pos + 1] != c'\n':
        return 0
    pos += 2
    if s < 200:
        return 0
    end = n - 2
    while pos < end:
        # field-line: token ":" OWS [value] OWS CRLF; value = VCHAR *( *(SP/HTAB) VCHAR )
        start = pos
        while pos < n and is_tchar(h[pos]):
            pos += 1
        if pos == start or pos >= n or h[pos] != c':':
            return 0
        k = pos - start
        pos += 1
        while pos < n and (h[pos] == c' ' or h[pos] == c'\t'):
            pos += 1
        vstart = pos
        vend = pos
        while pos < n:
            ch = h[pos]
            if is_vchar(ch):
                pos += 1
                vend = pos
            elif ch == c' ' or ch == c'\t':
                pos += 1
            else:
                break
        if pos + 1 >= n or h[pos] != c'\r' or h[pos + 1] != c'\n':
            return 0
        pos += 2
        if k == 14 and is_content_length(&h[start]):
            if length[0] != NO_LENGTH or vend == vstart:
                return 0
            v = 0
            while vstart < vend:
                ch = h[vstart]
                if not c'0' <= ch <= c'9':
                    return 0
                if v < BIG_LENGTH:
                    v = v * 10 + (ch - c'0')
                vstart += 1
            length[0] = v if v < BIG_LENGTH else BIG_LENGTH
    if pos != end or h[end] != c'\r' or h[end + 1] != c'\n':
        return 0
    status[0] = s
    return 1

cdef inline bint is_content_length(const uint8_t *p) noexcept nogil:
    cdef const char *want = b"content-length"
    cdef int i
    for i in range(14):
        if lower(p[i]) != <uint8_t>want[i]:
            return False
    return True


def parse_head(bytes head):
    """``quick_parse_head`` in C (a test hook): (status, Content-Length or None) or None."""
    cdef int status = 0
    cdef int64_t length
    if not quick_head(<const uint8_t *>PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head), &status, &length):
        return None
    return status, (None if length == NO_LENGTH else length)


def find_head_end(bytes buf) -> int:
    """``fastka.check.http.find_head_end`` in C (a test hook)."""
    return head_end(PyBytes_AS_STRING(buf), PyBytes_GET_SIZE(buf))


# --- the check ------------------------------------------------------------------------

cdef struct url_t:
    const char *req             # the request bytes (owned by the HttpUrl in Check.urls)
    Py_ssize_t reqlen
    int *ranges                 # status_code: lo, hi pairs
    int nranges
    bint has_digest
    uint8_t digest[16]


cdef int sockaddr_of(object host, int port, int scope, sockaddr_storage *ss, socklen_t *size) except -1:
    """A numeric IPv4/IPv6 address and a port -> sockaddr (as Target.sockaddr())."""
    cdef sockaddr_in *sin = <sockaddr_in *>ss
    cdef sockaddr_in6 *sin6 = <sockaddr_in6 *>ss
    cdef bytes b = host.encode("ascii")
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    memset(ss, 0, sizeof(sockaddr_storage))
    if inet_pton(AF_INET, b, &sin.sin_addr) == 1:
        sin.sin_family = AF_INET
        sin.sin_port = htons(port)
        size[0] = sizeof(sockaddr_in)
        return AF_INET
    if inet_pton(AF_INET6, b, &sin6.sin6_addr) == 1:
        sin6.sin6_family = AF_INET6
        sin6.sin6_port = htons(port)
        sin6.sin6_scope_id = scope
        size[0] = sizeof(sockaddr_in6)
        return AF_INET6
    raise ValueError(f"not an IP address: {host!r}")


cdef inline double loop_time(Loop loop) noexcept:
    """The loop's time for this iteration (read once by the loop after its wait, rounded
    down to the 1 ms tick): no clock read of ours. Keepalived, too, reads the time once
    per turn of its loop."""
    return loop.wheel.t0 + <double>loop.wheel.cur * 0.001


@cython.final
cdef class Check:
    """TCP_CHECK (no ``urls``) or HTTP_GET attempts against ``target`` (see fastka._check_py)."""

    cdef Loop loop
    cdef readonly object target
    cdef readonly double timeout
    cdef readonly tuple urls
    cdef fk_timer timer
    cdef fk_io io
    cdef int fd
    cdef int phase
    cdef bint held              # a reference to ourselves while armed/running (the loop has raw pointers)
    cdef bint level             # the socket went level-triggered (a long body)
    # where to connect
    cdef int family
    cdef sockaddr_storage dst
    cdef socklen_t dstlen
    cdef sockaddr_storage src
    cdef socklen_t srclen
    cdef int mark
    cdef bytes bind_if
    # URLs
    cdef url_t *curls
    cdef int nsteps
    # the run
    cdef public int expect
    cdef readonly double delay
    cdef public bint at_once    # ask whether the connection is up right after connect()
    cdef bint quick             # ... and the last time it was
    cdef unsigned long attempts
    cdef readonly double due
    cdef readonly int step
    cdef readonly double ended
    cdef readonly long absorbed
    cdef readonly double last_due
    cdef int last_code
    cdef int last_arg
    cdef object last_text
    cdef object text            # the attempt's h11 complaint (E_BAD_HTTP)
    cdef uint8_t last_md5[16]
    cdef object done
    # the attempt
    cdef url_t *url
    cdef Py_ssize_t sent
    cdef char *hbuf             # a head split over several reads (rare)
    cdef Py_ssize_t hlen
    cdef Py_ssize_t hcap
    cdef int status
    cdef int64_t length
    cdef int64_t body_len
    cdef fk_md5_t md5
    cdef uint8_t got_md5[16]

    def __cinit__(self, *args, **kwargs):
        self.fd = -1
        self.phase = IDLE
        self.held = False
        self.curls = NULL
        self.hbuf = NULL
        self.io.loop = NULL
        self.expect = -1
        self.at_once = True
        self.quick = True
        self.attempts = 0
        fk_timer_init(&self.timer, on_timer, <void *>self)

    def __init__(self, Loop loop, target, double timeout, urls=()) -> None:
        cdef int i, j, scope = 0
        cdef url_t *u
        if timeout != timeout:
            raise ValueError("timeout is NaN")
        self.loop = loop
        self.target = target
        self.timeout = timeout
        self.urls = tuple(urls)
        if target.family == AF_INET6 and target.bind_if:
            scope = if_nametoindex(target.bind_if.encode())
        self.family = sockaddr_of(target.address, target.port, scope, &self.dst, &self.dstlen)
        self.srclen = 0
        if target.bindto or target.bind_port:
            sockaddr_of(target.bindto or ("::" if self.family == AF_INET6 else "0.0.0.0"),
                        target.bind_port or 0, 0, &self.src, &self.srclen)
        self.mark = target.fwmark or 0
        self.bind_if = target.bind_if.encode() if target.bind_if else None
        self.nsteps = max(1, len(self.urls))
        if self.urls:
            self.curls = <url_t *>PyMem_Malloc(len(self.urls) * sizeof(url_t))
            if self.curls == NULL:
                raise MemoryError()
            memset(self.curls, 0, len(self.urls) * sizeof(url_t))
            for i, url in enumerate(self.urls):
                if not isinstance(url, HttpUrl):
                    raise TypeError("urls: HttpUrl expected")
                u = &self.curls[i]
                u.req = PyBytes_AS_STRING(url.request)
                u.reqlen = PyBytes_GET_SIZE(url.request)
                u.nranges = len(url.status_code)
                u.ranges = <int *>PyMem_Malloc(max(1, 2 * u.nranges) * sizeof(int))
                if u.ranges == NULL:
                    raise MemoryError()
                for j, (lo, hi) in enumerate(url.status_code):
                    u.ranges[2 * j] = lo
                    u.ranges[2 * j + 1] = hi
                if url.digest is not None:
                    u.has_digest = True
                    memcpy(u.digest, PyBytes_AS_STRING(url.digest), 16)

    def __dealloc__(self):
        cdef int i
        fk_timer_stop(&self.timer)
        self.close_attempt()
        if self.curls != NULL:
            for i in range(len(self.urls) if self.urls is not None else 0):
                PyMem_Free(self.curls[i].ranges)
            PyMem_Free(self.curls)
            self.curls = NULL

    # --- the API (see fastka._check_py.Check) ------------------------------------

    @property
    def active(self) -> bool:
        return self.phase != IDLE

    @property
    def when(self):
        return self.timer.when if self.phase == ARMED else None

    @property
    def last_reason(self) -> str:
        return reason_text(self.last_code, self.failure_arg(self.last_code, self.last_arg, self.last_text, self.last_md5))

    def start(self, int step, done, now=None) -> None:
        self.cancel()
        self.done = done
        self.expect = -1
        self.absorbed = 0
        self.step = step % self.nsteps
        if self.loop.is_closed:
            raise RuntimeError("the loop is closed")
        self.hold()
        attempt(self, fk_now(self.loop) if now is None else <double>now)

    def arm(self, double when, int step, done, int expect=-1, double delay=0.0) -> None:
        if when != when or delay != delay:
            raise ValueError("NaN time")
        self.cancel()
        self.done = done
        self.expect = expect
        self.delay = delay
        self.absorbed = 0
        self.step = step % self.nsteps
        self.phase = ARMED
        if fk_timer_start(self.loop, &self.timer, when) < 0:
            self.phase = IDLE
            raise RuntimeError("the loop is closed")
        self.hold()

    def cancel(self) -> None:
        fk_timer_stop(&self.timer)
        self.close_attempt()
        self.phase = IDLE
        self.done = None
        self.unhold()

    # --- internals ------------------------------------------------------------------

    cdef inline void hold(self) noexcept:
        if not self.held:
            self.held = True
            Py_INCREF(self)

    cdef inline void unhold(self) noexcept:
        # only while the caller holds a reference of its own
        if self.held:
            self.held = False
            Py_DECREF(self)

    cdef void close_attempt(self) noexcept:
        """Close the attempt's socket (the timer is the caller's business)."""
        if self.fd >= 0:
            fk_io_forget(&self.io)  # no EPOLL_CTL_DEL: close() drops it (see the module docstring)
            close(self.fd)
            self.fd = -1
        if self.hbuf != NULL:
            PyMem_Free(self.hbuf)
            self.hbuf = NULL
            self.hlen = self.hcap = 0

    cdef object failure_arg(self, int code, int arg, object text, const uint8_t *digest):
        if code == E_BAD_HTTP:
            return text
        if code == E_DIGEST:
            return PyBytes_FromStringAndSize(<const char *>digest, 16)
        return arg


# --- one attempt (all with the check referenced by the caller) --------------------------

cdef void attempt(Check c, double due) noexcept:
    cdef int fd, r, e
    cdef bint up = False        # connected
    cdef ssize_t n
    c.due = due
    c.url = &c.curls[c.step] if c.curls != NULL else NULL
    c.text = None
    c.sent = 0
    fd = socket(c.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
    if fd < 0:
        finish(c, E_SOCKET, errno)
        return
    c.fd = fd
    if c.mark and setsockopt(fd, SOL_SOCKET, SO_MARK, &c.mark, sizeof(int)) < 0:
        finish(c, E_SOCKET, errno)
        return
    if c.bind_if is not None and setsockopt(
            fd, SOL_SOCKET, SO_BINDTODEVICE, PyBytes_AS_STRING(c.bind_if), PyBytes_GET_SIZE(c.bind_if)) < 0:
        finish(c, E_SOCKET, errno)
        return
    if c.srclen and bind(fd, <sockaddr *>&c.src, c.srclen) < 0:
        finish(c, E_SOCKET, errno)
        return
    r = connect(fd, <sockaddr *>&c.dst, c.dstlen)
    c.attempts += 1
    if r == 0:
        up = True
    else:
        e = errno
        if e != EINPROGRESS:
            finish(c, E_CONNECT, e)
            return
        if c.at_once and (c.quick or c.attempts % QUICK_REPROBE == 1):
            # A target in this kernel (another namespace, loopback) has answered by the
            # time connect() returns: asking again costs one system call and saves the
            # epoll registration and a loop iteration. TCP_CHECK asks connect() again
            # (0 or EISCONN: up; EALREADY: pending); HTTP_GET simply sends the request
            # (EAGAIN: pending). Checks whose target is farther away stop asking after
            # the first miss and try again every QUICK_REPROBE attempts.
            if c.url == NULL:
                r = connect(fd, <sockaddr *>&c.dst, c.dstlen)
                e = errno
                up = r == 0 or e == EISCONN
                if not up and e != EALREADY:
                    c.quick = True
                    finish(c, E_CONNECT, e)
                    return
            else:
                n = send(fd, c.url.req, c.url.reqlen, MSG_NOSIGNAL | MSG_DONTWAIT)
                e = errno
                up = n >= 0
                if up:
                    c.sent = n
                elif e != EAGAIN and e != EINTR:
                    c.quick = True
                    finish(c, E_SEND if e == EPIPE or e == ECONNRESET else E_CONNECT, e)
                    return
            c.quick = up
    if up and c.url == NULL:
        finish(c, OK, 0)  # TCP_CHECK: no epoll, no timer
        return
    # One registration for the whole attempt: edge-triggered, both directions, so that
    # neither sending nor reading needs an epoll_ctl(MOD).
    c.level = False
    r = fk_io_start(c.loop, &c.io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_io, <void *>c)
    if r < 0:
        finish(c, E_SOCKET, -r)
        return
    c.phase = CONNECTING
    if fk_timer_start(c.loop, &c.timer, due + c.timeout) < 0:
        finish(c, E_SOCKET, EINVAL)
        return
    if up:
        connected(c, 0)


cdef void connected(Check c, uint32_t events) noexcept:
    """TCP is up (the request may have gone out already: c.sent)."""
    cdef url_t *u = c.url
    if u == NULL:
        finish(c, OK, 0)
        return
    c.phase = READING
    c.status = 0
    c.length = NO_LENGTH
    c.body_len = 0
    fk_timer_start(c.loop, &c.timer, c.due + 2 * c.timeout)  # the exchange's budget
    send_more(c)
    if c.phase == READING and events & (EPOLLIN | EPOLLERR | EPOLLHUP):
        read_more(c, events)


cdef void send_more(Check c) noexcept:
    cdef url_t *u = c.url
    cdef ssize_t n
    while c.sent < u.reqlen:
        n = send(c.fd, u.req + c.sent, u.reqlen - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT)
        if n < 0:
            if errno == EINTR:
                continue
            if errno != EAGAIN:
                finish(c, E_SEND, errno)
            return  # EAGAIN: the next EPOLLOUT edge resumes
        c.sent += n


cdef void on_io(fk_io *io, uint32_t events, void *data) noexcept:
    cdef Check c = <Check>data
    cdef int err = 0
    cdef socklen_t size = sizeof(err)
    if c.phase == CONNECTING:
        if events & (EPOLLERR | EPOLLHUP):
            if getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &size) < 0:
                err = errno
            if err:
                finish(c, E_CONNECT, err)
                return
        connected(c, events)
    elif c.phase == READING:
        if events & EPOLLOUT and c.sent < c.url.reqlen:
            send_more(c)
        if c.phase == READING and events & (EPOLLIN | EPOLLERR | EPOLLHUP):
            read_more(c, events)


cdef void read_more(Check c, uint32_t events) noexcept:
    """Read until the verdict, EAGAIN, or a short read -- which, edge-triggered, means
    drained unless the peer has closed too (EPOLLRDHUP: no new edge will announce the
    end of the stream, so read on to it)."""
    cdef ssize_t n
    cdef int reads = 0
    cdef bint to_end = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0
    while c.phase == READING:
        n = recv(c.fd, scratch, RECV_SIZE, 0)
        if n < 0:
            if errno == EINTR:
                continue
            if errno != EAGAIN:
                finish(c, E_RECV, errno)
            return
        if n == 0:
            if c.status == 0:
                finish(c, E_CLOSED, 0)
            else:
                complete(c)
            return
        if c.status == 0:
            on_head(c, scratch, n)
        else:
            on_body(c, scratch, n)
        if n < RECV_SIZE and not to_end:
            return  # drained: the next arrival is a new edge
        reads += 1
        if reads >= READS_PER_WAKEUP and c.phase == READING:
            # A long body: let the other fds run, and be woken while data is waiting.
            if not c.level:
                c.level = True
                fk_io_modify(&c.io, EPOLLIN)
            return


cdef void on_head(Check c, const char *p, Py_ssize_t n) noexcept:
    cdef Py_ssize_t end, need
    cdef char *buf
    if c.hlen == 0:
        end = head_end(p, n)
        if end >= 0:
            head_done(c, p, end, n)
            return
    # accumulate (a head split over reads)
    need = c.hlen + n
    if need > c.hcap:
        buf = <char *>PyMem_Realloc(c.hbuf, need)
        if buf == NULL:
            finish(c, E_RECV, 12)  # ENOMEM
            return
        c.hbuf = buf
        c.hcap = need
    memcpy(c.hbuf + c.hlen, p, n)
    c.hlen = need
    end = head_end(c.hbuf, c.hlen)
    if end < 0:
        if c.hlen > MAX_HEAD:
            finish(c, E_HEAD_TOO_LONG, 0)
        return
    head_done(c, c.hbuf, end, c.hlen)


cdef void head_done(Check c, const char *p, Py_ssize_t end, Py_ssize_t n) noexcept:
    """p[:end] is the head, p[end:n] the start of the body."""
    cdef url_t *u = c.url
    cdef int status = 0, i
    cdef int64_t length = NO_LENGTH
    cdef bint ok = False
    if not quick_head(<const uint8_t *>p, end, &status, &length):
        if not slow_parse(c, p, end, &status, &length):
            return
    c.status = status
    c.length = length
    for i in range(u.nranges):
        if u.ranges[2 * i] <= status <= u.ranges[2 * i + 1]:
            ok = True
            break
    if not ok:
        finish(c, E_STATUS, status)
        return
    if not u.has_digest:
        finish(c, OK, 0)
        return
    fk_md5_init(&c.md5)
    if n > end or length == 0:
        on_body(c, p + end, n - end)


cdef bint slow_parse(Check c, const char *p, Py_ssize_t end, int *status, int64_t *length) noexcept:
    """h11 decides an unusual head (Python); False when the attempt is over."""
    cdef object res
    try:
        res = slow_head(PyBytes_FromStringAndSize(p, end), c.urls[c.step].host)
        if isinstance(res, str):
            c.text = res
            finish(c, E_BAD_HTTP, 0)
            return False
        status[0] = res[0]
        length[0] = NO_LENGTH if res[1] is None else min(max(<object>res[1], 0), BIG_LENGTH)
        return True
    except BaseException as exc:
        c.text = f"{type(exc).__name__}: {exc}"
        finish(c, E_BAD_HTTP, 0)
        return False


cdef void on_body(Check c, const char *p, Py_ssize_t n) noexcept:
    cdef int64_t left
    if c.length != NO_LENGTH:
        left = c.length - c.body_len
        if left < 0:
            left = 0
        if n > left:
            n = <Py_ssize_t>left
    c.body_len += n
    if c.body_len > MAX_BODY:
        finish(c, E_BODY_TOO_LARGE, 0)
        return
    fk_md5_update(&c.md5, <const uint8_t *>p, n)
    if c.length != NO_LENGTH and c.body_len >= c.length:
        complete(c)


cdef void complete(Check c) noexcept:
    fk_md5_final(&c.md5, c.got_md5)
    if memcmp(c.got_md5, c.url.digest, 16) != 0:
        finish(c, E_DIGEST, 0)
    else:
        finish(c, OK, 0)


cdef void on_timer(fk_timer *t, void *data) noexcept:
    cdef Check c = <Check>data
    if c.phase == ARMED:
        attempt(c, t.when)
    elif c.phase == CONNECTING:
        finish(c, E_TIMEOUT_CONNECT, 0)
    elif c.phase == READING:
        finish(c, E_TIMEOUT_EXCHANGE, 0)


cdef inline double next_due(double start, double delay) noexcept nogil:
    """fastka.check.base.next_due: start + delay rounded to the nearest point of a grid of
    delay/64 (at most 1/64 s, none below 1 ms), so that checks due close together share
    a loop wake-up. The same floating-point operations as the Python function (rint
    rounds half to even, as round()), so the same result."""
    cdef double grid = delay * GRID_PER_DELAY
    if grid > GRID_MAX:
        grid = GRID_MAX
    if grid < GRID_MIN:
        return start + delay
    return rint((start + delay) / grid) * grid


cdef void finish(Check c, int code, int arg) noexcept:
    """The attempt is over: absorb an expected verdict (and arm the next attempt), or
    report it to Python."""
    cdef bint ok = code == OK
    cdef object done, text, result
    fk_timer_stop(&c.timer)
    c.close_attempt()
    c.ended = loop_time(c.loop)
    if c.ended < c.due:
        c.ended = c.due  # a start() outside the loop, ahead of its tick
    if c.expect >= 0 and ok == (c.expect == 1):
        c.absorbed += 1
        c.last_due = c.due
        if ok:
            c.step = (c.step + 1) % c.nsteps
        else:
            c.last_code = code
            c.last_arg = arg
            c.last_text = c.text
            if code == E_DIGEST:
                memcpy(c.last_md5, c.got_md5, 16)
        c.phase = ARMED
        if fk_timer_start(c.loop, &c.timer, next_due(c.ended, c.delay)) == 0:
            return
    # report
    c.phase = IDLE
    done = c.done
    c.done = None
    text = c.text
    c.unhold()
    if done is None:
        return
    try:
        if ok:
            result = _OK_RESULT
        else:
            result = Result(False, reason_text(code, c.failure_arg(code, arg, text, c.got_md5)))
        done(result)
    except BaseException:
        _log.exception("checker callback %r failed", done)
