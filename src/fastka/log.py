"""Logging for fastka: Keepalived-compatible destinations and real levels.

Levels follow syslog: transitions are logged at NOTICE (25, between INFO and WARNING),
problems at WARNING/ERROR, detail at DEBUG. The logger tree is ``fastka.<subsystem>``.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

# syslog facilities accepted by -S (keepalived: 0-7 mean local0-7).
FACILITIES = {
    **{str(i): getattr(logging.handlers.SysLogHandler, f"LOG_LOCAL{i}") for i in range(8)},
    **{f"local{i}": getattr(logging.handlers.SysLogHandler, f"LOG_LOCAL{i}") for i in range(8)},
    "user": logging.handlers.SysLogHandler.LOG_USER,
    "daemon": logging.handlers.SysLogHandler.LOG_DAEMON,
}


def get_logger(subsystem: str) -> logging.Logger:
    """The logger of one subsystem, e.g. ``get_logger("vrrp")`` -> ``fastka.vrrp``."""
    return logging.getLogger(f"fastka.{subsystem}")


def notice(logger: logging.Logger, msg: str, *args: object) -> None:
    logger.log(NOTICE, msg, *args)


def setup(
    *,
    console: bool,
    syslog: bool,
    detail: int = 0,
    facility: str = "daemon",
    ident: str = "Keepalived",
    log_file: str | None = None,
    level: int | None = None,
) -> None:
    """Install the handlers the command line asks for on the ``fastka`` logger.

    ``ident`` is the syslog ident (``Keepalived``, ``Keepalived_vrrp``,
    ``Keepalived_healthcheckers``) so that existing rsyslog filters keep matching.
    """
    root = logging.getLogger("fastka")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    if level is None:
        level = logging.DEBUG if detail else logging.INFO
    root.setLevel(level)
    root.propagate = False
    fmt = logging.Formatter("%(asctime)s %(name)s[%(process)d]: %(message)s", "%a %b %d %H:%M:%S")
    if console:
        ch = logging.StreamHandler(sys.stderr)
        ch.setFormatter(fmt)
        root.addHandler(ch)
    if log_file:
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        root.addHandler(fh)
    if syslog and os.path.exists("/dev/log"):
        try:
            sh = logging.handlers.SysLogHandler(
                address="/dev/log", facility=FACILITIES.get(facility, FACILITIES["daemon"])
            )
        except OSError:
            pass
        else:
            sh.ident = f"{ident}[{os.getpid()}]: "
            sh.setFormatter(logging.Formatter("%(message)s"))
            root.addHandler(sh)
    if not root.handlers:
        root.addHandler(logging.NullHandler())
