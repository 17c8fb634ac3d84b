"""Which processes run: the kernel's process events connector, for ``vrrp_track_process``.

:class:`ProcessWatcher` counts, for every ``vrrp_track_process``, the running processes
that match it (:func:`matches`), and calls back when a count changes:

* at start it scans ``/proc`` once (``comm``, and ``cmdline`` only for trackers that match
  parameters or the full command; zombies do not count);
* then it listens to the proc connector (``NETLINK_CONNECTOR``, ``CN_IDX_PROC``) on the
  event loop: a fork copies the parent's matches to the child, an exec or a name change
  (``PR_SET_NAME``) makes it look at the process again, an exit removes it. Threads are
  ignored (only thread-group leaders are processes). A receive overrun (``ENOBUFS``)
  rescans ``/proc``.

The connector exists only in the initial network namespace: in any other one the kernel
refuses the subscription, and the watcher rescans ``/proc`` every
:data:`POLL_INTERVAL` seconds instead (logged once). Keepalived has no such fallback.

Matching, as Keepalived documents it: the process name (``/proc/PID/comm``, at most 15
characters) equals ``process``; with parameters or ``full_command`` the command line
(``/proc/PID/cmdline``) is compared: ``argv[0]`` equals ``process`` (or, without
``full_command``, the name does), and the parameters per ``param_match`` -- ``exact``
all of them, ``partial`` the first n, ``initial`` all with the last one a prefix.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fastka.config.model import TrackProcess

__all__ = [
    "POLL_INTERVAL",
    "ProcEvent",
    "ProcessWatcher",
    "decode_events",
    "listen_message",
    "matches",
]

log = logging.getLogger("fastka.vrrp")

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
NLMSG_ERROR = 2
NLMSG_DONE = 3
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_COMM = 0x00000200
PROC_EVENT_EXIT = 0x80000000

# Without the connector (another network namespace), /proc is rescanned this often.
POLL_INTERVAL = 1.0
TASK_COMM_LEN = 16

_NLMSGHDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_PROC_EVENT = struct.Struct("=IIQ")
_FOUR = struct.Struct("=iiii")
_TWO = struct.Struct("=ii")

ProcEvent = tuple[int, int, int]  # (what, pid, other): FORK other = parent pid; else 0


def listen_message(pid: int, op: int = PROC_CN_MCAST_LISTEN) -> bytes:
    """The netlink message that subscribes (or unsubscribes) to process events."""
    body = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, 4, 0) + struct.pack("=I", op)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), NLMSG_DONE, 0, 0, pid) + body


def decode_events(data: bytes) -> Iterator[ProcEvent]:
    """The process events in one datagram of the connector socket, only those of
    processes (thread-group leaders): FORK (child, parent), EXEC, COMM, EXIT. Malformed
    or foreign messages are skipped."""
    off = 0
    n = len(data)
    while off + _NLMSGHDR.size <= n:
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > n:
            return
        body = off + _NLMSGHDR.size
        end = off + length
        off += (length + 3) & ~3
        if mtype != NLMSG_DONE or body + _CN_MSG.size + _PROC_EVENT.size > end:
            continue
        idx, val, _s, _a, clen, _f = _CN_MSG.unpack_from(data, body)
        if idx != CN_IDX_PROC or val != CN_VAL_PROC:
            continue
        ev = body + _CN_MSG.size
        if clen < _PROC_EVENT.size:
            continue
        what, _cpu, _ts = _PROC_EVENT.unpack_from(data, ev)
        d = ev + _PROC_EVENT.size
        if what == PROC_EVENT_FORK and d + _FOUR.size <= end:
            _ppid, ptgid, cpid, ctgid = _FOUR.unpack_from(data, d)
            if cpid == ctgid:
                yield (PROC_EVENT_FORK, ctgid, ptgid)
        elif what in (PROC_EVENT_EXEC, PROC_EVENT_COMM, PROC_EVENT_EXIT) and d + _TWO.size <= end:
            pid, tgid = _TWO.unpack_from(data, d)
            if pid == tgid:
                yield (what, tgid, 0)


def matches(spec: TrackProcess, comm: str, argv: Sequence[str] | None) -> bool:
    """Whether a process with name ``comm`` and command line ``argv`` (None: not read)
    is one ``spec`` counts."""
    name_ok = comm == spec.process[: TASK_COMM_LEN - 1]
    if spec.params is None and not spec.full_command:
        return name_ok
    if not argv:
        return False
    if argv[0] != spec.process and (spec.full_command or not name_ok):
        return False
    params = spec.params
    if params is None:
        return True
    args = list(argv[1:])
    k = len(params)
    if spec.param_match == "partial":
        return args[:k] == list(params)
    if spec.param_match == "initial" and k:
        return len(args) == k and args[: k - 1] == list(params[:-1]) and args[-1].startswith(params[-1])
    return args == list(params)


def _read(path: str, limit: int = 65536) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


class _LoopLike(Protocol):
    def time(self) -> float: ...
    def call_periodic(
        self, interval: float, callback: Callable[..., object], *args: Any, first: float | None = ...
    ) -> Any: ...
    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_reader(self, fd: int) -> bool: ...


class ProcessWatcher:
    """Counts the running processes of each ``vrrp_track_process`` (by name).

    ``on_change(name, count)`` is called when a count changes after :meth:`start`.
    ``proc`` is the procfs root (tests)."""

    def __init__(
        self,
        loop: _LoopLike,
        specs: Mapping[str, TrackProcess],
        on_change: Callable[[str, int], None],
        *,
        proc: str = "/proc",
        connector: bool = True,
    ) -> None:
        self.loop = loop
        self.specs = dict(specs)
        self.on_change = on_change
        self.proc = proc
        self.want_connector = connector
        self.counts: dict[str, int] = dict.fromkeys(self.specs, 0)
        self.pids: dict[int, frozenset[str]] = {}
        self.sock: socket.socket | None = None
        self.poll_timer: Any = None
        self.scans = 0
        self.events = 0

    @property
    def mode(self) -> str:
        return "connector" if self.sock is not None else ("poll" if self.poll_timer is not None else "off")

    def _needs_cmdline(self) -> bool:
        return any(s.params is not None or s.full_command for s in self.specs.values())

    def _classify(self, pid: int, need_cmdline: bool) -> frozenset[str]:
        raw = _read(f"{self.proc}/{pid}/comm", 64)
        if raw is None:
            return frozenset()
        comm = raw.rstrip(b"\n").decode(errors="replace")
        argv: list[str] | None = None
        if need_cmdline:
            data = _read(f"{self.proc}/{pid}/cmdline")
            if data:
                argv = [a.decode(errors="replace") for a in data.rstrip(b"\0").split(b"\0")]
        found = frozenset(n for n, s in self.specs.items() if matches(s, comm, argv))
        if found and self._zombie(pid):
            return frozenset()
        return found

    def _zombie(self, pid: int) -> bool:
        raw = _read(f"{self.proc}/{pid}/stat", 512)
        if raw is None:
            return True  # gone
        close = raw.rfind(b")")
        return close < 0 or raw[close + 2 : close + 3] in (b"Z", b"X")

    def _pids(self) -> Iterable[int]:
        try:
            names = os.listdir(self.proc)
        except OSError:
            return ()
        return (int(n) for n in names if n.isdigit())

    def scan(self) -> None:
        """Look at every process again (start, overrun, polling)."""
        self.scans += 1
        need = self._needs_cmdline()
        pids: dict[int, frozenset[str]] = {}
        for pid in self._pids():
            found = self._classify(pid, need)
            if found:
                pids[pid] = found
        self.pids = pids
        self._recount()

    def _recount(self) -> None:
        counts = dict.fromkeys(self.specs, 0)
        for names in self.pids.values():
            for n in names:
                counts[n] += 1
        old, self.counts = self.counts, counts
        for name, c in counts.items():
            if old.get(name) != c:
                self.on_change(name, c)

    def _set(self, pid: int, found: frozenset[str]) -> None:
        old = self.pids.get(pid, frozenset())
        if found == old:
            return
        if found:
            self.pids[pid] = found
        else:
            self.pids.pop(pid, None)
        for name in old - found:
            self.counts[name] -= 1
            self.on_change(name, self.counts[name])
        for name in found - old:
            self.counts[name] += 1
            self.on_change(name, self.counts[name])

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        self.scan()
        if self.want_connector and self._open_connector():
            return
        log.info(
            "track_process: the kernel's process events are not available here (another network "
            "namespace?): looking at /proc every %g s instead",
            POLL_INTERVAL,
        )
        self.poll_timer = self.loop.call_periodic(POLL_INTERVAL, self.scan)

    def _open_connector(self) -> bool:
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_CONNECTOR)
        except OSError:
            return False
        try:
            s.bind((0, CN_IDX_PROC))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.send(listen_message(s.getsockname()[0]))
            s.setblocking(False)
        except OSError as exc:
            log.debug("proc connector: %s", exc)
            s.close()
            return False
        self.sock = s
        self.loop.add_reader(s.fileno(), self._readable)
        # whatever started or ended between the scan and the subscription
        self.scan()
        return True

    def _readable(self) -> None:
        assert self.sock is not None
        need = self._needs_cmdline()
        for _ in range(64):
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # events lost: look again
                    self.scan()
                    continue
                log.warning("proc connector: %s; looking at /proc every %g s instead", exc, POLL_INTERVAL)
                self._close_connector()
                self.poll_timer = self.loop.call_periodic(POLL_INTERVAL, self.scan)
                return
            for what, pid, parent in decode_events(data):
                self.events += 1
                if what == PROC_EVENT_EXIT:
                    self._set(pid, frozenset())
                elif what == PROC_EVENT_FORK:
                    inherited = self.pids.get(parent)
                    if inherited:
                        self._set(pid, inherited)
                else:  # exec, or a new name
                    self._set(pid, self._classify(pid, need))

    def _close_connector(self) -> None:
        if self.sock is None:
            return
        with contextlib.suppress(OSError):
            self.loop.remove_reader(self.sock.fileno())
        with contextlib.suppress(OSError):
            self.sock.send(listen_message(self.sock.getsockname()[0], PROC_CN_MCAST_IGNORE))
        self.sock.close()
        self.sock = None

    def set_specs(self, specs: Mapping[str, TrackProcess]) -> None:
        """A reload: the trackers may have changed; count again."""
        if dict(specs) == self.specs:
            return
        self.specs = dict(specs)
        self.counts = {n: self.counts.get(n, 0) for n in self.specs}
        self.scan()

    def close(self) -> None:
        self._close_connector()
        if self.poll_timer is not None:
            self.poll_timer.cancel()
            self.poll_timer = None
