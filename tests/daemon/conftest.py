"""Fixtures for the daemon tests: ``fastka(config=None, args=None)`` makes a
:class:`fkproc.Fastka` in the test's temp dir; every one made is stopped (and its
children killed) at teardown.

pytest imports each package-less ``conftest.py`` as the module ``conftest``, so tests
here that ``from conftest import require_root`` get this file: the root conftest's
helpers are re-exported (loaded by path under the name ``tests/netns/rig.py`` uses).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fkproc import Fastka


def _root_conftest() -> ModuleType:
    name = "_fastka_tests_root_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parent.parent / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_root = _root_conftest()
require_root: Callable[[], None] = _root.require_root
require_tool: Callable[[str], str] = _root.require_tool


@pytest.fixture
def fastka(tmp_path: Path) -> Iterator[Callable[..., Fastka]]:
    made: list[Fastka] = []

    def make(config: dict[str, Any] | None = None, args: list[str] | None = None, name: str = "") -> Fastka:
        d = tmp_path / (name or f"fk{len(made)}")
        d.mkdir()
        fk = Fastka(d, config, args)
        made.append(fk)
        return fk

    try:
        yield make
    finally:
        for fk in made:
            fk.stop()
