"""``fastka lab``: a self-contained demo (comes with the VRRP router)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    print("fastka lab: the VRRP router is not built yet; nothing to demonstrate.", file=sys.stderr)
    return 1
