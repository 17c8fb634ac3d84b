"""global_defs features of the process framework, with the real configuration compiler
behind the real parent and the dummy subsystems in the children: startup_script and
shutdown_script, process names, umask (-u), --config-fd and reload_check_config,
reload_file, and the status file's periodic refresh."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fkproc import Fastka, wait_for

from fastka import configcopy
from fastka.config import load

Make = Callable[..., Fastka]

VRRP = """\
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    virtual_ipaddress {
        192.0.2.100/24
    }
}
"""
VS = """\
virtual_server 192.0.2.10 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 192.0.2.21 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
"""


def conf(global_defs: str = "", body: str = VRRP) -> str:
    return f"child_wait_time 2\nglobal_defs {{\n    router_id lb1\n{global_defs}}}\n{body}"


def real(fastka: Make, text: str, args: list[str] | None = None) -> Fastka:
    fk = fastka({}, args=args)
    fk.write_config(text)
    return fk


def start(fk: Fastka, roles: tuple[str, ...] = ("vrrp",), **env: str) -> Fastka:
    return fk.start(roles=roles, FASTKA_TEST_REAL_CONFIG="1", **env)


def umask_of(pid: int | None) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError("no Umask line")


def comm(pid: int | None) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- scripts


def test_startup_script_before_children_shutdown_script_after(fastka: Make, tmp_path: Path) -> None:
    events = tmp_path / "fk0" / "events"  # the dummy subsystem's event log (fkproc)
    up = script(tmp_path / "up.sh", f"sleep 0.3\necho startup script >> {events}\n")
    down = script(tmp_path / "down.sh", f"echo shutdown script >> {events}\n")
    fk = real(fastka, conf(f"    startup_script {up}\n    shutdown_script {down}\n"))
    start(fk)
    fk.kill(signal.SIGTERM)
    assert fk.wait_exit() == 0
    kinds = [" ".join(e[:2]) for e in fk.events()]
    assert kinds == ["startup script", "start vrrp", "stop vrrp", "shutdown script"], kinds
    log = fk.log()
    assert f"Startup script {up} completed" in log and f"Shutdown script {down} completed" in log


def test_startup_script_timeout_and_failure(fastka: Make, tmp_path: Path) -> None:
    slow = script(tmp_path / "slow.sh", "exec sleep 30\n")
    bad = script(tmp_path / "bad.sh", "exit 3\n")
    fk = real(
        fastka, conf(f"    startup_script {slow}\n    startup_script_timeout 1\n    shutdown_script {bad}\n")
    )
    t0 = time.monotonic()
    start(fk)
    assert 1.0 <= time.monotonic() - t0 < 10, "the children waited for the timeout, not for ever"
    assert f"Startup script {slow} timed out after 1 s: killed" in fk.log()
    fk.kill(signal.SIGTERM)
    assert fk.wait_exit() == 0, "a failing shutdown script does not change the exit status"
    assert f"Shutdown script {bad} failed, exited with status 3" in fk.log()


# --------------------------------------------------------------------------- process names, umask


def test_process_names(fastka: Make) -> None:
    fk = real(fastka, conf("    process_names\n    vrrp_process_name fk_vrrp\n", VRRP + VS))
    start(fk, ("vrrp", "checker"))
    # Keepalived's names (what pidof and ps -o comm see), one overridden
    assert comm(fk.pid) == "keepalived"
    assert comm(fk.child_pid("vrrp")) == "fk_vrrp"
    assert comm(fk.child_pid("checker")) == "keepalived_ipvs"


def test_no_process_names_by_default(fastka: Make) -> None:
    fk = real(fastka, conf())
    start(fk)
    assert comm(fk.child_pid("vrrp")) == "fastka: vrrp"  # setproctitle's title


def test_umask_default_config_option_and_reload(fastka: Make) -> None:
    fk = real(fastka, conf())
    start(fk)
    # Keepalived's default: 0177 (dump files 0600), pid files 0644 all the same
    assert umask_of(fk.pid) == umask_of(fk.child_pid("vrrp")) == 0o177
    assert stat.S_IMODE(fk.pid_files["vrrp"].stat().st_mode) == 0o644
    fk.kill(signal.SIGUSR1)
    data = fk.tmp / "keepalived_parent.data"
    wait_for(data.exists, what="parent dump")
    assert stat.S_IMODE(data.stat().st_mode) == 0o600
    # the config's umask, changed by a reload in the parent and the child
    fk.write_config(conf("    umask 027\n"))
    fk.kill(signal.SIGHUP)
    wait_for(lambda: umask_of(fk.child_pid("vrrp")) == 0o027, what="the child's new umask")
    assert umask_of(fk.pid) == 0o027
    fk.stop()


def test_umask_option_wins(fastka: Make) -> None:
    fk = real(fastka, conf("    umask 077\n"), args=["-u", "022"])  # octal, as strtoul(.., 0)
    start(fk)
    assert umask_of(fk.pid) == umask_of(fk.child_pid("vrrp")) == 0o022


# --------------------------------------------------------------------------- --config-fd, reload_check_config


def _config_test(args: list[str], stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastka", "-t", *args], stdin=stdin, capture_output=True, text=True, timeout=60
    )


def test_config_test_reads_the_consolidated_copy(tmp_path: Path) -> None:
    (tmp_path / "more.conf").write_text("vrrp_instance VI_2 {\n    nonsense_keyword 1\n}\n")
    main = tmp_path / "keepalived.conf"
    main.write_text(conf(body=VS) + f"include {tmp_path}/more.conf\n")
    from_file = _config_test(["-f", str(main)])
    cap = configcopy.Capture()
    config, _ = load(str(main), on_read=cap.hook)
    assert cap.data is not None and config.files == [str(main), str(tmp_path / "more.conf")]
    fd = configcopy.to_memfd(cap.data)
    (tmp_path / "more.conf").unlink()  # the copy needs no file any more
    try:
        from_fd = _config_test(["--config-fd=0", "-f", "/nonexistent"], stdin=fd)
    finally:
        os.close(fd)
    assert from_fd.returncode == from_file.returncode == 5
    assert "Unknown keyword 'nonsense_keyword'" in from_file.stderr
    assert from_fd.stderr == from_file.stderr
    with open(os.devnull, "rb") as null:
        junk = _config_test(["--config-fd=0"], stdin=null.fileno())
    assert junk.returncode == 4 and "Cannot read the configuration from file descriptor 0" in junk.stderr


def test_daemon_runs_the_configuration_in_config_fd(fastka: Make) -> None:
    fk = real(fastka, conf())
    cap = configcopy.Capture()
    load(str(fk.conf), on_read=cap.hook)
    assert cap.data is not None
    fd = configcopy.to_memfd(cap.data)
    os.set_inheritable(fd, True)
    fk.conf.unlink()  # -f names nothing: the daemon reads the descriptor
    fk.extra_args += [f"--config-fd={fd}"]
    try:
        out = open(fk.console, "ab")  # noqa: SIM115 - handed to the process
        fk.proc = subprocess.Popen(
            fk.argv(),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=fk.env(FASTKA_TEST_REAL_CONFIG="1"),
            pass_fds=(fd,),
        )
        out.close()
    finally:
        os.close(fd)
    doc = fk.wait_running(("vrrp",))
    assert doc["daemon"]["router_id"] == "lb1"


def _reloads(fk: Fastka) -> dict[str, Any]:
    reloads: dict[str, Any] = fk.status()["daemon"]["reloads"]
    return reloads


def test_reload_check_config(fastka: Make, tmp_path: Path) -> None:
    check_log = tmp_path / "check.log"
    checked = f"    reload_check_config {check_log}\n"
    fk = real(fastka, conf(checked, VS))
    start(fk, ("checker",))
    # An unknown keyword: the parent alone would use the file (a warning); the config test
    # run on the consolidated copy exits 5, so the reload is refused.
    fk.write_config(conf(checked + "    nonsense_keyword\n", VS))
    fk.kill(signal.SIGHUP)
    wait_for(lambda: _reloads(fk)["failed"] == 1, what="refused reload")
    assert "configuration check exited with status 5" in fk.log()
    assert "Unknown keyword 'nonsense_keyword'" in check_log.read_text()
    assert not [e for e in fk.events() if e[0] == "reload"], "the children never saw it"
    # A clean file passes the check and reaches the children.
    fk.write_config(conf(checked, VS.replace("192.0.2.21", "192.0.2.22")))
    fk.kill(signal.SIGHUP)
    wait_for(lambda: _reloads(fk)["ok"] == 1, what="checked reload")
    assert "Configuration check passed" in fk.log()
    assert [e[0] for e in fk.events()].count("reload") == 1


def test_without_reload_check_config_a_warning_does_not_stop_a_reload(fastka: Make) -> None:
    fk = real(fastka, conf(body=VS))
    start(fk, ("checker",))
    fk.write_config(conf("    nonsense_keyword\n", VS))
    fk.kill(signal.SIGHUP)
    wait_for(lambda: _reloads(fk)["ok"] == 1, what="reload")
    assert "Checking the new configuration" not in fk.log()


# --------------------------------------------------------------------------- reload_file


def test_reload_file_exists_while_reloading(fastka: Make, tmp_path: Path) -> None:
    marker = tmp_path / "run" / "keepalived.reload"
    fk = real(fastka, conf(f"    reload_file {marker}\n"))
    start(fk, FASTKA_DUMMY_RELOAD_SLEEP="1")
    assert not marker.exists()
    fk.kill(signal.SIGHUP)
    wait_for(marker.exists, 5, what="the reload file")
    wait_for(lambda: _reloads(fk)["ok"] == 1, what="reload")
    assert not marker.exists(), "removed once the children have reloaded"


# --------------------------------------------------------------------------- status file


def _adverts(path: Path) -> int:
    doc = json.loads(path.read_text())
    if doc["vrrp"] is None:  # written before the child's first snapshot
        return -1
    return int(doc["vrrp"]["instances"][0]["stats"]["adverts_sent"])


def test_status_file_counters_refresh(fastka: Make, tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    config = {
        "vrrp": {"VI_1": {"state": "MASTER"}},
        "global_defs": {
            "child_wait_time": 2,
            "fastka_status_file": str(path),
            "fastka_status_file_interval": 0.3,
        },
    }
    fastka(config).start(roles=("vrrp",))
    wait_for(lambda: _adverts(path) > 0, what="a refreshed status file")
    first = _adverts(path)
    wait_for(lambda: _adverts(path) > first, 5, what="counters moving in the file")


def test_status_file_only_on_changes_with_interval_0(fastka: Make, tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    config = {
        "vrrp": {"VI_1": {"state": "MASTER"}},
        "global_defs": {
            "child_wait_time": 2,
            "fastka_status_file": str(path),
            "fastka_status_file_interval": 0,
        },
    }
    fk = fastka(config).start(roles=("vrrp",))
    wait_for(lambda: _adverts(path) >= 0, what="the status file with the child's snapshot")
    time.sleep(0.3)
    mtime = path.stat().st_mtime_ns
    time.sleep(1.0)
    assert path.stat().st_mtime_ns == mtime, "nothing changed, nothing written"
    in_file = _adverts(path)
    assert fk.status()["vrrp"]["instances"][0]["stats"]["adverts_sent"] > in_file, "the endpoint is current"
