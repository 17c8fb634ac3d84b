"""The parent and its children as real processes: start, watchdog, pid files, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from fkproc import Fastka, alive, wait_for

from conftest import require_root, require_tool
from fastka.pidfile import read_pid

Make = Callable[..., Fastka]


def test_start_titles_pid_files_and_stop(fastka: Make) -> None:
    fk = fastka().start()
    parent, vrrp, checker = fk.pid, fk.child_pid("vrrp"), fk.child_pid("checker")
    assert read_pid(str(fk.pid_files["parent"])) == parent
    assert vrrp and checker and len({parent, vrrp, checker}) == 3
    for pid, title in ((vrrp, "fastka: vrrp"), (checker, "fastka: checker")):
        proc = psutil.Process(pid)
        assert proc.ppid() == parent
        assert " ".join(proc.cmdline()).strip() == title
    fk.kill(signal.SIGTERM)
    assert fk.wait_exit() == 0
    assert not any(p.exists() for p in fk.pid_files.values()), "pid files must be removed"
    assert not fk.socket.exists(), "the status socket is removed"
    assert not alive(vrrp) and not alive(checker)
    stops = sorted(e[1] for e in fk.events() if e[0] == "stop")
    assert stops == ["checker", "vrrp"], "each child ran its subsystem's graceful stop"
    assert "Stopped fastka" in fk.log()


def test_kill9_child_is_respawned_within_a_second(fastka: Make) -> None:
    fk = fastka().start()
    old = fk.child_pid("vrrp")
    assert old
    parent = psutil.Process(fk.pid)
    before = {c.pid for c in parent.children()}
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    forked = wait_for(lambda: {c.pid for c in parent.children()} - before, 5, interval=0.005, what="a child")
    assert time.monotonic() - t0 < 1.0, "a dead child is replaced at once"
    new = wait_for(
        lambda: (p := fk.child_pid("vrrp")) != old and p and alive(p) and p, 5, what="new vrrp child"
    )
    assert forked == {new}
    doc = fk.wait_running()
    health = doc["children"]["vrrp"]
    assert health["pid"] == new and health["restarts"] == 1
    assert health["last_exit"]["status"] == "killed by SIGKILL"
    assert "VRRP child process died (killed by SIGKILL): Respawning" in fk.log()
    # The new incarnation was handed the previous one's checkpoint.
    starts = [e for e in fk.events() if e[0] == "start" and e[1] == "vrrp"]
    assert starts[-1][2] == str(new) and starts[-1][3] == "1"
    assert f'"pid": {old}' in starts[-1][4]
    assert doc["vrrp"]["resumed"]["pid"] == old
    assert fk.child_pid("checker") and alive(fk.child_pid("checker")), "the other child is untouched"


def test_stopped_child_is_detected_and_replaced(fastka: Make) -> None:
    fk = fastka().start(FASTKA_TEST_HELLO="0.1,0.8")
    old = fk.child_pid("checker")
    assert old
    os.kill(old, signal.SIGSTOP)
    new = wait_for(
        lambda: (p := fk.child_pid("checker")) != old and p and alive(p) and p, 10, what="new checker"
    )
    assert not alive(old), "the hung child was killed"
    assert new != old
    log = fk.log()
    assert f"Healthcheck child process({old}) not responding for" in log
    assert "killing it" in log and "Respawning" in log
    doc = fk.wait_running()
    assert doc["children"]["checker"]["last_exit"]["reason"].startswith("not responding for")


def test_healthy_child_killed_again_is_respawned_at_once(fastka: Make) -> None:
    # Only a child that dies young (during or right after its start) is restarted with a
    # back-off; one that ran (a kill -9, the OOM killer) is back at once every time.
    fk = fastka().start()
    for _ in range(3):
        old = fk.child_pid("vrrp")
        assert old
        time.sleep(1.2)  # > Tuning.healthy_time
        os.kill(old, signal.SIGKILL)
        wait_for(lambda old=old: (p := fk.child_pid("vrrp")) != old and p and alive(p), 5, what="new child")
        fk.wait_running()
    log = fk.log()
    assert log.count("VRRP child process died (killed by SIGKILL): Respawning\n") == 3, log
    assert "Respawning in" not in log


def test_crash_loop_backs_off(fastka: Make) -> None:
    config = {"vrrp": {"VI_1": {}}, "behaviour": {"vrrp": {"start_raise": True}}}
    fk = fastka(config).start(wait=False)
    wait_for(lambda: "Respawning in" in fk.log(), 10, what="a back-off")
    starts = len([e for e in fk.events() if e[0] == "start"])
    time.sleep(0.5)
    later = len([e for e in fk.events() if e[0] == "start"])
    assert later - starts <= 2, "no tight restart loop"
    assert fk.proc is not None and fk.proc.poll() is None, "exit 70 is not permanent: the parent carries on"


def test_kill9_parent_takes_the_children_down(fastka: Make) -> None:
    fk = fastka(
        {"vrrp": {"VI_1": {}}, "checker": {"VS_1": {}}, "behaviour": {"vrrp": {"stop_delay": 0.2}}}
    ).start()
    children = [fk.child_pid("vrrp"), fk.child_pid("checker")]
    fk.kill(signal.SIGKILL)
    fk.wait_exit()
    wait_for(lambda: not any(alive(p) for p in children), 5, what="children to exit")
    # PR_SET_PDEATHSIG is SIGTERM: the children stop gracefully (a VRRP MASTER sends
    # priority 0 so that the peer takes over at once).
    stops = {e[1] for e in fk.events() if e[0] == "stop"}
    assert stops == {"vrrp", "checker"}


def test_second_instance_refuses_to_start(fastka: Make) -> None:
    fk = fastka().start()
    again = subprocess.run(fk.argv(), env=fk.env(), capture_output=True, text=True, timeout=20)
    assert again.returncode == 0  # Keepalived's exit code for this case
    assert "daemon is already running" in again.stderr
    assert read_pid(str(fk.pid_files["parent"])) == fk.pid, "the running daemon's pid file is untouched"
    assert alive(fk.child_pid("vrrp"))


def test_stale_pid_files_do_not_block(fastka: Make) -> None:
    fk = fastka()
    dead = subprocess.Popen(["true"])
    dead.wait()
    for path in fk.pid_files.values():
        path.write_text(f"{dead.pid}\n")
    fk.start()
    assert read_pid(str(fk.pid_files["parent"])) == fk.pid
    assert "Remove a zombie pid file" in fk.log()


@pytest.mark.parametrize("code,name", [(2, "CONFIG"), (4, "PERMISSION")])
def test_permanent_child_error_terminates(fastka: Make, code: int, name: str) -> None:
    config = {"vrrp": {"VI_1": {}}, "checker": {"VS_1": {}}, "behaviour": {"checker": {"start_exit": code}}}
    fk = fastka(config).start(wait=False)
    assert fk.wait_exit() == code
    assert f"exited with permanent error {name}. Terminating" in fk.log()
    assert not any(p.exists() for p in fk.pid_files.values())


def test_dont_respawn(fastka: Make) -> None:
    fk = fastka(args=["-R"]).start()
    os.kill(fk.child_pid("vrrp") or 0, signal.SIGKILL)
    assert fk.wait_exit() == 0
    assert "killed by SIGKILL (died): Exiting" in fk.log()


def test_only_what_is_asked_and_configured(fastka: Make) -> None:
    fk = fastka(args=["-P"]).start(roles=("vrrp",))
    doc = fk.status()
    assert set(doc["children"]) == {"vrrp"} and doc["checker"] is None
    assert not fk.pid_files["checker"].exists()
    fk2 = fastka({"checker": {"VS_1": {}}}).start(roles=("checker",))
    assert set(fk2.status()["children"]) == {"checker"}


def test_no_child_needed_still_runs(fastka: Make) -> None:
    fk = fastka({"global_defs": {}}).start(roles=())
    doc = fk.status()
    assert doc["children"] == {} and doc["daemon"]["state"] == "running"
    assert "running without children" in fk.log()


def test_stop_waits_for_children_then_kills(fastka: Make) -> None:
    config = {
        "vrrp": {"VI_1": {}},
        "behaviour": {"vrrp": {"stop_never": True}},
        "global_defs": {"child_wait_time": 1},
    }
    fk = fastka(config).start(roles=("vrrp",))
    child = fk.child_pid("vrrp")
    t0 = time.monotonic()
    fk.kill(signal.SIGTERM)
    assert fk.wait_exit() == 0
    assert 0.4 < time.monotonic() - t0 < 5
    assert not alive(child)
    assert not any(p.exists() for p in fk.pid_files.values())


def test_daemonises_without_n(fastka: Make) -> None:
    fk = fastka()
    argv = [a for a in fk.argv(foreground=False)]
    launcher = subprocess.run(argv, env=fk.env(), capture_output=True, timeout=20)
    assert launcher.returncode == 0
    daemon = wait_for(lambda: read_pid(str(fk.pid_files["parent"])), 10, what="daemon pid file")
    try:
        assert daemon != os.getpid()
        proc = psutil.Process(daemon)
        assert proc.ppid() == 1 or proc.ppid() != os.getpid()
        assert os.getsid(daemon) == daemon, "a new session"
        assert proc.cwd() == "/"
        wait_for(lambda: fk.child_pid("vrrp") and fk.child_pid("checker"), 10, what="children")
        os.kill(daemon, signal.SIGTERM)
        wait_for(lambda: not alive(daemon), 10, what="daemon exit")
        assert not fk.pid_files["parent"].exists()
    finally:
        if alive(daemon):
            os.kill(daemon, signal.SIGKILL)


def test_sigint_stops_and_ignore_sigint(fastka: Make) -> None:
    fk = fastka().start()
    fk.kill(signal.SIGINT)
    assert fk.wait_exit() == 0
    fk2 = fastka(args=["--ignore-sigint"]).start()
    fk2.kill(signal.SIGINT)
    time.sleep(0.5)
    assert fk2.proc is not None and fk2.proc.poll() is None
    assert alive(fk2.child_pid("vrrp"))


def test_log_file_per_process(fastka: Make, tmp_path: Path) -> None:
    fk = fastka(args=[f"-g{tmp_path}/k.log"]).start()
    fk.kill(signal.SIGUSR1)
    time.sleep(0.3)
    fk.kill(signal.SIGTERM)
    fk.wait_exit()
    parent = (tmp_path / "k.log").read_text()
    vrrp = (tmp_path / "k_vrrp.log").read_text()
    checker = (tmp_path / "k_healthcheckers.log").read_text()
    assert "Starting fastka" in parent and "Stopped fastka" in parent
    assert "Printing VRRP data" in vrrp and "Printing VRRP data" not in parent
    assert "Printing Healthcheck data" in checker


def test_mem_check_reports(fastka: Make) -> None:
    fk = fastka(args=["--mem-check"]).start()
    fk.kill(signal.SIGUSR1)
    data = fk.tmp / "keepalived.data"
    wait_for(lambda: "mem-check report, vrrp process" in data.read_text(), what="report in the dump")
    assert "not freed since start" in data.read_text()
    parent = fk.tmp / "keepalived_parent.data"
    wait_for(lambda: "mem-check report, parent process" in parent.read_text(), what="parent report")
    children = (fk.child_pid("vrrp"), fk.child_pid("checker"))
    fk.kill(signal.SIGTERM)
    fk.wait_exit()
    names = {p.name for p in fk.tmp.iterdir()}
    assert f"fastka_mem.parent.{fk.pid}.log" in names
    assert {f"fastka_mem.vrrp.{children[0]}.log", f"fastka_mem.checker.{children[1]}.log"} <= names


def test_held_up_parent_blames_no_child(fastka: Make) -> None:
    """A parent stopped longer than the hello timeout does not kill healthy children."""
    fk = fastka().start(FASTKA_TEST_HELLO="0.2,2.0")
    pids = (fk.child_pid("vrrp"), fk.child_pid("checker"))
    fk.kill(signal.SIGSTOP)
    time.sleep(3.0)
    fk.kill(signal.SIGCONT)
    time.sleep(1.0)
    doc = fk.status()
    assert (fk.child_pid("vrrp"), fk.child_pid("checker")) == pids
    assert all(h["restarts"] == 0 for h in doc["children"].values())
    assert "not responding" not in fk.log()


def test_namespace_option(fastka: Make) -> None:
    require_root()
    ip = require_tool("ip")
    name = f"fk-daemon-{os.getpid()}"
    subprocess.run([ip, "netns", "add", name], check=True)
    try:
        fk = fastka(args=["-s", name]).start()
        want = os.stat(f"/run/netns/{name}").st_ino
        for pid in (fk.pid, fk.child_pid("vrrp"), fk.child_pid("checker")):
            assert os.stat(f"/proc/{pid}/ns/net").st_ino == want
        assert fk.status()["daemon"]["net_namespace"] == name
    finally:
        subprocess.run([ip, "netns", "del", name], check=False)
