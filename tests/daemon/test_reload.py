"""SIGHUP: validate, keep the old configuration on errors, hand the new one to the children."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest
from fkproc import DEFAULT_CONFIG, Fastka, alive, wait_for

Make = Callable[..., Fastka]


def _reloads(fk: Fastka) -> dict[str, Any]:
    reloads: dict[str, Any] = fk.status()["daemon"]["reloads"]
    return reloads


def test_reload_reaches_the_children(fastka: Make) -> None:
    fk = fastka().start()
    pids = (fk.child_pid("vrrp"), fk.child_pid("checker"))
    fk.write_config({**DEFAULT_CONFIG, "vrrp": {"VI_1": {"state": "BACKUP"}, "VI_2": {"state": "MASTER"}}})
    fk.kill(signal.SIGHUP)
    wait_for(lambda: _reloads(fk)["ok"] == 1, what="reload done")
    reloads = [e for e in fk.events() if e[0] == "reload"]
    assert {e[1] for e in reloads} == {"vrrp", "checker"}
    vrrp_reload = next(e for e in reloads if e[1] == "vrrp")
    assert vrrp_reload[4] == "VI_1,VI_2", "the child got the new model"
    doc = fk.status()
    assert [i["name"] for i in doc["vrrp"]["instances"]] == ["VI_1", "VI_2"]
    assert (fk.child_pid("vrrp"), fk.child_pid("checker")) == pids, "a reload restarts nothing"
    assert doc["daemon"]["reloads"]["last"]["ok"] is True


def test_broken_config_keeps_the_running_one(fastka: Make) -> None:
    fk = fastka().start()
    pids = (fk.child_pid("vrrp"), fk.child_pid("checker"))
    fk.write_config('{"vrrp": {"VI_1": {}')  # an unterminated block
    fk.kill(signal.SIGHUP)
    wait_for(lambda: _reloads(fk)["failed"] == 1, what="reload refused")
    assert not [e for e in fk.events() if e[0] == "reload"], "the children never saw it"
    assert (fk.child_pid("vrrp"), fk.child_pid("checker")) == pids
    assert fk.proc is not None and fk.proc.poll() is None
    log = fk.log()
    assert "Reload failed: the new configuration has 1 error(s); keeping the running configuration" in log
    assert "Expecting" in log, "the log says why"
    doc = fk.status()
    assert doc["daemon"]["reloads"]["last"]["ok"] is False
    assert [i["name"] for i in doc["vrrp"]["instances"]] == ["VI_1"]
    # and the next good file is taken
    fk.write_config(DEFAULT_CONFIG)
    fk.kill(signal.SIGHUP)
    wait_for(lambda: _reloads(fk)["ok"] == 1, what="good reload")


def test_reload_starts_and_stops_children(fastka: Make) -> None:
    fk = fastka({"vrrp": {"VI_1": {}}}).start(roles=("vrrp",))
    vrrp = fk.child_pid("vrrp")
    fk.write_config({"checker": {"VS_1": {}}})
    fk.kill(signal.SIGHUP)
    wait_for(lambda: fk.child_pid("checker") and not alive(vrrp), what="checker started, vrrp stopped")
    doc = fk.wait_running(("checker",))
    assert doc["children"]["vrrp"]["state"] == "stopped"
    assert doc["vrrp"] is None, "a retired child's section goes"
    assert not fk.pid_files["vrrp"].exists()
    assert "VRRP child process" in fk.log() and "no longer needed" in fk.log()
    assert [e[1] for e in fk.events() if e[0] == "stop"] == ["vrrp"]


def test_child_reload_failure_is_reported(fastka: Make) -> None:
    config = {**DEFAULT_CONFIG, "behaviour": {"checker": {"reload_fail": True}}}
    fk = fastka(config).start()
    fk.kill(signal.SIGHUP)
    wait_for(lambda: _reloads(fk)["failed"] == 1, what="reload reported failed")
    last = _reloads(fk)["last"]
    assert "checker: RuntimeError: reload refused on purpose" in last["error"]
    assert alive(fk.child_pid("checker")), "a failed reload kills nobody"


def _rss_kb(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss // 1024)


@pytest.mark.slow
def test_reload_storm(fastka: Make) -> None:
    """100 SIGHUPs in 10 s, alternating two configurations, one broken file in the middle:
    nothing crashes, nothing restarts, memory stays flat."""
    a = {**DEFAULT_CONFIG, "vrrp": {"VI_1": {"state": "MASTER"}, "VI_2": {}}}
    b = {**DEFAULT_CONFIG, "vrrp": {"VI_1": {"state": "MASTER"}, "VI_3": {}}}
    fk = fastka(a).start()
    pids = {r: fk.child_pid(r) for r in ("parent", "vrrp", "checker")}
    pids["parent"] = fk.pid
    # warm up (first reloads allocate caches), then measure
    for i in range(10):
        fk.write_config(b if i % 2 else a)
        fk.kill(signal.SIGHUP)
        time.sleep(0.1)
    wait_for(lambda: fk.status()["daemon"]["state"] == "running", what="quiet")
    before = {r: _rss_kb(p) for r, p in pids.items() if p}
    t0 = time.monotonic()
    for i in range(100):
        if 50 <= i < 53:
            fk.write_config('{"vrrp": ')
        else:
            fk.write_config(b if i % 2 else a)
        fk.kill(signal.SIGHUP)
        time.sleep(max(0.0, t0 + (i + 1) * 0.1 - time.monotonic()))
    fk.write_config(a)
    fk.kill(signal.SIGHUP)
    time.sleep(0.5)
    doc = wait_for(lambda: (d := fk.status())["daemon"]["state"] == "running" and d, what="settled")
    reloads = doc["daemon"]["reloads"]
    assert reloads["ok"] >= 20, "reloads ran (bursts are coalesced, none lost)"
    assert reloads["failed"] >= 1, "the broken file was seen and refused"
    print(f"reloads {reloads}")
    assert {r: fk.child_pid(r) for r in ("vrrp", "checker")} == {
        "vrrp": pids["vrrp"],
        "checker": pids["checker"],
    }
    assert all(h["restarts"] == 0 for h in doc["children"].values())
    assert [i["name"] for i in doc["vrrp"]["instances"]] == ["VI_1", "VI_2"], "the last good file won"
    after = {r: _rss_kb(p) for r, p in pids.items() if p}
    for role in before:
        print(f"{role} RSS {before[role]} -> {after[role]} KiB")
        assert after[role] - before[role] < 4096, f"{role} RSS grew {before[role]} -> {after[role]} KiB"
    assert fk.proc is not None and fk.proc.poll() is None


KEEPALIVED_CONF = """\
child_wait_time 2
global_defs {
    router_id lb1
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    virtual_ipaddress {
        192.0.2.100/24
    }
}
"""

SECOND_INSTANCE = """\
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    priority 100
    virtual_ipaddress {
        192.0.2.101/24
    }
}
"""


def test_real_keepalived_conf(fastka: Make) -> None:
    """The real configuration compiler behind the parent: Keepalived's syntax, an
    unterminated block refused on reload (Keepalived 2.2.7 died on that), a good edit
    applied."""
    fk = fastka({}, args=["-d"])
    fk.write_config(KEEPALIVED_CONF)
    fk.start(roles=("vrrp",), FASTKA_TEST_REAL_CONFIG="1")
    assert "------< Global definitions >------" in fk.log(), "-d dumps the configuration"
    assert "Unknown keyword" not in fk.log()
    fk.kill(signal.SIGUSR1)
    parent = fk.tmp / "keepalived_parent.data"
    wait_for(lambda: "virtual_router_id" in parent.read_text(), what="parent dump with the configuration")
    doc = fk.status()
    assert doc["daemon"]["router_id"] == "lb1"
    assert [(i["name"], i["state"]) for i in doc["vrrp"]["instances"]] == [("VI_1", "MASTER")]
    assert doc["checker"] is None and "checker" not in doc["children"]
    fk.write_config(KEEPALIVED_CONF + SECOND_INSTANCE.rstrip("}\n") + "\n")
    fk.kill(signal.SIGHUP)
    wait_for(lambda: _reloads(fk)["failed"] == 1, what="refused reload")
    assert "missing '}'" in fk.log()
    assert [i["name"] for i in fk.status()["vrrp"]["instances"]] == ["VI_1"]
    fk.write_config(KEEPALIVED_CONF + SECOND_INSTANCE)
    fk.kill(signal.SIGHUP)
    wait_for(lambda: _reloads(fk)["ok"] == 1, what="reload")
    assert [i["name"] for i in fk.status()["vrrp"]["instances"]] == ["VI_1", "VI_2"]
