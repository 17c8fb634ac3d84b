"""Gratuitous ARP / unsolicited NA frames are Keepalived's to the byte; bursts are ordered
and spaced on loop timers (no sleeping). Unprivileged: a socketpair stands in for AF_PACKET."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest

from conftest import SHARED, shared_path
from fastka.vrrp.arp import GarpSender, garp_frame, mac_bytes, unsolicited_na_frame

GOLDEN = SHARED / "vrrp-golden"


def golden_frames(kind: str) -> list[dict[str, Any]]:
    shared_path("vrrp-golden")
    out = []
    for path in sorted(GOLDEN.glob("*.expected.json")):
        out.extend(json.loads(path.read_text())[kind])
    return out


def test_every_golden_gratuitous_arp() -> None:
    garps = [g for g in golden_frames("arp") if g["gratuitous"]]
    assert len(garps) >= 10
    for g in garps:
        frame = garp_frame(mac_bytes(g["sha"]), IPv4Address(g["spa"]))
        assert frame.hex() == g["frame_hex"]


def test_every_golden_neighbour_advert() -> None:
    nas = golden_frames("neighbor_adverts")
    assert len(nas) >= 3
    for g in nas:
        mac = bytes.fromhex(g["frame_hex"])[6:12]
        frame = unsolicited_na_frame(mac, IPv6Address(g["target"]), router=g["router"])
        assert frame.hex() == g["frame_hex"]


def test_na_router_flag_and_checksum() -> None:
    mac = mac_bytes("02:99:00:00:00:11")
    plain = unsolicited_na_frame(mac, IPv6Address("fd99::100"))
    router = unsolicited_na_frame(mac, IPv6Address("fd99::100"), router=True)
    assert plain[58] == 0x20 and router[58] == 0xA0  # Override / Router + Override
    assert len(router) == 86
    # the ICMPv6 checksum verifies over the pseudo-header
    src, dst, msg = router[22:38], router[38:54], router[54:]
    data = src + dst + struct.pack("!I3xB", len(msg), 58) + msg
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF


def test_mac_bytes() -> None:
    assert mac_bytes("00:00:5e:00:01:33") == bytes([0, 0, 0x5E, 0, 1, 0x33])
    assert mac_bytes(b"\1" * 6) == b"\1" * 6
    for bad in ("00:11", "zz:00:00:00:00:00", b"\0" * 5):
        with pytest.raises(ValueError):
            mac_bytes(bad)


class FakeLoop:
    """time() and call_at() over a manual clock; ``advance`` fires what is due, in order."""

    class Handle:
        def __init__(
            self, loop: FakeLoop, when: float, cb: Callable[..., object], args: tuple[Any, ...]
        ) -> None:
            self.loop, self.when, self.cb, self.args, self.active = loop, when, cb, args, True

        def cancel(self) -> None:
            self.active = False

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[FakeLoop.Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> FakeLoop.Handle:
        h = FakeLoop.Handle(self, when, callback, args)
        self.timers.append(h)
        return h

    def advance(self, dt: float) -> None:
        end = self.now + dt
        while True:
            due = sorted((h for h in self.timers if h.active and h.when <= end), key=lambda h: h.when)
            if not due:
                break
            h = due[0]
            h.active = False
            self.now = max(self.now, h.when)
            h.cb(*h.args)
        self.now = end


@pytest.fixture
def wire() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(2048))
        except BlockingIOError:
            return out


MAC = "02:99:00:00:00:11"
VIPS = [ip_address("10.99.0.100"), ip_address("10.99.0.101"), ip_address("10.99.0.102")]


def test_burst_without_interval_goes_out_at_once_round_robin(
    wire: tuple[socket.socket, socket.socket],
) -> None:
    loop = FakeLoop()
    s = GarpSender(loop, "eth0", MAC, sock=wire[0])
    s.send_burst(VIPS, repeat=5)
    got = drain(wire[1])
    # as the golden 3-VIP capture: .100 .101 .102 .100 .101 .102 ...
    assert [f[28:32] for f in got] == [a.packed for a in VIPS] * 5
    assert got[0] == garp_frame(mac_bytes(MAC), IPv4Address("10.99.0.100"))
    assert s.sent == 15 and s.pending == 0 and not loop.timers


def test_garp_interval_spaces_frames_on_timers(wire: tuple[socket.socket, socket.socket]) -> None:
    loop = FakeLoop()
    s = GarpSender(loop, "eth0", MAC, garp_interval=0.01, sock=wire[0])
    s.send_burst(VIPS[:2], repeat=2)
    assert len(drain(wire[1])) == 1 and s.pending == 3  # the first goes at once
    loop.advance(0.0099)
    assert drain(wire[1]) == []
    loop.advance(0.0001)
    assert len(drain(wire[1])) == 1
    s.send_burst(VIPS[2:], repeat=1)  # queues behind, does not jump the line
    assert drain(wire[1]) == []
    loop.advance(0.05)
    rest = drain(wire[1])
    assert [f[28:32] for f in rest] == [VIPS[0].packed, VIPS[1].packed, VIPS[2].packed]
    assert s.pending == 0 and s.sent == 5


def test_arp_and_na_are_spaced_independently(wire: tuple[socket.socket, socket.socket]) -> None:
    loop = FakeLoop()
    s = GarpSender(loop, "eth0", MAC, garp_interval=1.0, gna_interval=0.0, sock=wire[0])
    s.send_burst([ip_address("10.99.0.100"), ip_address("fd99::100")], repeat=3)
    got = drain(wire[1])
    assert sum(f[12:14] == b"\x86\xdd" for f in got) == 3  # all NAs at once
    assert sum(f[12:14] == b"\x08\x06" for f in got) == 1  # one ARP, two wait


def test_cancel_drops_the_queue(wire: tuple[socket.socket, socket.socket]) -> None:
    loop = FakeLoop()
    s = GarpSender(loop, "eth0", MAC, garp_interval=0.5, sock=wire[0])
    s.send_burst(VIPS, repeat=5)
    s.cancel()
    loop.advance(10)
    assert len(drain(wire[1])) == 1 and s.pending == 0


def test_send_errors_are_counted_not_raised(wire: tuple[socket.socket, socket.socket]) -> None:
    loop = FakeLoop()
    s = GarpSender(loop, "eth0", MAC, garp_interval=0.1, sock=wire[0])
    wire[1].close()  # the peer is gone: send fails with ECONNREFUSED
    s.send_burst(VIPS[:1], repeat=3)
    loop.advance(1)
    assert s.errors == 3 and s.sent == 0
