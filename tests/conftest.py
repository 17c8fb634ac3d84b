"""Shared test fixtures.

* ``implementations(compiled, reference)`` builds the parameter list that runs a test
  against the compiled module (id ``fastka``, mark ``compiled``) and its pure-Python
  reference (id ``python``). With ``FASTKA_NO_EXTENSIONS=1`` only the reference runs.
* ``require_root()`` / ``require_tool(name)`` skip with a clear reason when something
  is missing -- unless ``FASTKA_REQUIRE_ALL=1`` (set by the test command, so in CI),
  where a missing prerequisite fails the test instead of skipping it silently.
* ``SHARED`` is the project's reference material (``shared/`` beside the repository, as
  CI lays it out; ``FASTKA_SHARED`` overrides); ``shared_path(...)`` finds a piece of it.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fastka._compat import USE_EXTENSIONS

REQUIRE_ALL = os.environ.get("FASTKA_REQUIRE_ALL", "") not in ("", "0")
SHARED = Path(os.environ.get("FASTKA_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def implementations(compiled: str, reference: str) -> list[object]:
    """pytest params for a compiled module and its reference, compiled first."""
    params: list[object] = []
    if USE_EXTENSIONS:
        params.append(pytest.param(compiled, id="fastka", marks=pytest.mark.compiled))
    params.append(pytest.param(reference, id="python"))
    return params


def load(name: str) -> ModuleType:
    return importlib.import_module(name)


def _missing(reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"prerequisite missing with FASTKA_REQUIRE_ALL=1: {reason}")
    pytest.skip(reason)


def shared_path(*parts: str) -> Path:
    """A piece of the reference material; skip (fail in CI) when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        _missing(f"reference material {path} not found (shared/ beside the repository or FASTKA_SHARED)")
    return path


def require_root() -> None:
    if os.geteuid() != 0:
        _missing("needs root (network namespaces, raw sockets)")


def require_tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
        None,
    )
    if path is None:
        _missing(f"needs the tool {name!r} (installed by scripts/run.sh)")
        raise AssertionError("unreachable")
    return path


_THIS = sys.modules[__name__]


def pytest_plugin_registered(plugin: object) -> None:
    """pytest imports every package-less ``conftest.py`` under the module name ``conftest``;
    point that name back at this file after each one, so ``from conftest import
    require_root`` (or ``implementations``) means this file in every test module."""
    if isinstance(plugin, ModuleType) and plugin.__name__ == "conftest" and plugin is not _THIS:
        sys.modules["conftest"] = _THIS
