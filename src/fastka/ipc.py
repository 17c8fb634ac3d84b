"""The parent <-> child channel: framed messages over a unix stream socket pair.

Each child has one ``socketpair(AF_UNIX, SOCK_STREAM)`` with the parent, created before
fork. A message is a dict with an ``"op"`` key, pickled and prefixed with its length (4
bytes, big endian). Both ends are fastka processes forked from the same parent, so pickle
is safe here and carries the configuration model to a child on reload without parsing
it twice. Stream framing rather than SOCK_SEQPACKET because a status snapshot of a large
configuration can exceed a datagram's size limit.

Both ends run on their process's event loop: reads on readability, writes buffered and
flushed on writability, never blocking.
"""

from __future__ import annotations

import logging
import pickle
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastka.loop import Loop

log = logging.getLogger("fastka.daemon")

Message = dict[str, Any]

_HEADER = struct.Struct("!I")
MAX_MESSAGE = 256 * 1024 * 1024  # a sane bound; a full status of 10 000 instances is ~10 MB
_READ_CHUNK = 256 * 1024


def encode(msg: Message) -> bytes:
    body = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


class Channel:
    """One end of a parent/child socket pair, driven by ``loop``."""

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        on_message: Callable[[Message], None],
        on_close: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self._on_message = on_message
        self._on_close = on_close
        self._inbuf = bytearray()
        self._outbuf = bytearray()
        self._writing = False
        self.closed = False
        sock.setblocking(False)
        loop.add_reader(self.fd, self._readable)

    @property
    def pending_output(self) -> int:
        return len(self._outbuf)

    def send(self, msg: Message) -> bool:
        """Queue one message; False when the channel is closed."""
        if self.closed:
            return False
        self._outbuf += encode(msg)
        if not self._writing:
            self._flush()
        return not self.closed

    def _flush(self) -> None:
        while self._outbuf:
            try:
                sent = self.sock.send(self._outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("channel fd %d: send failed: %s", self.fd, exc)
                self.close()
                return
            del self._outbuf[:sent]
        if self._outbuf and not self._writing:
            self.loop.add_writer(self.fd, self._flush)
            self._writing = True
        elif not self._outbuf and self._writing:
            self.loop.remove_writer(self.fd)
            self._writing = False

    def _readable(self) -> None:
        try:
            data = self.sock.recv(_READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("channel fd %d: recv failed: %s", self.fd, exc)
            data = b""
        if not data:
            self.close()
            return
        self._inbuf += data
        while len(self._inbuf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._inbuf)
            if size > MAX_MESSAGE:
                log.error("channel fd %d: message of %d bytes refused", self.fd, size)
                self.close()
                return
            end = _HEADER.size + size
            if len(self._inbuf) < end:
                break
            body = bytes(self._inbuf[_HEADER.size : end])
            del self._inbuf[:end]
            try:
                msg = pickle.loads(body)
            except Exception as exc:
                log.error("channel fd %d: undecodable message: %s", self.fd, exc)
                self.close()
                return
            if isinstance(msg, dict):
                self._on_message(msg)
            if self.closed:
                return

    def close(self) -> None:
        """Stop reading and writing and close the socket; ``on_close`` runs once."""
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.fd)
        if self._writing:
            self.loop.remove_writer(self.fd)
            self._writing = False
        self.sock.close()
        self._on_close()

    def forget(self) -> None:
        """In a forked child: give up the parent's socket object without closing the fd
        number (which the child closes wholesale and may reuse)."""
        self.closed = True
        self.sock.detach()
