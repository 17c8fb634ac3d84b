"""A user-mode-linux guest for real-kernel tests (this host's kernel has no ``ip_vs``).

Debian's ``user-mode-linux`` kernel (6.1, ``ip_vs`` and every scheduler as modules) runs
as an ordinary process of the host. The guest uses the host's root filesystem through
hostfs (so the project, its venv, ``ipvsadm`` and ``keepalived`` are all there), gets its
own ``/proc``, ``/sys``, ``/dev``, ``/run`` and ``/tmp``, loads the modules from
``/usr/lib/uml/modules``, and runs a small agent (``agent.py``) that executes what the
host asks through files in a shared work directory.

Example::

    from uml.rig import Guest

    with Guest() as g:                                  # boots in ~4 s
        r = g.run(["ipvsadm", "-Ln"])                   # -> Completed(returncode, stdout, stderr)
        print(r.check().stdout)
        n = g.call(count_services)                      # a module-level function, run in the guest
        pid = g.spawn(["python3", "-m", "http.server"], netns="rs1")
        g.kill(pid)

In pytest use the ``uml_guest`` fixture of ``tests/uml/conftest.py`` (one guest per test
module). ``uml.netlab`` builds client/director/real-server namespaces inside the guest.

What a call can rely on: it runs as root in a forked child of the agent (its own
session; ``setns`` and ``chdir`` do not leak into later calls), with the host's
``sys.path`` (test modules import as on the host), in the guest's initial network
namespace (the *director* of a lab), with ``/tmp`` private to the guest. Results and
exceptions must be picklable; a failed call raises :class:`GuestCallError` with the
guest's traceback. Every wait has a timeout; on a timeout the whole UML process group is
killed (:meth:`Guest.kill_all`) and the error says so. Files the guest writes outside
``/tmp``, ``/run`` and ``/dev`` land on the host: tests write only there (or in the work
directory, :attr:`Guest.workdir`, which is the same path on both sides).

Pitfalls handled here: the interpreter is the venv's (never a pyenv shim, which is slow in
the guest); ``/etc/resolv.conf`` is replaced by one pointing at 127.0.0.1, or name
lookups (``http.server``, ``socket.getfqdn``) stall; ``/proc/sys/kernel/modprobe`` points
at a wrapper so the kernel's own module requests find the UML modules; PID 1 is a shell
that ends with ``halt -f`` and never exits.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

IPVS_MODULES = (
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_lblc",
    "ip_vs_lblcr",
    "ip_vs_dh",
    "ip_vs_sh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_fo",
    "ip_vs_ovf",
    "ip_vs_mh",
    "ip_vs_pe_sip",
)
NET_MODULES = ("veth", "bridge", "ipip", "nlmon")
DEFAULT_MODULES = IPVS_MODULES + NET_MODULES
UML_MODULES = Path("/usr/lib/uml/modules")

_counter = itertools.count()


class UmlError(RuntimeError):
    """The guest did not boot, died, or did not answer in time."""


class GuestCallError(RuntimeError):
    """A function called in the guest raised; ``remote_traceback`` is the guest's."""

    def __init__(self, message: str, remote_traceback: str) -> None:
        super().__init__(f"{message}\n--- guest traceback ---\n{remote_traceback}")
        self.remote_traceback = remote_traceback


@dataclass
class Completed:
    """Result of :meth:`Guest.run`."""

    cmd: Sequence[str]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    def check(self) -> Completed:
        if self.returncode != 0 or self.timed_out:
            raise subprocess.CalledProcessError(self.returncode, list(self.cmd), self.stdout, self.stderr)
        return self


def find_uml() -> str | None:
    return shutil.which("linux.uml") or shutil.which("linux", path="/usr/bin")


def host_python() -> str:
    """The interpreter to use in the guest: the venv's, never a pyenv shim."""
    exe = sys.executable
    if "/shims/" in exe:  # pragma: no cover - pytest run through a shim
        exe = subprocess.run(
            [exe, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, check=True
        ).stdout.strip()
    return exe


def _keep_visible() -> dict[str, str]:
    """Shell lines that keep host paths under /tmp visible in the guest.

    The guest gets a private /tmp; when the project or its virtual environment lives
    under the host's /tmp (a CI clone, say), it is bind-mounted back over the tmpfs.
    """
    paths = {Path(__file__).resolve().parents[2], Path(sys.prefix).resolve()}
    under_tmp = sorted(str(p) for p in paths if p == Path("/tmp") or Path("/tmp") in p.parents)
    before = "".join(
        f'mkdir -p /run/keep{i} && mount --bind "{p}" /run/keep{i}\n' for i, p in enumerate(under_tmp)
    )
    after = "".join(f'mkdir -p "{p}" && mount --bind /run/keep{i} "{p}"\n' for i, p in enumerate(under_tmp))
    return {"keep_before": before, "keep_after": after}


_INIT = """#!/bin/sh
# PID 1 of the fastka UML guest (generated by tests/uml/rig.py). Never exits: halt -f.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
W={workdir}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=755 run /run
mkdir -p /run/fk /run/modroot/lib /run/netns /run/lock
mount --bind "$W" /run/fk
ln -s {modules} /run/modroot/lib/modules
{keep_before}mount -t tmpfs -o mode=1777 tmp /tmp
mkdir -p "$W" && mount --bind /run/fk "$W"
{keep_after}printf '#!/bin/sh\\nexec /sbin/modprobe -d /run/modroot "$@"\\n' > /run/fk-modprobe
chmod +x /run/fk-modprobe
echo /run/fk-modprobe > /proc/sys/kernel/modprobe
mount --bind "$W/resolv.conf" /etc/resolv.conf
hostname fastka-uml
ip link set lo up
modprobe -d /run/modroot -a {module_list} > "$W/modprobe.log" 2>&1
echo $? > "$W/modprobe.rc"
FK_HOST_SYS_PATH='{sys_path}' FK_PRELOAD='{preload}' {python} "$W/agent.py" "$W" > "$W/agent.log" 2>&1
echo $? > "$W/agent.rc"
halt -f
"""


class Guest:
    """One user-mode-linux guest with an agent (see the module docstring).

    ``mem``: guest RAM; ``modules``: loaded at boot; ``preload``: Python modules the agent
    imports once so that calls start warm (e.g. ``["fastka.ipvs.ipvs"]``); ``boot_timeout``.
    """

    def __init__(
        self,
        *,
        mem: str = "1024M",
        modules: Sequence[str] = DEFAULT_MODULES,
        preload: Sequence[str] = (),
        boot_timeout: float = 60.0,
        keep_workdir: bool = False,
    ) -> None:
        self.mem = mem
        self.modules = tuple(modules)
        self.preload = tuple(preload)
        self.boot_timeout = boot_timeout
        self.keep_workdir = keep_workdir
        self.workdir = Path(tempfile.mkdtemp(prefix=f"fk-uml-{os.getpid()}-{next(_counter)}-", dir="/tmp"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._n = itertools.count()
        self.boot_seconds = 0.0

    # -- lifetime
    def start(self) -> Guest:
        uml = find_uml()
        if uml is None:
            raise UmlError("linux.uml not found (Debian package user-mode-linux)")
        w = self.workdir
        (w / "req").mkdir()
        (w / "resp").mkdir()
        (w / "uml").mkdir()
        shutil.copy(HERE / "agent.py", w / "agent.py")
        (w / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        init = w / "init.sh"
        init.write_text(
            _INIT.format(
                workdir=w,
                modules=UML_MODULES,
                module_list=" ".join(self.modules),
                sys_path=os.pathsep.join(p for p in sys.path if p and "'" not in p),
                preload=",".join(self.preload),
                python=host_python(),
                **_keep_visible(),
            )
        )
        init.chmod(0o755)
        cmd = [
            uml,
            f"mem={self.mem}",
            "rootfstype=hostfs",
            "rootflags=/",
            "rw",
            f"init={init}",
            "con0=null,fd:1",
            "con=null",
            "ssl=null",
            f"uml_dir={w / 'uml'}",
            f"umid=fk{os.getpid()}x{w.name[-8:]}",
        ]
        t0 = time.monotonic()
        with open(w / "console.log", "wb") as console:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_file(w / "ready", self.boot_timeout, "boot")
        except BaseException:
            self.close()
            raise
        self.boot_seconds = time.monotonic() - t0
        rc = (w / "modprobe.rc").read_text().strip() if (w / "modprobe.rc").exists() else "?"
        if rc != "0":
            log = (w / "modprobe.log").read_text() if (w / "modprobe.log").exists() else ""
            self.close()
            raise UmlError(f"modprobe in the guest failed ({rc}): {log}")
        return self

    def close(self) -> None:
        """Halt the guest (politely, then SIGKILL to the whole UML process group) and
        remove the work directory."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(UmlError, OSError):
                self._request({"kind": "halt"}, timeout=5.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.kill_all()
        self.proc = None
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kill_all(self) -> None:
        """SIGKILL the UML kernel and every guest process (one host process group)."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def __enter__(self) -> Guest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def console(self, tail: int = 4000) -> str:
        """The end of the guest's console (kernel messages, init's output)."""
        try:
            return (self.workdir / "console.log").read_bytes()[-tail:].decode(errors="replace")
        except OSError:
            return ""

    # -- channel
    def _wait_file(self, path: Path, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while not path.exists():
            if self.proc is None or self.proc.poll() is not None:
                raise UmlError(f"the guest died during {what}:\n{self.console()}")
            if time.monotonic() > deadline:
                self.kill_all()
                raise UmlError(f"the guest did not finish {what} in {timeout} s (killed):\n{self.console()}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.01)

    def _request(
        self, req: dict[str, Any], timeout: float, *, kill_on_timeout: bool = True
    ) -> dict[str, Any]:
        if not self.alive:
            raise UmlError("the guest is not running")
        n = next(self._n)
        tmp = self.workdir / "req" / f"{n}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump(req, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.rename(self.workdir / "req" / f"{n}.pkl")
        resp = self.workdir / "resp" / f"{n}.pkl"
        self._wait_file(resp, timeout, f"request {req['kind']}")
        with open(resp, "rb") as f:
            out: dict[str, Any] = pickle.load(f)
        resp.unlink()
        return out

    # -- API
    def run(
        self,
        cmd: Sequence[str] | str,
        *,
        timeout: float = 60.0,
        input: str | None = None,
        netns: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = False,
    ) -> Completed:
        """Run a command in the guest (a string goes through ``sh -c``); ``netns``: the
        name of a namespace in ``/run/netns`` to run it in."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        out = self._request(
            {
                "kind": "run",
                "cmd": argv,
                "timeout": timeout,
                "input": input.encode() if input is not None else None,
                "netns": netns,
                "env": env,
            },
            timeout + 15,
        )
        if "error" in out:
            raise GuestCallError(out["error"], out.get("traceback", ""))
        res = Completed(
            argv,
            out["returncode"],
            out["stdout"].decode(errors="replace"),
            out["stderr"].decode(errors="replace"),
            out["timed_out"],
        )
        return res.check() if check else res

    def call(self, func: Callable[..., Any], *args: Any, timeout: float = 60.0, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` in the guest and return its result. ``func`` must be
        importable by name (a module-level function)."""
        payload = pickle.dumps((func, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        out = self._request({"kind": "call", "payload": payload, "timeout": timeout}, timeout + 15)
        if "error" in out:
            raise GuestCallError(
                f"{getattr(func, '__qualname__', func)}: {out['error']}", out.get("traceback", "")
            )
        return out["value"]

    def spawn(
        self, cmd: Sequence[str], *, netns: str | None = None, env: dict[str, str] | None = None
    ) -> int:
        """Start a background process in the guest (own session); returns its guest pid.
        Its output is in :meth:`spawn_log`."""
        out = self._request({"kind": "spawn", "cmd": list(cmd), "netns": netns, "env": env}, 30)
        if "error" in out:
            raise GuestCallError(out["error"], out.get("traceback", ""))
        self._logs = getattr(self, "_logs", {})
        self._logs[out["pid"]] = out["log"]
        return int(out["pid"])

    def spawn_log(self, pid: int) -> str:
        try:
            return Path(self._logs[pid]).read_text(errors="replace")
        except (AttributeError, KeyError, OSError):
            return ""

    def kill(self, pid: int, sig: int = signal.SIGTERM) -> bool:
        """Signal the process group of a spawned process; False if it is gone."""
        return bool(self._request({"kind": "kill", "pid": pid, "sig": sig}, 30)["ok"])
