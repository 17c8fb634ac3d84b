"""Inside user-mode-linux: for each shipped sample configuration with virtual servers, the
IPVS table ``fastka -n -l -C -f FILE`` programs at start-up equals the one Keepalived
2.2.7 programs (``ipvsadm -Ln``), and both remove it on SIGTERM. Writes JSON to argv[1].

The table is read once it has settled after start-up and before the first checks (at
least 1 s later, Keepalived's bootstrap delay) can change it: the sample real servers do
not exist.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

SAMPLES = Path(sys.argv[2])
PYTHON = Path(sys.executable)


def proc_table() -> str:
    lines = Path("/proc/net/ip_vs").read_text().splitlines()[3:]
    return "\n".join(lines)


def settle(limit: float = 40.0) -> str:
    """The table once it is non-empty and unchanged for 0.3 s (or what it is at the limit:
    a program starting in a guest on a busy host can take seconds)."""
    t0 = time.monotonic()
    last, since = "", time.monotonic()
    while time.monotonic() - t0 < limit:
        now = proc_table()
        if now != last:
            last, since = now, time.monotonic()
        elif now and time.monotonic() - since >= 0.3:
            break
        time.sleep(0.05)
    return subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True).stdout


def main() -> None:
    out = Path(sys.argv[1])
    work = out.parent
    results = {}
    files = sorted(
        p for p in SAMPLES.rglob("*") if p.is_file() and "virtual_server" in p.read_text(errors="replace")
    )
    for sample in files:
        entry: dict[str, object] = {}
        for name, prog in (("keepalived", "keepalived"), ("fastka", str(PYTHON.parent / "fastka"))):
            run = work / f"{sample.name}-{name}"
            run.mkdir(exist_ok=True)
            args = [prog, "-n", "-l", "-C", "-f", str(sample), "-p", f"{run}/p.pid", "-c", f"{run}/c.pid"]
            with open(run / "log", "w") as log:
                proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=run)
            entry[f"{name}_table"] = settle()
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            t0 = time.monotonic()
            while proc_table() and time.monotonic() - t0 < 3:
                time.sleep(0.05)
            entry[f"{name}_left"] = proc_table()
            entry[f"{name}_log"] = (run / "log").read_text(errors="replace")[-2000:]
            subprocess.run(["ipvsadm", "-C"], capture_output=True)
        results[str(sample.relative_to(SAMPLES))] = entry
        out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
