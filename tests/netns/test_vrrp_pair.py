"""A pair of routers, fastka on one side and fastka or Keepalived 2.2.7 on the other:
elections, failover on a crash (SIGKILL of the whole process group) and on SIGTERM
(priority 0), preemption back -- with fastka as MASTER and as BACKUP at once (two
instances whose masters are on opposite sides), for VRRPv3 over IPv4 and IPv6, unicast,
and VRRPv2 with PASS / AH authentication. Exactly one router holds each VIP at every
sample (10 ms); an overlap longer than one advert interval fails."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from rig import Rig, require_netns
from vrrp_pairs import (
    V2_AH,
    V2_PASS,
    V3,
    V3_IPV6,
    V3_IPV6_UNICAST,
    V3_UNICAST,
    Inst,
    Pair,
    Variant,
    config,
    explain,
    make_pair,
)

pytestmark = [pytest.mark.root, pytest.mark.netns]

# VI_A: r1 (fastka) is the master; VI_B: r2 (the peer) is the master
VIP_A, VIP_B = 101, 102


def confs(v: Variant) -> tuple[str, str]:
    a = config(v, 11, 12, [Inst("VI_A", 31, 150, [VIP_A]), Inst("VI_B", 32, 100, [VIP_B])])
    b = config(v, 12, 11, [Inst("VI_A", 31, 100, [VIP_A]), Inst("VI_B", 32, 150, [VIP_B])])
    return a, b


def scenario(pair: Pair, v: Variant) -> None:
    rig, a, b = pair.rig, pair.a, pair.b
    va, vb = v.vip(VIP_A), v.vip(VIP_B)
    pair.sample(va, vb)
    da = a.start(rig)
    db = b.start(rig)
    slow = v.master_down + 10  # generous: start-up of both daemons on a busy machine
    # 1. election: each instance's higher priority wins
    pair.wait_owner(va, a, slow)
    pair.wait_owner(vb, b, slow)
    # 2. the peer crashes: fastka, BACKUP of VI_B, takes over after Master_Down_Interval
    t = time.monotonic()
    rig.crash(db)
    took = pair.owned_after(vb, a, t, v.master_down + 5)
    assert pair.samplers[va].timeline.final_owners == {a.ns.name}
    # the last advert went out up to one interval before the crash
    assert took > v.master_down - v.advert_int - 0.05, f"took over after {took:.3f} s: too early"
    # 3. the peer comes back: it preempts VI_B (fastka MASTER yields to a higher priority)
    db = b.start(rig)
    pair.wait_owner(vb, b, slow)
    # 4. fastka stops (SIGTERM): priority 0, the peer takes VI_A after Skew_Time only
    da.wait_log(r"\(VI_A\) Entering MASTER STATE")
    time.sleep(3 * v.advert_int)  # the peer follows us again
    mark = db.mark()
    t = time.monotonic()
    assert da.stop() == 0
    took = pair.owned_after(va, b, t, v.master_down + 5)
    db.wait_log(r"\(VI_A\) Backup received priority 0 advertisement", since=mark)
    # Skew_Time after the priority-0 advert, not a whole Master_Down_Interval
    assert took < v.master_down, f"priority 0 takeover took {took:.3f} s"
    # 5. fastka comes back and preempts VI_A
    da = a.start(rig)
    pair.wait_owner(va, a, slow)
    # 6. the peer stops (SIGTERM): fastka, BACKUP of VI_B, takes over after Skew_Time
    time.sleep(3 * v.advert_int)
    mark = da.mark()
    t = time.monotonic()
    db.stop()
    took = pair.owned_after(vb, a, t, v.master_down + 5)
    da.wait_log(r"\(VI_B\) Backup received priority 0 advertisement", since=mark)
    assert took < v.master_down, f"fastka took {took:.3f} s to take over after a priority 0 advert"
    time.sleep(2 * v.advert_int)
    pair.stop_samplers()
    for s in pair.samplers.values():
        s.timeline.assert_one_owner(max_overlap=v.advert_int)
    assert "Traceback" not in da.log()


def _run(kind_b: str, variants: list[Variant]) -> None:
    """Each variant in its own namespaces, all at once (the waits dominate, not the CPU)."""
    require_netns()

    def one(v: Variant) -> None:
        with Rig() as rig:
            a, b = confs(v)
            pair = make_pair(rig, "fastka", kind_b, a, b)
            try:
                with explain(pair):
                    scenario(pair, v)
            except AssertionError as exc:
                raise AssertionError(f"[{v.name}] {exc}") from exc

    with ThreadPoolExecutor(len(variants)) as ex:
        errors = [e for e in (f.exception() for f in [ex.submit(one, v) for v in variants]) if e is not None]
    if errors:
        raise AssertionError("\n\n".join(str(e) for e in errors)) from errors[0]


def test_fastka_with_keepalived() -> None:
    """v3 IPv4 multicast, v3 IPv6, v3 unicast over IPv4 and IPv6, v2 with PASS authentication."""
    _run("keepalived", [V3, V3_IPV6, V3_UNICAST, V3_IPV6_UNICAST, V2_PASS])


def test_fastka_with_fastka() -> None:
    """v3 IPv4 multicast, v3 unicast over IPv6, v2 with AH authentication."""
    _run("fastka", [V3, V3_IPV6_UNICAST, V2_AH])
