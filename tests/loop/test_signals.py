"""Signals through signalfd, run in a clean interpreter.

A signal sent to a process goes to any thread that does not block it. The loop blocks the
signals it reads in the thread that creates it (as a daemon does before starting any
thread), but a test process may hold threads left by other tests (servers, samplers);
one of them would take the signal and its default action would kill the whole run. So the
cases in ``signal_cases.py`` run in a fresh pytest process, one per implementation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import loop_fixtures
import pytest

CASES = Path(__file__).resolve().parent / "signal_cases.py"


@pytest.mark.parametrize("implementation", loop_fixtures.IMPLEMENTATIONS)
def test_signal_cases_in_a_clean_process(implementation: str) -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(CASES),
            "-k",
            "python" if implementation.endswith("_py") else "fastka",
        ],
        cwd=CASES.parents[2],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
    )
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "skipped" not in res.stdout, res.stdout[-2000:]
