"""Failover time, fastka vs Keepalived 2.2.7 as the BACKUP that takes over.

VRRPv3 at ``advert_int 0.05``: a Keepalived MASTER (priority 150) and a BACKUP (priority
100, fastka or Keepalived) on a bridge. The master is killed (SIGKILL: no priority 0),
and on the bridge we timestamp (kernel timestamps of a packet socket) the master's last
advert, the backup's first advert and its first gratuitous ARP; a netlink listener in the
backup's namespace timestamps the VIP's arrival. The protocol promises the takeover one
Master_Down_Interval after the last advert: 3 x 50 ms + (256 - 100) x 50 ms / 256 =
180.47 ms. Each run restarts the master (which preempts back) and kills it again.

    sudo .venv/bin/python bench/compare/vrrp_failover.py [--runs 10] [--json out.json]

Needs root and keepalived; about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "netns"))

from rig import Netns, Rig  # noqa: E402  (the project's namespace rig)

ADVERT_INT = 0.05
MDI = 3 * ADVERT_INT + (256 - 100) * ADVERT_INT / 256
VIP = "10.99.0.100"


def config(prio: int) -> str:
    return (
        "global_defs {\n    vrrp_version 3\n}\n"
        "vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n"
        f"    priority {prio}\n    advert_int {ADVERT_INT}\n"
        f"    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n"
    )


class VipWatch:
    """Records when VIP is added in a namespace (a thread blocked on an rtnetlink socket)."""

    def __init__(self, ns: Netns) -> None:
        self.sock: socket.socket = ns.call(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
        self.sock.bind((0, 0x10))  # RTMGRP_IPV4_IFADDR
        self.sock.settimeout(0.2)
        self.added: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        vip = socket.inet_aton(VIP)
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            t = time.monotonic()
            off = 0
            while off + 16 <= len(data):
                length, mtype = struct.unpack_from("=IH", data, off)
                if length < 16:
                    break
                if mtype == 20 and vip in data[off : off + length]:
                    self.added.append(t)
                off += (length + 3) & ~3

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def run(kind: str, runs: int) -> list[dict[str, float]]:
    out = []
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        r2 = rig.router("r2", lan, host=12)
        backup = rig.keepalived(r2, config(100)) if kind == "keepalived" else rig.fastka(r2, config(100))
        watch = VipWatch(r2)
        try:
            for _ in range(runs):
                master = rig.keepalived(r1, config(150))
                master.wait_state("MASTER", timeout=20)
                mark = backup.mark()
                backup.wait_log(r"Entering BACKUP STATE", timeout=20)
                time.sleep(0.5)
                cap = rig.capture(lan)
                time.sleep(0.3)
                since = backup.mark()
                watch.added.clear()
                t_kill = time.monotonic()
                master.kill()
                backup.wait_log(r"Entering MASTER STATE", since=since, timeout=10)
                deadline = time.monotonic() + 2
                while not watch.added and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.3)
                frames = cap.stop()
                m_adverts = [f.t for f in frames if f.is_vrrp and f.src_mac == "02:99:00:00:00:11"]
                b_adverts = [f.t for f in frames if f.is_vrrp and f.src_mac == "02:99:00:00:00:12"]
                garps = [f.t for f in frames if f.is_garp and f.src_mac == "02:99:00:00:00:12"]
                last = max(t for t in m_adverts if t <= t_kill + 0.01)
                first_adv = min(t for t in b_adverts if t > last)
                first_garp = min(t for t in garps if t > last)
                vip = min(t for t in watch.added if t > last) if watch.added else float("nan")
                out.append(
                    {
                        "advert_ms": (first_adv - last) * 1000,
                        "vip_ms": (vip - last) * 1000,
                        "garp_ms": (first_garp - last) * 1000,
                        "garp_after_vip_ms": (first_garp - vip) * 1000,
                    }
                )
                _ = mark
        finally:
            watch.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--impls", default="fastka,keepalived")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    results: dict[str, Any] = {}
    for kind in args.impls.split(","):
        print(f"... {kind} as the backup, {args.runs} failovers", file=sys.stderr, flush=True)
        results[kind] = run(kind, args.runs)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(
        f"VRRPv3 failover at advert_int {ADVERT_INT:g} s, Master_Down_Interval {MDI * 1000:.2f} ms "
        f"(times from the master's last advert; median [min-max] of {args.runs}), host load {os.getloadavg()[0]:.2f}"
    )
    head = f"{'backup':<11} {'first advert':>24} {'VIP added':>24} {'first GARP':>24} {'GARP after VIP':>22}"
    print(head)
    print("-" * len(head))
    for kind, rows in results.items():
        cells = []
        for key in ("advert_ms", "vip_ms", "garp_ms", "garp_after_vip_ms"):
            vals = [r[key] for r in rows]
            cells.append(f"{statistics.median(vals):7.2f} [{min(vals):6.2f}-{max(vals):6.2f}]")
        print(f"{kind:<11} {cells[0]:>24} {cells[1]:>24} {cells[2]:>24} {cells[3]:>22}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
