"""Target for ``bench/compare/checks.py``: port 80 on every local address; counts the
connections it served (each one is a check) into a file, five times a second.

``tcp``: accept and close. ``http``: read the request head, answer 200, close.
"""

from __future__ import annotations

import select
import socket
import sys
import time
from pathlib import Path

RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"


class Responder:
    """Serves the connections of listening sockets registered with ``ep`` (also the
    loopback target of ``bench/test_checks.py``): ``tcp`` closes each at once, ``http``
    reads the request head, answers 200 and closes. ``served`` counts them."""

    def __init__(self, kind: str, ep: select.epoll) -> None:
        self.kind = kind
        self.ep = ep
        self.conns: dict[int, tuple[socket.socket, bytes]] = {}
        self.served = 0

    def accept(self, lsock: socket.socket) -> None:
        while True:
            try:
                c, _ = lsock.accept()
            except BlockingIOError:
                return
            if self.kind == "tcp":
                c.close()
                self.served += 1
                continue
            c.setblocking(False)
            self.conns[c.fileno()] = (c, b"")
            self.ep.register(c.fileno(), select.EPOLLIN)

    def readable(self, fd: int) -> None:
        c, buf = self.conns[fd]
        try:
            data = c.recv(4096)
        except OSError:
            data = b""
        buf += data
        if data and b"\r\n\r\n" not in buf:
            self.conns[fd] = (c, buf)
            return
        self.ep.unregister(fd)
        del self.conns[fd]
        if data:
            try:
                c.send(RESPONSE)
                self.served += 1
            except OSError:
                pass
        c.close()


def main() -> None:
    kind, count_file = sys.argv[1], Path(sys.argv[2])
    tmp = count_file.with_suffix(".tmp")
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", int(sys.argv[3]) if len(sys.argv) > 3 else 80))
    lsock.listen(4096)
    lsock.setblocking(False)
    ep = select.epoll()
    ep.register(lsock.fileno(), select.EPOLLIN)
    responder = Responder(kind, ep)
    next_write = 0.0
    print("ready", flush=True)
    while True:
        for fd, _ in ep.poll(0.2):
            if fd == lsock.fileno():
                responder.accept(lsock)
            else:
                responder.readable(fd)
        now = time.monotonic()
        if now >= next_write:
            tmp.write_text(str(responder.served))
            tmp.replace(count_file)  # atomic: a reader never sees a half-written number
            next_write = now + 0.2


if __name__ == "__main__":
    main()
