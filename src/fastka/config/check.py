"""``fastka -t``: configuration test (filled in by the configuration compiler)."""

from __future__ import annotations

import sys

from fastka.cli import ExitCode, Options


def run_config_test(opts: Options) -> int:
    print("fastka -t: the configuration compiler is not built yet", file=sys.stderr)
    return ExitCode.FATAL
