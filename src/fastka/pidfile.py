"""Pid files: written atomically, locked while their process runs.

Keepalived refuses to start when one of its pid files names a live process ("daemon is
already running", exit 0, cli.md §5). fastka keeps that check for pid files written by
Keepalived or by an old fastka, and adds a lock (``flock``) held for the life of the
process, so that a stale file after a crash never blocks a start and two fastkas that
start at the same moment cannot both win.

The file is replaced atomically (temporary file, ``flock`` on it, ``rename``) so a reader
never sees it empty, and the lock on the previous inode is held until the new one is in
place; a racer that opened the old inode then finds it locked, or, having locked it after
we let go, sees that the path no longer names it and looks again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os

log = logging.getLogger("fastka.daemon")

# Command names a running Keepalived or fastka shows in /proc/PID/comm or cmdline.
_OUR_NAMES = ("keepalived", "fastka")


class AlreadyRunning(Exception):
    """Another live process holds this pid file."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        super().__init__(f"{path} is held by pid {pid}")


def read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read(64)
    except OSError:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _is_locked(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)
    return False


def _looks_like_us(pid: int) -> bool:
    """Whether ``pid`` is a live Keepalived/fastka (not some process that reused the pid)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read(4096).replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True  # alive but unreadable: be careful, as Keepalived is
    return any(name in cmdline for name in _OUR_NAMES)


def holder(path: str) -> int | None:
    """The pid of a live process holding ``path``, or None (a stale file is not a holder)."""
    pid = read_pid(path)
    if _is_locked(path):
        return pid if pid is not None else -1
    if pid is not None and _looks_like_us(pid):
        return pid
    return None


class PidFile:
    """One pid file, held (locked) from :meth:`acquire` until :meth:`release`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.pid: int | None = None

    def acquire(self, pid: int | None = None) -> None:
        """Write ``pid`` (default: ours) atomically and lock it; AlreadyRunning if taken."""
        pid = os.getpid() if pid is None else pid
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        for _ in range(10):
            old = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                try:
                    fcntl.flock(old, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise AlreadyRunning(self.path, read_pid(self.path)) from None
                    raise
                try:
                    same = os.stat(self.path).st_ino == os.fstat(old).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    continue  # replaced while we locked it: look again
                previous = read_pid(self.path)
                if previous is not None and _looks_like_us(previous):
                    raise AlreadyRunning(self.path, previous)
                if previous is not None and previous != pid:
                    log.info("Remove a zombie pid file %s", self.path)
                self.fd = self._replace(pid, directory)
                self.pid = pid
                return
            finally:
                os.close(old)
        raise AlreadyRunning(self.path, read_pid(self.path))

    def _replace(self, pid: int, directory: str) -> int:
        tmp = os.path.join(directory, f".{os.path.basename(self.path)}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask (Keepalived's default is 0177): readable
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{pid}\n".encode())
            os.rename(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return fd

    def release(self, *, remove: bool = True) -> None:
        """Remove the file (if it is still ours) and drop the lock."""
        if self.fd is None:
            return
        if remove:
            try:
                mine = os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
            except OSError:
                mine = False
            if mine:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
        os.close(self.fd)
        self.fd = None

    def forget(self) -> None:
        """In a forked child: drop the parent's descriptor number without touching it."""
        self.fd = None
