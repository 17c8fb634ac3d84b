"""``fastka status`` (filled in by the daemon issue)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    print("fastka status: not built yet", file=sys.stderr)
    return 1
