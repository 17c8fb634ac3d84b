"""Benchmarks `tcp-check` and `http-get`: CPU per TCP_CHECK and per HTTP_GET of the
checker engine, on loopback, at 1000 checks per second.

The whole engine (``CheckerManager``: FSM, checks, loop; IPVS in memory) checks 1000 real
servers with one checker each, ``delay_loop`` 1 s, all up: the steady state. The targets
are 1000 listeners on 127.0.0.1 in a separate process (``python bench/test_checks.py
serve tcp|http N``: accept and close, or read the request and answer 200), which also
counts what it served. After a warm-up (1 s bootstrap + up to 1 s warmup spread + 1 s),
CPU time of this process over a window, divided by the checks the target served in it.

Implementations: ``fastka`` (compiled loop, compiled checks: ``fastka._check``),
``python`` (the references: ``fastka._loop_py`` + ``fastka._check_py``, what
``FASTKA_NO_EXTENSIONS=1`` runs) and ``streamprobe`` (compiled loop with the Python probes
of ``fastka.check.tcp``/``http`` and the plain ``Checker``: the engine before the
compiled checks). ``FASTKA_BENCH_CHECK_WINDOW`` (default 3) seconds per window.

    .venv/bin/pytest bench/test_checks.py --benchmark-only -s
"""

from __future__ import annotations

import os
import random
import resource
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from _loopbench import Table, cpu, table_fixture
from fastka._compat import USE_EXTENSIONS

N = 1000
WINDOW = float(os.environ.get("FASTKA_BENCH_CHECK_WINDOW", "3"))

table = table_fixture("checks: 1000 real servers, delay_loop 1 s, on loopback", "us/check")


# ---------------------------------------------------------------------- the target process
def serve(kind: str, n: int) -> None:
    """N listeners on 127.0.0.1; prints the ports, then the served count for each line read."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "compare"))
    from _checks_target import Responder

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 3 * n + 1000), hard))
    ep = select.epoll()
    listeners: dict[int, socket.socket] = {}
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        s.setblocking(False)
        listeners[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    ep.register(0, select.EPOLLIN)
    responder = Responder(kind, ep)
    print(" ".join(str(s.getsockname()[1]) for s in listeners.values()), flush=True)
    while True:
        for fd, _ in ep.poll():
            if fd == 0:
                if not os.read(0, 64):
                    return
                print(responder.served, flush=True)
            elif fd in listeners:
                responder.accept(listeners[fd])
            else:
                responder.readable(fd)


class Target:
    def __init__(self, kind: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", kind, str(N)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        self.ports = [int(p) for p in self.proc.stdout.readline().split()]

    def served(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"?\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()


# ---------------------------------------------------------------------- the engine
def _rusage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def measure(kind: str, impl: str) -> tuple[float, int, int, float]:
    """(CPU µs per check, checks in the window, real servers alive, user µs per check)."""
    from fastka.check import fsm, manager
    from fastka.check.sink import MemorySink
    from fastka.check.spec import (
        CheckConfig,
        CheckerSpec,
        HttpParams,
        RealServerSpec,
        ServiceSpec,
        TcpParams,
        UrlSpec,
        VirtualServerSpec,
    )

    if impl == "python":
        from fastka._loop_py import Loop
    else:
        from fastka._loop import Loop  # type: ignore[no-redef]

    target = Target(kind)
    params = (
        TcpParams() if kind == "tcp" else HttpParams(urls=(UrlSpec(path="/", status_code=((200, 200),)),))
    )
    chk = CheckerSpec(params=params, delay_loop=1.0, connect_timeout=2.0, retry=1, delay_before_retry=1.0)
    rss = tuple(RealServerSpec("127.0.0.1", p, checkers=(chk,)) for p in target.ports)
    svc = ServiceSpec(socket.AF_INET, "tcp", "10.0.0.1", 80, sched_name="rr")
    config = CheckConfig(virtual_servers=(VirtualServerSpec(services=(svc,), real_servers=rss),))
    loop = Loop()

    class Manager(manager.CheckerManager):
        def make_checker(self, cs: CheckerSpec, rs: fsm.RealServer) -> fsm.CheckerBase:
            if impl == "streamprobe":
                from fastka.check.base import Target as T
                from fastka.check.http import HttpProbe
                from fastka.check.tcp import TcpProbe

                tgt = T.of(cs, rs.spec.address, rs.spec.port)
                p = cs.params
                probe: Any = (
                    TcpProbe(loop, tgt, cs.connect_timeout)
                    if isinstance(p, TcpParams)
                    else HttpProbe(loop, tgt, cs.connect_timeout, p)  # type: ignore[arg-type]
                )
                return fsm.Checker(cs, probe, rs, loop, recheck_after_recovery=not isinstance(p, TcpParams))
            return super().make_checker(cs, rs)

    mgr = Manager(loop, config, MemorySink(), rng=random.Random(1))
    try:
        mgr.start()
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            loop.run_once(0.1)
        s0, c0, u0 = target.served(), cpu(), _rusage()[0]
        end = time.monotonic() + WINDOW
        while time.monotonic() < end:
            loop.run_once(0.1)
        c1, u1, s1 = cpu(), _rusage()[0], target.served()
        (vs,) = mgr.vss.values()
        alive = sum(1 for r in vs.rss.values() if r.alive)
        mgr.shutdown()
    finally:
        loop.close()
        target.close()
    n = max(1, s1 - s0)
    return (c1 - c0) / n * 1e6, s1 - s0, alive, (u1 - u0) / n * 1e6


NEEDS_EXT = pytest.mark.skipif(not USE_EXTENSIONS, reason="no extensions")
IMPLS = [
    pytest.param("fastka", id="fastka", marks=NEEDS_EXT),
    pytest.param("python", id="python"),
    pytest.param("streamprobe", id="streamprobe", marks=NEEDS_EXT),
]


def _bench(benchmark: Any, table: Table, kind: str, impl: str) -> None:
    benchmark.group = "tcp-check" if kind == "tcp" else "http-get"
    runs: list[tuple[float, int, int, float]] = []
    benchmark.pedantic(lambda: runs.append(measure(kind, impl)), rounds=3, iterations=1)
    best = min(runs)
    for _us, checks, alive, _user in runs:
        assert alive == N, "a real server was marked down: the host is too busy for this benchmark"
        assert checks > 0.5 * N * WINDOW, f"only {checks} checks in {WINDOW} s"
    benchmark.extra_info.update(
        cpu_us_per_check=best[0], user_us_per_check=best[3], checks_per_s=best[1] / WINDOW
    )
    table.add(f"{impl}-{kind}", best[0], f"{best[1] / WINDOW:.0f} checks/s, user {best[3]:.0f} us/check")


@pytest.mark.parametrize("impl", IMPLS)
def test_tcp_check(benchmark: Any, table: Table, impl: str) -> None:
    _bench(benchmark, table, "tcp", impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_http_get(benchmark: Any, table: Table, impl: str) -> None:
    _bench(benchmark, table, "http", impl)


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    serve(sys.argv[2], int(sys.argv[3]))
