"""Real IPVS in user-mode-linux: 3 real servers behind NAT and DR, failures, recovery,
inhibit_on_failure, quorum and the sorry server (one boot for all of it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import require_root, require_tool

from . import topology

HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.uml, pytest.mark.slow, pytest.mark.timeout(300)]

# delay_loop + connect_timeout + retry * delay_before_retry, plus a margin for the guest.
BOUND = 1.0 + 1.0 + 1 * 1.0 + 1.0


@pytest.fixture(scope="module")
def report() -> dict[str, object]:
    require_root()
    require_tool("linux.uml")
    from uml.rig import Guest, host_python

    with Guest(mem="1024M") as guest:
        guest.run(topology.TOPOLOGY.format(n_rs=4), timeout=60, check=True)
        out = guest.workdir / "report.json"
        run = guest.run([host_python(), str(HERE / "guest_datapath.py"), str(out)], timeout=240)
        assert out.exists(), (
            f"guest failed (rc {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
        )
        data: dict[str, object] = json.loads(out.read_text())
    return data


def test_nat_spread_and_failover(report: dict[str, object]) -> None:
    assert report["nat_table"] == {
        "TCP 10.0.0.10:80": {"10.1.0.11:80": 1, "10.1.0.12:80": 1, "10.1.0.13:80": 1}
    }
    assert report["nat_spread"] == {"rs1": 10, "rs2": 10, "rs3": 10}
    assert 0 < report["nat_removed_after"] <= BOUND  # type: ignore[operator]
    assert report["nat_spread_without_rs2"] == {"rs1": 15, "rs3": 15}
    assert 0 < report["nat_back_after"] <= BOUND  # type: ignore[operator]
    assert report["nat_spread_back"] == {"rs1": 10, "rs2": 10, "rs3": 10}


def test_reload_and_inhibit_on_failure(report: dict[str, object]) -> None:
    assert report["reload_unchanged"] is True
    assert 0 < report["inhibit_zero_after"] <= BOUND  # type: ignore[operator]
    assert report["inhibit_table"] == {
        "TCP 10.0.0.10:80": {"10.1.0.11:80": 1, "10.1.0.12:80": 1, "10.1.0.13:80": 0}
    }
    assert report["inhibit_spread"] == {"rs1": 15, "rs2": 15}
    assert 0 < report["inhibit_back_after"] <= BOUND  # type: ignore[operator]


def test_quorum_loss_sorry_server_and_back(report: dict[str, object]) -> None:
    assert 0 < report["sorry_after"] <= BOUND  # type: ignore[operator]
    assert report["sorry_spread"] == {"rs4": 30}
    assert 0 < report["quorum_back_after"] <= BOUND  # type: ignore[operator]
    assert report["quorum_table"] == {
        "TCP 10.0.0.10:80": {"10.1.0.11:80": 1, "10.1.0.12:80": 1, "10.1.0.13:80": 1}
    }
    assert report["quorum_spread"] == {"rs1": 10, "rs2": 10, "rs3": 10}


def test_direct_routing(report: dict[str, object]) -> None:
    assert report["dr_table"]["TCP 10.0.0.20:80"] == {  # type: ignore[index]
        "10.1.0.11:80": 1,
        "10.1.0.12:80": 1,
        "10.1.0.13:80": 1,
    }
    assert report["dr_forward"] == 3
    assert report["dr_spread"] == {"rs1": 10, "rs2": 10, "rs3": 10}
    assert 0 < report["dr_removed_after"] <= BOUND  # type: ignore[operator]
    assert report["dr_spread_without_rs2"] == {"rs1": 15, "rs3": 15}


def test_shutdown_removes_everything(report: dict[str, object]) -> None:
    assert report["after_shutdown"] == {}


def test_fastka_dash_c_programs_the_same_table_as_keepalived(report: dict[str, object]) -> None:
    want = {"TCP 10.0.0.30:80": {"10.1.0.11:80": 3, "10.1.0.12:80": 2, "10.1.0.13:80": 0}}
    assert report["keepalived_table"] == want, report["keepalived_log"]
    assert report["fastka_table"] == want, report["fastka_log"]
    assert report["fastka_ipvsadm"] == report["keepalived_ipvsadm"]
    for name in ("fastka", "keepalived"):
        assert report[f"{name}_after_stop"] == {}, report[f"{name}_log"]
        assert report[f"{name}_rc"] == 0, report[f"{name}_log"]
