"""1000 VRRP instances as MASTER, fastka vs Keepalived 2.2.7: CPU, memory, start-up, timing.

One router namespace with four interfaces, each on its own bridge (four segments), and
250 VRRPv3 instances per interface (VRID 1..250, one /32 VIP each, priority 150), nobody
else on the segments: every instance becomes MASTER and advertises. For each advert
interval (1 s and 0.1 s) and each implementation in turn, with the same configuration:

* start-up: from the daemon's start to the 1000th VIP present, minus the protocol's
  Master_Down_Interval (3 x interval + skew) every instance has to wait first;
* CPU: utime + stime of the VRRP child (``-r`` pid file) over a window (default 30 s)
  after a settling time, as % of one core, and its RSS;
* timing: tcpdump on one segment for a few seconds; the gaps between consecutive adverts
  of each VRID (median, 99th percentile, maximum) and the adverts later than 20 % of the
  interval.

    sudo .venv/bin/python bench/compare/vrrp_scale.py [--window 30] [--intervals 1,0.1] [--json out.json]

Needs root, keepalived (Debian 12: 2.2.7) and tcpdump; runs in about 4 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "netns"))

from rig import Netns, Rig, VrrpDaemon  # noqa: E402  (the project's namespace rig)

SEGMENTS = 4
PER_SEGMENT = 250
TICK = os.sysconf("SC_CLK_TCK")


def config(interval: float) -> str:
    out = ["global_defs {", "    router_id scale", "    vrrp_version 3", "    vrrp_garp_master_delay 0", "}"]
    for k in range(SEGMENTS):
        for v in range(1, PER_SEGMENT + 1):
            out += [
                f"vrrp_instance S{k}_{v} {{",
                "    state BACKUP",
                f"    interface eth{k}",
                f"    virtual_router_id {v}",
                "    priority 150",
                f"    advert_int {interval:g}",
                f"    virtual_ipaddress {{\n        10.{90 + k}.1.{v}/32\n    }}",
                "}",
            ]
    return "\n".join(out) + "\n"


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def count_vips(ns: Netns) -> int:
    return sum(1 for a in ns.addresses() if str(a.ip).startswith("10.9") and ".1." in str(a.ip))


def advert_gaps(pcap: Path, interval: float) -> dict[str, Any]:
    """Gaps between consecutive adverts per VRID in a pcap (classic format, Ethernet)."""
    data = pcap.read_bytes()
    if len(data) < 24:
        return {"adverts": 0}
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    off = 24
    last: dict[int, float] = {}
    gaps: list[float] = []
    n = 0
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, off)
        off += 16
        frame = data[off : off + incl]
        off += incl
        t = sec + frac / (1e9 if nano else 1e6)
        if len(frame) < 36 or frame[12:14] != b"\x08\x00" or frame[23] != 112:
            continue
        vrid = frame[14 + 20 + 1]
        n += 1
        if vrid in last:
            gaps.append(t - last[vrid])
        last[vrid] = t
    if not gaps:
        return {"adverts": n}
    gaps.sort()
    late = sum(1 for g in gaps if g > interval * 1.2)
    return {
        "adverts": n,
        "vrids": len(last),
        "gap_median_ms": round(statistics.median(gaps) * 1000, 2),
        "gap_p99_ms": round(gaps[int(len(gaps) * 0.99) - 1] * 1000, 2),
        "gap_max_ms": round(gaps[-1] * 1000, 2),
        "late": late,
        "gaps": len(gaps),
    }


def run_one(kind: str, interval: float, window: float, settle: float) -> dict[str, Any]:
    with Rig() as rig:
        router = rig.namespace("r1")
        for k in range(SEGMENTS):
            lan = rig.bridge(f"lan{k}", net=90 + k)
            rig.connect(router, lan, ifname=f"eth{k}", mac=lan.mac(11), ipv4=lan.ipv4(11), ipv6=lan.ipv6(11))
        conf = config(interval)
        t0 = time.monotonic()
        d: VrrpDaemon = rig.keepalived(router, conf) if kind == "keepalived" else rig.fastka(router, conf)
        n = 0
        deadline = t0 + 120
        while n < SEGMENTS * PER_SEGMENT:
            if time.monotonic() > deadline or not d.running:
                raise RuntimeError(f"{kind}: only {n} VIPs after 120 s\n{d.log()[-3000:]}")
            time.sleep(0.02)
            n = count_vips(router)
        t_all = time.monotonic() - t0
        master_down = 3 * interval + (256 - 150) * interval / 256
        pid = d.vrrp_pid()
        time.sleep(settle)
        (u0, s0), w0 = cpu_times(pid), time.monotonic()
        time.sleep(window)
        (u1, s1), w1 = cpu_times(pid), time.monotonic()
        cpu = (u1 - u0 + s1 - s0) / (w1 - w0) * 100
        sys_share = (s1 - s0) / max(u1 - u0 + s1 - s0, 1e-9) * 100
        rss = rss_kb(pid)
        pcap = rig.tmp / "seg0.pcap"
        cap_s = max(3.0, 5 * interval)
        tcpdump = rig.namespaces["lan0"].popen(
            ["timeout", str(cap_s), "tcpdump", "-i", "br0", "-s", "64", "-w", str(pcap), "ip proto 112"]
        )
        tcpdump.wait(cap_s + 10)
        gaps = advert_gaps(pcap, interval)
        d.stop()
        return {
            "impl": kind,
            "interval": interval,
            "start_to_all_master_s": round(t_all, 3),
            "after_master_down_s": round(t_all - master_down, 3),
            "cpu_percent": round(cpu, 2),
            "system_share_percent": round(sys_share, 1),
            "rss_kb": rss,
            **gaps,
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=30.0, help="CPU measurement window, seconds")
    ap.add_argument("--settle", type=float, default=5.0, help="wait after all MASTER before measuring")
    ap.add_argument("--intervals", default="1,0.1", help="advert intervals to measure")
    ap.add_argument("--impls", default="fastka,keepalived")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    rows = []
    for interval in (float(x) for x in args.intervals.split(",")):
        for kind in args.impls.split(","):
            print(f"... {kind} at advert_int {interval:g}", file=sys.stderr, flush=True)
            rows.append(run_one(kind, interval, args.window, args.settle))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(
        f"{SEGMENTS * PER_SEGMENT} VRRPv3 instances as MASTER ({SEGMENTS} segments x {PER_SEGMENT} VRIDs), "
        f"CPU over {args.window:g} s, host load {os.getloadavg()[0]:.2f}"
    )
    head = (
        f"{'advert_int':>10} {'impl':<10} {'CPU %':>6} {'(sys)':>6} {'RSS MB':>7} {'all MASTER':>10} {'- MDI':>7}"
        f" {'adverts':>8} {'gap med':>8} {'gap p99':>8} {'gap max':>8} {'late':>5}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['interval']:>10g} {r['impl']:<10} {r['cpu_percent']:>6.2f} {r['system_share_percent']:>5.0f}%"
            f" {r['rss_kb'] / 1024:>7.1f}"
            f" {r['start_to_all_master_s']:>9.2f}s {r['after_master_down_s']:>6.2f}s {r.get('adverts', 0):>8}"
            f" {r.get('gap_median_ms', 0):>6.1f}ms {r.get('gap_p99_ms', 0):>6.1f}ms {r.get('gap_max_ms', 0):>6.1f}ms"
            f" {r.get('late', 0):>5}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
