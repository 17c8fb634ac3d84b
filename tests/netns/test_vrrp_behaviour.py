"""fastka next to Keepalived 2.2.7 (or fastka): link down and carrier loss, nopreempt,
preempt_delay, equal priorities, the address owner, sync group FAULT propagation,
track_script weights moving mastership, a missing interface at start-up, VMAC, and the
command line without ``-P``. VRRPv3 at 0.1 s intervals; independent scenarios run
side by side in their own namespaces to keep the wall time short. Each scenario also
samples VIP ownership every 10 ms: no overlap longer than one advert interval."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rig import Rig
from vrrp_pairs import V3, Inst, Pair, Variant, config, explain, make_pair, parallel, wait_for

pytestmark = [pytest.mark.root, pytest.mark.netns]

ADV = V3.advert_int


def one_owner(pair: Pair) -> None:
    pair.stop_samplers()
    for s in pair.samplers.values():
        s.timeline.assert_one_owner(max_overlap=ADV)


def two(
    kind_a: str, prio_a: int, kind_b: str, prio_b: int, rig: Rig, extra_a: str = "", extra_b: str = ""
) -> Pair:
    a = config(V3, 11, 12, [Inst("VI_1", 51, prio_a, [100], extra_a)])
    b = config(V3, 12, 11, [Inst("VI_1", 51, prio_b, [100], extra_b)])
    return make_pair(rig, kind_a, kind_b, a, b)


# ------------------------------------------------------------------------- scenarios


def link_down_and_carrier() -> None:
    """fastka MASTER loses its link (admin down, then carrier): FAULT, the peer takes over;
    the link comes back: BACKUP, then preemption back."""
    with Rig() as rig:
        pair = two("fastka", 150, "keepalived", 100, rig)
        with explain(pair):
            vip = V3.vip(100)
            pair.sample(vip)
            da = pair.a.start(rig)
            pair.b.start(rig)
            pair.wait_owner(vip, pair.a)
            port = pair.lan.ports[0]
            for cut, mend in ((port.down, port.up), (port.unplug, port.plug)):
                mark = da.mark()
                cut()
                da.wait_log(r"\(VI_1\) Entering FAULT STATE", since=mark)
                pair.wait_owner(vip, pair.b, 5)
                mend()
                da.wait_log(r"\(VI_1\) Entering BACKUP STATE \(fault cleared\)", since=mark)
                pair.wait_owner(vip, pair.a, 5)
            one_owner(pair)


def nopreempt() -> None:
    """fastka with nopreempt and the higher priority does not take over a running master;
    it does when the master stops."""
    with Rig() as rig:
        pair = two("fastka", 150, "keepalived", 100, rig, extra_a="    nopreempt")
        with explain(pair):
            vip = V3.vip(100)
            pair.sample(vip)
            db = pair.b.start(rig)
            pair.wait_owner(vip, pair.b)
            da = pair.a.start(rig)
            da.wait_state("BACKUP", instance="VI_1")
            time.sleep(10 * ADV)
            assert pair.samplers[vip].timeline.final_owners == {"r2"}
            assert "Entering MASTER" not in da.log()
            db.stop()
            pair.wait_owner(vip, pair.a, 5)
            one_owner(pair)


def preempt_delay() -> None:
    """A higher-priority fastka with preempt_delay 1.5 waits that long before preempting."""
    with Rig() as rig:
        pair = two("fastka", 150, "keepalived", 100, rig, extra_a="    preempt_delay 1.5")
        with explain(pair):
            vip = V3.vip(100)
            pair.sample(vip)
            pair.b.start(rig)
            pair.wait_owner(vip, pair.b)
            # Measured from before the start: a lower bound that a slow log reader cannot shrink.
            t = time.monotonic()
            da = pair.a.start(rig)
            da.wait_state("BACKUP", instance="VI_1")
            took = pair.owned_after(vip, pair.a, t, 10)
            assert took > 1.5, f"preempted {took:.2f} s after start despite preempt_delay 1.5"
            one_owner(pair)


def equal_priorities(fastka_host: int) -> Callable[[], None]:
    def run() -> None:
        """Equal priorities, both MASTER (the segment was cut while they started): once they
        hear each other the higher primary address wins, whichever side fastka is on.
        (A BACKUP accepts an equal-priority master whatever its address, as Keepalived.)"""
        with Rig() as rig:
            kinds = ("fastka", "keepalived") if fastka_host == 11 else ("keepalived", "fastka")
            pair = two(kinds[0], 100, kinds[1], 100, rig)
            with explain(pair):
                vip = V3.vip(100)
                # the bridge stops forwarding multicast between them: carrier stays up
                for port in pair.lan.ports:
                    pair.lan.ip("link", "set", "dev", port.peer, "type", "bridge_slave", "mcast_flood", "off")
                da = pair.a.start(rig)
                db = pair.b.start(rig)
                da.wait_state("MASTER", instance="VI_1")
                db.wait_state("MASTER", instance="VI_1")
                pair.sample(vip)
                for port in pair.lan.ports:
                    pair.lan.ip("link", "set", "dev", port.peer, "type", "bridge_slave", "mcast_flood", "on")
                pair.wait_owner(vip, pair.b, 5)  # 10.99.0.12 > 10.99.0.11
                time.sleep(10 * ADV)
                assert pair.samplers[vip].timeline.final_owners == {"r2"}
                pair.stop_samplers()

    return run


def address_owner() -> None:
    """Priority 255: fastka is MASTER at once (no BACKUP phase) and Keepalived yields;
    then Keepalived as owner and fastka as its backup."""
    with Rig() as rig:
        pair = two("fastka", 255, "keepalived", 100, rig)
        with explain(pair):
            vip = V3.vip(100)
            pair.sample(vip)
            pair.b.start(rig)
            pair.wait_owner(vip, pair.b)
            da = pair.a.start(rig)
            pair.wait_owner(vip, pair.a)
            # the VIPs come before the log line (failover first): wait for the line
            da.wait_log(r"\(VI_1\) Entering MASTER STATE \(address owner", timeout=5)
            log = da.log()
            assert "(VI_1) Entering BACKUP STATE" not in log
            one_owner(pair)
    with Rig() as rig:
        pair = two("fastka", 100, "keepalived", 255, rig)
        with explain(pair):
            vip = V3.vip(100)
            pair.sample(vip)
            da = pair.a.start(rig)
            pair.b.start(rig)
            pair.wait_owner(vip, pair.b)
            time.sleep(10 * ADV)
            assert pair.samplers[vip].timeline.final_owners == {"r2"}
            one_owner(pair)


def sync_group_fault() -> None:
    """A sync group of two instances on two links: one link down faults both (the peer
    takes both VIPs), the link back brings both back."""
    with Rig() as rig:
        group = "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}"
        insts_a = [Inst("VI_1", 51, 150, [100]), Inst("VI_2", 52, 150, [100], "    interface eth1")]
        insts_b = [Inst("VI_1", 51, 100, [100]), Inst("VI_2", 52, 100, [100], "    interface eth1")]
        a = config(V3, 11, 12, insts_a, tail=group)
        b = config(V3, 12, 11, insts_b, tail=group)
        # VI_2's VIP lives on the second segment
        a = a.replace(
            "10.99.0.100/24\n    }\n    interface eth1", "10.98.0.100/24\n    }\n    interface eth1"
        )
        b = b.replace(
            "10.99.0.100/24\n    }\n    interface eth1", "10.98.0.100/24\n    }\n    interface eth1"
        )
        a = a.replace("    interface eth0\n    virtual_router_id 52", "    virtual_router_id 52")
        b = b.replace("    interface eth0\n    virtual_router_id 52", "    virtual_router_id 52")
        pair = make_pair(rig, "fastka", "keepalived", a, b)
        lan2 = rig.bridge("lan2", net=98)
        port_a = rig.connect(
            pair.a.ns, lan2, ifname="eth1", mac=lan2.mac(11), ipv4=lan2.ipv4(11), ipv6=lan2.ipv6(11)
        )
        rig.connect(pair.b.ns, lan2, ifname="eth1", mac=lan2.mac(12), ipv4=lan2.ipv4(12), ipv6=lan2.ipv6(12))
        with explain(pair):
            v1, v2 = "10.99.0.100", "10.98.0.100"
            pair.sample(v1, v2)
            da = pair.a.start(rig)
            pair.b.start(rig)
            pair.wait_owner(v1, pair.a)
            pair.wait_owner(v2, pair.a)
            mark = da.mark()
            port_a.down()
            da.wait_log(r"VRRP_Group\(G\) Syncing instances to FAULT state", since=mark)
            pair.wait_owner(v1, pair.b, 5)  # eth0 is fine, but the group is in FAULT
            pair.wait_owner(v2, pair.b, 5)
            port_a.up()
            pair.wait_owner(v1, pair.a, 5)
            pair.wait_owner(v2, pair.a, 5)
            one_owner(pair)


def track_script_weight() -> None:
    """A failing vrrp_script with weight -60 drops fastka (150) below Keepalived (100):
    mastership moves; the script recovers and fastka preempts back."""
    with Rig() as rig:
        flag = rig.tmp / "down"
        script = (
            "vrrp_script chk {\n"
            f'    script "/usr/bin/test ! -e {flag}"\n'
            "    interval 1\n    weight -60\n    rise 1\n    fall 1\n}"
        )
        a = config(V3, 11, 12, [Inst("VI_1", 51, 150, [100], "    track_script {\n        chk\n    }")],
                   global_extra="    enable_script_security\n    script_user root", tail=script)  # fmt: skip
        b = config(V3, 12, 11, [Inst("VI_1", 51, 100, [100])])
        pair = make_pair(rig, "fastka", "keepalived", a, b)
        with explain(pair):
            vip = V3.vip(100)
            pair.sample(vip)
            da = pair.a.start(rig)
            pair.b.start(rig)
            pair.wait_owner(vip, pair.a)
            flag.write_text("")
            da.wait_log(r"Changing effective priority from 150 to 90")
            pair.wait_owner(vip, pair.b, 5)
            flag.unlink()
            da.wait_log(r"Changing effective priority from 90 to 150")
            pair.wait_owner(vip, pair.a, 5)
            one_owner(pair)


def missing_interface() -> None:
    """The instance's interface does not exist at start-up: reported, FAULT until it
    appears, then BACKUP and (alone) MASTER on it."""
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        conf = config(V3, 11, 12, [Inst("VI_1", 51, 150, [100])]).replace("interface eth0", "interface eth7")
        da = rig.fastka(r1, conf)
        da.wait_log(r"interface eth7 does not exist")
        da.wait_log(r"\(VI_1\) Entering FAULT STATE")
        rig.connect(r1, lan, ifname="eth7", ipv4="10.99.0.21/24")
        da.wait_state("MASTER", instance="VI_1")
        wait_for(lambda: "10.99.0.100" in {str(a.ip) for a in r1.addresses("eth7")}, 5, "VIP on eth7")


def vmac_and_plain_command_line() -> None:
    """use_vmac: adverts from 00:00:5e:00:01:VRID on a macvlan, the VIP on it, Keepalived
    as backup accepting them. fastka runs with Keepalived's command line without -P:
    a parent and a VRRP child whose pid is in the -r file; SIGTERM stops both cleanly
    and the VMAC is gone."""
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        r2 = rig.router("r2", lan, host=12)
        a = config(V3, 11, 12, [Inst("VI_1", 51, 150, [100], "    use_vmac")])
        b = config(V3, 12, 11, [Inst("VI_1", 51, 100, [100])])
        work = rig.tmp / "plain"
        work.mkdir()
        (work / "k.conf").write_text(a)
        import sys

        argv = [sys.executable, "-m", "fastka", "-n", "-l", "-D", "-G", "-f", str(work / "k.conf"),
                "-p", str(work / "main.pid"), "-r", str(work / "vrrp.pid"), "-c", str(work / "check.pid")]  # fmt: skip
        cap = rig.capture(lan)
        proc = r1.popen(argv)
        kb = rig.keepalived(r2, b)
        try:
            proc.wait_log(r"\(VI_1\) Entering MASTER STATE", timeout=20)
            wait_for(
                lambda: kb.log().rfind("Entering BACKUP") > kb.log().rfind("Entering MASTER"),
                5,
                "peer BACKUP",
            )
            mark = kb.mark()
            wait_for(lambda: (work / "vrrp.pid").exists(), 5, "vrrp pid file")
            parent = int((work / "main.pid").read_text())
            child = int((work / "vrrp.pid").read_text())
            assert parent == proc.pid or parent in proc.group_members()
            assert child != parent and child in proc.group_members()
            assert not (work / "check.pid").exists()  # no virtual_server: no checker child
            link = r1.link("vrrp.51")
            assert link.mac == "00:00:5e:00:01:33"
            wait_for(
                lambda: "10.99.0.100" in {str(x.ip) for x in r1.addresses("vrrp.51")}, 5, "VIP on the VMAC"
            )
            frames = cap.wait(lambda f: f.is_vrrp and f.src_mac == "00:00:5e:00:01:33", count=3)
            assert frames
            time.sleep(5 * ADV)
            assert "Entering MASTER" not in kb.log()[mark:]  # it follows our adverts
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            assert "vrrp.51" not in r1.links()
            assert not (work / "main.pid").exists() and not (work / "vrrp.pid").exists()
        except BaseException as exc:
            raise AssertionError(f"{exc}\n{proc.log()[-5000:]}") from exc


def reload_keeps_state() -> None:
    """SIGHUP with a new configuration: a surviving MASTER stays MASTER (no election, the
    peer never takes over) and gains its new VIP; a removed instance releases its VIP."""
    with Rig() as rig:
        a = config(V3, 11, 12, [Inst("VI_1", 51, 150, [100]), Inst("VI_2", 52, 150, [110])])
        b = config(V3, 12, 11, [Inst("VI_1", 51, 100, [100])])
        pair = make_pair(rig, "fastka", "keepalived", a, b)
        with explain(pair):
            pair.sample("10.99.0.100")
            da = pair.a.start(rig)
            db = pair.b.start(rig)
            pair.wait_owner("10.99.0.100", pair.a)
            da.wait_state("MASTER", instance="VI_2")
            time.sleep(5 * ADV)
            # the new address goes to virtual_ipaddress_excluded: not advertised, so the
            # peer (Keepalived 2.2.7 refuses a different address list) needs no change
            evip = "    virtual_ipaddress_excluded {\n        10.99.0.101/24\n    }"
            da.config_path.write_text(config(V3, 11, 12, [Inst("VI_1", 51, 150, [100], evip)]))
            mark_a, mark_b = da.mark(), db.mark()
            da.send_signal(signal.SIGHUP)
            da.wait_log("Reload finished", since=mark_a)
            r1 = pair.a.ns
            wait_for(lambda: r1.has_address("10.99.0.101") and not r1.has_address("10.99.0.110"), 5, "VIPs")
            time.sleep(10 * ADV)
            assert "Entering BACKUP" not in da.log()[mark_a:]
            assert "Entering MASTER" not in db.log()[mark_b:]
            one_owner(pair)


def child_restart_resumes_master() -> None:
    """The VRRP child of a MASTER is killed: the parent restarts it at once and it resumes
    as MASTER (its VIPs never left) before the peer's master-down timer runs out."""
    import os

    v = Variant("v3-1s", advert_int=1.0)
    with Rig() as rig:
        a = config(v, 11, 12, [Inst("VI_1", 51, 150, [100])])
        b = config(v, 12, 11, [Inst("VI_1", 51, 100, [100])])
        pair = make_pair(rig, "fastka", "keepalived", a, b)
        with explain(pair):
            pair.sample("10.99.0.100")
            da = pair.a.start(rig)
            db = pair.b.start(rig)
            pair.wait_owner("10.99.0.100", pair.a, 20)
            time.sleep(2 * v.advert_int)
            mark_a, mark_b = da.mark(), db.mark()
            os.kill(da.vrrp_pid(), signal.SIGKILL)
            da.wait_log(r"\(VI_1\) Entering MASTER STATE \(resumed as MASTER\)", since=mark_a, timeout=20)
            time.sleep(v.master_down)
            assert "Entering MASTER" not in db.log()[mark_b:], "the peer took over"
            assert "Entering BACKUP" not in da.log()[mark_a:]
            one_owner(pair)
            # the VIPs the first child added are the new child's: released at stop
            assert da.stop() == 0
            assert not pair.a.ns.has_address("10.99.0.100")


def routes_rules_and_garp_timing() -> None:
    """A MASTER's virtual routes and rules are in the kernel while it is MASTER and gone
    when it stops; its GARPs follow garp_master_repeat, garp_master_delay and
    garp_master_refresh (+ _repeat)."""
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        extra = (
            "    garp_master_repeat 3\n    garp_master_delay 1\n"
            "    garp_master_refresh 2\n    garp_master_refresh_repeat 2\n"
            "    virtual_routes {\n        10.55.0.0/24 dev eth0\n    }\n"
            "    virtual_rules {\n        from 10.99.0.100 table 100\n    }"
        )
        conf = config(V3, 11, 12, [Inst("VI_1", 51, 150, [100], extra)])
        cap = rig.capture(lan)
        da = rig.fastka(r1, conf)
        try:
            da.wait_state("MASTER", instance="VI_1", timeout=20)
            assert "10.55.0.0/24" in r1.ip("route", "show", "10.55.0.0/24")
            assert "from 10.99.0.100 lookup 100" in r1.ip("rule", "show")
            time.sleep(3.5)
            garps = [f.t for f in cap.stop() if f.is_garp]
            t0 = garps[0]
            bursts = [
                sum(1 for t in garps if lo <= t - t0 < hi) for lo, hi in ((0, 0.5), (0.5, 1.5), (1.5, 2.5))
            ]
            assert bursts == [3, 3, 2], (bursts, [round(t - t0, 3) for t in garps])
            da.stop()
            assert r1.ip("route", "show", "10.55.0.0/24").strip() == ""
            assert "lookup 100" not in r1.ip("rule", "show")
        except BaseException as exc:
            raise AssertionError(f"{exc}\n{da.log()[-3000:]}") from exc


# ------------------------------------------------------------------------- tests


def test_link_nopreempt_preempt_delay_equal() -> None:
    parallel(link_down_and_carrier, nopreempt, preempt_delay, equal_priorities(11), equal_priorities(12))


def test_owner_sync_group_track_script() -> None:
    parallel(address_owner, sync_group_fault, track_script_weight, routes_rules_and_garp_timing)


def test_missing_interface_vmac_command_line_reload(tmp_path: Path) -> None:
    parallel(missing_interface, vmac_and_plain_command_line, reload_keeps_state, child_restart_resumes_master)
