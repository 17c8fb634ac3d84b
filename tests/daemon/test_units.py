"""The daemon's parts on their own: pid files, sd_notify, logging, dump paths, the status
document, the channel and the HTTP endpoint on a real loop."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fastka import log as fastka_log
from fastka import metrics, status, systemd
from fastka.cli import parse_args
from fastka.ipc import Channel, Message
from fastka.loop import Loop
from fastka.pidfile import AlreadyRunning, PidFile, holder, read_pid
from fastka.statusd import StatusServer, parse_http_address

# ---------------------------------------------------------------- pid files


def test_pidfile_lock_and_release(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "k.pid")
    first = PidFile(path)
    first.acquire()
    assert read_pid(path) == os.getpid() and holder(path) == os.getpid()
    # another process (a forked one: flock is per open file) cannot take it
    pid = os.fork()
    if pid == 0:
        try:
            PidFile(path).acquire(pid=os.getpid())
        except AlreadyRunning:
            os._exit(7)
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 7
    assert read_pid(path) == os.getpid(), "the refused start did not touch the file"
    first.release()
    assert not os.path.exists(path) and holder(path) is None


def test_pidfile_stale_and_foreign(tmp_path: Path) -> None:
    path = tmp_path / "k.pid"
    dead = subprocess.Popen(["true"])
    dead.wait()
    path.write_text(f"{dead.pid}\n")
    assert holder(str(path)) is None
    pf = PidFile(str(path))
    pf.acquire()
    assert read_pid(str(path)) == os.getpid()
    pf.release()
    # a live process that is not Keepalived/fastka (pid reused after a crash) is no holder
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        path.write_text(f"{sleeper.pid}\n")
        assert holder(str(path)) is None
        pf.acquire()
        pf.release()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_pidfile_written_by_a_running_keepalived(tmp_path: Path) -> None:
    """A pid file naming a live Keepalived (no lock: an old one) blocks us, as it blocks it."""
    fake = tmp_path / "keepalived"
    fake.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(fake), "30"])
    try:
        end = time.monotonic() + 5
        while b"keepalived" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():  # exec'd yet?
            assert time.monotonic() < end
            time.sleep(0.01)
        path = tmp_path / "k.pid"
        path.write_text(f"{proc.pid}\n")
        assert holder(str(path)) == proc.pid
        with pytest.raises(AlreadyRunning):
            PidFile(str(path)).acquire()
    finally:
        proc.kill()
        proc.wait()


def test_pidfile_never_empty_for_readers(tmp_path: Path) -> None:
    path = tmp_path / "k.pid"
    pf = PidFile(str(path))
    for _ in range(50):
        pf.acquire()
        assert path.read_text() == f"{os.getpid()}\n"
        pf.release(remove=False)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- sd_notify


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    yield sock
    sock.close()


def test_sd_notify_messages(notify_socket: socket.socket) -> None:
    assert systemd.ready("Running: vrrp (pid 1)")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=Running: vrrp (pid 1)"
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert systemd.reloading()
    lines = notify_socket.recv(4096).decode().split("\n")
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
    assert before <= int(lines[1].split("=")[1]) <= before + 5_000_000
    assert systemd.stopping("Stopping\nnow")
    assert notify_socket.recv(4096) == b"STOPPING=1\nSTATUS=Stopping now"


def test_sd_notify_abstract_and_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"fastka-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.watchdog()
        assert sock.recv(64) == b"WATCHDOG=1"
    finally:
        sock.close()
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not systemd.ready()
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/socket")
    assert not systemd.ready(), "an unreachable socket is not fatal"


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert systemd.watchdog_interval() is None
    systemd.forget()
    assert "WATCHDOG_USEC" not in os.environ


# ---------------------------------------------------------------- logging


def test_role_log_files() -> None:
    assert fastka_log.role_log_file("/tmp/keepalived.log", "vrrp") == "/tmp/keepalived_vrrp.log"
    assert fastka_log.role_log_file("/tmp/keepalived.log", "checker") == "/tmp/keepalived_healthcheckers.log"
    assert fastka_log.role_log_file("/tmp/keepalived.log", "parent") == "/tmp/keepalived.log"
    assert fastka_log.role_log_file("/var/log.d/ka", "vrrp") == "/var/log.d/ka_vrrp"
    assert fastka_log.role_log_file("/x/a.b.log", "vrrp") == "/x/a.b_vrrp.log"


def test_levels_and_files(tmp_path: Path) -> None:
    assert fastka_log.parse_level("NOTICE") == fastka_log.NOTICE
    assert fastka_log.parse_level("detail") == fastka_log.DETAIL
    with pytest.raises(ValueError):
        fastka_log.parse_level("loud")
    opts = parse_args(["-G", f"-g{tmp_path}/k.log", "--log-level=notice"])
    try:
        fastka_log.setup_for(opts, "vrrp")
        logger = fastka_log.get_logger("vrrp")
        logger.info("routine")
        fastka_log.notice(logger, "(VI_1) Entering MASTER STATE")
        text = (tmp_path / "k_vrrp.log").read_text()
        assert "(VI_1) Entering MASTER STATE" in text and "routine" not in text
        assert text.split(": ", 1)[0].count(":") == 2, "Keepalived's 'Thu Nov 26 01:01:42 2026: ' prefix"
        # -D lowers to DETAIL, -DD to DEBUG
        fastka_log.setup_for(parse_args(["-G", "-D"]), "parent")
        assert logging.getLogger("fastka").level == fastka_log.DETAIL
        fastka_log.setup_for(parse_args(["-G", "-DD"]), "parent")
        assert logging.getLogger("fastka").level == logging.DEBUG
    finally:
        fastka_log.setup(console=False, syslog=False)


def test_syslog_priorities_and_ident() -> None:
    handler = fastka_log.syslog_handler(("127.0.0.1", 9), fastka_log.FACILITIES["local3"])
    try:
        assert handler.mapPriority("NOTICE") == "notice"
        assert handler.mapPriority("DETAIL") == "info"
        assert handler.mapPriority("WARNING") == "warning"
        assert handler.facility == 19  # LOG_LOCAL3
    finally:
        handler.close()
    assert fastka_log.IDENTS == {
        "parent": "Keepalived",
        "vrrp": "Keepalived_vrrp",
        "checker": "Keepalived_healthcheckers",
    }


# ---------------------------------------------------------------- dumps and the document


def test_dump_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert status.dump_path("data", "vrrp") == f"{tmp_path}/keepalived.data"
    assert status.dump_path("data", "checker") == f"{tmp_path}/keepalived_check.data"
    assert status.dump_path("data", "parent") == f"{tmp_path}/keepalived_parent.data"
    assert status.dump_path("stats", "vrrp") == f"{tmp_path}/keepalived.stats"
    assert status.dump_path("json", "vrrp") == f"{tmp_path}/keepalived.json"
    assert status.dump_path("data", "checker", "/var/run/ka/") == "/var/run/ka/keepalived_check.data"
    assert status.dump_path("data", "parent", "/x/state.txt") == "/x/state_parent.txt"
    monkeypatch.setenv("TMPDIR", "relative/dir")
    assert status.dump_path("data", "vrrp") == "/tmp/keepalived.data"


def test_atomic_write_mode_and_no_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "f"
    old = os.umask(0o022)
    try:
        status.atomic_write(str(path), "one")
        status.atomic_write(str(path), b"two")
    finally:
        os.umask(old)
    assert path.read_text() == "two"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def _doc() -> dict[str, Any]:
    board = status.Board(config_file="/etc/keepalived/keepalived.conf", config_id="lb1")
    board.daemon["state"] = "running"
    h = board.child("vrrp")
    h["state"], h["pid"], h["started"] = "running", 4242, time.time() - 100
    board.sections["vrrp"] = {
        "instances": [
            {
                "name": "VI_1",
                "vrid": 51,
                "family": "inet",
                "version": 3,
                "interface": "eth0",
                "state": "BACKUP",
                "priority": 100,
                "effective_priority": 80,
                "master_address": "10.0.0.2",
                "last_transition": {
                    "time": time.time() - 5,
                    "from": "MASTER",
                    "to": "BACKUP",
                    "reason": "higher priority advert",
                },
                "transitions": 3,
                "stats": {"adverts_sent": 10, "adverts_received": 99, "drops": {"auth": 4}},
            }
        ],
        "sync_groups": [],
        "tracked": [{"type": "file", "name": "tf", "up": False, "status": "value 5", "users": ["VI_1"]}],
    }
    return board.document()


def test_render_table() -> None:
    out = status.render(_doc())
    assert "config /etc/keepalived/keepalived.conf" in out
    row = next(ln for ln in out.splitlines() if ln.strip().startswith("VI_1"))
    assert row.split()[:7] == ["VI_1", "51", "eth0", "BACKUP", "100", "80", "10.0.0.2"]
    assert "MASTER->BACKUP 5s ago (higher priority advert)" in row
    assert "Tracked objects" in out and " NO " in out
    assert "Virtual servers" not in out, "no checker section without a checker child"


def test_metrics_render_parses() -> None:
    text = metrics.render(_doc()).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["fastka_vrrp_instance_state"].samples[0].value == 1
    assert families["fastka_vrrp_instance_drops"].samples[0].labels["reason"] == "auth"
    assert families["fastka_vrrp_tracked_up"].samples[0].value == 0
    assert families["fastka_build_info"].samples[0].labels["version"]


def test_http_address() -> None:
    assert parse_http_address("9100") == ("127.0.0.1", 9100)
    assert parse_http_address("localhost:9100") == ("127.0.0.1", 9100)
    assert parse_http_address("[::1]:9100") == ("::1", 9100)
    with pytest.raises(ValueError):
        parse_http_address("example.com:80")


# ---------------------------------------------------------------- channel and endpoint on a loop


def _run_until(loop: Loop, cond: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        loop.run_once(0.05)


def test_channel_roundtrip_and_big_messages() -> None:
    loop = Loop()
    a, b = socket.socketpair()
    got_a: list[Message] = []
    got_b: list[Message] = []
    closed: list[str] = []
    ca = Channel(loop, a, got_a.append, lambda: closed.append("a"))
    cb = Channel(loop, b, got_b.append, lambda: closed.append("b"))
    try:
        big = {"op": "status", "status": {"blob": "x" * 5_000_000}}
        ca.send({"op": "hello", "seq": 1})
        ca.send(big)
        cb.send({"op": "hello", "seq": 1})
        _run_until(loop, lambda: len(got_b) == 2 and got_a)
        assert got_b[0] == {"op": "hello", "seq": 1} and got_b[1] == big
        assert ca.pending_output == 0
        cb.close()
        _run_until(loop, lambda: "a" in closed)
        assert closed == ["b", "a"] and not ca.send({"op": "x"})
    finally:
        ca.close()
        cb.close()
        loop.close()


def test_status_server_over_unix_socket(tmp_path: Path) -> None:
    loop = Loop()
    calls: list[tuple[str, str]] = []

    def handler(method: str, path: str, respond: Any) -> None:
        calls.append((method, path))
        if path == "/later":
            loop.call_later(0.05, respond, 200, "text/plain", b"late\n")
        elif path == "/boom":
            raise RuntimeError("boom")
        else:
            respond(200, "application/json", b'{"ok": true}\n')

    server = StatusServer(loop, handler)
    path = str(tmp_path / "s.sock")
    server.listen_unix(path)
    results: dict[str, Any] = {}

    def client(name: str, request: bytes) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.sendall(request)
        sock.settimeout(5)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        results[name] = data

    import threading

    threads = [
        threading.Thread(target=client, args=("get", b"GET /status?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")),
        threading.Thread(target=client, args=("late", b"GET /later HTTP/1.0\r\n\r\n")),
        threading.Thread(target=client, args=("head", b"HEAD /status HTTP/1.1\r\nHost: x\r\n\r\n")),
        threading.Thread(
            target=client, args=("post", b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        ),
        threading.Thread(target=client, args=("bad", b"NONSENSE\r\n\r\n")),
        threading.Thread(target=client, args=("boom", b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")),
    ]
    try:
        for t in threads:
            t.start()
        _run_until(loop, lambda: len(results) == len(threads))
    finally:
        for t in threads:
            t.join(5)
        server.close()
        loop.close()
    assert results["get"].startswith(b"HTTP/1.1 200 ") and results["get"].endswith(b'{"ok": true}\n')
    assert b"content-type: application/json" in results["get"].lower()
    assert results["late"].startswith(b"HTTP/1.1 200 ") and results["late"].endswith(b"late\n")
    assert results["head"].startswith(b"HTTP/1.1 200 ") and b"ok" not in results["head"].split(b"\r\n\r\n")[1]
    assert results["post"].startswith(b"HTTP/1.1 405 ")
    assert results["bad"].startswith(b"HTTP/1.1 400 ")
    assert results["boom"].startswith(b"HTTP/1.1 503 ")
    assert ("GET", "/status") in calls and ("GET", "/later") in calls
    assert not os.path.exists(path), "the socket file is removed on close"


def test_metrics_fast_render_is_byte_identical_to_prometheus_client() -> None:
    doc = _doc()
    weird = dict(doc["vrrp"]["instances"][0], name='VI "odd"\\name\nx', interface=None)
    doc["vrrp"]["instances"].append(weird)
    doc["checker"] = {
        "virtual_servers": [
            {
                "name": "FWM 5",
                "quorum_up": False,
                "alive_weight": 0,
                "real_servers": [
                    {
                        "name": "[2001:db8::1]:tcp:80",
                        "up": False,
                        "weight": 0,
                        "checkers": [
                            {"type": "TCP_CHECK", "up": False, "last_check": 1.5e9},
                            {"type": "HTTP_GET", "up": None},
                        ],
                    }
                ],
            }
        ]
    }
    fast = metrics.render(doc)
    assert fast == metrics.render_reference(doc)
    names = {
        s.labels.get("instance") for f in text_string_to_metric_families(fast.decode()) for s in f.samples
    }
    assert 'VI "odd"\\name\nx' in names
