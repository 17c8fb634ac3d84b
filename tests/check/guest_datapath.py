"""Inside user-mode-linux: the checker engine programs the real IPVS, real connections
go through it. Run by ``test_uml_datapath.py``; writes a JSON report to ``argv[1]``.

Topology (``topology.TOPOLOGY``): client 10.0.0.100 -- director (this namespace) --
rs1..rs4 10.1.0.11..14; rs4 is the sorry server.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastka._linux import enter_netns
from fastka.check.manager import CheckerManager
from fastka.check.sink import KernelSink
from fastka.check.spec import (
    FWD_DR,
    CheckConfig,
    CheckerSpec,
    HttpParams,
    RealServerSpec,
    ServiceSpec,
    UrlSpec,
    VirtualServerSpec,
)
from fastka.loop import Loop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from topology import ipvs_table  # noqa: E402

PYTHON = sys.executable
VIP, VIP_DR = "10.0.0.10", "10.0.0.20"
report: dict[str, Any] = {}


def in_netns(name: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a thread that joined network namespace ``name``."""
    box: list[Any] = []

    def target() -> None:
        enter_netns(name)
        box.append(fn())

    t = threading.Thread(target=target)
    t.start()
    t.join()
    return box[0]


def fetch(vip: str, n: int = 30) -> dict[str, int]:
    """``n`` HTTP requests from the client namespace: which real server answered."""

    def go() -> dict[str, int]:
        seen: Counter[str] = Counter()
        for _ in range(n):
            try:
                with socket.create_connection((vip, 80), timeout=2) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
                seen[data.split(b"\r\n\r\n", 1)[-1].strip().decode() or "?"] += 1
            except OSError as exc:
                seen[f"error:{type(exc).__name__}"] += 1
        return dict(seen)

    result: dict[str, int] = in_netns("client", go)
    return result


class Servers:
    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        p = subprocess.Popen(
            ["ip", "netns", "exec", name, PYTHON, str(HERE / "guest_rs.py"), name],
            stdout=subprocess.PIPE,
        )
        assert p.stdout is not None
        assert p.stdout.readline().strip() == b"ready"
        self.procs[name] = p

    def kill(self, name: str) -> None:
        p = self.procs.pop(name)
        p.kill()
        p.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)


def http_checker() -> CheckerSpec:
    return CheckerSpec(
        params=HttpParams(urls=(UrlSpec(path="/"),)),
        delay_loop=1.0,
        connect_timeout=1.0,
        retry=1,
        delay_before_retry=1.0,
        warmup=0.0,
    )


def rs(i: int, **kw: Any) -> RealServerSpec:
    return RealServerSpec(f"10.1.0.{10 + i}", 80, checkers=(http_checker(),), **kw)


def config(*vss: VirtualServerSpec) -> CheckConfig:
    return CheckConfig(virtual_servers=vss)


SVC = ServiceSpec(socket.AF_INET, "tcp", VIP, 80, sched_name="rr")
SVC_DR = ServiceSpec(socket.AF_INET, "tcp", VIP_DR, 80, sched_name="rr")
KEY, KEY_DR = f"TCP {VIP}:80", f"TCP {VIP_DR}:80"


def main() -> None:
    out = Path(sys.argv[1])
    loop = Loop()
    servers = Servers()
    for i in (1, 2, 3, 4):
        servers.start(f"rs{i}")

    def wait_until(cond: Callable[[], bool], limit: float = 10.0) -> float:
        t0 = time.monotonic()
        while not cond():
            if time.monotonic() - t0 > limit:
                return -1.0
            loop.run_once(0.02)
        return time.monotonic() - t0

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            loop.run_once(0.02)

    nat = VirtualServerSpec(services=(SVC,), real_servers=(rs(1), rs(2), rs(3)))
    mgr = CheckerManager(loop, config(nat), KernelSink())
    mgr.start()
    try:
        report["nat_table"] = ipvs_table()
        pump(1.5)  # first checks (1 s bootstrap)
        report["nat_spread"] = fetch(VIP)
        # Kill rs2: removed within delay_loop + connect_timeout + retry * delay_before_retry.
        servers.kill("rs2")
        report["nat_removed_after"] = wait_until(lambda: "10.1.0.12:80" not in ipvs_table().get(KEY, {}))
        report["nat_spread_without_rs2"] = fetch(VIP)
        servers.start("rs2")
        report["nat_back_after"] = wait_until(lambda: "10.1.0.12:80" in ipvs_table().get(KEY, {}))
        report["nat_spread_back"] = fetch(VIP)

        # Reload: same service, now inhibit_on_failure; nothing may be touched.
        before = ipvs_table()
        inhibit = VirtualServerSpec(
            services=(SVC,), real_servers=tuple(rs(i, inhibit_on_failure=True) for i in (1, 2, 3))
        )
        mgr.reload(config(inhibit))
        report["reload_unchanged"] = ipvs_table() == before
        servers.kill("rs3")
        report["inhibit_zero_after"] = wait_until(lambda: ipvs_table().get(KEY, {}).get("10.1.0.13:80") == 0)
        report["inhibit_table"] = ipvs_table()
        report["inhibit_spread"] = fetch(VIP)
        servers.start("rs3")
        report["inhibit_back_after"] = wait_until(lambda: ipvs_table().get(KEY, {}).get("10.1.0.13:80") == 1)

        # Reload: quorum 3 with a sorry server (rs4).
        sorry = RealServerSpec("10.1.0.14", 80)
        quorum = VirtualServerSpec(
            services=(SVC,), real_servers=(rs(1), rs(2), rs(3)), quorum=3, sorry_server=sorry
        )
        mgr.reload(config(quorum))
        servers.kill("rs1")
        report["sorry_after"] = wait_until(lambda: ipvs_table().get(KEY, {}) == {"10.1.0.14:80": 1})
        report["sorry_spread"] = fetch(VIP)
        servers.start("rs1")
        report["quorum_back_after"] = wait_until(lambda: len(ipvs_table().get(KEY, {})) == 3)
        report["quorum_table"] = ipvs_table()
        report["quorum_spread"] = fetch(VIP)

        # DR: a second VIP, on the real servers' lo.
        for i in (1, 2, 3):
            ns = f"rs{i}"
            for cmd in (
                f"ip -n {ns} addr add {VIP_DR}/32 dev lo",
                f"ip netns exec {ns} sysctl -qw net.ipv4.conf.all.arp_ignore=1",
                f"ip netns exec {ns} sysctl -qw net.ipv4.conf.all.arp_announce=2",
            ):
                subprocess.run(cmd.split(), check=True)
        dr = VirtualServerSpec(services=(SVC_DR,), real_servers=tuple(rs(i, fwd=FWD_DR) for i in (1, 2, 3)))
        mgr.reload(config(quorum, dr))
        report["dr_table"] = ipvs_table()
        report["dr_forward"] = Path("/proc/net/ip_vs").read_text().count("Route")
        report["dr_spread"] = fetch(VIP_DR)
        servers.kill("rs2")
        report["dr_removed_after"] = wait_until(lambda: "10.1.0.12:80" not in ipvs_table().get(KEY_DR, {}))
        report["dr_spread_without_rs2"] = fetch(VIP_DR)
    finally:
        mgr.shutdown()
        report["after_shutdown"] = ipvs_table()
    try:
        servers.start("rs2")  # killed by the DR scenario
        daemons(servers)
    finally:
        servers.stop_all()
        out.write_text(json.dumps(report, indent=1))


KEEPALIVED_CONF = """
global_defs { router_id uml }
virtual_server 10.0.0.30 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind NAT
    persistence_timeout 30
    protocol TCP
    real_server 10.1.0.11 80 {
        weight 3
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.1.0.12 80 {
        weight 2
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
        }
    }
    real_server 10.1.0.13 80 {
        weight 1
        inhibit_on_failure
        TCP_CHECK {
            connect_timeout 1
            connect_port 81
        }
    }
}
"""


def daemons(servers: Servers) -> None:
    """``fastka -n -l -C -f FILE`` (the daemon's checker child) and ``keepalived`` with
    the same arguments program the same table, and both remove it on SIGTERM."""
    conf = Path(sys.argv[1]).parent / "keepalived.conf"
    conf.write_text(KEEPALIVED_CONF)
    fastka = str(Path(PYTHON).parent / "fastka")
    for name, prog in (("fastka", fastka), ("keepalived", "keepalived")):
        run = Path(sys.argv[1]).parent / name
        run.mkdir(exist_ok=True)
        args = [prog, "-n", "-l", "-C", "-f", str(conf), "-p", f"{run}/p.pid", "-c", f"{run}/c.pid"]
        with open(run / "log", "w") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        # Wait for the checks to settle: rs3's check port (81) is closed -> weight 0.
        want = {"10.1.0.11:80": 3, "10.1.0.12:80": 2, "10.1.0.13:80": 0}
        while time.monotonic() - t0 < 15 and ipvs_table().get("TCP 10.0.0.30:80") != want:
            time.sleep(0.1)
        report[f"{name}_table"] = ipvs_table()
        report[f"{name}_ipvsadm"] = subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True).stdout
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        report[f"{name}_rc"] = proc.returncode
        report[f"{name}_after_stop"] = ipvs_table()
        report[f"{name}_log"] = (run / "log").read_text()[-3000:]


if __name__ == "__main__":
    main()
