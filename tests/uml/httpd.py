"""A tiny HTTP server for real servers in the UML lab (stdlib only, one process, no threads).

    python -S httpd.py NAME PORT [STATUS]

Answers every request with ``STATUS`` (default 200) and the body ``NAME\\n``, then closes
the connection; prints ``ready`` on stdout once it listens (on every address, so a DR
real server also answers on the VIP bound to its ``lo``). It never resolves names, so
it does not stall in a guest without DNS.
"""

from __future__ import annotations

import selectors
import socket
import sys


def serve(name: str, port: int, status: int = 200) -> None:
    body = f"{name}\n".encode()
    reply = (
        f"HTTP/1.0 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    lsock = socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if lsock.family == socket.AF_INET6:
        lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    lsock.bind(("", port))
    lsock.listen(128)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    print("ready", flush=True)
    pending: dict[socket.socket, bytes] = {}
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is lsock:
                try:
                    conn, _addr = lsock.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                pending[conn] = b""
                sel.register(conn, selectors.EVENT_READ, None)
                continue
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            buf = pending.get(sock, b"") + data
            if data and b"\r\n\r\n" not in buf and len(buf) < 65536:
                pending[sock] = buf
                continue
            sel.unregister(sock)
            pending.pop(sock, None)
            if data:
                try:
                    sock.setblocking(True)
                    sock.settimeout(2)
                    sock.sendall(reply)
                except OSError:
                    pass
            sock.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 200)
