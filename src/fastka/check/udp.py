"""UDP_CHECK, and the datagram attempt that DNS_CHECK and PING_CHECK share.

UDP_CHECK (behaviour.md §C1): send the payload on a connected UDP socket. Without
``require_reply`` the check passes unless an ICMP error (seen as ECONNREFUSED and
friends on the connected socket) arrives within ``connect_timeout``; with it, a reply of
allowed length matching the pattern must arrive in time.
"""

from __future__ import annotations

import _socket
import os
import socket
from typing import Any

from fastka.check.base import Done, LoopLike, Result, Target, open_socket
from fastka.check.spec import UdpParams

# Big enough for any UDP datagram, so a reply's length is its real length.
MAX_DATAGRAM = 65536


class DatagramProbe:
    """Send one datagram, wait for replies until a verdict or the timeout."""

    __slots__ = ("_done", "_timer", "loop", "sock", "target", "timeout")
    sock_type = socket.SOCK_DGRAM
    sock_proto = 0

    def __init__(self, loop: LoopLike, target: Target, timeout: float) -> None:
        self.loop = loop
        self.target = target
        self.timeout = timeout
        self.sock: _socket.socket | None = None
        self._done: Done | None = None
        self._timer: Any = None

    def start(self, step: int, done: Done, now: float | None = None) -> None:
        self._done = done
        try:
            sock = self.open()
            self.sock = sock
            sock.connect(self.target.sockaddr())
            sock.send(self.request())
        except OSError as exc:
            self.finish(False, f"send: {exc.strerror or exc}")
            return
        t0 = self.loop.time() if now is None else now
        self._timer = self.loop.call_at(t0 + self.timeout, self.on_timeout)
        self.loop.add_reader(sock.fileno(), self._on_readable)

    def open(self) -> _socket.socket:
        return open_socket(self.target, self.sock_type, self.sock_proto)

    def request(self) -> bytes:
        raise NotImplementedError

    def reply(self, data: bytes, length: int) -> bool | None:
        """Judge one datagram: True/False is the verdict, None = ignore it, keep waiting."""
        raise NotImplementedError

    def on_timeout(self) -> None:
        self._timer = None
        self.finish(False, "timeout")

    def cancel(self) -> None:
        self._done = None
        self._close()

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sock = self.sock
        if sock is not None:
            self.sock = None
            self.loop.remove_reader(sock.fileno())
            sock.close()

    def finish(self, ok: bool, reason: str = "") -> None:
        done = self._done
        self._done = None
        self._close()
        if done is not None:
            done(Result(ok, reason))

    def _on_readable(self) -> None:
        while self.sock is not None and self._done is not None:
            try:
                data = self.sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.finish(False, f"ICMP error: {os.strerror(exc.errno) if exc.errno else exc}")
                return
            verdict = self.reply(data, len(data))
            if verdict is not None:
                self.finish(verdict, "" if verdict else "unexpected reply")
                return


class UdpProbe(DatagramProbe):
    __slots__ = ("params",)

    def __init__(self, loop: LoopLike, target: Target, timeout: float, params: UdpParams) -> None:
        super().__init__(loop, target, timeout)
        self.params = params

    def request(self) -> bytes:
        if self.params.payload is not None:
            return self.params.payload
        return os.urandom(16)

    def on_timeout(self) -> None:
        self._timer = None
        if self.params.require_reply:
            self.finish(False, "no UDP reply")
        else:
            self.finish(True)

    def reply(self, data: bytes, length: int) -> bool | None:
        p = self.params
        if not p.require_reply:
            return True
        if not p.min_reply_length <= length <= p.max_reply_length:
            return False
        if len(data) < len(p.reply_pattern):
            return False
        return all(
            (b & mask) == (want & mask) for b, (want, mask) in zip(data, p.reply_pattern, strict=False)
        )


def parse_reply_pattern(text: str) -> tuple[tuple[int, int], ...]:
    """Keepalived's ``require_reply`` hex string, where ``x`` is a wildcard nibble."""
    text = text.strip().lower()
    if len(text) % 2:
        raise ValueError("odd number of hex digits")
    out = []
    for i in range(0, len(text), 2):
        hi, lo = text[i], text[i + 1]
        value = (0 if hi == "x" else int(hi, 16)) << 4 | (0 if lo == "x" else int(lo, 16))
        mask = (0 if hi == "x" else 0xF0) | (0 if lo == "x" else 0x0F)
        out.append((value, mask))
    return tuple(out)
