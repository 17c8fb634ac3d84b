"""The daemon's process framework with the real VRRP child, against Keepalived 2.2.7 as the
peer (issue 7): kill -9 of the VRRP child of a MASTER (a new child within 1 s, the peer
never takes the VIP), a hung child (SIGSTOP: found by the watchdog and replaced), kill
-9 of the parent (the children go, cleanly: the peer takes over at once), and a reload
storm (100 SIGHUPs in 10 s, two configurations that differ in one VIP, a broken file in
the middle: the unchanged VIP never disappears, no transitions, memory flat)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import psutil
import pytest
from rig import Rig, VrrpDaemon
from vrrp_pairs import Inst, Pair, Variant, config, explain, make_pair

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(180)]

# Whole-second adverts: Master_Down_Interval of the priority-100 peer is ~3.6 s, so a
# child that is back within a second must never let the peer take over.
V = Variant("v3-1s", advert_int=1.0)
VIP, VIP_ALT = 101, 103


def _pair(rig: Rig, *, extra_a: str = "") -> Pair:
    a = config(V, 11, 12, [Inst("VI_A", 31, 150, [VIP], extra=extra_a)])
    b = config(V, 12, 11, [Inst("VI_A", 31, 100, [VIP])])
    return make_pair(rig, "fastka", "keepalived", a, b)


def _start(pair: Pair, env: dict[str, str] | None = None) -> tuple[VrrpDaemon, VrrpDaemon]:
    pair.sample(V.vip(VIP))
    if env:
        os.environ.update(env)  # the rig's Popen inherits the environment
    try:
        da = pair.a.start(pair.rig)
    finally:
        for key in env or {}:
            os.environ.pop(key, None)
    db = pair.b.start(pair.rig)
    # generous: the start-up of both daemons on a busy machine
    pair.wait_owner(V.vip(VIP), pair.a, V.master_down + 30)
    da.wait_state("MASTER", instance="VI_A", timeout=30)
    db.wait_state("BACKUP", instance="VI_A", timeout=30)
    # The child's checkpoint (MASTER) reaches the parent with its next status snapshot,
    # at most 50 ms after the transition; a crash before that restarts it as a BACKUP.
    time.sleep(0.5)
    return da, db


def _new_vrrp_pid(da: VrrpDaemon, old: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int(da.vrrp_pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = 0
        if pid and pid != old and Path(f"/proc/{pid}").exists():
            return pid
        time.sleep(0.002)
    raise TimeoutError(f"no new VRRP child within {timeout} s")


def _entered(d: VrrpDaemon, state: str, since: int = 0) -> int:
    return len(re.findall(rf"\(VI_A\) Entering {state} STATE", d.log()[since:]))


def test_kill9_vrrp_child_of_master(rig: Rig) -> None:
    pair = _pair(rig)
    with explain(pair):
        da, db = _start(pair)
        old = da.vrrp_pid()
        mark_b = db.mark()
        t0 = time.monotonic()
        os.kill(old, signal.SIGKILL)
        new = _new_vrrp_pid(da, old, 5)
        assert time.monotonic() - t0 < 1.0, "a new VRRP child within 1 s"
        # two Master_Down_Intervals later the peer has still never taken the VIP
        time.sleep(2 * V.master_down)
        pair.stop_samplers()
        timeline = pair.samplers[V.vip(VIP)].timeline
        assert {s.owners for s in timeline.samples if s.t >= t0} == {frozenset({pair.a.ns.name})}
        assert _entered(db, "MASTER", mark_b) == 0, "the Keepalived BACKUP never became MASTER"
        assert new != old and psutil.Process(new).ppid() == da.pid
        assert "VRRP child process died (killed by SIGKILL): Respawning" in da.log()


def test_hung_vrrp_child_is_replaced(rig: Rig) -> None:
    pair = _pair(rig)
    with explain(pair):
        da, _db = _start(pair, env={"FASTKA_WATCHDOG": "0.5,4"})
        old = da.vrrp_pid()
        os.kill(old, signal.SIGSTOP)
        new = _new_vrrp_pid(da, old, 15)
        assert not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE
        da.wait_log(rf"VRRP child process\({old}\) not responding for [0-9.]+ s: killing it", timeout=5)
        # the new child resumes: fastka (priority 150) holds the VIP alone again
        pair.wait_owner(V.vip(VIP), pair.a, V.master_down + 30)
        assert psutil.Process(new).ppid() == da.pid


def test_kill9_parent_takes_children_down(rig: Rig) -> None:
    pair = _pair(rig)
    with explain(pair):
        da, db = _start(pair)
        child = da.vrrp_pid()
        time.sleep(2 * V.advert_int)
        mark_b = db.mark()
        t0 = time.monotonic()
        os.kill(da.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the VRRP child outlived its parent"
            time.sleep(0.01)
        took = pair.owned_after(V.vip(VIP), pair.b, t0, V.master_down + 5)
        # the orphan stopped gracefully: priority 0, so the peer took over after Skew_Time
        db.wait_log(r"\(VI_A\) Backup received priority 0 advertisement", since=mark_b)
        assert took < V.master_down, f"takeover took {took:.3f} s"
        assert not pair.a.ns.has_address(V.vip(VIP)), "the VIP was released"


def _rss_kb(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss // 1024)


def test_reload_storm(rig: Rig) -> None:
    excluded = "    virtual_ipaddress_excluded {{\n        {}\n    }}"
    conf_1 = config(V, 11, 12, [Inst("VI_A", 31, 150, [VIP], extra=excluded.format(V.vip_cidr(VIP_ALT)))])
    conf_2 = config(V, 11, 12, [Inst("VI_A", 31, 150, [VIP], extra=excluded.format(V.vip_cidr(VIP_ALT + 1)))])
    pair = _pair(rig, extra_a=excluded.format(V.vip_cidr(VIP_ALT)))
    with explain(pair):
        pair.samplers[V.vip(VIP)] = rig.sampler(V.vip(VIP), [pair.a.ns, pair.b.ns], interval=0.005)
        da, db = _start(pair)
        child = da.vrrp_pid()
        for i in range(6):  # warm-up: first reloads allocate what every later one reuses
            da.config_path.write_text(conf_2 if i % 2 == 0 else conf_1)
            da.send_signal(signal.SIGHUP)
            time.sleep(0.2)
        time.sleep(1.0)
        rss = {"parent": _rss_kb(da.pid), "vrrp": _rss_kb(child)}
        mark_a, mark_b = da.mark(), db.mark()
        t0 = time.monotonic()
        for i in range(100):
            text = conf_1 if i % 2 else conf_2
            if 50 <= i < 53:
                text = conf_1.rstrip().rstrip("}")  # an unterminated block
            tmp = da.config_path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, da.config_path)
            da.send_signal(signal.SIGHUP)
            time.sleep(max(0.0, t0 + (i + 1) * 0.1 - time.monotonic()))
        da.config_path.write_text(conf_1)
        da.send_signal(signal.SIGHUP)
        time.sleep(2.0)
        pair.stop_samplers()
        timeline = pair.samplers[V.vip(VIP)].timeline
        storm = [s for s in timeline.samples if s.t >= t0]
        assert len(storm) > 1000
        assert {s.owners for s in storm} == {frozenset({pair.a.ns.name})}, "the unchanged VIP never left"
        log_a = da.log()[mark_a:]
        assert _entered(da, "MASTER", mark_a) == _entered(da, "BACKUP", mark_a) == 0, "no transitions"
        assert _entered(db, "MASTER", mark_b) == 0
        assert "Reload failed" in log_a, "the broken file was refused"
        assert len(re.findall("Reload finished", log_a)) >= 20
        assert da.vrrp_pid() == child, "no restart"
        assert pair.a.ns.has_address(V.vip(VIP_ALT)), "the last good file's VIP is in place"
        grown = {"parent": _rss_kb(da.pid) - rss["parent"], "vrrp": _rss_kb(child) - rss["vrrp"]}
        assert all(kb < 4096 for kb in grown.values()), f"RSS grew {grown} KiB"
        assert "Traceback" not in da.log()
