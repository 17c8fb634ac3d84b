"""The process framework against Keepalived 2.2.7: respawn time, reload time, memory.

    sudo .venv/bin/python bench/compare/daemon.py [--rounds N]

* respawn: SIGKILL the VRRP child, time until a new child has written its pid file.
* reload: SIGHUP the parent, time until READY=1 on a fake NOTIFY_SOCKET (one VRRP
  instance, the same file). Debian's keepalived 2.2.7 sends no sd_notify message, so it
  has no reload figure here.
* RSS of the parent and the VRRP child after start.

fastka runs its real parent and real forked child with the test suite's dummy VRRP
subsystem (``tests/daemon/dummy_subsystem.py``: the VRRP engine is not part of this
measurement); Keepalived runs its real VRRP child, inside a network namespace of its own
with one veth (never in the host namespace).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEEPALIVED_CONF = """global_defs {
    router_id bench
}
vrrp_instance VI_1 {
    state BACKUP
    interface veth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        192.0.2.100/24
    }
}
"""


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait(cond: Callable[[], object], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError
        time.sleep(0.001)


def mem_kb(pid: int | None, field: str) -> int:
    """``Rss`` or ``Pss`` (shared pages divided among their users: a forked child shares
    most of its pages with the parent) from /proc/PID/smaps_rollup."""
    if not pid:
        return 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Notify:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.events: list[tuple[float, str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            self.events.append((time.monotonic(), data))

    def count(self, word: str) -> int:
        return sum(1 for _, d in self.events if word in d.split("\n"))

    def close(self) -> None:
        self._stop = True
        self._thread.join(1)
        self.sock.close()


def measure(
    name: str, argv: list[str], work: Path, conf_text: str, rounds: int, netns: str | None
) -> dict[str, object]:
    conf = work / "conf"
    conf.write_text(conf_text)
    pids = {"parent": work / "p.pid", "vrrp": work / "r.pid", "checker": work / "c.pid"}
    notify = Notify(work / "notify")
    env = dict(os.environ, NOTIFY_SOCKET=str(work / "notify"), TMPDIR=str(work))
    full = [
        *argv,
        "-n",
        "-f",
        str(conf),
        "-p",
        str(pids["parent"]),
        "-r",
        str(pids["vrrp"]),
        "-c",
        str(pids["checker"]),
    ]
    if netns:
        full = ["ip", "netns", "exec", netns, *full]
    log = open(work / "log", "w")  # noqa: SIM115
    proc = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, env=env)
    result: dict[str, object] = {"name": name}
    try:
        # Debian's keepalived 2.2.7 sends no sd_notify message at all: wait for its pid file.
        wait(
            lambda: (notify.count("READY=1") >= 1 or name.startswith("keepalived")) and read_pid(pids["vrrp"])
        )
        time.sleep(1.0)
        parent = read_pid(pids["parent"])
        child = read_pid(pids["vrrp"])
        result["rss"] = f"{mem_kb(parent, 'Rss')}/{mem_kb(child, 'Rss')}"
        result["pss"] = f"{mem_kb(parent, 'Pss')}/{mem_kb(child, 'Pss')}"
        respawn = []
        for _ in range(rounds):
            old = read_pid(pids["vrrp"])
            assert old
            t0 = time.monotonic()
            os.kill(old, signal.SIGKILL)
            wait(
                lambda old=old: (
                    (p := read_pid(pids["vrrp"])) not in (None, old) and Path(f"/proc/{p}").exists()
                )
            )
            respawn.append(time.monotonic() - t0)
            time.sleep(2.5)  # let it settle (and stay clear of fastka's back-off window)
        result["respawn_ms"] = respawn
        reload: list[float] = []
        for _ in range(rounds if notify.count("READY=1") else 0):
            n = notify.count("READY=1")
            t0 = time.monotonic()
            assert parent
            os.kill(parent, signal.SIGHUP)
            wait(lambda n=n: notify.count("READY=1") > n)
            reload.append(notify.events[-1][0] - t0)
            time.sleep(0.5)
        result["reload_ms"] = reload
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        notify.close()
    return result


def ms(values: object) -> str:
    vals = [v * 1000 for v in values]  # type: ignore[attr-defined]
    if not vals:
        return "n/a (no sd_notify)"
    return f"{statistics.median(vals):8.1f} {min(vals):8.1f} {max(vals):8.1f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="fk-bench-daemon-") as tmp:
        work = Path(tmp)
        (work / "fastka").mkdir()
        dummy = {"vrrp": {"VI_1": {"state": "BACKUP"}}}
        results.append(
            measure(
                "fastka (dummy VRRP subsystem)",
                [sys.executable, str(ROOT / "tests/daemon/dummy_subsystem.py")],
                work / "fastka",
                json.dumps(dummy),
                args.rounds,
                None,
            )
        )
        keepalived = "/usr/sbin/keepalived"
        if os.geteuid() == 0 and os.access(keepalived, os.X_OK):
            ns = f"fk-bench-{os.getpid()}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            try:
                for cmd in (
                    "ip link set lo up",
                    "ip link add veth0 type veth peer name veth1",
                    "ip link set veth0 up",
                    "ip link set veth1 up",
                    "ip addr add 198.51.100.1/24 dev veth0",
                ):
                    subprocess.run(["ip", "netns", "exec", ns, *cmd.split()], check=True)
                (work / "keepalived").mkdir()
                results.append(
                    measure(
                        "keepalived 2.2.7",
                        [keepalived, "-l"],
                        work / "keepalived",
                        KEEPALIVED_CONF,
                        args.rounds,
                        ns,
                    )
                )
            finally:
                with contextlib.suppress(Exception):
                    subprocess.run(["ip", "netns", "del", ns], check=False)
    head = f"{'':30} {'respawn ms (med min max)':>26} {'reload ms (med min max)':>26}"
    print(f"{head} {'RSS parent/vrrp KiB':>20} {'PSS parent/vrrp KiB':>20}")
    for r in results:
        line = f"{r['name']:30} {ms(r['respawn_ms']):>26} {ms(r['reload_ms']):>26}"
        print(f"{line} {r['rss']:>20} {r['pss']:>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
