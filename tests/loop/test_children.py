"""Children: spawn (clean signal state, process group, fds, user switch) and pidfd exits."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import loop_fixtures
import pytest
from loop_fixtures import require_root

impl, loop, clock, floop = loop_fixtures.fixtures()


def _wait_exit(loop: Any, got: list[Any], limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while not got and time.monotonic() < end:
        loop.run_once(0.2)
    assert got, "child exit not reported"


def _proc_status(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.strip().splitlines() if ":\t" in line)


def test_exit_status(loop: Any) -> None:
    got: list[tuple[int, int]] = []
    pid = loop.spawn(["/bin/sh", "-c", "exit 3"], lambda p, rc: got.append((p, rc)))
    _wait_exit(loop, got)
    assert got == [(pid, 3)]
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped by the loop


def test_killed_by_signal(loop: Any) -> None:
    got: list[int] = []
    loop.spawn(["sh", "-c", "kill -TERM $$"], lambda p, rc: got.append(rc))  # PATH lookup
    _wait_exit(loop, got)
    assert got == [-signal.SIGTERM]


def test_child_has_clean_signal_state_and_own_group(loop: Any) -> None:
    """The loop blocks the signals it reads through signalfd; a script must not inherit
    that mask (nor ignored dispositions such as Python's SIGPIPE)."""
    loop.add_signal_handler(signal.SIGTERM, lambda s: None)
    loop.add_signal_handler(signal.SIGCHLD, lambda s: None)
    loop.add_signal_handler(signal.SIGRTMIN + 2, lambda s: None)
    assert signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    r, w = os.pipe()
    got: list[int] = []
    try:
        pid = loop.spawn(["/bin/cat", "/proc/self/status"], lambda p, rc: got.append(rc), stdout=w)
        os.close(w)
        w = -1
        out = b""
        while chunk := os.read(r, 65536):
            out += chunk
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    _wait_exit(loop, got)
    assert got == [0]
    st = _proc_status(out.decode())
    assert int(st["SigBlk"], 16) == 0
    assert int(st["SigIgn"], 16) == 0
    assert os.getpgid(os.getpid()) != pid  # (the child is gone; its group was its own:)
    assert st["Pid"] == str(pid)


def test_process_group_env_cwd_stdin(loop: Any, tmp_path: Any, impl: Any) -> None:
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
    got: list[int] = []
    try:
        loop.spawn(
            ["/bin/sh", "-c", 'echo "$(ps -o pgid= -p $$) $$ $FOO $(pwd)"; cat; echo end'],
            lambda p, rc: got.append(rc),
            env={"FOO": "bar", "PATH": "/usr/bin:/bin"},
            cwd=str(tmp_path),
            stdin=impl.DEVNULL,
            stdout=fd,
        )
    finally:
        os.close(fd)
    _wait_exit(loop, got)
    assert got == [0]
    pgid, pid, foo, cwd, end = out.read_text().split()
    assert pgid == pid
    assert foo == "bar"
    assert cwd == str(tmp_path)
    assert end == "end"


def test_fds_closed_in_child(loop: Any) -> None:
    r, w = os.pipe()
    os.set_inheritable(r, True)
    got: list[int] = []
    try:
        loop.spawn(
            ["/bin/sh", "-c", f"test -e /proc/self/fd/{r} && exit 1; exit 0"], lambda p, rc: got.append(rc)
        )
        _wait_exit(loop, got)
    finally:
        os.close(r)
        os.close(w)
    assert got == [0]


def _children() -> set[int]:
    """Our child processes, zombies included (other tests may leave some of their own)."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        pids.update(int(p) for p in (task / "children").read_text().split())
    return pids


def test_exec_failure_raises(loop: Any, tmp_path: Any) -> None:
    before = _children()
    with pytest.raises(FileNotFoundError):
        loop.spawn(["/nonexistent/program"], lambda p, rc: None)
    with pytest.raises(FileNotFoundError):
        loop.spawn(["no-such-program-fastka"], lambda p, rc: None)
    data = tmp_path / "data"
    data.write_text("not a program\n")
    data.chmod(0o644)
    with pytest.raises(PermissionError) as exc:
        loop.spawn([str(data)], lambda p, rc: None)
    assert exc.value.filename == str(data)
    assert _children() <= before, "no zombie left behind"


def test_user_switch(loop: Any, tmp_path: Any) -> None:
    require_root()
    out = tmp_path / "id"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o666)
    got: list[int] = []
    try:
        loop.spawn(["/usr/bin/id"], lambda p, rc: got.append(rc), uid=65534, gid=65534, stdout=fd)
    finally:
        os.close(fd)
    _wait_exit(loop, got)
    assert got == [0]
    text = out.read_text()
    assert "uid=65534" in text and "gid=65534" in text
    assert "groups=65534" in text  # root's supplementary groups dropped


def test_watch_and_unwatch_child(loop: Any) -> None:
    got: list[tuple[int, int]] = []
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        os._exit(7)
    loop.watch_child(pid, lambda p, rc: got.append((p, rc)))
    _wait_exit(loop, got)
    assert got == [(pid, 7)]
    pid2 = loop.spawn(["/bin/sleep", "5"], lambda p, rc: got.append((p, rc)))
    assert loop.unwatch_child(pid2)
    assert not loop.unwatch_child(pid2)
    os.kill(pid2, signal.SIGKILL)
    assert os.waitpid(pid2, 0)[0] == pid2  # not reaped by the loop once unwatched
    with pytest.raises(ChildProcessError):
        loop.watch_child(1, lambda p, rc: None)


def test_exception_in_child_callback_is_logged(loop: Any, caplog: Any) -> None:
    got: list[int] = []

    def boom(p: int, rc: int) -> None:
        got.append(rc)
        raise RuntimeError("child callback failed")

    loop.spawn(["/bin/true"], boom)
    _wait_exit(loop, got)
    assert "child callback failed" in caplog.text
