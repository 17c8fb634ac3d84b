"""Signals through signalfd, thread wake-ups."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import loop_fixtures
import pytest

impl, loop, clock, floop = loop_fixtures.fixtures()

SIGNALS = [
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
    signal.SIGRTMIN + 2,
]


def _run_until(loop: Any, cond: Any, limit: float = 5.0) -> None:
    end = time.monotonic() + limit
    while not cond() and time.monotonic() < end:
        loop.run_once(0.1)


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name if s < 32 else f"RT{s}")
def test_signal_delivered_as_event(loop: Any, signum: int) -> None:
    assert threading.active_count() == 1, "a process-directed signal needs every thread to block it"
    got: list[int] = []
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    loop.add_signal_handler(signum, got.append)
    assert signum in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    os.kill(os.getpid(), signum)
    _run_until(loop, lambda: got)
    assert got == [signum]
    assert loop.remove_signal_handler(signum)
    assert not loop.remove_signal_handler(signum)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_rt_signals_queue_and_standard_ones_coalesce(loop: Any) -> None:
    got: list[int] = []
    rt = signal.SIGRTMIN + 2
    loop.add_signal_handler(rt, got.append)
    loop.add_signal_handler(signal.SIGUSR2, got.append)
    for _ in range(3):
        os.kill(os.getpid(), rt)
        os.kill(os.getpid(), signal.SIGUSR2)
    _run_until(loop, lambda: len(got) >= 4)
    loop.run_once(0.05)
    assert got.count(rt) == 3
    assert got.count(signal.SIGUSR2) == 1


def test_replace_handler_and_exception(loop: Any, caplog: Any) -> None:
    got: list[str] = []

    def boom(s: int) -> None:
        raise RuntimeError("handler failed")

    loop.add_signal_handler(signal.SIGUSR1, boom)
    os.kill(os.getpid(), signal.SIGUSR1)
    _run_until(loop, lambda: "handler failed" in caplog.text)
    assert "handler failed" in caplog.text
    loop.add_signal_handler(signal.SIGUSR1, lambda s: got.append("second"))
    os.kill(os.getpid(), signal.SIGUSR1)
    _run_until(loop, lambda: got)
    assert got == ["second"]


def test_remove_discards_pending_signal(loop: Any) -> None:
    """A signal that arrived but was not read yet must not hit the default action (death)
    when the handler is removed and the signal unblocked."""
    loop.add_signal_handler(signal.SIGUSR1, lambda s: None)
    os.kill(os.getpid(), signal.SIGUSR1)
    assert signal.SIGUSR1 in signal.sigpending()
    loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.SIGUSR1 not in signal.sigpending()


def test_close_restores_mask(impl: Any) -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    lp = impl.Loop()
    lp.add_signal_handler(signal.SIGUSR2, lambda s: None)
    lp.add_signal_handler(signal.SIGHUP, lambda s: None)
    lp.close()
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_invalid_signals(loop: Any) -> None:
    with pytest.raises(ValueError):
        loop.add_signal_handler(signal.SIGKILL, lambda s: None)
    with pytest.raises(ValueError):
        loop.add_signal_handler(0, lambda s: None)


def test_call_soon_threadsafe_wakes_blocked_loop(loop: Any) -> None:
    got: list[Any] = []
    loop.call_later(30, got.append, "too late")

    def worker() -> None:
        time.sleep(0.05)
        loop.call_soon_threadsafe(got.append, threading.get_ident())

    th = threading.Thread(target=worker)
    t0 = time.monotonic()
    th.start()
    loop.run_once(None)  # blocks on epoll until the eventfd is written
    if not got:
        loop.run_once(1)  # woken in one iteration, dispatched in the next
    th.join()
    assert got == [th.ident]
    assert time.monotonic() - t0 < 10


def test_call_soon_threadsafe_many(loop: Any) -> None:
    got: list[int] = []
    ths = [
        threading.Thread(target=lambda i=i: [loop.call_soon_threadsafe(got.append, i) for _ in range(100)])
        for i in range(4)
    ]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    for _ in range(5):
        loop.run_once(0)
    assert sorted(got) == sorted(i for i in range(4) for _ in range(100))
