"""Run a real fastka (parent + forked children) with the dummy subsystem, in a temp dir.

Everything a test can observe lives in the temp dir: pid files (``-p/-r/-c``), the status
socket, dump files (``TMPDIR``), the dummy's event log, the daemon's console log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastka.pidfile import read_pid
from fastka.status import fetch

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "dummy_subsystem.py"

DEFAULT_CONFIG: dict[str, Any] = {
    "vrrp": {"VI_1": {"state": "MASTER", "priority": 100}},
    "checker": {"VS_1": {"up": True}},
    "global_defs": {"child_wait_time": 2},
}


def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            last = predicate()
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class Fastka:
    def __init__(
        self, tmp: Path, config: dict[str, Any] | None = None, args: list[str] | None = None
    ) -> None:
        self.tmp = tmp
        self.conf = tmp / "fastka.json"
        self.pid_files = {
            "parent": tmp / "fastka.pid",
            "vrrp": tmp / "vrrp.pid",
            "checker": tmp / "checkers.pid",
        }
        self.socket = tmp / "status.sock"
        self.events_file = tmp / "events"
        self.console = tmp / "console.log"
        self.extra_args = list(args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_config(DEFAULT_CONFIG if config is None else config)

    # -- configuration ----------------------------------------------------------------

    def write_config(self, config: dict[str, Any] | str) -> None:
        text = config if isinstance(config, str) else json.dumps(config)
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.conf)

    def argv(self, *, foreground: bool = True) -> list[str]:
        args = [sys.executable, str(RUNNER), "-l", "-G", "-D", "-f", str(self.conf)]
        if foreground:
            args.append("-n")
        args += ["-p", str(self.pid_files["parent"]), "-r", str(self.pid_files["vrrp"])]
        args += ["-c", str(self.pid_files["checker"]), "--status-socket", str(self.socket)]
        return args + self.extra_args

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.update(TMPDIR=str(self.tmp), FASTKA_DUMMY_LOG=str(self.events_file), PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    # -- process ----------------------------------------------------------------------

    def start(self, *, wait: bool = True, roles: tuple[str, ...] = ("vrrp", "checker"), **env: str) -> Fastka:
        out = open(self.console, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=subprocess.STDOUT, env=self.env(**env)
            )
        finally:
            out.close()
        if wait:
            self.wait_running(roles)
        return self

    def wait_running(
        self, roles: tuple[str, ...] = ("vrrp", "checker"), timeout: float = 15.0
    ) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"fastka exited with {self.proc.returncode}:\n{self.log()}")
            doc = self.status()
            children = doc["children"]
            running = all(children.get(r, {}).get("state") == "running" for r in roles)
            return doc if running and all(doc.get(r) is not None for r in roles) else None

        result: dict[str, Any] = wait_for(ready, timeout, what=f"children {roles} running")
        return result

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def child_pid(self, role: str) -> int | None:
        return read_pid(str(self.pid_files[role]))

    def kill(self, sig: int, role: str = "parent") -> None:
        pid = self.pid if role == "parent" else self.child_pid(role)
        assert pid, f"no pid for {role}"
        os.kill(pid, sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> int | None:
        """TERM and wait; SIGKILL whatever is left (used in teardown)."""
        if self.proc is None:
            return None
        children = [self.child_pid(r) for r in ("vrrp", "checker")]
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
                self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in children:
            if pid and alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return self.proc.returncode

    # -- observation ------------------------------------------------------------------

    def get(self, path: str) -> str:
        return fetch(path, unix_socket=str(self.socket), timeout=5.0)

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.get("/status"))
        return doc

    def events(self) -> list[list[str]]:
        try:
            text = self.events_file.read_text()
        except FileNotFoundError:
            return []
        return [line.split(" ", 4) for line in text.splitlines() if line]

    def log(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""
