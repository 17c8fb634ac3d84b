"""Inside user-mode-linux: the real ``fastka -C`` daemon against the real IPVS.

Run by ``test_uml_ipvs.py`` in the guest (topology from ``tests/check/topology.py``):
kill -9 the checker child (the IPVS entries stay, a new child resumes checking), a reload
storm of 100 SIGHUPs in 10 s alternating two configurations that differ in one real
server, with a broken file in the middle (unchanged entries never leave the table,
sampled every 5 ms), then SIGTERM (the table is emptied). Writes a JSON report to argv[1].
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "check"))
from topology import ipvs_table  # noqa: E402

PYTHON = sys.executable
FASTKA = str(Path(PYTHON).parent / "fastka")
KEY = "TCP 10.0.0.10:80"
RS1, RS2, RS3 = "10.1.0.11:80", "10.1.0.12:80", "10.1.0.13:80"

REAL_SERVER = """
    real_server {address} 80 {{
        weight 1
        TCP_CHECK {{
            connect_timeout 1
        }}
    }}"""


def config(*addresses: str) -> str:
    rss = "".join(REAL_SERVER.format(address=a) for a in addresses)
    return f"""global_defs {{
    router_id director
}}
virtual_server 10.0.0.10 80 {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
{rss}
}}
"""


CONF_A = config("10.1.0.11", "10.1.0.12")
CONF_B = config("10.1.0.11", "10.1.0.12", "10.1.0.13")
BROKEN = CONF_A.rstrip().rstrip("}")  # an unterminated block


class Sampler:
    """Reads the IPVS table every 5 ms; counts samples where a kept entry is missing."""

    def __init__(self, kept: tuple[str, ...]) -> None:
        self.kept = kept
        self.samples = 0
        self.violations: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            dests = ipvs_table().get(KEY)
            self.samples += 1
            if dests is None:
                self.violations.append(f"{time.monotonic():.3f} service missing")
            else:
                for rs in self.kept:
                    if dests.get(rs) != 1:
                        self.violations.append(f"{time.monotonic():.3f} {rs} -> {dests.get(rs)}")
            time.sleep(0.005)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(5)
        return {
            "samples": self.samples,
            "violations": self.violations[:20],
            "n_violations": len(self.violations),
        }


def wait_until(cond: Callable[[], Any], limit: float = 15.0) -> float:
    t0 = time.monotonic()
    while True:
        try:
            if cond():
                return time.monotonic() - t0
        except (OSError, ValueError):
            pass
        if time.monotonic() - t0 > limit:
            return -1.0
        time.sleep(0.01)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def status(sock: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "src"))
    from fastka.status import fetch

    doc: dict[str, Any] = json.loads(fetch("/status", unix_socket=str(sock)))
    return doc


def main() -> None:
    out = Path(sys.argv[1])
    work = out.parent
    report: dict[str, Any] = {}
    servers = {}
    for i in (1, 2, 3):
        name = f"rs{i}"
        p = subprocess.Popen(
            ["ip", "netns", "exec", name, PYTHON, str(ROOT / "tests/check/guest_rs.py"), name],
            stdout=subprocess.PIPE,
        )
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
        servers[name] = p
    conf = work / "keepalived.conf"
    conf.write_text(CONF_A)
    pid_file, child_pid_file, sock = work / "fastka.pid", work / "checkers.pid", work / "status.sock"
    args = [FASTKA, "-n", "-l", "-C", "-f", str(conf), "-p", str(pid_file), "-c", str(child_pid_file)]
    args += ["--status-socket", str(sock)]
    log = open(work / "fastka.log", "w")  # noqa: SIM115 - lives as long as the daemon
    daemon = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        want = {KEY: {RS1: 1, RS2: 1}}
        report["start_s"] = wait_until(lambda: ipvs_table() == want)
        report["start_table"] = ipvs_table()

        # -- kill -9 the checker child
        old = read_pid(child_pid_file)
        report["old_child"] = old
        sampler = Sampler((RS1, RS2))
        time.sleep(0.2)
        t0 = time.monotonic()
        os.kill(old or 0, signal.SIGKILL)
        report["respawn_s"] = wait_until(
            lambda: (p := read_pid(child_pid_file)) not in (None, old) and Path(f"/proc/{p}").exists(), 5
        )
        report["respawn_running_s"] = wait_until(
            lambda: status(sock)["children"]["checker"]["state"] == "running", 10
        )
        report["respawn_total_s"] = time.monotonic() - t0
        time.sleep(3)
        report["kill9"] = sampler.stop()
        report["new_child"] = read_pid(child_pid_file)
        # the new child checks: a real server going down leaves the table
        servers.pop("rs2").kill()
        report["rs2_removed_after_s"] = wait_until(lambda: RS2 not in ipvs_table().get(KEY, {}), 10)
        p = subprocess.Popen(
            ["ip", "netns", "exec", "rs2", PYTHON, str(ROOT / "tests/check/guest_rs.py"), "rs2"],
            stdout=subprocess.PIPE,
        )
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
        servers["rs2"] = p
        report["rs2_back_after_s"] = wait_until(lambda: ipvs_table().get(KEY, {}).get(RS2) == 1, 10)

        # -- reload storm
        child = read_pid(child_pid_file)
        sampler = Sampler((RS1, RS2))
        t0 = time.monotonic()
        for i in range(100):
            text = BROKEN if 50 <= i < 53 else (CONF_B if i % 2 else CONF_A)
            tmp = conf.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, conf)
            daemon.send_signal(signal.SIGHUP)
            time.sleep(max(0.0, t0 + (i + 1) * 0.1 - time.monotonic()))
        report["storm_s"] = time.monotonic() - t0
        conf.write_text(CONF_B)
        daemon.send_signal(signal.SIGHUP)
        report["storm_settle_s"] = wait_until(lambda: ipvs_table() == {KEY: {RS1: 1, RS2: 1, RS3: 1}}, 15)
        report["storm"] = sampler.stop()
        report["storm_final_table"] = ipvs_table()
        doc = status(sock)
        report["storm_reloads"] = doc["daemon"]["reloads"]
        report["storm_child_same"] = read_pid(child_pid_file) == child
        report["storm_restarts"] = doc["children"]["checker"]["restarts"]
        report["status_real_servers"] = sorted(
            rs["name"] for vs in doc["checker"]["virtual_servers"] for rs in vs["real_servers"]
        )
        report["alive"] = daemon.poll() is None
    finally:
        daemon.terminate()
        try:
            report["rc"] = daemon.wait(15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            report["rc"] = daemon.wait()
        report["after_stop"] = ipvs_table()
        report["pid_files_left"] = [p.name for p in (pid_file, child_pid_file) if p.exists()]
        for p in servers.values():
            p.kill()
        log.close()
        report["log"] = (work / "fastka.log").read_text()[-6000:]
        out.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
