"""Shared by every benchmark in bench/ (keep it generic).

Convention (DESIGN.md): ``test_<operation>[<impl>-<case>]`` with
``benchmark.group = "<operation>"``, implementations side by side (``fastka``,
``python``, rivals). With that convention this file prints, after pytest-benchmark's own
table, one comparison table per group: for each case, every implementation's min and
median time per call, the same per unit of work when the benchmark sets
``benchmark.extra_info["per"] = N`` (and ``["unit"]``, e.g. 64 packets per call), and the
ratio to ``fastka``. If ``bench/test_harness_floor.py`` ran, its time -- the cost of
calling a trivial C function through pytest-benchmark's loop on this machine -- is
shown too, and every fastka row gets a "net" column with the floor subtracted.
"""

from __future__ import annotations

from typing import Any

import pytest

FLOOR_GROUP = "harness-floor"


def _split(param: str | None) -> tuple[str, str]:
    """``fastka-v2-ipv4-1vip`` -> (``fastka``, ``v2-ipv4-1vip``)."""
    if not param:
        return "", ""
    impl, _, case = param.partition("-")
    return impl, case


def _fmt(seconds: float) -> str:
    ns = seconds * 1e9
    if ns < 10_000:
        return f"{ns:9.1f} ns"
    if ns < 10_000_000:
        return f"{ns / 1e3:9.1f} us"
    return f"{ns / 1e6:9.1f} ms"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    benches = [b for b in getattr(session, "benchmarks", []) or [] if b and b.group]
    if not benches:
        return
    floor = min((b.stats.min for b in benches if b.group == FLOOR_GROUP), default=None)
    tr = terminalreporter
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for b in benches:
        if b.group == FLOOR_GROUP:
            continue
        impl, case = _split(b.param)
        groups.setdefault(b.group, {}).setdefault(case, {})[impl] = b
    tr.write_sep("-", "comparison per group (time per call; ratio = impl / fastka, by min)")
    if floor is not None:
        tr.write_line(f"harness floor (trivial C call through the benchmark loop): {_fmt(floor).strip()}")
    for group in sorted(groups):
        tr.write_line("")
        tr.write_line(f"[{group}]")
        cw = max([4] + [len(c) for c in groups[group]])
        iw = max([4] + [len(i) for c in groups[group].values() for i in c])
        head = f"  {'case':{cw}} {'impl':{iw}} {'min':>12} {'median':>12} {'per unit':>16} {'ratio':>9}"
        if floor is not None:
            head += f" {'net of floor':>13}"
        tr.write_line(head)
        for case in sorted(groups[group]):
            impls = groups[group][case]
            ref = impls.get("fastka")
            order = sorted(impls, key=lambda i: (i != "fastka", i != "python", i))
            for impl in order:
                b = impls[impl]
                per = b.extra_info.get("per")
                unit = b.extra_info.get("unit", "unit")
                per_text = f"{_fmt(b.stats.min / per).strip()}/{unit}" if per else ""
                ratio = f"{b.stats.min / ref.stats.min:8.1f}x" if ref is not None else ""
                line = f"  {case:{cw}} {impl:{iw}} {_fmt(b.stats.min)} {_fmt(b.stats.median)} {per_text:>16} {ratio:>9}"
                if floor is not None and impl == "fastka":
                    net = b.stats.min - floor
                    line += f" {_fmt(net / per if per else net):>13}"
                tr.write_line(line)
