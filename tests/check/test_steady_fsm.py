"""SteadyChecker (the steady state handed to the check, Python woken only on change)
behaves exactly as Checker (Python on every result): same attempts at the same times,
same IPVS commands, notifications and status fields, for random outage schedules and
checker settings. Both run on the fake clock; the steady one on the reference check's
own scheduling (``fastka._check_py.Check.arm``) with scripted verdicts."""

from __future__ import annotations

import bisect
import errno
import random
import socket
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fastka import _check_py
from fastka.check.base import Done, Result, Target
from fastka.check.fsm import Checker, CheckerBase, RealServer, SteadyChecker
from fastka.check.manager import CheckerManager
from fastka.check.notify import RecordingNotifier
from fastka.check.sink import DestSpec, MemorySink
from fastka.check.spec import (
    CheckConfig,
    CheckerSpec,
    CheckGlobals,
    RealServerSpec,
    ServiceSpec,
    TcpParams,
    VirtualServerSpec,
)

from .conftest import FakeLoop

SVC = ServiceSpec(socket.AF_INET, "tcp", "10.0.0.1", 80, sched_name="rr")
Verdict = Callable[[float, int], bool]


class TimedSink(MemorySink):
    def __init__(self, loop: FakeLoop) -> None:
        super().__init__()
        self.loop = loop
        self.timeline: list[tuple[float, str, Any]] = []

    def new_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.timeline.append((self.loop.now, "new", (dest.key, dest.weight)))
        super().new_dest(svc, dest)

    def set_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.timeline.append((self.loop.now, "set", (dest.key, dest.weight)))
        super().set_dest(svc, dest)

    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.timeline.append((self.loop.now, "del", dest.key))
        super().del_dest(svc, dest)


class ScriptedPyProbe:
    """Checker's probe: verdict(due, step) answered ``latency`` after the start."""

    def __init__(self, loop: FakeLoop, verdict: Verdict, latency: float) -> None:
        self.loop, self.verdict, self.latency = loop, verdict, latency
        self.attempts: list[tuple[float, int]] = []
        self._timer: Any = None

    def start(self, step: int, done: Done, now: float | None = None) -> None:
        due = self.loop.now if now is None else now
        self.attempts.append((due, step))

        def answer() -> None:
            ok = self.verdict(due, step)
            done(Result(True) if ok else Result(False, "connect: Connection refused"))

        self._timer = self.loop.call_later(self.latency, answer)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class ScriptedCheck(_check_py.Check):
    """The reference check with scripted attempts: its own arm()/absorb logic runs."""

    def __init__(self, loop: FakeLoop, verdict: Verdict, latency: float, n_steps: int) -> None:
        urls = [_check_py.HttpUrl(b"GET / HTTP/1.0\r\n\r\n")] * n_steps if n_steps > 1 else []
        super().__init__(loop, Target("127.0.0.1", 80, socket.AF_INET), 1.0, urls)
        self.fake = loop
        self.verdict, self.latency = verdict, latency
        self.attempts: list[tuple[float, int]] = []

    def _attempt(self, due: float) -> None:
        self.due = due
        self.attempts.append((due, self.step))
        self._phase = _check_py.CONNECTING
        self._timer = self.fake.call_at(self.fake.now + self.latency, self._answer)

    def _answer(self) -> None:
        self._timer = None
        if self.verdict(self.due, self.step):
            self._finish(_check_py.OK)
        else:
            self._finish(_check_py.E_CONNECT, errno.ECONNREFUSED)


class CountingSteadyChecker(SteadyChecker):
    """Records the results that reach Python."""

    reported: list[Result]

    def _on_check_result(self, result: Result) -> None:
        self.reported.append(result)
        super()._on_check_result(result)


class Harness(CheckerManager):
    def __init__(
        self, loop: FakeLoop, config: CheckConfig, verdicts: dict[str, Verdict], steady: bool
    ) -> None:
        self.verdicts = verdicts
        self.steady = steady
        self.probes: dict[str, Any] = {}
        self.recorder = RecordingNotifier()
        self.ipvs = TimedSink(loop)
        super().__init__(loop, config, self.ipvs, notifier=self.recorder, rng=random.Random(7))  # type: ignore[arg-type]

    def make_checker(self, cs: CheckerSpec, rs: RealServer) -> CheckerBase:
        ip = rs.spec.address
        n = int(ip.rsplit(".", 1)[1])
        latency = 0.013 * n + 0.0007
        n_steps = 1 + n % 3  # 1..3 "URLs"
        kw: dict[str, Any] = dict(
            target=ip, n_steps=n_steps, recheck_after_recovery=n_steps > 1, rng=self.rng
        )
        if self.steady:
            check = ScriptedCheck(self.loop, self.verdicts[ip], latency, n_steps)  # type: ignore[arg-type]
            self.probes[ip] = check
            checker = CountingSteadyChecker(cs, check, rs, self.loop, **kw)
            checker.reported = []
            return checker
        probe = ScriptedPyProbe(self.loop, self.verdicts[ip], latency)  # type: ignore[arg-type]
        self.probes[ip] = probe
        return Checker(cs, probe, rs, self.loop, **kw)


def schedule(toggles: list[float], bad_step: int | None, t0: float) -> Verdict:
    """Up until the first toggle, then alternately down/up; ``bad_step`` fails while down
    only (the others too when bad_step is None)."""
    times = sorted(t0 + t for t in toggles)

    def verdict(due: float, step: int) -> bool:
        down = bisect.bisect_right(times, due) % 2 == 1
        return not down or (bad_step is not None and step != bad_step)

    return verdict


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[RealServerSpec], dict[str, tuple[list[float], int | None]], bool]:
    rss = []
    outages = {}
    for i in range(1, draw(st.integers(1, 3)) + 1):
        ip = f"10.1.0.{i}"
        spec = CheckerSpec(
            params=TcpParams(),
            delay_loop=draw(st.sampled_from([1.0, 2.5, 3.1])),
            connect_timeout=1.0,
            retry=draw(st.integers(0, 3)),
            delay_before_retry=draw(st.sampled_from([0.5, 1.3, 4.0])),
            warmup=draw(st.sampled_from([0.0, 2.0])),
            alpha=draw(st.booleans()),
            log_all_failures=draw(st.booleans()),
        )
        rss.append(RealServerSpec(ip, 80, weight=i, inhibit_on_failure=draw(st.booleans()), checkers=(spec,)))
        toggles = draw(st.lists(st.floats(0.0, 120.0, allow_nan=False), max_size=8))
        outages[ip] = (toggles, draw(st.one_of(st.none(), st.integers(0, 2))))
    return rss, outages, draw(st.booleans())


def snapshot(h: Harness) -> list[Any]:
    out = []
    for vs in h.vss.values():
        for rs in vs.rss.values():
            for c in rs.checkers:
                assert isinstance(c, Checker)
                out.append(
                    (
                        rs.spec.address,
                        rs.alive,
                        c.is_up,
                        c.failures,
                        c.last_check,
                        c.last_ok,
                        c.detail,
                        c.last_change,
                        c.next_run(),
                    )
                )
    return out


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_steady_checker_is_checker(scenario: Any) -> None:
    rss, outages, quorum = scenario
    vs_spec = VirtualServerSpec(services=(SVC,), real_servers=tuple(rss), quorum=2 if quorum else 1)
    config = CheckConfig(virtual_servers=(vs_spec,), globals=CheckGlobals())
    runs = []
    for steady in (False, True):
        loop = FakeLoop()
        verdicts = {ip: schedule(t, bad, loop.now) for ip, (t, bad) in outages.items()}
        h = Harness(loop, config, verdicts, steady)
        h.start()
        snaps = []
        for _ in range(30):
            loop.advance(5.0)
            snaps.append(snapshot(h))
        h.shutdown()
        runs.append((h, snaps))
    (py, py_snaps), (st_, st_snaps) = runs
    for ip in outages:
        assert st_.probes[ip].attempts == py.probes[ip].attempts
    assert st_.ipvs.timeline == py.ipvs.timeline
    assert st_.recorder.lines == py.recorder.lines
    assert st_snaps == py_snaps


def test_steady_state_wakes_python_only_on_change() -> None:
    """Up for 100 s, down for 100 s, up again: Python hears of a handful of results
    (10.1.0.3: one URL in this harness)."""
    spec = CheckerSpec(params=TcpParams(), delay_loop=1.0, retry=1, delay_before_retry=1.0, warmup=0.0)
    rs = RealServerSpec("10.1.0.3", 80, checkers=(spec,))
    config = CheckConfig(virtual_servers=(VirtualServerSpec(services=(SVC,), real_servers=(rs,)),))
    loop = FakeLoop()
    h = Harness(loop, config, {"10.1.0.3": schedule([100.0, 200.0], None, loop.now)}, steady=True)
    h.start()
    (vs,) = h.vss.values()
    (checker,) = vs.rss[("10.1.0.3", 80)].checkers
    assert isinstance(checker, CountingSteadyChecker)
    loop.advance(300.0)
    check = h.probes["10.1.0.3"]
    assert len(check.attempts) > 250
    # first result, the failure (retry), the final failure, the success: 4 wake-ups
    assert [r.ok for r in checker.reported] == [True, False, False, True]
    assert h.ipvs.timeline[0][1:] == ("new", (("10.1.0.3", 80), 1))
    assert [op for _, op, _ in h.ipvs.timeline] == ["new", "del", "new"]
    assert checker.failures == 0 and checker.last_ok
