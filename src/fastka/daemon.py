"""The fastka parent process (filled in by the VRRP router and daemon issues)."""

from __future__ import annotations

import sys

from fastka.cli import ExitCode, Options


def run(opts: Options) -> int:
    print("fastka: the daemon is not built yet", file=sys.stderr)
    return ExitCode.FATAL
