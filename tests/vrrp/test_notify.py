"""VRRP notifications on the real event loop: Keepalived's arguments, order per
instance, the FIFO line format (cli.md §4), timeouts, script security."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from fastka.config.model import Config, GlobalDefs, NotifyFifo, Script, SyncGroup, VrrpInstance
from fastka.loop import Loop
from fastka.notify import ScriptRunner, VrrpNotifier, fifo_line, script_is_secure
from fastka.vrrp.instance import State


def _script(tmp: Path, name: str, body: str) -> Path:
    p = tmp / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


def _run(loop: Loop, done: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        loop.run_once(0.02)
    assert done(), "timed out"  # type: ignore[operator]


def test_fifo_line_format() -> None:
    assert fifo_line("INSTANCE", "VI_1", "MASTER", 150) == b'INSTANCE "VI_1" MASTER 150\n'
    assert fifo_line("GROUP", "VG_1", "FAULT", 0) == b'GROUP "VG_1" FAULT 0\n'


def test_scripts_in_order_with_keepalived_arguments(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # a slow first script: the next one must still run after it
    slow = _script(tmp_path, "state.sh", f'sleep 0.2; echo "state $*" >> {out}\n')
    gen = _script(tmp_path, "gen.sh", f'echo "gen $*" >> {out}\n')
    fifo = tmp_path / "fifo"
    c = Config(global_defs=GlobalDefs(vrrp_notify_fifo=NotifyFifo(path=str(fifo))))
    inst = VrrpInstance(
        name="VI_1",
        virtual_router_id=1,
        notify_master=Script(argv=(str(slow), "m")),
        notify_backup=Script(argv=(str(slow), "b")),
        notify=Script(argv=(str(gen), "x y")),
    )
    loop = Loop()
    n = VrrpNotifier(loop, c)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        n.instance(inst, State.MASTER, 150)
        n.instance(inst, State.BACKUP, 100)
        _run(loop, lambda: n.pending == 0)
        lines = out.read_text().splitlines()
        assert lines == [
            "state m",
            "gen x y INSTANCE VI_1 MASTER 150",
            "state b",
            "gen x y INSTANCE VI_1 BACKUP 100",
        ]
        assert os.read(reader, 4096) == b'INSTANCE "VI_1" MASTER 150\nINSTANCE "VI_1" BACKUP 100\n'
    finally:
        n.close()
        os.close(reader)
        loop.close()


def test_group_notifications(tmp_path: Path) -> None:
    out = tmp_path / "out"
    gen = _script(tmp_path, "gen.sh", f'echo "$*" >> {out}\n')
    g = SyncGroup(name="VG_1", notify=Script(argv=(str(gen),)), notify_fault=Script(argv=(str(gen), "fault")))
    loop = Loop()
    n = VrrpNotifier(loop, Config())
    try:
        n.group(g, State.FAULT)
        _run(loop, lambda: n.pending == 0)
        assert out.read_text().splitlines() == ["fault", "GROUP VG_1 FAULT 0"]
    finally:
        n.close()
        loop.close()


def test_deleted_reported_as_fault_without_notify_deleted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    gen = _script(tmp_path, "gen.sh", f'echo "$*" >> {out}\n')
    inst = VrrpInstance(name="VI_1", virtual_router_id=1, notify=Script(argv=(str(gen),)))
    loop = Loop()
    n = VrrpNotifier(loop, Config())
    try:
        n.instance(inst, State.DELETED, 100)
        _run(loop, lambda: n.pending == 0)
        assert out.read_text().splitlines() == ["INSTANCE VI_1 FAULT 100"]
    finally:
        n.close()
        loop.close()


def test_runner_timeout_kills_process_group(tmp_path: Path) -> None:
    script = Script(argv=("/bin/sh", "-c", "sleep 30 & wait"))
    loop = Loop()
    results: list[tuple[int, bool]] = []
    r = ScriptRunner(loop)
    try:
        t = time.monotonic()
        r.run(script, timeout=0.2, callback=lambda pid, rc, to: results.append((rc, to)))
        _run(loop, lambda: results)
        assert results[0][1] is True and results[0][0] != 0
        assert time.monotonic() - t < 5
    finally:
        loop.close()


def test_runner_reports_missing_script() -> None:
    loop = Loop()
    try:
        r = ScriptRunner(loop)
        assert "not found" in (r.problem(Script(argv=("/nonexistent/x",))) or "")
        assert r.problem(Script(argv=("true",))) is None
    finally:
        loop.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="script security applies to root only")
def test_script_security(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    safe = _script(tmp_path, "ok.sh", "exit 0\n")
    assert script_is_secure(str(safe), 0)
    unsafe = _script(tmp_path, "bad.sh", "exit 0\n")
    unsafe.chmod(unsafe.stat().st_mode | stat.S_IWOTH)
    assert not script_is_secure(str(unsafe), 0)
    loop = Loop()
    try:
        r = ScriptRunner(loop, script_security=True)
        assert "insecure" in (r.problem(Script(argv=(str(unsafe),))) or "")
        assert r.run(Script(argv=(str(unsafe),))) is None
    finally:
        loop.close()
