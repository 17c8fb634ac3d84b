"""``fastka -T`` (genhash mode; filled in by the checker issue)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    print("fastka -T: genhash is not built yet", file=sys.stderr)
    return 1
