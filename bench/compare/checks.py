"""CPU per health check, fastka vs Keepalived 2.2.7, on the same machine and kernel.

Both need IPVS, which this host's kernel lacks, so everything runs inside user-mode-linux
(Debian's ``linux.uml``, Linux 6.1 with ip_vs; the rig is ``tests/uml/rig.py``): one
target namespace per implementation where all its N real-server addresses are local (one
listener answers them all: 10.2.0.0/16 for fastka, 10.3.0.0/16 for Keepalived), and
``fastka``'s checker engine and ``keepalived -n -C`` side by side, each on its own virtual
server of N real servers with one TCP_CHECK (then one HTTP_GET) each and ``delay_loop`` D,
i.e. N/D checks per second each, at the same time (so that both see the same load). After
a warm-up, each checker process's CPU time (utime + stime from /proc, children included)
over a window is divided by the checks made in that window (connections accepted by the
kernel of its target namespace: ``PassiveOpens``); then ``strace -c`` counts the system
calls per check.

    python bench/compare/checks.py [--n 1000] [--delay-loop 1] [--window 6] [--rounds 7]

Prints one line per window with both implementations and their ratio, the median ratio,
and the system calls per check. With ``--json FILE``, writes the raw numbers. Needs root and
``linux.uml``; runs in about five minutes. CPU accounting inside UML is tick-sampled
(10 ms steps) and gets noisy when the host is busy: both programs are restarted for every
round (see ``measure_pair`` in ``_checks_guest.py``); compare ratios within a window, and
medians over many rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from check import topology  # noqa: E402  (the checker tests' guest topology)
from uml.rig import Guest, host_python  # noqa: E402  (the project's user-mode-linux rig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="real servers (one checker each)")
    ap.add_argument("--delay-loop", type=float, default=1.0)
    ap.add_argument("--window", type=float, default=6.0, help="measurement window, seconds")
    ap.add_argument("--rounds", type=int, default=7, help="measurement windows per checker type")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    with Guest(mem="1536M") as guest:
        guest.run(topology.TOPOLOGY.format(n_rs=2), timeout=60, check=True)
        path = guest.workdir / "result.json"
        argv = [host_python(), str(ROOT / "bench/compare/_checks_guest.py"), str(path)]
        argv += [str(args.n), str(args.delay_loop), str(args.window), str(args.rounds)]
        run = guest.run(argv, timeout=1800)
        if not path.exists():
            print(f"guest failed (rc {run.returncode}):\n{run.stderr[-3000:]}", file=sys.stderr)
            return 1
        rows = json.loads(path.read_text())
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    rate = args.n / args.delay_loop
    print(
        f"CPU per check at {rate:.0f} checks/s each ({args.n} real servers, delay_loop {args.delay_loop} s),"
        " fastka and Keepalived 2.2.7 side by side in user-mode-linux"
    )
    print(f"host load average at the end: {os.getloadavg()[0]:.2f}")
    print(
        f"{'checker':10} {'round':>5} {'fastka chk/s':>12} {'µs/check':>9} {'keepalived chk/s':>16}"
        f" {'µs/check':>9} {'ratio':>6}"
    )
    for kind, name in (("tcp", "TCP_CHECK"), ("http", "HTTP_GET")):
        ratios = []
        for r in sorted({int(x["round"]) for x in rows if x["kind"] == kind}):
            f = next(x for x in rows if x["kind"] == kind and x["round"] == r and x["impl"] == "fastka")
            k = next(x for x in rows if x["kind"] == kind and x["round"] == r and x["impl"] == "keepalived")
            fu: Any = f["cpu_us_per_check"]
            ku: Any = k["cpu_us_per_check"]
            ratio = fu / ku if fu and ku else None
            if ratio is not None:
                ratios.append(ratio)
            shown = f"{ratio:.2f}" if ratio is not None else "-"
            print(
                f"{name:10} {r:>5} {f['checks_per_s']!s:>12} {fu!s:>9} {k['checks_per_s']!s:>16} {ku!s:>9} {shown:>6}"
            )
        if ratios:
            print(f"{name:10} median fastka/keepalived CPU per check: {statistics.median(ratios):.2f}")
    print("system calls per check (strace -c of each program alone, per socket opened):")
    for kind, name in (("tcp", "TCP_CHECK"), ("http", "HTTP_GET")):
        for impl in ("fastka", "keepalived"):
            sc: Any = next(
                (x.get("syscalls_per_check") for x in rows if x["kind"] == kind and x["impl"] == impl), None
            )
            if sc:
                detail = ", ".join(f"{k} {v}" for k, v in sc.items() if k != "total")
                print(f"  {name:10} {impl:11} {sc['total']:>6}  ({detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
