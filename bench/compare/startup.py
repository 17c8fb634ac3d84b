"""Start-up, respawn and memory of the whole daemon, fastka vs Keepalived 2.2.7.

    sudo .venv/bin/python bench/compare/startup.py [--rounds 3] [--only vrrp,respawn,memory,ipvs] [--json out.json]

Each case runs both implementations with the same configuration and command line
(``-n -l -D -G``), one after the other, round after round:

* ``vrrp-start`` (network namespaces, ``tests/netns/rig.py``): from the exec to the first
  VRRP advert on the wire and to the last VIP in place, for 1 instance and for 1000
  (four segments x 250 VRIDs, VRRPv3, one /32 VIP each). The instances are address
  owners (``state MASTER``, ``priority 255``): both implementations make them MASTER at
  once, so the figures are pure start-up, with no master-down wait in them.
* ``vrrp-respawn``: ``advert_int 0.1`` (Master_Down_Interval 0.3 s + skew), priority 150,
  every instance MASTER; the VRRP child is killed with SIGKILL. Per VRID: time from the
  kill to its next advert, and the longest silence on the wire (the peers' master-down
  timer must not expire: 341 ms for a priority-100 backup). Keepalived's new child starts
  as BACKUP and waits its own master-down interval; fastka's resumes as MASTER.
* ``memory``: RSS and PSS (``/proc/PID/smaps_rollup``) of the parent and the VRRP child
  with the 1000 instances running, two seconds after the last VIP.
* ``ipvs-start`` (user-mode-linux, Linux 6.1 with ip_vs, ``tests/uml/rig.py``): ``-n -C``
  from the exec to the full IPVS table (``/proc/net/ip_vs`` polled every 50 ms, as
  ``bench/compare/ipvs_apply.py``), for 1 virtual server x 4 real servers and for
  1000 x 4, no checkers.

Needs root, keepalived, and linux.uml for ``ipvs-start``. Prints one table per case (min
and median over the rounds); ``--json`` keeps the raw figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "netns"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rig import Capture, Rig, VrrpDaemon  # noqa: E402  (the project's namespace rig)

SEGMENTS = 4
PER_SEGMENT = 250
IMPLS = ("fastka", "keepalived")


def vrrp_config(n: int, *, owner: bool, interval: float) -> str:
    """``n`` VRRPv3 instances, 250 per segment (eth0..eth3, VRID 1..250)."""
    out = [
        "global_defs {",
        "    router_id startup",
        "    vrrp_version 3",
        "    vrrp_garp_master_delay 0",
        "}",
    ]
    for i in range(n):
        k, v = divmod(i, PER_SEGMENT)
        out += [
            f"vrrp_instance S{k}_{v + 1} {{",
            "    state MASTER" if owner else "    state BACKUP",
            f"    interface eth{k}",
            f"    virtual_router_id {v + 1}",
            f"    priority {255 if owner else 150}",
            f"    advert_int {interval:g}",
            f"    virtual_ipaddress {{\n        10.{90 + k}.1.{v + 1}/32\n    }}",
            "}",
        ]
    return "\n".join(out) + "\n"


def wait(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout} s")
        time.sleep(interval)


def mem(pid: int) -> dict[str, int]:
    """Rss and Pss (kB) of a process."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key.lower()] = int(value.split()[0])
    return out


class World:
    """A router namespace with ``segments`` interfaces, each on its own bridge."""

    def __init__(self, rig: Rig, segments: int) -> None:
        self.rig = rig
        self.router = rig.namespace("r1")
        self.lans = []
        for k in range(segments):
            lan = rig.bridge(f"lan{k}", net=90 + k)
            rig.connect(
                self.router, lan, ifname=f"eth{k}", mac=lan.mac(11), ipv4=lan.ipv4(11), ipv6=lan.ipv6(11)
            )
            self.lans.append(lan)

    def vips(self) -> int:
        return sum(1 for a in self.router.addresses() if a.ip.version == 4 and str(a.ip).split(".")[2] == "1")

    def captures(self) -> list[Capture]:
        return [Capture(lan).start() for lan in self.lans]

    def start(self, kind: str, config: str) -> VrrpDaemon:
        return (
            self.rig.keepalived(self.router, config)
            if kind == "keepalived"
            else self.rig.fastka(self.router, config)
        )


def adverts(caps: list[Capture]) -> list[tuple[float, int, int]]:
    """(time, segment, VRID) of every VRRP advert captured."""
    out = []
    for k, cap in enumerate(caps):
        for f in cap.stop():
            if f.is_vrrp and f.ethertype == 0x0800:
                out.append((f.t, k, f.data[14 + (f.data[14] & 0xF) * 4 + 1]))
    return sorted(out)


def vrrp_start(kind: str, n: int) -> dict[str, Any]:
    with Rig() as rig:
        world = World(rig, (n + PER_SEGMENT - 1) // PER_SEGMENT)
        caps = world.captures()
        conf = vrrp_config(n, owner=True, interval=1.0)
        t0 = time.monotonic()
        d = world.start(kind, conf)
        wait(lambda: world.vips() >= n or not d.running, 120, f"{n} VIPs", 0.005)
        t_all = time.monotonic() - t0
        if not d.running:
            raise RuntimeError(f"{kind} exited:\n{d.log()[-3000:]}")
        time.sleep(0.2)
        seen = adverts(caps)
        result: dict[str, Any] = {
            "first_advert_s": seen[0][0] - t0 if seen else None,
            "all_vips_s": t_all,
        }
        if n >= 1000:
            time.sleep(2.0)
            result["mem_parent"] = mem(int(d.pid_file.read_text().split()[0]))
            result["mem_vrrp"] = mem(d.vrrp_pid())
        d.stop()
        return result


def vrrp_respawn(kind: str, n: int, kills: int) -> list[dict[str, Any]]:
    out = []
    with Rig() as rig:
        world = World(rig, (n + PER_SEGMENT - 1) // PER_SEGMENT)
        d = world.start(kind, vrrp_config(n, owner=False, interval=0.1))
        wait(lambda: world.vips() >= n, 120, f"{n} VIPs", 0.02)
        for _ in range(kills):
            time.sleep(1.5)  # the checkpoint reaches the parent; a healthy child, no back-off
            pid = d.vrrp_pid()
            caps = world.captures()
            time.sleep(0.3)
            t_kill = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            wait(lambda pid=pid: (p := _pid(d)) and p != pid, 10, "a new VRRP child")
            time.sleep(1.2 if kind == "fastka" else 1.5)
            last: dict[tuple[int, int], float] = {}
            first: dict[tuple[int, int], float] = {}
            gap: dict[tuple[int, int], float] = {}
            for t, seg, vrid in adverts(caps):
                key = (seg, vrid)
                if t < t_kill:
                    last[key] = t
                elif key not in first:
                    first[key] = t
                    if key in last:
                        gap[key] = t - last[key]
            back = sorted(first[k] - t_kill for k in first)
            out.append(
                {
                    "instances_back": len(first),
                    "first_s": back[0] if back else None,
                    "median_s": back[len(back) // 2] if back else None,
                    "last_s": back[-1] if back else None,
                    "max_gap_s": max(gap.values()) if gap else None,
                }
            )
        d.stop()
    return out


def _pid(d: VrrpDaemon) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):  # Keepalived writes in place
        return int(d.vrrp_pid_file.read_text().split()[0])
    return None


def ipvs_start(rounds: int, sizes: list[tuple[int, int]]) -> dict[str, list[dict[str, float]]]:
    import _ipvs_apply_guest as g

    from uml.rig import Guest

    fastka = str(Path(sys.executable).parent / "fastka")
    results: dict[str, list[dict[str, float]]] = {}
    with Guest(preload=("_ipvs_apply_guest",), mem="1536M") as guest:
        w = str(guest.workdir)
        for _ in range(rounds):
            for n, m in sizes:
                for kind, argv in (("fastka", [fastka]), ("keepalived", ["keepalived"])):
                    r = guest.call(g.daemon, argv, n, m, w, timeout=600)
                    results.setdefault(f"{kind} {n}x{m}", []).append(r)
                    print(f"  ipvs-start {kind} {n}x{m}: {r}", file=sys.stderr, flush=True)
    return results


def ms(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    return f"{min(vals) * 1e3:7.0f} / {statistics.median(vals) * 1e3:7.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="vrrp,respawn,ipvs", help="cases: vrrp (with memory), respawn, ipvs")
    ap.add_argument("--instances", default="1,1000", help="VRRP instance counts")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    only = set(args.only.split(","))
    counts = [int(x) for x in args.instances.split(",")]
    raw: dict[str, Any] = {"load": os.getloadavg()[0]}
    if "vrrp" in only:
        starts: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.rounds):
            for n in counts:
                for kind in IMPLS:
                    r = vrrp_start(kind, n)
                    starts.setdefault(f"{kind} {n}", []).append(r)
                    print(f"  vrrp-start {kind} {n}: {r}", file=sys.stderr, flush=True)
        raw["vrrp_start"] = starts
    if "respawn" in only:
        respawns: dict[str, list[dict[str, Any]]] = {}
        for n in counts:
            for kind in IMPLS:
                rs = vrrp_respawn(kind, n, args.rounds)
                respawns[f"{kind} {n}"] = rs
                print(f"  vrrp-respawn {kind} {n}: {rs}", file=sys.stderr, flush=True)
        raw["vrrp_respawn"] = respawns
    if "ipvs" in only:
        raw["ipvs_start"] = ipvs_start(max(1, args.rounds - 1), [(1, 4), (1000, 4)])
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))

    print(f"\nhost load average {raw['load']:.2f}; times in ms, min / median over the rounds")
    if "vrrp_start" in raw:
        print("\nvrrp-start (address owners: MASTER at once), from the exec")
        print(f"{'case':24} {'first advert':>17} {'all VIPs':>17}")
        for key, rs in raw["vrrp_start"].items():
            print(
                f"{key:24} {ms([r['first_advert_s'] for r in rs]):>17} {ms([r['all_vips_s'] for r in rs]):>17}"
            )
        mems = {k: rs for k, rs in raw["vrrp_start"].items() if "mem_vrrp" in rs[0]}
        if mems:
            print("\nmemory with 1000 instances (kB, last round): RSS / PSS")
            print(f"{'case':24} {'parent':>17} {'VRRP child':>17} {'total PSS':>10}")
            for key, rs in mems.items():
                p, c = rs[-1]["mem_parent"], rs[-1]["mem_vrrp"]
                print(
                    f"{key:24} {p['rss']:>8} / {p['pss']:>6} {c['rss']:>8} / {c['pss']:>6} {p['pss'] + c['pss']:>10}"
                )
    if "vrrp_respawn" in raw:
        print("\nvrrp-respawn (advert_int 0.1, SIGKILL of the VRRP child), per VRID")
        print(f"{'case':24} {'kill->first':>17} {'kill->median':>17} {'kill->last':>17} {'longest gap':>17}")
        for key, rs in raw["vrrp_respawn"].items():
            print(
                f"{key:24} {ms([r['first_s'] for r in rs]):>17} {ms([r['median_s'] for r in rs]):>17}"
                f" {ms([r['last_s'] for r in rs]):>17} {ms([r['max_gap_s'] for r in rs]):>17}"
            )
    if "ipvs_start" in raw:
        print("\nipvs-start in user-mode-linux (-n -C), from the exec")
        print(f"{'case':24} {'first entry':>17} {'full table':>17}")
        for key, rs in raw["ipvs_start"].items():
            print(f"{key:24} {ms([r['first'] for r in rs]):>17} {ms([r['apply'] for r in rs]):>17}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
