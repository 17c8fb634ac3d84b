"""Checker-side notifications: notify_up/down and quorum scripts, LVS FIFO lines.

FIFO lines follow Keepalived's ``notify_fifo_vs/rs()`` (cli.md §4.3)::

    VS [192.168.201.15]:tcp:80 UP
    RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN

each written with ``\\n`` **and a trailing NUL byte**, as Keepalived's LVS writer passes
the string size including its terminator to ``write()``. Writes are non-blocking; a full
FIFO drops the line (EAGAIN), as Keepalived.

Scripts get only their configured argv (cli.md §4.4), run as the script user (per-script
user, else ``script_user``, else ``keepalived_script`` if it exists, else root), and with
``enable_script_security`` a script that a non-root user could modify is refused
(Keepalived's rule: the file and every directory above it must not be writable by anyone
but root or the user the script runs as).

SMTP alerts (``alert(subject, body)``; texts from :mod:`fastka.smtp`) are queued to a
:class:`fastka.smtp.Mailer` and delivered off the loop.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

from fastka.check.base import LoopLike
from fastka.check.spec import Script

# the script user, script security and FIFO helpers are shared with the VRRP side
from fastka.notify import default_script_user, open_fifo, resolve_user, script_is_secure
from fastka.smtp import Mailer, SmtpSettings

__all__ = [
    "LoopNotifier",
    "Notifier",
    "RecordingNotifier",
    "default_script_user",
    "fifo_bytes",
    "open_fifo",
    "resolve_user",
    "script_is_secure",
]

log = logging.getLogger("fastka.check")


class Notifier(Protocol):
    def run_script(self, script: Script) -> None: ...
    def fifo(self, line: str) -> None: ...
    def alert(self, subject: str, body: str) -> None: ...


class RecordingNotifier:
    """Keeps what would have been run/written (tests, dry runs)."""

    def __init__(self) -> None:
        self.scripts: list[tuple[str, ...]] = []
        self.lines: list[str] = []
        self.alerts: list[tuple[str, str]] = []

    def run_script(self, script: Script) -> None:
        self.scripts.append(script.argv)

    def fifo(self, line: str) -> None:
        self.lines.append(line)

    def alert(self, subject: str, body: str) -> None:
        self.alerts.append((subject, body))


def fifo_bytes(line: str) -> bytes:
    """One LVS FIFO record: the line, a newline and Keepalived's trailing NUL."""
    return line.encode() + b"\n\0"


class LoopNotifier:
    """Runs scripts through ``loop.spawn`` and writes the LVS FIFOs."""

    def __init__(
        self,
        loop: LoopLike,
        fifos: tuple[str, ...] = (),
        *,
        script_user: str | None = None,
        script_group: str | None = None,
        script_security: bool = False,
        fifo_script: tuple[str, Script] | None = None,
        smtp: SmtpSettings | None = None,
    ) -> None:
        self.loop = loop
        self.mailer = Mailer(smtp) if smtp is not None else None
        self.default_user = default_script_user(script_user, script_group)
        self.script_security = script_security
        self.fifo_fds: list[int] = []
        for path in fifos:
            try:
                self.fifo_fds.append(open_fifo(path))
            except OSError as exc:
                log.error("Unable to open notify FIFO %s: %s", path, exc)
        if fifo_script is not None:
            # The FIFO reader, started once with the FIFO's path appended (cli.md §4.4).
            path, script = fifo_script
            self.run_script(Script((*script.argv, path), script.user, script.group))

    def close(self) -> None:
        for fd in self.fifo_fds:
            os.close(fd)
        self.fifo_fds = []
        if self.mailer is not None:
            self.mailer.close()  # what is queued is still delivered

    def alert(self, subject: str, body: str) -> None:
        if self.mailer is not None:
            self.mailer.send(subject, body)

    def fifo(self, line: str) -> None:
        data = fifo_bytes(line)
        for fd in self.fifo_fds:
            try:
                os.write(fd, data)
            except BlockingIOError:
                pass
            except OSError as exc:
                log.warning("Write to LVS notify FIFO failed: %s", exc)

    def credentials(self, script: Script) -> tuple[int, int] | None:
        user, group = (script.user, script.group) if script.user else self.default_user
        return resolve_user(user, group)

    def run_script(self, script: Script) -> None:
        try:
            creds = self.credentials(script)
        except LookupError as exc:
            log.error("Script %s not run: %s", script.text, exc)
            return
        uid = creds[0] if creds else os.getuid()
        if self.script_security and not script_is_secure(script.argv[0], uid):
            log.warning("Script %s is insecure (writable by another user): not run", script.text)
            return

        def reaped(pid: int, status: int) -> None:
            if status:
                log.info("Script %s exited with status %d", script.text, status)

        try:
            self.loop.spawn(
                list(script.argv),
                reaped,
                uid=creds[0] if creds else None,
                gid=creds[1] if creds else None,
            )
        except OSError as exc:
            log.error("Unable to run script %s: %s", script.text, exc)
