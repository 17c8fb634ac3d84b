"""systemd's notify protocol (``sd_notify(3)``), spoken by the parent process only.

Only the parent notifies: children would need ``NotifyAccess=all`` (Keepalived #1783), so
they drop ``NOTIFY_SOCKET`` from their environment right after fork. The messages are
``READY=1`` after the first configuration load once every child runs (at once when no
child is needed, which Keepalived forgot: PR #2662), ``RELOADING=1`` with ``MONOTONIC_USEC=`` on SIGHUP (systemd
>= 253 requires the timestamp for ``Type=notify-reload``) then ``READY=1`` again,
``STOPPING=1``, free-form ``STATUS=`` and ``WATCHDOG=1`` when ``WatchdogSec=`` is set.

The library sdnotify swallows every error and has no MONOTONIC_USEC; systemd-python needs
a C build; the protocol is one datagram, so it lives here.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("fastka.systemd")


def _address() -> str | None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr or addr[0] not in "/@":
        return None
    # A leading '@' names a socket in the abstract namespace (a NUL byte on the wire).
    return "\0" + addr[1:] if addr[0] == "@" else addr


def notify(*assignments: str) -> bool:
    """Send ``KEY=VALUE`` lines to ``$NOTIFY_SOCKET``; False when not under systemd.

    A failure to send is logged at DEBUG and otherwise ignored: systemd being away must
    never stop the daemon.
    """
    address = _address()
    if address is None:
        return False
    payload = "\n".join(assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(payload, address)
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def _status(text: str | None) -> list[str]:
    # STATUS= is one line; systemd shows it in `systemctl status`.
    return [] if text is None else ["STATUS=" + " ".join(text.split())]


def ready(status: str | None = None) -> bool:
    return notify("READY=1", *_status(status))


def reloading(status: str | None = None) -> bool:
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))


def stopping(status: str | None = None) -> bool:
    return notify("STOPPING=1", *_status(status))


def status(text: str) -> bool:
    return notify(*_status(text))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """How often to send ``WATCHDOG=1`` (half of ``WatchdogSec=``), or None if not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


def forget() -> None:
    """Drop the notify variables (in a child, so that only the parent ever notifies)."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        os.environ.pop(name, None)
