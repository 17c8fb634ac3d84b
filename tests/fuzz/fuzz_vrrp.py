"""Differential fuzzing of the VRRP codec with atheris (not collected by pytest).

The compiled codec and the pure-Python reference decode the same input -- one packet as
an IPv4 raw socket returns it, as an IPv6 payload with addresses and hop limit, and a
batch of several -- under an Expect chosen by the input. Any exception other than
``VrrpDecodeError``, or any difference between the two implementations, is a crash.
The reference is instrumented, so coverage of its checks guides the mutations.

    .venv/bin/pip install atheris
    .venv/bin/python tests/fuzz/fuzz_vrrp.py -max_total_time=600 tests/fuzz/corpus-vrrp

The corpus directory is seeded with Keepalived's golden adverts when empty.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports():
    from fastka import _vrrp_py as ref
    from fastka.errors import VrrpDecodeError

from fastka import _vrrp as fast

MCAST6 = socket.inet_pton(socket.AF_INET6, "ff02::12")
GOLDEN = Path(__file__).resolve().parents[3] / "shared" / "vrrp-golden"
KEYS = (b"", b"secret12", b"pw")
ADDRESSES = (None, b"", bytes([10, 99, 0, 100]), bytes(16))


def _expect_kwargs(fdp: Any) -> dict[str, Any] | None:
    if not fdp.ConsumeBool():
        return None
    kw: dict[str, Any] = {
        "version": (0, 2, 3)[fdp.ConsumeIntInRange(0, 2)],
        "auth_type": fdp.ConsumeIntInRange(-1, 2),
        "auth_data": KEYS[fdp.ConsumeIntInRange(0, 2)],
        "adver_int": (0, 1, 5, 100)[fdp.ConsumeIntInRange(0, 3)],
        "unicast": (None, True, False)[fdp.ConsumeIntInRange(0, 2)],
        "v3_checksum_as_v2": fdp.ConsumeBool(),
        "old_unicast_checksum": fdp.ConsumeBool(),
        "strict_addresses": fdp.ConsumeBool(),
    }
    addrs = ADDRESSES[fdp.ConsumeIntInRange(0, 3)]
    if addrs is not None:
        kw["addresses"] = addrs
    return kw


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        a = fn(*args)
    except VrrpDecodeError as exc:
        return "refused", int(exc.reason)
    return "ok", a.as_dict()


def _run(
    mod: Any, kw: dict[str, Any] | None, packets: list[bytes], src: bytes, dst: bytes, ttl: int
) -> list[Any]:
    e = None if kw is None else mod.Expect(**kw)
    out: list[Any] = []
    for p in packets:
        out.append(_outcome(mod.decode_ipv4, p, e))
        out.append(_outcome(mod.decode, p, src, dst, ttl, e))
    out.append(None if e is None else e.ah_last_seq)
    for family in (socket.AF_INET, socket.AF_INET6):
        table = mod.VridTable()
        shared = mod.Expect(**(kw or {}))
        for p in packets:  # where a VRID can be: no header, IPv4 header, IPv4 + AH
            for off in (1, 21, 45, 4 * (p[0] & 0x0F) + 1 if p else 1):
                if off < len(p):
                    table[p[off]] = shared
        batch = mod.Batch(len(packets) * 2, 512, family)
        for i, p in enumerate(packets * 2):  # twice: the second round may take the unchanged shortcut
            batch.set(i, p[:512], src.ljust(16, b"\0"), dst.ljust(16, b"\0"), ttl)
        n = table.validate(batch, len(packets) * 2)
        out.append((n, bytes(batch.status), bytes(batch.priority), bytes(batch.flags), list(batch.adver_int)))
    return out


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    kw = _expect_kwargs(fdp)
    six = fdp.ConsumeBool()
    src = fdp.ConsumeBytes(16 if six else 4)
    dst = MCAST6 if six and fdp.ConsumeBool() else fdp.ConsumeBytes(16 if six else 4)
    if len(src) != len(dst):
        src = dst = b""
    ttl = fdp.ConsumeIntInRange(-1, 255)
    packets = [fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200)) for _ in range(fdp.ConsumeIntInRange(1, 3))]
    packets.append(fdp.ConsumeBytes(fdp.remaining_bytes()))
    got = _run(fast, kw, packets, src, dst, ttl)
    want = _run(ref, kw, packets, src, dst, ttl)
    if got != want:
        raise AssertionError(f"compiled and reference differ:\n{got}\n{want}")


def _seed(corpus: Path) -> None:
    """Golden adverts, framed the way TestOneInput reads them (no Expect, IPv4)."""
    if not GOLDEN.is_dir() or any(corpus.iterdir()):
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pcap import frames, ip_packet

    for i, pcap in enumerate(sorted(GOLDEN.glob("**/*.pcap"))):
        for j, f in enumerate(frames(pcap)):
            pkt = ip_packet(f)
            if pkt and pkt[0] >> 4 == 4 and pkt[9] in (51, 112) and j < 8:
                # ConsumeBool=False (no Expect), False (IPv4), 4+4 address bytes, ttl, count 0 -> one packet
                (corpus / f"golden-{i}-{j}").write_bytes(b"\0\0" + pkt[12:20] + b"\xff\0\0" + pkt)


if __name__ == "__main__":
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    for d in dirs:
        Path(d).mkdir(parents=True, exist_ok=True)
        _seed(Path(d))
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
