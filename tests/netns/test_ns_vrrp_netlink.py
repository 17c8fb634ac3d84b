"""fastka.vrrp.netlink in a router namespace: VIPs, routes, rules, queries, VMACs and the
netlink reflector against the real kernel -- and the kernel state Keepalived 2.2.7 leaves
for the same configuration is reproduced exactly."""

from __future__ import annotations

import json
import socket
import time
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface, ip_network
from typing import Any

import pytest
from rig import Lan, Netns

from fastka.config.model import Family, IpAddress, Nexthop, Route, Rule, Vmac
from fastka.errors import NetlinkOpError
from fastka.vrrp.netlink import (
    AddressEventKind,
    LinkEventKind,
    Netlink,
    Overrun,
    RtnlEvent,
    RtnlMonitor,
    vmac_mac,
    vmac_name,
)

pytestmark = [pytest.mark.root, pytest.mark.netns]


def vip(text: str, **kw: Any) -> IpAddress:
    kw.setdefault("dev", "eth0")
    return IpAddress(address=ip_interface(text), **kw)


def addr_json(ns: Netns, dev: str = "eth0") -> dict[str, dict[str, Any]]:
    (link,) = json.loads(ns.ip("-j", "addr", "show", "dev", dev))
    return {f"{a['local']}/{a['prefixlen']}": a for a in link["addr_info"]}


def netlink(ns: Netns) -> Any:
    """A Netlink object living in ``ns`` (its calls, and its /proc/sys writes, run there)."""
    return ns.proxy(Netlink)


# --------------------------------------------------------------------------- addresses


def test_ipv4_vips_with_label_brd_scope_idempotent(lan: Lan) -> None:
    nl = netlink(lan.r1)
    assert nl.add_address(vip("10.99.0.100/24", label="eth0:vip"))
    assert not nl.add_address(vip("10.99.0.100/24", label="eth0:vip"))  # already there: fine
    # a secondary must have its primary's scope (kernel rule): a subnet of its own
    assert nl.add_address(vip("10.98.0.101/24", scope="link", broadcast_mode="+"))
    assert nl.add_address(vip("10.99.0.102/24", broadcast=IPv4Address("10.99.0.250")))
    assert nl.add_address(vip("10.99.0.103/32", scope="host"), ifindex=lan.r1.ifindex("eth0"))
    a = addr_json(lan.r1)
    assert a["10.99.0.100/24"]["label"] == "eth0:vip" and a["10.99.0.100/24"].get("secondary")
    assert a["10.98.0.101/24"]["scope"] == "link" and a["10.98.0.101/24"]["broadcast"] == "10.98.0.255"
    assert a["10.99.0.102/24"]["broadcast"] == "10.99.0.250"
    assert a["10.99.0.103/32"]["scope"] == "host"
    assert nl.source_addresses()[lan.r1.ifindex("eth0")][0] == IPv4Address("10.99.0.11")
    assert nl.has_address(ip_address("10.99.0.100"))
    assert nl.del_address(vip("10.99.0.100/24"))
    assert not nl.del_address(vip("10.99.0.100/24"))  # already gone: fine
    assert "10.99.0.100/24" not in addr_json(lan.r1)
    assert not nl.del_address(vip("10.99.0.100/24", dev="nosuchdev"))
    assert lan.r2.ping("10.99.0.102")  # a VIP answers


def test_ipv6_vips_nodad_and_deprecated_host_routes(lan: Lan) -> None:
    nl = netlink(lan.r1)
    assert nl.add_address(vip("fd99::100/64"))
    assert nl.add_address(vip("fd99::101/128"))
    assert nl.add_address(vip("fd99::102/128", preferred_lft=0xFFFFFFFF))
    assert nl.add_address(vip("fd99::103/64", noprefixroute=True))
    a = addr_json(lan.r1)
    assert a["fd99::100/64"]["nodad"] and a["fd99::100/64"]["preferred_life_time"] == 0xFFFFFFFF
    assert a["fd99::101/128"]["preferred_life_time"] == 0 and a["fd99::101/128"].get("deprecated")
    assert a["fd99::102/128"]["preferred_life_time"] == 0xFFFFFFFF
    assert a["fd99::103/64"].get("noprefixroute")
    assert not any(a[k].get("tentative") for k in a)  # usable at once
    assert lan.r2.ping("fd99::100")
    assert nl.del_address(vip("fd99::101/128")) and not nl.del_address(vip("fd99::101/128"))


def test_peer_address(lan: Lan) -> None:
    nl = netlink(lan.r1)
    nl.add_address(vip("10.77.0.1/32", peer=ip_interface("10.77.0.2/32")))
    a = addr_json(lan.r1)
    assert a["10.77.0.1/32"]["address"] == "10.77.0.2"
    assert nl.del_address(vip("10.77.0.1/32", peer=ip_interface("10.77.0.2/32")))


def test_errors_name_the_operation(lan: Lan) -> None:
    nl = netlink(lan.r1)
    with pytest.raises(NetlinkOpError) as e:
        nl.add_address(vip("10.99.0.100/24", dev="nosuchdev"))
    assert e.value.errno == 19  # ENODEV
    with pytest.raises(NetlinkOpError) as e:
        nl.add_route(Route(dst=ip_network("10.50.0.0/24"), via=ip_address("10.200.0.1"), dev="eth0"))
    assert e.value.errno == 101 and "add route 10.50.0.0/24" in str(e.value)  # ENETUNREACH


# --------------------------------------------------------------------------- queries


def test_interface_queries(lan: Lan) -> None:
    nl = netlink(lan.r1)
    eth0 = nl.link("eth0")
    assert eth0.ifindex == lan.r1.ifindex("eth0") == nl.ifindex("eth0")
    assert eth0.mac == "02:99:00:00:00:11" and eth0.up and eth0.kind == "veth" and not eth0.noarp
    assert nl.link(eth0.ifindex).ifname == "eth0"
    assert nl.source_addresses()[eth0.ifindex][1] == IPv6Address("fe80::99:ff:fe00:11")
    assert nl.source_addresses()[nl.ifindex("lo")][0] == IPv4Address("127.0.0.1")
    assert {"lo", "eth0"} <= {li.ifname for li in nl.links()}
    with pytest.raises(NetlinkOpError) as e:
        nl.link("nosuchdev")
    assert e.value.errno == 19
    assert not nl.forwarding("eth0")
    lan.r1.sysctl("net.ipv6.conf.eth0.forwarding", 1)
    assert nl.forwarding("eth0")
    lan.lan.ports[0].down()
    assert not nl.link("eth0").up


# --------------------------------------------------------------------------- routes and rules


def test_routes(lan: Lan) -> None:
    nl = netlink(lan.r1)
    via = Route(dst=ip_network("10.50.0.0/24"), via=ip_address("10.99.0.1"), dev="eth0")
    assert nl.add_route(via) and not nl.add_route(via)
    black = Route(dst=ip_network("10.51.0.0/24"), type="blackhole")
    table = Route(
        dst=ip_network("10.52.0.0/24"), dev="eth0", table=1000, metric=5, src=ip_address("10.99.0.11")
    )
    multi = Route(
        dst=ip_network("10.53.0.0/24"),
        nexthops=[
            Nexthop(via=ip_address("10.99.0.1"), dev="eth0", weight=2),
            Nexthop(via=ip_address("10.99.0.2"), dev="eth0"),
        ],
    )
    mtu = Route(dst=ip_network("10.54.0.0/24"), dev="eth0", options={"mtu": "lock 1400", "initcwnd": "10"})
    v6 = Route(dst=ip_network("fd50::/64"), via=ip_address("fd99::1"), dev="eth0")
    default = Route(dst=ip_network("0.0.0.0/0"), via=ip_address("10.99.0.1"), table=1001, protocol="static")
    for r in (black, table, multi, mtu, v6, default):
        assert nl.add_route(r), r
    shown = lan.r1.ip("route", "show", "table", "all") + lan.r1.ip("-6", "route", "show", "table", "all")
    for line in (
        "10.50.0.0/24 via 10.99.0.1 dev eth0 proto keepalived",
        "blackhole 10.51.0.0/24 proto keepalived",
        # no "scope link" for device routes: Keepalived leaves the scope at global too
        "10.52.0.0/24 dev eth0 table 1000 proto keepalived src 10.99.0.11 metric 5",
        "10.54.0.0/24 dev eth0 proto keepalived mtu lock 1400 initcwnd 10",
        "fd50::/64 via fd99::1 dev eth0 proto keepalived metric 1024 pref medium",
        "default via 10.99.0.1 dev eth0 table 1001 proto static",
    ):
        assert line in shown, f"{line!r} not in:\n{shown}"
    assert (
        "nexthop via 10.99.0.1 dev eth0 weight 2" in shown
        and "nexthop via 10.99.0.2 dev eth0 weight 1" in shown
    )
    for r in (via, black, table, multi, mtu, v6, default):
        assert nl.del_route(r), r
        assert not nl.del_route(r), r
    assert "proto keepalived" not in lan.r1.ip("route", "show", "table", "all")


def test_rules(lan: Lan) -> None:
    nl = netlink(lan.r1)
    rules = [
        Rule(from_prefix=ip_network("10.99.0.100/32"), table=100, preference=100),
        Rule(to_prefix=ip_network("10.60.0.0/16"), fwmark=5, fwmask=0xFF, table=100, preference=101),
        Rule(family=Family.INET6, from_prefix=ip_network("fd99::100/128"), table=100, preference=102),
        Rule(iif="eth0", type="blackhole", preference=103),
        Rule(
            from_prefix=ip_network("10.61.0.0/16"),
            invert=True,
            table=2000,
            preference=104,
            uidrange=(1000, 2000),
        ),
        Rule(ipproto="tcp", dport=(80, 80), table=100, preference=105),
    ]
    for r in rules:
        assert nl.add_rule(r), r
        assert not nl.add_rule(r), r
    shown = lan.r1.ip("rule") + lan.r1.ip("-6", "rule")
    for line in (
        "100:\tfrom 10.99.0.100 lookup 100 proto keepalived",
        "101:\tfrom all to 10.60.0.0/16 fwmark 0x5/0xff lookup 100 proto keepalived",
        "102:\tfrom fd99::100 lookup 100 proto keepalived",
        "103:\tfrom all iif eth0 blackhole proto keepalived",
        "104:\tnot from 10.61.0.0/16 uidrange 1000-2000 lookup 2000 proto keepalived",
        "105:\tfrom all ipproto tcp dport 80 lookup 100 proto keepalived",
    ):
        assert line in shown, f"{line!r} not in:\n{shown}"
    for r in rules:
        assert nl.del_rule(r) and not nl.del_rule(r)
    assert "keepalived" not in lan.r1.ip("rule")


# --------------------------------------------------------------------------- VMAC


def test_vmac_lifecycle(lan: Lan) -> None:
    r1 = lan.r1
    nl = netlink(r1)
    r1.sysctl("net.ipv4.conf.all.rp_filter", 2)
    r1.sysctl("net.ipv4.conf.eth0.rp_filter", 0)
    vm = Vmac(ifname=vmac_name(51), mac=vmac_mac(51))
    assert (vm.ifname, vm.mac) == ("vrrp.51", "00:00:5e:00:01:33")
    info = nl.add_vmac(vm, "eth0")
    assert info.kind == "macvlan" and info.macvlan_mode == "private" and info.up
    assert info.mac == "00:00:5e:00:01:33" and info.link == r1.ifindex("eth0")
    assert nl.add_vmac(vm, "eth0").ifindex == info.ifindex  # adopted, not duplicated

    def conf(dev: str, key: str) -> str:
        return r1.sysctl(f"net/ipv4/conf/{dev}/{key}")

    assert [conf("vrrp.51", k) for k in ("arp_ignore", "accept_local", "rp_filter")] == ["1", "1", "0"]
    assert [conf("eth0", k) for k in ("arp_ignore", "arp_filter")] == ["1", "1"]
    # as Keepalived 2.2.7: an IPv4 VMAC has no IPv6 (no link-local, no MLD from the virtual MAC)
    assert [r1.sysctl(f"net/ipv6/conf/vrrp.51/{k}") for k in ("addr_gen_mode", "disable_ipv6")] == ["1", "1"]
    assert r1.addresses("vrrp.51") == []
    # all.rp_filter lowered so the VMAC's 0 counts; eth0 keeps its effective (old all) value
    assert conf("all", "rp_filter") == "0" and conf("eth0", "rp_filter") == "2"

    # a VIP on the VMAC answers ARP with the virtual MAC (eth0, arp_ignore=1, stays quiet)
    assert nl.add_address(vip("10.99.0.100/24", dev="vrrp.51"))
    cap = lan.rig.capture(lan.lan)
    assert lan.r2.ping("10.99.0.100")
    replies = cap.wait(
        lambda f: f.ethertype == 0x0806 and f.data[21] == 2 and f.data[28:32] == bytes([10, 99, 0, 100])
    )
    assert {f.data[22:28] for f in replies} == {bytes.fromhex("00005e000133")}

    with pytest.raises(NetlinkOpError):  # the name is taken by something else
        nl.add_vmac(Vmac(ifname="eth0", mac=vmac_mac(52)), "eth0")
    with pytest.raises(NetlinkOpError):
        nl.del_vmac("eth0")  # never deletes what is not a macvlan
    assert nl.del_vmac("vrrp.51") and not nl.del_vmac("vrrp.51")
    nl.restore_sysctls()
    assert conf("all", "rp_filter") == "2" and conf("eth0", "rp_filter") == "0"
    assert [conf("eth0", k) for k in ("arp_ignore", "arp_filter")] == ["0", "0"]


def test_ipv6_vmac_link_local(lan: Lan) -> None:
    nl = netlink(lan.r1)
    info = nl.add_vmac(
        Vmac(ifname="vrrp.57", mac=vmac_mac(57, socket.AF_INET6)), "eth0", family=socket.AF_INET6
    )
    assert info.mac == "00:00:5e:00:02:39" and info.up
    # no kernel-generated EUI-64 (it would collide in DAD with the other routers' VMACs):
    # exactly the one link-local given, without DAD
    (ll,) = lan.r1.addresses("vrrp.57")
    assert ll.address == ip_interface("fe80::200:5eff:fe00:239/64") and ll.flags & 0x02  # IFA_F_NODAD
    assert nl.source_addresses()[info.ifindex][1] == IPv6Address("fe80::200:5eff:fe00:239")
    # Keepalived 2.2.7's choice, the parent's link-local, can be asked for
    parent_ll = lan.r2.link_local("eth0")
    nl2 = netlink(lan.r2)
    info2 = nl2.add_vmac(
        Vmac(ifname="vrrp.57", mac=vmac_mac(57, socket.AF_INET6)),
        "eth0",
        family=socket.AF_INET6,
        link_local=parent_ll,
    )
    assert nl2.source_addresses()[info2.ifindex][1] == parent_ll


def test_adverts_from_a_vmac_carry_the_virtual_mac(lan: Lan) -> None:
    """Both routers have the VMAC (as Keepalived sets them up); the master sends on it and
    the backup hears the advert on its own VMAC with the same MAC."""
    from fastka.vrrp.sockets import RecvSocket4, SendSocket4, build_ipv4_header

    vm = Vmac(ifname="vrrp.51", mac=vmac_mac(51))
    for ns in (lan.r1, lan.r2):
        netlink(ns).add_vmac(vm, "eth0")
    cap = lan.rig.capture(lan.lan)
    tx = lan.rig.own(lan.r1.call(SendSocket4, "vrrp.51"))
    rx = lan.rig.own(lan.r2.call(RecvSocket4, "vrrp.51"))
    vrrp = bytes.fromhex("2133960100013e030a6300640000000000000000")
    src, grp = socket.inet_aton("10.99.0.11"), socket.inet_aton("224.0.0.18")
    tx.send(build_ipv4_header(src, grp, len(vrrp), ident=1) + vrrp, "224.0.0.18", multicast=True)
    (frame,) = cap.wait(lambda f: f.is_vrrp)
    assert frame.src_mac == "00:00:5e:00:01:33"
    deadline = time.monotonic() + 2
    got = None
    while got is None and time.monotonic() < deadline:
        got = rx.recv()
        time.sleep(0.005)
    assert got is not None and got.data[20:] == vrrp and got.ifindex == lan.r2.ifindex("vrrp.51")


# --------------------------------------------------------------------------- Keepalived's state


KEEPALIVED_CONF = """
global_defs {
    router_id r1
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 255
    advert_int 1
    virtual_ipaddress {
        10.99.0.100/24 label eth0:vip
        10.99.0.102
        10.99.0.103/24 brd 10.99.0.250
    }
    virtual_ipaddress_excluded {
        fd99::100/64
        fd99::101/128
    }
    virtual_routes {
        10.50.0.0/24 via 10.99.0.1 dev eth0
        blackhole 10.51.0.0/24
        10.52.0.0/24 dev eth0 table 100 metric 5
        fd50::/64 via fd99::1 dev eth0
    }
    virtual_rules {
        from 10.99.0.100 table 100 priority 100
        to 10.60.0.0/16 fwmark 5 table 100 priority 101
        from fd99::100 table 100 priority 102
    }
}
"""


def kernel_state(ns: Netns) -> dict[str, Any]:
    def j(*args: str) -> Any:
        return json.loads(ns.ip("-j", *args) or "[]")

    (link,) = j("addr", "show", "dev", "eth0")
    addrs = sorted(link["addr_info"], key=lambda a: (a["family"], a["local"]))
    return {
        "addresses": addrs,
        "routes4": sorted(map(json.dumps, j("-d", "route", "show", "table", "all"))),
        "routes6": sorted(map(json.dumps, j("-d", "-6", "route", "show", "table", "all"))),
        "rules4": j("rule"),
        "rules6": j("-6", "rule"),
    }


def test_same_kernel_state_as_keepalived(lan: Lan) -> None:
    """Keepalived 2.2.7 programs a MASTER's VIPs, eVIPs, routes and rules; fastka, given the
    same configuration (compiled by fastka.config), leaves the kernel in the same state."""
    from fastka.config.compile import loads

    r1 = lan.r1
    baseline = kernel_state(r1)
    k = lan.rig.keepalived(r1, KEEPALIVED_CONF)
    k.wait_state("MASTER")
    k.wait_log("setting Virtual Rules")
    time.sleep(0.2)
    theirs = kernel_state(r1)
    lan.rig.crash(k, release=False)  # SIGKILL: what it programmed stays in place
    assert kernel_state(r1) == theirs

    config, _diag = loads(KEEPALIVED_CONF)
    (inst,) = list(config.vrrp_instances.values())
    nl = netlink(r1)
    vips = inst.virtual_ipaddress + inst.virtual_ipaddress_excluded
    for r in inst.virtual_rules:
        assert nl.del_rule(r)
    for rt in inst.virtual_routes:
        assert nl.del_route(rt)
    for a in vips:
        assert nl.del_address(a)
    assert kernel_state(r1) == baseline  # removal undid exactly what Keepalived did

    for a in vips:
        assert nl.add_address(a)
    for rt in inst.virtual_routes:
        assert nl.add_route(rt)
    for r in inst.virtual_rules:
        assert nl.add_rule(r)
    ours = kernel_state(r1)
    for key in theirs:
        assert ours[key] == theirs[key], key


# --------------------------------------------------------------------------- the reflector


def collect(monitor: Any, want: int, timeout: float = 3.0) -> list[RtnlEvent]:
    events: list[RtnlEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < want and time.monotonic() < deadline:
        events += monitor.read()
        time.sleep(0.005)
    return events


def test_monitor_reports_links_and_addresses(lan: Lan) -> None:
    r1 = lan.r1
    mon = r1.proxy(RtnlMonitor)
    eth0 = r1.ifindex("eth0")
    assert mon.target.link_name(eth0) == "eth0"
    assert (eth0, ip_interface("10.99.0.11/24")) in mon.target.addresses
    assert mon.read() == []

    r1.ip("addr", "add", "10.99.0.100/24", "dev", "eth0")
    (ev,) = collect(mon, 1)
    assert (
        ev.kind is AddressEventKind.ADDED
        and ev.ifindex == eth0
        and ev.address == ip_interface("10.99.0.100/24")
    )  # type: ignore[union-attr]
    r1.ip("addr", "del", "10.99.0.100/24", "dev", "eth0")
    (ev,) = collect(mon, 1)
    assert ev.kind is AddressEventKind.REMOVED  # type: ignore[union-attr]

    lan.lan.ports[0].unplug()  # carrier lost: still IFF_UP, but down for VRRP
    events = collect(mon, 1)
    downs = [e for e in events if getattr(e, "kind", None) is LinkEventKind.DOWN]
    assert downs and downs[0].ifindex == eth0 and downs[0].ifname == "eth0"  # type: ignore[union-attr]
    lan.lan.ports[0].plug()
    ups = [e for e in collect(mon, 1) if getattr(e, "kind", None) is LinkEventKind.UP]
    assert ups and ups[0].ifindex == eth0  # type: ignore[union-attr]

    r1.ip("link", "add", "vx0", "type", "veth", "peer", "name", "vx1")
    added = [e for e in collect(mon, 2) if getattr(e, "kind", None) is LinkEventKind.ADDED]
    assert {e.ifname for e in added} == {"vx0", "vx1"}  # type: ignore[union-attr]
    r1.ip("link", "set", "vx0", "name", "vx9")
    changed = [e for e in collect(mon, 1) if getattr(e, "kind", None) is LinkEventKind.CHANGED]
    assert changed and changed[0].ifname == "vx9"  # type: ignore[union-attr]
    r1.ip("link", "del", "vx9")
    deleted = [e for e in collect(mon, 2) if getattr(e, "kind", None) is LinkEventKind.DELETED]
    assert {e.ifname for e in deleted} == {"vx9", "vx1"}  # type: ignore[union-attr]


def test_monitor_on_the_event_loop(lan: Lan) -> None:
    from fastka.loop import Loop

    r1 = lan.r1
    mon = r1.proxy(RtnlMonitor)
    loop = Loop()
    got: list[RtnlEvent] = []
    try:
        mon.target.attach(loop, got.append)
        r1.ip("addr", "add", "fd99::100/64", "dev", "eth0", "nodad")
        deadline = time.monotonic() + 3
        while not got and time.monotonic() < deadline:
            loop.run_once(0.05)
        mon.target.detach()
    finally:
        loop.close()
    assert [(e.kind, e.address) for e in got] == [(AddressEventKind.ADDED, ip_interface("fd99::100/64"))]  # type: ignore[union-attr]


def test_monitor_overrun_resyncs(lan: Lan) -> None:
    r1 = lan.r1
    mon = r1.proxy(RtnlMonitor, rcvbuf=1024)
    r1.ip_batch([f"addr add 10.99.1.{i}/32 dev eth0" for i in range(1, 200)])
    events = mon.read()
    assert isinstance(events[0], Overrun)
    added = {e.address for e in events if getattr(e, "kind", None) is AddressEventKind.ADDED}  # type: ignore[union-attr]
    assert len(added) == 199  # every change arrives once, whether read or re-synced
    assert {a for _, a in mon.target.addresses} >= {ip_interface(f"10.99.1.{i}/32") for i in range(1, 200)}
    assert mon.target.overruns == 1
