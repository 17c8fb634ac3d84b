"""The rig works: namespaces talk over the bridge, cleanup is complete, Keepalived runs in it,
the capture and the VIP sampler see what happens."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import time

import pytest
from rig import (
    PREFIX,
    Frame,
    Lan,
    Rig,
    Sample,
    Timeline,
    remove_stale_namespaces,
    require_tool,
    rig_namespaces,
)

pytestmark = [pytest.mark.root, pytest.mark.netns]


def keepalived_conf(router_id: str, priority: int, *, vrid: int = 51, vip: str = "10.99.0.100/24") -> str:
    # VRRPv3 at 100 ms adverts so elections and failovers take a fraction of a second
    return f"""
global_defs {{
    router_id {router_id}
    vrrp_version 3
}}
vrrp_instance VI_{vrid} {{
    state BACKUP
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    advert_int 0.1
    virtual_ipaddress {{
        {vip}
    }}
}}
"""


def test_two_namespaces_ping_over_the_bridge(lan: Lan) -> None:
    r1, r2 = lan.r1, lan.r2
    # the golden identities: MAC, IPv4, IPv6 and the EUI-64 link-local derived from the MAC
    assert r1.link("eth0").mac == "02:99:00:00:00:11"
    addrs = {str(a.address) for a in r1.addresses("eth0")}
    assert {"10.99.0.11/24", "fd99::11/64", "fe80::99:ff:fe00:11/64"} <= addrs
    assert r2.link_local("eth0") == ipaddress.IPv6Address("fe80::99:ff:fe00:12")
    assert r1.ping("10.99.0.12")
    assert r2.ping("fd99::11")
    assert r1.ping("fe80::99:ff:fe00:12%eth0")
    # and nothing leaks to the host: the host has no such address
    assert not any(a.ip == ipaddress.ip_address("10.99.0.11") for a in _host_addresses())


def _host_addresses() -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    import json

    out = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout)
    return [
        ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
        for link in out
        for a in link.get("addr_info", [])
    ]


def test_link_down_up_and_unplug(lan: Lan) -> None:
    r1 = lan.r1
    port = lan.lan.ports[0]
    assert port.ns is r1 and r1.link("eth0").up
    port.down()
    r1.wait_link("eth0", up=False)
    assert not r1.ping("10.99.0.12", timeout=0.3)
    port.up()
    r1.wait_link("eth0")
    port.unplug()  # the bridge side goes down: eth0 stays IFF_UP but loses carrier
    r1.wait_link("eth0", up=False)
    assert r1.link("eth0").flags & 0x1
    port.plug()
    r1.wait_link("eth0")
    assert r1.ping("10.99.0.12")


def test_call_runs_inside_the_namespace(lan: Lan) -> None:
    # interface names and /proc/sys/net resolve in the namespace, not on the host
    assert lan.r1.call(socket.if_nametoindex, "eth0") == lan.r1.ifindex("eth0")
    assert lan.r1.sysctl("net.ipv6.conf.eth0.accept_dad") == "0"
    assert lan.r1.sysctl("net.ipv4.conf.eth0.arp_ignore", 1) == "1"
    assert lan.r2.sysctl("net.ipv4.conf.eth0.arp_ignore") == "0"


def test_capture_sees_traffic_between_ports(lan: Lan) -> None:
    cap = lan.rig.capture(lan.lan)
    assert lan.r1.ping("10.99.0.12", count=2)
    # ICMP echo request r1 -> r2 (unicast between two ports: needs the promiscuous bridge)
    frames = cap.wait(lambda f: f.ip_proto == 1 and f.src_mac == "02:99:00:00:00:11", count=2)
    assert frames[0].data[30:34] == socket.inet_aton("10.99.0.12")
    assert all(f.t <= time.monotonic() for f in frames)
    path = lan.rig.tmp / "ping.pcap"
    cap.write_pcap(path)
    tshark = require_tool("tshark")
    out = subprocess.run([tshark, "-r", str(path), "-Y", "icmp"], capture_output=True, text=True, check=True)
    assert "10.99.0.11" in out.stdout and "10.99.0.12" in out.stdout


def test_processes_run_in_the_namespace_and_stop_by_group(lan: Lan) -> None:
    proc = lan.r1.popen(["sh", "-c", "ip -o link show eth0; sleep 60 & sleep 60; wait"])
    proc.wait_log("eth0")
    assert os.getpgid(proc.pid) == proc.pid  # own process group
    deadline = time.monotonic() + 10
    while len(proc.group_members()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(proc.group_members()) >= 3  # sh and two sleeps
    proc.stop(timeout=2)
    assert not proc.running
    assert proc.group_members() == []


def test_cleanup_leaves_nothing_behind() -> None:
    from rig import require_netns

    require_netns()
    rig = Rig()
    lan = rig.bridge("lan")
    r1 = rig.router("r1", lan, host=11)
    rig.router("r2", lan, host=12)
    proc = r1.popen(["sleep", "60"])
    rig.capture(lan)
    rig.sampler("10.99.0.11", [r1]).start()
    names = [ns.netns for ns in rig.namespaces.values()]
    assert set(names) <= set(rig_namespaces())
    rig.close()
    assert not set(names) & set(rig_namespaces())
    assert not rig.tmp.exists()
    assert proc.popen.returncode is not None  # reaped
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    rig.close()  # idempotent


def test_stale_namespaces_of_dead_runs_are_removed() -> None:
    from rig import require_netns

    require_netns()
    child = subprocess.Popen(["true"])
    child.wait()  # a pid that is now dead
    stale = f"{PREFIX}{child.pid}-1-lan"
    mine = f"{PREFIX}{os.getpid()}-999-lan"
    for name in (stale, mine):
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        removed = remove_stale_namespaces()
        assert stale in removed
        assert mine not in removed
        assert mine in rig_namespaces() and stale not in rig_namespaces()
    finally:
        for name in (stale, mine):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_timeline_analysis() -> None:
    # pure logic, no namespaces: r1, overlap 20 ms, r2, gap, r2
    tl = Timeline("10.0.0.1", 0.01)
    owners = [{"r1"}] * 3 + [{"r1", "r2"}] * 2 + [{"r2"}] * 3 + [set()] * 4 + [{"r2"}]
    tl.samples = [Sample(i * 0.01, frozenset(o)) for i, o in enumerate(owners)]
    assert tl.owners_sequence() == [frozenset(x) for x in ({"r1"}, {"r1", "r2"}, {"r2"}, set(), {"r2"})]
    (ov,) = tl.overlaps()
    assert ov.duration == pytest.approx(0.02)
    (gap,) = tl.gaps()
    assert gap.duration == pytest.approx(0.04)
    tl.assert_one_owner(max_overlap=0.03, max_gap=0.05)
    with pytest.raises(AssertionError, match="together"):
        tl.assert_one_owner(max_overlap=0.01)
    with pytest.raises(AssertionError, match="nobody"):
        tl.assert_one_owner(max_overlap=0.03, max_gap=0.03)
    assert tl.first_time("r2") == pytest.approx(0.03)
    assert tl.owner_at(0.045) == frozenset({"r1", "r2"})
    assert "r1,r2" in str(tl)


def _vrrp_from(mac: str, vrid: int) -> object:
    def pred(f: Frame) -> bool:
        return f.ip_proto == 112 and f.src_mac == mac and f.data[14 + 20 + 1] == vrid

    return pred


def test_keepalived_runs_as_master_in_a_namespace(lan: Lan) -> None:
    rig, r1, r2 = lan.rig, lan.r1, lan.r2
    cap = rig.capture(lan.lan)
    with rig.sampler("10.99.0.100", [r1, r2]) as sampler:
        k1 = rig.keepalived(r1, keepalived_conf("r1", 150))
        k1.wait_state("MASTER")
        t_owner = sampler.wait_owner({"r1"}, timeout=5)
        adverts = cap.wait(_vrrp_from("02:99:00:00:00:11", 51), count=3)  # type: ignore[arg-type]
        assert k1.vrrp_pid() != k1.pid
        assert k1.stop() == 0  # SIGTERM: Keepalived removes the VIP and sends priority 0
        sampler.wait_owner(set(), timeout=5)
    tl = sampler.timeline
    assert tl.owners_sequence()[-2:] == [frozenset({"r1"}), frozenset()]
    assert t_owner >= adverts[0].t - 0.05  # VIP added only after the first advert went out
    prio = [f.data[14 + 20 + 2] for f in cap.select(_vrrp_from("02:99:00:00:00:11", 51))]  # type: ignore[arg-type]
    assert prio[0] == 150 and prio[-1] == 0
    garps = cap.select(lambda f: f.is_garp)
    assert len(garps) >= 5 and all(f.data[28:32] == socket.inet_aton("10.99.0.100") for f in garps)


def test_keepalived_pair_fails_over_when_the_master_is_killed(lan: Lan) -> None:
    rig, r1, r2 = lan.rig, lan.r1, lan.r2
    with rig.sampler("10.99.0.100", [r1, r2]) as sampler:
        k2 = rig.keepalived(r2, keepalived_conf("r2", 100))
        k1 = rig.keepalived(r1, keepalived_conf("r1", 150))
        k1.wait_state("MASTER")
        sampler.wait_owner({"r1"})
        time.sleep(0.3)  # a few adverts of steady state
        mark = k2.mark()
        t_crash = time.monotonic()
        rig.crash(k1)  # SIGKILL of the whole process group; its VIP goes with the "host"
        assert k1.popen.returncode == -signal.SIGKILL
        k2.wait_state("MASTER", since=mark)
        t_r2 = sampler.wait_owner({"r2"})
        time.sleep(0.2)
    tl = sampler.timeline
    why = f"{tl}\n--- r1:\n{k1.log()}\n--- r2:\n{k2.log()}"
    # exactly one owner at every sample, except a gap of about the master-down interval
    # (3 x 100 ms + skew 61 ms = 361 ms): generous bounds, the bench measures precisely
    tl.assert_one_owner(max_overlap=0.1, max_gap=2.0)
    assert tl.final_owners == frozenset({"r2"}), why
    assert frozenset({"r1"}) in tl.owners_sequence(), why
    assert 0.2 < t_r2 - t_crash < 2.0, why
