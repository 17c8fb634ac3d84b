"""GARPs and unsolicited NAs from a router namespace, seen on the bridge: Keepalived's
frames to the byte, spaced by garp_interval on the real event loop."""

from __future__ import annotations

import itertools
import time
from ipaddress import ip_address

import pytest
from rig import Lan, golden

from fastka.loop import Loop
from fastka.vrrp.arp import GarpSender

pytestmark = [pytest.mark.root, pytest.mark.netns]


def run_until(loop: Loop, done: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        loop.run_once(0.01)


def test_garp_and_na_bursts_on_the_wire(lan: Lan) -> None:
    garp = bytes.fromhex(golden("vrrpv2-noauth")["arp"][0]["frame_hex"])
    na = bytes.fromhex(golden("vrrpv3-ipv6")["neighbor_adverts"][0]["frame_hex"])
    loop = Loop()
    try:
        cap = lan.rig.capture(lan.lan)
        sender = lan.rig.own(lan.r1.call(GarpSender, loop, "eth0", "02:99:00:00:00:11", garp_interval=0.02))
        sender.send_burst([ip_address("10.99.0.100"), ip_address("fd99::100")], repeat=5)
        run_until(loop, lambda: sender.pending == 0)
        arps = cap.wait(lambda f: f.is_garp, count=5)
        nas = cap.wait(lambda f: f.is_unsolicited_na, count=5)
    finally:
        loop.close()
    assert [f.data for f in arps] == [garp] * 5
    assert [f.data for f in nas] == [na] * 5
    gaps = [b.t - a.t for a, b in itertools.pairwise(arps)]
    assert min(gaps) > 0.015, gaps  # garp_interval 20 ms (kernel timestamps, some jitter)
    assert nas[-1].t - nas[0].t < 0.015  # gna_interval 0: one burst
    assert sender.sent == 10 and sender.errors == 0


def test_na_router_flag_on_the_wire(lan: Lan) -> None:
    loop = Loop()
    try:
        cap = lan.rig.capture(lan.lan)
        sender = lan.rig.own(lan.r2.call(GarpSender, loop, "eth0", "02:99:00:00:00:12"))
        sender.send_burst([ip_address("fd99::100")], router=True)
        (frame,) = cap.wait(lambda f: f.is_unsolicited_na)
    finally:
        loop.close()
    assert frame.src_mac == "02:99:00:00:00:12"
    assert frame.data[58] == 0xA0  # Router + Override
