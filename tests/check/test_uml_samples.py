"""Keepalived's sample configurations in user-mode-linux: ``fastka -C`` programs the same
IPVS table as Keepalived 2.2.7 (``ipvsadm -Ln``) and removes it on SIGTERM."""

from __future__ import annotations

import json

import pytest

from conftest import require_root, require_tool

from . import uml_rig

pytestmark = [pytest.mark.uml, pytest.mark.slow, pytest.mark.timeout(400)]

SAMPLES = uml_rig.ROOT.parent / "shared" / "keepalived-samples"


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, str]]:
    require_root()
    require_tool("linux.uml")
    require_tool("keepalived")
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} not found")
    script = f"{uml_rig.PYTHON} {uml_rig.ROOT}/tests/check/guest_samples.py $PWD/samples.json {SAMPLES}\n"
    result = uml_rig.run_in_guest(script, timeout=360)
    try:
        path = result.work / "samples.json"
        assert path.exists(), f"guest failed (rc {result.rc}):\n{result.output[-4000:]}"
        data: dict[str, dict[str, str]] = json.loads(path.read_text())
    finally:
        uml_rig.cleanup(result)
    return data


SAMPLE_NAMES = sorted(
    str(p.relative_to(SAMPLES))
    for p in (SAMPLES.rglob("*") if SAMPLES.is_dir() else [])
    if p.is_file() and "virtual_server" in p.read_text(errors="replace")
)


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_same_table_as_keepalived(results: dict[str, dict[str, str]], sample: str) -> None:
    r = results[sample]
    assert r["keepalived_table"].count("\n") > 2, r["keepalived_log"]
    assert r["fastka_table"] == r["keepalived_table"], r["fastka_log"]
    assert r["fastka_left"] == "", r["fastka_log"]
