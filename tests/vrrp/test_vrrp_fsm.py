"""The VRRP state machine on a fake clock (behaviour.md §V3, §V4): timers, elections,
preemption, priority 0, faults, priority changes."""

from __future__ import annotations

import pytest
from vrrp_fakes import A_HIGH, A_LOW, make

from fastka.vrrp.instance import State, master_down_interval, skew_time

T0 = 1000.0


def test_timer_formulas() -> None:
    # behaviour.md V3.1 examples: v2, advert_int 1, prio 100 -> 3 + 156/256; prio 254 -> 3.0078
    assert master_down_interval(2, 100, 1.0) == pytest.approx(3.609375)
    assert master_down_interval(2, 254, 1.0) == pytest.approx(3.0078125)
    # v2 skew does not depend on the interval; v3 skew scales with it
    assert skew_time(2, 100, 0.05) == pytest.approx(156 / 256)
    assert skew_time(3, 100, 0.05) == pytest.approx(156 * 0.05 / 256)
    # the failover benchmark's expectation: v3, 50 ms, prio 100 -> 180.47 ms
    assert master_down_interval(3, 100, 0.05) == pytest.approx(0.18047, abs=1e-5)


def test_start_backup_then_master_after_down_interval() -> None:
    inst, io = make(priority=100, state="MASTER")  # state MASTER < 255 still listens first
    inst.start(T0)
    assert inst.state == State.BACKUP
    assert io.down_timer == pytest.approx(T0 + 3.609375)
    assert io.notified == [(State.BACKUP, 100)]
    assert not io.adverts_running
    io.clear()
    inst.on_down_timer(io.down_timer)
    assert inst.state == State.MASTER
    # advert first, then the addresses, then GARPs, then the periodic adverts
    names = io.names()
    assert names.index("send_advert") < names.index("add_addresses") < names.index("garp_master")
    assert names.index("garp_master") < names.index("start_adverts") < names.index("notify")
    assert io.adverts() == [100]
    assert io.has_addresses and io.adverts_running
    assert io.notified[-1] == (State.MASTER, 100)


def test_owner_is_master_at_once() -> None:
    inst, io = make(priority=255)
    inst.start(T0)
    assert inst.state == State.MASTER
    assert io.adverts() == [255]
    assert io.down_timer is None


def test_backup_accepts_higher_and_equal_rearms_timer() -> None:
    inst, io = make(priority=100)
    inst.start(T0)
    for prio in (150, 100):
        inst.on_advert(T0 + 1, A_LOW, prio, 1)
        assert inst.state == State.BACKUP
        assert io.down_timer == pytest.approx(T0 + 1 + 3.609375)
        assert inst.master_src == A_LOW
        # the engine may now re-arm on its own for this exact advert
        assert io.followed == (A_LOW, prio, 1, pytest.approx(3.609375))


def test_backup_discards_lower_and_preempts_when_timer_expires() -> None:
    inst, io = make(priority=150)
    inst.start(T0)
    inst.on_advert(T0 + 0.5, A_LOW, 100, 1)  # lower: discarded, timer not reset
    assert io.down_timer == pytest.approx(T0 + master_down_interval(2, 150, 1.0))
    assert io.followed is None
    inst.on_advert(T0 + 1.5, A_LOW, 100, 1)
    inst.on_down_timer(io.down_timer)
    assert inst.state == State.MASTER
    assert io.adverts() == [150]


def test_nopreempt_accepts_lower() -> None:
    inst, io = make(priority=150, nopreempt=True)
    inst.start(T0)
    inst.on_advert(T0 + 1, A_LOW, 100, 1)
    assert io.down_timer == pytest.approx(T0 + 1 + master_down_interval(2, 150, 1.0))
    assert io.followed is not None


def test_preempt_delay() -> None:
    inst, io = make(priority=150, preempt_delay=5.0)
    inst.start(T0)
    down = master_down_interval(2, 150, 1.0)
    # a lower master is accepted while the delay runs (timer reset each time) ...
    for k in range(5):
        inst.on_advert(T0 + k, A_LOW, 100, 1)
        assert io.down_timer == pytest.approx(T0 + k + down)
        assert io.followed is None  # not a steady state: the delay is running
    # ... and discarded once it is over: the down timer then runs out
    inst.on_advert(T0 + 5.5, A_LOW, 100, 1)
    assert io.down_timer == pytest.approx(T0 + 4 + down)
    inst.on_down_timer(io.down_timer)
    assert inst.state == State.MASTER


def test_preempt_delay_cancelled_by_higher_advert() -> None:
    inst, _io = make(priority=150, preempt_delay=5.0)
    inst.start(T0)
    inst.on_advert(T0, A_LOW, 100, 1)
    assert inst.preempt_time == pytest.approx(T0 + 5)
    inst.on_advert(T0 + 1, A_LOW, 200, 1)
    assert inst.preempt_time is None


def test_backup_priority_zero_takes_over_after_skew() -> None:
    inst, io = make(priority=100)
    inst.start(T0)
    inst.on_advert(T0 + 1, A_LOW, 150, 1)
    inst.on_advert(T0 + 2, A_LOW, 0, 1)
    assert io.down_timer == pytest.approx(T0 + 2 + 156 / 256)
    assert io.followed is None
    assert inst.priority_zero_received == 1
    inst.on_down_timer(io.down_timer)
    assert inst.state == State.MASTER


def _master(**kw: object) -> tuple[object, object]:
    inst, io = make(**kw)  # type: ignore[arg-type]
    inst.start(T0)
    inst.on_down_timer(T0 + 10)
    assert inst.state == State.MASTER
    io.clear()
    return inst, io


def test_master_hears_lower_readvertises_and_garps() -> None:
    inst, io = _master(priority=150)
    inst.on_advert(T0 + 11, A_LOW, 100, 1)
    assert inst.state == State.MASTER
    assert ("send_advert", (150, True)) in io.calls
    assert "garp_lower_prio" in io.names()
    assert io.events == [("MASTER_RX_LOWER_PRI", 150)]


def test_master_lower_prio_no_advert() -> None:
    inst, io = _master(priority=150, lower_prio_no_advert=True)
    inst.on_advert(T0 + 11, A_LOW, 100, 1)
    assert io.adverts() == []
    assert "garp_lower_prio" in io.names()


def test_master_yields_to_higher_without_priority_zero() -> None:
    inst, io = _master(priority=100)
    inst.on_advert(T0 + 11, A_LOW, 150, 1)
    assert inst.state == State.BACKUP
    assert io.adverts() == []  # never priority 0 on a normal yield
    assert "remove_addresses" in io.names() and not io.adverts_running
    assert io.down_timer == pytest.approx(T0 + 11 + 3.609375)
    assert inst.released_master == 1


@pytest.mark.parametrize(("peer", "yields"), [(A_HIGH, True), (A_LOW, False)])
def test_equal_priority_tie_break_on_address(peer: bytes, yields: bool) -> None:
    inst, io = _master(priority=100, saddr=bytes([10, 0, 0, 5]))
    inst.on_advert(T0 + 11, peer, 100, 1)
    assert inst.state == (State.BACKUP if yields else State.MASTER)
    if not yields:
        assert io.adverts() == [100]


def test_master_answers_priority_zero() -> None:
    inst, io = _master(priority=100)
    inst.on_advert(T0 + 11, A_LOW, 0, 1)
    assert inst.state == State.MASTER
    assert io.calls[0] == ("send_advert", (100, True))


def test_fault_from_master_sends_priority_zero_and_recovers_as_backup() -> None:
    inst, io = _master(priority=150)
    inst.set_fault(T0 + 11, "interface:eth0", "interface eth0 down")
    assert inst.state == State.FAULT
    assert io.adverts() == [0]
    assert not io.has_addresses and not io.adverts_running
    assert io.notified[-1] == (State.FAULT, 150)
    # adverts are ignored in FAULT
    inst.on_advert(T0 + 12, A_LOW, 100, 1)
    assert inst.state == State.FAULT
    inst.clear_fault(T0 + 13, "interface:eth0")
    assert inst.state == State.BACKUP
    assert io.down_timer == pytest.approx(T0 + 13 + master_down_interval(2, 150, 1.0))


def test_fault_needs_all_causes_cleared() -> None:
    inst, _io = make(priority=100)
    inst.start(T0)
    inst.set_fault(T0 + 1, "a", "a down")
    inst.set_fault(T0 + 1, "b", "b down")
    inst.clear_fault(T0 + 2, "a")
    assert inst.state == State.FAULT
    inst.clear_fault(T0 + 3, "b")
    assert inst.state == State.BACKUP


def test_fault_at_start() -> None:
    inst, io = make(priority=255)
    inst.faults["interface:eth0"] = "interface eth0 down"
    inst.start(T0)
    assert inst.state == State.FAULT
    assert io.adverts() == []
    inst.clear_fault(T0 + 1, "interface:eth0")
    # after FAULT even the owner listens first (behaviour.md V3.6)
    assert inst.state == State.BACKUP


def test_priority_change_in_backup_shifts_timer_and_forgets_master() -> None:
    inst, io = make(priority=100)
    inst.start(T0)
    inst.on_advert(T0 + 1, A_LOW, 120, 1)
    deadline = io.down_timer
    assert deadline is not None
    inst.adjust_priority(T0 + 1.5, 50)  # 150: skew shrinks by 50/256 s
    assert inst.effective_priority == 150
    assert io.down_timer == pytest.approx(deadline - 50 / 256)
    assert io.followed is None  # the next advert is judged again (now lower than us)
    assert io.priority == 150


def test_priority_clamped_and_owner_unchanged() -> None:
    inst, _io = make(priority=100)
    inst.set_total_priority(T0, 400)
    assert inst.effective_priority == 254
    inst.set_total_priority(T0, -20)
    assert inst.effective_priority == 1
    owner, _ = make(priority=255)
    owner.adjust_priority(T0, -100)
    assert owner.effective_priority == 255


def test_track_weight_moves_mastership() -> None:
    """MASTER's priority drops below the backup's: the backup discards its adverts and
    takes over when its timer runs out; the old master then hears the higher one."""
    m, mio = _master(priority=150)
    b, bio = make(priority=120, saddr=A_LOW)
    b.start(T0)
    b.on_advert(T0 + 11, bytes([10, 0, 0, 1]), 150, 1)
    m.adjust_priority(T0 + 12, -50)  # 100 < 120
    assert mio.priority == 100
    b.on_advert(T0 + 12.1, bytes([10, 0, 0, 1]), 100, 1)  # lower: discarded
    assert bio.down_timer == pytest.approx(T0 + 11 + master_down_interval(2, 120, 1.0))
    b.on_down_timer(bio.down_timer)
    assert b.state == State.MASTER
    m.on_advert(T0 + 15, A_LOW, 120, 1)
    assert m.state == State.BACKUP


def test_v3_learns_master_interval() -> None:
    inst, io = make(priority=100, version=3, advert_int=1.0)
    inst.start(T0)
    inst.on_advert(T0 + 1, A_LOW, 150, 5)  # 50 cs
    assert inst.master_adver_int == pytest.approx(0.05)
    assert io.down_timer == pytest.approx(T0 + 1 + master_down_interval(3, 100, 0.05))
    inst.on_down_timer(io.down_timer)
    assert inst.master_adver_int == 1.0  # own interval again as MASTER


def test_stop_master_sends_priority_zero() -> None:
    inst, io = _master(priority=150)
    inst.stop(T0 + 20)
    assert io.adverts() == [0]
    assert not io.has_addresses
    assert io.notified[-1] == (State.STOP, 150)


def test_stop_backup_sends_nothing() -> None:
    inst, io = make(priority=100)
    inst.start(T0)
    io.clear()
    inst.stop(T0 + 1)
    assert io.adverts() == []
    assert io.notified[-1] == (State.STOP, 100)


def test_external_vip_removal_gives_up_master_with_priority_zero() -> None:
    inst, io = _master(priority=150)
    inst.address_removed(T0 + 11, "10.0.0.100")
    assert inst.state == State.BACKUP
    assert io.adverts() == [0]


def test_master_own_address_advert_warns_and_stays(caplog: pytest.LogCaptureFixture) -> None:
    inst, _io = _master(priority=150)
    inst.on_advert(T0 + 11, bytes([10, 0, 0, 1]), 150, 1)
    assert inst.state == State.MASTER
    assert "our IP address" in caplog.text


def test_warnings_name_the_missing_master(caplog: pytest.LogCaptureFixture) -> None:
    inst, io = make(priority=100)
    inst.start(T0)
    inst.on_advert(T0 + 1, A_HIGH, 150, 1)
    inst.on_down_timer(io.down_timer or 0)
    assert "no advert from master 10.0.0.9" in caplog.text
    assert "protocol 112" in caplog.text


def test_one_way_block_warning(caplog: pytest.LogCaptureFixture) -> None:
    inst, _io = _master(priority=150)
    for k in range(3):
        inst.on_advert(T0 + 11 + k, A_LOW, 100, 1)
    assert "does not receive our adverts" in caplog.text


def test_transitions_recorded_with_reasons() -> None:
    inst, io = make(priority=100)
    inst.start(T0)
    inst.on_advert(T0 + 1, A_HIGH, 150, 1)
    inst.on_down_timer(io.down_timer or 0)
    reasons = [(t.old, t.new, t.reason) for t in io.transitions]
    assert reasons[0][:2] == (State.INIT, State.BACKUP)
    assert reasons[1][:2] == (State.BACKUP, State.MASTER)
    assert "10.0.0.9" in reasons[1][2]
    assert inst.transitions == 2


def test_adverts_ignored_in_init_and_fault() -> None:
    inst, _io = make(priority=100)
    inst.on_advert(T0, A_LOW, 150, 1)  # not started: INIT
    assert inst.master_src is None


def test_resumed_master_with_its_advert_already_sent() -> None:
    """A restarted child sends every resumed MASTER's advert first (router), then starts
    each: MASTER at once, addresses and GARPs, no second advert."""
    inst, io = make(priority=150)
    assert inst.resumes_at_once()
    inst.start(T0, resume_master=True, advert_sent=True)
    assert inst.state == State.MASTER
    assert io.adverts() == []  # the router sent it
    assert "add_addresses" in io.names() and "garp_master" in io.names()
    # and without advert_sent the instance sends it itself, before its addresses
    inst2, io2 = make(priority=150)
    inst2.start(T0, resume_master=True)
    assert io2.adverts() == [150] and io2.names().index("send_advert") < io2.names().index("add_addresses")


def test_advert_sent_means_nothing_unless_resuming_at_once() -> None:
    inst, io = make(priority=150)
    inst.faults["interface:eth0"] = "interface eth0 down"
    assert not inst.resumes_at_once()  # the router sends nothing early for it
    inst.start(T0, resume_master=True, advert_sent=True)  # a caller that sent one anyway
    assert inst.state == State.FAULT and io.adverts() == []
    inst.clear_fault(T0 + 1, "interface:eth0")
    assert inst.state == State.BACKUP
    inst.on_down_timer(T0 + 5)
    assert inst.state == State.MASTER and io.adverts() == [150]  # its own first advert
    backup, io2 = make(priority=150)
    backup.start(T0, resume_master=False, advert_sent=True)
    assert backup.state == State.BACKUP
    backup.on_down_timer(T0 + 4)
    assert backup.state == State.MASTER and io2.adverts() == [150]  # its own first advert
    assert not backup.resumes_at_once()  # started already


def test_restarted_child_advertises_every_resumed_master_first() -> None:
    """Router._start_instances: the adverts of all resumed MASTERs go out before any of
    them re-adds addresses (with a thousand instances the addresses and GARPs take longer
    than a peer's master-down interval); one advert each; a BACKUP sends none."""
    from types import SimpleNamespace as NS

    from fastka.vrrp.router import Router

    log: list[tuple[str, str]] = []
    slots = {}
    for vi, vrid in (("VI_1", 1), ("VI_2", 2), ("VI_3", 3)):
        inst, io = make(vi, priority=150, virtual_router_id=vrid)
        io._rec = lambda name, *args, vi=vi: log.append((vi, name))  # type: ignore[method-assign]
        slots[vi] = NS(name=vi, inst=inst, send_advert=io.send_advert)
    router = Router.__new__(Router)
    router.loop = NS(time=lambda: T0)  # type: ignore[assignment]
    router.slots = slots  # type: ignore[assignment]
    router.groups = {}
    router.changed = lambda: None  # type: ignore[method-assign]
    Router._start_instances(router, {"VI_1": "MASTER", "VI_2": "MASTER", "VI_3": "BACKUP"})
    adverts = [vi for vi, name in log if name == "send_advert"]
    assert sorted(adverts) == ["VI_1", "VI_2"]
    first_address = next(i for i, (_, name) in enumerate(log) if name == "add_addresses")
    assert all(i < first_address for i, (_, name) in enumerate(log) if name == "send_advert")
    assert slots["VI_1"].inst.state == slots["VI_2"].inst.state == State.MASTER
    assert slots["VI_3"].inst.state == State.BACKUP
