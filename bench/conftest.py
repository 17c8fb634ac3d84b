"""Shared by every benchmark in bench/ (keep it generic).

Convention (DESIGN.md): ``test_<operation>[<impl>-<case>]`` with
``benchmark.group = "<operation>"``, implementations side by side (``fastka``,
``python``, rivals). With that convention this file prints, after pytest-benchmark's own
table, one comparison table per group: for each case, every implementation's min and
median time per call, the same per unit of work when the benchmark sets
``benchmark.extra_info["per"] = N`` (and ``["unit"]``, e.g. 64 packets per call), and the
ratio to ``fastka`` (per unit). A benchmark that makes several calls per round (the inner
loop of ``bench/_percall.py``) says so with ``extra_info["calls"]``; times per call are
then per one of them. If ``bench/test_harness_floor.py`` ran, its floors -- a trivial C
call in that inner loop, and one call through pytest-benchmark's own loop -- are shown
too, and every fastka row gets a "net" column with the matching floor subtracted.
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


def _calls(b: Any) -> int:
    return int(b.extra_info.get("calls", 1))


def _per(b: Any) -> int:
    return int(b.extra_info.get("per", _calls(b)))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    benches = [b for b in getattr(session, "benchmarks", []) or [] if b and b.group]
    if not benches:
        return
    floors = [b for b in benches if b.group == FLOOR_GROUP and (b.param or "").startswith("builtin-len")]
    nulls = sorted(
        (b for b in benches if b.group == FLOOR_GROUP and (b.param or "").startswith("null-")),
        key=lambda b: int((b.param or "").split("-")[1].removesuffix("args")),
    )
    # per call: in the inner loop (calls > 1), and through pytest-benchmark's loop
    floor_loop = min((b.stats.min / _calls(b) for b in floors if _calls(b) > 1), default=None)
    floor_single = min((b.stats.min for b in floors if _calls(b) == 1), default=None)
    tr = terminalreporter
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for b in benches:
        if b.group == FLOOR_GROUP:
            continue
        impl, case = _split(b.param)
        groups.setdefault(b.group, {}).setdefault(case, {})[impl] = b
    tr.write_sep("-", "comparison per group (time per call; ratio = impl / fastka per unit, by min)")
    if floor_loop is not None:
        tr.write_line(f"harness floor, trivial C call in the inner loop: {_fmt(floor_loop).strip()} per call")
    if floor_single is not None:
        tr.write_line(f"harness floor, one call per pytest-benchmark round: {_fmt(floor_single).strip()}")
    if nulls:
        calls = ", ".join(f"{b.param.split('-')[1]} {_fmt(b.stats.min / _calls(b)).strip()}" for b in nulls)
        tr.write_line(f"a METH_FASTCALL builtin doing nothing, in the inner loop, by arguments: {calls}")
    for group in sorted(groups):
        tr.write_line("")
        tr.write_line(f"[{group}]")
        cw = max([4] + [len(c) for c in groups[group]])
        iw = max([4] + [len(i) for c in groups[group].values() for i in c])
        head = f"  {'case':{cw}} {'impl':{iw}} {'min':>12} {'median':>12} {'per unit':>16} {'ratio':>9}"
        if floor_loop is not None or floor_single is not None:
            head += f" {'net of floor':>13}"
        tr.write_line(head)
        for case in sorted(groups[group]):
            impls = groups[group][case]
            ref = impls.get("fastka")
            order = sorted(impls, key=lambda i: (i != "fastka", i != "python", i))
            for impl in order:
                b = impls[impl]
                calls, per = _calls(b), _per(b)
                unit = b.extra_info.get("unit", "unit")
                per_text = f"{_fmt(b.stats.min / per).strip()}/{unit}" if per != calls else ""
                ratio = (
                    f"{(b.stats.min / per) / (ref.stats.min / _per(ref)):8.1f}x" if ref is not None else ""
                )
                line = (
                    f"  {case:{cw}} {impl:{iw}} {_fmt(b.stats.min / calls)} {_fmt(b.stats.median / calls)}"
                    f" {per_text:>16} {ratio:>9}"
                )
                floor = floor_loop if calls > 1 else floor_single
                if floor is not None and impl == "fastka":
                    net = (b.stats.min - calls * floor) / (per if per != calls else calls)
                    line += f" {_fmt(net):>13}"
                tr.write_line(line)
