"""Run a daemon (Keepalived or fastka) on a config inside the UML guest and capture the
IPVS table it programs, in a canonical text form that two daemons can be compared by.

Guest side: :func:`daemon_table` (through :meth:`uml.rig.Guest.call`). Host side:
:func:`strip_checkers` prepares a sample so that the table is deterministic.

Why strip checkers: the samples' real servers do not exist in the guest, so their health
checks fail after the first ``delay_loop`` and the table would depend on timing. Without
checkers every real server is alive from the start (Keepalived: a real server without a
checker is always up), so the table is exactly the configuration's: services,
schedulers, flags, persistence, forwarding, weights, thresholds, virtual server groups,
sorry servers and quorum.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import struct
import subprocess
import time
from pathlib import Path

CHECKERS = (
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
    "BFD_CHECK",
)
_CHECKER_RE = re.compile(r"^\s*(" + "|".join(CHECKERS) + r")\b")


def strip_checkers(text: str) -> str:
    """The config without its checker blocks (brace matching; ``!``/``#`` comments kept)."""
    out: list[str] = []
    skipping = False
    opened = False  # the checker's "{" has been seen (it may be on the next line)
    depth = 0
    for line in text.splitlines():
        code = re.split(r"[!#]", line, maxsplit=1)[0]
        if not skipping and _CHECKER_RE.match(code):
            skipping, opened, depth = True, False, 0
        if skipping:
            if "{" in code:
                opened = True
            depth += code.count("{") - code.count("}")
            if opened and depth <= 0:
                skipping = False
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def saved_table() -> list[str]:
    """A canonical form of the whole table: ``ipvsadm -Sn`` lines plus the thresholds
    (which ``-S`` does not save) as ``thresholds SERVICE -> DEST UPPER LOWER``, sorted."""
    out = subprocess.run(["ipvsadm", "-Sn"], capture_output=True, text=True, check=True).stdout
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    listing = subprocess.run(
        ["ipvsadm", "-Ln", "--thresholds"], capture_output=True, text=True, check=True
    ).stdout
    service = ""
    for line in listing.splitlines()[3:]:
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "->":
            lines.append(f"thresholds {service} -> {fields[1]} {fields[2]} {fields[3]}")
        else:
            service = " ".join(fields[:2])
    return sorted(lines)


def listed_table() -> str:
    """``ipvsadm -Ln`` (for messages)."""
    return subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True, check=True).stdout


def daemon_table(
    argv: list[str], *, settle: float = 0.4, timeout: float = 20.0, workdir: str = "/tmp"
) -> dict[str, object]:
    """Start ``argv`` (in its own session), wait until ``/proc/net/ip_vs`` is non-empty and
    unchanged for ``settle`` seconds, capture the table, stop the daemon (SIGTERM, then
    SIGKILL) and flush IPVS. Returns ``table`` (sorted ``ipvsadm -Sn`` lines), ``listing``
    (``ipvsadm -Ln``), ``seconds`` (start to stable table), ``output`` and ``left``
    (the table after the daemon's own shutdown)."""
    subprocess.run(["ipvsadm", "-C"], check=True)
    log_path = Path(workdir) / f"daemon-{os.getpid()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    t0 = time.monotonic()
    proc_file = Path("/proc/net/ip_vs")
    last = proc_file.read_text()
    changed = t0
    stable_at = None
    while time.monotonic() - t0 < timeout:
        time.sleep(0.05)
        now = proc_file.read_text()
        if now != last:
            last, changed = now, time.monotonic()
        elif now.count("\n") > 3 and time.monotonic() - changed >= settle:  # header is 3 lines
            stable_at = changed - t0
            break
        if proc.poll() is not None:
            break
    table = saved_table()
    listing = listed_table()
    t_stop = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stop_seconds = time.monotonic() - t_stop
    left = saved_table()
    subprocess.run(["ipvsadm", "-C"], check=True)
    output = log_path.read_text(errors="replace")
    return {
        "table": table,
        "listing": listing,
        "seconds": stable_at,
        "stop_seconds": stop_seconds,
        "output": output[-6000:],
        "left": left,
        "returncode": proc.returncode,
    }


def daemon_requests(argv: list[str], *, workdir: str, settle: float = 0.4) -> dict[str, object]:
    """:func:`daemon_table` under an nlmon capture: also returns ``requests``, every IPVS
    generic-netlink request the daemon sent (raw bytes, in order), and ``family``."""
    from fastka.ipvs.ipvs import Ipvs
    from fastka.ipvs.msg import NLM_F_REQUEST
    from uml import nlmon

    with Ipvs() as ipvs:
        family = ipvs.family
    pcap = f"{workdir}/requests-{os.getpid()}-{time.monotonic_ns()}.pcap"
    pid = nlmon.start(pcap)
    try:
        result = daemon_table(argv, settle=settle, workdir=workdir)
    finally:
        nlmon.stop(pid, pcap)
    requests = []
    for m in nlmon.messages(pcap):
        mtype, flags = struct.unpack_from("=HH", m, 4)
        if mtype == family and flags & NLM_F_REQUEST:
            requests.append(m)
    result["requests"] = requests
    result["family"] = family
    return result
