"""Timer semantics: order, FIFO, cancellation and re-arming from callbacks, periodic
timers without drift, far and many timers. Fake clock unless the test is about real time."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import loop_fixtures
import pytest
from loop_fixtures import FakeClock

impl, loop, clock, floop = loop_fixtures.fixtures()


def test_fifo_for_equal_deadlines(floop: Any, clock: FakeClock) -> None:
    out: list[int] = []
    for i in range(50):
        floop.call_at(clock.now + 0.010, out.append, i)
    clock.advance(0.010)
    floop.run_once(0)
    assert out == list(range(50))


def test_deadline_order_random(floop: Any, clock: FakeClock) -> None:
    rnd = random.Random(1234)
    out: list[int] = []
    deadlines = [rnd.randrange(0, 2000) for _ in range(3000)]  # whole ms: ties are common
    for i, d in enumerate(deadlines):
        floop.call_at(clock.now + d / 1000, out.append, i)
    for _ in range(40):
        clock.advance(rnd.uniform(0, 0.1))
        floop.run_once(0)
    clock.advance(2.0)
    floop.run_once(0)
    assert out == sorted(range(len(deadlines)), key=lambda i: (deadlines[i], i))


def test_never_early_rounded_up_to_the_tick(floop: Any, clock: FakeClock, impl: Any) -> None:
    assert impl.TICK == 0.001
    out: list[str] = []
    t0 = clock.now
    floop.call_at(t0 + 0.0105, out.append, "a")
    clock.now = t0 + 0.0104
    floop.run_once(0)
    clock.now = t0 + 0.0105  # the deadline itself: due in its tick, i.e. at 11 ms
    floop.run_once(0)
    assert out == []
    clock.now = t0 + 0.011
    floop.run_once(0)
    assert out == ["a"]


def test_call_soon_fifo_before_later_ticks(floop: Any, clock: FakeClock) -> None:
    out: list[str] = []
    floop.call_at(clock.now + 0.002, out.append, "t2")
    floop.call_soon(out.append, "s1")
    floop.call_at(clock.now - 5, out.append, "past")
    floop.call_soon(out.append, "s2")
    clock.advance(0.005)
    floop.run_once(0)
    assert out == ["s1", "past", "s2", "t2"]


def test_timer_properties(floop: Any, clock: FakeClock, impl: Any) -> None:
    t = floop.call_later(1.5, lambda: None)
    assert isinstance(t, impl.Timer)
    assert t.active
    assert t.when == pytest.approx(clock.now + 1.5)
    t.cancel()
    assert not t.active
    t.cancel()  # idempotent
    t.reschedule(clock.now + 0.5)
    assert t.active and t.when == pytest.approx(clock.now + 0.5)
    clock.advance(0.5)
    floop.run_once(0)
    assert not t.active
    assert floop.time() == clock.now


def test_cancel_during_firing(floop: Any, clock: FakeClock) -> None:
    out: list[str] = []
    timers: dict[str, Any] = {}

    def first() -> None:
        out.append("first")
        timers["second"].cancel()
        timers["first"].cancel()  # its own: no effect, already fired

    timers["first"] = floop.call_at(clock.now + 0.001, first)
    timers["second"] = floop.call_at(clock.now + 0.001, out.append, "second")
    timers["third"] = floop.call_at(clock.now + 0.001, out.append, "third")
    clock.advance(0.001)
    floop.run_once(0)
    assert out == ["first", "third"]
    assert not timers["second"].active


def test_reschedule_of_due_timer_from_callback(floop: Any, clock: FakeClock) -> None:
    """A timer re-armed by an earlier callback of the same batch does not fire now (an
    advert re-arming the master-down timer that was about to expire)."""
    out: list[str] = []
    down = floop.call_at(clock.now + 0.003, out.append, "down")
    floop.call_at(clock.now + 0.003, lambda: out.append("late") or down.reschedule(clock.now + 1))

    # the re-arming callback runs after "down" in FIFO order, so make it run first:
    down.reschedule(clock.now + 0.003)
    clock.advance(0.003)
    floop.run_once(0)
    assert out == ["late"]
    assert down.active
    clock.advance(1)
    floop.run_once(0)
    assert out == ["late", "down"]


def test_armed_in_callback_fires_next_iteration(floop: Any, clock: FakeClock) -> None:
    out: list[str] = []

    def cb() -> None:
        out.append("cb")
        floop.call_at(clock.now - 1, out.append, "past")
        floop.call_soon(out.append, "soon")

    floop.call_soon(cb)
    floop.run_once(0)
    assert out == ["cb"]
    floop.run_once(0)
    assert out == ["cb", "past", "soon"]


def test_reschedule_after_fire_and_cancel(floop: Any, clock: FakeClock) -> None:
    out: list[int] = []
    t = floop.call_at(clock.now + 0.001, out.append, 1)
    clock.advance(0.001)
    floop.run_once(0)
    t.reschedule(clock.now + 0.001)
    clock.advance(0.001)
    floop.run_once(0)
    t.cancel()
    t.reschedule(clock.now + 0.002)
    clock.advance(0.002)
    floop.run_once(0)
    assert out == [1, 1, 1]


def test_reschedule_keeps_fifo_at_the_new_deadline(floop: Any, clock: FakeClock) -> None:
    out: list[str] = []
    a = floop.call_at(clock.now + 0.001, out.append, "a")
    floop.call_at(clock.now + 0.005, out.append, "b")
    a.reschedule(clock.now + 0.005)  # now armed after b
    clock.advance(0.005)
    floop.run_once(0)
    assert out == ["b", "a"]


def test_periodic_no_drift_and_skips_missed_ticks(floop: Any, clock: FakeClock) -> None:
    start = clock.now + 0.1
    fired: list[float] = []
    t = floop.call_periodic(0.1, lambda: fired.append(clock.now), first=start)
    whens = []
    for k in range(5):
        clock.now = start + k * 0.1 + 0.0007 * (k + 1)  # late by a fraction of a tick, growing
        floop.run_once(0)
        whens.append(t.when)
    assert len(fired) == 5
    assert whens == pytest.approx([start + (k + 1) * 0.1 for k in range(5)])
    # the loop stalls for 3.5 intervals: one call, not four, and back on the grid
    clock.now = start + 4 * 0.1 + 0.35
    floop.run_once(0)
    assert len(fired) == 6
    assert t.when == pytest.approx(start + 8 * 0.1)
    t.cancel()
    clock.advance(1)
    floop.run_once(0)
    assert len(fired) == 6


def test_periodic_cancel_and_reschedule_from_own_callback(floop: Any, clock: FakeClock) -> None:
    n = [0]

    def cb() -> None:
        n[0] += 1
        if n[0] == 2:
            t.reschedule(clock.now + 1.0)  # the grid moves: now + 1 + k*0.01
        if n[0] == 4:
            t.cancel()

    t = floop.call_periodic(0.01, cb)
    for _ in range(2):
        clock.advance(0.01)
        floop.run_once(0)
    assert n[0] == 2
    clock.advance(0.5)
    floop.run_once(0)
    assert n[0] == 2
    for _ in range(10):
        clock.advance(0.51)
        floop.run_once(0)
    assert n[0] == 4
    assert not t.active


def test_periodic_default_first_and_validation(floop: Any, clock: FakeClock) -> None:
    t = floop.call_periodic(0.25, lambda: None)
    assert t.when == pytest.approx(clock.now + 0.25)
    with pytest.raises(ValueError):
        floop.call_periodic(0, lambda: None)
    with pytest.raises(ValueError):
        floop.call_at(float("nan"), lambda: None)


def test_far_future_timers(floop: Any, clock: FakeClock) -> None:
    out: list[str] = []
    t0 = clock.now
    floop.call_at(t0 + 5 * 3600, out.append, "5h")
    floop.call_at(t0 + 10 * 86400, out.append, "10d")
    floop.call_at(t0 + 3600 + 0.001, out.append, "1h")
    floop.call_at(t0 + 1e12, out.append, "never")  # beyond the wheel: clamped
    for dt in (60, 3599.999, 3600.001, 4 * 3600, 5 * 3600 - 0.001):
        clock.now = t0 + dt
        floop.run_once(0)
    assert out == ["1h"]
    clock.now = t0 + 5 * 3600
    floop.run_once(0)
    assert out == ["1h", "5h"]
    clock.now = t0 + 10 * 86400
    floop.run_once(0)
    assert out == ["1h", "5h", "10d"]


def test_a_million_timers(floop: Any, clock: FakeClock, impl: Any) -> None:
    # the heapq reference is cache-miss bound at this size (~10 us a pop): fewer for it
    n = 200_000 if impl.__name__ == "fastka._loop_py" else 1_000_000
    count = [0]

    def cb() -> None:
        count[0] += 1

    rnd = random.Random(7)
    timers = [floop.call_at(clock.now + rnd.random() * 100, cb) for _ in range(n)]
    for t in timers[::2]:
        t.cancel()
    del timers
    for _ in range(10):
        clock.advance(10)
        floop.run_once(0)
    assert count[0] == n // 2


def test_exception_in_callback_is_logged_and_loop_continues(
    floop: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    out: list[str] = []

    def boom() -> None:
        raise ZeroDivisionError("boom")

    floop.call_soon(boom)
    floop.call_soon(out.append, "after")
    with caplog.at_level(logging.ERROR, logger="fastka.loop"):
        floop.run_once(0)
    assert out == ["after"]
    recs = [r for r in caplog.records if r.name == "fastka.loop"]
    assert len(recs) == 1
    assert recs[0].exc_info is not None and recs[0].exc_info[0] is ZeroDivisionError


def test_base_exception_propagates_and_rest_stays_due(floop: Any, clock: FakeClock) -> None:
    out: list[str] = []

    def leave() -> None:
        raise SystemExit(3)

    floop.call_soon(out.append, "a")
    floop.call_soon(leave)
    floop.call_soon(out.append, "b")
    with pytest.raises(SystemExit):
        floop.run_once(0)
    assert out == ["a"]
    floop.run_once(0)
    assert out == ["a", "b"]


def test_base_exception_in_fd_callback_keeps_due_timers(floop: Any, clock: FakeClock) -> None:
    import socket

    a, b = socket.socketpair()
    try:
        out: list[str] = []

        def leave() -> None:
            a.recv(10)
            raise KeyboardInterrupt

        floop.add_reader(a, leave)
        t = floop.call_at(clock.now + 0.001, out.append, "t")
        floop.call_soon(out.append, "s")
        b.send(b"x")
        clock.advance(0.001)
        with pytest.raises(KeyboardInterrupt):
            floop.run_once(1)
        assert out == [] and t.active
        floop.call_soon(out.append, "later")
        floop.run_once(0)
        assert out == ["s", "t", "later"]
    finally:
        a.close()
        b.close()


def test_stop_and_run(loop: Any) -> None:
    out: list[int] = []
    loop.call_soon(out.append, 1)
    loop.stop()
    loop.run()  # one iteration
    assert out == [1]
    loop.call_later(0.01, out.append, 2)
    loop.call_later(0.02, loop.stop)
    loop.call_later(5, out.append, 3)
    loop.run()
    assert out == [1, 2]


def test_real_clock_timer(loop: Any) -> None:
    fired: list[float] = []
    t0 = loop.time()
    assert abs(t0 - time.monotonic()) < 0.5
    loop.call_later(0.05, lambda: fired.append(loop.time()))
    loop.call_later(0.06, loop.stop)
    loop.run()
    assert len(fired) == 1
    assert 0.05 <= fired[0] - t0 < 2.0


def test_real_clock_periodic_keeps_grid(loop: Any) -> None:
    fired: list[float] = []
    start = loop.time() + 0.02
    loop.call_periodic(0.02, lambda: fired.append(loop.time()), first=start)
    loop.call_at(start + 0.21, loop.stop)
    loop.run()
    assert 8 <= len(fired) <= 11
    # each firing is within its own interval: lateness does not accumulate
    for f in fired:
        k = round((f - start) / 0.02 - 0.25)
        assert 0 <= f - (start + k * 0.02) < 0.02 + 0.005


def test_idle_loop_does_not_spin(loop: Any) -> None:
    loop.call_later(0.3, loop.stop)
    c0 = time.thread_time()
    loop.run()
    assert time.thread_time() - c0 < 0.05


def test_closed_loop_refuses(impl: Any) -> None:
    lp = impl.Loop()
    t = lp.call_later(10, lambda: None)
    lp.close()
    lp.close()
    assert not t.active
    with pytest.raises(RuntimeError):
        lp.call_soon(lambda: None)
    with pytest.raises(RuntimeError):
        lp.run_once(0)
