"""Accept mode (``accept``/``no_accept``) and VMAC IGMP/MLD filtering with nftables.

* A client on the LAN cannot reach the VIP of a no_accept MASTER (ping, TCP connect to a
  service bound on the VIP) but can reach an accept instance's VIP on the same router.
* The nftables ruleset fastka builds equals, object for object and rule for rule, the one
  Keepalived 2.2.7 builds for the same configuration in the same namespace (handles,
  counter values and interface indexes aside).
* Elements come and go with MASTER transitions; nothing is left after SIGTERM.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from typing import Any

import pytest
from rig import Netns, Rig, require_tool
from vrrp_pairs import parallel, wait_for

pytestmark = [pytest.mark.root, pytest.mark.netns]

IP_FREEBIND = 15
IPV6_FREEBIND = 78

CONF = """\
global_defs {{
    router_id r11
    vrrp_version 3
    {globals}
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {prio}
    advert_int 0.1
    no_accept
    virtual_ipaddress {{
        10.99.0.100/24
    }}
    virtual_ipaddress_excluded {{
        10.99.5.5/32
        fd99::5/128
    }}
}}
vrrp_instance VI_2 {{
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority {prio}
    advert_int 0.1
    accept
    virtual_ipaddress {{
        10.99.0.101/24
    }}
}}
vrrp_instance VI_6 {{
    state BACKUP
    interface eth0
    virtual_router_id 53
    priority {prio}
    advert_int 0.1
    no_accept
    virtual_ipaddress {{
        fe80::99/64
        fd99::100/64
    }}
}}
vrrp_instance VI_V {{
    state BACKUP
    interface eth0
    use_vmac
    virtual_router_id 54
    priority {prio}
    advert_int 0.1
    no_accept
    virtual_ipaddress {{
        10.99.0.102/24
    }}
}}
vrrp_instance VI_W {{
    state BACKUP
    interface eth0
    use_vmac
    virtual_router_id 55
    priority {prio}
    advert_int 0.1
    no_accept
    virtual_ipaddress {{
        fe80::55/64
        fd99::102/64
    }}
}}
"""
INSTANCES = ("VI_1", "VI_2", "VI_6", "VI_V", "VI_W")


def ruleset(ns: Netns) -> list[dict[str, Any]]:
    out = ns.exec(["nft", "-j", "list", "ruleset"]).stdout
    return [o for o in json.loads(out)["nftables"] if "metainfo" not in o]


def normalise(objs: list[dict[str, Any]]) -> dict[str, Any]:
    """The ruleset without what differs between two runs: handles, counter values, the
    order of set elements and of tables."""
    tables: dict[str, Any] = {}
    for o in objs:
        kind, body = next(iter(o.items()))
        body = dict(body)
        body.pop("handle", None)
        fam = body.get("family")
        t = tables.setdefault(f"{fam} {body.get('table', body.get('name'))}", {"rules": {}})
        if kind == "rule":
            exprs = json.loads(
                json.dumps(body["expr"]).replace('"packets": ', '"p": ').replace('"bytes": ', '"b": ')
            )
            for e in exprs:
                if "counter" in e:
                    e["counter"] = {}
            t["rules"].setdefault(body["chain"], []).append(exprs)
        elif kind in ("set", "map"):
            elems = body.pop("elem", [])
            body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in elems)
            t[f"{kind} {body['name']}"] = body
        elif kind == "chain":
            t[f"chain {body['name']}"] = body
    return tables


def multicast_reports(frames: list[Any]) -> set[tuple[str, str]]:
    """(kind, source MAC) of the IGMP and MLD (ICMPv6 after a hop-by-hop header) frames."""
    out = set()
    for f in frames:
        if f.ethertype == 0x0800 and f.ip_proto == 2:
            out.add(("igmp", f.src_mac))
        elif f.ethertype == 0x86DD and len(f.data) > 62 and f.data[20] == 0 and f.data[54] == 58:
            out.add(("mld" if f.data[62] in (130, 131, 143) else "icmp6", f.src_mac))
    return out


def elements(ns: Netns, family: str, name: str) -> list[str]:
    for o in ruleset(ns):
        s = o.get("set")
        if s and s["family"] == family and s["name"] == name and s["table"] == "keepalived":
            return sorted(json.dumps(e) for e in s.get("elem", []))
    raise KeyError(f"no set {family} {name}: {ruleset(ns)}")


def listen(ns: Netns, address: str, port: int) -> socket.socket:
    def make() -> socket.socket:
        fam = socket.AF_INET6 if ":" in address else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET:
                s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            else:
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            s.bind((address, port))
            s.listen(8)
        except BaseException:
            s.close()
            raise
        return s

    return ns.call(make)


def connects(ns: Netns, address: str, port: int) -> bool:
    def run() -> bool:
        try:
            socket.create_connection((address, port), timeout=0.7).close()
        except OSError:
            return False
        return True

    return ns.call(run)


def all_master(d: Any, since: int = 0) -> None:
    for name in INSTANCES:
        d.wait_state("MASTER", instance=name, timeout=15, since=since)


def no_accept_like_keepalived() -> None:
    """fastka and Keepalived on the same configuration: the same ruleset; no_accept VIPs
    unreachable from the client, the accept VIP reachable; no table after SIGTERM."""
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        client = rig.router("r2", lan, host=12)
        conf = CONF.format(globals="nftables\n    nftables_counters", prio=150)
        socks = [listen(r1, a, 8080) for a in ("10.99.0.100", "10.99.0.101", "10.99.0.102", "fd99::100")]
        try:
            results: dict[str, Any] = {}
            for kind in ("fastka", "keepalived"):
                cap = rig.capture(lan)
                d = rig.fastka(r1, conf) if kind == "fastka" else rig.keepalived(r1, conf)
                all_master(d)
                time.sleep(0.3)  # the firewall rule follows the transition
                results[kind] = normalise(ruleset(r1))
                reports = multicast_reports(cap.stop())
                # IGMP/MLD reports leave by the base interface, never from a virtual MAC
                assert not [r for r in reports if r[1].startswith("00:00:5e:00:") and r[0] != "icmp6"], (
                    kind,
                    reports,
                )
                assert ("igmp", "02:99:00:00:00:11") in reports, (kind, reports)
                if kind == "fastka":
                    assert not client.ping("10.99.0.100", timeout=0.5), "no_accept VIP answered a ping"
                    assert not client.ping("fd99::100", timeout=0.5), "no_accept IPv6 VIP answered a ping"
                    assert not client.ping("10.99.0.102", timeout=0.5), "no_accept VMAC VIP answered a ping"
                    assert client.ping("10.99.0.101", timeout=2), "accept VIP did not answer"
                    assert not connects(client, "10.99.0.100", 8080)
                    assert not connects(client, "fd99::100", 8080)
                    assert connects(client, "10.99.0.101", 8080)
                    assert elements(r1, "ip", "vips") == sorted(
                        json.dumps(a) for a in ("10.99.0.100", "10.99.5.5", "10.99.0.102")
                    )
                    assert elements(r1, "ip6", "vips") == sorted(
                        json.dumps(a) for a in ("fd99::5", "fd99::100", "fd99::102")
                    )
                d.stop()
                assert "keepalived" not in json.dumps(ruleset(r1)), f"{kind} left its table"
            assert results["fastka"] == results["keepalived"], json.dumps(results, indent=1)
        finally:
            for s in socks:
                s.close()


STRICT = """\
global_defs {
    router_id r11
    vrrp_strict
}
vrrp_instance VI_S {
    state BACKUP
    interface eth0
    virtual_router_id 60
    priority 150
    version 3
    advert_int 0.1
    virtual_ipaddress {
        10.99.0.110/24
    }
}
"""


def strict_mode_like_keepalived() -> None:
    """vrrp_strict without a firewall keyword: no_accept is implied and nftables chosen
    automatically (table keepalived), as Keepalived does."""
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        client = rig.router("r2", lan, host=12)
        results: dict[str, Any] = {}
        for kind in ("fastka", "keepalived"):
            d = rig.fastka(r1, STRICT) if kind == "fastka" else rig.keepalived(r1, STRICT)
            d.wait_state("MASTER", instance="VI_S", timeout=15)
            wait_for(lambda: json.dumps("10.99.0.110") in elements(r1, "ip", "vips"), 5, "VIP blocked")
            results[kind] = normalise(ruleset(r1))
            assert not client.ping("10.99.0.110", timeout=0.5), f"{kind}: strict-mode VIP answered a ping"
            d.stop()
            assert "keepalived" not in json.dumps(ruleset(r1)), f"{kind} left its table"
        assert results["fastka"] == results["keepalived"], json.dumps(results, indent=1)


def transitions() -> None:
    """no_accept elements appear on MASTER and go on BACKUP (the table stays), come back
    when MASTER again; the table is gone after SIGTERM."""
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        r2 = rig.router("r2", lan, host=12)
        low = CONF.format(globals="", prio=100)
        high = CONF.format(globals="", prio=200).replace("r11", "r12")
        d1 = rig.fastka(r1, low)
        all_master(d1)
        wait_for(lambda: elements(r1, "ip", "vips") != [], 5, "VIPs blocked")
        mark = d1.mark()
        d2 = rig.keepalived(r2, high)
        for name in INSTANCES:
            d1.wait_state("BACKUP", instance=name, timeout=15, since=mark)
        wait_for(
            lambda: elements(r1, "ip", "vips") == [] and elements(r1, "ip6", "vips") == [], 5, "unblocked"
        )
        assert elements(r1, "ip6", "vips_link_local") == []
        # the VMAC filters stay in every state
        assert "vmac_map" in json.dumps(ruleset(r1))
        mark = d1.mark()
        d2.stop()
        all_master(d1, since=mark)
        wait_for(lambda: json.dumps("10.99.0.100") in elements(r1, "ip", "vips"), 5, "VIPs blocked again")
        ll = elements(r1, "ip6", "vips_link_local")
        assert len(ll) == 2 and "fe80::99" in ll[0] + ll[1] and "fe80::55" in ll[0] + ll[1]
        d1.stop()
        rules = subprocess.run(
            ["ip", "netns", "exec", r1.netns, "nft", "list", "ruleset"], capture_output=True, text=True
        ).stdout
        assert "keepalived" not in rules


def test_accept_mode_firewall() -> None:
    require_tool("nft")
    parallel(no_accept_like_keepalived, strict_mode_like_keepalived, transitions)
