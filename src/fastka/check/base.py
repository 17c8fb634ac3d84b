"""Pieces every checker shares: the loop it runs on, one attempt's result, and the
non-blocking connection that TCP, HTTP, SSL and SMTP checks drive.

An attempt (:class:`Probe`) is a small state machine: ``start(step, done)`` opens what it
needs on the loop and calls ``done(Result)`` exactly once, unless ``cancel()`` comes
first. Nothing blocks; every wait is an fd callback plus one deadline timer.

Timeouts: ``connect_timeout`` bounds the connection; the whole attempt (connection,
request, response) must finish within twice ``connect_timeout`` from its start. Keepalived re-arms
its timeout on every read, so a server that drips one byte a second keeps it waiting for
ever; a total budget gives the verdict in bounded time instead.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fastka.check.spec import CheckerSpec, family_of

if TYPE_CHECKING:
    import ssl

# ``ssl`` is imported by the methods that need it (only with a TLS context, which whoever
# made it has imported already): plain TCP and HTTP checkers never load it.

SO_MARK = getattr(socket, "SO_MARK", 36)
# Bytes read per recv call; also the granularity of the body caps below.
RECV_SIZE = 65536

# Attempts start on a grid of delay/64, at most 1/64 s (see next_due).
GRID_PER_DELAY = 1.0 / 64
GRID_MAX = 1.0 / 64
GRID_MIN = 0.001


def next_due(start: float, delay: float) -> float:
    """When an attempt ``delay`` after ``start`` runs: ``start + delay`` rounded to the
    nearest point of a grid of ``delay / 64``, at most 1/64 s (none below 1 ms).

    With hundreds of real servers the checks would otherwise each start in a loop
    wake-up of their own (1000 checks/s: an ``epoll_wait`` and two clock reads for nearly
    every check); on the grid, checks due within a few ms of each other start together.
    The grid divides any delay that is a multiple of 1/64 s, so an attempt that ends in
    the tick it started (as most do) keeps exactly ``delay`` to the next. The compiled
    check (``fastka._check``) does the same floating-point operations.
    """
    grid = min(delay * GRID_PER_DELAY, GRID_MAX)
    if grid < GRID_MIN:
        return start + delay
    return round((start + delay) / grid) * grid


class TimerLike(Protocol):
    @property
    def when(self) -> float: ...
    @property
    def active(self) -> bool: ...
    def cancel(self) -> None: ...


class LoopLike(Protocol):
    """The part of ``fastka.loop.Loop`` (docs/loop-api.md) the checkers use."""

    def time(self) -> float: ...
    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any: ...
    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Any: ...
    def call_soon(self, callback: Callable[..., Any], *args: Any) -> Any: ...
    def add_reader(self, fd: int, callback: Callable[..., Any], *args: Any) -> None: ...
    def remove_reader(self, fd: int) -> bool: ...
    def add_writer(self, fd: int, callback: Callable[..., Any], *args: Any) -> None: ...
    def remove_writer(self, fd: int) -> bool: ...
    def spawn(
        self,
        argv: Any,
        callback: Callable[[int, int], Any],
        *,
        env: Any = None,
        uid: int | None = None,
        gid: int | None = None,
        groups: Any = None,
        cwd: Any = None,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class Result:
    """The verdict of one attempt. ``weight`` is set by checkers that change the real
    server's weight (MISC_CHECK with misc_dynamic)."""

    ok: bool
    reason: str = ""
    weight: int | None = None


Done = Callable[[Result], None]


class Probe(Protocol):
    """``now`` is the loop time the attempt starts at, when the caller knows it (the
    deadline of the timer that fired): reading the clock costs a system call, a real one
    where there is no vDSO (user-mode-linux), so checkers avoid reading it twice."""

    def start(self, step: int, done: Done, now: float | None = None) -> None: ...
    def cancel(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """Where a connection-based checker connects, resolved from its spec and real server."""

    address: str
    port: int
    family: int
    bindto: str | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int | None = None
    protocol: str = "tcp"

    @classmethod
    def of(cls, spec: CheckerSpec, rs_address: str, rs_port: int, protocol: str = "tcp") -> Target:
        address = spec.connect_ip or rs_address
        port = spec.connect_port if spec.connect_port is not None else rs_port
        return cls(
            address,
            port,
            family_of(address),
            spec.bindto,
            spec.bind_port,
            spec.bind_if,
            spec.fwmark,
            protocol,
        )

    def sockaddr(self) -> tuple[Any, ...]:
        if self.family == socket.AF_INET6 and self.bind_if:
            # A link-local target needs the interface as its scope.
            return (self.address, self.port, 0, socket.if_nametoindex(self.bind_if))
        return (self.address, self.port)

    def describe(self) -> str:
        return f"[{self.address}]:{self.protocol}:{self.port}"


def open_socket(target: Target, kind: int, proto: int = 0) -> _socket.socket:
    """A non-blocking socket with the checker's bind options applied.

    The C-level ``_socket.socket``: ``socket.socket``'s Python wrapper adds a few µs per
    check (its ``__init__`` and ``close``) for nothing the checkers use."""
    sock = _socket.socket(target.family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto)
    try:
        if target.fwmark:
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, target.fwmark)
        if target.bind_if:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, target.bind_if.encode())
        if target.bindto or target.bind_port:
            sock.bind(
                (
                    target.bindto or ("::" if target.family == socket.AF_INET6 else "0.0.0.0"),
                    target.bind_port or 0,
                )
            )
    except BaseException:
        sock.close()
        raise
    return sock


class StreamProbe:
    """One TCP (optionally TLS) exchange on the loop; subclasses implement the protocol.

    Hooks: :meth:`connected` (after TCP, and after the TLS handshake when TLS is on),
    :meth:`data_received` (plaintext), :meth:`eof_received`. Subclasses call
    :meth:`send` and :meth:`finish`.
    """

    __slots__ = (
        "_done",
        "_in",
        "_out",
        "_pending",
        "_ssl",
        "_t0",
        "_timer",
        "_writing",
        "close_notify",
        "loop",
        "server_hostname",
        "sock",
        "ssl_context",
        "target",
        "timeout",
    )

    def __init__(
        self,
        loop: LoopLike,
        target: Target,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.loop = loop
        self.target = target
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.sock: _socket.socket | None = None
        self._done: Done | None = None
        self._timer: Any = None
        self._t0 = 0.0
        self._ssl: ssl.SSLObject | None = None
        self._in: ssl.MemoryBIO | None = None
        self._out: ssl.MemoryBIO | None = None
        self._pending = b""
        self._writing = False
        self.close_notify = False  # SSL_GET tls_compliant: send a TLS close_notify

    # -- life cycle
    def start(self, step: int, done: Done, now: float | None = None) -> None:
        self._done = done
        self._pending = b""
        self._writing = False
        self.begin(step)
        try:
            sock = open_socket(self.target, socket.SOCK_STREAM)
        except OSError as exc:
            self.finish(False, f"socket: {exc.strerror or exc}")
            return
        self.sock = sock
        err = sock.connect_ex(self.target.sockaddr())
        if err not in (0, errno.EINPROGRESS):
            self.finish(False, f"connect: {os.strerror(err)}")
            return
        self._t0 = self.loop.time() if now is None else now
        self._timer = self.loop.call_at(self._t0 + self.timeout, self._on_timeout, "connection")
        self.loop.add_writer(sock.fileno(), self._on_connect)

    def begin(self, step: int) -> None:
        """Reset per-attempt protocol state (subclasses)."""

    def cancel(self) -> None:
        self._done = None
        self._close()

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sock = self.sock
        if sock is not None and self._ssl is not None and self.close_notify and self._out is not None:
            import ssl

            # Best effort, never waiting: the alert goes out if the socket takes it now.
            with contextlib.suppress(ssl.SSLError, OSError, ValueError):
                self._ssl.unwrap()
            data = self._out.read()
            if data:
                with contextlib.suppress(OSError):
                    sock.send(data)
        if sock is not None:
            self.sock = None
            fd = sock.fileno()
            self.loop.remove_writer(fd)
            self.loop.remove_reader(fd)
            sock.close()
        self._ssl = self._in = self._out = None

    def finish(self, ok: bool, reason: str = "", weight: int | None = None) -> None:
        done = self._done
        self._done = None
        self._close()
        if done is not None:
            done(Result(ok, reason, weight))

    def _on_timeout(self, phase: str) -> None:
        self._timer = None
        self.finish(False, f"timeout ({phase})")

    # -- connection
    def _on_connect(self) -> None:
        sock = self.sock
        if sock is None:
            return
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self.loop.remove_writer(sock.fileno())
        if err:
            self.finish(False, f"connect: {os.strerror(err)}")
            return
        if self.ssl_context is None and self.connected_quick():
            return
        # Connected: the exchange gets its own budget (see the module docstring). It is
        # counted from the start, so re-arming needs no clock read.
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(self._t0 + 2 * self.timeout, self._on_timeout, "exchange")
        self.loop.add_reader(sock.fileno(), self._on_readable)
        if self.ssl_context is not None:
            import ssl

            self._in = ssl.MemoryBIO()
            self._out = ssl.MemoryBIO()
            self._ssl = self.ssl_context.wrap_bio(self._in, self._out, server_hostname=self.server_hostname)
            self._handshake()
        else:
            self.connected()

    def connected_quick(self) -> bool:
        """Return True if the attempt is over as soon as TCP connects (TCP_CHECK)."""
        return False

    def connected(self) -> None:
        """TCP (and TLS) is up: start the protocol."""

    def data_received(self, data: bytes) -> None:
        """Plaintext arrived."""

    def eof_received(self) -> None:
        self.finish(False, "connection closed by peer")

    # -- TLS plumbing
    def _handshake(self) -> None:
        import ssl

        assert self._ssl is not None
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return
        except (ssl.SSLError, OSError) as exc:
            self.finish(False, f"TLS handshake: {exc}")
            return
        self._flush_tls()
        if self._done is not None:
            self.connected()

    def _flush_tls(self) -> None:
        if self._out is not None:
            data = self._out.read()
            if data:
                self._raw_send(data)

    # -- I/O
    def send(self, data: bytes) -> None:
        if self._ssl is not None:
            import ssl

            try:
                self._ssl.write(data)
            except (ssl.SSLError, OSError) as exc:
                self.finish(False, f"TLS write: {exc}")
                return
            self._flush_tls()
        else:
            self._raw_send(data)

    def _raw_send(self, data: bytes) -> None:
        sock = self.sock
        if sock is None:
            return
        if self._pending:
            self._pending += data
            return
        try:
            n = sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self.finish(False, f"send: {exc.strerror or exc}")
            return
        if n < len(data):
            self._pending = data[n:]
            self.loop.add_writer(sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            n = sock.send(self._pending)
        except BlockingIOError:
            return
        except OSError as exc:
            self.finish(False, f"send: {exc.strerror or exc}")
            return
        self._pending = self._pending[n:]
        if not self._pending:
            self.loop.remove_writer(sock.fileno())

    def _on_readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            data = sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.finish(False, f"recv: {exc.strerror or exc}")
            return
        if self._ssl is None:
            if data:
                self.data_received(data)
            else:
                self.eof_received()
            return
        assert self._in is not None
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()
        if not self._handshake_done():
            self._handshake()
            if self._done is None or not self._handshake_done():
                return
        self._drain_tls()

    def _handshake_done(self) -> bool:
        assert self._ssl is not None
        try:
            return self._ssl.version() is not None
        except ValueError:
            return False

    def _drain_tls(self) -> None:
        import ssl

        while self._ssl is not None and self._done is not None:
            try:
                chunk = self._ssl.read(RECV_SIZE)
            except ssl.SSLWantReadError:
                self._flush_tls()
                return
            except ssl.SSLZeroReturnError:
                self.eof_received()
                return
            except ssl.SSLEOFError:
                # Servers that close without close_notify: treat as end of data.
                self.eof_received()
                return
            except (ssl.SSLError, OSError) as exc:
                self.finish(False, f"TLS read: {exc}")
                return
            if not chunk:
                self.eof_received()
                return
            self.data_received(chunk)
