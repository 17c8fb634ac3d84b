"""Guest half of bench/compare/ipvs_apply.py (runs inside user-mode-linux via Guest.call).

Each function programs N services x M real servers into an empty IPVS table one way and
returns the seconds it took, checked against /proc/net/ip_vs; the table is flushed after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROC = Path("/proc/net/ip_vs")


def vip(i: int) -> str:
    return f"10.{i // 250}.{i % 250}.1"


def rip(i: int, j: int) -> str:
    k = i * 8 + j
    return f"10.{200 + k // 62500}.{k // 250 % 250}.{k % 250 + 1}"


def entries() -> int:
    """Services + dests in the kernel table (/proc/net/ip_vs minus its 3 header lines)."""
    return max(PROC.read_text().count("\n") - 3, 0)


def flush() -> None:
    subprocess.run(["ipvsadm", "-C"], check=True)


def config(n: int, m: int) -> str:
    """keepalived.conf: n NAT virtual servers (wlc) of m real servers, no checkers."""
    out = ["global_defs {", "    router_id ipvs_apply", "}"]
    for i in range(n):
        out.append(f"virtual_server {vip(i)} 80 {{\n    lb_algo wlc\n    lb_kind NAT\n    protocol TCP")
        for j in range(m):
            out.append(f"    real_server {rip(i, j)} 8080 {{\n        weight 1\n    }}")
        out.append("}")
    return "\n".join(out) + "\n"


def save_file(n: int, m: int) -> str:
    """The same table as ``ipvsadm -R`` input."""
    out = []
    for i in range(n):
        out.append(f"-A -t {vip(i)}:80 -s wlc")
        out.extend(f"-a -t {vip(i)}:80 -r {rip(i, j)}:8080 -m -w 1" for j in range(m))
    return "\n".join(out) + "\n"


def fastka_api(n: int, m: int) -> dict[str, float]:
    """fastka's Python API in this (warm) process: the table model, then ``Ipvs.apply``
    (diff against the empty table + batched netlink). ``apply`` is the programming time."""
    from fastka.ipvs import Dest, Ipvs, Service, Table

    flush()
    t0 = time.perf_counter()
    table = Table()
    for i in range(n):
        table.add(Service(addr=vip(i), port=80, sched_name="wlc"), [Dest(rip(i, j), 8080) for j in range(m)])
    t1 = time.perf_counter()
    with Ipvs() as ipvs:
        t2 = time.perf_counter()
        errors = ipvs.apply(Table(), table)
        t3 = time.perf_counter()
    assert errors == [], errors[:3]
    assert entries() == n * (m + 1), entries()
    flush()
    return {"model": t1 - t0, "open": t2 - t1, "apply": t3 - t2, "total": t3 - t0}


def fastka_raw(n: int, m: int) -> dict[str, float]:
    """The kernel's share: every message built beforehand, then only sendmsg/recv (the
    same framing and chunking as ``Ipvs.execute``)."""
    from array import array

    from fastka.ipvs import Dest, Ipvs, Service, codec
    from fastka.ipvs.msg import IPVS_CMD, OP

    flush()
    svcs = [Service(addr=vip(i), port=80, sched_name="wlc") for i in range(n)]
    dests = [Dest(rip(i, j), 8080) for i in range(n) for j in range(m)]
    ops = bytearray()
    for i in range(n):
        ops += OP.pack(IPVS_CMD.NEW_SERVICE, i, 0)
        for j in range(m):
            ops += OP.pack(IPVS_CMD.NEW_DEST, i, i * m + j)
    svc_recs = b"".join(s.record for s in svcs)
    dest_recs = b"".join(d.record for d in dests)
    nops = n * (m + 1)
    with Ipvs() as ipvs:
        chunks = []
        start = 0
        seq = 1000
        while start < nops:
            buf = bytearray(Ipvs.CHUNK)
            nb, nxt = codec.build_batch(
                buf, ipvs.family, seq, 0, bytes(ops), svc_recs, dest_recs, start, start + ipvs.max_batch
            )
            chunks.append((memoryview(buf)[:nb], nxt))
            start = nxt
        errs = array("i", bytes(4 * nops))
        rbuf = bytearray(65536)
        t0 = time.perf_counter()
        for data, nxt in chunks:
            ipvs.transport.send(data)
            seen = -1
            while seen < nxt - 1:
                got = ipvs.transport.recv_into(rbuf)
                seen = max(seen, codec.parse_acks(rbuf, got, seq, nops, errs)[2])
        t1 = time.perf_counter()
    assert not any(errs)
    assert entries() == nops
    flush()
    return {"apply": t1 - t0}


def pyroute2_api(n: int, m: int) -> dict[str, float]:
    """pyroute2 0.9.7: ``IPVS().service("add")`` / ``.dest("add")`` per entry."""
    from pyroute2 import IPVS, IPVSDest, IPVSService

    flush()
    ipvs = IPVS()
    t0 = time.perf_counter()
    for i in range(n):
        svc = IPVSService(addr=vip(i), port=80, protocol=6, sched_name="wlc")
        ipvs.service("add", service=svc)
        for j in range(m):
            ipvs.dest("add", service=svc, dest=IPVSDest(addr=rip(i, j), port=8080, fwd_method=0, weight=1))
    t1 = time.perf_counter()
    ipvs.close()
    assert entries() == n * (m + 1), entries()
    flush()
    return {"apply": t1 - t0}


def ipvsadm_restore(n: int, m: int, workdir: str) -> dict[str, float]:
    path = Path(workdir) / "ipvs_apply.save"
    path.write_text(save_file(n, m))
    flush()
    with open(path, "rb") as f:
        t0 = time.perf_counter()
        subprocess.run(["ipvsadm", "-R"], stdin=f, check=True)
        t1 = time.perf_counter()
    assert entries() == n * (m + 1), entries()
    flush()
    return {"apply": t1 - t0}


def daemon(
    argv: list[str], n: int, m: int, workdir: str, poll: float = 0.05, timeout: float = 120
) -> dict[str, float]:
    """Start a daemon on the generated config; seconds from the exec until the kernel
    table is complete (polled every ``poll`` s: the guest has one CPU, so polling
    competes with the daemon)."""
    cfg = Path(workdir) / f"ipvs_apply_{n}x{m}.conf"
    if not cfg.exists():
        cfg.write_text(config(n, m))
    flush()
    want = n * (m + 1)
    full = [
        *argv,
        "-n",
        "-l",
        "-D",
        "-C",
        "-f",
        str(cfg),
        "-p",
        f"{workdir}/ia.pid",
        "-c",
        f"{workdir}/ia-c.pid",
    ]
    log = open(Path(workdir) / "ipvs_apply_daemon.log", "wb")  # noqa: SIM115 - the daemon writes to it
    t0 = time.perf_counter()
    proc = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    first = None
    try:
        while True:
            got = entries()
            now = time.perf_counter()
            if got and first is None:
                first = now - t0
            if got >= want:
                break
            if now - t0 > timeout or proc.poll() is not None:
                raise RuntimeError(f"{argv[0]}: {got} of {want} entries after {now - t0:.1f} s")
            time.sleep(poll)
        full_at = time.perf_counter() - t0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    flush()
    return {"apply": full_at, "first": first or full_at}


def python_exe() -> str:
    return sys.executable
