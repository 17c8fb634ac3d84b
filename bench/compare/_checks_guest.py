"""Guest half of ``bench/compare/checks.py`` (runs inside user-mode-linux as root).

For each checker type: one target namespace per implementation whose lo holds all N of
its real-server addresses (fastka: rs1, 10.2.0.0/16, port 80; Keepalived: rs2,
10.3.0.0/16, port 81), then fastka and Keepalived side by side, each on its own virtual
server of N real servers with ``delay_loop`` D (N/D checks per second each). After a
warm-up, in each of several windows, each checker's CPU time (utime + stime of the
process and its children, from /proc) is divided by the checks made in the window:
the connections its target namespace's kernel accepted (``PassiveOpens`` of
``/proc/PID/net/snmp``), which, unlike the target program's own count, does not lag
when the guest is busy. Running both at once means both see the same machine load in
every window.
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


IMPLS = ("fastka", "keepalived")
FASTKA_VIP, FASTKA_PORT = "10.0.0.10", 80
KEEPALIVED_VIP, KEEPALIVED_PORT = "10.0.0.11", 81
PORTS = {"fastka": FASTKA_PORT, "keepalived": KEEPALIVED_PORT}
# Each implementation's real servers live in a target namespace of their own.
NETNS = {"fastka": "rs1", "keepalived": "rs2"}
NET = {"fastka": 2, "keepalived": 3}  # real servers 10.<NET>.0.0/16


def addresses(n: int, net: int = 2) -> list[str]:
    return [f"10.{net}.{i // 250}.{i % 250 + 1}" for i in range(n)]


def keepalived_conf(kind: str, n: int, delay: float, vip: str = "10.0.0.11", port: int = 81) -> str:
    check = (
        "TCP_CHECK { connect_timeout 2 }"
        if kind == "tcp"
        else "HTTP_GET { url { path / status_code 200 } connect_timeout 2 }"
    )
    rss = "\n".join(
        f"  real_server {a} {port} {{\n    weight 1\n    {check}\n  }}"
        for a in addresses(n, NET["keepalived"])
    )
    return (
        f"global_defs {{ router_id bench }}\n"
        f"virtual_server {vip} 80 {{\n  delay_loop {delay}\n  lb_algo rr\n  lb_kind NAT\n"
        f"  protocol TCP\n{rss}\n}}\n"
    )


FASTKA_RUNNER = """
import signal, socket, sys
from fastka.check.manager import CheckerManager
from fastka.check.sink import KernelSink
from fastka.check.spec import *
from fastka.loop import Loop
kind, n, delay, vip, port = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
params = TcpParams() if kind == "tcp" else HttpParams(urls=(UrlSpec(path="/", status_code=((200, 200),)),))
chk = CheckerSpec(params=params, delay_loop=delay, connect_timeout=2.0, retry=1, delay_before_retry=1.0)
addrs = [f"10.2.{i // 250}.{i % 250 + 1}" for i in range(n)]  # NET["fastka"]
rss = tuple(RealServerSpec(a, port, checkers=(chk,)) for a in addrs)
svc = ServiceSpec(socket.AF_INET, "tcp", vip, 80, sched_name="rr")
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


def accepted(pid: int) -> int:
    """Connections the kernel of ``pid``'s network namespace accepted (TCP PassiveOpens)."""
    lines = Path(f"/proc/{pid}/net/snmp").read_text().splitlines()
    tcp = [line.split() for line in lines if line.startswith("Tcp:")]
    return int(tcp[1][tcp[0].index("PassiveOpens")])


def ipvs_dests() -> int:
    return sum(
        1 for line in Path("/proc/net/ip_vs").read_text().splitlines() if line.strip().startswith("->")
    )


def start_target(kind: str, netns: str, port: int, count_file: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            netns,
            PYTHON,
            str(HERE / "_checks_target.py"),
            kind,
            str(count_file),
            str(port),
        ],
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
    return server


def start_checker(impl: str, kind: str, n: int, delay: float, work: Path) -> subprocess.Popen[bytes]:
    if impl == "keepalived":
        conf = work / f"keepalived-{kind}.conf"
        conf.write_text(keepalived_conf(kind, n, delay, KEEPALIVED_VIP, KEEPALIVED_PORT))
        cmd = ["keepalived", "-n", "-G", "-C", "-f", str(conf)]
        cmd += ["-p", str(work / "ka.pid"), "-c", str(work / "ka-c.pid")]
    else:
        cmd = [PYTHON, "-c", FASTKA_RUNNER, kind, str(n), str(delay), FASTKA_VIP, str(FASTKA_PORT)]
    with open(work / f"{impl}-{kind}.log", "w") as log:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_pair(
    kind: str, n: int, delay: float, warmup: float, window: float, rounds: int, work: Path
) -> list[dict[str, object]]:
    """Both checkers at once (each with its own virtual server, target and namespace), so
    that both see the same machine load in every window; both are started afresh for
    every round.

    Why restart: the guest's CPU accounting is tick-sampled (the process CPU clock moves
    in 10 ms steps, HZ=100), and a checker's work is periodic -- fastka's timers sit on the
    loop's 1 ms grid, which is anchored at the process start. Within one process the
    sampling tick keeps the same phase against that grid and the measurement is biased
    one way or the other; each new process draws a new phase, so the median over rounds
    with restarts is not."""
    counts = {impl: work / f"count-{impl}-{kind}" for impl in IMPLS}
    targets = {impl: start_target(kind, NETNS[impl], PORTS[impl], counts[impl]) for impl in IMPLS}
    rows: list[dict[str, object]] = []
    try:
        for r in range(rounds):
            procs = {impl: start_checker(impl, kind, n, delay, work) for impl in IMPLS}
            try:
                time.sleep(warmup)
                start = {
                    impl: (cpu_of(family(p.pid)), accepted(targets[impl].pid)) for impl, p in procs.items()
                }
                t0 = time.monotonic()
                time.sleep(window)
                t1 = time.monotonic()
                for impl, p in procs.items():
                    cpu = cpu_of(family(p.pid)) - start[impl][0]
                    checks = accepted(targets[impl].pid) - start[impl][1]
                    rows.append(
                        {
                            "impl": impl,
                            "kind": kind,
                            "round": r,
                            "checks": checks,
                            "seconds": round(t1 - t0, 2),
                            "checks_per_s": round(checks / (t1 - t0), 1),
                            "cpu_s": round(cpu, 3),
                            "cpu_us_per_check": round(cpu / checks * 1e6, 1) if checks > 0 else None,
                            "dests_in_ipvs": ipvs_dests(),
                        }
                    )
            finally:
                for p in procs.values():
                    stop(p)
        # Then, one program at a time, the system calls per check.
        for impl in IMPLS:
            p = start_checker(impl, kind, n, delay, work)
            try:
                time.sleep(warmup)
                sc = count_syscalls(family(p.pid)[-1], work / f"strace-{impl}-{kind}")
            finally:
                stop(p)
            for row in rows:
                if row["impl"] == impl:
                    row["syscalls_per_check"] = sc
    finally:
        for t in targets.values():
            t.kill()
            t.wait()
    return rows


def count_syscalls(pid: int, out: Path, seconds: float = 3.0) -> dict[str, float] | None:
    """System calls per check of the checker process, by ``strace -c``: a count that does
    not depend on how busy the machine is, unlike CPU time. Every check (TCP_CHECK and
    HTTP_GET alike, in both implementations) opens exactly one socket, so the counts are
    divided by the number of ``socket`` calls traced."""
    if not shutil.which("strace"):
        return None
    st = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", str(out)], stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    st.terminate()
    st.wait()
    if not out.exists():
        return None
    counts: dict[str, int] = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            counts[parts[-1]] = int(parts[3])
    checks = counts.get("socket", 0)
    if not checks:
        return None
    calls = {name: round(n / checks, 2) for name, n in sorted(counts.items())}
    calls["total"] = round(sum(counts.values()) / checks, 2)
    return calls


def main() -> None:
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    window = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    work = out.parent
    # Target namespaces: every address of 10.<NET>.0.0/16 is local there.
    for cmd in (
        "ip -n rs1 addr add 10.2.0.0/16 dev lo",
        "ip route add 10.2.0.0/16 via 10.1.0.11",
        "ip -n rs2 addr add 10.3.0.0/16 dev lo",
        "ip route add 10.3.0.0/16 via 10.1.0.12",
    ):
        subprocess.run(cmd.split(), check=True)
    socket.setdefaulttimeout(5)
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 7
    results: list[dict[str, object]] = []
    for kind in ("tcp", "http"):
        # Warm-up: start-up (seconds for Python in a busy guest), then 1 s + warmup spread.
        results += measure_pair(kind, n, delay, 6.0 + 2 * delay, window, rounds, work)
        out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
