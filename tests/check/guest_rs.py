"""A tiny HTTP server for the user-mode-linux data-path tests: answers ``NAME\\n``.

Run inside a real server's namespace: ``python guest_rs.py NAME [PORT]``.
"""

from __future__ import annotations

import socket
import sys
import threading


def serve(conn: socket.socket, body: bytes) -> None:
    try:
        conn.settimeout(3)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except OSError:
        pass
    finally:
        conn.close()


def main() -> None:
    name = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(256)
    body = name.encode() + b"\n"
    print("ready", flush=True)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn, body), daemon=True).start()


if __name__ == "__main__":
    main()
