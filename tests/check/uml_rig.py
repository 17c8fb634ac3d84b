"""Boot user-mode-linux with the host's root filesystem and run one script inside it.

The guest kernel (Debian's ``user-mode-linux``, Linux 6.1) has ip_vs as modules, so the
checker engine can program a real IPVS table and real connections can go through it.
Everything happens inside the guest: its network namespaces, veths and bridges never
touch the host's. The guest sees the host's files (hostfs), so the script can run the
project's venv Python; results come back through files in the work directory.

A minimal rig for the checker tests and ``bench/compare/checks.py``; see ``tests/uml/``
for the project's general one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
MODULES = ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_wlc", "veth", "bridge"]

INIT = """#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmpfs /run
mkdir -p /run/netns /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /dev/shm 2>/dev/null
mkdir -p {work}/modroot/lib/modules
mount --bind /usr/lib/uml/modules {work}/modroot/lib/modules
modprobe -d {work}/modroot -a {modules}
ip link set lo up
cd {work}
sh {work}/guest.sh > {work}/output 2>&1
echo $? > {work}/rc
sync
halt -f
"""


def uml_binary() -> str | None:
    return shutil.which("linux.uml") or shutil.which("linux")


@dataclass
class GuestResult:
    rc: int
    output: str
    work: Path
    seconds: float


def run_in_guest(
    script: str, *, timeout: float = 240.0, mem: str = "1024M", keep: bool = False
) -> GuestResult:
    """Boot UML, run ``script`` (shell) as root in the guest, return its status and output.

    The script runs in a work directory (``$PWD``) shared with the host.
    """
    binary = uml_binary()
    if binary is None:
        raise FileNotFoundError("linux.uml (Debian package user-mode-linux)")
    work = Path(tempfile.mkdtemp(prefix=f"fk-check-uml-{os.getpid()}-", dir="/tmp"))
    (work / "guest.sh").write_text(script)
    init = work / "init.sh"
    init.write_text(INIT.format(work=work, modules=" ".join(MODULES)))
    init.chmod(0o755)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            binary,
            f"mem={mem}",
            "rootfstype=hostfs",
            "rootflags=/",
            "rw",
            f"init={init}",
            "con0=null,fd:1",
            "con=null",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        # UML leaves helper processes in its group; make sure none survive.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    seconds = time.monotonic() - t0
    rc_file = work / "rc"
    rc = int(rc_file.read_text().strip() or "255") if rc_file.exists() else 255
    output = (work / "output").read_text(errors="replace") if (work / "output").exists() else ""
    result = GuestResult(rc, output, work, seconds)
    if not keep:
        subprocess.run(["umount", "-l", str(work / "modroot" / "lib" / "modules")], capture_output=True)
    return result


def cleanup(result: GuestResult) -> None:
    shutil.rmtree(result.work, ignore_errors=True)


# The data-path topology, as shell inside the guest:
#   client (10.0.0.100) --br-c-- director (10.0.0.1, VIPs) --br-r-- rs1..rsN (10.1.0.11..)
TOPOLOGY = """
set -e
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.ipv4.vs.expire_nodest_conn=1 2>/dev/null || true
ip link add br-c type bridge; ip link set br-c up
ip link add br-r type bridge; ip link set br-r up
ip addr add 10.0.0.1/24 dev br-c
ip addr add 10.1.0.1/24 dev br-r
ip addr add 10.0.0.10/32 dev br-c
ip addr add 10.0.0.20/32 dev br-c
sysctl -qw net.ipv4.conf.all.rp_filter=0
sysctl -qw net.ipv4.conf.default.rp_filter=0
sysctl -qw net.ipv4.conf.all.accept_local=1
sysctl -qw net.ipv4.conf.br-r.accept_local=1
mkns() {{  # name bridge address gateway
    ip netns add $1
    ip link add v-$1 type veth peer name eth0 netns $1
    ip link set v-$1 master $2 up
    ip -n $1 link set lo up
    ip -n $1 addr add $3/24 dev eth0
    ip -n $1 link set eth0 up
    ip -n $1 route add default via $4
}}
mkns client br-c 10.0.0.100 10.0.0.1
for i in $(seq 1 {n_rs}); do
    mkns rs$i br-r 10.1.0.$((10 + i)) 10.1.0.1
done
set +e
"""
