"""The C level of the compiled loop (``_loop.pxd``): C timers and fd watchers whose
callbacks never enter Python, through the test hook ``fastka._loop._CProbe`` and through
a separately compiled module that ``cimport``s the API (as ``_vrrp.pyx`` will)."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import sysconfig
from array import array
from pathlib import Path
from typing import Any

import pytest
from loop_fixtures import FakeClock

from fastka._compat import USE_EXTENSIONS

pytestmark = [
    pytest.mark.compiled,
    pytest.mark.skipif(not USE_EXTENSIONS, reason="FASTKA_NO_EXTENSIONS=1: no C level"),
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mod() -> Any:
    import fastka._loop

    return fastka._loop


@pytest.fixture
def fl(mod: Any, clock: FakeClock) -> Any:
    lp = mod.Loop(clock=clock)
    yield lp
    lp.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_c_and_python_timers_share_one_order(fl: Any, mod: Any, clock: FakeClock) -> None:
    p = mod._CProbe(fl, 4)
    seen: list[int] = []
    p.arm(0, clock.now + 0.002)
    fl.call_at(clock.now + 0.002, lambda: seen.append(p.count))
    p.arm(1, clock.now + 0.002)
    p.arm(2, clock.now + 0.001)
    p.arm(3, clock.now + 0.005)
    p.cancel(3)
    assert not p.active(3) and p.active(0)
    clock.advance(0.002)
    fl.run_once(0)
    assert p.fired() == [2, 0, 1]
    assert seen == [2]  # the Python timer ran between C timers 0 and 1 (FIFO in the tick)
    assert not p.active(0)


def test_python_callback_cancels_due_c_timer(fl: Any, mod: Any, clock: FakeClock) -> None:
    p = mod._CProbe(fl, 2)
    fl.call_at(clock.now + 0.001, p.cancel, 0)
    p.arm(0, clock.now + 0.001)
    p.arm(1, clock.now + 0.001)
    clock.advance(0.001)
    fl.run_once(0)
    assert p.fired() == [1]


def test_self_rearming_c_timer_keeps_its_grid(fl: Any, mod: Any, clock: FakeClock) -> None:
    p = mod._CProbe(fl, 1)
    start = clock.now + 1.0
    p.arm(0, start, 1.0)
    for k in range(5):
        clock.now = start + k + 0.0004 * k
        fl.run_once(0)
    assert p.count == 5
    assert p.when(0) == pytest.approx(start + 5.0)


def test_c_timers_far_and_many(fl: Any, mod: Any, clock: FakeClock) -> None:
    n = 200_000
    p = mod._CProbe(fl, n, 0)
    import random

    rnd = random.Random(3)
    p.arm_many(array("d", [clock.now + rnd.random() * 7200 for _ in range(n)]))
    p.cancel_many(0, n // 4)
    for _ in range(12):
        clock.advance(600)
        fl.run_once(0)
    assert p.count == n - n // 4


def test_c_watcher(fl: Any, mod: Any) -> None:
    a, b = socket.socketpair()
    try:
        p = mod._CProbe(fl, 0)
        p.watch(a, mod.EPOLLIN_)
        with pytest.raises(OSError):
            fl.add_reader(a, lambda: None)  # the C watcher owns the fd
        b.send(b"hello")
        fl.run_once(1)
        assert (p.io_events, p.io_bytes) == (1, 5)
        p.modify(mod.EPOLLIN_ | mod.EPOLLOUT_)
        fl.run_once(1)
        assert p.io_writable == 1
        p.unwatch()
        assert not p.watching
        fl.add_reader(a, lambda: None)
        with pytest.raises(OSError):
            p.watch(a, mod.EPOLLIN_)  # and vice versa
        assert fl.remove_reader(a)
    finally:
        a.close()
        b.close()


def test_close_stops_c_timers_and_watchers(mod: Any, clock: FakeClock) -> None:
    lp = mod.Loop(clock=clock)
    p = mod._CProbe(lp, 1)
    a, b = socket.socketpair()
    try:
        p.arm(0, clock.now + 1)
        p.watch(a, mod.EPOLLIN_)
        lp.close()
        assert not p.active(0)
        assert not p.watching
        with pytest.raises(RuntimeError):
            p.arm(0, clock.now + 1)
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_cimport_from_another_module(tmp_path: Path, clock: FakeClock) -> None:
    """Build tests/loop/capi_consumer.pyx against src/fastka/_loop.pxd and run it: an
    advert timer and a master-down timer re-armed by received packets, all in C."""
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    src = tmp_path / "capi_consumer.pyx"
    shutil.copy(Path(__file__).with_name("capi_consumer.pyx"), src)
    cfile = tmp_path / "capi_consumer.c"
    subprocess.run(
        [sys.executable, "-m", "cython", "-3", "-I", str(ROOT / "src"), str(src), "-o", str(cfile)],
        check=True,
        capture_output=True,
    )
    so = tmp_path / f"capi_consumer{sysconfig.get_config_var('EXT_SUFFIX')}"
    inc = sysconfig.get_paths()["include"]
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-w", f"-I{inc}", str(cfile), "-o", str(so)],
        check=True,
        capture_output=True,
    )
    spec = importlib.util.spec_from_file_location("capi_consumer", so)
    assert spec is not None and spec.loader is not None
    consumer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(consumer)

    import fastka._loop

    lp = fastka._loop.Loop(clock=clock)
    a, b = socket.socketpair()
    try:
        adv = consumer.Advertiser(lp, 1.0, 3.0)
        start = clock.now + 1.0
        adv.start(start, a.fileno())
        for k in range(6):  # adverts at start + k; a packet every second keeps "down" away
            clock.now = start + k
            b.send(b"advert")
            lp.run_once(0)
        assert adv.sent == 6
        assert adv.received == 6
        assert adv.down_fired == 0
        assert adv.next_advert == pytest.approx(start + 6)
        clock.advance(3.0)  # silence: the master-down timer fires
        lp.run_once(0)
        assert adv.down_fired == 1
        adv.stop()
    finally:
        lp.close()
        a.close()
        b.close()
