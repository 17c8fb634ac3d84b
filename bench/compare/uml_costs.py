"""What the pieces of a health check cost inside user-mode-linux, where ``checks.py``
compares fastka with Keepalived: a system call, a clock read (no vDSO), ``epoll_wait``,
and the TCP connection itself (whose handshake with a target namespace happens inside
``connect``), as CPU time accounted to the calling process.

    sudo .venv/bin/python bench/compare/uml_costs.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from check import topology  # noqa: E402
from uml.rig import Guest, host_python  # noqa: E402


def main() -> int:
    with Guest(mem="1024M") as guest:
        guest.run(topology.TOPOLOGY.format(n_rs=1), timeout=60, check=True)
        run = guest.run([host_python(), str(ROOT / "bench/compare/_uml_costs_guest.py")], timeout=600)
    print(run.stdout, end="")
    print(f"host load average at the end: {os.getloadavg()[0]:.2f}")
    if run.returncode:
        print(run.stderr[-3000:], file=sys.stderr)
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
