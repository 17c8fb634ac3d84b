"""What a running fastka tells: dump files, the status endpoint, /metrics, `fastka status`,
sd_notify."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fkproc import DEFAULT_CONFIG, Fastka, wait_for
from prometheus_client.parser import text_string_to_metric_families

from fastka.cli import SIGNAL_FUNCTIONS

Make = Callable[..., Fastka]


def test_usr1_dumps_parent_and_children(fastka: Make) -> None:
    fk = fastka().start()
    fk.kill(signal.SIGUSR1)
    parent = fk.tmp / "keepalived_parent.data"
    vrrp = fk.tmp / "keepalived.data"
    check = fk.tmp / "keepalived_check.data"
    wait_for(lambda: parent.exists() and vrrp.exists() and check.exists(), what="three data files")
    assert "------< fastka parent >------" in parent.read_text()
    assert f"Pid = {fk.pid}" in parent.read_text()
    wait_for(lambda: vrrp.read_text().endswith("END\n") and check.read_text().endswith("END\n"), what="dumps")
    assert vrrp.read_text().startswith(f"dummy vrrp data dump pid {fk.child_pid('vrrp')}")
    assert check.read_text().startswith(f"dummy checker data dump pid {fk.child_pid('checker')}")
    assert not [p for p in fk.tmp.iterdir() if p.name.endswith(".tmp")], "no temporary file left"


def test_usr2_json_and_stats_clear_go_to_vrrp_only(fastka: Make) -> None:
    fk = fastka().start()
    time.sleep(1.0)  # let the dummy count some adverts (one per 50 ms)
    fk.kill(signal.SIGUSR2)
    stats = fk.tmp / "keepalived.stats"
    wait_for(stats.exists, what="stats file")
    assert stats.read_text().startswith(f"dummy vrrp stats pid {fk.child_pid('vrrp')}")
    fk.kill(SIGNAL_FUNCTIONS["JSON"])
    js = fk.tmp / "keepalived.json"
    wait_for(js.exists, what="json file")
    assert json.loads(js.read_text())[0]["data"]["iname"] == "VI_1"

    def call_and_adverts() -> tuple[int, int]:
        words = stats.read_text().split()  # "... call N adverts M"
        return int(words[-3]), int(words[-1])

    assert call_and_adverts()[0] == 1 and call_and_adverts()[1] > 0
    fk.kill(SIGNAL_FUNCTIONS["STATS_CLEAR"])  # writes the counters, then zeroes them
    wait_for(lambda: call_and_adverts()[0] == 2, what="second stats")
    before_clear = call_and_adverts()[1]
    assert before_clear >= 10  # 50 ms ticks since the start
    fk.kill(signal.SIGUSR2)
    wait_for(lambda: call_and_adverts()[0] == 3, what="third stats")
    assert call_and_adverts()[1] < before_clear, "the counters were not cleared"
    # the checker child ignores what Keepalived's checker ignores, and stays alive
    checker = fk.child_pid("checker")
    assert checker
    os.kill(checker, signal.SIGUSR2)
    os.kill(checker, SIGNAL_FUNCTIONS["JSON"])
    time.sleep(0.3)
    assert fk.child_pid("checker") == checker and fk.status()["children"]["checker"]["restarts"] == 0


def test_dumps_are_atomic(fastka: Make) -> None:
    """A reader never sees a partial dump, however often it is rewritten."""
    fk = fastka({"vrrp": {"VI_1": {}}}).start(roles=("vrrp",))
    path = fk.tmp / "keepalived.data"
    child = fk.child_pid("vrrp")
    assert child
    os.kill(child, signal.SIGUSR1)
    wait_for(path.exists, what="first dump")
    seen = 0
    stop = time.monotonic() + 2.0
    while time.monotonic() < stop:
        os.kill(child, signal.SIGUSR1)
        for _ in range(20):
            data = path.read_bytes()
            assert data.startswith(b"dummy vrrp data dump") and data.endswith(b"\nEND\n"), len(data)
            seen += 1
    assert seen > 100


def test_status_endpoint_paths(fastka: Make) -> None:
    fk = fastka().start()
    doc = fk.status()
    assert doc["schema"] == 1
    assert doc["daemon"]["pid"] == fk.pid and doc["daemon"]["state"] == "running"
    assert doc["children"]["vrrp"]["pid"] == fk.child_pid("vrrp")
    wait_for(lambda: fk.status()["children"]["vrrp"]["hello_rtt"] is not None, what="a hello answered")
    assert doc["vrrp"]["instances"][0]["name"] == "VI_1"
    assert doc["checker"]["virtual_servers"][0]["name"] == "VS_1"
    # counters are fresh: every request asks the children
    first = doc["vrrp"]["instances"][0]["stats"]["adverts_sent"]
    time.sleep(0.3)
    assert fk.status()["vrrp"]["instances"][0]["stats"]["adverts_sent"] > first
    instances = json.loads(fk.get("/vrrp/instances"))
    assert [i["name"] for i in instances] == ["VI_1"]
    state = json.loads(fk.get("/vrrp/instance/VI_1/state"))
    assert state["instance"] == "VI_1" and state["state"] == "Master"
    assert json.loads(fk.get("/vrrp/instance/VI_1"))["vrid"] == 50
    assert json.loads(fk.get("/checker/virtual_servers"))[0]["quorum_up"] is True
    assert fk.get("/health").strip() == "ok"
    with pytest.raises(OSError, match="404"):
        fk.get("/vrrp/instance/NOPE/state")
    with pytest.raises(OSError, match="404"):
        fk.get("/nothing")


def test_metrics_parse(fastka: Make) -> None:
    fk = fastka().start()
    time.sleep(0.2)  # let the dummy count some adverts
    text = fk.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    state = families["fastka_vrrp_instance_state"].samples
    assert [(s.labels["instance"], s.value) for s in state] == [("VI_1", 2.0)]
    assert families["fastka_vrrp_instance_effective_priority"].samples[0].value == 90
    sent = families["fastka_vrrp_instance_adverts_sent"]
    assert sent.type == "counter" and sent.samples[0].value > 0
    drops = {s.labels["reason"]: s.value for s in families["fastka_vrrp_instance_drops"].samples}
    assert drops == {"ttl": 2.0, "checksum": 1.0}
    up = {s.labels["child"]: s.value for s in families["fastka_child_up"].samples}
    assert up == {"vrrp": 1.0, "checker": 1.0}
    rs = families["fastka_real_server_up"].samples[0]
    assert rs.labels == {"virtual_server": "VS_1", "real_server": "[192.0.2.21]:tcp:80"} and rs.value == 1
    assert families["fastka_virtual_server_quorum_up"].samples[0].value == 1
    assert families["fastka_config_reloads"].samples


def test_fastka_status_command(fastka: Make) -> None:
    fk = fastka().start()
    run = subprocess.run(
        [sys.executable, "-m", "fastka", "status", "--socket", str(fk.socket)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert f"pid {fk.pid}  running" in out
    assert "VRRP instances" in out and "Virtual servers" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("VI_1"))
    assert line.split()[:6] == ["VI_1", "50", "eth0", "MASTER", "100", "90"]
    assert any(ln.split()[:3] == ["vrrp", "running", str(fk.child_pid("vrrp"))] for ln in out.splitlines())
    js = subprocess.run(
        [sys.executable, "-m", "fastka", "status", "--socket", str(fk.socket), "--json"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert json.loads(js.stdout)["schema"] == 1
    bad = subprocess.run(
        [sys.executable, "-m", "fastka", "status", "--socket", str(fk.tmp / "none.sock")],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert bad.returncode == 1 and "cannot read the status" in bad.stderr


def test_status_file_follows_changes(fastka: Make) -> None:
    fk = fastka()
    status_file = fk.tmp / "status.json"
    fk.write_config({**DEFAULT_CONFIG, "global_defs": {"fastka_status_file": str(status_file)}})
    fk.start()
    wait_for(lambda: json.loads(status_file.read_text())["vrrp"] is not None, what="status file")
    fk.write_config(
        {**DEFAULT_CONFIG, "vrrp": {"VI_9": {}}, "global_defs": {"fastka_status_file": str(status_file)}}
    )
    fk.kill(signal.SIGHUP)
    wait_for(
        lambda: [i["name"] for i in json.loads(status_file.read_text())["vrrp"]["instances"]] == ["VI_9"],
        what="status file after reload",
    )
    fk.kill(signal.SIGTERM)
    fk.wait_exit()
    assert json.loads(status_file.read_text())["daemon"]["state"] == "stopped"


def test_status_http_on_loopback(fastka: Make) -> None:
    fk = fastka(args=["--status-http", "127.0.0.1:0"]).start()
    # port 0: the kernel chose; the log says which
    line = wait_for(lambda: next((ln for ln in fk.log().splitlines() if "http://127.0.0.1:" in ln), None))
    port = int(line.rsplit(":", 1)[1])
    from fastka.status import fetch

    assert json.loads(fetch("/status", address=f"127.0.0.1:{port}"))["schema"] == 1


class _NotifySocket:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.path = path
        self.messages: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def test_sd_notify(fastka: Make) -> None:
    fk = fastka()
    notify = _NotifySocket(fk.tmp / "notify.sock")
    try:
        fk.start(NOTIFY_SOCKET=str(notify.path))
        wait_for(lambda: any("READY=1" in m for m in notify.messages), what="READY=1")
        fk.kill(signal.SIGHUP)
        wait_for(lambda: sum("READY=1" in m for m in notify.messages) >= 2, what="READY=1 after reload")
        fk.kill(signal.SIGTERM)
        fk.wait_exit()
        wait_for(lambda: any("STOPPING=1" in m for m in notify.messages), what="STOPPING=1")
    finally:
        notify.close()
    kinds = [
        m.split("\n")[0]
        for m in notify.messages
        if m.split("\n")[0] in ("READY=1", "RELOADING=1", "STOPPING=1")
    ]
    assert kinds == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]
    reloading = next(m for m in notify.messages if m.startswith("RELOADING=1")).split("\n")
    usec = int(next(x for x in reloading if x.startswith("MONOTONIC_USEC="))[15:])
    assert abs(usec - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 60_000_000
    assert all("STATUS=" in m for m in notify.messages if m.startswith("READY=1"))
    first_ready = next(m for m in notify.messages if m.startswith("READY=1"))
    assert "checker (pid" in first_ready and "vrrp (pid" in first_ready, "READY=1 once the children run"
    # only the parent notifies: the children dropped NOTIFY_SOCKET
    assert all("MAINPID" not in m for m in notify.messages)


def test_sd_notify_ready_without_children(fastka: Make) -> None:
    fk = fastka({"global_defs": {}})
    notify = _NotifySocket(fk.tmp / "notify.sock")
    try:
        fk.start(roles=(), NOTIFY_SOCKET=str(notify.path))
        wait_for(lambda: any("READY=1" in m for m in notify.messages), what="READY=1")
    finally:
        notify.close()
    assert any("no VRRP or virtual server configured" in m for m in notify.messages)
