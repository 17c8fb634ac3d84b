"""Guest half of ``bench/compare/uml_costs.py``: what the pieces of a health check cost
in this guest, in CPU time accounted to the calling process (busy loops of thousands of
calls, so the 10 ms accounting tick averages out). Prints one line per item."""

from __future__ import annotations

import errno
import os
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable

TARGET = """
import select, socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 80)); l.listen(4096); l.setblocking(False)
ep = select.epoll(); ep.register(l.fileno(), select.EPOLLIN)
print("ready", flush=True)
while True:
    ep.poll()
    while True:
        try:
            c, _ = l.accept()
        except BlockingIOError:
            break
        c.close()
"""
FLAGS = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench(name: str, fn: Callable[[], object], n: int) -> None:
    c0, t0 = cpu(), time.perf_counter()
    for _ in range(n):
        fn()
    t1, c1 = time.perf_counter(), cpu()
    print(f"{name:58} {(c1 - c0) / n * 1e6:7.1f} µs CPU  ({(t1 - t0) / n * 1e6:7.1f} µs wall)", flush=True)


def main() -> None:
    for cmd in ("ip -n rs1 addr add 10.2.0.0/16 dev lo", "ip route add 10.2.0.0/16 via 10.1.0.11"):
        subprocess.run(cmd.split(), check=True)
    srv = subprocess.Popen(
        ["ip", "netns", "exec", "rs1", sys.executable, "-c", TARGET], stdout=subprocess.PIPE
    )
    assert srv.stdout is not None and srv.stdout.readline().strip() == b"ready"
    ep = select.epoll()
    i = [0]

    def addr() -> tuple[str, int]:
        i[0] += 1
        return (f"10.2.{(i[0] // 250) % 4}.{i[0] % 250 + 1}", 80)

    def socket_close() -> None:
        socket.socket(socket.AF_INET, FLAGS).close()

    def floor() -> None:
        s = socket.socket(socket.AF_INET, FLAGS)
        s.connect_ex(addr())
        s.close()

    def fastka_tcp() -> None:
        s = socket.socket(socket.AF_INET, FLAGS)
        a = addr()
        if s.connect_ex(a) == errno.EINPROGRESS:
            s.connect_ex(a)
        s.close()

    def keepalived_like() -> None:
        s = socket.socket(socket.AF_INET, FLAGS)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.connect_ex(addr())
        ep.register(s.fileno(), select.EPOLLOUT)
        ep.poll(1)
        s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        time.clock_gettime(time.CLOCK_MONOTONIC)
        ep.unregister(s.fileno())
        s.close()

    try:
        bench("a trivial system call (getpid)", os.getpid, 20000)
        bench("clock_gettime (no vDSO in UML)", lambda: time.clock_gettime(time.CLOCK_MONOTONIC), 20000)
        bench("epoll_wait(0), nothing ready", lambda: ep.poll(0), 20000)
        bench("socket + close", socket_close, 5000)
        for _ in range(2):
            bench("socket + connect + close (handshake inside connect)", floor, 3000)
            bench("fastka's TCP_CHECK: socket, connect, connect, close", fastka_tcp, 3000)
            bench(
                "Keepalived-like: + setsockopt, epoll_ctl x2, epoll_wait, getsockopt, clock",
                keepalived_like,
                3000,
            )
    finally:
        srv.kill()
        srv.wait()


if __name__ == "__main__":
    main()
