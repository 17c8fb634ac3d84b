"""SMTP_CHECK (behaviour.md §C1): banner ``220`` -> ``HELO name`` -> ``250`` -> ``QUIT`` ->
one reply line (not checked) -> success.

Replies may be multi-line (``250-...`` continued until ``250 ...``, RFC 5321 §4.2.1);
the reply code is taken from the last line. A reply line longer than 4 KiB, or a server
that talks without end, fails the check (RFC 5321 §4.5.3.1.5 allows 512 octets).
"""

from __future__ import annotations

from fastka.check.base import LoopLike, StreamProbe, Target

MAX_LINE = 4096


class SmtpProbe(StreamProbe):
    __slots__ = ("buf", "helo_name", "phase")

    def __init__(self, loop: LoopLike, target: Target, timeout: float, helo_name: str) -> None:
        super().__init__(loop, target, timeout)
        self.helo_name = helo_name
        self.buf = b""
        self.phase = "banner"

    def begin(self, step: int) -> None:
        self.buf = b""
        self.phase = "banner"

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self._done is not None:
            nl = self.buf.find(b"\n")
            if nl < 0:
                if len(self.buf) > MAX_LINE:
                    self.finish(False, "SMTP line too long")
                return
            line, self.buf = self.buf[:nl].rstrip(b"\r"), self.buf[nl + 1 :]
            if len(line) >= 4 and line[3:4] == b"-":
                continue  # more lines of the same reply follow
            self._reply(line[:3])

    def _reply(self, code: bytes) -> None:
        if self.phase == "banner":
            if code != b"220":
                self.finish(False, f"SMTP banner {code.decode(errors='replace')!r}")
                return
            self.phase = "helo"
            self.send(b"HELO " + self.helo_name.encode() + b"\r\n")
        elif self.phase == "helo":
            if code != b"250":
                self.finish(False, f"SMTP HELO answered {code.decode(errors='replace')!r}")
                return
            self.phase = "quit"
            self.send(b"QUIT\r\n")
        else:
            self.finish(True)

    def eof_received(self) -> None:
        if self.phase == "quit":
            # Some servers close right after QUIT without a reply: the check passed.
            self.finish(True)
        else:
            self.finish(False, f"SMTP connection closed during {self.phase}")
