"""The event loop leaks neither memory nor fds over 10^6 timer cycles (subprocess, RSS flat)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fastka._compat import USE_EXTENSIONS

SCRIPT = Path(__file__).with_name("loop_cycles.py")

CASES = [pytest.param("fastka._loop_py", 100_000, id="python")]
if USE_EXTENSIONS:
    CASES.insert(0, pytest.param("fastka._loop", 1_000_000, id="fastka", marks=pytest.mark.compiled))


@pytest.mark.parametrize(("module", "cycles"), CASES)
def test_loop_timer_cycles_do_not_leak(module: str, cycles: int) -> None:
    res = subprocess.run(
        [sys.executable, str(SCRIPT), module, str(cycles)], capture_output=True, text=True, timeout=240
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    rounds = data["rounds"]
    # per round: 750 one-shot timers + >= 1 periodic firing + 1 wait outcome
    assert data["fired"] >= rounds * 752
    warm_rss, warm_fds = data["warm"]
    end_rss, end_fds = data["end"]
    assert end_fds <= warm_fds
    assert end_rss - warm_rss < 4 * 1024 * 1024, (warm_rss, end_rss)
    wheel = data["wheel"]
    if wheel is not None:  # compiled: only the far timer is left, its re-arms compacted away
        assert wheel["armed"] == 1
        assert wheel["entries"] < 64, wheel
        assert wheel["capacity"] < 128 * 1024, wheel
