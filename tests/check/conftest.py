"""Fixtures for the checker tests: a fake clock loop and scripted probes."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fastka.check.base import Done, Result


class FakeTimer:
    def __init__(self, loop: FakeLoop, when: float, cb: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.loop = loop
        self.when = when
        self.cb = cb
        self.args = args
        self.active = True

    def cancel(self) -> None:
        self.active = False


class FakeLoop:
    """Virtual time: ``advance(dt)`` fires due timers in deadline order (FIFO on ties)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._heap: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()
        self.readers: dict[int, Any] = {}
        self.writers: dict[int, Any] = {}
        self.spawned: list[tuple[list[str], Callable[[int, int], Any]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, cb: Callable[..., Any], *args: Any) -> FakeTimer:
        t = FakeTimer(self, when, cb, args)
        heapq.heappush(self._heap, (when, next(self._seq), t))
        return t

    def call_later(self, delay: float, cb: Callable[..., Any], *args: Any) -> FakeTimer:
        return self.call_at(self.now + delay, cb, *args)

    def call_soon(self, cb: Callable[..., Any], *args: Any) -> FakeTimer:
        return self.call_at(self.now, cb, *args)

    def add_reader(self, fd: int, cb: Callable[..., Any], *args: Any) -> None:
        self.readers[fd] = (cb, args)

    def remove_reader(self, fd: int) -> bool:
        return self.readers.pop(fd, None) is not None

    def add_writer(self, fd: int, cb: Callable[..., Any], *args: Any) -> None:
        self.writers[fd] = (cb, args)

    def remove_writer(self, fd: int) -> bool:
        return self.writers.pop(fd, None) is not None

    def spawn(self, argv: Any, callback: Callable[[int, int], Any], **kw: Any) -> int:
        self.spawned.append((list(argv), callback))
        return 10000 + len(self.spawned)

    def advance(self, dt: float) -> None:
        end = self.now + dt
        while self._heap and self._heap[0][0] <= end + 1e-9:
            when, _, t = heapq.heappop(self._heap)
            if not t.active:
                continue
            t.active = False
            self.now = max(self.now, when)
            t.cb(*t.args)
        self.now = end


class ScriptedProbe:
    """A probe whose results come from a callable ``verdict(step) -> Result | bool``,
    answered ``latency`` seconds after the start."""

    def __init__(self, loop: FakeLoop, verdict: Callable[[int], Result | bool], latency: float = 0.0) -> None:
        self.loop = loop
        self.verdict = verdict
        self.latency = latency
        self.starts: list[tuple[float, int]] = []
        self._timer: FakeTimer | None = None

    def start(self, step: int, done: Done, now: float | None = None) -> None:
        self.starts.append((self.loop.now, step))

        def answer() -> None:
            self._timer = None
            v = self.verdict(step)
            done(v if isinstance(v, Result) else Result(bool(v), "scripted"))

        self._timer = self.loop.call_later(self.latency, answer)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Switch:
    """A mutable verdict shared by a test and its probes."""

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.weight: int | None = None

    def __call__(self, step: int) -> Result:
        return Result(self.ok, "switch", self.weight if self.ok else None)


@pytest.fixture
def fake_loop() -> Iterator[FakeLoop]:
    yield FakeLoop()
