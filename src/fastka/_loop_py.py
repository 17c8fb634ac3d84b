"""The event loop, pure-Python reference (``fastka._loop`` is the compiled one).

Same API and the same observable behaviour as ``fastka._loop`` (docs/loop-api.md):
``select.epoll`` for file descriptors (the layer under ``selectors.EpollSelector``, used
directly so that an fd closed while registered can be re-registered), a ``heapq`` of
``(tick << 64 | seq, timer)`` entries with lazy deletion for timers, ``signalfd`` through
ctypes for signals (so that the signal mask, and what children inherit, is the same as
with the compiled loop), ``pidfd`` for children, ``eventfd`` for wake-ups from other
threads, ``os.fork`` + exec for ``spawn``, Python sockets for ``connect_check`` and
``os.read``/``os.write`` for the datagram API (one datagram per wake-up).

Timer semantics shared with the compiled timer wheel, so that both fire in the same order:

* deadlines are rounded *up* to the 1 ms tick (``TICK``) counted from the loop's creation;
  a timer never fires before its deadline;
* timers fire in tick order, and in arming order within a tick (FIFO);
* a timer armed for a tick that has already been processed (``call_soon``, a deadline in
  the past) is *overdue*: it fires in the next iteration, before any timer of a later tick;
* timers armed or re-armed by a callback never fire in the iteration that armed them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import math
import os
import select
import signal
import socket
import struct
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from heapq import heappop, heappush
from time import monotonic as time_monotonic  # CLOCK_MONOTONIC on Linux
from typing import Any, Final, Protocol

logger: Final = logging.getLogger("fastka.loop")

TICK: Final = 0.001
"""Timer resolution in seconds (deadlines are rounded up to it)."""

MAX_TICKS: Final = (1 << 40) - 1
"""The farthest deadline, in ticks after the loop's creation (~34.8 years); later ones are clamped."""

DEVNULL: Final = subprocess.DEVNULL
"""``spawn(stdin=/stdout=/stderr=DEVNULL)`` connects the stream to /dev/null."""

# Tick rounding: a deadline within _EPS ticks of a tick boundary counts as on it, so that
# float noise in ``first + k*interval`` does not push a timer to the next tick.
_EPS: Final = 1e-6

_EPOLLIN: Final = select.EPOLLIN
_EPOLLOUT: Final = select.EPOLLOUT
_EPOLLERR_HUP: Final = select.EPOLLERR | select.EPOLLHUP
_READ_EVENTS: Final = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
_WRITE_EVENTS: Final = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP

_SEQ_MASK: Final = (1 << 64) - 1
_IDLE: Final = -1  # Timer._seq: not armed
_BATCH: Final = -2  # Timer._seq: due in the batch being dispatched


class HasFileno(Protocol):
    def fileno(self) -> int: ...


FileDescriptorLike = int | HasFileno


def _fileno(fd: FileDescriptorLike) -> int:
    n = fd if isinstance(fd, int) else int(fd.fileno())
    if n < 0:
        raise ValueError(f"invalid file descriptor {n}")
    return n


def _log_exception(callback: object) -> None:
    logger.exception("exception in loop callback %r", callback)


class Timer:
    """A one-shot or periodic timer (``Loop.call_at`` and friends return it)."""

    __slots__ = ("_args", "_base", "_callback", "_interval", "_k", "_loop", "_seq", "_tick", "_when")

    def __init__(self, loop: Loop, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self._loop = loop
        self._callback = callback
        self._args = args
        self._when = 0.0
        self._tick = 0
        self._seq = _IDLE
        self._interval = 0.0  # > 0: periodic
        self._base = 0.0  # periodic: deadlines are _base + _k * _interval
        self._k = 0

    @property
    def when(self) -> float:
        """The deadline (for a periodic timer: the next one)."""
        return self._when

    @property
    def active(self) -> bool:
        """Armed and neither fired (one-shot) nor cancelled."""
        return self._seq != _IDLE

    def cancel(self) -> None:
        """Disarm; idempotent, safe from any callback including the timer's own."""
        if self._seq != _IDLE:
            self._loop._timer_unlink(self)
            self._seq = _IDLE

    def reschedule(self, when: float) -> None:
        """Re-arm at ``when`` (absolute); works on fired and cancelled timers too.

        A periodic timer continues at ``when + k*interval``.
        """
        loop = self._loop
        if self._seq != _IDLE:
            loop._timer_unlink(self)
        if self._interval > 0.0:
            self._base = when
            self._k = 0
        loop._timer_arm(self, when)

    def __repr__(self) -> str:
        state = "active" if self.active else "idle"
        return f"<Timer {state} when={self._when:.6f} {self._callback!r}>"


class Waiter:
    """A one-shot wait for an fd to become readable/writable, or a timeout."""

    __slots__ = ("_callback", "_fd", "_loop", "_slot", "_timer")

    def __init__(self, loop: Loop, fd: int, slot: int, callback: Callable[[bool], object]) -> None:
        self._loop = loop
        self._fd = fd
        self._slot = slot  # 0 reader, 1 writer
        self._callback = callback
        self._timer: Timer | None = None

    @property
    def active(self) -> bool:
        """Still waiting (neither fired nor cancelled)."""
        return self._fd >= 0

    def cancel(self) -> None:
        """Stop waiting; the callback is not called. Idempotent."""
        fd = self._fd
        if fd >= 0:
            self._loop._fd_clear(fd, self._slot, self)

    def _finish(self) -> Callable[[bool], object]:
        """Detach (timer cancelled, fd slot already cleared by the caller)."""
        self._fd = -1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return self._callback

    def _on_timeout(self) -> None:
        fd = self._fd
        if fd >= 0:
            self._timer = None
            self._loop._fd_clear(fd, self._slot, self)
            self._callback(False)


class ConnectCheck:
    """A pending ``Loop.connect_check``."""

    __slots__ = ("_callback", "_loop", "_sock", "_timer", "_waiter")

    def __init__(self, loop: Loop, sock: socket.socket, callback: Callable[[int], object]) -> None:
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._callback = callback
        self._waiter: Waiter | None = None
        self._timer: Timer | None = None

    @property
    def active(self) -> bool:
        """Still pending (neither reported nor cancelled)."""
        return self._sock is not None

    def cancel(self) -> None:
        """Abort: the socket is closed, the callback not called. Idempotent."""
        if self._sock is not None:
            self._finish()

    def _finish(self) -> None:
        if self._waiter is not None:
            self._waiter.cancel()
        if self._timer is not None:
            self._timer.cancel()
        assert self._sock is not None
        self._sock.close()
        self._sock = None
        self._loop._checks.discard(self)

    def _on_ready(self, ok: bool) -> None:
        assert self._sock is not None
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if ok else errno.ETIMEDOUT
        self._finish()
        self._callback(err)

    def _settle(self, err: int) -> None:
        self._finish()
        self._callback(err)


def _ip_sockaddr(host: str, port: int) -> tuple[int, tuple[str, int]]:
    """A numeric IPv4/IPv6 address (no name lookup) and a port -> (family, address)."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, TypeError):
            continue
        return family, (host, port)
    raise ValueError(f"not an IP address: {host!r}")


# --- signalfd through ctypes ---------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.signalfd.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_libc.signalfd.restype = ctypes.c_int
_SIGSET_BYTES: Final = 128  # glibc sigset_t
_SIGINFO_SIZE: Final = 128  # struct signalfd_siginfo


def _signalfd(fd: int, signums: set[int]) -> int:
    mask = bytearray(_SIGSET_BYTES)
    for s in signums:
        mask[(s - 1) // 8] |= 1 << ((s - 1) % 8)
    buf = (ctypes.c_char * _SIGSET_BYTES).from_buffer(mask)
    res = int(_libc.signalfd(fd, ctypes.addressof(buf), os.O_NONBLOCK | os.O_CLOEXEC))
    del buf
    if res < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return res


def _discard_pending(signum: int) -> None:
    """Dequeue pending instances of a blocked signal before it is unblocked."""
    while signal.sigtimedwait([signum], 0) is not None:
        pass


def _read_datagram_or_report(
    fd: int, bufsize: int, error_callback: Callable[[OSError], object] | None
) -> bytes | None:
    """One datagram, or None: nothing there, or a read error (given to ``error_callback``,
    else logged at debug level)."""
    try:
        return os.read(fd, bufsize)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as e:
        if error_callback is not None:
            error_callback(e)
        else:
            logger.debug("datagram reader on fd %d: %s", fd, e)
        return None


class Loop:
    """One scheduler per process: epoll, timers, signals, children, thread wake-ups.

    ``clock`` is a test hook: a callable returning the time in seconds, used instead of
    CLOCK_MONOTONIC for timers and ``time()`` (the loop still waits in real time, so drive
    it with ``run_once(0)``).
    """

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._clock: Callable[[], float] = clock if clock is not None else time_monotonic
        self._t0 = float(self._clock())
        self._cur = 0  # last processed tick
        # (tick << 64 | seq, timer): one int compares faster than (tick, seq) in big heaps
        self._heap: list[tuple[int, Timer]] = []
        self._seq = 0
        self._stale = 0  # heap entries of cancelled/re-armed timers
        self._overdue = 0  # live heap entries with tick <= _cur
        self._epoll: select.epoll | None = select.epoll()
        # fd -> [reader, writer, registered mask]; reader/writer: (callback, args) or Waiter
        self._fds: dict[int, list[Any]] = {}
        self._running = False
        self._stopping = False
        self._closed = False
        # thread wake-ups
        self._threadsafe: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._add_internal(self._eventfd, self._on_eventfd)
        # signals
        self._signal_handlers: dict[int, Callable[[int], object]] = {}
        self._signals_blocked_by_us: set[int] = set()
        self._signalfd = -1
        self._checks: set[ConnectCheck] = set()  # pending connect checks
        # add_datagram_batch_reader: callback -> [callback, items]; groups to deliver
        self._dgram_groups: dict[Callable[..., Any], list[Any]] = {}
        self._dgram_queue: list[list[Any]] = []
        # children: pid -> (pidfd, callback)
        self._children: dict[int, tuple[int, Callable[[int, int], object]]] = {}

    # --- time ----------------------------------------------------------------------

    def time(self) -> float:
        """Now, CLOCK_MONOTONIC seconds (or the test clock)."""
        return float(self._clock())

    def _tick_of(self, when: float) -> int:
        x = (when - self._t0) * 1000.0 - _EPS
        if x != x:
            raise ValueError("timer deadline is NaN")
        if x >= MAX_TICKS:
            return MAX_TICKS
        if x <= -1.0:
            return 0
        return math.ceil(x)

    def _now_tick(self, now: float) -> int:
        x = (now - self._t0) * 1000.0 + _EPS
        if x >= MAX_TICKS:
            return MAX_TICKS
        if x < 0.0:
            return 0
        return math.floor(x)

    # --- timers --------------------------------------------------------------------

    def _timer_arm(self, timer: Timer, when: float, soon: bool = False) -> None:
        if self._closed:
            raise RuntimeError("the loop is closed")
        tick = 0 if soon else self._tick_of(when)
        if tick <= self._cur:
            tick = self._cur
            self._overdue += 1
        timer._when = when
        timer._tick = tick
        seq = self._seq
        self._seq = seq + 1
        timer._seq = seq
        heappush(self._heap, ((tick << 64) | seq, timer))

    def _timer_unlink(self, timer: Timer) -> None:
        if timer._seq >= 0:
            self._stale += 1
            if timer._tick <= self._cur:
                self._overdue -= 1
            if self._stale > 1024 and self._stale * 2 > len(self._heap):
                self._compact()

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if e[1]._seq == e[0] & _SEQ_MASK]
        self._heap.sort()
        self._stale = 0

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Call ``callback(*args)`` at ``when`` (loop time)."""
        t = Timer(self, callback, args)
        self._timer_arm(t, when)
        return t

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Call ``callback(*args)`` after ``delay`` seconds."""
        t = Timer(self, callback, args)
        self._timer_arm(t, self.time() + delay)
        return t

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Timer:
        """Call ``callback(*args)`` in the next iteration (FIFO with other due timers)."""
        t = Timer(self, callback, args)
        self._timer_arm(t, self.time(), True)
        return t

    def call_periodic(
        self, interval: float, callback: Callable[..., object], *args: Any, first: float | None = None
    ) -> Timer:
        """Call ``callback(*args)`` at ``first + k*interval`` (no drift; late ticks are skipped)."""
        if not interval > 0.0:
            raise ValueError("interval must be > 0")
        t = Timer(self, callback, args)
        if first is None:
            first = self.time() + interval
        t._interval = interval
        t._base = first
        t._k = 0
        self._timer_arm(t, first)
        return t

    def _periodic_next(self, t: Timer) -> float:
        """The first deadline of ``t``'s schedule in a tick after the current one."""
        cur = self._cur
        k = t._k + 1
        when = t._base + k * t._interval
        if self._tick_of(when) <= cur:
            # late by more than an interval: skip the missed ticks
            now = self._t0 + cur / 1000.0
            k = max(k, math.floor((now - t._base) / t._interval))
            when = t._base + k * t._interval
            while self._tick_of(when) <= cur:
                k += 1
                when = t._base + k * t._interval
        t._k = k
        return when

    # --- file descriptors ----------------------------------------------------------

    def _epoll_update(self, fd: int, ent: list[Any], adding: bool) -> None:
        """Tell epoll the interest of ``ent``.

        When a callback is added the call is made even if the mask is unchanged: the fd
        may have been closed and its number reused since it was registered, and only
        the kernel knows (MOD then fails with ENOENT, and the fd is added again).
        """
        ep = self._epoll
        if ep is None:
            raise RuntimeError("the loop is closed")
        mask = (_EPOLLIN if ent[0] is not None else 0) | (_EPOLLOUT if ent[1] is not None else 0)
        old = ent[2]
        if mask == old and not adding:
            return
        if not adding:
            # less interest: failing means the fd was closed while registered, and the
            # kernel has dropped it already
            try:
                if mask == 0:
                    ep.unregister(fd)
                else:
                    ep.modify(fd, mask)
            except OSError:
                pass
        elif old == 0:
            try:
                ep.register(fd, mask)
            except FileExistsError:
                ep.modify(fd, mask)
        else:
            try:
                ep.modify(fd, mask)
            except FileNotFoundError:
                # the fd was closed while registered and its number reused
                ep.register(fd, mask)
        ent[2] = mask

    def _fd_set(self, fd: int, slot: int, handle: Any) -> None:
        ent = self._fds.get(fd)
        if ent is None:
            ent = self._fds[fd] = [None, None, 0]
        old = ent[slot]
        ent[slot] = handle
        try:
            self._epoll_update(fd, ent, True)
        except BaseException:
            ent[slot] = old
            if ent[0] is None and ent[1] is None and ent[2] == 0:
                del self._fds[fd]
            raise
        if type(old) is Waiter:
            old._finish()

    def _fd_clear(self, fd: int, slot: int, expect: Any = None) -> bool:
        ent = self._fds.get(fd)
        if ent is None:
            return False
        old = ent[slot]
        if old is None or (expect is not None and old is not expect):
            return False
        ent[slot] = None
        if ent[0] is None and ent[1] is None:
            del self._fds[fd]
            if self._epoll is not None and ent[2]:
                with contextlib.suppress(OSError):
                    self._epoll.unregister(fd)
        else:
            self._epoll_update(fd, ent, False)
        if type(old) is Waiter:
            old._finish()
        return True

    def _add_internal(self, fd: int, callback: Callable[[], object]) -> None:
        self._fd_set(fd, 0, (callback, ()))

    def add_reader(self, fd: FileDescriptorLike, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is readable (replaces a previous reader)."""
        self._fd_set(_fileno(fd), 0, (callback, args))

    def remove_reader(self, fd: FileDescriptorLike) -> bool:
        """Stop watching ``fd`` for reading; False if it was not watched."""
        return self._fd_clear(_fileno(fd), 0)

    def add_writer(self, fd: FileDescriptorLike, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is writable (replaces a previous writer)."""
        self._fd_set(_fileno(fd), 1, (callback, args))

    def remove_writer(self, fd: FileDescriptorLike) -> bool:
        """Stop watching ``fd`` for writing; False if it was not watched."""
        return self._fd_clear(_fileno(fd), 1)

    def _wait(
        self, fd: FileDescriptorLike, slot: int, timeout: float | None, callback: Callable[[bool], object]
    ) -> Waiter:
        n = _fileno(fd)
        w = Waiter(self, n, slot, callback)
        self._fd_set(n, slot, w)
        if timeout is not None:
            w._timer = self.call_at(self.time() + timeout, w._on_timeout)
        return w

    def wait_readable(
        self, fd: FileDescriptorLike, timeout: float | None, callback: Callable[[bool], object]
    ) -> Waiter:
        """One-shot: ``callback(True)`` when ``fd`` is readable, ``callback(False)`` on timeout."""
        return self._wait(fd, 0, timeout, callback)

    def wait_writable(
        self, fd: FileDescriptorLike, timeout: float | None, callback: Callable[[bool], object]
    ) -> Waiter:
        """One-shot: ``callback(True)`` when ``fd`` is writable, ``callback(False)`` on timeout."""
        return self._wait(fd, 1, timeout, callback)

    # --- datagrams -----------------------------------------------------------------

    def add_datagram_reader(
        self,
        fd: FileDescriptorLike,
        callback: Callable[..., object],
        *args: Any,
        error_callback: Callable[[OSError], object] | None = None,
        batch: int = 16,
        bufsize: int = 2048,
    ) -> None:
        """Read the datagrams of ``fd`` in the loop: ``callback(*args, data)`` for each.

        Up to ``batch`` datagrams per wake-up (one recvmmsg), each up to ``bufsize`` bytes
        (longer ones are truncated). A read error (e.g. ECONNREFUSED on a connected UDP
        socket) goes to ``error_callback(exc)``. Occupies the fd's reader slot.
        (The reference reads one datagram per wake-up; level-triggered epoll brings it
        back for the next one.)
        """
        if not 1 <= batch <= 1024 or bufsize < 1:
            raise ValueError("batch must be 1..1024 and bufsize >= 1")
        n = _fileno(fd)
        self._fd_set(n, 0, (self._read_datagram, (n, callback, args, error_callback, bufsize)))

    def add_datagram_batch_reader(
        self,
        fd: FileDescriptorLike,
        callback: Callable[
            [list[tuple[int, bytes]]], Iterable[tuple[int, bytes | bytearray | memoryview]] | None
        ],
        *,
        error_callback: Callable[[OSError], object] | None = None,
        batch: int = 16,
        bufsize: int = 2048,
    ) -> None:
        """Like ``add_datagram_reader``, but ``callback(datagrams)`` is called once per loop
        iteration with the ``(fd, data)`` read by every batch reader sharing ``callback``
        (after the iteration's fd events, before its timers). It may return an iterable
        of ``(fd, data)`` replies, which the loop sends (send() in C; errors are logged
        at debug level and skipped). One Python call per iteration, not per datagram.
        """
        if not 1 <= batch <= 1024 or bufsize < 1:
            raise ValueError("batch must be 1..1024 and bufsize >= 1")
        n = _fileno(fd)
        group = self._dgram_groups.get(callback)
        if group is None:
            group = self._dgram_groups[callback] = [callback, []]
        self._fd_set(n, 0, (self._read_datagram_batch, (n, group, error_callback, bufsize)))

    def _read_datagram_batch(
        self, fd: int, group: list[Any], error_callback: Callable[[OSError], object] | None, bufsize: int
    ) -> None:
        data = _read_datagram_or_report(fd, bufsize, error_callback)
        if data is None:
            return
        if not group[1]:
            self._dgram_queue.append(group)
        group[1].append((fd, data))

    def _flush_datagram_groups(self) -> None:
        while self._dgram_queue:
            queue, self._dgram_queue = self._dgram_queue, []
            for group in queue:
                callback, items = group[0], group[1]
                group[1] = []
                try:
                    replies = callback(items)
                    for fd, data in replies or ():
                        try:
                            os.write(fd, data)
                        except OSError as e:
                            logger.debug("datagram reply on fd %d: %s", fd, e)
                except Exception:
                    _log_exception(callback)

    def _read_datagram(
        self,
        fd: int,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        error_callback: Callable[[OSError], object] | None,
        bufsize: int,
    ) -> None:
        data = _read_datagram_or_report(fd, bufsize, error_callback)
        if data is None:
            return
        try:
            callback(*args, data)
        except Exception:
            _log_exception(callback)

    def send_datagram(self, fd: FileDescriptorLike, data: bytes | bytearray | memoryview) -> int:
        """send() one datagram on a connected socket without blocking; the bytes sent."""
        return os.write(_fileno(fd), data)

    def send_datagrams(
        self, fd: FileDescriptorLike, datagrams: Iterable[bytes | bytearray | memoryview]
    ) -> int:
        """sendmmsg() several datagrams on a connected socket in one call, without
        blocking; how many were sent (raises if not even the first one was)."""
        n = _fileno(fd)
        sent = 0
        for data in list(datagrams)[:1024]:
            try:
                os.write(n, data)
            except OSError:
                if sent == 0:
                    raise
                break
            sent += 1
        return sent

    # --- connect checks -------------------------------------------------------------

    def connect_check(
        self,
        host: str,
        port: int,
        timeout: float,
        callback: Callable[[int], object],
        *,
        source: tuple[str, int] | None = None,
        mark: int | None = None,
    ) -> ConnectCheck:
        """Keepalived's TCP_CHECK: a non-blocking TCP connect to ``host`` (a numeric IPv4
        or IPv6 address) and ``port``, then close; ``callback(err)`` once, in a later
        iteration: 0 when connected, the errno otherwise (ECONNREFUSED, ETIMEDOUT when
        ``timeout`` passes first, ...). ``source=(addr, port)`` binds first, ``mark`` sets
        SO_MARK. Errors setting the socket up raise here.
        """
        if self._closed:
            raise RuntimeError("the loop is closed")
        if timeout != timeout:
            raise ValueError("timeout is NaN")
        family, addr = _ip_sockaddr(host, port)
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            if mark is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
            if source is not None:
                _ip_sockaddr(source[0], source[1])
                sock.bind(source)
        except BaseException:
            sock.close()
            raise
        c = ConnectCheck(self, sock, callback)
        self._checks.add(c)
        err = sock.connect_ex(addr)
        if err == errno.EINPROGRESS:
            c._waiter = self.wait_writable(sock, timeout, c._on_ready)
        else:  # settled at once (refused, unreachable, connected): reported next iteration
            c._timer = self.call_soon(c._settle, err)
        return c

    # --- signals -------------------------------------------------------------------

    def add_signal_handler(self, signum: int, callback: Callable[[int], object]) -> None:
        """Deliver ``signum`` through signalfd as ``callback(signum)`` (the signal is blocked)."""
        signum = int(signum)
        if not 0 < signum < signal.NSIG or signum in (signal.SIGKILL, signal.SIGSTOP):
            raise ValueError(f"cannot handle signal {signum}")
        if self._closed:
            raise RuntimeError("the loop is closed")
        if signum not in self._signal_handlers:
            if signum not in signal.pthread_sigmask(signal.SIG_BLOCK, [signum]):
                self._signals_blocked_by_us.add(signum)
            wanted = set(self._signal_handlers) | {signum}
            if self._signalfd < 0:
                self._signalfd = _signalfd(-1, wanted)
                self._add_internal(self._signalfd, self._on_signalfd)
            else:
                _signalfd(self._signalfd, wanted)
        self._signal_handlers[signum] = callback

    def remove_signal_handler(self, signum: int) -> bool:
        """Stop handling ``signum``; its mask and pending state are restored. False if not handled."""
        signum = int(signum)
        if self._signal_handlers.pop(signum, None) is None:
            return False
        if self._signalfd >= 0:
            _signalfd(self._signalfd, set(self._signal_handlers))
        if signum in self._signals_blocked_by_us:
            self._signals_blocked_by_us.discard(signum)
            _discard_pending(signum)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        return True

    def _on_signalfd(self) -> None:
        try:
            data = os.read(self._signalfd, _SIGINFO_SIZE * 16)
        except BlockingIOError:
            return
        for off in range(0, len(data) - _SIGINFO_SIZE + 1, _SIGINFO_SIZE):
            (signum,) = struct.unpack_from("I", data, off)
            cb = self._signal_handlers.get(signum)
            if cb is not None:
                try:
                    cb(signum)
                except Exception:
                    _log_exception(cb)

    # --- children ------------------------------------------------------------------

    def watch_child(self, pid: int, callback: Callable[[int, int], object]) -> None:
        """``callback(pid, returncode)`` once the child exits (it is reaped by the loop).

        ``returncode`` is the exit status, or ``-signum`` if a signal killed it.
        Raises ``ChildProcessError`` if ``pid`` is not a child of this process.
        """
        if self._closed:
            raise RuntimeError("the loop is closed")
        old = self._children.get(pid)
        if old is not None:
            self._children[pid] = (old[0], callback)
            return
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # ChildProcessError
        pidfd = os.pidfd_open(pid)
        self._children[pid] = (pidfd, callback)
        self._fd_set(pidfd, 0, (self._on_pidfd, (pid,)))

    def unwatch_child(self, pid: int) -> bool:
        """Stop watching ``pid`` (it is not reaped). False if it was not watched."""
        ent = self._children.pop(pid, None)
        if ent is None:
            return False
        self._fd_clear(ent[0], 0)
        os.close(ent[0])
        return True

    def _on_pidfd(self, pid: int) -> None:
        ent = self._children.get(pid)
        if ent is None:
            return
        pidfd, callback = ent
        try:
            res = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            res = None  # reaped by someone else: report what we cannot know as 255
            rc = 255
        else:
            if res is None:
                return  # not yet (spurious)
            rc = res.si_status if res.si_code == os.CLD_EXITED else -res.si_status
        del self._children[pid]
        self._fd_clear(pidfd, 0)
        os.close(pidfd)
        callback(pid, rc)

    def spawn(
        self,
        argv: Sequence[str],
        callback: Callable[[int, int], object],
        *,
        env: Mapping[str, str] | None = None,
        uid: int | None = None,
        gid: int | None = None,
        groups: Sequence[int] | None = None,
        cwd: str | None = None,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
    ) -> int:
        """Run a program; ``callback(pid, returncode)`` when it exits. Returns the pid.

        The child gets an empty signal mask, default signal dispositions, its own process
        group, only fds 0-2, and the user/group switch asked for. ``stdin``/``stdout``/
        ``stderr``: None inherits, an fd is dup'ed, ``DEVNULL`` is /dev/null. Failing to
        exec raises ``OSError`` here (the child never runs).
        """
        prog, args, envp, gids = _spawn_prepare(argv, env, groups, uid, gid)
        if self._closed:
            raise RuntimeError("the loop is closed")
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                _spawn_child(prog, args, envp, uid, gid, gids, cwd, (stdin, stdout, stderr), wfd)
            os.close(wfd)
            wfd = -1
            err = b""
            while True:
                try:
                    chunk = os.read(rfd, 4)
                except InterruptedError:
                    continue
                if not chunk:
                    break
                err += chunk
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
        if err:
            os.waitpid(pid, 0)
            code = int.from_bytes(err[:4].ljust(4, b"\0"), "little")
            raise OSError(code, os.strerror(code), argv[0])
        self.watch_child(pid, callback)
        return pid

    # --- threads -------------------------------------------------------------------

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:
        """From any thread: call ``callback(*args)`` on the loop's thread soon."""
        self._threadsafe.append((callback, args))
        with contextlib.suppress(OSError):  # counter saturated (still readable), or closed
            os.eventfd_write(self._eventfd, 1)

    def _on_eventfd(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._eventfd)
        q = self._threadsafe
        while q:
            cb, args = q.popleft()
            self.call_soon(cb, *args)

    # --- running -------------------------------------------------------------------

    def run(self) -> None:
        """Run until ``stop()`` (a ``stop()`` before ``run()`` makes it one iteration)."""
        if self._running:
            raise RuntimeError("the loop is already running")
        try:
            while True:
                self.run_once()
                if self._stopping:
                    break
        finally:
            self._stopping = False

    def stop(self) -> None:
        """Make ``run()`` return after the current iteration."""
        self._stopping = True

    def _poll_timeout(self, timeout: float | None) -> float:
        if self._overdue > 0:
            return 0.0
        heap = self._heap
        while heap and heap[0][1]._seq != heap[0][0] & _SEQ_MASK:
            heappop(heap)
            self._stale -= 1
        if heap:
            wait = self._t0 + (heap[0][0] >> 64) / 1000.0 - self.time()
            if wait < 0.0:
                wait = 0.0
            if timeout is None or wait < timeout:
                return wait
        if timeout is None:
            return -1.0
        return max(timeout, 0.0)

    def run_once(self, timeout: float | None = None) -> None:
        """One iteration: wait up to ``timeout`` (None: until something is due), then dispatch."""
        if self._running:
            raise RuntimeError("the loop is already running")
        ep = self._epoll
        if ep is None:
            raise RuntimeError("the loop is closed")
        self._running = True
        try:
            wait = self._poll_timeout(timeout)
            events = ep.poll(wait, max(len(self._fds), 1))
            cur = self._now_tick(self.time())
            if cur > self._cur:
                self._cur = cur
            cur = self._cur
            due: list[tuple[int, Timer]] = []
            heap = self._heap
            limit = (cur + 1) << 64
            while heap and heap[0][0] < limit:
                entry = heappop(heap)
                t = entry[1]
                if t._seq == entry[0] & _SEQ_MASK:
                    t._seq = _BATCH
                    due.append(entry)
                else:
                    self._stale -= 1
            self._overdue = 0
            try:
                self._dispatch_fds(events)
                self._dispatch_timers(due)
            except BaseException:
                self._restore(due)
                raise
        finally:
            self._running = False

    def _restore(self, due: list[tuple[int, Timer]]) -> None:
        """A BaseException (SystemExit...) escaped a callback: what is left of the batch
        stays due, with its original keys, so first in the next iteration."""
        for entry in due:
            t = entry[1]
            if t._seq == _BATCH:
                t._seq = entry[0] & _SEQ_MASK
                self._overdue += 1
                heappush(self._heap, entry)

    def _dispatch_fds(self, events: list[tuple[int, int]]) -> None:
        fds = self._fds
        for fd, ev in events:
            if ev & _READ_EVENTS:
                ent = fds.get(fd)
                if ent is not None and ent[0] is not None:
                    self._call_handle(fd, 0, ent[0])
            if ev & _WRITE_EVENTS:
                ent = fds.get(fd)
                if ent is not None and ent[1] is not None:
                    self._call_handle(fd, 1, ent[1])
        if self._dgram_queue:
            self._flush_datagram_groups()

    def _call_handle(self, fd: int, slot: int, h: Any) -> None:
        if type(h) is Waiter:
            self._fd_clear(fd, slot, h)
            cb: Callable[..., object] = h._callback
            try:
                cb(True)
            except Exception:
                _log_exception(cb)
            return
        cb, args = h
        try:
            cb(*args)
        except Exception:
            _log_exception(cb)

    def _dispatch_timers(self, due: list[tuple[int, Timer]]) -> None:
        for _, t in due:
            if t._seq != _BATCH:
                continue  # cancelled or re-armed by an earlier callback
            t._seq = _IDLE
            if t._interval > 0.0:
                self._timer_arm(t, self._periodic_next(t))
            cb = t._callback
            try:
                cb(*t._args)
            except Exception:
                _log_exception(cb)

    def close(self) -> None:
        """Release epoll/signalfd/eventfd/pidfds, restore the signal mask, drop timers."""
        if self._closed:
            return
        if self._running:
            raise RuntimeError("cannot close a running loop")
        self._closed = True
        for signum in list(self._signal_handlers):
            self.remove_signal_handler(signum)
        for pid in list(self._children):
            self.unwatch_child(pid)
        for c in list(self._checks):
            c.cancel()
        for key, t in self._heap:
            if t._seq == key & _SEQ_MASK:
                t._seq = _IDLE
        self._heap = []
        for ent in self._fds.values():
            for h in ent[:2]:
                if type(h) is Waiter:
                    h._fd = -1
                    h._timer = None
        self._fds.clear()
        if self._signalfd >= 0:
            os.close(self._signalfd)
            self._signalfd = -1
        os.close(self._eventfd)
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Loop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- spawn helpers (shared shape with the compiled loop) -----------------------------


def _spawn_prepare(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    groups: Sequence[int] | None,
    uid: int | None,
    gid: int | None,
) -> tuple[bytes, list[bytes], list[bytes] | None, list[int] | None]:
    """Resolve the program and encode everything before fork (no allocation after it)."""
    if isinstance(argv, str | bytes) or not argv:
        raise ValueError("argv must be a non-empty sequence of strings")
    args = [os.fsencode(a) for a in argv]
    prog = args[0]
    if b"/" not in prog:
        path = (env if env is not None else os.environ).get("PATH", os.defpath)
        import shutil  # here: shutil loads zlib, bz2 and lzma, which nothing else needs

        found = shutil.which(os.fsdecode(prog), path=path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
        prog = os.fsencode(found)
    envp = None if env is None else [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
    gids = [int(g) for g in groups] if groups is not None else None
    if gids is None and uid is not None and os.geteuid() == 0:
        # dropping root: do not keep root's supplementary groups
        gids = [gid if gid is not None else os.getegid()]
    return prog, args, envp, gids


def _spawn_child(  # pragma: no cover - runs in the forked child only
    prog: bytes,
    args: list[bytes],
    envp: list[bytes] | None,
    uid: int | None,
    gid: int | None,
    gids: list[int] | None,
    cwd: str | None,
    stdio: tuple[int | None, int | None, int | None],
    errfd: int,
) -> None:
    code = 0
    try:
        for s in range(1, signal.NSIG):
            if s in (signal.SIGKILL, signal.SIGSTOP):
                continue
            with contextlib.suppress(OSError, ValueError):
                signal.signal(s, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.setpgid(0, 0)
        # stdio: first move every source out of 0-2, so that swaps work
        src: list[int | None] = []
        for fd in stdio:
            if fd is None:
                src.append(None)
            elif fd == DEVNULL:
                src.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
            else:
                src.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3))
        for target, fd in enumerate(src):
            if fd is not None:
                os.dup2(fd, target, inheritable=True)
        if gids is not None:
            os.setgroups(gids)
        if gid is not None:
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        if cwd is not None:
            os.chdir(cwd)
        os.closerange(3, errfd)
        os.closerange(errfd + 1, 1 << 20)
        if envp is None:
            os.execv(prog, args)
        else:
            env = {}
            for item in envp:
                k, _, v = item.partition(b"=")
                env[k] = v
            os.execve(prog, args, env)
    except OSError as e:
        code = e.errno or errno.EINVAL
    except BaseException:
        code = errno.EINVAL
    try:
        os.write(errfd, code.to_bytes(4, "little"))
    finally:
        os._exit(127)


__all__ = ["DEVNULL", "MAX_TICKS", "TICK", "ConnectCheck", "FileDescriptorLike", "Loop", "Timer", "Waiter"]
