"""Fixtures for the event-loop tests: both implementations, a fake clock.

Not a ``conftest.py``: pytest imports every conftest of a directory without
``__init__.py`` under the one module name ``conftest`` (dropping the previous one), which
would break the ``from conftest import ...`` of test modules collected later. Test
modules bind the fixtures with ``impl, loop, clock, floop = loop_fixtures.fixtures()``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _root_conftest() -> ModuleType:
    name = "fastka_tests_root_conftest"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parent.parent / "conftest.py"
        )
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


implementations: Callable[[str, str], list[object]] = _root_conftest().implementations
require_root: Callable[[], None] = _root_conftest().require_root

IMPLEMENTATIONS = implementations("fastka._loop", "fastka._loop_py")


class FakeClock:
    """A settable clock for ``Loop(clock=...)``: tests move time by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, dt: float) -> None:
        self.now += dt


def fixtures() -> tuple[Any, Any, Any, Any]:
    """The fixtures ``impl`` (module), ``loop``, ``clock`` (FakeClock), ``floop`` (loop on it)."""

    @pytest.fixture(name="impl", params=IMPLEMENTATIONS)
    def impl(request: pytest.FixtureRequest) -> ModuleType:
        return importlib.import_module(request.param)

    @pytest.fixture(name="loop")
    def loop(impl: ModuleType) -> Iterator[Any]:
        lp = impl.Loop()
        try:
            yield lp
        finally:
            lp.close()

    @pytest.fixture(name="clock")
    def clock() -> FakeClock:
        return FakeClock()

    @pytest.fixture(name="floop")
    def floop(impl: ModuleType, clock: FakeClock) -> Iterator[Any]:
        lp = impl.Loop(clock=clock)
        try:
            yield lp
        finally:
            lp.close()

    return impl, loop, clock, floop
