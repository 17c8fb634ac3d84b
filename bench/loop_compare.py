"""Event-loop benchmarks, interleaved: every case of `timers` (fake clock), `loop-udp` and
`tcp-connect-check` once per round, in a shuffled order, for several rounds; prints the
min and median CPU per operation and the ratios. On a shared machine this is fairer than
pytest-benchmark's rounds, which run one case after the other while the load drifts.

    .venv/bin/python bench/loop_compare.py [--rounds 5] [--only timers,loop-udp,...] [--realtime]

The cases are the ones of bench/test_loop_timers.py, test_loop_udp.py and
test_loop_connect.py (same code); see their docstrings.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_loop_connect as connect
import test_loop_timers as timers
import test_loop_udp as udp
from _loopbench import HAVE_UVLOOP
from fastka._compat import USE_EXTENSIONS


def _cases(realtime: bool) -> list[tuple[str, str, str, float, Callable[[], float]]]:
    """(group, case, unit, scale, run): run() returns CPU seconds per operation."""
    out: list[tuple[str, str, str, float, Callable[[], float]]] = []
    impls = [i for i in ("fastka", "python", "asyncio", "uvloop", "c") if i != "uvloop" or HAVE_UVLOOP]
    if not USE_EXTENSIONS:
        impls.remove("fastka")
    for impl, case in [(p.values[0], p.values[1]) for p in timers.PARAMS]:
        if impl in impls and (realtime or case != "realtime"):
            out.append(
                (
                    "timers",
                    f"{impl}-{case}",
                    "ns/timer",
                    1e9,
                    lambda i=impl, c=case: timers._run(i, c) / timers.N,
                )
            )
    for p in udp.PARAMS:
        impl, case, variant = p.values
        if impl in impls:
            name = f"{impl}-{case}" + (f"-{variant}" if variant else "")
            out.append(
                (
                    "loop-udp",
                    name,
                    "us/msg",
                    1e6,
                    lambda i=impl, c=case, v=variant: udp._run(i, v, *udp.CASES[c]),
                )
            )
    for p in connect.PARAMS:
        impl, variant = p.values
        if impl in impls:
            name = f"{impl}-1000ports" + (f"-{variant}" if variant else "")
            out.append(
                ("tcp-connect-check", name, "us/check", 1e6, lambda i=impl, v=variant: connect._run(i, v))
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated groups")
    ap.add_argument("--realtime", action="store_true", help="include the timers' 10 s real-time cases")
    args = ap.parse_args()
    cases = _cases(args.realtime)
    if args.only:
        groups = set(args.only.split(","))
        cases = [c for c in cases if c[0] in groups]
    results: dict[tuple[str, str], list[float]] = {(g, n): [] for g, n, *_ in cases}
    rnd = random.Random(1)
    for r in range(args.rounds):
        order = cases[:]
        rnd.shuffle(order)
        for group, name, _, scale, run in order:
            gc.collect()
            results[(group, name)].append(run() * scale)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    units = {(g, n): u for g, n, u, *_ in cases}
    for group in dict.fromkeys(g for g, *_ in cases):
        rows = [(n, v) for (g, n), v in results.items() if g == group]
        best = {n: min(v) for n, v in rows}
        unit = units[(group, rows[0][0])]
        print(f"\n{group} -- CPU {unit}, {args.rounds} interleaved rounds")
        print("| case | min | median | min ÷ fastka | min ÷ c |\n|---|---|---|---|---|")
        for n, v in rows:
            base = n.partition("-")[2].split("-")[0]  # variants compare to plain fastka / c
            fk, c = best.get(f"fastka-{base}"), best.get(f"c-{base}")
            fmt = "{:.0f}" if unit.startswith("ns") else "{:.2f}"
            cells = [n, fmt.format(min(v)), fmt.format(statistics.median(v))]
            cells += [f"{min(v) / ref:.2f}×" if ref else "" for ref in (fk, c)]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
