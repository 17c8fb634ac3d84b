"""``vrrp_track_process``: the proc connector's messages, process matching, counting over a
fake ``/proc`` and with the real connector (root), the quorum and its delays on a fake
clock, and tracking carried over a reload."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from vrrp_fakes import Clock, make

from conftest import require_root
from fastka.config.model import TrackProcess
from fastka.loop import Loop
from fastka.vrrp.instance import State
from fastka.vrrp.proc_events import (
    NLMSG_DONE,
    PROC_EVENT_COMM,
    PROC_EVENT_EXEC,
    PROC_EVENT_EXIT,
    PROC_EVENT_FORK,
    ProcessWatcher,
    decode_events,
    listen_message,
    matches,
)
from fastka.vrrp.track import ProcessTracker

T0 = 1000.0


def _event(what: int, *fields: int, comm: bytes = b"") -> bytes:
    data = struct.pack("=IIQ", what, 0, 0) + struct.pack(f"={len(fields)}i", *fields) + comm
    cn = struct.pack("=IIIIHH", 1, 1, 0, 0, len(data), 0) + data
    msg = struct.pack("=IHHII", 16 + len(cn), NLMSG_DONE, 0, 0, 0) + cn
    return msg + bytes(-len(msg) % 4)


def test_decode_events() -> None:
    data = b"".join(
        [
            _event(PROC_EVENT_FORK, 10, 10, 20, 20),  # a new process 20, child of 10
            _event(PROC_EVENT_FORK, 10, 10, 21, 20),  # a thread of 20: ignored
            _event(PROC_EVENT_EXEC, 20, 20),
            _event(PROC_EVENT_COMM, 20, 20, comm=b"worker".ljust(16, b"\0")),
            _event(PROC_EVENT_EXIT, 21, 20, 0, 17),  # the thread ends: ignored
            _event(PROC_EVENT_EXIT, 20, 20, 0, 17),
            _event(0x40, 20, 20, 0, 0),  # an event we do not care about
        ]
    )
    assert list(decode_events(data)) == [
        (PROC_EVENT_FORK, 20, 10),
        (PROC_EVENT_EXEC, 20, 0),
        (PROC_EVENT_COMM, 20, 0),
        (PROC_EVENT_EXIT, 20, 0),
    ]


def test_decode_events_hostile() -> None:
    import random

    rnd = random.Random(7)
    good = _event(PROC_EVENT_EXEC, 5, 5)
    for _ in range(500):
        p = bytearray(good * 2)
        for _ in range(rnd.randint(1, 5)):
            p[rnd.randrange(len(p))] = rnd.randrange(256)
        cut = bytes(p[: rnd.randint(0, len(p))])
        for what, pid, other in decode_events(cut):  # never raises
            assert isinstance(what, int) and isinstance(pid, int) and isinstance(other, int)
    assert list(decode_events(b"")) == []


def test_listen_message() -> None:
    m = listen_message(1234)
    length, mtype, _f, _s, pid = struct.unpack_from("=IHHII", m)
    assert length == len(m) == 16 + 20 + 4 and mtype == NLMSG_DONE and pid == 1234
    assert struct.unpack_from("=IIIIHHI", m, 16) == (1, 1, 0, 0, 4, 0, 1)


def _tp(**kw: Any) -> TrackProcess:
    kw.setdefault("name", "p")
    kw.setdefault("process", "nginx")
    return TrackProcess(**kw)


@pytest.mark.parametrize(
    ("spec", "comm", "argv", "ok"),
    [
        (_tp(), "nginx", None, True),
        (_tp(), "nginx-x", None, False),
        (_tp(process="a_very_long_process_name"), "a_very_long_pro", None, True),  # comm: 15 characters
        (_tp(params=("-g", "daemon off;")), "nginx", ["nginx", "-g", "daemon off;"], True),
        (_tp(params=("-g",)), "nginx", ["nginx", "-g", "daemon off;"], False),
        (_tp(params=("-g",), param_match="partial"), "nginx", ["nginx", "-g", "daemon off;"], True),
        (_tp(params=("-g", "dae"), param_match="initial"), "nginx", ["nginx", "-g", "daemon off;"], True),
        (_tp(params=("-g", "dae"), param_match="initial"), "nginx", ["nginx", "-g", "x", "daemon"], False),
        (_tp(params=()), "nginx", ["nginx"], True),  # param_match alone: no parameters at all
        (_tp(params=()), "nginx", ["nginx", "-t"], False),
        (_tp(process="/usr/sbin/nginx", full_command=True), "nginx", ["/usr/sbin/nginx", "-t"], True),
        (_tp(process="nginx", full_command=True), "nginx", ["/usr/sbin/nginx"], False),
    ],
)
def test_matches(spec: TrackProcess, comm: str, argv: list[str] | None, ok: bool) -> None:
    assert matches(spec, comm, argv) is ok


def _fake_proc(root: Path, procs: dict[int, tuple[str, list[str], str]]) -> None:
    for d in root.iterdir():
        shutil.rmtree(d)
    for pid, (comm, argv, state) in procs.items():
        d = root / str(pid)
        d.mkdir()
        (d / "comm").write_text(comm + "\n")
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        (d / "stat").write_text(f"{pid} ({comm}) {state} 1 1 1")


def test_watcher_scans_proc(tmp_path: Path) -> None:
    loop = Loop(clock=Clock(T0))
    seen: list[tuple[str, int]] = []
    specs = {
        "web": _tp(name="web"),
        "db": _tp(name="db", process="postgres", params=("-D",), param_match="partial"),
    }
    _fake_proc(
        tmp_path,
        {
            10: ("nginx", ["nginx"], "S"),
            11: ("nginx", ["nginx", "worker"], "S"),
            12: ("nginx", ["nginx"], "Z"),  # a zombie does not count
            13: ("postgres", ["postgres", "-D", "/var/lib/pg"], "S"),
            14: ("postgres", ["postgres"], "S"),
        },
    )
    w = ProcessWatcher(loop, specs, lambda n, c: seen.append((n, c)), proc=str(tmp_path), connector=False)
    try:
        w.start()
        assert w.counts == {"web": 2, "db": 1} and w.mode == "poll"
        assert sorted(seen) == [("db", 1), ("web", 2)]
        seen.clear()
        _fake_proc(tmp_path, {10: ("nginx", ["nginx"], "S")})
        w.scan()
        assert seen == [("web", 1), ("db", 0)] or sorted(seen) == [("db", 0), ("web", 1)]
        # a reload that changes the trackers counts again
        w.set_specs({"web": _tp(name="web", process="httpd")})
        assert w.counts == {"web": 0}
    finally:
        w.close()
        loop.close()


def test_tracker_quorum_and_delays() -> None:
    clock = Clock(T0)
    loop = Loop(clock=clock)
    try:
        tr = ProcessTracker(_tp(quorum=2, quorum_max=3, fork_delay=1.0, terminate_delay=2.0), loop)
        inst, _io = make(priority=100)
        tr.set_count(2)  # before start-up: at once
        assert tr.up is True
        u = tr.use(inst, -30)
        u.initialise()
        inst.start(T0)
        assert inst.state == State.BACKUP and inst.effective_priority == 100

        def at(dt: float) -> None:
            clock.now += dt
            loop.run_once(0)

        tr.set_count(1)  # fewer than the quorum: down after terminate_delay
        at(1.9)
        assert tr.up is True
        at(0.2)
        assert tr.up is False and inst.effective_priority == 70
        tr.set_count(2)  # back: up after fork_delay ...
        at(0.5)
        tr.set_count(1)  # ... unless it falls again meanwhile
        at(3.0)
        assert tr.up is False and inst.effective_priority == 70
        tr.set_count(4)  # more than quorum_max is down too
        tr.set_count(3)
        at(0.9)
        assert tr.up is False
        at(0.2)
        assert tr.up is True and inst.effective_priority == 100
        none = ProcessTracker(_tp(quorum_max=0), loop)
        none.set_count(0)
        assert none.up is True
        none.set_count(1)
        assert none.up is False
    finally:
        loop.close()


def test_tracker_weight_zero_faults() -> None:
    loop = Loop(clock=Clock(T0))
    try:
        tr = ProcessTracker(_tp(), loop)
        tr.set_count(0)
        inst, _io = make()
        tr.use(inst, 0).initialise()
        inst.start(T0)
        assert inst.state == State.FAULT
        tr.set_count(1)
        assert inst.state == State.BACKUP
        assert tr.status()["value"] == 1.0 and tr.status()["status"] == "1 running, quorum >= 1"
    finally:
        loop.close()


def test_connector_counts_a_real_process(tmp_path: Path) -> None:
    """The kernel's process events (initial network namespace, CAP_NET_ADMIN): a process
    with a name of its own appears and goes."""
    require_root()
    name = f"fkslp{os.getpid() % 100000}"
    prog = tmp_path / name
    shutil.copy("/bin/sleep", prog)
    loop = Loop()
    counts: list[int] = []
    w = ProcessWatcher(loop, {"p": _tp(name="p", process=name)}, lambda n, c: counts.append(c))
    proc: subprocess.Popen[bytes] | None = None
    try:
        w.start()
        if w.mode != "connector":
            pytest.fail("the proc connector is not available in the initial network namespace")
        proc = subprocess.Popen([str(prog), "30"])

        def until(pred: Any, what: str) -> None:
            deadline = time.monotonic() + 5
            while not pred():
                assert time.monotonic() < deadline, f"{what}: {counts} {w.counts}"
                loop.run_once(0.05)

        until(lambda: w.counts["p"] == 1, "the process started")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        until(lambda: w.counts["p"] == 0, "the process ended")
        assert counts[-2:] == [1, 0] and w.events > 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        w.close()
        loop.close()
    assert w.sock is None
