"""Logging for fastka: Keepalived-compatible destinations and real levels.

Levels follow syslog, where Keepalived logs nearly everything at INFO (#1866): state
transitions at NOTICE (25), problems at WARNING/ERROR, routine events at INFO, the extra
detail Keepalived prints with ``-D`` at DETAIL (15) and per-event tracing at DEBUG behind
``isEnabledFor``. ``-D`` lowers the threshold to DETAIL, ``-DD`` to DEBUG, ``--log-level``
sets it outright. The logger tree is ``fastka.<subsystem>``.

Destinations are Keepalived's: syslog (unless ``-G``) with the idents ``Keepalived``,
``Keepalived_vrrp`` and ``Keepalived_healthcheckers`` (plus ``_NAMESPACE`` with ``-s``) so
that existing rsyslog filters keep matching (USERS.md §1.8), facility from ``-S``; the
console with ``-l`` (Keepalived's ``date: message`` lines); a file with ``-g[FILE]``, where
each child writes its own file, ``_vrrp``/``_healthcheckers`` inserted before the last dot.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging.handlers

    from fastka.cli import Options

NOTICE = 25
DETAIL = 15
logging.addLevelName(NOTICE, "NOTICE")
logging.addLevelName(DETAIL, "DETAIL")

LEVELS = {
    "debug": logging.DEBUG,
    "detail": DETAIL,
    "info": logging.INFO,
    "notice": NOTICE,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# syslog facilities accepted by -S (Keepalived: 0-7 mean local0-7); syslog.h's numbers, so
# that logging.handlers (pickle, queue, threading ...) is imported only when syslog is used.
_LOG_USER, _LOG_DAEMON, _LOG_LOCAL0 = 1, 3, 16
FACILITIES = {
    **{str(i): _LOG_LOCAL0 + i for i in range(8)},
    **{f"local{i}": _LOG_LOCAL0 + i for i in range(8)},
    "user": _LOG_USER,
    "daemon": _LOG_DAEMON,
}

# Per process role: syslog ident and the suffix of its -g log file (Keepalived's names).
IDENTS = {"parent": "Keepalived", "vrrp": "Keepalived_vrrp", "checker": "Keepalived_healthcheckers"}
FILE_SUFFIXES = {"parent": "", "vrrp": "_vrrp", "checker": "_healthcheckers"}


def get_logger(subsystem: str) -> logging.Logger:
    """The logger of one subsystem, e.g. ``get_logger("vrrp")`` -> ``fastka.vrrp``."""
    return logging.getLogger(f"fastka.{subsystem}")


def notice(logger: logging.Logger, msg: str, *args: object) -> None:
    logger.log(NOTICE, msg, *args)


def detail(logger: logging.Logger, msg: str, *args: object) -> None:
    logger.log(DETAIL, msg, *args)


def parse_level(name: str) -> int:
    """``--log-level`` value -> logging level; ValueError for an unknown name."""
    key = name.strip().lower()
    if key in LEVELS:
        return LEVELS[key]
    if key.isdigit():
        return int(key)
    raise ValueError(f"unknown log level {name!r} (one of {', '.join(LEVELS)})")


def role_log_file(path: str, role: str) -> str:
    """The -g file of one process: ``/var/log/k.log`` -> ``/var/log/k_vrrp.log`` for VRRP."""
    suffix = FILE_SUFFIXES.get(role, f"_{role}")
    if not suffix:
        return path
    head, base = os.path.split(path)
    stem, dot, ext = base.rpartition(".")
    new = f"{stem}{suffix}.{ext}" if dot and stem else f"{base}{suffix}"
    return os.path.join(head, new)


def syslog_handler(address: str | tuple[str, int], facility: int) -> logging.handlers.SysLogHandler:
    """A SysLogHandler that knows NOTICE and DETAIL (the stock one maps them to warning)."""
    import logging.handlers

    class SysLogHandler(logging.handlers.SysLogHandler):
        def mapPriority(self, levelName: str) -> str:
            return {"NOTICE": "notice", "DETAIL": "info"}.get(levelName) or super().mapPriority(levelName)

    return SysLogHandler(address=address, facility=facility)


class _ConsoleFormatter(logging.Formatter):
    """Keepalived's console and file lines: ``Thu Nov 26 01:01:42 2026: message``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(record.created))


def setup(
    *,
    console: bool,
    syslog: bool,
    detail: int = 0,
    facility: str = "daemon",
    ident: str = "Keepalived",
    log_file: str | None = None,
    level: int | None = None,
    namespace: str | None = None,
) -> None:
    """Install the handlers the command line asks for on the ``fastka`` logger.

    Called once in the parent and again in each child right after fork (the old handlers
    are closed first; closing them in a child does not affect the parent's copies).
    """
    root = logging.getLogger("fastka")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    if level is None:
        level = {0: logging.INFO, 1: DETAIL}.get(detail, logging.DEBUG)
    root.setLevel(level)
    root.propagate = False
    fmt = _ConsoleFormatter("%(asctime)s: %(message)s")
    if console:
        ch = logging.StreamHandler(sys.stderr)
        ch.setFormatter(fmt)
        root.addHandler(ch)
    if log_file:
        try:
            fh = logging.FileHandler(log_file)
        except OSError as exc:
            print(f"Unable to open log file {log_file}: {exc.strerror}", file=sys.stderr)
        else:
            fh.setFormatter(fmt)
            root.addHandler(fh)
    if syslog and os.path.exists("/dev/log"):
        try:
            sh = syslog_handler("/dev/log", FACILITIES.get(facility, FACILITIES["daemon"]))
        except OSError:
            pass
        else:
            full_ident = f"{ident}_{namespace}" if namespace else ident
            sh.ident = f"{full_ident}[{os.getpid()}]: "
            sh.setFormatter(logging.Formatter("%(message)s"))
            root.addHandler(sh)
    if not root.handlers:
        root.addHandler(logging.NullHandler())


def setup_for(opts: Options, role: str) -> None:
    """Logging of one process (``parent``, ``vrrp`` or ``checker``) from the command line."""
    level = parse_level(opts.log_level) if opts.log_level else None
    setup(
        console=opts.log_console,
        syslog=not opts.no_syslog,
        detail=opts.log_detail,
        facility=opts.log_facility,
        ident=IDENTS.get(role, f"Keepalived_{role}"),
        log_file=role_log_file(opts.log_file, role) if opts.log_file else None,
        level=level,
        namespace=opts.namespace,
    )


def reopen_files() -> None:
    """Reopen the -g log file (on SIGHUP, so that logrotate can move it away, #1229)."""
    for handler in logging.getLogger("fastka").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.close()
                handler.stream = handler._open()
            except OSError:
                pass
            finally:
                handler.release()
