"""The command agent inside a user-mode-linux guest (stdlib only; see ``rig.py``).

Started by the guest's init script as ``python agent.py WORKDIR``. The host writes
requests as pickles ``WORKDIR/req/<n>.pkl`` (atomically, by rename); the agent handles
them in order and answers with ``WORKDIR/resp/<n>.pkl``. Polling a directory on hostfs
is the whole channel: it needs no guest network and survives anything a test does to
the guest's namespaces.

Requests (dicts, ``kind`` selects):

* ``run``: ``cmd`` (argv), ``timeout``, ``input``, ``netns``, ``env`` -> ``returncode``,
  ``stdout``, ``stderr``, ``timed_out``. A timed-out command's process group is killed.
* ``call``: ``payload`` = pickle of ``(function, args, kwargs)``; runs in a forked
  child (so ``setns`` and the like cannot leak) -> ``value`` or ``error`` + ``traceback``.
* ``spawn``: start ``cmd`` in the background in its own session -> ``pid``; output goes
  to ``WORKDIR/spawn-<n>.log``.
* ``kill``: signal ``sig`` to the process group ``pid``.
* ``halt``: leave; init then runs ``halt -f``.

The agent is a child subreaper, so background processes whose parent exited are reaped
here and never pile up as zombies.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import subprocess
import sys
import time
import traceback
from typing import Any

CLONE_NEWNET = 0x40000000
PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


def setns_net(name: str) -> None:
    """Move the calling thread into the network namespace ``/run/netns/NAME``."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _preexec(netns: str | None) -> Any:
    if not netns:
        return None
    return lambda: setns_net(netns)


def _write(path: str, obj: object) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.rename(tmp, path)


def _run(req: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(req.get("env") or {})
    proc = subprocess.Popen(
        req["cmd"],
        stdin=subprocess.PIPE if req.get("input") is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=req.get("cwd"),
        start_new_session=True,
        preexec_fn=_preexec(req.get("netns")),
    )
    try:
        out, err = proc.communicate(req.get("input"), timeout=req.get("timeout"))
        return {"returncode": proc.returncode, "stdout": out, "stderr": err, "timed_out": False}
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {"returncode": proc.returncode, "stdout": out, "stderr": err, "timed_out": True}


def _call(req: dict[str, Any], resp_path: str) -> dict[str, Any] | None:
    try:
        func, args, kwargs = pickle.loads(req["payload"])  # imported here: warm for the next call
    except Exception as exc:
        return {"error": f"cannot load the call: {exc!r}", "traceback": traceback.format_exc()}
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.setsid()
            try:
                out: dict[str, Any] = {"value": func(*args, **kwargs)}
            except BaseException as exc:
                out = {"error": repr(exc), "traceback": traceback.format_exc()}
            try:
                _write(resp_path, out)
            except Exception as exc:  # e.g. an unpicklable result
                _write(resp_path, {"error": f"cannot send the result: {exc!r}", "traceback": ""})
        except BaseException:
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + (req.get("timeout") or 3600)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"error": f"timeout after {req.get('timeout')} s", "traceback": ""}
        time.sleep(0.002)
    if not os.path.exists(resp_path):
        return {"error": f"the call's process died (wait status {status})", "traceback": ""}
    return None


def _spawn(req: dict[str, Any], workdir: str, n: int) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(req.get("env") or {})
    log = open(os.path.join(workdir, f"spawn-{n}.log"), "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        req["cmd"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=req.get("cwd"),
        start_new_session=True,
        preexec_fn=_preexec(req.get("netns")),
    )
    log.close()
    return {"pid": proc.pid, "log": log.name}


def main(workdir: str) -> None:
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    host_path = os.environ.get("FK_HOST_SYS_PATH", "")
    for p in host_path.split(os.pathsep):
        if p and p not in sys.path:
            sys.path.append(p)
    for mod in filter(None, os.environ.get("FK_PRELOAD", "").split(",")):
        try:
            __import__(mod)
        except Exception:
            traceback.print_exc()
    req_dir = os.path.join(workdir, "req")
    resp_dir = os.path.join(workdir, "resp")
    with open(os.path.join(workdir, "ready.tmp"), "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(os.path.join(workdir, "ready.tmp"), os.path.join(workdir, "ready"))
    while True:
        names = sorted((n for n in os.listdir(req_dir) if n.endswith(".pkl")), key=lambda n: int(n[:-4]))
        if not names:
            try:  # reap orphans (we are their subreaper)
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                pass
            time.sleep(0.003)
            continue
        for name in names:
            n = int(name[:-4])
            path = os.path.join(req_dir, name)
            with open(path, "rb") as f:
                req = pickle.load(f)
            os.unlink(path)
            resp_path = os.path.join(resp_dir, name)
            kind = req["kind"]
            try:
                if kind == "run":
                    out: dict[str, Any] | None = _run(req)
                elif kind == "call":
                    out = _call(req, resp_path)
                elif kind == "spawn":
                    out = _spawn(req, workdir, n)
                elif kind == "kill":
                    try:
                        os.killpg(req["pid"], req.get("sig", signal.SIGTERM))
                        out = {"ok": True}
                    except ProcessLookupError:
                        out = {"ok": False}
                elif kind == "halt":
                    _write(resp_path, {"ok": True})
                    return
                else:
                    out = {"error": f"unknown request {kind!r}", "traceback": ""}
            except Exception as exc:
                out = {"error": repr(exc), "traceback": traceback.format_exc()}
            if out is not None:
                _write(resp_path, out)


if __name__ == "__main__":
    main(sys.argv[1])
