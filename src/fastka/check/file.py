"""FILE_CHECK (behaviour.md §C1): the real server follows a tracked file's value.

The file holds an integer (missing or unreadable = 0). With ``weight 0`` any non-zero
value takes the real server down. Otherwise ``value x weight`` (negated with ``reverse``)
is added to the real server's weight, and a result at or below -2^31 takes it down.
The file is watched with inotify on its directory (so that replacing it by rename is
seen); the inotify fd sits in the event loop.
"""

from __future__ import annotations

import ctypes
import os
import struct

from fastka.check.base import LoopLike
from fastka.check.fsm import CheckerBase, RealServer
from fastka.check.spec import CheckerSpec, FileParams
from fastka.log import NOTICE, get_logger

log = get_logger("check")

IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")
WEIGHT_DOWN = -(2**31)

# libc is already in the process: find_library() would run ldconfig at import time.
_libc = ctypes.CDLL(None, use_errno=True)


def read_value(path: str) -> int:
    try:
        with open(path, "rb") as f:
            text = f.read(64).split(None, 1)
    except OSError:
        return 0
    try:
        return int(text[0]) if text else 0
    except ValueError:
        return 0


class FileWatch:
    """inotify on a directory, calling back when ``name`` inside it changes."""

    MASK = IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE

    def __init__(self, loop: LoopLike, path: str, callback: object) -> None:
        self.loop = loop
        self.dir = os.path.dirname(os.path.abspath(path)) or "/"
        self.name = os.path.basename(path).encode()
        self.callback = callback
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd = fd
        if _libc.inotify_add_watch(fd, self.dir.encode(), self.MASK) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {self.dir}: {os.strerror(err)}")
        loop.add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        hit = False
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            off = 0
            while off + _EVENT.size <= len(buf):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(buf, off)
                name = buf[off + _EVENT.size : off + _EVENT.size + length].rstrip(b"\0")
                off += _EVENT.size + length
                if name == self.name:
                    hit = True
        if hit:
            self.callback()  # type: ignore[operator]

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


class FileChecker(CheckerBase):
    def __init__(self, spec: CheckerSpec, rs: RealServer, loop: LoopLike) -> None:
        assert isinstance(spec.params, FileParams)
        self.spec = spec
        self.params = spec.params
        self.rs = rs
        self.loop = loop
        self.watch: FileWatch | None = None
        self.is_up = True
        self.weight_override = None
        self.weight_delta = 0
        self._evaluate(read_value(self.params.path))

    def _evaluate(self, value: int) -> None:
        p = self.params
        if p.weight == 0:
            self.is_up = value == 0
            self.weight_delta = 0
            return
        delta = value * p.weight * (-1 if p.reverse else 1)
        self.is_up = delta > WEIGHT_DOWN
        self.weight_delta = delta if self.is_up else 0

    def start(self, delay: float | None = None) -> None:
        if self.watch is None:
            try:
                self.watch = FileWatch(self.loop, self.params.path, self._changed)
            except OSError as exc:
                log.error("FILE_CHECK %s: cannot watch %s: %s", self.params.name, self.params.path, exc)
        self._changed()

    def _changed(self) -> None:
        was_up, was_delta = self.is_up, self.weight_delta
        self._evaluate(read_value(self.params.path))
        if self.is_up != was_up:
            log.log(
                NOTICE,
                "FILE_CHECK %s on %s: %s",
                self.params.name or self.params.path,
                self.rs.describe(),
                "up" if self.is_up else "down",
            )
            self.rs.checker_changed()
        if self.weight_delta != was_delta:
            self.rs.weights_changed()

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    def take_state(self, old: CheckerBase) -> None:
        # The file is the state: re-read it rather than trust the old value.
        self._evaluate(read_value(self.params.path))
