"""The engine's sending side (compiled and reference) on a real segment: periodic adverts
for many instances at once (batched with sendmmsg in the compiled engine), IPv4 IDs
counting up, a priority change, a one-off priority-0 advert, IPv6 with the source
address given per packet."""

from __future__ import annotations

import socket
import time
from collections import Counter
from typing import Any

import pytest
from rig import Lan

from conftest import implementations, load
from fastka.vrrp.codec import AF_INET, AF_INET6, encode
from fastka.vrrp.sockets import SendSocket4, SendSocket6

pytestmark = [pytest.mark.root, pytest.mark.netns]

PARAMS = implementations("fastka._vrrp_engine", "fastka._vrrp_engine_py")
LOOPS = {"fastka._vrrp_engine": "fastka._loop", "fastka._vrrp_engine_py": "fastka._loop_py"}


class Quiet:
    def __init__(self) -> None:
        self.errors: list[Any] = []

    def engine_advert(self, *a: Any) -> None: ...
    def engine_down_timer(self, *a: Any) -> None: ...
    def engine_drop(self, *a: Any) -> None: ...
    def engine_send_error(self, *a: Any) -> None:
        self.errors.append(a)


def _run(loop: Any, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        loop.run_once(0.01)


@pytest.mark.parametrize("impl", PARAMS)
def test_periodic_adverts_many_instances(lan: Lan, impl: str) -> None:
    mod, loop_mod = load(impl), load(LOOPS[impl])
    loop = loop_mod.Loop()
    handler = Quiet()
    engine = mod.Engine(loop, handler)
    sock4 = lan.rig.own(lan.r1.call(SendSocket4, "eth0"))
    src = socket.inet_aton("10.99.0.11")
    group = socket.inet_aton("224.0.0.18")
    vip = socket.inet_aton("10.99.0.100")
    sids = {}
    for vrid in range(1, 41):
        sid = engine.add_slot(vrid)
        engine.set_advert(sid, sock4.sock, family=AF_INET, version=3, priority=100 + vrid, adver_int=5,
                          addresses=vip, src=src, dsts=[group], multicast=True, interval=0.05)  # fmt: skip
        sids[vrid] = sid
    cap = lan.rig.capture(lan.lan)
    try:
        for sid in sids.values():
            engine.start_adverts(sid)
        _run(loop, 0.5)
        engine.set_priority(sids[7], 200)
        engine.send_now(sids[8], 0)
        _run(loop, 0.2)
        for sid in sids.values():
            engine.stop_adverts(sid)
        _run(loop, 0.1)
        frames = [f for f in cap.stop() if f.is_vrrp]
    finally:
        loop.close()
    assert handler.errors == []
    per_vrid = Counter(f.data[35] for f in frames)
    for vrid in range(1, 41):
        assert 11 <= per_vrid[vrid] <= 16, per_vrid  # 0.7 s at 50 ms (+ the one-off)
        assert engine.stats(sids[vrid]).adverts_sent == per_vrid[vrid]
    for f in frames:
        msg = f.data[34:46]
        vrid, prio = msg[1], msg[2]
        assert msg == encode(3, vrid, prio, 5, vip, 0, b"", src, group)
    prios7 = [f.data[36] for f in frames if f.data[35] == 7]
    assert prios7[0] == 107 and prios7[-1] == 200
    prios8 = [f.data[36] for f in frames if f.data[35] == 8]
    assert prios8.count(0) == 1 and prios8[-1] == 108  # the stored packet keeps its priority
    ids3 = [int.from_bytes(f.data[18:20], "big") for f in frames if f.data[35] == 3]
    assert ids3 == list(range(1, len(ids3) + 1))


@pytest.mark.parametrize("impl", PARAMS)
def test_ipv6_adverts(lan: Lan, impl: str) -> None:
    mod, loop_mod = load(impl), load(LOOPS[impl])
    loop = loop_mod.Loop()
    handler = Quiet()
    engine = mod.Engine(loop, handler)
    ll = lan.r1.link_local("eth0").packed
    ifindex = lan.r1.ifindex("eth0")
    sock6 = lan.rig.own(lan.r1.call(SendSocket6, "eth0", ifindex))
    group = socket.inet_pton(socket.AF_INET6, "ff02::12")
    vip = socket.inet_pton(socket.AF_INET6, "fd99::100")
    sid = engine.add_slot(57)
    engine.set_advert(sid, sock6.sock, family=AF_INET6, version=3, priority=150, adver_int=100, addresses=vip,
                      src=ll, dsts=[group], multicast=True, ifindex=ifindex, interval=1.0)  # fmt: skip
    cap = lan.rig.capture(lan.lan)
    try:
        engine.send_now(sid)
        frames = cap.wait(lambda f: f.is_vrrp, timeout=3)
    finally:
        loop.close()
    f = frames[0]
    assert f.data[22:38] == ll and f.data[38:54] == group and f.data[21] == 255  # src, dst, hop limit
    assert f.data[54:] == encode(3, 57, 150, 100, vip, 0, b"", ll, group)


@pytest.mark.parametrize("impl", PARAMS)
def test_link_layer_frames(lan: Lan, impl: str) -> None:
    """Multicast adverts as whole frames on a packet socket: IPv4 (header checksum, ID)
    and IPv6 (header, VRRP checksum with the pseudo-header) built by the engine."""
    from fastka.vrrp.codec import encode_ipv4, inet_checksum

    mod, loop_mod = load(impl), load(LOOPS[impl])
    loop = loop_mod.Loop()
    engine = mod.Engine(loop, Quiet())

    def packet_socket() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 0)
        s.bind(("eth0", 0))
        return s

    psock = lan.rig.own(lan.r1.call(packet_socket))
    mac = bytes.fromhex("029900000011")
    src4, group4 = socket.inet_aton("10.99.0.11"), socket.inet_aton("224.0.0.18")
    vip4 = socket.inet_aton("10.99.0.100")
    ll = lan.r1.link_local("eth0").packed
    group6, vip6 = (
        socket.inet_pton(socket.AF_INET6, "ff02::12"),
        socket.inet_pton(socket.AF_INET6, "fd99::100"),
    )
    s4, s6 = engine.add_slot(55), engine.add_slot(57)
    engine.set_advert(s4, psock, family=AF_INET, version=3, priority=150, adver_int=100, addresses=vip4,
                      src=src4, dsts=[group4], multicast=True, interval=1.0,
                      link=bytes.fromhex("01005e000012") + mac + b"\x08\x00")  # fmt: skip
    engine.set_advert(s6, psock, family=AF_INET6, version=3, priority=150, adver_int=100, addresses=vip6,
                      src=ll, dsts=[group6], multicast=True, interval=1.0,
                      link=bytes.fromhex("333300000012") + mac + b"\x86\xdd")  # fmt: skip
    cap = lan.rig.capture(lan.lan)
    try:
        engine.send_now(s4)
        engine.send_now(s4)
        engine.send_now(s6)
        engine.send_now(s4, 0)
        frames = cap.wait(lambda f: f.is_vrrp, count=4, timeout=3)
    finally:
        loop.close()
    v4 = [f.data for f in frames if f.ethertype == 0x0800]
    want = [
        encode_ipv4(3, 55, p, 100, vip4, 0, b"", src4, group4, 255, ident)
        for p, ident in ((150, 1), (150, 2), (0, 3))
    ]
    assert v4 == [bytes.fromhex("01005e000012") + mac + b"\x08\x00" + w for w in want]
    assert all(inet_checksum(f[14:34]) == 0 for f in v4)
    [f6] = [f.data for f in frames if f.ethertype == 0x86DD]
    assert f6[14:22] == bytes.fromhex("6c000000001870ff") and f6[22:38] == ll and f6[38:54] == group6
    assert f6[54:] == encode(3, 57, 150, 100, vip6, 0, b"", ll, group6)
