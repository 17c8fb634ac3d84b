"""MISC_CHECK (behaviour.md §C1): run a script through ``loop.spawn``.

Exit 0 = up, anything else = down. With ``misc_dynamic``: 1 = down, 2..255 = up with the
real server's weight set to ``status - 2``. After ``misc_timeout`` (default
``delay_loop``) the script's process group gets SIGTERM and, 2 s later, SIGKILL; a timed
out script counts as a failure. Output goes to /dev/null, as Keepalived's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

from fastka.check.base import Done, LoopLike, Result
from fastka.check.spec import MiscParams

KILL_GRACE = 2.0


class MiscProbe:
    __slots__ = ("_done", "_timer", "creds", "loop", "params", "pid", "timeout")

    def __init__(
        self, loop: LoopLike, params: MiscParams, timeout: float, creds: tuple[int, int] | None = None
    ) -> None:
        self.loop = loop
        self.params = params
        self.timeout = timeout
        self.creds = creds
        self.pid = 0
        self._done: Done | None = None
        self._timer: Any = None

    def start(self, step: int, done: Done, now: float | None = None) -> None:
        self._done = done
        try:
            self.pid = self.loop.spawn(
                list(self.params.script.argv),
                self._exited,
                uid=self.creds[0] if self.creds else None,
                gid=self.creds[1] if self.creds else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            self._finish(Result(False, f"cannot run {self.params.script.text}: {exc.strerror or exc}"))
            return
        self._timer = self.loop.call_later(self.timeout, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        self._abandon()
        self._finish(Result(False, "timeout"))

    def _abandon(self) -> None:
        """Stop waiting for the current script: SIGTERM its group now, SIGKILL later."""
        pid, self.pid = self.pid, 0
        if pid:
            _killpg(pid, signal.SIGTERM)
            self.loop.call_later(KILL_GRACE, _killpg, pid, signal.SIGKILL)

    def _exited(self, pid: int, status: int) -> None:
        if pid != self.pid:
            return  # a script we gave up on
        self.pid = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._finish(self.verdict(status))

    def verdict(self, status: int) -> Result:
        if status < 0:
            return Result(False, f"killed by signal {-status}")
        if not self.params.dynamic:
            return Result(status == 0, f"exit status {status}")
        if status == 0:
            return Result(True)
        if status == 1:
            return Result(False, "exit status 1")
        return Result(True, f"exit status {status}", weight=status - 2)

    def _finish(self, result: Result) -> None:
        done = self._done
        self._done = None
        if done is not None:
            done(result)

    def cancel(self) -> None:
        self._done = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._abandon()


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
