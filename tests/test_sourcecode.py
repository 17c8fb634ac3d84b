"""Lint as a test: ruff and mypy clean, and our C free of -Wall -Wextra warnings."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_ruff_clean() -> None:
    if shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists():
        pytest.skip("ruff not installed")
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    res = _run([ruff, "check", "src", "tests", "bench"])
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_clean() -> None:
    res = _run([sys.executable, "-m", "mypy", "src/fastka"])
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    "source",
    sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.c") if not (p.with_suffix(".pyx")).exists()
    ),
)
def test_c_compiles_without_warnings(source: str) -> None:
    include = sysconfig.get_paths()["include"]
    res = _run(["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", f"-I{include}", source])
    assert res.returncode == 0, res.stderr
