"""CPU per health check, fastka vs Keepalived 2.2.7, on the same machine and kernel.

Both need IPVS, which this host's kernel lacks, so everything runs inside user-mode-linux
(Debian's ``linux.uml``, Linux 6.1 with ip_vs): a target namespace where 10.2.0.0/16 is
local (one listener answers N real-server addresses), and in turn ``fastka``'s checker
engine and ``keepalived -n -C`` on a configuration of N real servers with one TCP_CHECK
(then one HTTP_GET) each and ``delay_loop`` D, i.e. N/D checks per second. After a
warm-up, the checker process's CPU time (utime + stime from /proc, children included)
over a window is divided by the checks the target served in that window.

    python bench/compare/checks.py [--n 1000] [--delay-loop 1] [--window 10]

Each implementation runs ``--rounds`` times, alternating; the table shows each one's
best round (least disturbed by other load on the host). Prints the table and, with ``--json FILE``, writes the raw numbers. Needs root and
``linux.uml``; runs in about a minute and a half.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from check import uml_rig  # noqa: E402  (the checker tests' user-mode-linux rig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="real servers (one checker each)")
    ap.add_argument("--delay-loop", type=float, default=1.0)
    ap.add_argument("--window", type=float, default=6.0, help="measurement window, seconds")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best is kept")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    script = uml_rig.TOPOLOGY.format(n_rs=1) + (
        f"{uml_rig.PYTHON} {ROOT}/bench/compare/_checks_guest.py $PWD/result.json "
        f"{args.n} {args.delay_loop} {args.window} {args.rounds}\n"
    )
    result = uml_rig.run_in_guest(script, timeout=600, mem="1536M")
    try:
        path = result.work / "result.json"
        if not path.exists():
            print(f"guest failed (rc {result.rc}):\n{result.output[-3000:]}", file=sys.stderr)
            return 1
        rows = json.loads(path.read_text())
    finally:
        uml_rig.cleanup(result)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    rate = args.n / args.delay_loop
    print(
        f"CPU per check at {rate:.0f} checks/s ({args.n} real servers, delay_loop {args.delay_loop} s), in UML"
    )
    print(
        f"host load average at the end: {os.getloadavg()[0]:.2f} (UML's CPU accounting suffers from host load)"
    )
    print(
        f"{'checker':10} {'impl':11} {'checks/s':>9} {'CPU s':>7} {'µs/check':>9} {'vs keepalived':>14}"
        f" {'syscalls/check':>15}"
    )
    by: dict[tuple[str, str], dict[str, object]] = {}
    for r in rows:
        key = (r["kind"], r["impl"])
        if r["cpu_us_per_check"] and (
            key not in by or r["cpu_us_per_check"] < by[key]["cpu_us_per_check"]  # type: ignore[operator]
        ):
            by[key] = r
    for kind in ("tcp", "http"):
        ka: Any = by.get((kind, "keepalived"), {}).get("cpu_us_per_check")
        for impl in ("fastka", "keepalived"):
            r = by.get((kind, impl))
            if r is None:
                continue
            us: Any = r["cpu_us_per_check"]
            ratio = f"{us / ka:.2f}x" if us and ka else "-"
            name = "TCP_CHECK" if kind == "tcp" else "HTTP_GET"
            sc = next(
                (
                    x["syscalls_per_check"]
                    for x in rows
                    if x["kind"] == kind and x["impl"] == impl and x.get("syscalls_per_check")
                ),
                None,
            )
            total = sc["total"] if sc else "-"
            print(
                f"{name:10} {impl:11} {r['checks_per_s']:>9} {r['cpu_s']:>7} {us!s:>9} {ratio:>14} {total!s:>15}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
