"""Reload (SIGHUP) of a VRRP router with many MASTER instances: fastka vs Keepalived 2.2.7.

One router in a network namespace runs N VRRPv3 instances (advert_int 1 s), all MASTER;
the configuration alternates between two files that differ in every instance's
``virtual_ipaddress_excluded`` address. For each reload: the time from SIGHUP to the
daemon saying it is done (fastka: ``Reload finished``, after the VRRP child applied the
difference; Keepalived: ``Reload complete``), the state transitions it caused, and how
often the kernel reported an unchanged VIP deleted (``ip monitor address``: a reload that
rebuilds removes and re-adds them).

    sudo .venv/bin/python bench/compare/vrrp_reload.py [--instances 250] [--reloads 10]
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "netns"))

from rig import Rig  # noqa: E402  (the project's namespace rig)

DONE = {"fastka": "Reload finished", "keepalived": "Reload complete"}


def config(n: int, alt: int) -> str:
    out = ["global_defs {", "    vrrp_garp_master_delay 0", "}"]
    for i in range(1, n + 1):
        out += [
            f"vrrp_instance VI_{i} {{",
            "    interface eth0",
            f"    virtual_router_id {i}",
            "    priority 150",
            "    advert_int 1",
            f"    virtual_ipaddress {{\n        10.97.0.{i}/32\n    }}",
            f"    virtual_ipaddress_excluded {{\n        10.96.{alt}.{i}/32\n    }}",
            "}",
        ]
    return "\n".join(out) + "\n"


def run(kind: str, n: int, reloads: int) -> dict[str, float]:
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        d = rig.fastka(r1, config(n, 1)) if kind == "fastka" else rig.keepalived(r1, config(n, 1))
        deadline = time.monotonic() + 60
        while len(re.findall(r"Entering MASTER STATE", d.log())) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind}: not all MASTER\n{d.log()[-2000:]}")
            time.sleep(0.1)
        time.sleep(1.0)
        monitor = r1.popen(["ip", "-o", "monitor", "address"], log=f"{kind}-monitor.log")
        time.sleep(0.3)
        start = d.mark()
        times = []
        for k in range(reloads):
            mark = d.mark()
            d.config_path.write_text(config(n, 2 if k % 2 == 0 else 1))
            t0 = time.monotonic()
            d.send_signal(signal.SIGHUP)
            d.wait_log(DONE[kind], since=mark, timeout=60)
            times.append(time.monotonic() - t0)
            time.sleep(0.5)
        time.sleep(1.0)
        monitor.stop()
        events = monitor.log()
        log = d.log()[start:]
        d.stop()
    kept_deleted = len(re.findall(r"Deleted .*inet 10\.97\.0\.", events))
    return {
        "median_ms": statistics.median(times) * 1000,
        "max_ms": max(times) * 1000,
        "transitions": len(re.findall(r"Entering (MASTER|BACKUP|FAULT) STATE", log)),
        "kept_vip_deletions": kept_deleted,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=250)
    ap.add_argument("--reloads", type=int, default=10)
    args = ap.parse_args()
    rows = [(kind, run(kind, args.instances, args.reloads)) for kind in ("fastka", "keepalived")]
    print(f"{args.instances} MASTER instances, {args.reloads} reloads (every eVIP changes, VIPs stay)")
    print(f"{'router':<12}{'median ms':>10}{'max ms':>10}{'transitions':>13}{'kept VIPs deleted':>19}")
    for kind, r in rows:
        print(
            f"{kind:<12}{r['median_ms']:>10.0f}{r['max_ms']:>10.0f}{r['transitions']:>13.0f}"
            f"{r['kept_vip_deletions']:>19.0f}"
        )


if __name__ == "__main__":
    main()
