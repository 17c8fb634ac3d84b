"""Shared helpers for the event-loop benchmarks (test_loop_*.py): implementations, CPU
time per operation, and the table printed at the end of each module."""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def cpu() -> float:
    """CPU seconds of this process (user + system, all threads)."""
    return time.process_time()


@dataclass
class Table:
    title: str
    unit: str
    rows: list[tuple[str, float, str]] = field(default_factory=list)

    def add(self, name: str, value: float, note: str = "") -> None:
        self.rows.append((name, value, note))


def table_fixture(title: str, unit: str) -> Any:
    """A module-scoped fixture collecting rows, printed as a table when the module ends."""

    @pytest.fixture(scope="module", name="table")
    def table(request: pytest.FixtureRequest) -> Iterator[Table]:
        t = Table(title, unit)
        yield t
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        capman = request.config.pluginmanager.get_plugin("capturemanager")
        if tr is None or not t.rows:
            return
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            _print(tr, t)

    return table


def _print(tr: Any, t: Table) -> None:
    """One line per case; the ratio is to fastka's row of the same case (``<impl>-<case>``,
    variants such as ``fastka-pingpong-capi`` compare to ``fastka-pingpong``)."""
    best: dict[str, float] = {}
    for name, value, _ in t.rows:
        best[name] = min(best.get(name, value), value)
    tr.write_line("")
    tr.write_line(f"{t.title} -- CPU {t.unit} (best round)")
    tr.write_line(f"  {'case':38} {t.unit:>14} {'vs fastka':>10}  note")
    seen = set()
    for name, _, note in t.rows:
        if name in seen:
            continue
        seen.add(name)
        case = name.partition("-")[2]
        ref = best.get(f"fastka-{case.split('-')[0]}")  # variants compare to plain fastka
        ratio = f"{best[name] / ref:9.2f}x" if ref else ""
        tr.write_line(f"  {name:38} {best[name]:14.3f} {ratio:>10}  {note}")


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
