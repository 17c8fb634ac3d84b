"""Programming 1000 services x 4 real servers into an empty IPVS table, in user-mode-linux.

    python bench/compare/ipvs_apply.py [--services 1000] [--dests 4] [--rounds 3]

Everything runs in one guest (Debian's ``linux.uml``, Linux 6.1 with ip_vs; see
``tests/uml/rig.py``), one way after the other, each from an empty table and checked
against ``/proc/net/ip_vs``:

* ``fastka apply``: ``Ipvs().apply(Table(), table)`` in a warm Python process -- the
  diff and the batched netlink (C codec; one ACK per batch). Target: <= 0.15 s.
* ``fastka model+apply``: the same plus building the :class:`Table` of 5000 objects.
* ``kernel floor``: the same messages built beforehand; only sendmsg/recv are timed.
* ``pyroute2``: ``IPVS().service("add")``/``.dest("add")``, one request per entry.
* ``ipvsadm -R``: one process restoring a save file.
* ``keepalived``: ``keepalived -n -l -D -C -f FILE`` (Debian 2.2.7) on the same table as
  a config without checkers, from exec until the table is complete (``/proc/net/ip_vs``
  polled every 50 ms).
* ``fastka daemon``: ``fastka -n -l -D -C -f FILE``, measured the same way.

Prints min and median per way over ``--rounds`` (pyroute2 and the daemons run fewer
times: they are slow). The guest has one CPU and shares the host's: run it on a quiet
machine for numbers to compare across runs; the ratios within one run hold anyway.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _ipvs_apply_guest as g  # noqa: E402

from uml.rig import Guest  # noqa: E402

TARGET = 0.15


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--dests", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma-separated ways to skip (e.g. pyroute2)")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    n, m = args.services, args.dests
    skip = set(filter(None, args.skip.split(",")))
    fastka = str(Path(sys.executable).parent / "fastka")
    results: dict[str, list[dict[str, float]]] = {}
    with Guest(preload=("fastka.ipvs.ipvs", "fastka.ipvs.codec", "_ipvs_apply_guest"), mem="1536M") as guest:
        w = str(guest.workdir)
        ways: list[tuple[str, Any, tuple[Any, ...], int]] = [
            ("fastka apply", g.fastka_api, (n, m), args.rounds),
            ("kernel floor", g.fastka_raw, (n, m), args.rounds),
            ("pyroute2", g.pyroute2_api, (n, m), 1),
            ("ipvsadm -R", g.ipvsadm_restore, (n, m, w), args.rounds),
            ("keepalived", g.daemon, (["keepalived"], n, m, w), max(1, args.rounds - 1)),
            ("fastka daemon", g.daemon, ([fastka], n, m, w), max(1, args.rounds - 1)),
        ]
        for name, func, fargs, rounds in ways:
            if name.split()[0] in skip or name in skip:
                continue
            for _ in range(rounds):
                r = guest.call(func, *fargs, timeout=600)
                results.setdefault(name, []).append(r)
                if name == "fastka apply":
                    results.setdefault("fastka model+apply", []).append({"apply": r["total"]})
                print(f"  {name}: {r}", file=sys.stderr, flush=True)
    print(f"\nIPVS: {n} services x {m} real servers ({n * (m + 1)} entries) into an empty table, in UML")
    print(f"{'way':22} {'min':>9} {'median':>9} {'runs':>5}  ratio to fastka apply")
    base = min(r["apply"] for r in results["fastka apply"]) if "fastka apply" in results else None
    order = [
        "fastka apply",
        "fastka model+apply",
        "kernel floor",
        "pyroute2",
        "ipvsadm -R",
        "keepalived",
        "fastka daemon",
    ]
    for name in order:
        if name not in results:
            continue
        times = [r["apply"] for r in results[name]]
        ratio = f"{min(times) / base:8.1f}x" if base else ""
        print(f"{name:22} {min(times):8.3f}s {statistics.median(times):8.3f}s {len(times):5}  {ratio}")
    if base is not None:
        print(
            f"\ntarget for fastka apply: <= {TARGET} s -> {'met' if base <= TARGET else 'NOT met'} ({base:.3f} s)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
