"""Loopback test servers, good and hostile, each on its own thread (127.0.0.1 / ::1)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

Handler = Callable[[socket.socket], None]


class TcpServer:
    """Accepts connections and hands each to ``handler`` on a thread of its own."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(5)
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    conn.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def http_reply(
    status: int = 200, body: bytes = b"hello\n", extra: bytes = b"", requests: list[bytes] | None = None
) -> Handler:
    def handler(conn: socket.socket) -> None:
        req = read_request(conn)
        if requests is not None:
            requests.append(req)
        head = b"HTTP/1.0 " + str(status).encode() + b" X\r\nContent-Type: text/plain\r\n" + extra + b"\r\n"
        conn.sendall(head + body)

    return handler


def silent(conn: socket.socket) -> None:
    """Accept and never answer."""
    time.sleep(10)


def reset(conn: socket.socket) -> None:
    """Answer with a TCP RST."""
    read_request(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")


def garbage(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\nxx")


def huge_body(conn: socket.socket) -> None:
    """A 1 GB body (sent until the client goes away)."""
    read_request(conn)
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
    block = b"x" * 65536
    with contextlib.suppress(OSError):
        for _ in range(16384):
            conn.sendall(block)


def slow_drip(conn: socket.socket) -> None:
    read_request(conn)
    with contextlib.suppress(OSError):
        for b in b"HTTP/1.0 200 OK\r\n\r\nbody":
            conn.sendall(bytes([b]))
            time.sleep(0.2)


def smtp_good(conn: socket.socket) -> None:
    conn.settimeout(5)
    f = conn.makefile("rwb")
    f.write(b"220-mx.example ESMTP\r\n220 ready\r\n")
    f.flush()
    line = f.readline()
    assert line.startswith(b"HELO ")
    f.write(b"250 hello " + line[5:].strip() + b"\r\n")
    f.flush()
    if f.readline().strip() == b"QUIT":
        f.write(b"221 bye\r\n")
        f.flush()


def smtp_bad_banner(conn: socket.socket) -> None:
    conn.sendall(b"554 go away\r\n")
    time.sleep(0.5)


class UdpServer:
    """Answers each datagram with ``reply(data)`` (None = stay silent)."""

    def __init__(self, reply: Callable[[bytes], bytes | None], host: str = "127.0.0.1") -> None:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port: int = self.sock.getsockname()[1]
        self.reply = reply
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except OSError:
                return
            self.received.append(data)
            out = self.reply(data)
            if out is not None:
                with contextlib.suppress(OSError):
                    self.sock.sendto(out, addr)

    def close(self) -> None:
        self.sock.close()


def closed_port(family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> int:
    """A port with nothing listening (bound then closed)."""
    s = socket.socket(family, kind)
    s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A listener whose accept queue is full, so new SYNs are dropped: connect hangs."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    time.sleep(0.05)
    try:
        yield port
    finally:
        for c in fillers:
            c.close()
        lsock.close()
