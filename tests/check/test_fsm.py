"""The checker state machines on a fake clock with a fake IPVS table (behaviour.md §C1/C2/R)."""

from __future__ import annotations

import itertools
import random
import socket

import pytest

from fastka.check.fsm import Checker, CheckerBase, RealServer
from fastka.check.manager import CheckerManager
from fastka.check.notify import RecordingNotifier
from fastka.check.sink import MemorySink
from fastka.check.spec import (
    CheckConfig,
    CheckerSpec,
    CheckGlobals,
    HttpParams,
    RealServerSpec,
    Script,
    ServiceSpec,
    TcpParams,
    UrlSpec,
    VirtualServerSpec,
)

from .conftest import FakeLoop, ScriptedProbe, Switch

SVC = ServiceSpec(socket.AF_INET, "tcp", "10.0.0.1", 80, sched_name="rr")
SVC_KEY = SVC.key


class Harness(CheckerManager):
    """A CheckerManager whose checkers run scripted probes: ``switches[(rs_ip, i)]``."""

    def __init__(self, loop: FakeLoop, config: CheckConfig, **kw: object) -> None:
        self.switches: dict[tuple[str, int], Switch] = {}
        self.probes: dict[tuple[str, int], ScriptedProbe] = {}
        self.recorder = RecordingNotifier()
        self.ipvs = MemorySink()
        super().__init__(loop, config, self.ipvs, notifier=self.recorder, rng=random.Random(1))  # type: ignore[arg-type]

    def make_checker(self, cs: CheckerSpec, rs: RealServer) -> CheckerBase:
        idx = rs.spec.checkers.index(cs)
        key = (rs.spec.address, idx)
        sw = self.switches.setdefault(key, Switch(True))
        probe = ScriptedProbe(self.loop, sw)  # type: ignore[arg-type]
        self.probes[key] = probe
        n = len(cs.params.urls) if isinstance(cs.params, HttpParams) else 1
        return Checker(
            cs,
            probe,
            rs,
            self.loop,
            target=rs.spec.address,
            n_steps=n,
            recheck_after_recovery=isinstance(cs.params, HttpParams),
            rng=self.rng,
        )

    def sw(self, ip: str, i: int = 0) -> Switch:
        return self.switches.setdefault((ip, i), Switch(True))


def chk(**kw: object) -> CheckerSpec:
    base: dict[str, object] = dict(
        params=TcpParams(), delay_loop=5.0, connect_timeout=1.0, retry=2, delay_before_retry=1.0, warmup=0.0
    )
    base.update(kw)
    return CheckerSpec(**base)  # type: ignore[arg-type]


def rs(ip: str, *checkers: CheckerSpec, **kw: object) -> RealServerSpec:
    return RealServerSpec(ip, 80, checkers=checkers or (chk(),), **kw)  # type: ignore[arg-type]


def vs(*rss: RealServerSpec, **kw: object) -> VirtualServerSpec:
    return VirtualServerSpec(services=(SVC,), real_servers=rss, **kw)  # type: ignore[arg-type]


def cfg(*vss: VirtualServerSpec, **g: object) -> CheckConfig:
    return CheckConfig(virtual_servers=vss, globals=CheckGlobals(**g))  # type: ignore[arg-type]


def table(h: Harness) -> dict[tuple[str, int], int]:
    return {k: v for k, v in h.ipvs.weights(SVC_KEY).items()}


def test_start_adds_service_and_live_servers(fake_loop: FakeLoop) -> None:
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1"), rs("10.1.0.2", weight=3))))
    h.start()
    assert SVC_KEY in h.ipvs.services
    assert table(h) == {("10.1.0.1", 80): 1, ("10.1.0.2", 80): 3}
    # No notification for servers that start up (rs_init_notifies is off).
    assert h.recorder.lines == []


def test_first_failure_is_final_then_retries_count(fake_loop: FakeLoop) -> None:
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1", chk(retry=2)), rs("10.1.0.2"))))
    h.start()
    sw = h.sw("10.1.0.1")
    sw.ok = False
    fake_loop.advance(1.02)  # first run at BOOTSTRAP_DELAY (warmup 0)
    # At start retry_it == retry: the first failure removes the server at once.
    assert ("10.1.0.1", 80) not in table(h)
    assert h.recorder.lines[-1] == "RS [10.1.0.1]:tcp:80 [10.0.0.1]:tcp:80 DOWN"
    # Down: polled every delay_loop, no retries.
    starts_before = len(h.probes[("10.1.0.1", 0)].starts)
    fake_loop.advance(5.0)
    assert len(h.probes[("10.1.0.1", 0)].starts) == starts_before + 1
    sw.ok = True
    fake_loop.advance(5.0)
    assert ("10.1.0.1", 80) in table(h)
    assert h.recorder.lines[-1] == "RS [10.1.0.1]:tcp:80 [10.0.0.1]:tcp:80 UP"
    # Now up after a success: two retries, delay_before_retry apart, then down.
    sw.ok = False
    probe = h.probes[("10.1.0.1", 0)]
    n0 = len(probe.starts)
    fake_loop.advance(5.0)  # first failure
    assert ("10.1.0.1", 80) in table(h)
    fake_loop.advance(1.0)  # retry 1
    assert ("10.1.0.1", 80) in table(h)
    fake_loop.advance(1.0)  # retry 2 -> down
    assert ("10.1.0.1", 80) not in table(h)
    times = [t for t, _ in probe.starts[n0:]]
    assert [round(b - a, 2) for a, b in itertools.pairwise(times)] == [1.0, 1.0]


def test_alpha_starts_down_until_first_success(fake_loop: FakeLoop) -> None:
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1", chk(alpha=True)), rs("10.1.0.2"))))
    h.start()
    assert table(h) == {("10.1.0.2", 80): 1}
    fake_loop.advance(1.02)
    assert table(h) == {("10.1.0.1", 80): 1, ("10.1.0.2", 80): 1}
    assert "RS [10.1.0.1]:tcp:80 [10.0.0.1]:tcp:80 UP" in h.recorder.lines


def test_inhibit_on_failure_sets_weight_zero(fake_loop: FakeLoop) -> None:
    spec = vs(
        rs("10.1.0.1", inhibit_on_failure=True, weight=5),
        rs("10.1.0.2", chk(alpha=True), inhibit_on_failure=True, weight=2),
        rs("10.1.0.3"),
    )
    h = Harness(fake_loop, cfg(spec))
    h.sw("10.1.0.2").ok = False
    h.start()
    # An inhibited server with failed (alpha) checkers starts in the table at weight 0.
    assert table(h) == {("10.1.0.1", 80): 5, ("10.1.0.2", 80): 0, ("10.1.0.3", 80): 1}
    h.sw("10.1.0.1").ok = False
    fake_loop.advance(1.02)
    assert table(h)[("10.1.0.1", 80)] == 0
    ops = [(op, d) for op, _, d, _ in h.ipvs.log]
    assert ("DEL_DEST", ("10.1.0.1", 80)) not in ops
    assert ("SET_DEST", ("10.1.0.1", 80)) in ops
    h.sw("10.1.0.1").ok = True
    h.sw("10.1.0.2").ok = True
    fake_loop.advance(5.0)
    assert table(h) == {("10.1.0.1", 80): 5, ("10.1.0.2", 80): 2, ("10.1.0.3", 80): 1}


def test_all_checkers_must_be_up(fake_loop: FakeLoop) -> None:
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1", chk(), chk(delay_loop=7.0)), rs("10.1.0.2"))))
    h.start()
    h.sw("10.1.0.1", 1).ok = False
    fake_loop.advance(1.02)
    assert ("10.1.0.1", 80) not in table(h)
    h.sw("10.1.0.1", 1).ok = True
    fake_loop.advance(7.0)
    assert ("10.1.0.1", 80) in table(h)


def test_warmup_spreads_first_runs(fake_loop: FakeLoop) -> None:
    rss = [rs(f"10.1.0.{i}", chk(warmup=4.0)) for i in range(1, 21)]
    h = Harness(fake_loop, cfg(vs(*rss)))
    h.start()
    t0 = fake_loop.now
    fake_loop.advance(5.01)
    firsts = [p.starts[0][0] - t0 for p in h.probes.values()]
    assert all(1.0 <= f <= 5.0 for f in firsts)
    assert max(firsts) - min(firsts) > 1.0  # actually spread
    # warmup 0: exactly BOOTSTRAP_DELAY.
    h2 = Harness(FakeLoop(), cfg(vs(rs("10.1.0.1", chk(warmup=0.0)))))
    h2.start()
    h2.loop.advance(2.0)  # type: ignore[attr-defined]
    (p,) = h2.probes.values()
    assert p.starts[0][0] - 1000.0 == pytest.approx(1.0)


def test_quorum_with_hysteresis(fake_loop: FakeLoop) -> None:
    rss = [rs(f"10.1.0.{i}", chk(retry=0)) for i in range(1, 6)]
    up, down = Script(("/bin/q-up",)), Script(("/bin/q-down",))
    h = Harness(fake_loop, cfg(vs(*rss, quorum=3, hysteresis=1, quorum_up=up, quorum_down=down)))
    h.start()
    assert h.vss[SVC_KEY].quorum_up  # 5 >= 3 + 1
    fake_loop.advance(1.02)
    for i in (1, 2, 3):
        h.sw(f"10.1.0.{i}").ok = False
    fake_loop.advance(5.0)
    # weight_sum 2 is not < quorum - hysteresis = 2: still up.
    assert h.vss[SVC_KEY].quorum_up
    assert ("/bin/q-down",) not in h.recorder.scripts
    h.sw("10.1.0.4").ok = False
    fake_loop.advance(5.0)
    assert not h.vss[SVC_KEY].quorum_up
    assert h.recorder.scripts[-1] == ("/bin/q-down",)
    assert h.recorder.lines[-1] == "VS [10.0.0.1]:tcp:80 DOWN"
    # Gaining needs quorum + hysteresis = 4.
    for i in (1, 2):
        h.sw(f"10.1.0.{i}").ok = True
    fake_loop.advance(5.0)
    assert not h.vss[SVC_KEY].quorum_up  # 3 < 4
    h.sw("10.1.0.3").ok = True
    fake_loop.advance(5.0)
    assert h.vss[SVC_KEY].quorum_up
    assert h.recorder.scripts[-1] == ("/bin/q-up",)
    assert h.recorder.lines[-1] == "VS [10.0.0.1]:tcp:80 UP"


def test_sorry_server_replaces_pool_and_back(fake_loop: FakeLoop) -> None:
    sorry = RealServerSpec("10.9.9.9", 80)
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1"), rs("10.1.0.2"), quorum=2, sorry_server=sorry)))
    h.start()
    assert table(h) == {("10.1.0.1", 80): 1, ("10.1.0.2", 80): 1}
    h.sw("10.1.0.1").ok = False
    fake_loop.advance(1.02)
    # Quorum lost: the sorry server alone.
    assert table(h) == {("10.9.9.9", 80): 1}
    h.sw("10.1.0.1").ok = True
    fake_loop.advance(5.0)
    assert table(h) == {("10.1.0.1", 80): 1, ("10.1.0.2", 80): 1}


def test_sorry_server_at_start_and_inhibit(fake_loop: FakeLoop) -> None:
    sorry = RealServerSpec("10.9.9.9", 80)
    spec = vs(rs("10.1.0.1", chk(alpha=True)), quorum=1, sorry_server=sorry, sorry_server_inhibit=True)
    h = Harness(fake_loop, cfg(spec))
    h.start()
    assert table(h) == {("10.9.9.9", 80): 1}  # quorum down at start: sorry server at once
    fake_loop.advance(1.02)
    # sorry_server_inhibit: kept at weight 0 when not needed.
    assert table(h) == {("10.1.0.1", 80): 1, ("10.9.9.9", 80): 0}


def test_misc_dynamic_weight_changes_ipvs_and_quorum(fake_loop: FakeLoop) -> None:
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1", weight=1), quorum=4)))
    h.start()
    assert not h.vss[SVC_KEY].quorum_up
    h.sw("10.1.0.1").weight = 10
    fake_loop.advance(1.02)
    assert table(h) == {("10.1.0.1", 80): 10}
    assert h.vss[SVC_KEY].quorum_up


def test_http_urls_one_per_run_and_recovery_recheck(fake_loop: FakeLoop) -> None:
    urls = (UrlSpec(path="/a"), UrlSpec(path="/b"), UrlSpec(path="/c"))
    c = chk(params=HttpParams(urls=urls), delay_loop=2.0, delay_before_retry=3.0, retry=1)
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1", c))))
    h.start()
    fake_loop.advance(1.02 + 2 * 2.0)
    probe = h.probes[("10.1.0.1", 0)]
    assert [s for _, s in probe.starts] == [0, 1, 2]
    # URL /a (step 0) starts failing; retry once after 3 s, then down.
    failing = {0}
    h.switches[("10.1.0.1", 0)] = Switch(True)
    probe.verdict = lambda step: step not in failing  # type: ignore[assignment]
    fake_loop.advance(2.0)  # step 0 fails -> retry in 3 s
    fake_loop.advance(3.0)  # retry fails -> down
    assert ("10.1.0.1", 80) not in table(h)
    n = len(probe.starts)
    fake_loop.advance(3.0 * 2)  # only the failed URL is polled, every max(dbr, delay_loop)
    assert [s for _, s in probe.starts[n:]] == [0, 0]
    failing.clear()
    fake_loop.advance(3.0)  # /a recovers -> every URL re-checked, one per delay_loop
    assert ("10.1.0.1", 80) not in table(h)
    fake_loop.advance(2.0 * 3)
    assert ("10.1.0.1", 80) in table(h)
    assert [s for _, s in probe.starts[-4:]] == [0, 0, 1, 2]


def test_shutdown_removes_what_was_added_and_omega(fake_loop: FakeLoop) -> None:
    down = Script(("/bin/rs-down",))
    qdown = Script(("/bin/q-down",))
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1", notify_down=down), omega=True, quorum_down=qdown)))
    h.start()
    h.shutdown()
    assert h.ipvs.services == {}
    assert [op for op, *_ in h.ipvs.log][-2:] == ["DEL_DEST", "DEL_SERVICE"]
    assert ("/bin/rs-down",) in h.recorder.scripts and ("/bin/q-down",) in h.recorder.scripts
    # Without omega nothing runs; with -I (dont_release_ipvs) the table stays.
    h2 = Harness(FakeLoop(), cfg(vs(rs("10.1.0.1", notify_down=down)), dont_release_ipvs=True))
    h2.start()
    h2.shutdown()
    assert SVC_KEY in h2.ipvs.services and h2.recorder.scripts == []


def test_reload_migrates_state_without_churn(fake_loop: FakeLoop) -> None:
    old = cfg(vs(rs("10.1.0.1"), rs("10.1.0.2"), rs("10.1.0.3")))
    h = Harness(fake_loop, old)
    h.start()
    h.sw("10.1.0.2").ok = False
    fake_loop.advance(1.02)
    assert table(h) == {("10.1.0.1", 80): 1, ("10.1.0.3", 80): 1}
    log_len = len(h.ipvs.log)
    # New config: .1 unchanged, .2 unchanged (down, must stay down), .3 gone, .4 new,
    # .1's weight changed.
    new = cfg(vs(rs("10.1.0.1", weight=7), rs("10.1.0.2"), rs("10.1.0.4")))
    h.reload(new)
    ops = h.ipvs.log[log_len:]
    assert ("DEL_DEST", SVC_KEY, ("10.1.0.3", 80), None) in ops
    assert ("SET_DEST", SVC_KEY, ("10.1.0.1", 80), 7) in ops
    assert ("NEW_DEST", SVC_KEY, ("10.1.0.4", 80), 1) in ops
    assert not any(op in ("NEW_SERVICE", "DEL_SERVICE") for op, *_ in ops)
    assert not any(d == ("10.1.0.2", 80) for _, _, d, _ in ops)  # down one untouched
    assert table(h) == {("10.1.0.1", 80): 7, ("10.1.0.4", 80): 1}
    # The surviving checker of .2 kept its state: still down, and it recovers on success.
    rs2 = h.vss[SVC_KEY].rss[("10.1.0.2", 80)]
    assert not rs2.alive and not rs2.checkers[0].is_up
    h.sw("10.1.0.2").ok = True
    fake_loop.advance(5.0)
    assert ("10.1.0.2", 80) in table(h)


def test_reload_changed_checker_is_fresh_and_removed_vs(fake_loop: FakeLoop) -> None:
    svc2 = ServiceSpec(socket.AF_INET, "tcp", "10.0.0.2", 443)
    vs2 = VirtualServerSpec(services=(svc2,), real_servers=(rs("10.2.0.1"),))
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1")), vs2))
    h.start()
    h.sw("10.1.0.1").ok = False
    fake_loop.advance(1.02)
    assert ("10.1.0.1", 80) not in table(h)
    # The checker changes (different connect_port): state not migrated -> starts up again.
    h.reload(cfg(vs(rs("10.1.0.1", chk(connect_port=8080)))))
    assert svc2.key not in h.ipvs.services
    assert ("10.1.0.1", 80) in table(h)


def test_reload_keeps_checker_schedule(fake_loop: FakeLoop) -> None:
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1", chk(delay_loop=10.0)))))
    h.start()
    fake_loop.advance(1.02)
    probe = h.probes[("10.1.0.1", 0)]
    fake_loop.advance(3.0)
    h.reload(cfg(vs(rs("10.1.0.1", chk(delay_loop=10.0)))))
    new_probe = h.probes[("10.1.0.1", 0)]
    assert new_probe is not probe
    fake_loop.advance(6.0)
    assert new_probe.starts == []  # next run still at the old deadline (t0+1+10)
    fake_loop.advance(1.5)
    assert len(new_probe.starts) == 1


def test_vsg_every_service_gets_the_dests(fake_loop: FakeLoop) -> None:
    s1 = ServiceSpec(socket.AF_INET, "tcp", "10.0.0.1", 80)
    s2 = ServiceSpec(socket.AF_INET, "tcp", "10.0.0.2", 80)
    s3 = ServiceSpec(socket.AF_INET, "none", None, 0, fwmark=7)
    spec = VirtualServerSpec(services=(s1, s2, s3), real_servers=(rs("10.1.0.1"),), group="G", group_port=80)
    h = Harness(fake_loop, cfg(spec))
    h.start()
    for s in (s1, s2, s3):
        assert h.ipvs.weights(s.key) == {("10.1.0.1", 80): 1}
    h.sw("10.1.0.1").ok = False
    fake_loop.advance(1.02)
    for s in (s1, s2, s3):
        assert h.ipvs.weights(s.key) == {}
    assert h.recorder.lines[-2] == "RS [10.1.0.1]:tcp:80 [G]:80 DOWN"


def test_ha_suspend_disables_checkers_while_address_absent(fake_loop: FakeLoop) -> None:
    absent = ServiceSpec(socket.AF_INET, "tcp", "192.0.2.55", 80)  # TEST-NET-1: never local
    present = ServiceSpec(socket.AF_INET, "tcp", "127.0.0.1", 80)
    vs_absent = VirtualServerSpec(services=(absent,), real_servers=(rs("10.1.0.1"),), ha_suspend=True)
    vs_present = VirtualServerSpec(services=(present,), real_servers=(rs("10.1.0.2"),), ha_suspend=True)
    h = Harness(fake_loop, cfg(vs_absent, vs_present))
    h.start()
    try:
        fake_loop.advance(12.0)
        assert h.probes[("10.1.0.1", 0)].starts == []  # suspended: never run
        assert len(h.probes[("10.1.0.2", 0)].starts) >= 2
        # The address appears (simulated): checking resumes on the next period.
        h.vss[absent.key].set_checkers_enabled(True)
        fake_loop.advance(5.0)
        assert h.probes[("10.1.0.1", 0)].starts
    finally:
        h.shutdown()


@pytest.mark.parametrize("mode", ["all", "vs"])
def test_lvs_flush_on_stop(fake_loop: FakeLoop, mode: str) -> None:
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1"), rs("10.1.0.2")), lvs_flush_on_stop=mode))
    h.start()
    n = len(h.ipvs.log)
    h.shutdown()
    ops = [op for op, *_ in h.ipvs.log[n:]]
    assert ops == (["FLUSH"] if mode == "all" else ["DEL_SERVICE"])
    assert h.ipvs.services == {}


def test_restart_over_a_table_left_behind_takes_it_over(fake_loop: FakeLoop) -> None:
    h = Harness(fake_loop, cfg(vs(rs("10.1.0.1", weight=4))))
    # A previous incarnation left the service with the dest inhibited at weight 0.
    from fastka.check.sink import DestSpec

    h.ipvs.new_service(SVC)
    h.ipvs.new_dest(SVC, DestSpec("10.1.0.1", 80, 0, "NAT"))
    h.start()
    assert table(h) == {("10.1.0.1", 80): 4}
