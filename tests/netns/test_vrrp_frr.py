"""fastka next to FRR's vrrpd (Debian's FRR 8.4.4), the second real VRRP implementation fastka
must interoperate with on the wire.

A pair on one bridge: r1 runs fastka, r2 runs FRR's zebra + vrrpd (started by hand in its
namespace, see ``rig.FrrVrrpd``). Two virtual routers whose masters sit on opposite sides,
so fastka is MASTER of one and BACKUP of the other at once -- for VRRPv3 over IPv4 and
IPv6 (100 ms adverts) and VRRPv2 over IPv4 (1 s, FRR has no v2 authentication):
election, failover when either side crashes (SIGKILL), preemption back, the priority-0
advert of a graceful stop from either side, and exactly one owner of each VIP at every
sample. FRR keeps its VIPs configured on a macvlan that it puts in protodown while
Backup, so the sampler counts an address only on an interface with carrier. FRR's own
view comes from ``vtysh -c 'show vrrp json'`` through its vty socket.

The VRRPv3 IPv4 checksum: fastka's default (pseudo-header, as Keepalived and FRR) is
accepted by FRR and FRR's by fastka (FRR's receive counters grow, neither side logs a
refused advert). FRR 8.4.4 has no ``checksum-with-ipv4-pseudoheader`` knob (FRR PR
#12390 came later): fastka with ``v3_checksum_as_v2`` is refused by it ("Bad VRRP
checksum", both sides MASTER), while fastka in that mode, which does not verify
checksums (as Keepalived), still follows FRR's adverts. On an FRR that has the knob the
test also checks that turning it off makes the two agree again.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from rig import Capture, Frame, FrrVrrpd, Netns, OwnershipSampler, Rig, VrrpDaemon, require_netns
from vrrp_pairs import Inst, Variant, config

pytestmark = [pytest.mark.root, pytest.mark.netns]

V3 = Variant("v3-ipv4")
V3_IPV6 = Variant("v3-ipv6", ipv6=True)
V2 = Variant("v2-ipv4", version=2, advert_int=1.0)

# VI_A (VRID 31): fastka (150) is the master, FRR (100) the backup
# VI_B (VRID 32): FRR (150) is the master, fastka (100) the backup
VRID_A, VRID_B = 31, 32
VIP_A, VIP_B = 101, 102
FASTKA, FRR = 11, 12  # hosts on the lan
# vrrpd's debug line for a refused packet; every router's socket also sees the other VRIDs'
# adverts and says so, which is no refusal
FRR_REFUSED = re.compile(r"[Dd]atagram invalid: (?!Advertisement contains VRID)(.*)")
# FRR PR #12390 (after 8.4): `[no] vrrp N checksum-with-ipv4-pseudoheader`
PSEUDOHEADER_KNOB = "checksum-with-ipv4-pseudoheader"


def fastka_conf(v: Variant, *, global_extra: str = "") -> str:
    return config(
        v,
        FASTKA,
        FRR,
        [Inst("VI_A", VRID_A, 150, [VIP_A]), Inst("VI_B", VRID_B, 100, [VIP_B])],
        global_extra=global_extra,
    )


def frr_conf(v: Variant, *, extra: str = "") -> str:
    """vrrpd.conf: the same two virtual routers, priorities mirrored; the debug lines make
    vrrpd log state changes and every refused packet (with the reason)."""
    lines = [
        "hostname r2",
        "log timestamp precision 3",
        "debug vrrp protocol",
        "debug vrrp packets",
        "interface eth0",
    ]
    for vrid, prio, vip in ((VRID_A, 100, VIP_A), (VRID_B, 150, VIP_B)):
        lines += [
            f" vrrp {vrid} version {v.version}",
            f" vrrp {vrid} priority {prio}",
            f" vrrp {vrid} advertisement-interval {round(v.advert_int * 1000)}",
            f" vrrp {vrid} {'ipv6' if v.ipv6 else 'ip'} {v.vip(vip)}",
        ]
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


@dataclass
class FrrPair:
    """fastka in r1, FRR in r2, a capture of the bridge, one carrier-aware sampler per VIP."""

    rig: Rig
    v: Variant
    fastka_ns: Netns
    frr: FrrVrrpd
    capture: Capture
    fastka_conf: str
    fastkas: list[VrrpDaemon] = field(default_factory=list)
    samplers: dict[str, OwnershipSampler] = field(default_factory=dict)

    @property
    def family(self) -> int:
        return 6 if self.v.ipv6 else 4

    def start_fastka(self) -> VrrpDaemon:
        d = self.rig.fastka(self.fastka_ns, self.fastka_conf)
        self.fastkas.append(d)
        return d

    def sample(self) -> None:
        for n in (VIP_A, VIP_B):
            vip = self.v.vip(n)
            s = self.rig.sampler(vip, [self.fastka_ns, self.frr.ns], carrier=True)
            self.samplers[vip] = s.start()

    def owned_after(self, vip: int, who: str, t: float, timeout: float) -> float:
        """Seconds from ``t`` until ``who`` (a namespace name) alone held ``vip``."""
        s = self.samplers[self.v.vip(vip)]
        deadline = time.monotonic() + timeout
        while True:
            for sample in s.timeline.samples:
                if sample.t >= t and sample.owners == {who}:
                    return sample.t - t
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.v.vip(vip)} not held by {who} alone {timeout} s after t\n{s.timeline}"
                )
            time.sleep(0.005)

    def wait_owner(self, vip: int, who: str, timeout: float) -> float:
        return self.samplers[self.v.vip(vip)].wait_owner([who], timeout=timeout)

    def report(self) -> str:
        out = []
        for s in self.samplers.values():
            out.append(str(s.timeline))
            t0 = s.timeline.samples[0].t if s.timeline.samples else 0.0
            for seg in s.timeline.overlaps():  # what was on the wire around a split brain
                out.append(f"  VRRP frames around the overlap at {seg.start - t0:.3f} s:")
                for fr in self.capture.select(lambda f: f.is_vrrp):
                    if abs(fr.t - seg.start) < 0.5:
                        out.append(f"    {fr.t - t0:8.3f} s  {_describe(fr)}")
        for i, d in enumerate(self.fastkas):
            lines = [ln for ln in d.log().splitlines() if "(VI_" in ln]
            out.append(f"===== fastka run {i + 1}\n" + "\n".join(lines[-40:]))
        log = self.frr.log()
        # the protocol lines only: the packet hex dumps would drown them
        proto = [ln for ln in log.splitlines() if " -> " in ln or "switching" in ln or FRR_REFUSED.search(ln)]
        out.append("===== FRR vrrpd\n" + "\n".join(proto[-80:]))
        return "\n".join(out)


def _describe(fr: Frame) -> str:
    """``src-mac vrid N prio P`` of a captured VRRP frame."""
    d = fr.data
    off = 14 + (d[14] & 0x0F) * 4 if fr.ethertype == 0x0800 else 54
    return f"{fr.src_mac} v{d[off] >> 4} vrid {d[off + 1]} prio {d[off + 2]}"


def make_pair(rig: Rig, v: Variant, *, fastka_extra: str = "", frr_extra: str = "") -> FrrPair:
    lan = rig.bridge("lan")
    r1 = rig.router("r1", lan, host=FASTKA)
    r2 = rig.router("r2", lan, host=FRR)
    frr = rig.frr(r2, frr_conf(v, extra=frr_extra))
    return FrrPair(rig, v, r1, frr, rig.capture(lan), fastka_conf(v, global_extra=fastka_extra))


def _rx(pair: FrrPair, vrid: int) -> int:
    return int(pair.frr.router(vrid, pair.family)["stats"]["adverRx"])


def scenario(pair: FrrPair) -> None:
    v, frr = pair.v, pair.frr
    fam = pair.family
    r1, r2 = "r1", "r2"
    slow = v.master_down + 10  # generous: start-up of both daemons on a busy machine
    settle = min(3 * v.advert_int, 1.0)  # the backup follows the (new) master for a while
    pair.sample()
    da = pair.start_fastka()
    frr.start()

    # 1. election: each side wins the virtual router where its priority is higher
    pair.wait_owner(VIP_A, r1, slow)
    pair.wait_owner(VIP_B, r2, slow)
    frr.wait_status(VRID_A, "Backup", fam)
    frr.wait_status(VRID_B, "Master", fam)
    da.wait_state("BACKUP", instance="VI_B")
    # FRR accepts fastka's adverts (checksum, length, TTL ...): its Rx counter follows them
    rx = _rx(pair, VRID_A)
    time.sleep(max(settle, 2.5 * v.advert_int))
    assert _rx(pair, VRID_A) >= rx + 2, "FRR does not count fastka's adverts"
    assert frr.status(VRID_A, fam) == "Backup"

    # 2. FRR crashes: fastka, BACKUP of VI_B, takes over after Master_Down_Interval
    t = time.monotonic()
    frr.crash()
    took = pair.owned_after(VIP_B, r1, t, v.master_down + 5)
    # the last advert went out up to one interval before the crash
    assert took > v.master_down - v.advert_int - 0.05, f"fastka took VI_B after {took:.3f} s: too early"
    assert pair.samplers[v.vip(VIP_A)].timeline.final_owners == {r1}

    # 3. FRR comes back and preempts VI_B (fastka's MASTER yields to the higher priority)
    frr.start()
    pair.wait_owner(VIP_B, r2, slow)
    frr.wait_status(VRID_B, "Master", fam)
    frr.wait_status(VRID_A, "Backup", fam)

    # 4. FRR stops (SIGTERM): its priority-0 advert hands VI_B to fastka after Skew_Time
    time.sleep(settle)
    mark = da.mark()
    t = time.monotonic()
    frr.stop()
    took = pair.owned_after(VIP_B, r1, t, v.master_down + 5)
    da.wait_log(r"\(VI_B\) Backup received priority 0 advertisement", since=mark)
    assert took < v.master_down, f"fastka took {took:.3f} s to take over after FRR's priority 0 advert"

    # 5. FRR comes back and preempts VI_B again
    frr.start()
    pair.wait_owner(VIP_B, r2, slow)
    frr.wait_status(VRID_A, "Backup", fam)

    # 6. fastka crashes: FRR, Backup of VI_A, takes over after Master_Down_Interval
    time.sleep(settle)
    t = time.monotonic()
    pair.rig.crash(da)
    took = pair.owned_after(VIP_A, r2, t, v.master_down + 5)
    assert took > v.master_down - v.advert_int - 0.05, f"FRR took VI_A after {took:.3f} s: too early"
    frr.wait_status(VRID_A, "Master", fam)

    # 7. fastka comes back and preempts VI_A (FRR's Master yields to the higher priority)
    da = pair.start_fastka()
    pair.wait_owner(VIP_A, r1, slow)
    frr.wait_status(VRID_A, "Backup", fam)

    # 8. fastka stops (SIGTERM): its priority-0 advert hands VI_A to FRR after Skew_Time
    da.wait_state("MASTER", instance="VI_A")
    time.sleep(settle)
    mark = frr.mark()
    t = time.monotonic()
    assert da.stop() == 0
    took = pair.owned_after(VIP_A, r2, t, v.master_down + 5)
    # FRR's dump of the advert it accepted
    frr.wait_log(
        rf"\[VRID {VRID_A}\] \[IPv{fam}\] Received VRRP Advertisement from \S+ version {v.version}, "
        rf"type 1 \(ADVERTISEMENT\), vrid {VRID_A}, priority 0,",
        since=mark,
    )
    assert took < v.master_down, f"FRR took {took:.3f} s to take over after fastka's priority 0 advert"
    frr.stop()

    time.sleep(2 * v.advert_int)
    for s in pair.samplers.values():
        s.stop()
    for n in (VIP_A, VIP_B):  # shown with -s: how close the handovers are
        tl = pair.samplers[v.vip(n)].timeline
        print(f"{v.name} {tl.address}: overlaps {[round(o.duration * 1000) for o in tl.overlaps()]} ms")
    # When fastka preempts (VI_A), its advert goes first and FRR's protodown follows at once.
    # When FRR preempts (VI_B), vrrpd holds its advert back "until interface is up", takes
    # the macvlan out of protodown and then sends it -- over IPv4. Over IPv6, FRR 8.4.4 logs
    # "Failed to find address to bind on vrrp6-32" at that moment and the pending advert
    # never reaches the wire: fastka hears the next one, an Advertisement_Interval later, and
    # both hold the VIP meanwhile (the capture in the failure report shows it).
    pair.samplers[v.vip(VIP_A)].timeline.assert_one_owner(max_overlap=v.advert_int)
    frr_first_advert_lost = v.ipv6
    pair.samplers[v.vip(VIP_B)].timeline.assert_one_owner(
        max_overlap=(2 if frr_first_advert_lost else 1) * v.advert_int
    )
    logs = "".join(d.log() for d in pair.fastkas)
    assert "Traceback" not in logs
    # neither side refused one advert of the other (checksums, lengths, versions agree)
    assert not FRR_REFUSED.search(frr.log()), "FRR refused fastka's adverts"
    assert not re.search(r"\) packet from .* ignored", logs), "fastka refused FRR's adverts"


def _run(variants: list[Variant]) -> None:
    """Each variant in its own namespaces, all at once (the waits dominate, not the CPU)."""
    require_netns()

    def one(v: Variant) -> None:
        t0 = time.monotonic()
        with Rig() as rig:
            pair = make_pair(rig, v)
            try:
                scenario(pair)
            except BaseException as exc:
                raise AssertionError(f"[{v.name}] {exc}\n{pair.report()}") from exc
        print(f"{v.name}: {time.monotonic() - t0:.1f} s")

    with ThreadPoolExecutor(len(variants)) as ex:
        errors = [e for e in (f.exception() for f in [ex.submit(one, v) for v in variants]) if e is not None]
    if errors:
        raise AssertionError("\n\n".join(str(e) for e in errors)) from errors[0]


def test_fastka_with_frr() -> None:
    """VRRPv3 IPv4, VRRPv3 IPv6, VRRPv2 IPv4: election, crashes, preemption, priority 0."""
    _run([V3, V3_IPV6, V2])


def checksum_scenario(pair: FrrPair, fastka_as_v2: bool, frr_pseudoheader: bool) -> bool:
    """FRR is master of VI_B before fastka starts; fastka wins VI_A if FRR hears it.
    Returns whether this FRR has the pseudo-header knob."""
    frr, v = pair.frr, pair.v
    slow = v.master_down + 10
    pair.sample()
    frr.start()
    frr.wait_status(VRID_B, "Master", timeout=slow)
    # the knob's default is on: setting it is a no-op where it exists
    out = frr.vtysh("configure terminal", "interface eth0", f"vrrp {VRID_A} {PSEUDOHEADER_KNOB}", check=False)
    knob = "%" not in out  # "% Unknown command: ..." on FRR 8.4
    if not frr_pseudoheader:
        frr.vtysh(
            "configure terminal", "interface eth0", *(f"no vrrp {n} {PSEUDOHEADER_KNOB}" for n in (31, 32))
        )
    da = pair.start_fastka()
    da.wait_state("MASTER", instance="VI_A", timeout=slow)
    time.sleep(1.0)  # ten adverts each way
    vip_a = pair.samplers[v.vip(VIP_A)].timeline
    if fastka_as_v2 != frr_pseudoheader:
        # FRR hears fastka: Backup of VI_A, its Rx counter follows fastka's adverts
        rx = _rx(pair, VRID_A)
        time.sleep(3 * v.advert_int)
        assert _rx(pair, VRID_A) >= rx + 2, "FRR does not count fastka's adverts"
        assert frr.status(VRID_A) == "Backup"
        assert vip_a.final_owners == {"r1"}
        assert not FRR_REFUSED.search(frr.log()), "FRR refused fastka's adverts"
    else:
        # fastka leaves the pseudo-header out, FRR expects it: every advert is refused,
        # so FRR stays Master of VI_A next to fastka -- the split brain the knob is about
        m = frr.wait_log(rf"\[VRID {VRID_A}\] \[IPv4\] .*atagram invalid: (Bad VRRP checksum.*)")
        assert frr.status(VRID_A) == "Master", m.group(1)
        assert _rx(pair, VRID_A) == 0
        assert vip_a.final_owners == {"r1", "r2"}
    # fastka follows FRR's VI_B adverts either way: with the pseudo-header it verifies
    # them; with v3_checksum_as_v2 it does not verify checksums at all (as Keepalived)
    assert pair.samplers[v.vip(VIP_B)].timeline.final_owners == {"r2"}
    log = da.log()
    assert "(VI_B) Entering MASTER STATE" not in log
    assert not re.search(r"\) packet from .* ignored", log), "fastka refused FRR's adverts"
    for s in pair.samplers.values():
        s.stop()
    return knob


def _checksum_run(fastka_as_v2: bool, frr_pseudoheader: bool) -> bool:
    with Rig() as rig:
        pair = make_pair(rig, V3, fastka_extra="    v3_checksum_as_v2" if fastka_as_v2 else "")
        try:
            return checksum_scenario(pair, fastka_as_v2, frr_pseudoheader)
        except BaseException as exc:
            what = "with" if frr_pseudoheader else "without"
            raise AssertionError(f"[FRR {what} the pseudo-header] {exc}\n{pair.report()}") from exc


@pytest.mark.parametrize("fastka_as_v2", [False, True], ids=["pseudo-header", "v3_checksum_as_v2"])
def test_v3_ipv4_checksum(fastka_as_v2: bool) -> None:
    """fastka's VRRPv3 IPv4 checksum (Keepalived's default with the pseudo-header, or
    ``v3_checksum_as_v2``) against FRR's default and, on an FRR that has the knob (not
    8.4.4), against FRR without the pseudo-header."""
    require_netns()
    if _checksum_run(fastka_as_v2, frr_pseudoheader=True):
        _checksum_run(fastka_as_v2, frr_pseudoheader=False)
