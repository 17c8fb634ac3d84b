"""Benchmark `loop-udp`: UDP ping-pong on loopback, CPU per message.

Cases (``test_loop_udp[<impl>-<case>]``):
* ``pingpong`` -- 1000 pairs of connected UDP sockets, one datagram bouncing in each pair
  (every socket echoes what it reads), until FASTKA_BENCH_UDP_MESSAGES (default 200 000;
  the issue's 10^6 only takes longer) datagrams were read;
* ``idle`` -- the same with 100 active pairs and 10 000 more sockets registered but silent.

Implementations: ``c`` (bench/c/loop_udp.c: epoll + recv/send, compiled here),
``fastka`` (a Python callback per datagram via ``add_datagram_reader`` + ``send_datagram``),
``fastka-...-batch`` (``add_datagram_batch_reader``: one Python call per loop iteration
with every datagram read, replies returned and sent by the loop),
``fastka-...-capi`` (C callbacks through the loop's C API, ``_loop.pxd``: no Python per
datagram; recv/send, recvmmsg/sendmmsg for bursts), ``fastka-...-readers``
(``add_reader`` + ``socket.recv/send``), ``python`` (the reference, datagram API),
``asyncio`` and ``uvloop`` (``DatagramProtocol``).
Reported: CPU µs per message (the process's user+system time over the ping-pong only).
"""

from __future__ import annotations

import asyncio
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

MESSAGES = int(os.environ.get("FASTKA_BENCH_UDP_MESSAGES", "200000"))
CASES = {"pingpong": (1000, 0), "idle": (100, 10_000)}
PAYLOAD = b"x" * 32

table = table_fixture("loop-udp: UDP ping-pong on loopback", "us/msg")


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def _sockets(pairs: int, idle: int) -> tuple[list[tuple[socket.socket, socket.socket]], list[socket.socket]]:
    _raise_fd_limit(2 * pairs + idle + 200)
    ps = []
    for _ in range(pairs):
        a, b = _udp(), _udp()
        a.connect(b.getsockname())
        b.connect(a.getsockname())
        ps.append((a, b))
    return ps, [_udp() for _ in range(idle)]


def _close(ps: list[tuple[socket.socket, socket.socket]], idle: list[socket.socket]) -> None:
    for a, b in ps:
        a.close()
        b.close()
    for s in idle:
        s.close()


def _run_fastka_datagrams(mod: Any, pairs: int, idle: int) -> float:
    ps, idles = _sockets(pairs, idle)
    loop = mod.Loop()
    n = 0
    stop = loop.stop
    send = loop.send_datagram

    def echo(fd: int, data: bytes) -> None:
        nonlocal n
        n += 1
        if n == MESSAGES:
            stop()
        send(fd, data)

    for a, b in ps:
        loop.add_datagram_reader(a.fileno(), echo, a.fileno())
        loop.add_datagram_reader(b.fileno(), echo, b.fileno())
    for s in idles:
        loop.add_datagram_reader(s.fileno(), echo, s.fileno())
    c0 = cpu()
    for a, _ in ps:
        a.send(PAYLOAD)
    loop.run()
    c1 = cpu()
    loop.close()
    _close(ps, idles)
    assert n >= MESSAGES
    return (c1 - c0) / n


def _run_fastka_batch(mod: Any, pairs: int, idle: int) -> float:
    ps, idles = _sockets(pairs, idle)
    loop = mod.Loop()
    n = 0
    stop = loop.stop

    def echo(items: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        nonlocal n
        before = n
        n += len(items)
        if before < MESSAGES <= n:
            stop()
        return items  # the replies: each datagram back on its own socket

    for a, b in ps:
        loop.add_datagram_batch_reader(a.fileno(), echo)
        loop.add_datagram_batch_reader(b.fileno(), echo)
    for s in idles:
        loop.add_datagram_batch_reader(s.fileno(), echo)
    c0 = cpu()
    for a, _ in ps:
        a.send(PAYLOAD)
    loop.run()
    c1 = cpu()
    loop.close()
    _close(ps, idles)
    return (c1 - c0) / n


def _run_fastka_readers(mod: Any, pairs: int, idle: int) -> float:
    ps, idles = _sockets(pairs, idle)
    loop = mod.Loop()
    n = 0
    stop = loop.stop

    def echo(s: socket.socket) -> None:
        nonlocal n
        data = s.recv(2048)
        n += 1
        if n == MESSAGES:
            stop()
        s.send(data)

    for a, b in ps:
        loop.add_reader(a.fileno(), echo, a)
        loop.add_reader(b.fileno(), echo, b)
    for s in idles:
        loop.add_reader(s.fileno(), echo, s)
    c0 = cpu()
    for a, _ in ps:
        a.send(PAYLOAD)
    loop.run()
    c1 = cpu()
    loop.close()
    _close(ps, idles)
    return (c1 - c0) / n


def _run_fastka_c(pairs: int, idle: int) -> float:
    from fastka import _loop

    ps, idles = _sockets(pairs, idle)
    loop = _loop.Loop()
    fds = [s.fileno() for p in ps for s in p] + [s.fileno() for s in idles]
    echo = _loop._CEcho(loop, fds, MESSAGES)
    c0 = cpu()
    for a, _ in ps:
        a.send(PAYLOAD)
    loop.run()
    c1 = cpu()
    n = echo.count
    echo.stop()
    loop.close()
    _close(ps, idles)
    return (c1 - c0) / n


class _Echo(asyncio.DatagramProtocol):
    count = 0
    limit = 0
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        cls = _Echo
        cls.count += 1
        if cls.count == cls.limit:  # (uvloop queues a handle per stop())
            cls.loop.stop()
        self.transport.sendto(data)


def _run_asyncio(factory: Callable[[], asyncio.AbstractEventLoop], pairs: int, idle: int) -> float:
    ps, idles = _sockets(pairs, idle)
    loop = factory()
    _Echo.count = 0
    _Echo.limit = MESSAGES
    _Echo.loop = loop
    transports = []

    async def setup() -> None:
        for s in [x for p in ps for x in p] + idles:
            tr, _ = await loop.create_datagram_endpoint(_Echo, sock=s)
            transports.append(tr)

    loop.run_until_complete(setup())
    c0 = cpu()
    for a, _ in ps:
        a.send(PAYLOAD)
    loop.run_forever()
    c1 = cpu()
    n = _Echo.count
    for tr in transports:
        tr.close()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    _close(ps, idles)
    return (c1 - c0) / n


_C_BINARY: list[str] = []


def _c_binary() -> str:
    if not _C_BINARY:
        if shutil.which("gcc") is None:
            pytest.skip("no C compiler")
        out = Path(tempfile.mkdtemp(prefix="fk-bench-loop-")) / "loop_udp"
        src = Path(__file__).with_name("c") / "loop_udp.c"
        subprocess.run(["gcc", "-O2", "-o", str(out), str(src)], check=True)
        _C_BINARY.append(str(out))
    return _C_BINARY[0]


def _run_c(pairs: int, idle: int) -> float:
    _raise_fd_limit(2 * pairs + idle + 200)
    out = subprocess.run(
        [_c_binary(), str(pairs), str(MESSAGES), str(idle)], capture_output=True, text=True, check=True
    )
    seconds, n = out.stdout.split()
    return float(seconds) / int(n)


def _uvloop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


NEEDS_EXT = pytest.mark.skipif(not USE_EXTENSIONS, reason="no extensions")
NEEDS_UVLOOP = pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop not installed")
# (impl, variant): the variant is part of the case id, e.g. fastka-pingpong-capi
VARIANTS = [
    ("c", ""),
    ("fastka", "capi"),
    ("fastka", ""),
    ("fastka", "batch"),
    ("fastka", "readers"),
    ("python", ""),
    ("asyncio", ""),
    ("uvloop", ""),
]
PARAMS = [
    pytest.param(
        impl,
        case,
        variant,
        id=f"{impl}-{case}" + (f"-{variant}" if variant else ""),
        marks=[NEEDS_EXT] * (impl == "fastka") + [NEEDS_UVLOOP] * (impl == "uvloop"),
    )
    for case in CASES
    for impl, variant in VARIANTS
]


def _run(impl: str, variant: str, pairs: int, idle: int) -> float:
    if impl == "c":
        return _run_c(pairs, idle)
    if impl == "fastka":
        from fastka import _loop

        if variant == "capi":
            return _run_fastka_c(pairs, idle)
        if variant == "readers":
            return _run_fastka_readers(_loop, pairs, idle)
        if variant == "batch":
            return _run_fastka_batch(_loop, pairs, idle)
        return _run_fastka_datagrams(_loop, pairs, idle)
    if impl == "python":
        return _run_fastka_datagrams(_loop_py, pairs, idle)
    if impl == "asyncio":
        return _run_asyncio(asyncio.SelectorEventLoop, pairs, idle)
    return _run_asyncio(_uvloop, pairs, idle)


@pytest.mark.parametrize(("impl", "case", "variant"), PARAMS)
def test_loop_udp(benchmark: Any, table: Table, impl: str, case: str, variant: str) -> None:
    pairs, idle = CASES[case]
    benchmark.group = "loop-udp"
    per: list[float] = []
    rounds = 3 if impl in ("c", "fastka") else 2
    benchmark.pedantic(lambda: per.append(_run(impl, variant, pairs, idle)), rounds=rounds, iterations=1)
    us = min(per) * 1e6
    benchmark.extra_info.update(
        cpu_us_per_message=us, messages=MESSAGES, pairs=pairs, idle_fds=idle, per=MESSAGES, unit="msg"
    )
    table.add(f"{impl}-{case}" + (f"-{variant}" if variant else ""), us)
