"""The fastka parent process: configuration, children, watchdog, signals, status.

As Keepalived's parent (cli.md §1, §3), it reads the configuration, forks the children
the configuration needs -- ``vrrp`` when there are ``vrrp_*``/``static_*`` blocks,
``checker`` when there are ``virtual_server`` blocks, or as ``-P``/``-C`` say -- and then
only supervises:

* **watchdog**: every ``hello_interval`` it sends a "hello" over each child's channel
  (:mod:`fastka.ipc`); the child's own loop answers. A child that dies, or stays silent
  for ``hello_timeout`` (a hung loop, SIGSTOP), is killed and restarted, at once the first
  time and with a doubling back-off while it keeps dying young, with a log line saying
  why. ``-R`` turns respawning off (the daemon stops instead). A child exiting with 1, 2
  or 4 stops everything (``exited with permanent error CONFIG. Terminating``).
  Children die with the parent (``PR_SET_PDEATHSIG``, see :mod:`fastka.child`).
* **SIGHUP**: re-read and validate the configuration; if it has errors, keep running the
  old one and log why -- never die on a broken file. Otherwise send the new model to
  each child (which applies only the difference), start a child that is newly needed and
  stop one that no longer is. ``RELOADING=1``/``READY=1`` to systemd around it.
* **SIGTERM/SIGINT**: SIGTERM to the children (they clean up: priority-0 adverts, VIPs
  and IPVS entries removed, notify_stop), SIGKILL after ``child_wait_time``, pid files
  removed, exit 0.
* **SIGUSR1** writes the parent's data dump and is forwarded to every child; SIGUSR2,
  STATS_CLEAR and the JSON signal go to the VRRP child only (cli.md §3).
* **status**: the children report snapshots on every change; the parent serves the
  status document, ``/metrics`` and the instance paths (:mod:`fastka.statusd`) and writes
  the status file.

Forks happen outside the loop's callbacks: a callback that needs a child started stops
the loop, :meth:`Parent._main` forks and runs the loop again, so a child never starts
life inside its parent's dispatch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import importlib
import io
import logging
import os
import platform
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from fastka import log as fastka_log
from fastka import memcheck, status, systemd
from fastka._linux import enter_netns
from fastka._version import __version__
from fastka.child import (
    DEFAULT_UMASK,
    ROLE_TITLES,
    SIGJSON,
    SIGSTATS_CLEAR,
    ChildSpec,
    ConfigFacts,
    SubsystemFactory,
    effective_umask,
    facts_of,
    run_child,
    set_process_name,
)
from fastka.cli import ExitCode, Options
from fastka.errors import FastkaError
from fastka.ipc import Channel, Message
from fastka.pidfile import AlreadyRunning, PidFile, holder

if TYPE_CHECKING:
    from fastka.loop import Loop, Timer
    from fastka.notify import ScriptRunner
    from fastka.statusd import StatusServer

log = logging.getLogger("fastka.daemon")

# Where each child's subsystem lives ("module:callable" returning a child.Subsystem).
SUBSYSTEMS: dict[str, str] = {
    "vrrp": "fastka.vrrp.subsystem:VrrpSubsystem",
    "checker": "fastka.check.subsystem:CheckerSubsystem",
}

# What each child will import for a given configuration ("module:callable(config) ->
# module names"): the parent imports them before forking (see Parent._preload).
PRELOADS: dict[str, str] = {
    "vrrp": "fastka.vrrp.netlink:preload_modules",
    "checker": "fastka.check.subsystem:preload_modules",
}

# A child exiting with one of these stops the whole daemon (lib/scheduler.c).
PERMANENT_EXITS = {
    ExitCode.FATAL: "FATAL",
    ExitCode.CONFIG: "CONFIG",
    ExitCode.MISSING_PERMISSION: "PERMISSION",
}

# Signals Keepalived's parent ignores from its first instruction until its handlers are
# installed, so that an early SIGHUP is lost rather than fatal (cli.md §3).
_EARLY_IGNORED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, SIGSTATS_CLEAR, SIGJSON)


class ConfigLoadError(FastkaError):
    """The configuration could not be read at all (missing file, unreadable)."""

    def __init__(self, message: str, exit_code: int = ExitCode.NO_CONFIG) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Loaded:
    """A configuration as the parent sees it."""

    config: Any
    facts: ConfigFacts
    errors: list[str] = field(default_factory=list)  # a reload with any of these is refused
    warnings: list[str] = field(default_factory=list)
    fatal: bool = False  # unusable even at start-up
    consolidated: bytes | None = None  # the consolidated copy (fastka.configcopy), if asked for


Loader = Callable[[Options], Loaded]


def load_config(opts: Options, *, capture: bool = False) -> Loaded:
    """Compile ``opts.config_file`` with :mod:`fastka.config` and sort its diagnostics.

    Errors (what ``fastka -t`` reports at ERROR level, a missing include file among them)
    make a reload refused; warnings (an interface that does not exist yet, ...) are logged
    and the configuration is used. ``capture`` also keeps the consolidated copy
    (``Loaded.consolidated``, for ``reload_check_config``); ``--config-fd=FD`` reads one
    instead of the files.
    """
    path = opts.config_file
    from fastka import configcopy

    if opts.config_fd is not None:
        result: Any = configcopy.load_fd(opts.config_fd)
        consolidated = None
    else:
        if not os.path.exists(path):
            raise ConfigLoadError(f"Configuration file {path} does not exist")
        from fastka import config as config_pkg

        cap = configcopy.Capture() if capture else None
        try:
            result = config_pkg.load(
                path,
                config_id=opts.effective_config_id,
                all_config=opts.all_config,
                on_read=cap.hook if cap is not None else None,
            )
        except OSError as exc:
            raise ConfigLoadError(f"Cannot read configuration file {path}: {exc.strerror or exc}") from exc
        consolidated = cap.data if cap is not None else None
    if isinstance(result, tuple):
        config, diagnostics = result
    else:
        config, diagnostics = result, getattr(result, "diagnostics", [])
    errors, warnings, fatal = [], [], False
    for d in diagnostics or []:
        level = int(getattr(d, "level", logging.ERROR))
        text = str(d)
        if level >= logging.ERROR:
            errors.append(text)
            fatal = fatal or getattr(getattr(d, "status", None), "name", "") == "FATAL"
        elif level >= logging.WARNING:
            warnings.append(text)
    if config is None:
        fatal = True
    return Loaded(
        config=config,
        facts=facts_of(config),
        errors=errors,
        warnings=warnings,
        fatal=fatal,
        consolidated=consolidated,
    )


@dataclass
class Tuning:
    """Watchdog and restart timing (seconds)."""

    hello_interval: float = 2.0
    hello_timeout: float = 10.0  # silence after which a running child counts as hung
    start_timeout: float = 60.0  # ... before it has said "started" (a big configuration)
    reload_timeout: float = 60.0  # ... while it applies a reload
    status_timeout: float = 0.5  # wait for fresh snapshots before answering a request
    stable_time: float = 60.0  # a child that lived this long resets its back-off
    # ... as does one that had started its subsystem and then ran this long: it died of
    # something other than its start-up (a kill -9, the OOM killer), and a VRRP child must
    # be back within the peers' master-down interval, not after a back-off.
    healthy_time: float = 1.0
    backoff_first: float = 0.5
    backoff_max: float = 30.0
    ready_timeout: float = 10.0  # READY=1 at the latest this long after start-up
    reload_check_timeout: float = 5.0  # reload_check_config's config test (Keepalived's limit)

    @classmethod
    def from_env(cls) -> Tuning:
        """Defaults, or ``FASTKA_WATCHDOG=INTERVAL,TIMEOUT`` (seconds; for tests and for
        sites that want a hung child found sooner)."""
        tuning = cls()
        value = os.environ.get("FASTKA_WATCHDOG", "")
        if value:
            try:
                interval, _, timeout = value.partition(",")
                tuning.hello_interval = float(interval)
                if timeout:
                    tuning.hello_timeout = float(timeout)
            except ValueError:
                log.warning("FASTKA_WATCHDOG=%r ignored (INTERVAL,TIMEOUT in seconds)", value)
        return tuning


def resolve_target(target: str) -> Any:
    """The object a ``"module:attr.attr"`` string names (importing the module)."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_factory(target: str | SubsystemFactory) -> SubsystemFactory:
    if not isinstance(target, str):
        return target
    factory: SubsystemFactory = resolve_target(target)
    return factory


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def pid_paths(opts: Options, facts: ConfigFacts | None = None) -> dict[str, str]:
    """Pid files of the parent and each child: ``-p``/``-r``/``-c``, else Keepalived's
    defaults (``/run/keepalived.pid``, ``/run/vrrp.pid``, ``/run/checkers.pid``; in
    ``/run/keepalived/`` with ``use_pid_dir``, ``keepalived_NAME.pid`` ... with
    ``instance NAME``)."""
    paths = {"parent": opts.pid_file, "vrrp": opts.vrrp_pid_file, "checker": opts.checkers_pid_file}
    if facts is not None and (facts.instance or facts.use_pid_dir):
        suffix = f"_{facts.instance}" if facts.instance else ""
        defaults = {
            "parent": f"/run/keepalived/keepalived{suffix}.pid",
            "vrrp": f"/run/keepalived/vrrp{suffix}.pid",
            "checker": f"/run/keepalived/checkers{suffix}.pid",
        }
        given = {"parent": "pid_file", "vrrp": "vrrp_pid_file", "checker": "checkers_pid_file"}
        for role, path in defaults.items():
            if given[role] not in opts.given:
                paths[role] = path
    return {role: os.path.abspath(path) for role, path in paths.items()}


@functools.cache
def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


@dataclass
class _Proc:
    """The parent's record of one child role."""

    role: str
    title: str
    pid: int | None = None
    channel: Channel | None = None
    started_mono: float = 0.0
    started_ok: bool = False
    waiting_since: float | None = None  # first unanswered hello (or the fork), None if all answered
    hello_seq: int = 0
    incarnation: int = 0
    failures: int = 0
    kill_reason: str | None = None
    retiring: bool = False  # stopped because no longer needed
    restart_timer: Timer | None = None
    reload_sent: float | None = None
    section: Mapping[str, Any] | None = None
    checkpoint: Any = None


class Parent:
    def __init__(
        self,
        opts: Options,
        *,
        loader: Loader = load_config,
        factories: Mapping[str, str | SubsystemFactory] | None = None,
        tuning: Tuning | None = None,
        preloads: Mapping[str, str] | None = None,
    ) -> None:
        self.opts = opts
        self.loader = loader
        self.factory_targets: dict[str, str | SubsystemFactory] = dict(SUBSYSTEMS)
        self.factory_targets.update(factories or {})
        # A role whose subsystem is replaced (tests) does not get the real one's preloads.
        self.preloads: dict[str, str] = {r: t for r, t in PRELOADS.items() if r not in (factories or {})}
        self.preloads.update(preloads or {})
        self.factories: dict[str, SubsystemFactory] = {}
        self.tuning = tuning or Tuning.from_env()
        self.loaded: Loaded | None = None
        self.loop: Loop | None = None
        self.procs: dict[str, _Proc] = {}
        self.by_pid: dict[int, _Proc] = {}
        self.pid_file: PidFile | None = None
        self.paths: dict[str, str] = {}
        self.board = status.Board(config_file=opts.config_file, config_id=opts.effective_config_id)
        self.server: StatusServer | None = None
        self.status_target: tuple[str | None, str | None] = (None, None)
        self.status_file: str | None = None
        self.mem_check = memcheck.wanted(opts)
        self._wanted: set[str] = set()
        self._to_start: set[str] = set()
        self._exit_code: int | None = None
        self._stopping = False
        self._kill_timer: Timer | None = None
        self._reload_seq = 0
        self._reload_waiting: set[str] = set()
        self._reload_errors: list[str] = []
        self._reload_timer: Timer | None = None
        self._reload_again = False
        self._status_write: Timer | None = None
        self._refresh_waiting: set[str] = set()
        self._refresh_callbacks: list[Callable[[], None]] = []
        self._refresh_timer: Timer | None = None
        self._refresh_id = 0
        self._ready_sent = False
        self._ready_timer: Timer | None = None
        self._t0 = time.monotonic()
        self._scripts: ScriptRunner | None = None
        self._shutdown_script_run = False
        self._reload_checking: int | None = None  # pid of the reload_check_config run
        self._reload_file: str | None = None  # reload_file while a reload is in progress
        self._status_refresh: Timer | None = None

    # ---------------------------------------------------------------- start-up

    def _phase(self, what: str) -> None:
        """Log how long start-up took to reach ``what`` (``-DD``; bench/compare/startup.py)."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("start-up: %s after %.0f ms", what, (time.monotonic() - self._t0) * 1e3)

    def run(self) -> int:
        self._t0 = time.monotonic()
        for signum in _EARLY_IGNORED:
            signal.signal(signum, signal.SIG_IGN)
        opts = self.opts
        os.umask(opts.umask if opts.umask is not None else DEFAULT_UMASK)
        self._absolutise_paths()
        fastka_log.setup_for(opts, "parent")
        if self.mem_check:
            memcheck.start()
        log.info("Starting fastka v%s (Keepalived-compatible)", __version__)
        uname = os.uname()
        log.info("Running on %s %s %s", uname.sysname, uname.release, uname.version)
        log.info("Command line: %s", " ".join(repr(a) for a in sys.argv))
        log.info("Configuration file %s", opts.config_file)
        try:
            loaded = self.loader(opts)
        except ConfigLoadError as exc:
            log.error("%s", exc)
            return exc.exit_code
        for text in loaded.warnings + loaded.errors:
            log.warning("%s", text)
        if loaded.fatal:
            log.error("Configuration is unusable; stopping")
            return ExitCode.CONFIG
        self._phase("configuration read")
        self.loaded = loaded
        self._dump_conf_at_start()
        facts = loaded.facts
        if facts.router_id:
            self.board.daemon["router_id"] = facts.router_id
        namespace = opts.namespace or facts.net_namespace
        if namespace:
            try:
                enter_netns(namespace)
            except OSError as exc:
                log.error("Cannot enter network namespace %s: %s", namespace, exc)
                return ExitCode.FATAL
            self.board.daemon["net_namespace"] = namespace
            if not opts.namespace:  # the syslog ident says which namespace (Keepalived_vrrp_NAME)
                opts.namespace = namespace
                fastka_log.setup_for(opts, "parent")
        os.umask(effective_umask(opts, facts))
        if "parent" in facts.process_names:
            set_process_name(facts.process_names["parent"])
        self.paths = pid_paths(opts, facts)
        self._wanted = self._wanted_roles(facts)
        for role in ("parent", *sorted(self._wanted)):
            pid = holder(self.paths[role])
            if pid is not None:
                log.info("daemon is already running")
                return ExitCode.OK
        try:
            self._resolve_factories(self._wanted)
        except Exception as exc:
            log.error("Cannot load a subsystem: %s", exc)
            return ExitCode.FATAL
        self._preload(loaded.config, self._wanted)
        self._settle_heap()
        self._phase("subsystems imported")
        if not opts.dont_fork:
            _daemonize()
        self.board.daemon["pid"] = os.getpid()
        self.pid_file = PidFile(self.paths["parent"])
        try:
            self.pid_file.acquire()
        except AlreadyRunning:
            log.info("daemon is already running")
            return ExitCode.OK
        except OSError as exc:
            log.error("Cannot write pid file %s: %s", self.paths["parent"], exc)
            return ExitCode.FATAL
        try:
            return self._main()
        finally:
            self._cleanup()

    def _absolutise_paths(self) -> None:
        # Daemonising moves to /; relative names would then mean something else.
        opts = self.opts
        opts.config_file = os.path.abspath(opts.config_file)
        for name in (
            "pid_file",
            "vrrp_pid_file",
            "checkers_pid_file",
            "log_file",
            "status_socket",
            "status_file",
        ):
            value = getattr(opts, name, None)
            if value:
                setattr(opts, name, os.path.abspath(value))
        self.board.daemon["config_file"] = opts.config_file

    def _dump_conf_at_start(self) -> None:
        if self.opts.dump_conf is None or self.loaded is None:
            return
        text = _config_dump(self.opts, self.loaded.config, json_=self.opts.dump_conf == "json")
        for line in text.splitlines():
            log.info("%s", line)

    def _wanted_roles(self, facts: ConfigFacts) -> set[str]:
        opts = self.opts
        if opts.vrrp_only or opts.check_only:
            # -P / -C (both = both), as Keepalived: only what was asked, if configured.
            wanted = {r for r, asked in (("vrrp", opts.vrrp_only), ("checker", opts.check_only)) if asked}
        else:
            wanted = {"vrrp", "checker"}
        if not opts.all_children:
            wanted = {r for r in wanted if (facts.has_vrrp if r == "vrrp" else facts.has_checker)}
        return wanted

    def _resolve_factories(self, roles: set[str]) -> None:
        for role in roles:
            if role not in self.factories:
                self.factories[role] = resolve_factory(self.factory_targets[role])

    def _preload(self, config: Any, roles: set[str]) -> None:
        """Import, before forking, what the children of ``roles`` will import for
        ``config``: the subsystems (already, by :meth:`_resolve_factories`) and the heavy
        libraries their configuration needs (pyroute2 for VMACs and routes, ssl, dnspython
        ...). Children are forked, not exec'd, so a child then starts -- and a dead one is
        back -- without importing anything, and the imported pages stay shared with the
        parent (see :meth:`_settle_heap`). Libraries the configuration does not need stay
        out of every process. A failed import is left for the child to report."""
        for role in sorted(roles):
            target = self.preloads.get(role)
            if target is None:
                continue
            try:
                names = [str(n) for n in resolve_target(target)(config)]
            except Exception as exc:
                log.debug("preload list of the %s child failed: %s", role, exc)
                continue
            for name in names:
                if name in sys.modules:
                    continue
                t0 = time.monotonic()
                try:
                    importlib.import_module(name)
                except Exception as exc:
                    log.debug("preloading %s failed: %s", name, exc)
                    continue
                log.debug(
                    "preloaded %s for the %s child in %.0f ms", name, role, (time.monotonic() - t0) * 1e3
                )

    @staticmethod
    def _settle_heap() -> None:
        """Collect, then move every object alive now to the collector's permanent
        generation (``gc.freeze``): the cyclic GC then never walks them again -- in the
        parent or in a forked child -- so it never writes to their headers, and the pages
        holding the modules and the configuration stay shared between the parent and its
        children instead of being copied into each (copy-on-write). Done once the
        configuration is loaded (start-up, each reload), so that a fork itself only collects
        and freezes what was made since. Frozen objects are still freed by reference
        counting (the configuration model has no cycles).

        ``malloc_trim`` then hands the compiler's freed scratch memory back to the kernel:
        every page the parent still maps is in each child's RSS and is copied (page tables;
        in user-mode-linux the pages themselves, on first touch) at each fork."""
        gc.collect()
        gc.freeze()
        with contextlib.suppress(Exception):
            _libc().malloc_trim(0)

    def _main(self) -> int:
        from fastka.loop import Loop

        self.loop = loop = Loop()
        self._install_signals()
        self.board.daemon["config_loaded"] = time.time()
        self._configure_status()
        wd = systemd.watchdog_interval()
        if wd:
            loop.call_periodic(wd, systemd.watchdog)
        loop.call_periodic(self.tuning.hello_interval, self._watchdog)
        facts = self.loaded.facts if self.loaded else ConfigFacts()
        self._startup_pending = facts.startup_script is not None
        if not self._startup_pending or not self._run_script(
            "Startup", facts.startup_script, facts.startup_script_timeout, self._startup_script_done
        ):
            self._startup_script_done()
        self.board.daemon["state"] = "running"
        # READY=1 once every child runs its subsystem (or no child is needed: Keepalived
        # PR #2662), at the latest after ready_timeout so that a slow or crash-looping child
        # shows in `systemctl status` rather than as a start-up timeout.
        self._ready_timer = loop.call_later(self.tuning.ready_timeout, self._send_ready)
        self._maybe_ready()
        if not self._wanted:
            log.info("No VRRP or virtual server configuration: running without children")
        while True:
            self._start_pending()
            if self._exit_code is not None:
                break
            loop.run()
        return self._exit_code

    def _startup_script_done(self) -> None:
        """``startup_script`` has finished (or there is none): start the children."""
        self._startup_pending = False
        if self._stopping:
            return
        self._to_start |= self._wanted
        assert self.loop is not None
        self.loop.stop()  # _main forks them, outside the loop's dispatch
        self._maybe_ready()

    _startup_pending = False

    def _run_script(self, what: str, script: Any, timeout: float, done: Callable[[], None]) -> bool:
        """Run ``startup_script``/``shutdown_script`` as Keepalived does -- its user, script
        security, killed after ``timeout`` -- and ``done()`` when it has exited (whatever
        its status: a failure is logged, the daemon carries on). False if it could not
        start (logged): then ``done`` is not called."""
        assert self.loop is not None and self.loaded is not None
        if self._scripts is None:
            from fastka.notify import ScriptRunner

            facts = self.loaded.facts
            self._scripts = ScriptRunner(
                self.loop,
                script_user=facts.script_user,
                script_group=facts.script_group,
                script_security=facts.script_security,
            )
        text = getattr(script, "text", "") or " ".join(script.argv)
        t0 = self.loop.time()

        def exited(pid: int, rc: int, timed_out: bool) -> None:
            took = self.loop.time() - t0 if self.loop is not None else 0.0
            if timed_out:
                log.error("%s script %s timed out after %.0f s: killed", what, text, timeout)
            elif rc != 0:
                log.error("%s script %s failed, %s", what, text, describe_exit(rc))
            else:
                log.info("%s script %s completed in %.1f s", what, text, took)
            done()

        log.info("Running %s script %s", what.lower(), text)
        return self._scripts.run(script, timeout=timeout, callback=exited) is not None

    def _install_signals(self) -> None:
        loop = self.loop
        assert loop is not None
        handlers: dict[int, Callable[[int], None]] = {
            signal.SIGHUP: self._on_hup,
            signal.SIGTERM: self._on_term,
            signal.SIGUSR1: self._on_usr1,
            signal.SIGUSR2: self._forward_to_vrrp,
            SIGSTATS_CLEAR: self._forward_to_vrrp,
            SIGJSON: self._forward_to_vrrp,
        }
        if self.opts.ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            handlers[signal.SIGINT] = self._on_term
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
            # Blocked now; an ignored signal would be discarded before signalfd saw it.
            signal.signal(signum, signal.SIG_DFL)

    # ---------------------------------------------------------------- children

    def _proc(self, role: str) -> _Proc:
        if role not in self.procs:
            self.procs[role] = _Proc(role=role, title=ROLE_TITLES.get(role, role))
        return self.procs[role]

    def _request_start(self, role: str) -> None:
        self._to_start.add(role)
        assert self.loop is not None
        self.loop.stop()

    def _start_pending(self) -> None:
        pending, self._to_start = self._to_start, set()
        for role in sorted(pending):
            proc = self._proc(role)
            if self._stopping or role not in self._wanted or proc.pid is not None:
                continue
            try:
                self._spawn(proc)
            except OSError as exc:
                log.error("Cannot start the %s child process: %s", proc.title, exc)
                self._schedule_restart(proc, f"fork failed: {exc}")

    def _spawn(self, proc: _Proc) -> None:
        loop = self.loop
        assert loop is not None and self.loaded is not None
        role = proc.role
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        spec = ChildSpec(
            role=role,
            factory=self.factories[role],
            config=self.loaded.config,
            facts=self.loaded.facts,
            options=self.opts,
            parent_pid=os.getpid(),
            pid_file=self.paths[role],
            incarnation=proc.incarnation,
            resume=proc.checkpoint,
            mem_check=self.mem_check,
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # What was made since the last _settle_heap(): collected (cheap: the frozen heap is
        # not walked) so that no garbage is frozen for good, then shared, never walked.
        gc.collect()
        gc.freeze()
        spec.forked_at = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = ExitCode.PROGRAM_ERROR
            try:
                parent_sock.detach()
                self._forget_in_child()
                code = run_child(spec, child_sock)
            except BaseException:
                with contextlib.suppress(Exception):
                    traceback.print_exc()
            finally:
                os._exit(code)
        child_sock.close()
        proc.pid = pid
        proc.started_mono = proc.waiting_since = loop.time()
        proc.started_ok = False
        proc.kill_reason = None
        proc.retiring = False
        proc.reload_sent = None
        proc.channel = Channel(
            loop, parent_sock, partial(self._on_child_message, proc), partial(self._on_channel_closed, proc)
        )
        self.by_pid[pid] = proc
        loop.watch_child(pid, self._child_exited)
        health = self.board.child(role)
        health["state"] = "starting"
        health["pid"] = pid
        health["started"] = time.time()
        health["last_hello"] = health["hello_rtt"] = None
        if proc.checkpoint is not None:
            log.info("Starting %s child process, pid=%d, resuming the previous one's state", proc.title, pid)
            log.debug("%s checkpoint handed over: %r", proc.title, proc.checkpoint)
        else:
            log.info("Starting %s child process, pid=%d", proc.title, pid)
        self._status_changed()

    def _forget_in_child(self) -> None:
        """In a new child: make the parent's objects let go of their descriptors, which the
        child closes wholesale (and then reuses the numbers)."""
        for proc in self.procs.values():
            if proc.channel is not None:
                proc.channel.forget()
        if self.server is not None:
            self.server.forget()
        if self.pid_file is not None:
            self.pid_file.forget()

    def _on_channel_closed(self, proc: _Proc) -> None:
        proc.channel = None

    def _on_child_message(self, proc: _Proc, msg: Message) -> None:
        assert self.loop is not None
        now = self.loop.time()
        proc.waiting_since = None
        op = msg.get("op")
        health = self.board.child(proc.role)
        if op == "hello":
            sent = msg.get("t")
            if isinstance(sent, float):
                health["hello_rtt"] = max(0.0, now - sent)
            health["last_hello"] = time.time()
        elif op == "started":
            proc.started_ok = True
            if health["state"] == "starting":
                health["state"] = "running"
            if self._ready_sent:
                systemd.status(self._systemd_status())
            self._maybe_ready()
            self._status_changed()
        elif op == "status":
            proc.section = msg.get("status")
            proc.checkpoint = msg.get("checkpoint")
            self.board.sections[proc.role] = proc.section
            health["status_time"] = msg.get("time")
            if msg.get("id") is not None:
                self._refresh_answered(proc.role)
            self._status_changed()
        elif op == "reloaded":
            proc.reload_sent = None
            if health["state"] == "reloading":
                health["state"] = "running"
            if not msg.get("ok"):
                self._reload_errors.append(f"{proc.role}: {msg.get('error')}")
            self._reload_waiting.discard(proc.role)
            self._reload_check_done()

    def _child_exited(self, pid: int, code: int) -> None:
        proc = self.by_pid.pop(pid, None)
        if proc is None:
            return
        if proc.channel is not None:
            proc.channel.close()
        proc.pid = None
        _remove_pid_file_of(self.paths.get(proc.role), pid)
        how = describe_exit(code)
        reason = proc.kill_reason or ("stopped" if (self._stopping or proc.retiring) else "died")
        health = self.board.child(proc.role)
        health["pid"] = None
        health["last_exit"] = {"time": time.time(), "code": code, "status": how, "reason": reason}
        self._reload_waiting.discard(proc.role)
        self._refresh_answered(proc.role)
        self._reload_check_done()
        if self._stopping or proc.retiring:
            health["state"] = "stopped"
            log.info("%s child process(%d) %s", proc.title, pid, how)
            if proc.retiring:
                proc.section = None
                self.board.sections[proc.role] = None
            self._status_changed()
            if self._stopping and not self.by_pid:
                self._finish(self._exit_code_on_stop)
            return
        if code in PERMANENT_EXITS:
            health["state"] = "stopped"
            log.error(
                "%s child process(%d) exited with permanent error %s. Terminating",
                proc.title,
                pid,
                PERMANENT_EXITS[code],
            )
            self._shutdown(exit_code=code)
            return
        if self.opts.dont_respawn:
            health["state"] = "stopped"
            log.error("%s child process(%d) %s (%s): Exiting", proc.title, pid, how, reason)
            self._shutdown(exit_code=ExitCode.OK)
            return
        self._schedule_restart(proc, f"{how}, {reason}" if proc.kill_reason else how)

    def _schedule_restart(self, proc: _Proc, why: str) -> None:
        assert self.loop is not None
        lived = self.loop.time() - proc.started_mono
        healthy = lived >= self.tuning.stable_time or (proc.started_ok and lived >= self.tuning.healthy_time)
        proc.failures = 1 if healthy else proc.failures + 1
        proc.incarnation += 1
        health = self.board.child(proc.role)
        health["restarts"] += 1
        if proc.failures <= 1:
            delay = 0.0
        else:
            delay = min(self.tuning.backoff_first * 2 ** (proc.failures - 2), self.tuning.backoff_max)
        if delay <= 0:
            log.warning("%s child process died (%s): Respawning", proc.title, why)
            health["state"] = "starting"
            self._request_start(proc.role)
        else:
            log.warning(
                "%s child process died (%s): Respawning in %.1f s (%d failures in a row)",
                proc.title,
                why,
                delay,
                proc.failures,
            )
            health["state"] = "backoff"
            proc.restart_timer = self.loop.call_later(delay, self._request_start, proc.role)
        self._status_changed()

    def _kill(self, proc: _Proc, reason: str) -> None:
        if proc.pid is None:
            return
        proc.kill_reason = reason
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)

    def _watchdog(self) -> None:
        assert self.loop is not None
        now = self.loop.time()
        t = self.tuning
        for proc in list(self.procs.values()):
            if proc.pid is None or proc.kill_reason or proc.retiring or self._stopping:
                continue
            # Silence counts from the first hello the child left unanswered: if the parent
            # itself was held up, no hello went out meanwhile and nobody is blamed.
            if proc.waiting_since is None:
                proc.waiting_since = now
            allowance = t.hello_timeout if proc.started_ok else t.start_timeout
            if proc.reload_sent is not None:
                allowance = max(allowance, t.reload_timeout)
            silent = now - proc.waiting_since
            if silent > allowance:
                log.error(
                    "%s child process(%d) not responding for %.1f s: killing it", proc.title, proc.pid, silent
                )
                self._kill(proc, f"not responding for {silent:.1f} s")
                continue
            if proc.channel is not None:
                proc.hello_seq += 1
                proc.channel.send({"op": "hello", "seq": proc.hello_seq, "t": now})

    # ---------------------------------------------------------------- signals

    def _on_hup(self, signum: int) -> None:
        if self._stopping:
            return
        if self._reload_waiting or self._reload_checking is not None:
            # One at a time; a burst of SIGHUPs during a reload makes one more reload.
            self._reload_again = True
            return
        self._reload()

    def _load(self, *, capture: bool = False) -> Loaded:
        if capture and self.loader is load_config:
            return load_config(self.opts, capture=True)
        return self.loader(self.opts)

    def _reload(self) -> None:
        """SIGHUP: read the configuration (the ``reload_file`` exists meanwhile); with
        ``reload_check_config``, have a separate ``fastka -t --config-fd`` run check the
        consolidated copy first; then :meth:`_apply_reload`."""
        assert self.loop is not None and self.loaded is not None
        log.info("Reloading")
        systemd.reloading("Reloading")
        self.board.daemon["state"] = "reloading"
        fastka_log.reopen_files()
        self._create_reload_file(self.loaded.facts.reload_file)
        check = self.loaded.facts.reload_check_config  # the running configuration's setting
        try:
            loaded = self._load(capture=check is not None)
            problems = loaded.errors or (["the configuration is unusable"] if loaded.fatal else [])
        except ConfigLoadError as exc:
            loaded, problems = None, [str(exc)]
        except Exception as exc:
            log.exception("reading the configuration failed")
            loaded, problems = None, [f"{type(exc).__name__}: {exc}"]
        if loaded is not None:
            for text in loaded.warnings:
                log.warning("%s", text)
        if loaded is None or problems:
            self._reload_failed(problems, f"the new configuration has {len(problems)} error(s)")
            return
        if check is not None and loaded.consolidated is not None:
            self._check_then_apply(loaded, check)
            return
        self._apply_reload(loaded)

    def _check_then_apply(self, loaded: Loaded, log_file: str) -> None:
        """``reload_check_config``: run ``fastka -t[LOG] --config-fd=0`` on the consolidated
        copy (a sealed memfd as its stdin) and apply ``loaded`` -- compiled from that same
        copy -- only if it exits 0 within ``reload_check_timeout`` (Keepalived: 5 s)."""
        from fastka import configcopy

        assert self.loop is not None and loaded.consolidated is not None
        loop = self.loop
        argv = [sys.executable, "-m", "fastka", f"--config-test={log_file}" if log_file else "-t"]
        argv += ["--config-fd=0", "-f", self.opts.config_file, "-i", self.opts.effective_config_id]
        fd = configcopy.to_memfd(loaded.consolidated)
        try:
            pid = loop.spawn(argv, lambda pid, rc: self._checked(loaded, pid, rc), stdin=fd)
        except OSError as exc:
            self._reload_failed(
                [f"cannot run the configuration check: {exc}"], "the configuration check failed"
            )
            return
        finally:
            configcopy.close(fd)
        self._reload_checking = pid
        log.info("Checking the new configuration (reload_check_config, pid %d)", pid)
        self._check_timer = loop.call_later(self.tuning.reload_check_timeout, self._check_timed_out, pid)

    _check_timer: Timer | None = None

    def _check_timed_out(self, pid: int) -> None:
        if self._reload_checking == pid:
            log.error(
                "The configuration check did not finish in %.0f s: killing it",
                self.tuning.reload_check_timeout,
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def _checked(self, loaded: Loaded, pid: int, rc: int) -> None:
        if self._reload_checking != pid:
            return
        self._reload_checking = None
        if self._check_timer is not None:
            self._check_timer.cancel()
            self._check_timer = None
        if self._stopping:
            self._remove_reload_file()
            return
        if rc != 0:
            why = "killed after its time limit" if rc == -signal.SIGKILL else f"exit status {rc}"
            self._reload_failed(
                [f"configuration check {describe_exit(rc)}"], f"the configuration check failed ({why})"
            )
        else:
            log.info("Configuration check passed")
            self._apply_reload(loaded)
        if self._reload_again and self.board.daemon["state"] == "running" and not self._stopping:
            self._reload_again = False
            assert self.loop is not None
            self.loop.call_soon(self._reload)

    def _reload_failed(self, problems: list[str], summary: str) -> None:
        """Log why, count it, keep the running configuration."""
        for text in problems[:20]:
            log.error("%s", text)
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        log.error("Reload failed: %s%s; keeping the running configuration", summary, more)
        reloads = self.board.daemon["reloads"]
        reloads["failed"] += 1
        reloads["last"] = {"time": time.time(), "ok": False, "error": problems[0] if problems else "?"}
        self.board.daemon["state"] = "running"
        first = problems[0] if problems else ""
        self._send_ready(f"Reload failed, running the previous configuration: {first}", again=True)
        self._remove_reload_file()
        self._status_changed()

    def _create_reload_file(self, path: str | None) -> None:
        """``reload_file``: present while a reload is in progress (Keepalived's, for scripts
        that must not act meanwhile)."""
        if not path:
            return
        try:
            os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            with open(path, "w", encoding="ascii"):
                pass
        except OSError as exc:
            log.error("Cannot create the reload file %s: %s", path, exc)
            return
        self._reload_file = path

    def _remove_reload_file(self) -> None:
        path, self._reload_file = self._reload_file, None
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _apply_reload(self, loaded: Loaded) -> None:
        """Send the new configuration to the children; start and stop children as needed."""
        assert self.loop is not None
        wanted = self._wanted_roles(loaded.facts)
        try:
            self._resolve_factories(wanted)
        except Exception as exc:
            self._reload_failed([str(exc)], "cannot load a subsystem")
            return
        self.loaded = loaded
        loaded.consolidated = None  # checked; the memory is better spent elsewhere
        os.umask(effective_umask(self.opts, loaded.facts))
        if "parent" in loaded.facts.process_names:
            set_process_name(loaded.facts.process_names["parent"])
        self._preload(loaded.config, wanted)
        self._settle_heap()
        self.board.daemon["config_loaded"] = time.time()
        if loaded.facts.router_id:
            self.board.daemon["router_id"] = loaded.facts.router_id
        self._reload_seq += 1
        self._reload_errors = []
        old_wanted, self._wanted = self._wanted, wanted
        now = self.loop.time()
        for role in sorted(old_wanted | wanted | set(self.procs)):
            proc = self._proc(role)
            if role not in wanted:
                if proc.restart_timer is not None:
                    proc.restart_timer.cancel()
                if proc.pid is not None and not proc.retiring:
                    log.info("%s child process(%d) no longer needed: stopping it", proc.title, proc.pid)
                    self._retire(proc)
            elif proc.pid is None:
                if proc.restart_timer is None or not proc.restart_timer.active:
                    self._to_start.add(role)
            elif proc.channel is not None:
                proc.reload_sent = now
                self.board.child(role)["state"] = "reloading"
                msg = {"op": "reload", "id": self._reload_seq, "config": loaded.config, "facts": loaded.facts}
                if proc.channel.send(msg):
                    self._reload_waiting.add(role)
        self._configure_status()
        if self._to_start:
            self.loop.stop()
        self._reload_timer = self.loop.call_later(self.tuning.reload_timeout, self._reload_timed_out)
        self._reload_check_done()

    def _reload_timed_out(self) -> None:
        if self._reload_waiting:
            log.warning("Reload: no answer from %s; carrying on", ", ".join(sorted(self._reload_waiting)))
            self._reload_waiting.clear()
            self._reload_check_done()

    def _reload_check_done(self) -> None:
        if self._reload_waiting or self.board.daemon["state"] != "reloading":
            return
        if self._reload_timer is not None:
            self._reload_timer.cancel()
            self._reload_timer = None
        reloads = self.board.daemon["reloads"]
        if self._reload_errors:
            reloads["failed"] += 1
            reloads["last"] = {"time": time.time(), "ok": False, "error": "; ".join(self._reload_errors)}
            log.error("Reload applied with errors: %s", "; ".join(self._reload_errors))
        else:
            reloads["ok"] += 1
            reloads["last"] = {"time": time.time(), "ok": True, "error": None}
            log.info("Reload finished")
        self.board.daemon["state"] = "running" if not self._stopping else "stopping"
        self._remove_reload_file()
        self._send_ready(again=True)
        self._status_changed()
        if self._reload_again and not self._stopping:
            self._reload_again = False
            assert self.loop is not None
            self.loop.call_soon(self._reload)

    def _retire(self, proc: _Proc) -> None:
        assert self.loop is not None and proc.pid is not None
        proc.retiring = True
        self.board.child(proc.role)["state"] = "stopping"
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        wait = self.loaded.facts.child_wait_time if self.loaded else 5.0
        self.loop.call_later(wait, self._kill_if_alive, proc, proc.pid)

    def _kill_if_alive(self, proc: _Proc, pid: int) -> None:
        if proc.pid == pid:
            log.warning("%s child process(%d) did not stop in time: killing it", proc.title, pid)
            self._kill(proc, "did not stop in time")

    def _on_term(self, signum: int) -> None:
        self._shutdown(exit_code=ExitCode.OK)

    def _shutdown(self, *, exit_code: int) -> None:
        assert self.loop is not None
        if self._stopping:
            return
        self._stopping = True
        self._exit_code_on_stop = exit_code
        log.info("Stopping")
        systemd.stopping("Stopping")
        self.board.daemon["state"] = "stopping"
        for proc in self.procs.values():
            if proc.restart_timer is not None:
                proc.restart_timer.cancel()
            if proc.pid is not None:
                self.board.child(proc.role)["state"] = "stopping"
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        self._status_changed()
        if not self.by_pid:
            self._finish(exit_code)
            return
        wait = self.loaded.facts.child_wait_time if self.loaded else 5.0
        self._kill_timer = self.loop.call_later(wait, self._kill_remaining, wait)

    _exit_code_on_stop: int = ExitCode.OK

    def _kill_remaining(self, wait: float) -> None:
        for proc in self.procs.values():
            if proc.pid is not None:
                log.warning(
                    "%s child process(%d) did not stop within %.0f s: killing it", proc.title, proc.pid, wait
                )
                self._kill(proc, "did not stop in time")

    def _finish(self, code: int) -> None:
        """The children are gone: run ``shutdown_script`` (waited for, with its timeout),
        then leave the loop."""
        assert self.loop is not None
        if self._kill_timer is not None:
            self._kill_timer.cancel()
            self._kill_timer = None
        script = self.loaded.facts.shutdown_script if self.loaded is not None else None
        if script is not None and not self._shutdown_script_run:
            self._shutdown_script_run = True
            if self._scripts is not None:
                self._scripts.kill_all()  # a startup script still running
            timeout = self.loaded.facts.shutdown_script_timeout if self.loaded is not None else 10.0
            if self._run_script("Shutdown", script, timeout, partial(self._finish, code)):
                return
        self._exit_code = code
        self.loop.stop()

    def _on_usr1(self, signum: int) -> None:
        log.info("Printing parent data for process(%d) on signal", os.getpid())
        facts = self.loaded.facts if self.loaded else ConfigFacts()
        path = status.dump_path("data", "parent", facts.state_dump_file)
        # Children first: they dump while the parent writes its own.
        self._forward(signum, list(self.procs.values()))
        report = memcheck.report("parent") if self.mem_check else None
        try:
            status.atomic_write(path, self._parent_dump() + (report or ""))
        except OSError as exc:
            log.error("Cannot write %s: %s", path, exc)
        if report:
            memcheck.log_report("parent", text=report)

    def _forward_to_vrrp(self, signum: int) -> None:
        proc = self.procs.get("vrrp")
        self._forward(signum, [proc] if proc else [])

    def _forward(self, signum: int, procs: list[_Proc]) -> None:
        for proc in procs:
            if proc.pid is not None and not proc.retiring:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signum)

    def _parent_dump(self) -> str:
        doc = self.board.document()
        d = doc["daemon"]
        lines = ["------< fastka parent >------"]
        for key in ("pid", "version", "config_file", "config_id", "router_id", "state"):
            lines.append(f" {key.replace('_', ' ').capitalize()} = {d.get(key)}")
        lines.append(f" Started = {time.ctime(d['started'])}")
        if d.get("config_loaded"):
            lines.append(f" Configuration loaded = {time.ctime(d['config_loaded'])}")
        r = d["reloads"]
        lines.append(f" Reloads = {r['ok']} ok, {r['failed']} failed")
        if r["last"]:
            last = r["last"]
            lines.append(
                f" Last reload = {time.ctime(last['time'])} {'ok' if last['ok'] else 'FAILED: ' + str(last['error'])}"
            )
        lines.append("------< Children >------")
        for role, h in doc["children"].items():
            lines.append(f" {role}: state {h['state']}, pid {h['pid']}, restarts {h['restarts']}")
            if h.get("last_exit"):
                le = h["last_exit"]
                lines.append(f"   last exit {time.ctime(le['time'])}: {le['status']} ({le['reason']})")
        if self.loaded is not None:
            lines.append("------< Configuration >------")
            lines.append(_config_dump(self.opts, self.loaded.config))
        return "\n".join(lines) + "\n"

    # ---------------------------------------------------------------- status

    def _maybe_ready(self) -> None:
        if self._ready_sent or self._startup_pending:
            return
        if all((p := self.procs.get(r)) is not None and p.started_ok for r in self._wanted):
            self._send_ready()

    def _send_ready(self, status_text: str | None = None, *, again: bool = False) -> None:
        """READY=1 (once at start-up; ``again`` after each reload, as systemd expects)."""
        if self._ready_timer is not None:
            self._ready_timer.cancel()
            self._ready_timer = None
        if not self._ready_sent or again:
            self._ready_sent = True
            systemd.ready(status_text or self._systemd_status())

    def _systemd_status(self) -> str:
        running = [
            f"{p.role} (pid {p.pid})" for p in self.procs.values() if p.pid is not None and not p.retiring
        ]
        if running:
            return "Running: " + ", ".join(sorted(running))
        if not self._wanted:
            return "Running: no VRRP or virtual server configured"
        return "Starting children"

    def _configure_status(self) -> None:
        assert self.loop is not None
        facts = self.loaded.facts if self.loaded else ConfigFacts()
        opts = self.opts
        sock = getattr(opts, "status_socket", None) or facts.status_socket
        http = getattr(opts, "status_http", None) or facts.status_http
        self.status_file = getattr(opts, "status_file", None) or facts.status_file
        # Counters change without a snapshot being pushed: refresh the file now and then.
        if self._status_refresh is not None:
            self._status_refresh.cancel()
            self._status_refresh = None
        if self.status_file and facts.status_file_interval > 0:
            self._status_refresh = self.loop.call_periodic(
                facts.status_file_interval, self._refresh, self._write_status_file
            )
        target = (sock, http)
        if target == self.status_target:
            return
        if self.server is not None:
            self.server.close()
            self.server = None
        self.status_target = target
        if not sock and not http:
            return
        # h11 (the endpoint) and prometheus_client (/metrics) only when asked for.
        from fastka.statusd import StatusServer, parse_http_address

        self.server = StatusServer(self.loop, self._http)
        if sock:
            try:
                self.server.listen_unix(sock)
            except OSError as exc:
                log.error("Cannot open the status socket %s: %s", sock, exc)
        if http:
            try:
                host, port = parse_http_address(http)
                self.server.listen_tcp(host, port)
            except (OSError, ValueError) as exc:
                log.error("Cannot open the status HTTP endpoint %s: %s", http, exc)

    def _status_changed(self) -> None:
        if not self.status_file or self.loop is None:
            return
        if self._status_write is not None and self._status_write.active:
            return
        self._status_write = self.loop.call_soon(self._write_status_file)

    def _write_status_file(self) -> None:
        if not self.status_file:
            return
        try:
            status.atomic_write(self.status_file, status.to_json(self.board.document()))
        except OSError as exc:
            log.error("Cannot write the status file %s: %s", self.status_file, exc)

    def _refresh(self, done: Callable[[], None]) -> None:
        """Ask every running child for a fresh snapshot; ``done()`` when all answered or
        after ``status_timeout`` (then the last snapshots are used)."""
        assert self.loop is not None
        self._refresh_callbacks.append(done)
        if self._refresh_timer is not None:
            return  # one in flight: join it
        self._refresh_id += 1
        for proc in self.procs.values():
            live = proc.pid is not None and proc.channel is not None and proc.started_ok and not proc.retiring
            if (
                live
                and proc.channel is not None
                and proc.channel.send({"op": "status?", "id": self._refresh_id})
            ):
                self._refresh_waiting.add(proc.role)
        self._refresh_timer = self.loop.call_later(self.tuning.status_timeout, self._refresh_finish)
        if not self._refresh_waiting:
            self._refresh_finish()

    def _refresh_answered(self, role: str) -> None:
        if role in self._refresh_waiting:
            self._refresh_waiting.discard(role)
            if not self._refresh_waiting:
                self._refresh_finish()

    def _refresh_finish(self) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
            self._refresh_timer = None
        self._refresh_waiting.clear()
        callbacks, self._refresh_callbacks = self._refresh_callbacks, []
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("status request failed")

    def health(self) -> tuple[bool, str]:
        problems = []
        for role in sorted(self._wanted):
            proc = self.procs.get(role)
            if proc is None or proc.pid is None or not proc.started_ok:
                problems.append(f"{role} child not running")
        if self._stopping:
            problems.append("stopping")
        return (not problems, "; ".join(problems) or "ok")

    def _http(self, method: str, path: str, respond: Callable[[int, str, bytes], None]) -> None:
        def json_response(value: Any, code: int = 200) -> None:
            respond(code, "application/json", status.to_json(value).encode())

        parts = [p for p in path.split("/") if p]
        if path in ("/status", "/status.json"):
            self._refresh(lambda: json_response(self.board.document()))
        elif path == "/metrics":
            from fastka import metrics

            self._refresh(lambda: respond(200, metrics.CONTENT_TYPE, metrics.render(self.board.document())))
        elif path == "/health":
            ok, text = self.health()
            respond(200 if ok else 503, "text/plain", text.encode() + b"\n")
        elif parts[:2] == ["vrrp", "instances"] and len(parts) == 2:
            self._refresh(
                lambda: json_response((self.board.document().get("vrrp") or {}).get("instances", []))
            )
        elif parts[:2] == ["vrrp", "sync_groups"] and len(parts) == 2:
            self._refresh(
                lambda: json_response((self.board.document().get("vrrp") or {}).get("sync_groups", []))
            )
        elif len(parts) in (3, 4) and parts[:2] == ["vrrp", "instance"] and parts[3:] in ([], ["state"]):
            name = parts[2]

            def answer() -> None:
                inst = status.find_instance(self.board.document(), name)
                if inst is None:
                    json_response({"error": f"no VRRP instance {name}"}, 404)
                elif len(parts) == 3:
                    json_response(inst)
                else:
                    lt = inst.get("last_transition") or {}
                    json_response(
                        {
                            "instance": name,
                            "state": str(inst.get("state", "")).capitalize(),
                            "since": lt.get("time"),
                            "reason": lt.get("reason"),
                        }
                    )

            self._refresh(answer)
        elif parts == ["checker", "virtual_servers"]:
            self._refresh(
                lambda: json_response((self.board.document().get("checker") or {}).get("virtual_servers", []))
            )
        elif path == "/":
            respond(
                200,
                "text/plain",
                b"fastka status: /status /metrics /health /vrrp/instances /vrrp/instance/NAME[/state] "
                b"/vrrp/sync_groups /checker/virtual_servers\n",
            )
        else:
            respond(404, "text/plain", b"not found\n")

    # ---------------------------------------------------------------- exit

    def _cleanup(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.status_file:
            self.board.daemon["state"] = "stopped"
            self._write_status_file()
        if self.mem_check:
            memcheck.log_report("parent", final=True)
        if self.pid_file is not None:
            self.pid_file.release()
        if self.loop is not None:
            with contextlib.suppress(Exception):
                self.loop.close()
        log.info("Stopped fastka v%s", __version__)


def _config_dump(opts: Options, config: Any, *, json_: bool = False) -> str:
    """The configuration as text or JSON (``-d``/``--dump-conf=json``, the parent's data
    dump), by the configuration compiler's dumper."""
    try:
        from fastka.config.check import dump_config

        buf = io.StringIO()
        dump_config(dataclasses.replace(opts, dump_conf="json" if json_ else ""), config, buf)
        return buf.getvalue().rstrip("\n")
    except Exception as exc:  # a dump must never take the daemon down
        return f"(configuration dump failed: {type(exc).__name__}: {exc})\n{config!r}"


def _remove_pid_file_of(path: str | None, pid: int) -> None:
    """Remove a dead child's pid file if it still names that child (it may not have been
    able to remove it itself)."""
    if not path:
        return
    from fastka.pidfile import read_pid

    if read_pid(path) == pid:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _daemonize() -> None:
    """Keepalived's xdaemon(): fork (the parent exits 0), new session, cwd /, stdio to
    /dev/null."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    os.chdir("/")
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)


def run(
    opts: Options,
    *,
    loader: Loader | None = None,
    factories: Mapping[str, str | SubsystemFactory] | None = None,
    tuning: Tuning | None = None,
) -> int:
    """Run the daemon as the command line asks; returns the process exit code."""
    if platform.system() != "Linux":
        print("fastka runs on Linux only", file=sys.stderr)
        return ExitCode.FATAL
    parent = Parent(opts, loader=loader or load_config, factories=factories, tuning=tuning)
    return parent.run()
