"""fastka's command line: Keepalived's options, spelled and parsed as Keepalived does.

Keepalived parses with ``getopt_long``: short options may be clustered (``-nlD``), a
required argument may be attached or separate (``-fFILE``, ``-f FILE``), an *optional*
argument is taken only when attached (``-gFILE``, ``--log-file=FILE``; ``-t /x.conf``
is ``-t`` followed by a stray argument), long options may be abbreviated to any unique
prefix, and non-option arguments are permuted to the end. argparse differs on the last
three points, so this module carries a small getopt_long of its own; whatever starts
``keepalived`` with some arguments can start ``fastka`` with the same ones.

Sub-commands that Keepalived does not have (``fastka lab``, ``fastka status``) are
chosen by the first argument.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from fastka._version import __version__

DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"


class ExitCode:
    """Keepalived's exit codes (lib/scheduler.h; reference cli.md §6)."""

    OK = 0
    FATAL = 1
    CONFIG = 2
    MISSING_PERMISSION = 4
    NO_CONFIG = 6
    PROGRAM_ERROR = 70
    NO_MEMORY = 204


class ConfigTestExit:
    """``--config-test`` exit codes: the highest severity reported wins (cli.md §6)."""

    OK = 0
    FILE_NOT_FOUND_OR_FATAL = 4
    ERROR = 5
    SCRIPT_SECURITY = 6


class Arg(Enum):
    NONE = 0
    REQUIRED = 1
    OPTIONAL = 2


@dataclass(frozen=True)
class OptSpec:
    dest: str
    short: str | None
    long: str | None
    arg: Arg
    help: str


# One row per option, in Keepalived's --help order; ``dest`` names the Options field.
OPTIONS: tuple[OptSpec, ...] = (
    OptSpec("config_file", "f", "use-file", Arg.REQUIRED, "use the specified configuration file"),
    OptSpec("vrrp_only", "P", "vrrp", Arg.NONE, "only run with VRRP subsystem"),
    OptSpec("check_only", "C", "check", Arg.NONE, "only run with Health-checker subsystem"),
    OptSpec("no_bfd", "B", "no_bfd", Arg.NONE, "don't run BFD subsystem"),
    OptSpec("all_children", None, "all", Arg.NONE, "force all child processes to run"),
    OptSpec("log_console", "l", "log-console", Arg.NONE, "log messages to local console"),
    OptSpec("log_detail", "D", "log-detail", Arg.NONE, "detailed log messages"),
    OptSpec("log_facility", "S", "log-facility", Arg.REQUIRED, "0-7 set syslog facility"),
    OptSpec("log_file", "g", "log-file", Arg.OPTIONAL, "also log to a file (default /tmp/keepalived.log)"),
    OptSpec("flush_log_file", None, "flush-log-file", Arg.NONE, "flush log file on write"),
    OptSpec("no_syslog", "G", "no-syslog", Arg.NONE, "don't log via syslog"),
    OptSpec("umask", "u", "umask", Arg.REQUIRED, "umask for file creation"),
    OptSpec("release_vips", "X", "release-vips", Arg.NONE, "drop VIP on transition from signal"),
    OptSpec(
        "dont_release_vrrp",
        "V",
        "dont-release-vrrp",
        Arg.NONE,
        "don't remove VRRP VIPs and VROUTEs on daemon stop",
    ),
    OptSpec(
        "dont_release_ipvs", "I", "dont-release-ipvs", Arg.NONE, "don't remove IPVS topology on daemon stop"
    ),
    OptSpec("dont_respawn", "R", "dont-respawn", Arg.NONE, "don't respawn child processes"),
    OptSpec("dont_fork", "n", "dont-fork", Arg.NONE, "don't fork the daemon process"),
    # -d takes no argument (so -dn stays two flags); the long form may say =json.
    OptSpec("dump_conf", "d", None, Arg.NONE, "dump the configuration data"),
    OptSpec("dump_conf", None, "dump-conf", Arg.OPTIONAL, "dump the configuration data (=json for JSON)"),
    OptSpec("pid_file", "p", "pid", Arg.REQUIRED, "use specified pidfile for parent process"),
    OptSpec("vrrp_pid_file", "r", "vrrp_pid", Arg.REQUIRED, "use specified pidfile for VRRP child process"),
    OptSpec(
        "checkers_pid_file",
        "c",
        "checkers_pid",
        Arg.REQUIRED,
        "use specified pidfile for checkers child process",
    ),
    OptSpec("bfd_pid_file", "b", "bfd_pid", Arg.REQUIRED, "use specified pidfile for BFD child process"),
    OptSpec(
        "genhash",
        "T",
        "genhash",
        Arg.NONE,
        "enter genhash utility mode (this should be the first option used)",
    ),
    OptSpec(
        "address_monitoring",
        "a",
        "address-monitoring",
        Arg.NONE,
        "report all address additions/deletions notified via netlink",
    ),
    OptSpec("namespace", "s", "namespace", Arg.REQUIRED, "run in network namespace NAME (overrides config)"),
    OptSpec(
        "all_config",
        "e",
        "all-config",
        Arg.NONE,
        "error if any configuration file missing (same as include_check)",
    ),
    OptSpec(
        "config_id",
        "i",
        "config-id",
        Arg.REQUIRED,
        "skip any configuration lines beginning '@' that don't match id",
    ),
    OptSpec("snmp", "x", "snmp", Arg.NONE, "enable SNMP subsystem"),
    OptSpec(
        "snmp_agent_socket",
        "A",
        "snmp-agent-socket",
        Arg.REQUIRED,
        "use the specified socket for master agent",
    ),
    OptSpec("core_dump", "m", "core-dump", Arg.NONE, "produce core dump if terminate abnormally"),
    OptSpec(
        "core_dump_pattern",
        "M",
        "core-dump-pattern",
        Arg.OPTIONAL,
        "also set /proc/sys/kernel/core_pattern to PATN (default 'core')",
    ),
    OptSpec(
        "signum",
        None,
        "signum",
        Arg.REQUIRED,
        "report signal number for STOP, RELOAD, DATA, STATS, STATS_CLEAR, JSON",
    ),
    OptSpec(
        "config_test",
        "t",
        "config-test",
        Arg.OPTIONAL,
        "check the configuration for obvious errors, output to stderr by default",
    ),
    OptSpec(
        "config_fd",
        None,
        "config-fd",
        Arg.REQUIRED,
        "(internal) read the configuration from this file descriptor",
    ),
    OptSpec("ignore_sigint", None, "ignore-sigint", Arg.NONE, "ignore SIGINT (for running under a debugger)"),
    OptSpec("perf", None, "perf", Arg.OPTIONAL, "perf recording (accepted and ignored)"),
    OptSpec("debug", None, "debug", Arg.OPTIONAL, "debug switches (accepted and ignored)"),
    OptSpec("no_mem_check", None, "no-mem-check", Arg.NONE, "disable malloc() etc mem-checks"),
    OptSpec("mem_check_log", "L", "mem-check-log", Arg.NONE, "log malloc/frees to syslog"),
    OptSpec(
        "mem_check", None, "mem-check", Arg.NONE, "fastka: track allocations and report what was not freed"
    ),
    OptSpec(
        "status_socket", None, "status-socket", Arg.REQUIRED, "fastka: serve the status on this unix socket"
    ),
    OptSpec(
        "status_http", None, "status-http", Arg.REQUIRED, "fastka: serve the status on [HOST:]PORT (HTTP)"
    ),
    OptSpec(
        "status_file", None, "status-file", Arg.REQUIRED, "fastka: write the status to FILE on every change"
    ),
    OptSpec(
        "log_level",
        None,
        "log-level",
        Arg.REQUIRED,
        "fastka: minimum log level (debug, info, notice, warning, error)",
    ),
    OptSpec("version", "v", "version", Arg.NONE, "display version number"),
    OptSpec("help", "h", "help", Arg.NONE, "display this help message"),
)

_BY_SHORT = {o.short: o for o in OPTIONS if o.short}
_BY_LONG = {o.long: o for o in OPTIONS if o.long}


@dataclass
class Options:
    """The parsed command line. Defaults are Keepalived's (code defaults, not the man page)."""

    config_file: str = DEFAULT_CONFIG
    vrrp_only: bool = False
    check_only: bool = False
    no_bfd: bool = False
    all_children: bool = False
    log_console: bool = False
    log_detail: int = 0
    log_facility: str = "daemon"
    log_file: str | None = None
    flush_log_file: bool = False
    no_syslog: bool = False
    umask: int | None = None
    release_vips: bool = False
    dont_release_vrrp: bool = False
    dont_release_ipvs: bool = False
    dont_respawn: bool = False
    dont_fork: bool = False
    dump_conf: str | None = None  # None = no dump; "" = text; "json"
    pid_file: str = "/run/keepalived.pid"
    vrrp_pid_file: str = "/run/vrrp.pid"
    checkers_pid_file: str = "/run/checkers.pid"
    bfd_pid_file: str = "/run/bfd.pid"
    genhash: bool = False
    address_monitoring: bool = False
    namespace: str | None = None
    all_config: bool = False
    config_id: str | None = None
    snmp: bool = False
    snmp_agent_socket: str | None = None
    core_dump: bool = False
    core_dump_pattern: str | None = None
    signum: str | None = None
    config_test: str | None = None  # None = not testing; "" = stderr; else log file
    config_fd: int | None = None
    ignore_sigint: bool = False
    perf: str | None = None
    debug: str | None = None
    no_mem_check: bool = False
    mem_check_log: bool = False
    mem_check: bool = False
    log_level: str | None = None
    status_socket: str | None = None
    status_http: str | None = None
    status_file: str | None = None
    version: bool = False
    help: bool = False
    # Which options were given explicitly (pid file defaults depend on config otherwise).
    given: set[str] = field(default_factory=set)
    extra_args: list[str] = field(default_factory=list)

    @property
    def effective_config_id(self) -> str:
        """``-i`` or, as Keepalived, the host name up to the first dot."""
        return self.config_id or os.uname().nodename.split(".", 1)[0]


class UsageError(Exception):
    """A command line Keepalived would refuse (exit 1)."""


def _store(opts: Options, spec: OptSpec, value: str | None) -> None:
    opts.given.add(spec.dest)
    if spec.arg is Arg.NONE:
        if spec.dest == "log_detail":
            opts.log_detail += 1
        elif spec.dest == "dump_conf":
            opts.dump_conf = ""
        else:
            setattr(opts, spec.dest, True)
        return
    if spec.dest == "umask":
        # Keepalived reads it with strtoul(.., 0): 0x.. hex, 0.. octal ("-u 022"), else decimal.
        text = (value or "").strip().lower()
        try:
            if text.startswith("0x"):
                opts.umask = int(text[2:], 16)
            else:
                opts.umask = int(text[1:] or "0", 8) if text.startswith("0") else int(text, 10)
        except ValueError:
            raise UsageError(f"Invalid umask {value}") from None
        if not 0 <= opts.umask <= 0o777:
            raise UsageError(f"Invalid umask {value}")
        return
    if spec.dest == "config_fd":
        try:
            opts.config_fd = int(value or "")
        except ValueError:
            raise UsageError(f"Invalid config-fd {value}") from None
        return
    if spec.arg is Arg.OPTIONAL and value is None:
        defaults = {"log_file": "/tmp/keepalived.log", "core_dump_pattern": "core"}
        value = defaults.get(spec.dest, "")
    setattr(opts, spec.dest, value)


def _match_long(name: str) -> OptSpec:
    if name in _BY_LONG:
        return _BY_LONG[name]
    candidates = [spec for long, spec in _BY_LONG.items() if long.startswith(name)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UsageError(f"Unknown option --{name}")
    raise UsageError(f"Option '--{name}' is ambiguous")


def parse_args(argv: Sequence[str]) -> Options:
    """Parse Keepalived's command line (without the program name)."""
    opts = Options()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            opts.extra_args.extend(args[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            spec = _match_long(name)
            if spec.arg is Arg.NONE:
                if eq:
                    raise UsageError(f"Option '--{spec.long}' doesn't allow an argument")
                _store(opts, spec, None)
            elif spec.arg is Arg.REQUIRED:
                if not eq:
                    if i >= len(args):
                        raise UsageError(f"Missing parameter for option --{spec.long}")
                    value = args[i]
                    i += 1
                _store(opts, spec, value)
            else:
                _store(opts, spec, value if eq else None)
            continue
        if arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                ch = arg[j]
                j += 1
                short = _BY_SHORT.get(ch)
                if short is None:
                    raise UsageError(f"Unknown option -{ch}")
                if short.arg is Arg.NONE:
                    _store(opts, short, None)
                    continue
                attached = arg[j:]
                if short.arg is Arg.REQUIRED and not attached:
                    if i >= len(args):
                        raise UsageError(f"Missing parameter for option -{ch}")
                    attached = args[i]
                    i += 1
                _store(opts, short, attached or None)
                break
            continue
        opts.extra_args.append(arg)
    if opts.config_test is not None:
        # -t implies: no fork, no respawn, no syslog (cli.md §2).
        opts.dont_fork = opts.dont_respawn = opts.no_syslog = True
    return opts


def usage(prog: str = "fastka") -> str:
    lines = [f"Usage: {prog} [OPTION...]", f"       {prog} lab [--help]", ""]
    for spec in OPTIONS:
        names = []
        if spec.short:
            names.append(f"-{spec.short}")
        if spec.long:
            suffix = {Arg.NONE: "", Arg.REQUIRED: " ARG", Arg.OPTIONAL: "[=ARG]"}[spec.arg]
            names.append(f"--{spec.long}{suffix}")
        lines.append(f"  {', '.join(names):34} {spec.help}")
    return "\n".join(lines) + "\n"


# --signum: the signal Keepalived uses for each function (glibc numbering, cli.md §3).
SIGNAL_FUNCTIONS: dict[str, int] = {
    "STOP": int(signal.SIGTERM),
    "RELOAD": int(signal.SIGHUP),
    "DATA": int(signal.SIGUSR1),
    "STATS": int(signal.SIGUSR2),
    "STATS_CLEAR": int(signal.SIGRTMAX) - 1,
    "JSON": int(signal.SIGRTMIN) + 2,
}


def _subcommands() -> dict[str, Callable[[list[str]], int]]:
    def lab(argv: list[str]) -> int:
        from fastka import lab as lab_mod

        return lab_mod.main(argv)

    def status(argv: list[str]) -> int:
        from fastka import status as status_mod

        return status_mod.main(argv)

    return {"lab": lab, "status": status}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastka`` command; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in _subcommands():
        return _subcommands()[args[0]](args[1:])
    if args and args[0] in ("-T", "--genhash"):
        from fastka.check import genhash

        return genhash.main(args[1:])
    try:
        opts = parse_args(args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return ExitCode.FATAL
    if opts.help:
        sys.stderr.write(usage())
        return ExitCode.OK
    if opts.version:
        sys.stderr.write(f"fastka v{__version__} (Keepalived-compatible)\n")
        return ExitCode.OK
    if opts.signum is not None:
        number = SIGNAL_FUNCTIONS.get(opts.signum)
        if number is None:
            print(f"Unknown sigfunc {opts.signum}", file=sys.stderr)
            return ExitCode.FATAL
        print(number)
        return ExitCode.OK
    if opts.extra_args:
        print(f"Unexpected argument(s): {' '.join(opts.extra_args)}", file=sys.stderr)
    if opts.config_test is not None:
        from fastka.config import check

        return check.run_config_test(opts)
    from fastka import daemon

    return daemon.run(opts)
