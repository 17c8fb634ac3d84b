"""A tiny recording SMTP server for tests (loopback or a test namespace only).

``SmtpSink()`` listens on 127.0.0.1 (port 0 = any) in the namespace of the thread that
creates it -- build it through ``Netns.call`` to serve inside a test namespace -- and
records every session: the commands and the DATA, byte for byte. ``mode="silent"``
accepts connections and never answers (for timeouts); ``reject_rcpt`` answers 550 to
RCPT TO.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Session:
    lines: list[bytes] = field(default_factory=list)  # client lines, CRLF included
    data: bytes = b""  # the DATA as received (dot-stuffing undone, final dot removed)
    done: bool = False

    @property
    def commands(self) -> list[str]:
        return [ln.decode().rstrip("\r\n") for ln in self.lines]

    @property
    def headers(self) -> dict[str, str]:
        head = self.data.split(b"\r\n\r\n", 1)[0].decode()
        return dict(line.split(": ", 1) for line in head.split("\r\n") if ": " in line)

    @property
    def subject(self) -> str:
        return self.headers.get("Subject", "")

    @property
    def body(self) -> str:
        return self.data.split(b"\r\n\r\n", 1)[1].decode().strip("\r\n")


class SmtpSink:
    def __init__(self, port: int = 0, *, mode: str = "normal", reject_rcpt: bool = False) -> None:
        self.mode = mode
        self.reject_rcpt = reject_rcpt
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.sessions: list[Session] = []
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="smtp-sink", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.close()
        self._thread.join(2)

    def __enter__(self) -> SmtpSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mails(self) -> list[Session]:
        with self._lock:
            return [s for s in self.sessions if s.done]

    def wait(self, count: int, timeout: float = 10.0) -> list[Session]:
        deadline = time.monotonic() + timeout
        while len(self.mails()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.mails())} of {count} mails after {timeout} s")
            time.sleep(0.02)
        return self.mails()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
                session = Session()
                self.sessions.append(session)
            threading.Thread(target=self._serve, args=(conn, session), daemon=True).start()

    def _serve(self, conn: socket.socket, session: Session) -> None:
        f = conn.makefile("rb")
        try:
            if self.mode == "silent":
                f.read()
                return
            conn.sendall(b"220 sink ESMTP\r\n")
            in_data = False
            data = bytearray()
            for line in f:
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        session.data = bytes(data)
                        conn.sendall(b"250 queued\r\n")
                    else:
                        data += line[1:] if line.startswith(b".") else line
                    continue
                session.lines.append(line)
                verb = line[:4].upper()
                if verb == b"DATA":
                    in_data = True
                    conn.sendall(b"354 go ahead\r\n")
                elif verb == b"QUIT":
                    session.done = bool(session.data)
                    conn.sendall(b"221 bye\r\n")
                    return
                elif verb == b"RCPT" and self.reject_rcpt:
                    conn.sendall(b"550 no such user\r\n")
                else:
                    conn.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()
