"""Tracking: ``track_interface``, ``track_script`` (``vrrp_script``), ``track_file`` and the
priority arithmetic Keepalived applies to them (behaviour.md §V4).

A tracked object (:class:`Tracked`) has a state -- an interface up or down, a script OK /
KO / not run yet, a file's number -- and users (:class:`TrackUse`): instances with the
weight and ``reverse`` flag they track it with. Each use contributes either a fault or a
number to its instance's total priority (:func:`contribution`):

==========  =======  ==============  ==================
weight      reverse  OK / up         failed / down
==========  =======  ==============  ==================
0           no       --              instance FAULT
0           yes      instance FAULT  --
+w          no       +w              0
-w          no       0               -w
+w          yes      -w              0
-w          yes      0               +w
==========  =======  ==============  ==================

A file contributes ``value x weight`` (x -1 with ``reverse``), capped at +253; -254 or
less means FAULT; with weight 0 any non-zero value means FAULT. A script that has not run
yet contributes nothing; a weight-0 script that has not run yet holds its instance in INIT
(Keepalived's ``num_script_init``). The effective priority is the total clamped to 1..254
(:meth:`fastka.vrrp.instance.Instance.set_total_priority`); an address owner (255) ignores
weights.

``vrrp_script`` runs through :class:`fastka.notify.ScriptRunner` (the script user, script
security, SIGTERM at ``timeout`` and SIGKILL 2 s later) every ``interval`` from start-up;
``rise`` consecutive successes make it OK, ``fall`` consecutive failures KO (exit status 0 =
success; any other status, a signal or a timeout = failure); a run still going when the
next is due is skipped. ``track_file`` is watched with inotify on its directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fastka.vrrp.instance import Instance

if TYPE_CHECKING:
    from fastka.config.model import Config, TrackFile, TrackInterface, TrackRef, VrrpScript
    from fastka.notify import ScriptRunner
    from fastka.status import TrackedObject

__all__ = [
    "FileTracker",
    "InterfaceTracker",
    "ScriptTracker",
    "TrackUse",
    "Tracked",
    "Trackers",
    "contribution",
    "file_effect",
]

log = logging.getLogger("fastka.vrrp")

FAULT_FILE_STATUS = -254
MAX_FILE_STATUS = 253


def contribution(weight: int, reverse: bool, up: bool | None) -> int:
    """What a weighted tracker adds to the total priority (0 while not known yet)."""
    if up is None or weight == 0:
        return 0
    m = -1 if reverse else 1
    if up:
        return weight * m if weight > 0 else 0
    return weight * m if weight < 0 else 0


def file_effect(value: int, weight: int, reverse: bool) -> tuple[bool, int]:
    """(fault, contribution) of a ``track_file`` value for one use."""
    if weight == 0:
        return value != 0, 0
    status = value * weight * (-1 if reverse else 1)
    if status <= FAULT_FILE_STATUS:
        return True, 0
    return False, min(status, MAX_FILE_STATUS)


class _LoopLike(Protocol):
    def time(self) -> float: ...
    def call_periodic(
        self, interval: float, callback: Callable[..., object], *args: Any, first: float | None = ...
    ) -> Any: ...
    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Any: ...
    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_reader(self, fd: int) -> bool: ...


@dataclass(eq=False)
class TrackUse:
    """One instance tracking one object, with its weight."""

    tracked: Tracked
    instance: Instance
    weight: int
    reverse: bool = False
    fault: bool = False
    value: int = 0  # current contribution
    applied: bool = False

    @property
    def key(self) -> str:
        return f"{self.tracked.kind}:{self.tracked.name}"

    def effect(self) -> tuple[bool, int]:
        return self.tracked.effect(self)

    def initialise(self) -> None:
        """Apply the initial state before the instance starts (no transitions)."""
        inst = self.instance
        if self.tracked.holds_init(self):
            inst.init_pending.add(self.key)
        fault, value = self.effect()
        self.fault, self.value, self.applied = fault, value, True
        if fault:
            inst.faults[self.key] = self.tracked.fault_reason(self)
        if value and not inst.owner:
            inst.total_priority += value

    def update(self, now: float) -> None:
        inst = self.instance
        fault, value = self.effect()
        old_value, self.value = self.value, value
        if value != old_value:
            inst.adjust_priority(now, value - old_value)
        if fault != self.fault:
            self.fault = fault
            if fault:
                inst.set_fault(now, self.key, self.tracked.fault_reason(self))
            else:
                inst.clear_fault(now, self.key)
        if self.key in inst.init_pending and not self.tracked.holds_init(self):
            inst.script_init_done(now, self.key)


class Tracked:
    """Something instances track. Subclasses define the state and its effect."""

    kind = "?"

    def __init__(self, name: str) -> None:
        self.name = name
        self.users: list[TrackUse] = []
        self.up: bool | None = None
        self.last_change: float | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} up={self.up}>"

    def use(self, instance: Instance, weight: int, reverse: bool = False) -> TrackUse:
        u = TrackUse(self, instance, weight, reverse)
        self.users.append(u)
        return u

    def effect(self, use: TrackUse) -> tuple[bool, int]:
        """(fault, contribution) of this object for ``use``."""
        if use.weight == 0:
            if self.up is None:
                return False, 0
            return self.up == use.reverse, 0
        return False, contribution(use.weight, use.reverse, self.up)

    def holds_init(self, use: TrackUse) -> bool:
        return False

    def fault_reason(self, use: TrackUse) -> str:
        return f"{self.kind} {self.name} {'up' if self.up else 'down'}"

    def changed(self, now: float) -> None:
        self.last_change = now
        for u in self.users:
            if u.applied:
                u.update(now)

    @property
    def status_text(self) -> str:
        return "INIT" if self.up is None else ("GOOD" if self.up else "BAD")

    @property
    def status_value(self) -> float | None:
        return None

    def status(self) -> TrackedObject:
        return {
            "type": self.kind,
            "name": self.name,
            "up": self.up,
            "status": self.status_text,
            "value": self.status_value,
            "last_change": self.last_change,
            "users": sorted({u.instance.name for u in self.users}),
        }


class InterfaceTracker(Tracked):
    """An interface's link state (IFF_UP and IFF_RUNNING), fed by the netlink monitor."""

    kind = "interface"

    def fault_reason(self, use: TrackUse) -> str:
        return f"interface {self.name} {'up' if self.up else 'down'}"

    def set_up(self, now: float, up: bool) -> None:
        if up == self.up:
            return
        self.up = up
        log.info("Kernel is reporting: interface %s %s", self.name, "UP" if up else "DOWN")
        self.changed(now)


class ScriptTracker(Tracked):
    """A ``vrrp_script``: run periodically, rise/fall counted."""

    kind = "script"

    def __init__(self, cfg: VrrpScript, runner: ScriptRunner, loop: _LoopLike) -> None:
        super().__init__(cfg.name)
        self.cfg = cfg
        self.runner = runner
        self.loop = loop
        self.rise = max(cfg.rise, 1)
        self.fall = max(cfg.fall, 1)
        # Keepalived's result counter: OK iff result >= rise; a script that has not run
        # yet needs one success (init) unless init_fail (then rise successes).
        if cfg.init_fail:
            self.result = 0
            self.up = False
            self.init = False
        else:
            self.result = self.rise - 1
            self.init = True
        self.pid: int | None = None
        self.timer: Any = None
        self.runs = 0
        self.last_status: int | None = None
        self.disabled: str | None = None
        self._skip_logged = False

    def holds_init(self, use: TrackUse) -> bool:
        return use.weight == 0 and self.init

    def fault_reason(self, use: TrackUse) -> str:
        return f"tracked script {self.name} {'succeeded' if self.up else 'failed'}"

    @property
    def status_value(self) -> float | None:
        return None if self.last_status is None else float(self.last_status)

    def start(self) -> None:
        problem = self.runner.problem(self.cfg.script)
        if problem is not None:
            self.disabled = problem
            log.warning(
                "WARNING - script %s: %s - disabling tracking of %s",
                self.cfg.script.text or self.name,
                problem,
                self.name,
            )
            # Keepalived removes the tracking of a script it cannot run
            for u in self.users:
                inst = u.instance
                inst.adjust_priority(self.loop.time(), -u.value)
                u.value = 0
                if u.fault:
                    u.fault = False
                    inst.clear_fault(self.loop.time(), u.key)
                if u.key in inst.init_pending:
                    inst.script_init_done(self.loop.time(), u.key)
            self.users.clear()
            return
        self.timer = self.loop.call_periodic(self.cfg.interval, self._run, first=self.loop.time())

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _run(self) -> None:
        if self.pid is not None:
            if not self._skip_logged:
                self._skip_logged = True
                log.info("Track script %s is already running, expect idle - skipping run", self.name)
            return
        pid = self.runner.run(self.cfg.script, timeout=self.cfg.timeout, callback=self._exited)
        if pid is None:
            self.result_of(False, "could not be started")
            return
        self.pid = pid

    def _exited(self, pid: int, rc: int, timed_out: bool) -> None:
        self.pid = None
        self._skip_logged = False
        self.runs += 1
        self.last_status = rc
        if timed_out:
            why = "timed out"
        elif rc < 0:
            why = f"killed by signal {-rc}"
        else:
            why = f"exited with status {rc}"
        self.result_of(rc == 0 and not timed_out, why)

    def result_of(self, ok: bool, why: str = "") -> None:
        """Count one result (Keepalived's rise/fall counter)."""
        top = self.rise + self.fall - 1
        was_init = self.init
        old = self.up
        if ok:
            if self.result < self.rise - 1:
                self.result += 1
            else:
                if self.result < self.rise or was_init:
                    self.up = True
                self.result = top
        else:
            if self.result > self.rise:
                self.result -= 1
            else:
                if self.result >= self.rise or was_init:
                    self.up = False
                self.result = 0
        if self.up is not None:
            self.init = False
        if self.up != old or (was_init and not self.init):
            if self.up:
                log.info("VRRP_Script(%s) succeeded", self.name)
            else:
                log.info("VRRP_Script(%s) failed (%s)", self.name, why)
            self.changed(self.loop.time())


class FileTracker(Tracked):
    """A ``track_file``: a number read from a file, watched with inotify."""

    kind = "file"

    def __init__(self, cfg: TrackFile) -> None:
        super().__init__(cfg.name)
        self.cfg = cfg
        self.value = 0

    @property
    def status_text(self) -> str:
        return str(self.value)

    @property
    def status_value(self) -> float | None:
        return float(self.value)

    def effect(self, use: TrackUse) -> tuple[bool, int]:
        return file_effect(self.value, use.weight, use.reverse)

    def fault_reason(self, use: TrackUse) -> str:
        return f"track file {self.name} value {self.value}"

    def prepare(self) -> None:
        """``init_file``: create the file with ``init_value`` (or overwrite it)."""
        path = self.cfg.file
        if self.cfg.init_file and (self.cfg.init_overwrite or not os.path.exists(path)):
            try:
                with open(path, "w") as f:
                    f.write(f"{self.cfg.init_value}\n")
            except OSError as exc:
                log.error("track_file %s: cannot initialise %s: %s", self.name, path, exc)
        self.value = self.read()
        self.up = self.value == 0

    def read(self) -> int:
        try:
            with open(self.cfg.file, "rb") as f:
                text = f.read(127)
        except OSError:
            return 0
        try:
            v = int(text.split()[0], 0) if text.split() else 0
        except ValueError:
            v = 0
        return max(min(v, 254), -254)

    def reread(self, now: float, *, gone: bool = False) -> None:
        v = 0 if gone else self.read()
        if v == self.value:
            return
        log.info("track_file %s: value changed from %d to %d", self.name, self.value, v)
        self.value = v
        self.up = v == 0
        self.changed(now)


# --------------------------------------------------------------------------- inotify

_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_DELETE = 0x200
_IN_ISDIR = 0x40000000
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


class _Inotify:
    def __init__(self) -> None:
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self.fd = self.libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        self.watches: dict[int, str] = {}

    def watch(self, directory: str) -> int:
        wd = int(
            self.libc.inotify_add_watch(
                self.fd, directory.encode(), _IN_CLOSE_WRITE | _IN_DELETE | _IN_MOVED_FROM | _IN_MOVED_TO
            )
        )
        if wd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), directory)
        self.watches[wd] = directory
        return wd

    def read(self) -> list[tuple[int, int, str]]:
        out: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            if not data:
                return out
            off = 0
            while off + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, off)
                name = (
                    data[off + _EVENT.size : off + _EVENT.size + length]
                    .split(b"\0", 1)[0]
                    .decode(errors="replace")
                )
                off += _EVENT.size + length
                out.append((wd, mask, name))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


# --------------------------------------------------------------------------- the set of trackers


@dataclass
class Trackers:
    """Every tracked object of a configuration and the instances that use them."""

    interfaces: dict[str, InterfaceTracker] = field(default_factory=dict)
    scripts: dict[str, ScriptTracker] = field(default_factory=dict)
    files: dict[str, FileTracker] = field(default_factory=dict)
    inotify: _Inotify | None = None
    loop: _LoopLike | None = None

    @classmethod
    def build(
        cls,
        config: Config,
        instances: dict[str, Instance],
        runner: ScriptRunner,
        loop: _LoopLike,
    ) -> Trackers:
        t = cls(loop=loop)
        groups = config.vrrp_sync_groups
        for inst in instances.values():
            cfg = inst.config
            group = groups.get(cfg.sync_group) if cfg.sync_group else None
            weights_ok = group is None or group.sync_group_tracking_weight
            if cfg.interface and not cfg.dont_track_primary:
                t.interface(cfg.interface).use(inst, 0)
            t._uses(config, inst, cfg.track_interface, cfg.track_script, cfg.track_file, weights_ok, runner)
            if group is not None:
                t._uses(
                    config, inst, group.track_interface, group.track_script, group.track_file, True, runner
                )
            for kind, refs in (("track_process", cfg.track_process), ("track_bfd", cfg.track_bfd)):
                if refs:
                    log.warning(
                        "(%s) %s is not supported yet: %s ignored",
                        inst.name,
                        kind,
                        ", ".join(r.name for r in refs),
                    )
        return t

    def _uses(
        self,
        config: Config,
        inst: Instance,
        interfaces: Iterable[TrackInterface],
        scripts: Iterable[TrackRef],
        files: Iterable[TrackRef],
        weights_ok: bool,
        runner: ScriptRunner,
    ) -> None:
        def weight(w: int, what: str) -> int:
            if w and not weights_ok:
                log.warning(
                    "(%s) ignoring weight of %s: the instance is in a sync group "
                    "(set sync_group_tracking_weight)",
                    inst.name,
                    what,
                )
                return 0
            if w and inst.owner:
                log.warning("(%s) ignoring weight of %s due to address owner", inst.name, what)
            return w

        for ti in interfaces:
            self.interface(ti.name).use(
                inst, weight(ti.weight, f"track_interface {ti.name}"), ti.weight_reverse
            )
        for ref in scripts:
            scfg = config.vrrp_scripts.get(ref.name)
            if scfg is None:
                log.warning("(%s) track script %s not found, ignoring", inst.name, ref.name)
                continue
            tr = self.scripts.get(ref.name)
            if tr is None:
                assert self.loop is not None
                tr = self.scripts[ref.name] = ScriptTracker(scfg, runner, self.loop)
            tr.use(inst, weight(ref.weight, f"track_script {ref.name}"), ref.weight_reverse)
        for ref in files:
            fcfg = config.track_files.get(ref.name)
            if fcfg is None:
                log.warning("(%s) track file %s not found, ignoring", inst.name, ref.name)
                continue
            ft = self.files.get(ref.name)
            if ft is None:
                ft = self.files[ref.name] = FileTracker(fcfg)
            ft.use(inst, weight(ref.weight, f"track_file {ref.name}"), ref.weight_reverse)

    def interface(self, name: str) -> InterfaceTracker:
        tr = self.interfaces.get(name)
        if tr is None:
            tr = self.interfaces[name] = InterfaceTracker(name)
        return tr

    def all(self) -> list[Tracked]:
        return [*self.interfaces.values(), *self.scripts.values(), *self.files.values()]

    def initialise(self, now: float, instances: Iterable[Instance]) -> None:
        """Apply every tracker's initial state to its instances (before they start)."""
        for f in self.files.values():
            f.prepare()
        for tr in self.all():
            for u in tr.users:
                u.initialise()
        for inst in instances:
            total = inst.total_priority
            inst.total_priority = inst.base_priority
            inst.set_total_priority(now, total)

    def start(self) -> None:
        """Start running scripts and watching files."""
        assert self.loop is not None
        for s in self.scripts.values():
            s.start()
        if self.files:
            try:
                self.inotify = _Inotify()
            except OSError as exc:
                log.error("Unable to monitor vrrp track files: %s", exc)
                return
            for f in self.files.values():
                d = os.path.dirname(os.path.abspath(f.cfg.file)) or "/"
                try:
                    self.inotify.watch(d)
                except OSError as exc:
                    log.error("track_file %s: cannot watch %s: %s", f.name, d, exc)
            self.loop.add_reader(self.inotify.fd, self._on_inotify)

    def _on_inotify(self) -> None:
        assert self.inotify is not None and self.loop is not None
        now = self.loop.time()
        for wd, mask, name in self.inotify.read():
            if mask & _IN_ISDIR:
                continue
            directory = self.inotify.watches.get(wd)
            for f in self.files.values():
                path = os.path.abspath(f.cfg.file)
                if os.path.dirname(path) == directory and os.path.basename(path) == name:
                    f.reread(now, gone=bool(mask & (_IN_DELETE | _IN_MOVED_FROM)))

    def stop(self) -> None:
        for s in self.scripts.values():
            s.stop()
        if self.inotify is not None:
            if self.loop is not None:
                self.loop.remove_reader(self.inotify.fd)
            self.inotify.close()
            self.inotify = None

    def status(self) -> list[TrackedObject]:
        return [t.status() for t in self.all() if t.users]
