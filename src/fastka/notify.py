"""Notifications: running configured scripts, and the VRRP notify FIFO (cli.md §4).

The one place for running a configured command on the event loop:

* :class:`ScriptRunner` -- resolves the user a script runs as (per-script user, else
  ``script_user``, else ``keepalived_script`` when that user exists, else ourselves),
  applies ``enable_script_security`` (:func:`script_is_secure`), spawns through
  ``loop.spawn`` (own process group, clean environment) and enforces a timeout
  (SIGTERM to the process group, SIGKILL 2 s later) -- used by notify scripts and by
  ``vrrp_script`` (:mod:`fastka.vrrp.track`).
* :class:`VrrpNotifier` -- ``notify_master/backup/fault/stop/deleted``, the generic
  ``notify`` with Keepalived's four extra arguments (``INSTANCE|GROUP name STATE prio``),
  ``notify_master_rx_lower_pri`` and the FIFO lines ``INSTANCE "VI_1" MASTER 150``.
  Scripts of one instance (or group) run **one after the other, in order** (USERS.md §1.4:
  Keepalived's fire-and-forget scripts can finish out of order): the next starts when the
  previous exits, or after :data:`NOTIFY_ORDER_WAIT` seconds if it hangs (with a warning;
  it is not killed). FIFO lines are written at once, in order, non-blocking (a full FIFO
  drops the line, as Keepalived).
  SMTP alerts (``smtp_alert``) go last, through :class:`fastka.smtp.Mailer` (queued,
  delivered by a worker thread: the loop never waits for a mail server).

The FIFO and user helpers (:func:`open_fifo`, :func:`resolve_user`,
:func:`default_script_user`, :func:`script_is_secure`) are shared with the checker's
notifications.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import grp
import logging
import os
import pwd
import signal
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from fastka.smtp import Mailer, SmtpSettings, vrrp_group_alert, vrrp_instance_alert

if TYPE_CHECKING:
    from fastka.config.model import Config, NotifyFifo, SyncGroup, VrrpInstance
    from fastka.vrrp.instance import State

__all__ = [
    "NOTIFY_ORDER_WAIT",
    "ScriptLike",
    "ScriptRunner",
    "VrrpNotifier",
    "default_script_user",
    "fifo_line",
    "open_fifo",
    "resolve_user",
    "script_is_secure",
]

log = logging.getLogger("fastka.vrrp")

# A notify script still running after this long no longer holds back the next one.
NOTIFY_ORDER_WAIT = 10.0
# notify_stop scripts run with a limit at shutdown (Keepalived: 1 s, then SIGKILL).
STOP_SCRIPT_TIMEOUT = 1.0
# After SIGTERM at a script's timeout, SIGKILL this much later.
KILL_AFTER = 2.0
_UNSAFE_ENV = ("IFS", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH", "PYTHONHOME")


class ScriptLike(Protocol):
    @property
    def argv(self) -> tuple[str, ...]: ...
    @property
    def user(self) -> str | None: ...
    @property
    def group(self) -> str | None: ...


class _Timer(Protocol):
    def cancel(self) -> None: ...


class LoopLike(Protocol):
    """The part of ``fastka.loop.Loop`` used here."""

    def time(self) -> float: ...
    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Any: ...
    def spawn(
        self,
        argv: Sequence[str],
        callback: Callable[[int, int], object],
        *,
        env: dict[str, str] | None = ...,
        uid: int | None = ...,
        gid: int | None = ...,
        groups: Sequence[int] | None = ...,
        cwd: str | None = ...,
        stdin: Any = ...,
        stdout: Any = ...,
        stderr: Any = ...,
    ) -> int: ...


# --------------------------------------------------------------------------- helpers


def fifo_line(kind: str, name: str, state: str, priority: int) -> bytes:
    """One VRRP FIFO record: ``INSTANCE "VI_1" MASTER 150\\n`` (no NUL, unlike LVS lines)."""
    return f'{kind} "{name}" {state} {priority}\n'.encode()


def open_fifo(path: str) -> int:
    """Open (creating if needed, mode 0644) a FIFO for non-blocking writes."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        os.mkfifo(path, 0o644)
    else:
        if not stat.S_ISFIFO(st.st_mode):
            raise OSError(f"{path} is not a FIFO")
    # O_RDWR so that opening never fails for want of a reader (as Keepalived).
    return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)


def resolve_user(user: str | None, group: str | None) -> tuple[int, int] | None:
    """(uid, gid) for a script user; None = run as ourselves. LookupError if unknown."""
    if user is None:
        return None
    try:
        pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        raise LookupError(f"unknown script user {user}") from None
    gid = pw.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid if not group.isdigit() else int(group)
        except KeyError:
            raise LookupError(f"unknown script group {group}") from None
    return pw.pw_uid, gid


def default_script_user(script_user: str | None, script_group: str | None) -> tuple[str | None, str | None]:
    """``script_user`` if configured, else ``keepalived_script`` if it exists, else nobody
    in particular (ourselves)."""
    if script_user is not None:
        return script_user, script_group
    try:
        pwd.getpwnam("keepalived_script")
    except KeyError:
        return None, None
    return "keepalived_script", None


def script_is_secure(path: str, uid: int) -> bool:
    """Keepalived's script security rule for a script run as ``uid``: the file and every
    directory above it belong to root or that user and are not writable by others."""
    if os.getuid() != 0:
        return True
    node = os.path.realpath(path)
    while True:
        try:
            st = os.stat(node)
        except OSError:
            return False
        if st.st_uid not in (0, uid):
            return False
        if st.st_mode & stat.S_IWOTH and not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
            return False
        if st.st_mode & stat.S_IWGRP and st.st_gid != 0:
            return False
        parent = os.path.dirname(node)
        if parent == node:
            return True
        node = parent


def _find_executable(prog: str) -> str | None:
    if "/" in prog:
        return prog if os.access(prog, os.X_OK) and os.path.isfile(prog) else None
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        cand = os.path.join(d or ".", prog)
        if os.access(cand, os.X_OK) and os.path.isfile(cand):
            return cand
    return None


# --------------------------------------------------------------------------- running scripts


@dataclass
class _Run:
    pid: int
    text: str
    callback: Callable[[int, int, bool], None] | None
    term_timer: _Timer | None = None
    kill_timer: _Timer | None = None
    timed_out: bool = False


class ScriptRunner:
    """Spawns configured scripts on the loop (user switch, script security, timeouts)."""

    def __init__(
        self,
        loop: LoopLike,
        *,
        script_user: str | None = None,
        script_group: str | None = None,
        script_security: bool = False,
    ) -> None:
        self.loop = loop
        self.default_user = default_script_user(script_user, script_group)
        self.script_security = script_security
        self.running: dict[int, _Run] = {}
        self.env = {k: v for k, v in os.environ.items() if k not in _UNSAFE_ENV}
        self.env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")

    def credentials(self, script: ScriptLike) -> tuple[int, int] | None:
        user, group = (script.user, script.group) if script.user else self.default_user
        return resolve_user(user, group)

    def problem(self, script: ScriptLike) -> str | None:
        """Why ``script`` cannot run (missing, not executable, unknown user, insecure), or None."""
        if not script.argv:
            return "empty command"
        path = _find_executable(script.argv[0])
        if path is None:
            return f"{script.argv[0]} not found or not executable"
        try:
            creds = self.credentials(script)
        except LookupError as exc:
            return str(exc)
        uid = creds[0] if creds else os.getuid()
        if self.script_security and not script_is_secure(path, uid):
            return f"{path} is insecure (writable by a user other than root or the script user)"
        return None

    def run(
        self,
        script: ScriptLike,
        argv: Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        callback: Callable[[int, int, bool], None] | None = None,
    ) -> int | None:
        """Start ``argv`` (default: the script's own) as the script's user; ``callback(pid,
        rc, timed_out)`` when it exits (rc as ``subprocess``: -signum if killed). Returns the
        pid, or None (logged) if it could not start."""
        args = list(argv if argv is not None else script.argv)
        text = " ".join(args)
        try:
            creds = self.credentials(script)
        except LookupError as exc:
            log.error("Script %s not run: %s", text, exc)
            return None
        if self.script_security:
            path = _find_executable(args[0]) if args else None
            uid = creds[0] if creds else os.getuid()
            if path is None or not script_is_secure(path, uid):
                log.warning("Script %s not run: insecure or not executable (enable_script_security)", text)
                return None
        try:
            pid = self.loop.spawn(
                args,
                self._exited,
                env=self.env,
                uid=creds[0] if creds else None,
                gid=creds[1] if creds else None,
            )
        except OSError as exc:
            log.error("Unable to run script %s: %s", text, exc)
            return None
        run = _Run(pid, text, callback)
        self.running[pid] = run
        if timeout is not None and timeout > 0:
            run.term_timer = self.loop.call_later(timeout, self._timeout, pid)
        return pid

    def adopt(self, pid: int, callback: Callable[[int, int, bool], None]) -> bool:
        """Send the exit of running ``pid`` to ``callback`` instead (a reload's new
        tracker takes over a check in progress); False if it is not running."""
        run = self.running.get(pid)
        if run is None:
            return False
        run.callback = callback
        return True

    def _timeout(self, pid: int) -> None:
        run = self.running.get(pid)
        if run is None:
            return
        run.timed_out = True
        run.term_timer = None
        self._signal(pid, signal.SIGTERM)
        run.kill_timer = self.loop.call_later(KILL_AFTER, self._kill, pid)

    def _kill(self, pid: int) -> None:
        run = self.running.get(pid)
        if run is not None:
            run.kill_timer = None
            self._signal(pid, signal.SIGKILL)

    @staticmethod
    def _signal(pid: int, signum: int) -> None:
        # the script leads its own process group: its children go too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)

    def _exited(self, pid: int, rc: int) -> None:
        run = self.running.pop(pid, None)
        if run is None:
            return
        for t in (run.term_timer, run.kill_timer):
            if t is not None:
                t.cancel()
        if run.callback is not None:
            run.callback(pid, rc, run.timed_out)

    def kill_all(self) -> None:
        for pid in list(self.running):
            self._signal(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- ordered queue


class _Queue:
    """Scripts of one instance or group, started one after the other."""

    __slots__ = ("busy", "jobs", "wait_timer")

    def __init__(self) -> None:
        self.jobs: collections.deque[tuple[ScriptLike, list[str], float | None]] = collections.deque()
        self.busy: int | None = None
        self.wait_timer: _Timer | None = None


class VrrpNotifier:
    """VRRP notifications for instances and sync groups, in order per instance/group."""

    STATE_SCRIPTS: ClassVar[dict[str, str]] = {
        "MASTER": "notify_master",
        "BACKUP": "notify_backup",
        "FAULT": "notify_fault",
        "STOP": "notify_stop",
        "DELETED": "notify_deleted_script",
    }

    def __init__(self, loop: LoopLike, config: Config, runner: ScriptRunner | None = None) -> None:
        g = config.global_defs
        self.loop = loop
        self.runner = runner or ScriptRunner(
            loop,
            script_user=g.script_user,
            script_group=g.script_group,
            script_security=g.enable_script_security,
        )
        self.queues: dict[str, _Queue] = {}
        self.fifo_fds: list[int] = []
        self.lines_written = 0
        self.lines_dropped = 0
        self._stopping_done: Callable[[], None] | None = None
        self._stop_timer: _Timer | None = None
        self.mailer: Mailer | None = None
        self.no_email_faults = False
        self.set_smtp(config)
        self.fifos: list[NotifyFifo] = []
        self._open_fifos(config)

    @staticmethod
    def _fifos_of(config: Config) -> list[NotifyFifo]:
        g = config.global_defs
        out: list[NotifyFifo] = []
        for fifo in (g.notify_fifo, g.vrrp_notify_fifo):
            if fifo is not None and fifo.path not in {f.path for f in out}:
                out.append(fifo)
        return out

    def _open_fifos(self, config: Config) -> None:
        self.fifos = self._fifos_of(config)
        for fifo in self.fifos:
            self._open_fifo(fifo)

    def reconfigure(self, config: Config) -> None:
        """A reload: the FIFOs the new configuration names (reopened only if they
        changed); the script queues carry on."""
        self.set_smtp(config)
        if self._fifos_of(config) == self.fifos:
            return
        for fd in self.fifo_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fifo_fds = []
        self._open_fifos(config)

    def fifo_states(self, lines: Sequence[tuple[str, str, str, int]]) -> None:
        """``fifo_write_vrrp_states_on_reload``: the current states again, FIFO only
        ((kind, name, state, priority) per line)."""
        for kind, name, state, priority in lines:
            self._fifo(fifo_line(kind, name, state, priority))

    def _open_fifo(self, fifo: NotifyFifo) -> None:
        try:
            self.fifo_fds.append(open_fifo(fifo.path))
        except OSError as exc:
            log.error("Unable to open notify FIFO %s: %s", fifo.path, exc)
            return
        if fifo.script is not None:
            # the FIFO reader, started once with the FIFO's path appended (cli.md §4.4)
            self.runner.run(fifo.script, [*fifo.script.argv, fifo.path])

    def close(self) -> None:
        for q in self.queues.values():
            if q.wait_timer is not None:
                q.wait_timer.cancel()
        for fd in self.fifo_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fifo_fds = []
        if self.mailer is not None:
            self.mailer.close()  # what is queued is still delivered

    def set_smtp(self, config: Config) -> None:
        """The SMTP alert settings of ``config`` (at start and on reload)."""
        g = config.global_defs
        self.no_email_faults = g.no_email_faults
        smtp = SmtpSettings.from_global_defs(g)
        if self.mailer is not None and self.mailer.settings == smtp:
            return
        if self.mailer is not None:
            self.mailer.close()
        self.mailer = Mailer(smtp) if smtp is not None else None

    # -- public ------------------------------------------------------------------------------

    def instance(self, cfg: VrrpInstance, state: State, priority: int) -> None:
        """State-change notifications of an instance: state script, generic script, FIFO."""
        word = state.name
        if word == "DELETED" and not cfg.notify_deleted:
            word = "FAULT"
        key = f"i:{cfg.name}"
        attr = self.STATE_SCRIPTS.get(word)
        script = getattr(cfg, attr, None) if attr else None
        timeout = STOP_SCRIPT_TIMEOUT if word == "STOP" else None
        if script is not None:
            self._enqueue(key, script, list(script.argv), timeout)
        if cfg.notify is not None:
            self._enqueue(
                key, cfg.notify, [*cfg.notify.argv, "INSTANCE", cfg.name, word, str(priority)], timeout
            )
        self._fifo(fifo_line("INSTANCE", cfg.name, word, priority))
        if cfg.smtp_alert and self._mail_state(word):
            self._mail(*vrrp_instance_alert(cfg.name, word))

    def group(self, cfg: SyncGroup, state: State) -> None:
        word = state.name
        key = f"g:{cfg.name}"
        attr = self.STATE_SCRIPTS.get(word)
        script = getattr(cfg, attr, None) if attr and attr != "notify_deleted_script" else None
        timeout = STOP_SCRIPT_TIMEOUT if word == "STOP" else None
        if script is not None:
            self._enqueue(key, script, list(script.argv), timeout)
        if cfg.notify is not None:
            self._enqueue(key, cfg.notify, [*cfg.notify.argv, "GROUP", cfg.name, word, "0"], timeout)
        self._fifo(fifo_line("GROUP", cfg.name, word, 0))
        if cfg.smtp_alert and self._mail_state(word):
            self._mail(*vrrp_group_alert(cfg.name, word))

    def event(self, cfg: VrrpInstance, event: str, priority: int) -> None:
        """``MASTER_RX_LOWER_PRI`` (+ its script), ``MASTER_PRIORITY``, ``BACKUP_PRIORITY``."""
        if event == "MASTER_RX_LOWER_PRI" and cfg.notify_master_rx_lower_pri is not None:
            s = cfg.notify_master_rx_lower_pri
            self._enqueue(f"i:{cfg.name}", s, list(s.argv), None)
        self._fifo(fifo_line("INSTANCE", cfg.name, event, priority))

    @property
    def pending(self) -> int:
        return sum(len(q.jobs) + (q.busy is not None) for q in self.queues.values())

    def when_idle(self, done: Callable[[], None], timeout: float) -> None:
        """Call ``done`` once every queued script has finished, or after ``timeout`` (stop)."""
        if not self.pending:
            done()
            return
        self._stopping_done = done
        self._stop_timer = self.loop.call_later(timeout, self._idle_timeout)

    # -- internals ---------------------------------------------------------------------------

    def _mail_state(self, word: str) -> bool:
        # Keepalived mails MASTER, BACKUP and FAULT (not with no_email_faults); its STOP
        # alert never leaves the process, so none is sent here
        if word == "FAULT":
            return not self.no_email_faults
        return word in ("MASTER", "BACKUP")

    def _mail(self, subject: str, body: str) -> None:
        if self.mailer is not None:
            self.mailer.send(subject, body)

    def _fifo(self, data: bytes) -> None:
        for fd in self.fifo_fds:
            try:
                os.write(fd, data)
                self.lines_written += 1
            except BlockingIOError:
                self.lines_dropped += 1
            except OSError as exc:
                self.lines_dropped += 1
                log.warning("Write to notify FIFO failed: %s", exc)

    def _enqueue(self, key: str, script: ScriptLike, argv: list[str], timeout: float | None) -> None:
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = _Queue()
        q.jobs.append((script, argv, timeout))
        if q.busy is None:
            self._next(key, q)

    def _next(self, key: str, q: _Queue) -> None:
        while q.jobs and q.busy is None:
            script, argv, timeout = q.jobs.popleft()
            pid = self.runner.run(script, argv, timeout=timeout, callback=functools.partial(self._done, key))
            if pid is None:
                continue
            q.busy = pid
            q.wait_timer = self.loop.call_later(NOTIFY_ORDER_WAIT, self._slow, key, pid, " ".join(argv))
        self._check_idle()

    def _done(self, key: str, pid: int, rc: int, timed_out: bool) -> None:
        q = self.queues.get(key)
        if q is None:
            return
        if rc:
            log.info(
                "Notify script for %s exited with status %d%s",
                key[2:],
                rc,
                " (timed out)" if timed_out else "",
            )
        if q.busy != pid:  # a slow script we stopped waiting for
            return
        if q.wait_timer is not None:
            q.wait_timer.cancel()
            q.wait_timer = None
        q.busy = None
        self._next(key, q)

    def _slow(self, key: str, pid: int, text: str) -> None:
        q = self.queues.get(key)
        if q is None or q.busy != pid:
            return
        log.warning(
            "Notify script %s (pid %d) still running after %.0f s: starting the next one",
            text,
            pid,
            NOTIFY_ORDER_WAIT,
        )
        q.wait_timer = None
        q.busy = None
        self._next(key, q)

    def _check_idle(self) -> None:
        if self._stopping_done is not None and not self.pending:
            done, self._stopping_done = self._stopping_done, None
            if self._stop_timer is not None:
                self._stop_timer.cancel()
            done()

    def _idle_timeout(self) -> None:
        done, self._stopping_done = self._stopping_done, None
        if done is not None:
            done()
