"""The VRRP engine (compiled and reference) on a fake clock: the BACKUP steady state
re-arms the master-down timer without calling the handler; everything else reaches the
handler; refused packets are counted per reason and reported once. Datagrams arrive
through a socketpair (no privileges needed); sending is tested in the netns tests."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from vrrp_fakes import Clock

from conftest import implementations, load
from fastka.errors import VrrpDecodeError
from fastka.vrrp.codec import (
    AF_INET,
    FLAG_OLD_UNICAST_CHECKSUM,
    Expect,
    Reason,
    decode_ipv4,
    encode_ipv4,
)

PARAMS = implementations("fastka._vrrp_engine", "fastka._vrrp_engine_py")
LOOPS = {"fastka._vrrp_engine": "fastka._loop", "fastka._vrrp_engine_py": "fastka._loop_py"}

SRC = socket.inet_aton("10.0.0.2")
OTHER = socket.inet_aton("10.0.0.3")
GROUP = socket.inet_aton("224.0.0.18")
VIP = socket.inet_aton("10.0.0.100")


class Handler:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def engine_advert(self, *a: Any) -> None:
        self.calls.append(("advert", a))

    def engine_down_timer(self, *a: Any) -> None:
        self.calls.append(("down", a))

    def engine_drop(self, *a: Any) -> None:
        self.calls.append(("drop", a))

    def engine_send_error(self, *a: Any) -> None:
        self.calls.append(("send_error", a))

    def engine_late(self, *a: Any) -> None:
        self.calls.append(("late", a))


def advert(src: bytes = SRC, prio: int = 150, vrid: int = 51, interval: int = 1, vip: bytes = VIP) -> bytes:
    return encode_ipv4(2, vrid, prio, interval, vip, 0, b"", src, GROUP)


@pytest.fixture(params=PARAMS)
def rig(request: pytest.FixtureRequest) -> Any:
    mod = load(request.param)
    loop_mod = load(LOOPS[request.param])
    clock = Clock()
    loop = loop_mod.Loop(clock=clock)
    handler = Handler()
    engine = mod.Engine(loop, handler)
    rx, tx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.setblocking(False)
    rid = engine.add_receiver(rx, AF_INET)
    sid = engine.add_slot(51)
    engine.attach(
        sid, rid, Expect(2, auth_type=0, adver_int=1, unicast=False, addresses=VIP, strict_addresses=True)
    )
    engine.set_listening(sid, True)

    class R:
        pass

    r = R()
    r.__dict__.update(engine=engine, loop=loop, clock=clock, handler=handler, tx=tx, sid=sid, rid=rid)

    def feed(*packets: bytes) -> None:
        for p in packets:
            tx.send(p)
        loop.run_once(0)

    def advance(dt: float) -> None:
        clock.now += dt
        loop.run_once(0)

    r.feed = feed  # type: ignore[attr-defined]
    r.advance = advance  # type: ignore[attr-defined]
    yield r
    engine.remove_slot(sid)
    engine.remove_receiver(rid)
    loop.close()
    rx.close()
    tx.close()


def test_steady_state_rearms_without_handler(rig: Any) -> None:
    e, h = rig.engine, rig.handler
    e.arm_down(rig.sid, rig.clock.now + 3.6)
    e.follow(rig.sid, SRC, 150, 1, 3.6)
    for _ in range(5):
        rig.advance(1.0)
        rig.feed(advert())
    assert h.calls == []
    assert e.down_deadline(rig.sid) == pytest.approx(rig.clock.now + 3.6)
    st = e.stats(rig.sid)
    assert st.adverts_received == 5 and st.fast_path == 5
    # the master falls silent: the timer fires (and only then the handler hears of it)
    rig.advance(3.7)
    assert h.calls == [("down", (rig.sid,))]


def test_other_adverts_reach_the_handler(rig: Any) -> None:
    e, h = rig.engine, rig.handler
    e.follow(rig.sid, SRC, 150, 1, 3.6)
    rig.feed(advert(prio=200), advert(src=OTHER), advert(prio=0))
    assert [c[0] for c in h.calls] == ["advert"] * 3
    assert h.calls[0][1][:4] == (rig.sid, SRC, 200, 1)
    assert h.calls[1][1][1] == OTHER
    assert h.calls[2][1][2] == 0
    e.follow(rig.sid, None, 0, 0, 0.0)
    h.calls.clear()
    rig.feed(advert())
    assert [c[0] for c in h.calls] == ["advert"]


def test_refused_packets_counted_and_reported_once(rig: Any) -> None:
    e, h = rig.engine, rig.handler
    bad = bytearray(advert())
    bad[8] = 64  # TTL
    bad_csum = bytearray(advert())
    bad_csum[26] ^= 0xFF
    rig.feed(bytes(bad), bytes(bad), bytes(bad_csum))
    rig.feed(advert(interval=2), advert(vip=OTHER), b"\x45" + bytes(10))
    drops = e.stats(rig.sid).drops
    assert drops[Reason.BAD_TTL] == 2
    assert drops[Reason.BAD_CHECKSUM] == 1
    assert drops[Reason.ADVER_INT_MISMATCH] == 1
    assert drops[Reason.ADDRESS_MISMATCH] == 1
    reported = [c[1][1] for c in h.calls if c[0] == "drop"]
    assert sorted(reported) == sorted(
        [
            Reason.BAD_TTL,
            Reason.BAD_CHECKSUM,
            Reason.ADVER_INT_MISMATCH,
            Reason.ADDRESS_MISMATCH,
            Reason.TOO_SHORT,
        ]
    )
    assert not [c for c in h.calls if c[0] == "advert"]
    # reported again only after a reset (the router resets on transitions)
    h.calls.clear()
    rig.feed(bytes(bad))
    assert h.calls == []
    e.reset_reports(rig.sid)
    rig.feed(bytes(bad))
    assert [c[0] for c in h.calls] == ["drop"]


def test_unknown_vrid_counted_on_the_receiver(rig: Any) -> None:
    rig.feed(advert(vrid=99), advert(vrid=99))
    drops, _truncated = rig.engine.receiver_stats(rig.rid)
    assert drops == {Reason.UNKNOWN_VRID: 2}
    assert [c for c in rig.handler.calls if c[0] == "drop"] == [("drop", (-1, Reason.UNKNOWN_VRID, SRC))]


def test_not_listening_ignores_valid_adverts(rig: Any) -> None:
    rig.engine.set_listening(rig.sid, False)
    rig.feed(advert(prio=200))
    assert rig.handler.calls == []
    assert rig.engine.stats(rig.sid).adverts_received == 1


def test_hostile_bytes_never_raise(rig: Any) -> None:
    import random

    rnd = random.Random(5)
    base = advert()
    for k in range(300):
        p = bytearray(base)
        for _ in range(rnd.randint(1, 6)):
            p[rnd.randrange(len(p))] = rnd.randrange(256)
        rig.tx.send(bytes(p[: rnd.randint(0, len(p))]) if rnd.random() < 0.3 else bytes(p))
        if k % 8 == 7:  # a unix datagram socket queues few datagrams
            rig.loop.run_once(0)
    rig.feed(bytes(rnd.randrange(256) for _ in range(3000)))
    st = rig.engine.stats(rig.sid)
    assert (
        sum(st.drops.values())
        + len([c for c in rig.handler.calls if c[0] == "advert"])
        + sum(rig.engine.receiver_stats(rig.rid)[0].values())
        >= 250
    )


def test_detach_and_remove(rig: Any) -> None:
    e = rig.engine
    e.detach(rig.sid)
    rig.feed(advert())
    assert e.receiver_stats(rig.rid)[0] == {Reason.UNKNOWN_VRID: 1}
    e.attach(
        rig.sid,
        rig.rid,
        Expect(2, auth_type=0, adver_int=1, unicast=False, addresses=VIP, strict_addresses=True),
    )
    rig.feed(advert(prio=200))
    assert [c[0] for c in rig.handler.calls if c[0] == "advert"] == ["advert"]


def test_per_peer_counters(rig: Any) -> None:
    """Accepted adverts are counted per source: the fast path (the followed master) and
    the rest alike, with the last priority seen."""
    e = rig.engine
    e.arm_down(rig.sid, rig.clock.now + 3.6)
    e.follow(rig.sid, SRC, 150, 1, 3.6)
    rig.feed(advert(), advert(), advert(src=OTHER, prio=90))
    rig.advance(0.5)
    rig.feed(advert())
    peers = e.stats(rig.sid).peers
    assert peers[SRC][:2] == (3, 150)
    assert peers[SRC][2] == pytest.approx(rig.clock.now)
    assert peers[OTHER][:2] == (1, 90)
    # a change of the followed master keeps what was counted
    e.follow(rig.sid, None, 0, 0, 0.0)
    rig.feed(advert(prio=160))
    assert e.stats(rig.sid).peers[SRC][:2] == (4, 160)
    e.clear_stats(rig.sid)
    assert e.stats(rig.sid).peers == {}


def test_per_peer_counters_bounded(rig: Any) -> None:
    """Forged sources cannot grow the counters without bound."""
    for k in range(80):
        rig.feed(advert(src=bytes([10, 1, 0, k])))
    peers = rig.engine.stats(rig.sid).peers
    assert len(peers) == 65
    assert peers[b""][0] == 80 - 64


def _sending(rig: Any, **kw: Any) -> Any:
    """The slot sends whole frames to a unix socket (the link-layer path: no addresses
    or privileges needed); returns the receiving end."""
    out, into = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    out.setblocking(False)
    rig.engine.set_advert(
        rig.sid, into, family=AF_INET, version=kw.pop("version", 3), priority=150, adver_int=100,
        addresses=VIP, src=SRC, dsts=[kw.pop("dst", GROUP)], multicast=kw.pop("multicast", True),
        interval=1.0, link=bytes(14), **kw,
    )  # fmt: skip
    rig.sockets = (out, into)
    return out


def _frames(out: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(out.recv(4096)[14:])
        except BlockingIOError:
            return got


def test_old_unicast_checksum_sent(rig: Any) -> None:
    """checksum_dst: the VRRPv3 checksum of a unicast advert made with 224.0.0.18 as the
    pseudo-header destination (Keepalived < 1.3.6), the IP header still to the peer."""
    out = _sending(rig, dst=OTHER, multicast=False, checksum_dst=GROUP)
    try:
        rig.engine.send_now(rig.sid)
        (pkt,) = _frames(out)
        assert pkt[16:20] == OTHER
        a = decode_ipv4(pkt, Expect(3, unicast=True, old_unicast_checksum=True))
        assert a.flags & FLAG_OLD_UNICAST_CHECKSUM
        with pytest.raises(VrrpDecodeError, match="BAD_CHECKSUM"):
            decode_ipv4(pkt, Expect(3, unicast=True, old_unicast_checksum=False))
        # and back to the RFC checksum
        rig.engine.set_advert(
            rig.sid, rig.sockets[1], family=AF_INET, version=3, priority=150, adver_int=100, addresses=VIP,
            src=SRC, dsts=[OTHER], multicast=False, interval=1.0, link=bytes(14),
        )  # fmt: skip
        rig.engine.send_now(rig.sid)
        (pkt,) = _frames(out)
        assert not decode_ipv4(pkt, Expect(3, unicast=True, old_unicast_checksum=False)).flags & (
            FLAG_OLD_UNICAST_CHECKSUM
        )
    finally:
        for x in rig.sockets:
            x.close()


def test_late_limit_stops_adverts(rig: Any) -> None:
    """timer_expired_backup: an advert due long after the previous one (the process was
    stopped) is not sent; the handler hears how long it was."""
    out = _sending(rig)
    try:
        e = rig.engine
        e.set_late_limit(rig.sid, 3.5)
        e.send_now(rig.sid)
        e.start_adverts(rig.sid)
        for _ in range(3):
            rig.advance(1.0)
        rig.loop.run_once(0)  # the compiled engine flushes its queue one iteration later
        assert len(_frames(out)) == 4
        assert rig.handler.calls == []
        rig.advance(5.0)
        rig.loop.run_once(0)
        assert _frames(out) == []
        (late,) = [c for c in rig.handler.calls if c[0] == "late"]
        assert late[1][0] == rig.sid and late[1][1] == pytest.approx(5.0, abs=0.1)
        rig.advance(1.0)
        rig.loop.run_once(0)
        assert _frames(out) == [], "the adverts stopped"
    finally:
        for x in rig.sockets:
            x.close()


def test_priority_zero_is_the_last_advert(rig: Any) -> None:
    """Stopping right after a periodic advert fell due (queued, not yet flushed): the
    priority-0 advert still goes out last, so the peer takes over after its skew time."""
    out = _sending(rig)
    try:
        e = rig.engine
        e.start_adverts(rig.sid)
        rig.advance(1.0)  # the periodic advert falls due (the compiled engine queues it)
        e.stop_adverts(rig.sid)
        e.send_now(rig.sid, 0)
        rig.loop.run_once(0)
        priorities = [f[20 + 2] for f in _frames(out)]
        assert priorities == [150, 0]
    finally:
        for x in rig.sockets:
            x.close()
