"""Tracking: ``track_interface``, ``track_script`` (``vrrp_script``), ``track_file``,
``track_process`` (``vrrp_track_process``) and the priority arithmetic Keepalived applies
to them (behaviour.md §V4). ``track_bfd`` is not supported (warned about, ignored).

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
``track_process`` is OK while ``quorum <= running <= quorum_max`` (``quorum_max 0``: while
none runs), counted by :class:`fastka.vrrp.proc_events.ProcessWatcher`; a change of that
verdict takes effect ``fork_delay`` (quorum gained) / ``terminate_delay`` (quorum lost)
later (``delay`` sets both), and not at all if the verdict flips back meanwhile.

A reload builds new trackers and :meth:`Trackers.adopt` carries the state of the old
ones over: a ``vrrp_script`` with the same command and user keeps its result (and a run
in progress), a file its value, a process tracker its count; :meth:`Trackers.apply`
then brings a running instance's priority and faults in line with the new trackers,
with transitions only where the outcome differs.
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

from fastka.vrrp.instance import Instance, State
from fastka.vrrp.proc_events import ProcessWatcher

if TYPE_CHECKING:
    from fastka.config.model import Config, TrackFile, TrackInterface, TrackProcess, TrackRef, VrrpScript
    from fastka.notify import ScriptRunner
    from fastka.status import TrackedObject

__all__ = [
    "FileTracker",
    "InterfaceTracker",
    "ProcessTracker",
    "ScriptTracker",
    "TrackUse",
    "Tracked",
    "Trackers",
    "contribution",
    "file_effect",
    "is_tracker_fault",
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


TRACKER_KINDS = ("interface", "script", "file", "process")


def is_tracker_fault(key: str) -> bool:
    """Whether an instance's fault key belongs to a tracker (``kind:name``)."""
    return key.partition(":")[0] in TRACKER_KINDS


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
        self._first: float | None = None

    def same_script(self, other: ScriptTracker) -> bool:
        """Keepalived keeps a script's result over a reload when the command and the user
        it runs as are the same."""
        a, b = self.cfg.script, other.cfg.script
        return a.argv == b.argv and a.user == b.user and a.group == b.group

    def take_state(self, old: ScriptTracker) -> None:
        """A reload: continue where ``old`` was (result, a run in progress, the cadence)."""
        self.result = min(old.result, self.rise + self.fall - 1)
        self.up = old.up
        self.init = old.init
        self.runs = old.runs
        self.last_status = old.last_status
        self.last_change = old.last_change
        if old.pid is not None and self.runner.adopt(old.pid, self._exited):
            self.pid = old.pid
            old.pid = None
        if old.timer is not None and old.timer.active and self.cfg.interval == old.cfg.interval:
            self._first = old.timer.when

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
        first = self._first if self._first is not None else self.loop.time()
        self.timer = self.loop.call_periodic(self.cfg.interval, self._run, first=first)

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

    def prepare(self, *, reload: bool = False) -> None:
        """``init_file``: create the file with ``init_value`` (or overwrite it; never on a
        reload of a file we already watched)."""
        path = self.cfg.file
        if not reload and self.cfg.init_file and (self.cfg.init_overwrite or not os.path.exists(path)):
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


class ProcessTracker(Tracked):
    """A ``vrrp_track_process``: OK while the number of matching processes is within the
    quorum (after the fork/terminate delays)."""

    kind = "process"

    def __init__(self, cfg: TrackProcess, loop: _LoopLike) -> None:
        super().__init__(cfg.name)
        self.cfg = cfg
        self.loop = loop
        self.count = 0
        self.timer: Any = None

    def in_quorum(self, count: int) -> bool:
        cfg = self.cfg
        if cfg.quorum_max == 0:
            return count == 0
        return count >= cfg.quorum and (cfg.quorum_max is None or count <= cfg.quorum_max)

    @property
    def quorum_text(self) -> str:
        cfg = self.cfg
        if cfg.quorum_max == 0:
            return "none"
        return f"{cfg.quorum}..{cfg.quorum_max}" if cfg.quorum_max is not None else f">= {cfg.quorum}"

    @property
    def status_text(self) -> str:
        return f"{self.count} running, quorum {self.quorum_text}"

    @property
    def status_value(self) -> float | None:
        return float(self.count)

    def fault_reason(self, use: TrackUse) -> str:
        return f"track process {self.name}: {self.count} running (quorum {self.quorum_text})"

    def set_count(self, count: int) -> None:
        """The watcher counted again. Before start-up the verdict is taken at once."""
        self.count = count
        ok = self.in_quorum(count)
        if self.up is None:
            self.up = ok
            return
        if ok == self.up:
            self._cancel()  # it flipped back within the delay: nothing happened
            return
        cfg = self.cfg
        # quorum gained: fork_delay; lost: terminate_delay (``delay`` sets both)
        delay = (cfg.fork_delay or cfg.delay) if ok else (cfg.terminate_delay or cfg.delay)
        if delay <= 0:
            self._settle()
        elif self.timer is None or not self.timer.active:
            self.timer = self.loop.call_later(delay, self._settle)

    def _settle(self) -> None:
        self.timer = None
        ok = self.in_quorum(self.count)
        if ok == self.up:
            return
        self.up = ok
        log.info(
            "Process monitor %s: %d running, quorum %s - %s",
            self.name,
            self.count,
            self.quorum_text,
            "up" if ok else "down",
        )
        self.changed(self.loop.time())

    def _cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def take_state(self, old: ProcessTracker) -> None:
        self.count = old.count
        self.last_change = old.last_change
        # a changed quorum takes effect at once
        self.up = old.up if self.cfg == old.cfg else self.in_quorum(self.count)


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
    processes: dict[str, ProcessTracker] = field(default_factory=dict)
    inotify: _Inotify | None = None
    watcher: ProcessWatcher | None = None
    loop: _LoopLike | None = None
    adopted_files: set[str] = field(default_factory=set)

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
            t._uses(
                config, inst, cfg.track_interface, cfg.track_script, cfg.track_file, cfg.track_process,
                weights_ok, runner,
            )  # fmt: skip
            if group is not None:
                t._uses(
                    config, inst, group.track_interface, group.track_script, group.track_file,
                    group.track_process, True, runner,
                )  # fmt: skip
            bfd = [*cfg.track_bfd, *(group.track_bfd if group is not None else ())]
            if bfd:
                log.warning(
                    "(%s) track_bfd is not supported: %s ignored", inst.name, ", ".join(r.name for r in bfd)
                )
        return t

    def _uses(
        self,
        config: Config,
        inst: Instance,
        interfaces: Iterable[TrackInterface],
        scripts: Iterable[TrackRef],
        files: Iterable[TrackRef],
        processes: Iterable[TrackRef],
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

        assert self.loop is not None
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
        for ref in processes:
            pcfg = config.track_processes.get(ref.name)
            if pcfg is None:
                log.warning("(%s) track process %s not found, ignoring", inst.name, ref.name)
                continue
            pt = self.processes.get(ref.name)
            if pt is None:
                pt = self.processes[ref.name] = ProcessTracker(pcfg, self.loop)
            pt.use(inst, weight(ref.weight, f"track_process {ref.name}"), ref.weight_reverse)

    def interface(self, name: str) -> InterfaceTracker:
        tr = self.interfaces.get(name)
        if tr is None:
            tr = self.interfaces[name] = InterfaceTracker(name)
        return tr

    def all(self) -> list[Tracked]:
        return [
            *self.interfaces.values(),
            *self.scripts.values(),
            *self.files.values(),
            *self.processes.values(),
        ]

    def _process_count(self, name: str, count: int) -> None:
        pt = self.processes.get(name)
        if pt is not None:
            pt.set_count(count)

    def _watch_processes(self) -> None:
        """Count the tracked processes (before the instances start: their initial state)."""
        assert self.loop is not None
        specs = {n: p.cfg for n, p in self.processes.items()}
        if self.watcher is not None and not specs:
            self.watcher.close()  # a reload removed the last vrrp_track_process
            self.watcher = None
        elif self.watcher is not None:
            self.watcher.on_change = self._process_count
            self.watcher.set_specs(specs)
        elif specs:
            self.watcher = ProcessWatcher(self.loop, specs, self._process_count)
            self.watcher.start()
        for p in self.processes.values():
            if p.up is None:
                p.up = p.in_quorum(self.watcher.counts.get(p.name, 0) if self.watcher else 0)

    def initialise(self, now: float, instances: Iterable[Instance]) -> None:
        """Apply every tracker's initial state to ``instances`` (before they start)."""
        insts = list(instances)
        members = {id(i) for i in insts}
        for f in self.files.values():
            f.prepare(reload=f.name in self.adopted_files)
        self._watch_processes()
        for tr in self.all():
            for u in tr.users:
                if id(u.instance) in members:
                    u.initialise()
        for inst in insts:
            total = inst.total_priority
            inst.total_priority = inst.base_priority
            inst.set_total_priority(now, total)

    # -- reload ------------------------------------------------------------------------------

    def adopt(self, old: Trackers) -> None:
        """A reload: carry the state of ``old``'s trackers over to ours (and its process
        watcher); ``old`` is stopped afterwards."""
        for name, tr in self.scripts.items():
            o = old.scripts.get(name)
            if o is not None and tr.same_script(o):
                tr.take_state(o)
        for name, ft in self.files.items():
            of = old.files.get(name)
            if of is not None:
                self.adopted_files.add(name)
                ft.value, ft.up, ft.last_change = of.value, of.up, of.last_change
        for name, pt in self.processes.items():
            op = old.processes.get(name)
            if op is not None:
                pt.take_state(op)
        self.watcher, old.watcher = old.watcher, None

    def apply(self, now: float, inst: Instance) -> None:
        """A reload, for an instance that runs on: its priority and faults as the new
        trackers say -- transitions only where the outcome differs."""
        total = inst.base_priority
        faults: dict[str, str] = {}
        pending: set[str] = set()
        for tr in self.all():
            for u in tr.users:
                if u.instance is not inst:
                    continue
                fault, value = u.effect()
                u.fault, u.value, u.applied = fault, value, True
                if fault:
                    faults[u.key] = tr.fault_reason(u)
                if value and not inst.owner:
                    total += value
                if tr.holds_init(u):
                    pending.add(u.key)
        if inst.state == State.INIT:
            inst.init_pending |= pending
        inst.set_total_priority(now, total)
        for key, why in faults.items():
            if key not in inst.faults:
                inst.set_fault(now, key, why)
        for key in [k for k in inst.faults if is_tracker_fault(k) and k not in faults]:
            inst.clear_fault(now, key)
        for key in [k for k in inst.init_pending if k not in pending]:
            inst.script_init_done(now, key)

    # -- running -----------------------------------------------------------------------------

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
        """Stop everything; results still coming (a script that was running) no longer
        reach the instances (after a reload, the new trackers own them)."""
        for tr in self.all():
            for u in tr.users:
                u.applied = False
        for s in self.scripts.values():
            s.stop()
        for p in self.processes.values():
            p._cancel()
        if self.inotify is not None:
            if self.loop is not None:
                self.loop.remove_reader(self.inotify.fd)
            self.inotify.close()
            self.inotify = None
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None

    def status(self) -> list[TrackedObject]:
        return [t.status() for t in self.all() if t.users]
