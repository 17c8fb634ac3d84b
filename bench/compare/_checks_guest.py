"""Guest half of ``bench/compare/checks.py`` (runs inside user-mode-linux as root).

For each (checker, implementation): start a loopback-ish target (a namespace whose lo
holds 10.2.0.0/16, so every one of the N real-server addresses is local there), start the
checker process on a configuration of N real servers with ``delay_loop`` D (N/D checks
per second), let it warm up, then measure its CPU time (utime + stime of the process and
its children, from /proc) and the number of checks the target served over a window.
Writes JSON to argv[1].
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PYTHON = sys.executable
TICK = os.sysconf("SC_CLK_TCK")


def addresses(n: int) -> list[str]:
    return [f"10.2.{i // 250}.{i % 250 + 1}" for i in range(n)]


def keepalived_conf(kind: str, n: int, delay: float) -> str:
    check = (
        "TCP_CHECK { connect_timeout 2 }"
        if kind == "tcp"
        else "HTTP_GET { url { path / status_code 200 } connect_timeout 2 }"
    )
    rss = "\n".join(f"  real_server {a} 80 {{ weight 1\n    {check}\n  }}" for a in addresses(n))
    return (
        f"global_defs {{ router_id bench }}\n"
        f"virtual_server 10.0.0.10 80 {{\n  delay_loop {delay}\n  lb_algo rr\n  lb_kind NAT\n"
        f"  protocol TCP\n{rss}\n}}\n"
    )


FASTKA_RUNNER = """
import signal, socket, sys
from fastka.check.manager import CheckerManager
from fastka.check.sink import KernelSink
from fastka.check.spec import *
from fastka.loop import Loop
kind, n, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
params = TcpParams() if kind == "tcp" else HttpParams(urls=(UrlSpec(path="/", status_code=((200, 200),)),))
chk = CheckerSpec(params=params, delay_loop=delay, connect_timeout=2.0, retry=1, delay_before_retry=1.0)
addrs = [f"10.2.{i // 250}.{i % 250 + 1}" for i in range(n)]
rss = tuple(RealServerSpec(a, 80, checkers=(chk,)) for a in addrs)
svc = ServiceSpec(socket.AF_INET, "tcp", "10.0.0.10", 80, sched_name="rr")
loop = Loop()
mgr = CheckerManager(loop, CheckConfig(virtual_servers=(VirtualServerSpec(services=(svc,), real_servers=rss),)), KernelSink())
def stop(signum):
    mgr.shutdown(); loop.stop()
loop.add_signal_handler(signal.SIGTERM, stop)
mgr.start()
loop.run()
"""


def cpu_of(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def family(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def served(count_file: Path) -> int:
    try:
        return int(count_file.read_text() or 0)
    except (OSError, ValueError):
        return 0


def ipvs_dests() -> int:
    return sum(
        1 for line in Path("/proc/net/ip_vs").read_text().splitlines() if line.strip().startswith("->")
    )


def measure(
    impl: str, kind: str, n: int, delay: float, warmup: float, window: float, work: Path, strace: bool = False
) -> dict[str, object]:
    count_file = work / f"count-{impl}-{kind}"
    server = subprocess.Popen(
        ["ip", "netns", "exec", "rs1", PYTHON, str(HERE / "_checks_target.py"), kind, str(count_file)],
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
    if impl == "keepalived":
        conf = work / f"keepalived-{kind}.conf"
        conf.write_text(keepalived_conf(kind, n, delay))
        cmd = [
            "keepalived",
            "-n",
            "-C",
            "-f",
            str(conf),
            "-p",
            str(work / "ka.pid"),
            "-c",
            str(work / "ka-c.pid"),
        ]
        cmd += ["-G"]  # no syslog
    else:
        cmd = [PYTHON, "-c", FASTKA_RUNNER, kind, str(n), str(delay)]
    with open(work / f"{impl}-{kind}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    try:
        time.sleep(warmup)
        pids = family(proc.pid)
        c0, s0, t0 = cpu_of(pids), served(count_file), time.monotonic()
        time.sleep(window)
        pids = family(proc.pid)
        c1, s1, t1 = cpu_of(pids), served(count_file), time.monotonic()
        dests = ipvs_dests()
        syscalls = count_syscalls(pids[-1], count_file, work / f"strace-{impl}-{kind}") if strace else None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.kill()
        server.wait()
    checks = s1 - s0
    cpu = c1 - c0
    return {
        "impl": impl,
        "kind": kind,
        "checks": checks,
        "seconds": round(t1 - t0, 2),
        "checks_per_s": round(checks / (t1 - t0), 1),
        "cpu_s": round(cpu, 3),
        "cpu_us_per_check": round(cpu / checks * 1e6, 1) if checks else None,
        "dests_in_ipvs": dests,
        "syscalls_per_check": syscalls,
    }


def count_syscalls(pid: int, count_file: Path, out: Path, seconds: float = 3.0) -> dict[str, float] | None:
    """System calls per check of the checker process, by ``strace -c`` (a count that
    does not depend on how busy the machine is, unlike CPU time)."""
    if not shutil.which("strace"):
        return None
    s0 = served(count_file)
    st = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", str(out)], stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    st.terminate()
    st.wait()
    checks = served(count_file) - s0
    if checks <= 0 or not out.exists():
        return None
    calls: dict[str, float] = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls[parts[-1]] = round(int(parts[3]) / checks, 2)
    calls["total"] = round(sum(calls.values()), 2)
    return calls


def main() -> None:
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    window = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    work = out.parent
    # Target namespace: every 10.2.0.0/16 address is local there.
    for cmd in (
        "ip -n rs1 addr add 10.2.0.0/16 dev lo",
        "ip route add 10.2.0.0/16 via 10.1.0.11",
    ):
        subprocess.run(cmd.split(), check=True)
    socket.setdefaulttimeout(5)
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    results = []
    # Alternate the implementations, several rounds: the host may be busy, and the
    # least-disturbed round is the one to compare (the caller keeps the minimum).
    for kind in ("tcp", "http"):
        for r in range(rounds):
            for impl in ("fastka", "keepalived"):
                row = measure(impl, kind, n, delay, 1.0 + delay + 2.0, window, work, strace=r == 0)
                row["round"] = r
                results.append(row)
                out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
