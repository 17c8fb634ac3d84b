"""Benchmark `timers`: 100 000 timers at random deadlines within 10 s, half of them
re-armed (as master-down timers re-armed by every advert), then all fired.

Cases:
* ``<impl>-fakeclock`` -- the loop's clock is a fake one that jumps through the 10 s in
  1 s steps (one loop iteration each), so the whole lifecycle is measured without
  waiting: arming, re-arming (asyncio/uvloop: cancel + new handle), ordering and firing.
  ``fastka-fakeclock-capi`` is the same with C-level timers (``_loop.pxd`` API, armed
  through the ``_CProbe`` test hook).
  uvloop's clock cannot be faked (libuv's), so it has no fakeclock case.
* ``<impl>-realtime`` -- the same workload on the real clock: 10 s of wall time each,
  CPU time measured (includes every wake-up of the loop); one round.

Reported: CPU time per timer lifecycle (ns). The callback is a C-level callable
(``itertools.count().__next__``) for every implementation, so the loop is measured, not
the callback; the cyclic GC is off while measuring (FASTKA_BENCH_GC=1: on).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import random
from array import array
from typing import Any

import pytest

from _loopbench import HAVE_UVLOOP, FakeClock, Table, cpu, table_fixture
from fastka import _loop_py
from fastka._compat import USE_EXTENSIONS

N = 100_000
SPAN = 10.0
REALTIME_SPAN = float(os.environ.get("FASTKA_BENCH_TIMER_SPAN", SPAN))

table = table_fixture("timers: 100k timers within 10 s, half re-armed, all fired", "ns/timer")


def workload(seed: int = 1) -> tuple[list[float], list[float]]:
    rnd = random.Random(seed)
    return [rnd.uniform(0, SPAN) for _ in range(N)], [rnd.uniform(0, SPAN) for _ in range(N // 2)]


D1, D2 = workload()


def _loop_api(mod: Any) -> float:
    clock = FakeClock()
    loop = mod.Loop(clock=clock)
    fired = itertools.count()
    cb = fired.__next__
    base = clock.now
    c0 = cpu()
    call_at = loop.call_at
    timers = [call_at(base + d, cb) for d in D1]
    for t, d in zip(timers, D2, strict=False):
        t.reschedule(base + d)
    for step in range(1, 12):
        clock.now = base + step
        loop.run_once(0)
    c1 = cpu()
    assert next(fired) == N
    loop.close()
    return c1 - c0


def _c_level() -> float:
    from fastka import _loop

    clock = FakeClock()
    loop = _loop.Loop(clock=clock)
    base = clock.now
    d1 = array("d", [base + d for d in D1])
    d2 = array("d", [base + d for d in D2])
    probe = _loop._CProbe(loop, N, 0)
    c0 = cpu()
    probe.arm_many(d1)
    probe.arm_many(d2)  # re-arm the first half
    for step in range(1, 12):
        clock.now = base + step
        loop.run_once(0)
    c1 = cpu()
    assert probe.count == N
    loop.close()
    return c1 - c0


class _FakeTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._fake = clock

    def time(self) -> float:
        return self._fake.now


def _asyncio_fake() -> float:
    clock = FakeClock()
    loop = _FakeTimeLoop(clock)
    fired = itertools.count()
    cb = fired.__next__
    base = clock.now
    c0 = cpu()
    call_at = loop.call_at
    handles = [call_at(base + d, cb) for d in D1]
    for i, d in enumerate(D2):
        handles[i].cancel()
        handles[i] = call_at(base + d, cb)
    for step in range(1, 12):
        clock.now = base + step
        loop.call_soon(loop.stop)
        loop.run_forever()
    c1 = cpu()
    assert next(fired) == N
    loop.close()
    return c1 - c0


def _realtime_loop_api(mod: Any) -> float:
    loop = mod.Loop()
    fired = itertools.count()
    cb = fired.__next__
    scale = REALTIME_SPAN / SPAN
    c0 = cpu()
    base = loop.time()
    timers = [loop.call_at(base + d * scale, cb) for d in D1]
    for t, d in zip(timers, D2, strict=False):
        t.reschedule(base + d * scale)
    loop.call_at(base + REALTIME_SPAN + 0.01, loop.stop)
    loop.run()
    c1 = cpu()
    assert next(fired) == N
    loop.close()
    return c1 - c0


def _realtime_asyncio(factory: Any) -> float:
    loop = factory()
    fired = itertools.count()
    cb = fired.__next__
    scale = REALTIME_SPAN / SPAN
    c0 = cpu()
    base = loop.time()
    handles = [loop.call_at(base + d * scale, cb) for d in D1]
    for i, d in enumerate(D2):
        handles[i].cancel()
        handles[i] = loop.call_at(base + d * scale, cb)
    loop.call_at(base + REALTIME_SPAN + 0.01, loop.stop)
    loop.run_forever()
    c1 = cpu()
    assert next(fired) == N
    loop.close()
    return c1 - c0


def _uvloop_factory() -> Any:
    import uvloop

    return uvloop.new_event_loop()


NEEDS_EXT = pytest.mark.skipif(not USE_EXTENSIONS, reason="no extensions")
NEEDS_UVLOOP = pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop not installed")
PARAMS = [
    pytest.param("fastka", "fakeclock-capi", id="fastka-fakeclock-capi", marks=NEEDS_EXT),
    pytest.param("fastka", "fakeclock", id="fastka-fakeclock", marks=NEEDS_EXT),
    pytest.param("python", "fakeclock", id="python-fakeclock"),
    pytest.param("asyncio", "fakeclock", id="asyncio-fakeclock"),
    pytest.param("fastka", "realtime", id="fastka-realtime", marks=NEEDS_EXT),
    pytest.param("python", "realtime", id="python-realtime"),
    pytest.param("asyncio", "realtime", id="asyncio-realtime"),
    pytest.param("uvloop", "realtime", id="uvloop-realtime", marks=NEEDS_UVLOOP),
]


def _run(impl: str, case: str) -> float:
    # The cyclic GC is off while measuring (every implementation): with 100 000 live
    # timer objects its full collections would dominate what is measured.
    # FASTKA_BENCH_GC=1 keeps it on.
    if os.environ.get("FASTKA_BENCH_GC", "") not in ("", "0"):
        return _run_gc(impl, case)
    gc.collect()
    gc.disable()
    try:
        return _run_gc(impl, case)
    finally:
        gc.enable()


def _run_gc(impl: str, case: str) -> float:
    if case == "fakeclock-capi":
        return _c_level()
    if impl == "fastka":
        from fastka import _loop

        mod: Any = _loop
    else:
        mod = _loop_py
    if case == "fakeclock":
        return _loop_api(mod) if impl != "asyncio" else _asyncio_fake()
    if impl == "asyncio":
        return _realtime_asyncio(asyncio.SelectorEventLoop)
    if impl == "uvloop":
        return _realtime_asyncio(_uvloop_factory)
    return _realtime_loop_api(mod)


@pytest.mark.parametrize(("impl", "case"), PARAMS)
def test_timers(benchmark: Any, table: Table, impl: str, case: str) -> None:
    benchmark.group = "timers"
    cpus: list[float] = []
    rounds = 1 if case == "realtime" else (5 if impl == "fastka" else 3)
    benchmark.pedantic(lambda: cpus.append(_run(impl, case)), rounds=rounds, iterations=1)
    per = min(cpus) / N * 1e9
    benchmark.extra_info.update(cpu_ns_per_timer=per, timers=N, per=N, unit="timer")
    note = f"{REALTIME_SPAN:g} s of wall time" if case == "realtime" else ""
    table.add(f"{impl}-{case}", per, note)
