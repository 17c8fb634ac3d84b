"""``fastka lab``: a self-contained demo.

The VRRP router demo (routers failing over in network namespaces) comes with the VRRP
router; until then ``fastka lab`` shows the VRRP codec against Keepalived's own packets.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print("usage: fastka lab\n\n" + (__doc__ or "").strip())
        return 0
    from fastka.vrrp.codec import demo

    print("fastka lab: the VRRP router demo is not built yet; showing the VRRP codec instead.")
    print()
    same = demo()
    print()
    print("fastka lab: codec demo done" + ("" if same else " -- some adverts DIFFER from Keepalived's"))
    return 0 if same else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
