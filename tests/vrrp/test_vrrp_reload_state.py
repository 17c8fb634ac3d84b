"""A reload on the state machine and the trackers (fake clock, recording I/O): a matched
instance keeps its state (a MASTER advertises at once, a BACKUP gets a fresh master-down
timer, nobody is notified), tracking results carry over when the script is the same,
and only a different outcome moves the instance; ``timer_expired_backup``."""

from __future__ import annotations

from typing import Any

from vrrp_fakes import A_HIGH, Clock, FakeIO, make

from fastka.config.compile import loads
from fastka.config.diagnostics import has_errors
from fastka.loop import Loop
from fastka.vrrp.instance import Instance, State
from fastka.vrrp.track import Trackers

T0 = 1000.0


class Runner:
    """A ScriptRunner that runs nothing: the test finishes the runs."""

    def __init__(self) -> None:
        self.running: dict[int, Any] = {}
        self.argv: dict[int, tuple[str, ...]] = {}
        self.next = 100

    def problem(self, script: Any) -> str | None:
        return None

    def run(self, script: Any, argv: Any = None, *, timeout: Any = None, callback: Any = None) -> int:
        self.next += 1
        self.running[self.next] = callback
        self.argv[self.next] = tuple(script.argv)
        return self.next

    def adopt(self, pid: int, callback: Any) -> bool:
        if pid not in self.running:
            return False
        self.running[pid] = callback
        return True

    def finish_all(self, rc: int) -> None:
        for pid, cb in list(self.running.items()):
            del self.running[pid]
            cb(pid, rc, False)


SCRIPTS = """
vrrp_script chk {{
    script "{chk}"
    interval 30
    timeout {timeout}
    weight -60
}}
vrrp_script chk0 {{
    script "/bin/false"
    interval 30
}}
"""


def _config(*, chk: str = "/bin/false", timeout: int = 5, vi2_tracks: bool = True) -> Any:
    track2 = "    track_script {\n        chk0\n    }\n" if vi2_tracks else ""
    text = (
        SCRIPTS.format(chk=chk, timeout=timeout)
        + "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    priority 150\n"
        "    advert_int 1\n    virtual_ipaddress {\n        10.0.0.100\n    }\n"
        "    track_script {\n        chk\n    }\n}\n"
        + "vrrp_instance VI_2 {\n    interface eth0\n    virtual_router_id 52\n    priority 150\n"
        "    advert_int 1\n    virtual_ipaddress {\n        10.0.0.110\n    }\n"
        f"{track2}}}\n"
    )
    config, diag = loads(text)
    assert not has_errors(diag), [str(d) for d in diag]
    return config


class World:
    """Two instances with their trackers, as the router builds them."""

    def __init__(self) -> None:
        self.clock = Clock(T0)
        self.loop = Loop(clock=self.clock)
        self.runner = Runner()
        config = _config()
        self.io = {n: FakeIO() for n in config.vrrp_instances}
        self.inst = {n: Instance(c, self.io[n]) for n, c in config.vrrp_instances.items()}
        for i in self.inst.values():
            i.saddr = bytes([10, 0, 0, 1])
        self.trackers = self._build(config)
        self.trackers.initialise(T0, self.inst.values())
        for i in self.inst.values():
            i.start(T0)
        self.trackers.start()
        self.loop.run_once(0)  # the first runs
        self.runner.finish_all(1)  # both scripts fail

    def _build(self, config: Any) -> Trackers:
        return Trackers.build(config, self.inst, self.runner, self.loop)  # type: ignore[arg-type]

    def reload(self, config: Any) -> None:
        now = self.clock.now
        for n, i in self.inst.items():
            i.reconfigure(now, config.vrrp_instances[n])
        new = self._build(config)
        new.adopt(self.trackers)
        self.trackers.stop()
        self.trackers = new
        for i in self.inst.values():
            new.apply(now, i)
        new.start()
        for i in self.inst.values():
            i.reload_done(now)

    def close(self) -> None:
        self.trackers.stop()
        self.loop.close()


def test_script_results_survive_a_reload() -> None:
    w = World()
    try:
        vi1, vi2 = w.inst["VI_1"], w.inst["VI_2"]
        assert vi1.effective_priority == 90 and vi2.state == State.FAULT
        for io in w.io.values():
            io.clear()
            io.notified.clear()
        n_transitions = vi1.transitions + vi2.transitions
        w.clock.now += 3.0
        w.reload(_config(timeout=6))  # same command and user: the results stay
        w.loop.run_once(0)
        assert vi1.effective_priority == 90 and vi2.state == State.FAULT
        assert vi1.transitions + vi2.transitions == n_transitions
        assert not w.runner.running, "no run before the interval is due"
        assert "set_priority" not in w.io["VI_1"].names() and not w.io["VI_1"].notified
        assert not w.io["VI_2"].notified
    finally:
        w.close()


def test_changed_script_starts_afresh_and_removed_tracking_clears() -> None:
    w = World()
    try:
        vi1, vi2 = w.inst["VI_1"], w.inst["VI_2"]
        w.reload(_config(chk="/bin/true", vi2_tracks=False))
        # another command: its old result does not count (nothing yet: +0), and VI_2 no
        # longer tracks the failing script: it leaves FAULT
        assert vi1.effective_priority == 150
        assert vi2.state == State.BACKUP and vi2.faults == {}
        assert w.io["VI_2"].notified[-1] == (State.BACKUP, 150)
        w.loop.run_once(0)  # the new script runs at once
        assert list(w.runner.argv.values())[-1] == ("/bin/true",)
    finally:
        w.close()


def test_master_stays_master_advertising_at_once() -> None:
    inst, io = make(priority=255)
    inst.start(T0)
    assert inst.state == State.MASTER
    io.clear()
    inst.reconfigure(T0 + 5, inst.config)
    inst.reload_done(T0 + 5)
    assert inst.state == State.MASTER and inst.transitions == 1
    assert io.calls == [("send_advert", (255, True))]
    assert not [c for c in io.calls if c[0] in ("add_addresses", "remove_addresses", "notify")]


def test_backup_gets_a_fresh_down_timer() -> None:
    inst, io = make(priority=100)
    inst.start(T0)
    inst.on_advert(T0 + 1, A_HIGH, 150, 1)
    assert io.followed is not None
    io.clear()
    inst.reconfigure(T0 + 2, inst.config)
    inst.reload_done(T0 + 2)
    assert inst.state == State.BACKUP and io.notified == [(State.BACKUP, 100)]  # only the start-up one
    assert io.down_timer == T0 + 2 + inst.master_down_interval
    assert io.followed is None  # the next advert is judged afresh


def test_becoming_the_owner_by_reload() -> None:
    inst, io = make(priority=100)
    inst.start(T0)
    cfg = inst.config
    from dataclasses import replace

    inst.reconfigure(T0 + 1, replace(cfg, priority=255))
    assert inst.owner and inst.effective_priority == 255 and io.priority == 255
    assert inst.wantstate == State.MASTER and not inst.nopreempt


def test_timer_expired_backup() -> None:
    from dataclasses import replace

    inst, io = make(priority=255)
    inst.config = replace(inst.config, timer_expired_backup=200, advert_int=1.0)
    # 3 x 1 s + (256 - 200) / 256 s (VRRPv2 skew)
    assert inst.late_limit() == 3 + 56 / 256
    inst.start(T0)
    io.clear()
    inst.on_late(T0 + 10, 7.5)
    assert inst.state == State.BACKUP
    assert 0 not in io.adverts(), "no priority-0 advert: a backup may already be master"
    assert "remove_addresses" in io.names()
    assert io.notified[-1] == (State.BACKUP, 255)
    plain, _ = make()
    assert plain.late_limit() == 0.0


def test_runs_in_progress_over_a_reload() -> None:
    """A run in progress of a script that stays goes to the new tracker; one of a script
    that changed no longer moves the instance."""
    w = World()
    try:
        vi1, vi2 = w.inst["VI_1"], w.inst["VI_2"]
        w.clock.now += 30.0
        w.loop.run_once(0)  # both scripts run again
        assert len(w.runner.running) == 2
        w.reload(_config(chk="/bin/true"))  # chk changed, chk0 did not
        assert vi1.effective_priority == 150  # the new chk has no result yet
        w.runner.finish_all(0)  # the old chk's run and chk0's run succeed
        assert vi1.effective_priority == 150, "the old tracker no longer counts"
        assert vi2.state == State.BACKUP, "chk0's run reached its new tracker"
    finally:
        w.close()
