"""Leak probe for the VRRP codec, run in a subprocess by test_vrrp_leaks.py.

usage: python vrrp_cycles.py MODULE CYCLES

Each cycle encodes (into a buffer and to new bytes), decodes (adverts kept and dropped,
addresses materialised), takes the error path, validates a small batch (taking both the
full checks and the unchanged shortcut), verifies AH, and makes and drops an Expect (whose
C side holds malloc'd memory). Prints one JSON line with the RSS after a warm-up and at
the end.
"""

from __future__ import annotations

import gc
import importlib
import json
import socket
import sys

import psutil

from fastka.errors import VrrpDecodeError


def main() -> None:
    mod = importlib.import_module(sys.argv[1])
    cycles = int(sys.argv[2])
    proc = psutil.Process()
    src, mcast = bytes([10, 99, 0, 11]), bytes([224, 0, 0, 18])
    src6 = socket.inet_pton(socket.AF_INET6, "fe80::11")
    mcast6 = socket.inet_pton(socket.AF_INET6, "ff02::12")
    vips = b"".join(bytes([10, 99, 0, i]) for i in range(20))
    vips6 = b"".join(socket.inet_pton(socket.AF_INET6, f"fd99::{i}") for i in range(4))
    buf = bytearray(2048)
    ah_pkt = mod.encode_ipv4(2, 54, 150, 1, vips[:4], 2, b"secret12", src, mcast, 255, 1, 1)
    v2_pkt = mod.encode_ipv4(2, 51, 150, 1, vips, 0, b"", src, mcast)
    bad = bytearray(v2_pkt)
    bad[26] ^= 0xFF
    bad_pkt = bytes(bad)
    v3_msg = mod.encode(3, 57, 150, 100, vips6, 0, b"", src6, mcast6)
    table = mod.VridTable()
    table[51] = mod.Expect(2, auth_type=0, adver_int=1, unicast=False)
    batch = mod.Batch(4)
    batch.set(0, v2_pkt)
    batch.set(1, v2_pkt)
    batch.set(2, bad_pkt)
    kept = []
    fired = 0

    def cycle(i: int) -> int:
        n = 0
        mod.encode_into(buf, 0, 2, 51, 150 - (i & 63), 1, vips)
        msg = mod.encode(2, 51, 100, 1, vips)
        a = mod.decode(msg)
        if i % 64 == 0:
            kept.append(a)
            if len(kept) > 8:
                kept.pop(0)
            n += len(a.addresses) + len(a.as_dict())
        mod.decode(v3_msg, src6, mcast6, 255)
        mod.update_priority(buf, 0, i & 255)
        try:
            mod.decode_ipv4(bad_pkt)
        except VrrpDecodeError:
            n += 1
        batch.set(3, v2_pkt if i & 1 else bad_pkt)
        n += table.validate(batch, 4)
        if i % 16 == 0:
            e = mod.Expect(2, auth_type=2, auth_data=b"secret12", addresses=vips[:4])
            n += mod.decode_ipv4(ah_pkt, e).count
            table[52] = mod.Expect(3, addresses=vips6)
            n += mod.decode(v3_msg, src6, mcast6, 255, mod.Expect(3)).count  # remembers the packet
        return n

    warm = cycles // 10
    for i in range(warm):
        fired += cycle(i)
    gc.collect()
    warm_rss = proc.memory_info().rss
    for i in range(warm, cycles):
        fired += cycle(i)
    gc.collect()
    end_rss = proc.memory_info().rss
    print(json.dumps({"cycles": cycles, "work": fired, "warm": warm_rss, "end": end_rss}))


if __name__ == "__main__":
    main()
