"""TCP_CHECK and plain HTTP_GET, one attempt at a time and in steady state: the
pure-Python reference of ``fastka._check`` (same API; ``fastka.check.steady`` picks one;
type checkers always see this module, the typed specification).

A :class:`Check` makes Keepalived's connection attempts against one real server:

* socket (non-blocking, close-on-exec; ``bindto``/``bind_port``, ``bind_if``,
  ``fwmark`` applied), connect, wait until writable -- at most ``timeout``
  (``connect_timeout``) after the attempt's start. With :attr:`Check.at_once` (the
  default) the check first asks once whether the connection is already up when
  ``connect`` returns, as it is for a target in the same kernel (another namespace,
  loopback): TCP_CHECK calls ``connect`` again, HTTP_GET sends its request; a check
  whose answer is "not yet" stops asking and tries again every :data:`QUICK_REPROBE`
  attempts;
* TCP_CHECK (no URLs): connected is success;
* HTTP_GET (one :class:`HttpUrl` per ``url`` block; attempt ``step`` uses URL
  ``step % len(urls)``): send the request bytes, read the response head (the quick
  grammar of :func:`fastka.check.http.quick_parse_head`; an unusual head goes to h11
  through :func:`slow_head`), success when the status is in ``status_code`` and, if the
  URL has a digest, the MD5 of the body (up to Content-Length or the server's close, at
  most :data:`MAX_BODY` bytes) equals it. Reading stops as soon as the verdict is known.
  The whole exchange must end within ``2 * timeout`` of the start;
* close.

``start(step, done, now)`` is one attempt (the :class:`fastka.check.base.Probe`
protocol). ``arm(when, step, done, expect, delay)`` is the steady state: an attempt at
``when``; while its verdict is ``expect`` (1 success, 0 failure; -1 never), the next one
starts ``delay`` after it ended (after a success with the next URL) and nobody is told;
the first verdict that differs goes to ``done(Result)`` and ends the run. So a checker
whose state machine has nothing to do on a repeated verdict costs no Python at all in
the compiled implementation (see :class:`fastka.check.fsm.SteadyChecker`).

Failures are kept as a code and an argument (:data:`E_SOCKET` ...); :func:`reason_text`
makes the text -- the same as the Python probes' (:mod:`fastka.check.base`,
:mod:`fastka.check.http`) -- only when someone reads it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastka.check.base import RECV_SIZE, Done, LoopLike, Result, Target, next_due, open_socket
from fastka.check.http import MAX_BODY, MAX_HEAD, find_head_end, parse_head, quick_parse_head

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "RECV_SIZE",
    "Check",
    "HttpUrl",
    "reason_text",
    "slow_head",
]

# Why an attempt failed (the argument in brackets).
OK: Final = 0
E_SOCKET: Final = 1  # setting up the socket failed [errno]
E_CONNECT: Final = 2  # [errno]
E_TIMEOUT_CONNECT: Final = 3
E_TIMEOUT_EXCHANGE: Final = 4
E_SEND: Final = 5  # [errno]
E_RECV: Final = 6  # [errno]
E_CLOSED: Final = 7  # closed before the response head was complete
E_HEAD_TOO_LONG: Final = 8
E_BAD_HTTP: Final = 9  # [h11's message]
E_STATUS: Final = 10  # [the status code]
E_BODY_TOO_LARGE: Final = 11
E_DIGEST: Final = 12  # [the MD5 of the body, 16 bytes]

_OK_RESULT: Final = Result(True)
QUICK_REPROBE: Final = 16

# Attempt phases.
IDLE: Final = 0
ARMED: Final = 1  # waiting for the attempt's start time
CONNECTING: Final = 2
READING: Final = 3  # connected: sending the request (HTTP) and reading the response


def reason_text(code: int, arg: int | str | bytes = 0) -> str:
    """The text of a failure, as the Python probes word it ("" for success)."""
    if code == OK:
        return ""
    if code in (E_SOCKET, E_CONNECT, E_SEND, E_RECV):
        assert isinstance(arg, int)
        what = {E_SOCKET: "socket", E_CONNECT: "connect", E_SEND: "send", E_RECV: "recv"}[code]
        return f"{what}: {os.strerror(arg)}"
    if code == E_TIMEOUT_CONNECT:
        return "timeout (connection)"
    if code == E_TIMEOUT_EXCHANGE:
        return "timeout (exchange)"
    if code == E_CLOSED:
        return "connection closed before the HTTP response"
    if code == E_HEAD_TOO_LONG:
        return "HTTP response head too long"
    if code == E_BAD_HTTP:
        assert isinstance(arg, str)
        return f"bad HTTP response: {arg}"
    if code == E_STATUS:
        assert isinstance(arg, int)
        return f"HTTP status code {arg}"
    if code == E_BODY_TOO_LARGE:
        return "HTTP body too large"
    if code == E_DIGEST:
        assert isinstance(arg, bytes)
        return f"MD5 digest error: got {arg.hex()}"
    raise ValueError(f"unknown failure code {code}")


def slow_head(head: bytes, host: str) -> tuple[int, int | None] | str:
    """(status, Content-Length) of a response head the quick grammar leaves to h11, or
    h11's complaint. Both implementations call this one (the compiled one rarely)."""
    import h11  # only for odd heads: a checker child that never sees one never loads it

    try:
        response = parse_head(head, host)
    except h11.RemoteProtocolError as exc:
        return str(exc)
    length = None
    for name, value in response.headers:
        if name == b"content-length":
            with contextlib.suppress(ValueError):
                length = int(value)
    return response.status_code, length


@dataclass(frozen=True, slots=True)
class HttpUrl:
    """One ``url`` block of HTTP_GET, ready to send: the exact request bytes
    (:func:`fastka.check.http.build_request`), the accepted status ranges, the body's
    MD5 (16 bytes) or None, and the Host header (h11 needs it to parse odd heads)."""

    request: bytes
    status_code: tuple[tuple[int, int], ...] = ((200, 299),)
    digest: bytes | None = None
    host: str = ""

    def __post_init__(self) -> None:
        if self.digest is not None and len(self.digest) != 16:
            raise ValueError("digest: an MD5 is 16 bytes")
        if not self.request:
            raise ValueError("empty request")

    def status_ok(self, code: int) -> bool:
        return any(lo <= code <= hi for lo, hi in self.status_code)


class Check:
    """TCP_CHECK (no ``urls``) or HTTP_GET attempts against ``target`` (module docstring)."""

    def __init__(self, loop: LoopLike, target: Target, timeout: float, urls: Sequence[HttpUrl] = ()) -> None:
        if not timeout == timeout:
            raise ValueError("timeout is NaN")
        self.loop = loop
        self.target = target
        self.timeout = float(timeout)
        self.urls: tuple[HttpUrl, ...] = tuple(urls)
        try:
            self._sockaddr = target.sockaddr()
        except OSError:  # bind_if names no interface (yet): connect says so
            self._sockaddr = (target.address, target.port, 0, 0)
        self._nsteps = max(1, len(self.urls))
        self.at_once = True  # ask whether the connection is up right after connect()
        self._quick = True  # ... and the last time it was
        self._attempts = 0
        # The run (arm) and its results.
        self.expect = -1
        self.delay = 0.0
        self.due = 0.0  # start time of the current (or last) attempt
        self.step = 0  # its URL
        self.ended = 0.0  # loop time the last attempt ended
        self.absorbed = 0  # verdicts equal to `expect` since arm()/start()
        self.last_due = 0.0  # start time of the last absorbed attempt
        self._last: tuple[int, Any] = (OK, 0)  # the last absorbed failure
        self._done: Done | None = None
        self._phase = IDLE
        self._timer: Any = None
        self._when = 0.0
        # The attempt.
        self._sock: Any = None
        self._fd = -1
        self._url: HttpUrl | None = None
        self._pending = b""
        self._head = b""
        self._status = 0
        self._length: int | None = None
        self._body_len = 0
        self._md5: Any = None

    # -- the API
    @property
    def active(self) -> bool:
        """An attempt is armed or running."""
        return self._phase != IDLE

    @property
    def when(self) -> float | None:
        """The start time of the next attempt while waiting for it, else None."""
        return self._when if self._phase == ARMED else None

    @property
    def last_reason(self) -> str:
        """The reason of the last absorbed failure ("" if none)."""
        return reason_text(*self._last)

    def start(self, step: int, done: Done, now: float | None = None) -> None:
        """One attempt now (``now``: its start time if the caller knows it); ``done(Result)``
        once -- synchronously if the socket cannot even be set up -- unless cancelled."""
        self.cancel()
        self._done = done
        self.expect = -1
        self.absorbed = 0
        self.step = step % self._nsteps
        self._attempt(self.loop.time() if now is None else now)

    def arm(self, when: float, step: int, done: Done, expect: int = -1, delay: float = 0.0) -> None:
        """The steady state (module docstring): attempts from ``when`` on, until a verdict
        differs from ``expect``; that one goes to ``done``."""
        if not (when == when and delay == delay):
            raise ValueError("NaN time")
        self.cancel()
        self._done = done
        self.expect = expect
        self.delay = delay
        self.absorbed = 0
        self.step = step % self._nsteps
        self._wait(when)

    def cancel(self) -> None:
        """Stop: no attempt runs, ``done`` is not called. Idempotent."""
        self._close()
        self._phase = IDLE
        self._done = None

    # -- scheduling
    def _wait(self, when: float) -> None:
        self._phase = ARMED
        self._when = when
        self._timer = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._attempt(self._when)

    def _finish(self, code: int, arg: Any = 0) -> None:
        self._close()
        self.ended = self.loop.time()
        ok = code == OK
        if self.expect >= 0 and ok == (self.expect == 1):
            self.absorbed += 1
            self.last_due = self.due
            if ok:
                self.step = (self.step + 1) % self._nsteps
            else:
                self._last = (code, arg)
            self._wait(next_due(self.ended, self.delay))
            return
        done = self._done
        self._done = None
        self._phase = IDLE
        if done is not None:
            done(_OK_RESULT if ok else Result(False, reason_text(code, arg)))

    # -- one attempt
    def _attempt(self, due: float) -> None:
        self.due = due
        self._url = self.urls[self.step] if self.urls else None
        try:
            sock = open_socket(self.target, socket.SOCK_STREAM)
        except OSError as exc:
            self._finish(E_SOCKET, exc.errno or errno.EINVAL)
            return
        self._sock = sock
        self._fd = sock.fileno()
        self._pending = self._url.request if self._url is not None else b""
        self._attempts += 1
        err = sock.connect_ex(self._sockaddr)
        if err == 0:
            self._connected()
            return
        if err != errno.EINPROGRESS:
            self._finish(E_CONNECT, err)
            return
        if self.at_once and (self._quick or self._attempts % QUICK_REPROBE == 1):
            up = self._ask_at_once()
            if up is None:
                return  # failed: reported
            self._quick = up
            if up:
                self._connected()
                return
        self._phase = CONNECTING
        self._timer = self.loop.call_at(due + self.timeout, self._on_timeout)
        self.loop.add_writer(self._fd, self._on_connect)

    def _ask_at_once(self) -> bool | None:
        """Is the connection up already? TCP_CHECK: connect() again; HTTP_GET: send the
        request. None when that failed (the attempt is over)."""
        sock = self._sock
        if self._url is None:
            err = sock.connect_ex(self._sockaddr)
            if err in (0, errno.EISCONN):
                return True
            if err == errno.EALREADY:
                return False
            self._quick = True
            self._finish(E_CONNECT, err)
            return None
        try:
            n = sock.send(self._pending)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._quick = True
            e = exc.errno or errno.EIO
            self._finish(E_SEND if e in (errno.EPIPE, errno.ECONNRESET) else E_CONNECT, e)
            return None
        self._pending = self._pending[n:]
        return True

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sock is not None:
            self.loop.remove_writer(self._fd)
            self.loop.remove_reader(self._fd)
            self._sock.close()
            self._sock = None
            self._fd = -1
        self._md5 = None

    def _on_timeout(self) -> None:
        self._timer = None
        self._finish(E_TIMEOUT_CONNECT if self._phase == CONNECTING else E_TIMEOUT_EXCHANGE)

    def _on_connect(self) -> None:
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self.loop.remove_writer(self._fd)
        if err:
            self._finish(E_CONNECT, err)
        else:
            self._connected()

    def _connected(self) -> None:
        url = self._url
        if url is None:
            self._finish(OK)
            return
        self._phase = READING
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(self.due + 2 * self.timeout, self._on_timeout)
        self._head = b""
        self._status = 0
        self._length = None
        self._body_len = 0
        self.loop.add_reader(self._fd, self._on_readable)
        if self._pending:
            self._send()

    def _send(self) -> None:
        try:
            n = self._sock.send(self._pending)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._finish(E_SEND, exc.errno or errno.EIO)
            return
        self._pending = self._pending[n:]
        if self._pending:
            self.loop.add_writer(self._fd, self._send)
        else:
            self.loop.remove_writer(self._fd)

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._finish(E_RECV, exc.errno or errno.EIO)
            return
        if not data:
            if not self._status:
                self._finish(E_CLOSED)
            else:
                self._complete()
        elif not self._status:
            self._on_head(data)
        else:
            self._on_body(data)

    def _on_head(self, data: bytes) -> None:
        url = self._url
        assert url is not None
        self._head += data
        end = find_head_end(self._head)
        if end < 0:
            if len(self._head) > MAX_HEAD:
                self._finish(E_HEAD_TOO_LONG)
            return
        head, rest = self._head[:end], self._head[end:]
        self._head = b""
        parsed = quick_parse_head(head) or slow_head(head, url.host)
        if isinstance(parsed, str):
            self._finish(E_BAD_HTTP, parsed)
            return
        self._status, self._length = parsed
        if not url.status_ok(self._status):
            self._finish(E_STATUS, self._status)
            return
        if url.digest is None:
            self._finish(OK)
            return
        import hashlib  # only with a digest: _hashlib maps OpenSSL's libcrypto

        self._md5 = hashlib.md5(usedforsecurity=False)
        if rest or self._length == 0:
            self._on_body(rest)

    def _on_body(self, data: bytes) -> None:
        length = self._length
        if length is not None:
            data = data[: max(0, length - self._body_len)]
        self._body_len += len(data)
        if self._body_len > MAX_BODY:
            self._finish(E_BODY_TOO_LARGE)
            return
        self._md5.update(data)
        if length is not None and self._body_len >= length:
            self._complete()

    def _complete(self) -> None:
        url = self._url
        assert url is not None
        if url.digest is not None:
            got = self._md5.digest()
            if got != url.digest:
                self._finish(E_DIGEST, got)
                return
        self._finish(OK)
