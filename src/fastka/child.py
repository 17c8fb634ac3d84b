"""The child processes' framework: the :class:`Subsystem` protocol and the child main.

The parent (:mod:`fastka.daemon`) forks one child per subsystem -- ``vrrp`` (VRRP
instances, VIPs, notifications) and ``checker`` (health checks, IPVS). Right after fork
:func:`run_child` makes the process a child: it dies with the parent
(``PR_SET_PDEATHSIG``), drops every descriptor it inherited except its channel to the
parent, sets its process title (``fastka: vrrp``) and logging ident
(``Keepalived_vrrp``), takes its pid file, creates its own event loop, installs its signal
handlers and runs the subsystem on that loop.

How a subsystem plugs in (the VRRP router and the checker manager implement this)::

    class VrrpSubsystem(SubsystemBase):
        def start(self, ctx: ChildContext, config: Config) -> None: ...   # build, arm timers
        def reload(self, config: Config) -> None: ...   # apply the diff; raise to refuse
        def stop(self, done: Callable[[], None]) -> None: ...  # cleanup, then done()
        def status(self) -> VrrpSection: ...            # its part of the status document
        def dump(self) -> str: ...                      # SIGUSR1 -> keepalived.data
        def stats(self, clear: bool) -> str: ...        # SIGUSR2 -> keepalived.stats
        def json_dump(self) -> object: ...              # SIGJSON -> keepalived.json
        def checkpoint(self) -> object: ...             # handed to the next incarnation

    daemon.run(opts)  # finds it through daemon.SUBSYSTEMS["vrrp"] = "module:Class"

and calls ``ctx.status_changed()`` whenever what ``status()`` returns has changed in a way
worth telling (a transition, a real server going down -- not every advert counter: the
parent pulls a fresh snapshot for each HTTP request). After a restart (the child died or
hung), ``ctx.resume`` holds the last ``checkpoint()`` of the previous incarnation, so that a
VRRP child that was MASTER can resume as MASTER within the master-down interval instead of
failing over.

Exit codes: an exception from ``start()`` ends the child with Keepalived's codes --
``ConfigError`` 2 (CONFIG), ``PermissionError`` 4 (MISSING_PERMISSION), any other 70
(PROGRAM_ERROR, restarted with back-off); ``ctx.exit(code, reason)`` ends it on purpose.
Codes 1, 2 and 4 make the parent stop everything, as Keepalived does.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fastka import log as fastka_log
from fastka import memcheck, status, systemd
from fastka.cli import SIGNAL_FUNCTIONS, ExitCode
from fastka.errors import ConfigError
from fastka.ipc import Channel, Message
from fastka.pidfile import AlreadyRunning, PidFile

if TYPE_CHECKING:
    import socket

    from fastka.cli import Options
    from fastka.loop import Loop, Timer

log = logging.getLogger("fastka.daemon")

ROLES = ("vrrp", "checker")
# Keepalived's names in log lines ("VRRP child process(1234) died: Respawning").
ROLE_TITLES = {"vrrp": "VRRP", "checker": "Healthcheck"}

SIGJSON = SIGNAL_FUNCTIONS["JSON"]
SIGSTATS_CLEAR = SIGNAL_FUNCTIONS["STATS_CLEAR"]

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PR_SET_NAME = 15

# process_names: Keepalived's process names (what ps -o comm, top and pidof show).
DEFAULT_PROCESS_NAMES = {"parent": "keepalived", "vrrp": "keepalived_vrrp", "checker": "keepalived_ipvs"}
# Keepalived's umask when neither -u nor ``umask`` says otherwise (IXUSR|IRWXG|IRWXO).
DEFAULT_UMASK = 0o177

# Fewer status snapshots than this interval apart are coalesced (a burst of transitions
# sends one snapshot, not one per instance).
STATUS_MIN_INTERVAL = 0.05
# The first snapshot waits this long after start(): building it takes the loop for a while
# with many instances (tens of ms per thousand), and what start() set due now -- a resumed
# MASTER's first adverts -- goes first.
FIRST_STATUS_DELAY = 0.1


@runtime_checkable
class Subsystem(Protocol):
    """What a child runs. All methods are called on the child's loop thread."""

    def start(self, ctx: ChildContext, config: Any) -> None:
        """Build everything for ``config`` and arm it on ``ctx.loop``; return promptly."""

    def reload(self, config: Any) -> None:
        """Apply a new configuration (only the difference, behaviour.md §R). Raising reports
        the reload as failed to the parent; the subsystem keeps whatever it has."""

    def stop(self, done: Callable[[], None]) -> None:
        """Graceful stop (priority-0 adverts, VIPs and IPVS entries removed, notify_stop with
        its timeout); call ``done()`` when finished. The loop keeps running until then, or
        until the stop timeout (``child_wait_time``) passes."""

    def status(self) -> Mapping[str, Any]:
        """This subsystem's section of the status document (status.VrrpSection /
        status.CheckerSection; schema in docs/status.md)."""
        ...

    def dump(self) -> str:
        """Human-readable data dump for SIGUSR1 (Keepalived's ``.data`` files; not stable)."""
        ...

    def stats(self, clear: bool) -> str:
        """Statistics for SIGUSR2 (``clear``: STATS_CLEAR, zero the counters afterwards)."""
        ...

    def json_dump(self) -> Any:
        """The JSON dump for the JSON signal (``keepalived.json``), JSON-serialisable."""
        ...

    def checkpoint(self) -> Any:
        """Picklable state handed to the next incarnation as ``ctx.resume`` after a restart."""
        ...


class SubsystemBase:
    """Defaults for the optional parts of :class:`Subsystem`."""

    def start(self, ctx: ChildContext, config: Any) -> None:
        raise NotImplementedError

    def reload(self, config: Any) -> None:
        raise NotImplementedError

    def stop(self, done: Callable[[], None]) -> None:
        done()

    def status(self) -> Mapping[str, Any]:
        return {}

    def dump(self) -> str:
        return ""

    def stats(self, clear: bool) -> str:
        return ""

    def json_dump(self) -> Any:
        return None

    def checkpoint(self) -> Any:
        return None


SubsystemFactory = Callable[[], Subsystem]


@dataclass
class ConfigFacts:
    """What the process framework needs from a configuration (the rest is the subsystems')."""

    has_vrrp: bool = False
    has_checker: bool = False
    router_id: str | None = None
    child_wait_time: float = 5.0
    state_dump_file: str | None = None
    stats_dump_file: str | None = None
    json_dump_file: str | None = None
    status_socket: str | None = None
    status_http: str | None = None
    status_file: str | None = None
    umask: int | None = None
    net_namespace: str | None = None
    instance: str | None = None
    use_pid_dir: bool = False
    process_names: dict[str, str] = field(default_factory=dict)  # role -> process name
    status_file_interval: float = 5.0  # 0: the status file is written on changes only
    reload_file: str | None = None
    reload_check_config: str | None = None  # None: off; "": check, report to stderr; else log file
    startup_script: Any = None  # config.model.Script
    startup_script_timeout: float = 10.0
    shutdown_script: Any = None
    shutdown_script_timeout: float = 10.0
    script_user: str | None = None
    script_group: str | None = None
    script_security: bool = False


def facts_of(config: Any) -> ConfigFacts:
    """Read :class:`ConfigFacts` from a ``fastka.config.model.Config`` (or anything shaped
    like it: tests use small stand-ins)."""
    g = getattr(config, "global_defs", None)

    def opt(name: str) -> Any:
        value = getattr(g, name, None)
        return value if value not in ("", None) else None

    names = {}
    for role, keyword in (
        ("parent", "process_name"),
        ("vrrp", "vrrp_process_name"),
        ("checker", "checker_process_name"),
    ):
        name = opt(keyword) or (DEFAULT_PROCESS_NAMES[role] if opt("process_names") else None)
        if name:
            names[role] = str(name)
    interval = opt("fastka_status_file_interval")
    return ConfigFacts(
        has_vrrp=bool(getattr(config, "has_vrrp", False)),
        has_checker=bool(getattr(config, "has_checker", False)),
        router_id=opt("router_id"),
        child_wait_time=float(opt("child_wait_time") or 5),
        state_dump_file=opt("state_dump_file"),
        stats_dump_file=opt("stats_dump_file"),
        json_dump_file=opt("json_dump_file"),
        status_socket=opt("fastka_status_socket"),
        status_http=opt("fastka_status_http"),
        status_file=opt("fastka_status_file"),
        umask=opt("umask"),
        net_namespace=opt("net_namespace"),
        instance=opt("instance"),
        use_pid_dir=bool(opt("use_pid_dir")),
        process_names=names,
        status_file_interval=float(interval) if interval is not None else 5.0,
        reload_file=opt("reload_file"),
        reload_check_config=getattr(g, "reload_check_config", None),
        startup_script=opt("startup_script"),
        startup_script_timeout=float(opt("startup_script_timeout") or 10),
        shutdown_script=opt("shutdown_script"),
        shutdown_script_timeout=float(opt("shutdown_script_timeout") or 10),
        script_user=opt("script_user"),
        script_group=opt("script_group"),
        script_security=bool(opt("enable_script_security")),
    )


def effective_umask(options: Options, facts: ConfigFacts) -> int:
    """``-u`` wins over ``umask``, which wins over Keepalived's default 0177."""
    if options.umask is not None:
        return int(options.umask)
    return int(facts.umask) if facts.umask is not None else DEFAULT_UMASK


def set_process_name(name: str) -> None:
    """The process name (``/proc/PID/comm``: ``ps -o comm``, ``pidof``; 15 characters), as
    Keepalived's ``process_name`` and friends set it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


@dataclass
class ChildSpec:
    """Everything a freshly forked child needs (it shares the parent's memory)."""

    role: str
    factory: SubsystemFactory
    config: Any
    facts: ConfigFacts
    options: Options
    parent_pid: int
    pid_file: str
    incarnation: int = 0
    resume: Any = None
    mem_check: bool = False
    forked_at: float = 0.0  # time.monotonic() just before the fork (start-up timing)
    extra: dict[str, Any] = field(default_factory=dict)


class ChildContext:
    """A subsystem's handle on its process."""

    def __init__(self, runner: _ChildRunner) -> None:
        self._runner = runner
        spec = runner.spec
        self.role: str = spec.role
        self.loop: Loop = runner.loop
        self.options: Options = spec.options
        self.facts: ConfigFacts = spec.facts
        self.resume: Any = spec.resume
        self.incarnation: int = spec.incarnation
        self.log: logging.Logger = fastka_log.get_logger(spec.role)

    def status_changed(self) -> None:
        """Tell the framework that ``status()`` changed: a snapshot goes to the parent soon."""
        self._runner.schedule_status()

    def exit(self, code: int, reason: str) -> None:
        """End this child with ``code`` (1, 2, 4 stop the whole daemon)."""
        self._runner.finish(code, reason)


class _ChildRunner:
    def __init__(self, spec: ChildSpec, loop: Loop, sock: socket.socket) -> None:
        self.spec = spec
        self.loop = loop
        self.title = ROLE_TITLES.get(spec.role, spec.role)
        self.subsystem: Subsystem | None = None
        self.exit_code: int | None = None
        self.stopping = False
        self._status_timer: Timer | None = None
        self._last_status = 0.0
        self._stop_timer: Timer | None = None
        self.channel = Channel(loop, sock, self._on_message, self._on_channel_closed)

    # -- parent messages --------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        op = msg.get("op")
        if op == "hello":
            self.channel.send({"op": "hello", "seq": msg.get("seq"), "t": msg.get("t")})
        elif op == "status?":
            self._send_status(request=msg.get("id"))
        elif op == "reload":
            self._reload(msg)
        elif op == "dump":
            self._dump(signal.SIGUSR1)
        else:
            log.debug("%s child: unknown message %r", self.title, op)

    def _on_channel_closed(self) -> None:
        if self.exit_code is None and not self.stopping:
            log.warning("%s child: lost the parent's channel; stopping", self.title)
            self.stop()

    def _reload(self, msg: Message) -> None:
        sub = self.subsystem
        ok, error = True, None
        if sub is None or self.stopping:
            ok, error = False, "not running"
        else:
            config = msg["config"]
            self.spec.config = config
            self.spec.facts = facts = msg.get("facts") or facts_of(config)
            os.umask(effective_umask(self.spec.options, facts))
            if self.spec.role in facts.process_names:
                set_process_name(facts.process_names[self.spec.role])
            fastka_log.reopen_files()
            try:
                sub.reload(config)
            except Exception as exc:
                log.exception("%s child: reload failed", self.title)
                ok, error = False, f"{type(exc).__name__}: {exc}"
        self.channel.send({"op": "reloaded", "id": msg.get("id"), "ok": ok, "error": error})
        self.schedule_status()

    # -- status -----------------------------------------------------------------------

    def schedule_status(self, delay: float = 0.0) -> None:
        if self._status_timer is not None and self._status_timer.active:
            return
        when = max(self.loop.time() + delay, self._last_status + STATUS_MIN_INTERVAL)
        self._status_timer = self.loop.call_at(when, self._send_status)

    def _send_status(self, request: Any = None) -> None:
        sub = self.subsystem
        if sub is None:
            return
        try:
            section = dict(sub.status())
            checkpoint = sub.checkpoint()
        except Exception:
            log.exception("%s child: status() failed", self.title)
            return
        self._last_status = self.loop.time()
        self.channel.send(
            {"op": "status", "id": request, "status": section, "checkpoint": checkpoint, "time": time.time()}
        )

    # -- signals ----------------------------------------------------------------------

    def install_signals(self) -> None:
        loop = self.loop
        loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal)
        if self.spec.options.ignore_sigint:
            _ignore(signal.SIGINT)
        else:
            loop.add_signal_handler(signal.SIGINT, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        loop.add_signal_handler(signal.SIGUSR1, self._dump)
        if self.spec.role == "vrrp":
            loop.add_signal_handler(signal.SIGUSR2, self._dump)
            loop.add_signal_handler(SIGSTATS_CLEAR, self._dump)
            loop.add_signal_handler(SIGJSON, self._dump)
        else:
            # Keepalived's checker has no USR2/JSON handler; never let one kill it.
            for signum in (signal.SIGUSR2, SIGSTATS_CLEAR, SIGJSON):
                _ignore(signum)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            _default_while_blocked(signum)
        if self.spec.role == "vrrp":
            for signum in (signal.SIGUSR2, SIGSTATS_CLEAR, SIGJSON):
                _default_while_blocked(signum)

    def _on_stop_signal(self, signum: int) -> None:
        self.stop()

    def _on_hup(self, signum: int) -> None:
        log.info(
            "%s child: SIGHUP ignored; send it to the parent (pid %d) to reload", self.title, os.getppid()
        )

    def _dump(self, signum: int) -> None:
        sub = self.subsystem
        if sub is None:
            return
        facts = self.spec.facts
        role = self.spec.role
        try:
            if signum == signal.SIGUSR1:
                log.info("Printing %s data for process(%d) on signal", self.title, os.getpid())
                text = sub.dump()
                if self.spec.mem_check:
                    report = memcheck.report(role)
                    memcheck.log_report(role, text=report)
                    text += "\n" + report
                status.atomic_write(status.dump_path("data", role, facts.state_dump_file), text)
            elif signum in (signal.SIGUSR2, SIGSTATS_CLEAR):
                log.info("Printing %s stats for process(%d) on signal", self.title, os.getpid())
                text = sub.stats(signum == SIGSTATS_CLEAR)
                status.atomic_write(status.dump_path("stats", role, facts.stats_dump_file), text)
            elif signum == SIGJSON:
                log.info("Printing %s as json for process(%d) on signal", self.title, os.getpid())
                doc = sub.json_dump()
                status.atomic_write(status.dump_path("json", role, facts.json_dump_file), status.to_json(doc))
        except OSError as exc:
            log.error("%s child: cannot write the dump: %s", self.title, exc)
        except Exception:
            log.exception("%s child: dump failed", self.title)

    # -- life ---------------------------------------------------------------------------

    def stop(self) -> None:
        if self.stopping or self.exit_code is not None:
            return
        self.stopping = True
        sub = self.subsystem
        if sub is None:
            self.finish(ExitCode.OK, "stopped")
            return
        # Leave a margin before the parent's child_wait_time SIGKILL.
        timeout = max(0.5, self.spec.facts.child_wait_time - 0.5)
        self._stop_timer = self.loop.call_later(timeout, self._stop_timeout, timeout)
        try:
            sub.stop(lambda: self.finish(ExitCode.OK, "stopped"))
        except Exception:
            log.exception("%s child: stop failed", self.title)
            self.finish(ExitCode.OK, "stopped (stop failed)")

    def _stop_timeout(self, timeout: float) -> None:
        log.warning("%s child: graceful stop did not finish within %.1f s; exiting", self.title, timeout)
        self.finish(ExitCode.OK, "stop timed out")

    def finish(self, code: int, reason: str) -> None:
        if self.exit_code is not None:
            return
        self.exit_code = code
        log.debug("%s child: finishing (%s), exit %d", self.title, reason, code)
        if self._stop_timer is not None:
            self._stop_timer.cancel()
        self.loop.stop()


def _ignore(signum: int) -> None:
    signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])


def _default_while_blocked(signum: int) -> None:
    """A signal read through signalfd must not be SIG_IGN: an ignored signal is discarded
    when sent, before signalfd could see it. Blocked, SIG_DFL never runs."""
    signal.signal(signum, signal.SIG_DFL)


def set_pdeathsig(signum: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def set_title(title: str) -> None:
    try:
        import setproctitle
    except ImportError:  # optional at run time; ps then shows the parent's command line
        return
    setproctitle.setproctitle(title)


def close_inherited_fds(keep: set[int]) -> None:
    """Close every descriptor above 2 except ``keep`` (what the parent had open)."""
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 20)


def run_child(spec: ChildSpec, sock: socket.socket) -> int:
    """The body of a child process right after fork; returns its exit code.

    The caller has already made the parent's Python objects forget their descriptors
    (they are closed here wholesale) and must ``os._exit()`` with the result: a child
    never returns into the parent's code.
    """
    # Die with the parent: SIGTERM, so that a VRRP child still cleans up (priority 0,
    # VIPs removed) and the peer takes over at once.
    set_pdeathsig(signal.SIGTERM)
    if os.getppid() != spec.parent_pid:
        return ExitCode.OK  # the parent died before we could ask
    root = logging.getLogger("fastka")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        with contextlib.suppress(Exception):
            handler.close()
    close_inherited_fds({sock.fileno()})
    systemd.forget()
    # Dispositions the parent set (Keepalived ignores SIGPIPE everywhere).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    set_title(f"fastka: {spec.role}")
    if spec.role in spec.facts.process_names:
        set_process_name(spec.facts.process_names[spec.role])
    fastka_log.setup_for(spec.options, spec.role)
    title = ROLE_TITLES.get(spec.role, spec.role)

    pid_file = PidFile(spec.pid_file)
    try:
        pid_file.acquire()
    except AlreadyRunning as exc:
        log.error("%s child: pid file %s is held by pid %s", title, exc.path, exc.pid)
        return ExitCode.FATAL
    except OSError as exc:
        log.error("%s child: cannot write pid file %s: %s", title, spec.pid_file, exc)
        return ExitCode.FATAL

    from fastka.loop import Loop

    loop = Loop()
    runner = _ChildRunner(spec, loop, sock)
    code: int = ExitCode.OK
    try:
        runner.install_signals()
        if spec.mem_check:
            memcheck.start()
        modules_before = set(sys.modules) if log.isEnabledFor(logging.DEBUG) else None
        try:
            sub = spec.factory()
            runner.subsystem = sub
            sub.start(ChildContext(runner), spec.config)
        except ConfigError as exc:
            log.error("%s child: configuration error: %s", title, exc)
            runner.exit_code = ExitCode.CONFIG
        except PermissionError as exc:
            log.error("%s child: missing permission: %s", title, exc)
            runner.exit_code = ExitCode.MISSING_PERMISSION
        except Exception:
            log.error("%s child: start failed:\n%s", title, traceback.format_exc().rstrip())
            runner.exit_code = ExitCode.PROGRAM_ERROR
        if runner.exit_code is not None:
            return runner.exit_code
        if modules_before is not None:
            # Modules imported here were not preloaded by the parent (daemon.PRELOADS).
            new = sorted({m.partition(".")[0] for m in set(sys.modules) - modules_before})
            log.debug(
                "%s child: started %.0f ms after the fork; imported meanwhile: %s",
                title,
                (time.monotonic() - spec.forked_at) * 1e3,
                ", ".join(new) or "nothing",
            )
        runner.channel.send({"op": "started", "pid": os.getpid(), "incarnation": spec.incarnation})
        runner.schedule_status(FIRST_STATUS_DELAY)
        if runner.exit_code is None:
            loop.run()
        code = runner.exit_code if runner.exit_code is not None else ExitCode.OK
        if spec.mem_check:
            memcheck.log_report(spec.role, final=True)
        log.info("Stopped %s child process", title)
        return code
    finally:
        pid_file.release()
        with contextlib.suppress(Exception):
            runner.channel.close()
        with contextlib.suppress(Exception):
            loop.close()
        logging.shutdown()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
