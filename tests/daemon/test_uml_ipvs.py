"""The daemon with the real checker child on a real IPVS (user-mode-linux): kill -9 of
the child keeps the table and checking resumes; a reload storm never removes an entry
that is in both configurations; SIGTERM empties the table. One guest boot for all
(``guest_ipvs.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import require_root, require_tool

pytestmark = [pytest.mark.uml, pytest.mark.slow, pytest.mark.timeout(300)]

HERE = Path(__file__).resolve().parent
RS1, RS2, RS3 = "10.1.0.11:80", "10.1.0.12:80", "10.1.0.13:80"
KEY = "TCP 10.0.0.10:80"


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    require_root()
    require_tool("linux.uml")
    from check import topology
    from uml.rig import Guest, host_python

    with Guest(mem="1024M") as guest:
        guest.run(topology.TOPOLOGY.format(n_rs=3), timeout=60, check=True)
        out = guest.workdir / "report.json"
        run = guest.run(
            [host_python(), str(HERE / "guest_ipvs.py"), str(out)],
            timeout=240,
            env={"PYTHONDONTWRITEBYTECODE": "1"},
        )
        assert out.exists(), (
            f"guest failed (rc {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
        )
        data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_started(report: dict[str, Any]) -> None:
    assert report["start_s"] >= 0, report["log"]
    assert report["start_table"] == {KEY: {RS1: 1, RS2: 1}}


def test_kill9_checker_child_keeps_ipvs_and_resumes(report: dict[str, Any]) -> None:
    # A fork is slow in user-mode-linux; the 1 s bound is checked on the host
    # (test_processes.py) and measured in bench/.
    assert 0 <= report["respawn_s"] < 5.0, report["log"]
    assert report["new_child"] != report["old_child"]
    kill9 = report["kill9"]
    assert kill9["samples"] > 100
    assert kill9["n_violations"] == 0, kill9["violations"]
    assert report["rs2_removed_after_s"] >= 0, "the new child checks"
    assert report["rs2_back_after_s"] >= 0


def test_reload_storm_keeps_unchanged_entries(report: dict[str, Any]) -> None:
    storm = report["storm"]
    assert storm["samples"] > 500
    assert storm["n_violations"] == 0, storm["violations"]
    assert report["storm_settle_s"] >= 0
    assert report["storm_final_table"] == {KEY: {RS1: 1, RS2: 1, RS3: 1}}
    assert report["storm_child_same"] and report["storm_restarts"] == 1  # the kill -9 above
    reloads = report["storm_reloads"]
    assert reloads["failed"] >= 1, "the broken file was refused"
    assert reloads["ok"] >= 20
    assert report["status_real_servers"] == ["[10.1.0.11]:tcp:80", "[10.1.0.12]:tcp:80", "[10.1.0.13]:tcp:80"]
    assert report["alive"]


def test_term_removes_everything(report: dict[str, Any]) -> None:
    assert report["rc"] == 0, report["log"]
    assert report["after_stop"] == {}
    assert report["pid_files_left"] == []
