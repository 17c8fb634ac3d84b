"""Shared helpers for the event-loop benchmarks (test_loop_*.py): implementations, CPU
time per operation, and the table printed at the end of each module."""

from __future__ import annotations

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
        if tr is None or not t.rows:
            return
        best: dict[str, float] = {}
        for name, value, _ in t.rows:
            best[name] = min(best.get(name, value), value)
        ref = next((v for k, v in best.items() if k.startswith("fastka")), None)
        tr.write_line("")
        tr.write_line(f"{t.title} -- CPU {t.unit} (best round)")
        tr.write_line(f"  {'case':38} {t.unit:>14} {'vs fastka':>10}  note")
        seen = set()
        for name, _, note in t.rows:
            if name in seen:
                continue
            seen.add(name)
            value = best[name]
            ratio = f"{value / ref:9.2f}x" if ref else ""
            tr.write_line(f"  {name:38} {value:14.3f} {ratio:>10}  {note}")

    return table


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
