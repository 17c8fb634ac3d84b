"""``fastka lab`` runs its demo end to end and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys

import pytest
from rig import require_netns

pytestmark = [pytest.mark.root, pytest.mark.netns]


def _lab_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("fklab")]


def test_lab_demo_runs_and_cleans_up() -> None:
    require_netns()
    before = set(_lab_namespaces())
    res = subprocess.run(
        [sys.executable, "-m", "fastka", "lab", "--routers", "2"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    for phase in ("host failure", "preemption back", "clean stop"):
        assert phase in out
    assert "now on r2" in out and "now on r1" in out
    assert set(_lab_namespaces()) == before
