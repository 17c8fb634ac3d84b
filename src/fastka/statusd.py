"""The parent's status endpoint: HTTP/1.1 on a unix socket or a loopback TCP port.

Served on the parent's own event loop with h11 (sans-I/O) rather than
``http.server.ThreadingHTTPServer`` as LIBRARIES.md suggested: the parent forks its
children, and a fork while another thread holds a lock (the logging module's, a buffer's)
can leave the child deadlocked, so the parent has no threads. Requests are rare and small;
one connection answers one request and is closed.

Routes (``docs/status.md``): ``/status``, ``/vrrp/instances``, ``/vrrp/instance/<name>/state``,
``/vrrp/instance/<name>``, ``/checker/virtual_servers``, ``/metrics``, ``/health``. The
handler is asynchronous: the parent first asks its children for a fresh snapshot.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

import h11

if TYPE_CHECKING:
    from fastka.loop import Loop, Timer

log = logging.getLogger("fastka.status")

Respond = Callable[[int, str, bytes], None]
Handler = Callable[[str, str, Respond], None]  # (method, path, respond)

IDLE_TIMEOUT = 10.0
MAX_CONNECTIONS = 64
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    503: b"Unavailable",
}


def parse_http_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); the host defaults to 127.0.0.1."""
    text = text.strip()
    if text.isdigit():
        return "127.0.0.1", int(text)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"status HTTP address {text!r} is not HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    ipaddress.ip_address(host)  # ValueError for a name: bind to an address, not a name
    return host, int(port)


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


class _Conn:
    def __init__(self, server: StatusServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.h11 = h11.Connection(our_role=h11.SERVER)
        self.out = bytearray()
        self.writing = False
        self.closed = False
        self.answered = False
        self.method = "GET"
        self.timer: Timer = server.loop.call_later(IDLE_TIMEOUT, self.close)
        sock.setblocking(False)
        server.loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if self.answered:
            if not data:
                self.close()
            return
        self.h11.receive_data(data)
        target = None
        try:
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    if not data:
                        self.close()
                    return
                if isinstance(event, h11.Request):
                    self.method = event.method.decode("ascii", "replace").upper()
                    target = event.target.decode("ascii", "replace")
                    self._target = target
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    self.close()
                    return
        except h11.RemoteProtocolError:
            self.respond(400, "text/plain", b"bad request\n")
            return
        self.answered = True
        path = self._target.split("?", 1)[0]
        if self.method not in ("GET", "HEAD"):
            self.respond(405, "text/plain", b"only GET and HEAD\n")
            return
        try:
            self.server.handler(self.method, path, self.respond)
        except Exception:
            log.exception("status request %s failed", path)
            self.respond(503, "text/plain", b"internal error\n")

    def respond(self, status: int, content_type: str, body: bytes) -> None:
        if self.closed or self.out:
            return
        self.answered = True
        headers = [
            ("content-type", content_type),
            ("content-length", str(len(body))),
            ("connection", "close"),
            ("cache-control", "no-store"),
        ]
        try:
            data = self.h11.send(
                h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))
            )
            if self.method != "HEAD":
                data = (data or b"") + (self.h11.send(h11.Data(data=body)) or b"")
            data = (data or b"") + (self.h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            self.close()
            return
        self.out += data
        self._flush()

    def _flush(self) -> None:
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                return
            del self.out[:sent]
        if self.out and not self.writing:
            self.server.loop.add_writer(self.fd, self._flush)
            self.writing = True
        elif not self.out:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        loop = self.server.loop
        loop.remove_reader(self.fd)
        if self.writing:
            loop.remove_writer(self.fd)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.server.conns.discard(self)


class StatusServer:
    """Listening sockets and connections of the status endpoint, on ``loop``."""

    def __init__(self, loop: Loop, handler: Handler) -> None:
        self.loop = loop
        self.handler = handler
        self.listeners: list[tuple[socket.socket, str]] = []
        self.conns: set[_Conn] = set()

    def listen_unix(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # left by a previous run; an active one would hold the pid file
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(16)
        except OSError:
            sock.close()
            raise
        self._add(sock, path)
        log.info("Status endpoint listening on unix:%s", path)

    def listen_tcp(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(16)
        except OSError:
            sock.close()
            raise
        self._add(sock, "")
        bound = sock.getsockname()
        if not is_loopback(host):
            log.warning(
                "Status endpoint on non-loopback %s:%d serves the status without authentication", host, port
            )
        log.info(
            "Status endpoint listening on http://%s:%d",
            host if family == socket.AF_INET else f"[{host}]",
            bound[1],
        )

    @property
    def tcp_port(self) -> int | None:
        for sock, _ in self.listeners:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                return int(sock.getsockname()[1])
        return None

    def _add(self, sock: socket.socket, path: str) -> None:
        sock.setblocking(False)
        self.listeners.append((sock, path))
        self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            log.warning("status endpoint: accept failed: %s", exc)
            return
        if len(self.conns) >= MAX_CONNECTIONS:
            sock.close()
            return
        self.conns.add(_Conn(self, sock))

    def close(self) -> None:
        for conn in list(self.conns):
            conn.close()
        for sock, path in self.listeners:
            self.loop.remove_reader(sock.fileno())
            sock.close()
            if path:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        self.listeners.clear()

    def forget(self) -> None:
        """In a forked child: drop the sockets without closing their descriptor numbers."""
        for conn in self.conns:
            conn.closed = True
            conn.sock.detach()
        for sock, _ in self.listeners:
            sock.detach()
        self.conns.clear()
        self.listeners.clear()
