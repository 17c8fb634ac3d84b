"""Benchmark `tcp-connect-check`: Keepalived's TCP_CHECK at 1000 checks per second.

1000 listening ports on 127.0.0.1 (never accepted: the kernel completes each handshake
into the backlog), one non-blocking connect check per port per second, spread evenly
over the second, with a 1 s timeout; FASTKA_BENCH_CHECK_SECONDS (default 3) seconds of
checks, then the last results. Reported: CPU µs per check (user+system of the process,
scheduling timers included).

Implementations: ``c`` (bench/c/tcp_check.c: epoll, compiled here), ``fastka``
(``Loop.connect_check``: socket, connect, wait and close in C; periodic timers),
``fastka-...-waiter`` (Python sockets + ``wait_writable``), ``python`` (the reference's
``connect_check``), ``asyncio`` and ``uvloop`` (socket + ``add_writer`` + ``call_later``
timeout: their cheapest way; ``sock_connect`` + ``wait_for`` costs more).
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _loopbench import HAVE_UVLOOP, Table, cpu, table_fixture
from fastka import _loop_py
from fastka._compat import USE_EXTENSIONS

PORTS = 1000
SECONDS = int(os.environ.get("FASTKA_BENCH_CHECK_SECONDS", "3"))
TIMEOUT = 1.0

table = table_fixture("tcp-connect-check: 1000 ports, one check per port per second", "us/check")


def _listeners() -> list[socket.socket]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * PORTS + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * PORTS + 4000), hard))
    out = []
    for _ in range(PORTS):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(4096)
        out.append(s)
    return out


class _Tally:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.stop: Callable[[], None] = lambda: None

    def result(self, err: int) -> None:
        self.done += 1
        if err:
            self.failed += 1
        if self.done == self.total:
            self.stop()


def _run_fastka(mod: Any, style: str) -> float:
    ls = _listeners()
    ports = [s.getsockname()[1] for s in ls]
    loop = mod.Loop()
    tally = _Tally(PORTS * SECONDS)
    tally.stop = loop.stop
    result = tally.result
    started = [0]
    timers: list[Any] = []

    def stop_starting() -> None:
        for t in timers:
            t.cancel()

    if style == "check":
        connect_check = loop.connect_check

        def start(port: int) -> None:
            started[0] += 1
            if started[0] == tally.total:
                stop_starting()
            connect_check("127.0.0.1", port, TIMEOUT, result)

    else:
        wait_writable = loop.wait_writable

        def start(port: int) -> None:
            started[0] += 1
            if started[0] == tally.total:
                stop_starting()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            err = s.connect_ex(("127.0.0.1", port))
            if err != errno.EINPROGRESS:
                s.close()
                result(err)
                return

            def done(ok: bool) -> None:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if ok else errno.ETIMEDOUT
                s.close()
                result(err)

            wait_writable(s, TIMEOUT, done)

    first = loop.time() + 0.01
    c0 = cpu()
    timers.extend(loop.call_periodic(1.0, start, p, first=first + i / PORTS) for i, p in enumerate(ports))
    loop.run()
    c1 = cpu()
    loop.close()
    for s in ls:
        s.close()
    assert tally.failed == 0 and started[0] == tally.total, (tally.failed, started[0])
    return (c1 - c0) / tally.done


def _run_asyncio(factory: Callable[[], asyncio.AbstractEventLoop]) -> float:
    ls = _listeners()
    ports = [s.getsockname()[1] for s in ls]
    loop = factory()
    tally = _Tally(PORTS * SECONDS)
    tally.stop = loop.stop
    result = tally.result

    def on_writable(s: socket.socket, fd: int, h: asyncio.TimerHandle) -> None:
        loop.remove_writer(fd)
        h.cancel()
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        s.close()
        result(err)

    def on_timeout(s: socket.socket, fd: int) -> None:
        loop.remove_writer(fd)
        s.close()
        result(errno.ETIMEDOUT)

    def start(port: int, when: float, k: int) -> None:
        if k + 1 < SECONDS:
            loop.call_at(when + 1.0, start, port, when + 1.0, k + 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        err = s.connect_ex(("127.0.0.1", port))
        if err != errno.EINPROGRESS:
            s.close()
            result(err)
            return
        fd = s.fileno()
        h = loop.call_later(TIMEOUT, on_timeout, s, fd)
        loop.add_writer(fd, on_writable, s, fd, h)

    first = loop.time() + 0.01
    c0 = cpu()
    for i, p in enumerate(ports):
        loop.call_at(first + i / PORTS, start, p, first + i / PORTS, 0)
    loop.run_forever()
    c1 = cpu()
    loop.close()
    for s in ls:
        s.close()
    assert tally.failed == 0
    return (c1 - c0) / tally.done


_C_BINARY: list[str] = []


def _run_c() -> float:
    if not _C_BINARY:
        if shutil.which("gcc") is None:
            pytest.skip("no C compiler")
        out = Path(tempfile.mkdtemp(prefix="fk-bench-loop-")) / "tcp_check"
        subprocess.run(
            ["gcc", "-O2", "-o", str(out), str(Path(__file__).with_name("c") / "tcp_check.c")], check=True
        )
        _C_BINARY.append(str(out))
    res = subprocess.run([_C_BINARY[0], str(PORTS), str(SECONDS)], capture_output=True, text=True, check=True)
    seconds, n, failed = res.stdout.split()
    assert failed == "0"
    return float(seconds) / int(n)


def _uvloop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


NEEDS_EXT = pytest.mark.skipif(not USE_EXTENSIONS, reason="no extensions")
NEEDS_UVLOOP = pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop not installed")
PARAMS = [
    pytest.param("c", "", id="c-1000ports"),
    pytest.param("fastka", "", id="fastka-1000ports", marks=NEEDS_EXT),
    pytest.param("fastka", "waiter", id="fastka-1000ports-waiter", marks=NEEDS_EXT),
    pytest.param("python", "", id="python-1000ports"),
    pytest.param("asyncio", "", id="asyncio-1000ports"),
    pytest.param("uvloop", "", id="uvloop-1000ports", marks=NEEDS_UVLOOP),
]


def _run(impl: str, variant: str) -> float:
    if impl == "c":
        return _run_c()
    if impl == "fastka":
        from fastka import _loop

        return _run_fastka(_loop, "waiter" if variant else "check")
    if impl == "python":
        return _run_fastka(_loop_py, "check")
    return _run_asyncio(asyncio.SelectorEventLoop if impl == "asyncio" else _uvloop)


@pytest.mark.parametrize(("impl", "variant"), PARAMS)
def test_tcp_connect_check(benchmark: Any, table: Table, impl: str, variant: str) -> None:
    benchmark.group = "tcp-connect-check"
    per: list[float] = []
    benchmark.pedantic(lambda: per.append(_run(impl, variant)), rounds=3, iterations=1)
    us = min(per) * 1e6
    benchmark.extra_info.update(
        cpu_us_per_check=us, checks=PORTS * SECONDS, per=PORTS * SECONDS, unit="check"
    )
    table.add(f"{impl}-1000ports" + (f"-{variant}" if variant else ""), us)
