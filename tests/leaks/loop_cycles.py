"""Leak probe for the event loop, run in a subprocess by test_loop_leaks.py.

usage: python loop_cycles.py MODULE CYCLES

Runs CYCLES timer lifecycles (arm, half cancelled or re-armed, fire) plus fd waits,
loop creation/closing and signal handler churn, and prints one JSON line with the RSS
and the number of open fds after a warm-up and at the end.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import socket
import sys

import psutil


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def main() -> None:
    mod = importlib.import_module(sys.argv[1])
    cycles = int(sys.argv[2])
    proc = psutil.Process()
    clock = Clock()
    loop = mod.Loop(clock=clock)
    a, b = socket.socketpair()
    a.setblocking(False)
    fired = [0]

    def cb(*args: object) -> None:
        fired[0] += 1

    def on_ready(ok: bool) -> None:
        fired[0] += 1

    batch = 1000
    rounds = cycles // batch
    marks: dict[str, tuple[int, int]] = {}
    far = loop.call_later(3600, cb)
    for r in range(rounds):
        for i in range(batch):  # one timer re-armed over and over: its old entries go away
            far.reschedule(clock.now + 3600 + i / 1000)
        timers = [loop.call_at(clock.now + (i % 97) / 1000, cb, i) for i in range(batch)]
        for t in timers[: batch // 4]:
            t.cancel()
        for t in timers[batch // 4 : batch // 2]:
            t.reschedule(clock.now + 0.2)
        p = loop.call_periodic(0.01, cb)
        w = loop.wait_readable(a, 0.05, on_ready)
        if r % 2:
            b.send(b"x")
        clock.now += 0.3
        loop.run_once(0)
        loop.run_once(0)
        if r % 2:
            a.recv(10)
        p.cancel()
        w.cancel()
        del timers
        if r % 50 == 0:
            other = mod.Loop()
            other.add_signal_handler(signal.SIGUSR2, cb)
            other.close()
        if r == rounds // 10:
            gc.collect()
            marks["warm"] = (proc.memory_info().rss, len(os.listdir("/proc/self/fd")))
    stats = loop._wheel_stats() if hasattr(loop, "_wheel_stats") else None
    loop.close()
    a.close()
    b.close()
    gc.collect()
    marks["end"] = (proc.memory_info().rss, len(os.listdir("/proc/self/fd")))
    print(
        json.dumps(
            {"fired": fired[0], "rounds": rounds, "wheel": stats, **{k: list(v) for k, v in marks.items()}}
        )
    )


if __name__ == "__main__":
    main()
