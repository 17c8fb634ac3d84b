"""VRRP codec benchmarks: encode, decode, checksum, batch validation.

Implementations: ``fastka`` (compiled ``fastka._vrrp``), ``python`` (the reference
``fastka._vrrp_py``), ``scapy`` (``scapy.layers.vrrp``). Packets: ``v2-ipv4-1vip``,
``v2-ipv4-20vips`` (VRRPv2, no auth), ``v3-ipv6-4vips`` (VRRPv3 over IPv6).

What each row measures (calls from Python, positional arguments, as the router will
make them; per-call rows run an inner loop of ``INNER[impl]`` calls per round and report
the time per call -- ``bench/_percall.py``; ``bench/test_harness_floor.py`` measures the
same loop around ``len(b"")``):

* ``vrrp-encode``: the advert from its fields (addresses already packed) into a
  preallocated buffer, checksum included. scapy: ``bytes(VRRP(...))``; for v3/IPv6 scapy
  needs the IPv6 layer to compute the checksum, so it builds that header too.
  ``-template``: a MASTER's steady state -- the advert prepared once
  (``Template(version, vrid, adver_int, addresses, ...)``), each call
  ``template.encode_into(buf, 0, priority)``; scapy: a prepared packet object whose
  priority is set (checksum cleared) and which is serialised again.
* ``vrrp-decode``: validate (length, version, type, checksum -- with the IPv6
  pseudo-header for v3) and return an ``Advert``; addresses are not materialised. scapy:
  dissection only (no validation); for v3/IPv6 it needs the IPv6 header to type the
  addresses, so it dissects that too.
* ``vrrp-checksum``: the checksum of a message (v3: with the IPv6 pseudo-header). scapy:
  ``scapy.utils.checksum`` / ``in6_chksum``.
* ``vrrp-batch-validate``: 64 packets (64 instances, one socket) classified in one call,
  reported per call and per packet (fastka: 100 calls per round; the ``-changed`` rows
  call a small Python function alternating two batches, < 1 ns per packet). IPv4 packets include their IP header (raw socket);
  IPv6 ones come with source, destination and hop limit as ancillary data. The main rows
  are the steady state: each packet is the advert its instance accepted last time (IP ID
  aside) -- fastka's batch path recognises it without re-running the checks; the
  ``-changed`` rows alternate two versions of every advert so that every packet takes
  the full checks. scapy: dissect, then check TTL, version, type, VRID, interval, auth
  type and the checksum in Python.

    .venv/bin/pytest bench/test_vrrp_codec.py bench/test_harness_floor.py --benchmark-only
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import checksum as scapy_checksum

from _percall import INNER, bench_calls, bench_method
from fastka import _vrrp_py
from fastka._compat import USE_EXTENSIONS

IMPLS = (["fastka"] if USE_EXTENSIONS else []) + ["python", "scapy"]
PACKETS = ["v2-ipv4-1vip", "v2-ipv4-20vips", "v3-ipv6-4vips"]
BATCH = 64
BATCH_INNER = {"fastka": 100, "python": 1, "scapy": 1}  # validate() calls per round

SRC4 = bytes([10, 99, 0, 11])
MCAST4 = bytes([224, 0, 0, 18])
SRC6 = socket.inet_pton(socket.AF_INET6, "fe80::99:ff:fe00:11")
MCAST6 = socket.inet_pton(socket.AF_INET6, "ff02::12")


def _module(impl: str) -> Any:
    if impl == "fastka":
        from fastka import _vrrp

        return _vrrp
    return _vrrp_py


class Packet:
    """One of the three adverts, in every form the benchmarks need."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.v3 = name.startswith("v3")
        n = int(name.rsplit("-", 1)[1].removesuffix("vips").removesuffix("vip"))
        if self.v3:
            self.addr_text = [f"fd99::{0x100 + i:x}" for i in range(n)]
            self.addresses = b"".join(socket.inet_pton(socket.AF_INET6, a) for a in self.addr_text)
            self.args: tuple[Any, ...] = (3, 57, 150, 100, self.addresses, 0, b"", SRC6, MCAST6)
        else:
            self.addr_text = [f"10.99.0.{100 + i}" for i in range(n)]
            self.addresses = b"".join(socket.inet_aton(a) for a in self.addr_text)
            self.args = (2, 51, 150, 1, self.addresses)  # v2 needs neither src nor dst
        self.msg = _vrrp_py.encode(*self.args)
        self.zeroed = self.msg[:6] + b"\0\0" + self.msg[8:]
        self.decode_args: tuple[Any, ...] = (self.msg, SRC6, MCAST6, 255) if self.v3 else (self.msg,)
        self.checksum_args: tuple[Any, ...] = (self.msg, SRC6, MCAST6) if self.v3 else (self.msg,)
        self.ip6 = IPv6(src="fe80::99:ff:fe00:11", dst="ff02::12", hlim=255, nh=112)
        # the whole IPv6 packet (scapy needs the header the kernel strips for us)
        self.ipv6_packet = bytes(
            IPv6(src="fe80::99:ff:fe00:11", dst="ff02::12", hlim=255, nh=112, plen=len(self.msg))
        )
        self.ipv6_packet = self.ipv6_packet[:40] + self.msg


PKT = {name: Packet(name) for name in PACKETS}


def _params(variants: list[str] | None = None) -> list[Any]:
    """Every implementation and packet, and each packet with each ``-<variant>`` suffix."""
    cases = PACKETS + [f"{p}-{v}" for v in variants or [] for p in PACKETS]
    return [pytest.param(i, c, id=f"{i}-{c}") for i in IMPLS for c in cases]


# ----------------------------------------------------------------------------- encode


def _scapy_encode(p: Packet) -> Callable[[], bytes]:
    if p.v3:
        return lambda: bytes(
            IPv6(src="fe80::99:ff:fe00:11", dst="ff02::12", hlim=255)
            / VRRPv3(vrid=57, priority=150, adv=100, addrlist=p.addr_text)
        )
    return lambda: bytes(VRRP(vrid=51, priority=150, adv=1, addrlist=p.addr_text))


@pytest.mark.parametrize(("impl", "packet"), _params(["template"]))
def test_vrrp_encode(benchmark: Any, impl: str, packet: str) -> None:
    benchmark.group = "vrrp-encode"
    if packet.endswith("-template"):
        _encode_template(benchmark, impl, PKT[packet.removesuffix("-template")])
        return
    p = PKT[packet]
    if impl == "scapy":
        encode = _scapy_encode(p)
        assert encode()[-len(p.msg) :] == p.msg
        bench_calls(benchmark, encode, n=INNER[impl])
        return
    buf = bytearray(2048)
    encode_into = _module(impl).encode_into
    n = encode_into(buf, 0, *p.args)
    assert bytes(buf[:n]) == p.msg
    bench_calls(benchmark, encode_into, buf, 0, *p.args, n=INNER[impl])


def _encode_template(benchmark: Any, impl: str, p: Packet) -> None:
    """The steady state of a MASTER: the advert prepared once, written with a priority."""
    buf = bytearray(2048)
    if impl == "scapy":  # a prepared packet object, its priority set, serialised
        if p.v3:
            pkt = IPv6(src="fe80::99:ff:fe00:11", dst="ff02::12", hlim=255) / VRRPv3(
                vrid=57, adv=100, addrlist=p.addr_text
            )
            vr = pkt[VRRPv3]
        else:
            pkt = vr = VRRP(vrid=51, adv=1, addrlist=p.addr_text)

        def stamp(priority: int) -> bytes:
            vr.priority = priority
            vr.chksum = None
            return bytes(pkt)

        assert stamp(150)[-len(p.msg) :] == p.msg
        bench_calls(benchmark, stamp, 150, n=INNER[impl])
        return
    version, vrid, _, adver_int, addresses, *rest = p.args
    template = _module(impl).Template(version, vrid, adver_int, addresses, *rest)
    n = template.encode_into(buf, 0, 150)
    assert bytes(buf[:n]) == p.msg
    bench_method(benchmark, template, "encode_into", buf, 0, 150, n=INNER[impl])


# ----------------------------------------------------------------------------- decode


@pytest.mark.parametrize(("impl", "packet"), _params())
def test_vrrp_decode(benchmark: Any, impl: str, packet: str) -> None:
    benchmark.group = "vrrp-decode"
    p = PKT[packet]
    if impl == "scapy":
        if p.v3:
            out = IPv6(p.ipv6_packet)
            assert out[VRRPv3].vrid == 57 and len(out[VRRPv3].addrlist) == len(p.addr_text)
            bench_calls(benchmark, IPv6, p.ipv6_packet, n=INNER[impl])
        else:
            out = VRRP(p.msg)
            assert out.vrid == 51 and len(out.addrlist) == len(p.addr_text)
            bench_calls(benchmark, VRRP, p.msg, n=INNER[impl])
        return
    decode = _module(impl).decode
    a = decode(*p.decode_args)
    assert a.vrid == (57 if p.v3 else 51) and a.count == len(p.addr_text)
    del a
    bench_calls(benchmark, decode, *p.decode_args, n=INNER[impl])


# ----------------------------------------------------------------------------- checksum


@pytest.mark.parametrize(("impl", "packet"), _params())
def test_vrrp_checksum(benchmark: Any, impl: str, packet: str) -> None:
    benchmark.group = "vrrp-checksum"
    p = PKT[packet]
    want = int.from_bytes(p.msg[6:8], "big")
    if impl == "scapy":
        if p.v3:
            assert in6_chksum(112, p.ip6, p.zeroed) == want
            bench_calls(benchmark, in6_chksum, 112, p.ip6, p.zeroed, n=INNER[impl])
        else:
            assert scapy_checksum(p.zeroed) == want
            bench_calls(benchmark, scapy_checksum, p.zeroed, n=INNER[impl])
        return
    vrrp_checksum = _module(impl).vrrp_checksum
    assert vrrp_checksum(*p.checksum_args) == want
    bench_calls(benchmark, vrrp_checksum, *p.checksum_args, n=INNER[impl])


# ----------------------------------------------------------------------------- batch validate


def _raw_packets(mod: Any, p: Packet, priority: int) -> list[tuple[bytes, bytes, bytes, int]]:
    """64 adverts of 64 instances (VRIDs 1..64) as the receive socket delivers them."""
    out = []
    for i in range(BATCH):
        vrid = i + 1
        if p.v3:
            msg = mod.encode(3, vrid, priority, 100, p.addresses, 0, b"", SRC6, MCAST6)
            out.append((msg, SRC6, MCAST6, 255))
        else:
            pkt = mod.encode_ipv4(2, vrid, priority, 1, p.addresses, 0, b"", SRC4, MCAST4, 255, 1000 + i)
            out.append((pkt, b"", b"", -1))
    return out


def _codec_validator(mod: Any, p: Packet, changed: bool) -> tuple[Callable[..., int], tuple[Any, ...]]:
    table = mod.VridTable()
    for vrid in range(1, BATCH + 1):
        table[vrid] = mod.Expect(
            3 if p.v3 else 2, auth_type=-1 if p.v3 else 0, adver_int=100 if p.v3 else 1, unicast=False
        )
    batches = []
    for priority in (150, 151) if changed else (150,):
        batch = mod.Batch(BATCH, 2048, socket.AF_INET6 if p.v3 else socket.AF_INET)
        for i, (data, src, dst, hl) in enumerate(_raw_packets(mod, p, priority)):
            batch.set(i, data, src, dst, hl)
        batches.append(batch)
    validate = table.validate
    if not changed:
        only = batches[0]
        validate(only, BATCH)  # the instances have heard these adverts before: steady state
        return validate, (only, BATCH)
    state = [0]

    def alternate() -> int:
        state[0] ^= 1
        return validate(batches[state[0]], BATCH)

    return alternate, ()


def _scapy_validator(p: Packet) -> tuple[Callable[[], int], tuple[Any, ...]]:
    raw = _raw_packets(_vrrp_py, p, 150)
    vrids = set(range(1, BATCH + 1))
    if p.v3:
        header = p.ipv6_packet[:40]
        frames = [header + msg for msg, *_ in raw]  # scapy needs the header the kernel stripped

        def run() -> int:
            ok = 0
            for data in frames:
                ip = IPv6(data)
                vr = ip[VRRPv3]
                if ip.hlim != 255 or vr.version != 3 or vr.type != 1 or vr.vrid not in vrids:
                    continue
                if in6_chksum(112, ip, bytes(vr)) != 0:
                    continue
                ok += 1
            return ok

        return run, ()
    packets = [pkt for pkt, *_ in raw]

    def run4() -> int:
        ok = 0
        for data in packets:
            ip = IP(data)
            vr = ip[VRRP]
            if ip.ttl != 255 or vr.version != 2 or vr.type != 1 or vr.vrid not in vrids:
                continue
            if vr.adv != 1 or vr.authtype != 0 or scapy_checksum(bytes(vr)) != 0:
                continue
            ok += 1
        return ok

    return run4, ()


@pytest.mark.parametrize(
    ("impl", "packet"),
    _params()
    + [
        pytest.param(i, f"{p}-changed", id=f"{i}-{p}-changed") for i in IMPLS if i != "scapy" for p in PACKETS
    ],
)
def test_vrrp_batch_validate(benchmark: Any, impl: str, packet: str) -> None:
    benchmark.group = "vrrp-batch-validate"
    changed = packet.endswith("-changed")
    p = PKT[packet.removesuffix("-changed")]
    if impl == "scapy":
        run, args = _scapy_validator(p)
    else:
        run, args = _codec_validator(_module(impl), p, changed)
    assert run(*args) == BATCH
    calls = BATCH_INNER[impl]
    benchmark.extra_info["per"] = calls * BATCH
    benchmark.extra_info["unit"] = "packet"
    bench_calls(benchmark, run, *args, n=calls)
