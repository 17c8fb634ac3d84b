"""Tracking arithmetic (behaviour.md §V4) and sync groups (§V5) on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from vrrp_fakes import A_LOW, FakeIO, cfg, make

from fastka.config.model import Config, Script, TrackFile, TrackRef, VrrpScript
from fastka.config.model import SyncGroup as SyncGroupConfig
from fastka.vrrp.instance import Instance, State
from fastka.vrrp.sync import SyncGroup
from fastka.vrrp.track import (
    FileTracker,
    InterfaceTracker,
    ScriptTracker,
    Trackers,
    contribution,
    file_effect,
)

T0 = 500.0


@pytest.mark.parametrize(
    ("weight", "reverse", "ok", "failed"),
    [(10, False, 10, 0), (-10, False, 0, -10), (10, True, -10, 0), (-10, True, 0, 10)],
)
def test_contribution_table(weight: int, reverse: bool, ok: int, failed: int) -> None:
    assert contribution(weight, reverse, True) == ok
    assert contribution(weight, reverse, False) == failed
    assert contribution(weight, reverse, None) == 0
    # Keepalived's transition rule: OK -> failed subtracts |w| x m
    assert ok - failed == abs(weight) * (-1 if reverse else 1)


def test_file_effect() -> None:
    assert file_effect(0, 0, False) == (False, 0)
    assert file_effect(3, 0, False) == (True, 0)
    assert file_effect(5, 10, False) == (False, 50)
    assert file_effect(5, 10, True) == (False, -50)
    assert file_effect(100, 10, False) == (False, 253)  # capped
    assert file_effect(-30, 10, False) == (True, 0)  # <= -254: FAULT


def _tracked_instance(
    weight: int, reverse: bool = False, prio: int = 100
) -> tuple[Instance, FakeIO, InterfaceTracker]:
    inst, io = make(priority=prio)
    tr = InterfaceTracker("eth1")
    tr.up = True
    u = tr.use(inst, weight, reverse)
    u.initialise()
    inst.set_total_priority(T0, inst.total_priority)
    return inst, io, tr


def test_weighted_interface_changes_priority() -> None:
    inst, io, tr = _tracked_instance(-30)
    inst.start(T0)
    assert inst.effective_priority == 100
    tr.set_up(T0 + 1, False)
    assert inst.effective_priority == 70
    assert io.priority == 70
    assert inst.state == State.BACKUP
    tr.set_up(T0 + 2, True)
    assert inst.effective_priority == 100


def test_positive_weight_applied_at_start() -> None:
    inst, _io, tr = _tracked_instance(20)
    assert inst.effective_priority == 120
    inst.start(T0)
    tr.set_up(T0 + 1, False)
    assert inst.effective_priority == 100


def test_weight_zero_interface_faults() -> None:
    inst, _io, tr = _tracked_instance(0)
    inst.start(T0)
    tr.set_up(T0 + 1, False)
    assert inst.state == State.FAULT
    assert "interface eth1 down" in inst.faults["interface:eth1"]
    tr.set_up(T0 + 2, True)
    assert inst.state == State.BACKUP


def test_reverse_weight_zero_faults_when_up() -> None:
    inst, _io, tr = _tracked_instance(0, reverse=True)
    assert inst.faults  # up + reverse = fault at start
    inst.start(T0)
    assert inst.state == State.FAULT
    tr.set_up(T0 + 1, False)
    assert inst.state == State.BACKUP


def test_owner_ignores_weights() -> None:
    inst, _io, tr = _tracked_instance(-50, prio=255)
    inst.start(T0)
    tr.set_up(T0 + 1, False)
    assert inst.effective_priority == 255
    assert inst.state == State.MASTER


class _Runner:
    """A ScriptRunner stand-in: records runs, the test completes them."""

    def __init__(self) -> None:
        self.runs: list[Any] = []

    def problem(self, script: Any) -> str | None:
        return None

    def run(
        self, script: Any, argv: Any = None, *, timeout: float | None = None, callback: Any = None
    ) -> int:
        self.runs.append(callback)
        return 1000 + len(self.runs)


class _Loop:
    def __init__(self) -> None:
        self.now = T0
        self.periodic: list[Any] = []

    def time(self) -> float:
        return self.now

    def call_periodic(self, interval: float, cb: Any, *args: Any, first: float | None = None) -> Any:
        self.periodic.append((cb, args))
        return self

    def call_later(self, delay: float, cb: Any, *args: Any) -> Any:
        return self

    def cancel(self) -> None:
        pass

    def add_reader(self, fd: int, cb: Any) -> None:
        pass

    def remove_reader(self, fd: int) -> bool:
        return True


def _script(rise: int = 2, fall: int = 2, init_fail: bool = False) -> tuple[ScriptTracker, _Runner, _Loop]:
    runner, loop = _Runner(), _Loop()
    sc = VrrpScript(name="chk", script=Script(argv=("/bin/true",)), rise=rise, fall=fall, init_fail=init_fail)
    return ScriptTracker(sc, runner, loop), runner, loop  # type: ignore[arg-type]


def _result(tr: ScriptTracker, runner: _Runner, loop: _Loop, rc: int) -> None:
    loop.periodic[0][0]()  # the interval fires
    cb = runner.runs[-1]
    cb(1000 + len(runner.runs), rc, False)


def test_script_rise_fall() -> None:
    tr, runner, loop = _script(rise=2, fall=3)
    inst, _io = make(priority=100)
    u = tr.use(inst, -40)
    u.initialise()
    tr.start()
    inst.start(T0)
    assert tr.up is None
    _result(tr, runner, loop, 0)  # first result after start: one success is enough
    assert tr.up is True and inst.effective_priority == 100
    for rc, up in [(1, True), (1, True), (1, False)]:  # fall 3
        _result(tr, runner, loop, rc)
        assert tr.up is up
    assert inst.effective_priority == 60
    for rc, up in [(0, False), (0, True)]:  # rise 2
        _result(tr, runner, loop, rc)
        assert tr.up is up
    assert inst.effective_priority == 100


def test_script_first_failure_counts_at_once() -> None:
    tr, runner, loop = _script(rise=3, fall=3)
    inst, _io = make(priority=100)
    tr.use(inst, -40).initialise()
    tr.start()
    inst.start(T0)
    _result(tr, runner, loop, 1)
    assert tr.up is False and inst.effective_priority == 60


def test_weight_zero_script_holds_init_until_first_result() -> None:
    tr, runner, loop = _script()
    inst, _io = make(priority=100)
    tr.use(inst, 0).initialise()
    tr.start()
    inst.start(T0)
    assert inst.state == State.INIT
    _result(tr, runner, loop, 1)
    assert inst.state == State.FAULT
    for _ in range(2):
        _result(tr, runner, loop, 0)
    assert inst.state == State.BACKUP


def test_weight_zero_script_init_success_goes_backup() -> None:
    tr, runner, loop = _script()
    inst, _io = make(priority=100)
    tr.use(inst, 0).initialise()
    tr.start()
    inst.start(T0)
    _result(tr, runner, loop, 0)
    assert inst.state == State.BACKUP


def test_init_fail_script_faults_at_start() -> None:
    tr, _runner, _loop = _script(rise=2, init_fail=True)
    inst, _io = make(priority=100)
    tr.use(inst, 0).initialise()
    inst.start(T0)
    assert inst.state == State.FAULT


def test_skipped_run_while_running() -> None:
    tr, runner, loop = _script()
    inst, _ = make()
    tr.use(inst, -10).initialise()
    tr.start()
    loop.periodic[0][0]()
    loop.periodic[0][0]()  # still running: skipped
    assert len(runner.runs) == 1


def test_track_file_values(tmp_path: Any) -> None:
    path = tmp_path / "weight"
    path.write_text("5\n")
    ft = FileTracker(TrackFile(name="tf", file=str(path), weight=1))
    inst, _io = make(priority=100)
    ft.use(inst, 4)
    ft.prepare()
    ft.users[0].initialise()
    inst.set_total_priority(T0, inst.total_priority)
    assert inst.effective_priority == 120
    inst.start(T0)
    path.write_text("-10\n")
    ft.reread(T0 + 1)
    assert inst.effective_priority == 60
    path.write_text("-100\n")
    ft.reread(T0 + 2)
    assert inst.state == State.FAULT
    ft.reread(T0 + 3, gone=True)  # file deleted: value 0
    assert inst.state == State.BACKUP
    assert inst.effective_priority == 100


def test_track_file_init_file(tmp_path: Any) -> None:
    path = tmp_path / "new"
    ft = FileTracker(TrackFile(name="tf", file=str(path), init_file=True, init_value=7))
    ft.prepare()
    assert path.read_text().strip() == "7" and ft.value == 7


def test_trackers_build_from_config() -> None:
    c = Config()
    c.vrrp_scripts["chk"] = VrrpScript(name="chk", script=Script(argv=("/bin/true",)), weight=-20)
    i1 = cfg("VI_1", track_script=[TrackRef(name="chk", weight=-20)])
    i2 = cfg("VI_2", virtual_router_id=52, dont_track_primary=True, sync_group="G",
             track_script=[TrackRef(name="chk", weight=-20)])  # fmt: skip
    c.vrrp_instances = {"VI_1": i1, "VI_2": i2}
    c.vrrp_sync_groups["G"] = SyncGroupConfig(name="G", group=["VI_2"])
    insts = {n: Instance(ci, FakeIO()) for n, ci in c.vrrp_instances.items()}
    t = Trackers.build(c, insts, _Runner(), _Loop())  # type: ignore[arg-type]
    # own interface tracked with weight 0 unless dont_track_primary
    assert [u.instance.name for u in t.interfaces["eth0"].users] == ["VI_1"]
    # a sync group member's weights are ignored (no sync_group_tracking_weight)
    assert {u.instance.name: u.weight for u in t.scripts["chk"].users} == {"VI_1": -20, "VI_2": 0}


# ------------------------------------------------------------------------- sync groups


class _GroupIO:
    def __init__(self) -> None:
        self.notified: list[State] = []

    def notify_group(self, state: State) -> None:
        self.notified.append(state)

    def group_transition(self, t: Any) -> None:
        pass


def _group() -> tuple[SyncGroup, list[tuple[Instance, FakeIO]], _GroupIO]:
    members = [make("VI_1", priority=150), make("VI_2", virtual_router_id=52, priority=150)]
    gio = _GroupIO()
    g = SyncGroup(SyncGroupConfig(name="G", group=["VI_1", "VI_2"]), [m[0] for m in members], gio)
    for inst, _ in members:
        inst.start(T0)
    return g, members, gio


def test_sync_master_only_when_all_want() -> None:
    g, [(a, _aio), (b, _bio)], gio = _group()
    assert g.state == State.BACKUP and gio.notified == [State.BACKUP]
    a.on_down_timer(T0 + 4)
    assert a.state == State.BACKUP and a.wantstate == State.MASTER  # b still hears a master
    b.on_down_timer(T0 + 4.1)
    assert a.state == State.MASTER and b.state == State.MASTER
    assert g.state == State.MASTER and gio.notified[-1] == State.MASTER


def test_sync_backup_together_without_priority_zero() -> None:
    g, [(a, aio), (b, bio)], _gio = _group()
    a.on_down_timer(T0 + 4)
    b.on_down_timer(T0 + 4)
    aio.clear()
    bio.clear()
    a.on_advert(T0 + 5, bytes([10, 0, 0, 9]), 200, 1)  # a better master for VI_1
    assert a.state == State.BACKUP and b.state == State.BACKUP
    assert bio.adverts() == [] and "remove_addresses" in bio.names()
    assert g.state == State.BACKUP


def test_sync_fault_propagates_and_recovers() -> None:
    g, [(a, _aio), (b, bio)], gio = _group()
    a.on_down_timer(T0 + 4)
    b.on_down_timer(T0 + 4)
    bio.clear()
    a.set_fault(T0 + 5, "interface:eth1", "interface eth1 down")
    assert a.state == State.FAULT and b.state == State.FAULT
    assert bio.adverts() == [0]  # a master forced to FAULT says goodbye
    assert g.state == State.FAULT and gio.notified[-1] == State.FAULT
    a.clear_fault(T0 + 6, "interface:eth1")
    assert a.state == State.BACKUP and b.state == State.BACKUP
    assert g.state == State.BACKUP


def test_sync_member_fault_of_its_own_keeps_group_fault() -> None:
    g, [(a, _), (b, _)], _gio = _group()
    a.set_fault(T0 + 1, "x", "x down")
    b.set_fault(T0 + 1, "y", "y down")
    a.clear_fault(T0 + 2, "x")
    assert a.state == State.FAULT and b.state == State.FAULT
    b.clear_fault(T0 + 3, "y")
    assert a.state == State.BACKUP and b.state == State.BACKUP
    assert g.state == State.BACKUP and _gio.notified[-1] == State.BACKUP


def test_sync_lower_prio_garps_all_masters() -> None:
    _g, [(a, _aio), (b, bio)], _gio = _group()
    a.on_down_timer(T0 + 4)
    b.on_down_timer(T0 + 4)
    bio.clear()
    a.on_advert(T0 + 5, A_LOW, 100, 1)
    assert "garp_lower_prio" in bio.names()
