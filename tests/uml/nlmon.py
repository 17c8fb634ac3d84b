"""Capture netlink traffic inside the UML guest with an ``nlmon`` device (guest side).

    pid = nlmon.start("/tmp/x.pcap")        # in a Guest.call
    ...                                     # whatever talks netlink
    nlmon.stop(pid, "/tmp/x.pcap")
    reqs = nlmon.ipvs_requests("/tmp/x.pcap", Ipvs().family)   # [(cmd name, service key, dest key), ...]

This is how a test sees exactly which IPVS commands reached the kernel (Keepalived's,
ipvsadm's or fastka's), as the golden vectors in ``shared/ipvs-golden`` were made.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import time
from pathlib import Path

from fastka.ipvs import codec
from fastka.ipvs.ipvs import Dest, Service
from fastka.ipvs.msg import DEST_COMMANDS, IPVS_CMD, NLM_F_REQUEST, SERVICE_COMMANDS


def start(path: str, iface: str = "nlmon0") -> int:
    """Create ``iface`` (type nlmon) and start tcpdump on it; returns tcpdump's pid."""
    if not Path(f"/sys/class/net/{iface}").exists():
        subprocess.run(["ip", "link", "add", iface, "type", "nlmon"], check=True)
        subprocess.run(["ip", "link", "set", iface, "up"], check=True)
    err = Path(path + ".err")
    with open(err, "wb") as f:
        proc = subprocess.Popen(
            ["tcpdump", "-i", iface, "--immediate-mode", "-B", "16384", "-U", "-w", path],
            stdout=subprocess.DEVNULL,
            stderr=f,
            start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while b"listening" not in err.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"tcpdump did not start: {err.read_text(errors='replace')}")
        time.sleep(0.02)
    return proc.pid


def stop(pid: int, path: str | None = None) -> None:
    """Stop the capture (after letting tcpdump write what is queued, if ``path`` is given)."""
    if path is not None:
        size, t0 = -1, time.monotonic()
        while time.monotonic() - t0 < 2:
            now = Path(path).stat().st_size
            if now == size:
                break
            size = now
            time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGINT)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def messages(path: str, protocol: int = 16) -> list[bytes]:
    """The netlink messages of ``protocol`` (16: NETLINK_GENERIC) in a LINKTYPE_NETLINK
    capture (cooked headers stripped)."""
    data = Path(path).read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    end = "<" if magic == 0xA1B2C3D4 else ">"
    off = 24
    out = []
    while off + 16 <= len(data):
        _s, _us, incl, _orig = struct.unpack_from(end + "IIII", data, off)
        rec = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        # cooked header: pkttype, ARPHRD_NETLINK, address length, address (8), protocol
        if len(rec) < 16 or struct.unpack_from(">H", rec, 14)[0] != protocol:
            continue
        body = rec[16:]
        pos = 0
        while pos + 16 <= len(body):
            mlen = struct.unpack_from("=I", body, pos)[0]
            if mlen < 16:
                break
            out.append(body[pos : pos + mlen])
            pos += (mlen + 3) & ~3
    return out


def ipvs_requests(path: str, family: int) -> list[tuple[str, object, object]]:
    """The IPVS service/dest commands sent to the kernel (``family``: the IPVS generic
    netlink family id, ``Ipvs().family``): (command name, service key, dest key or None),
    in order."""
    out: list[tuple[str, object, object]] = []
    for m in messages(path):
        mtype, flags = struct.unpack_from("=HH", m, 4)
        if len(m) < 20 or not flags & NLM_F_REQUEST or mtype != family:
            continue
        cmd = m[16]
        if cmd not in SERVICE_COMMANDS | DEST_COMMANDS:
            continue
        svc = Service.from_record(codec.parse_service(m)[0])
        dest = Dest.from_record(codec.parse_dest(m)[0], svc.af) if cmd in DEST_COMMANDS else None
        out.append((IPVS_CMD(cmd).name, svc.key, dest.key if dest is not None else None))
    return out
