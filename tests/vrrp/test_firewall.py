"""The nftables bookkeeping of accept mode and VMAC filtering, with a recording runner
(no kernel): what each change sends, shared addresses, failed transactions rolled back,
retain after a reload, and when a firewall is needed at all. The kernel side (and the
comparison with Keepalived's ruleset) is tests/netns/test_vrrp_firewall.py."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from fastka.config.model import Config, GlobalDefs, VrrpInstance
from fastka.vrrp.firewall import Firewall, FirewallAddress, FirewallError, needed


class FakeNft:
    def __init__(self) -> None:
        self.txns: list[list[dict[str, Any]]] = []
        self.fail_next = False
        self.closed = False

    def run(self, commands: Sequence[dict[str, Any]]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise FirewallError("Error: Could not process rule: No such file or directory")
        self.txns.append(list(commands))

    def list_ruleset(self) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        self.closed = True


def A(s: str, index: int = 2, name: bool = False) -> FirewallAddress:
    return FirewallAddress(ipaddress.ip_address(s), index, "eth0", name)


def kinds(txn: list[dict[str, Any]]) -> list[str]:
    out = []
    for c in txn:
        verb, body = next(iter(c.items()))
        obj, val = next(iter(body.items()))
        out.append(f"{verb} {obj} {val.get('family')} {val.get('name', val.get('chain', ''))}")
    return out


def test_first_master_builds_the_table_then_only_elements() -> None:
    nft = FakeNft()
    fw = Firewall(nft)
    fw.set_master("VI_1", [A("10.0.0.1")])
    assert kinds(nft.txns[0]) == [
        "add table ip keepalived",
        "add set ip vips",
        "add chain ip out",
        "add chain ip in",
        "add rule ip out",
        "add rule ip in",
        "add element ip vips",
    ]
    assert nft.txns[0][-1]["add"]["element"]["elem"] == ["10.0.0.1"]
    fw.clear("VI_1")
    assert kinds(nft.txns[1]) == ["delete element ip vips"]
    fw.set_master("VI_1", [A("10.0.0.1")])
    assert kinds(nft.txns[2]) == ["add element ip vips"]
    fw.close()
    assert kinds(nft.txns[3]) == ["delete table ip keepalived"] and nft.closed


def test_ipv6_link_local_by_index_or_name_and_counters() -> None:
    nft = FakeNft()
    fw = Firewall(nft, counters=True, priority=5, table="t")
    fw.set_master("VI_6", [A("fe80::1", 7), A("fe80::2", name=True), A("fd00::1")])
    txt = json.dumps(nft.txns[0])
    assert '"concat": ["fe80::1", 7]' in txt and '"concat": ["fe80::2", "eth0"]' in txt
    assert '"name": "neighbor-discovery"' in txt and '"prio": 5' in txt
    rules = [c["add"]["rule"] for c in nft.txns[0] if "rule" in c.get("add", {})]
    assert rules and all({"counter": {"packets": 0, "bytes": 0}} in r["expr"] for r in rules)
    assert '{"meta": {"key": "iifname"}}' in txt and '{"meta": {"key": "iif"}}' in txt


def test_shared_address_stays_blocked_while_any_owner_is_master() -> None:
    nft = FakeNft()
    fw = Firewall(nft)
    fw.set_master("VI_1", [A("10.0.0.1"), A("10.0.0.2")])
    fw.set_master("VI_2", [A("10.0.0.1")])
    assert len(nft.txns) == 1  # nothing new to add
    fw.clear("VI_1")
    assert nft.txns[-1] == [
        {"delete": {"element": {"family": "ip", "table": "keepalived", "name": "vips", "elem": ["10.0.0.2"]}}}
    ]
    fw.clear("VI_2")
    assert nft.txns[-1][0]["delete"]["element"]["elem"] == ["10.0.0.1"]
    assert fw.owners() == {}


def test_a_refused_transaction_leaves_no_state_behind() -> None:
    nft = FakeNft()
    fw = Firewall(nft)
    nft.fail_next = True
    fw.set_master("VI_1", [A("10.0.0.1")])
    assert fw.errors == 1 and nft.txns == [] and fw.owners() == {}
    fw.set_master("VI_1", [A("10.0.0.1")])  # the table is built again
    assert kinds(nft.txns[0])[0] == "add table ip keepalived"


def test_vmacs_and_retain() -> None:
    nft = FakeNft()
    fw = Firewall(nft)
    fw.add_vmac(10, 2, ipv6=False)
    fw.add_vmac(11, 2, ipv6=True)
    fw.add_vmac(11, 2, ipv6=True)  # once
    assert len(nft.txns) == 2
    assert "igmp" in json.dumps(nft.txns[0])
    assert "mld2-listener-report" in json.dumps(nft.txns[1]) and "nd-router-solicit" in json.dumps(
        nft.txns[1]
    )
    fw.remove_vmac(11)
    assert kinds(nft.txns[-1]) == ["delete element ip6 vmac_map", "delete element ip6 vmac_set"]
    fw.set_master("VI_1", [A("10.0.0.1")])
    fw.set_master("VI_2", [A("10.0.0.2")])
    fw.retain(["VI_2"])
    assert fw.owners() == {"VI_2": 1}


def test_when_a_firewall_is_needed() -> None:
    plain = VrrpInstance(name="VI_1", virtual_router_id=1, accept=True)
    assert not needed(Config(vrrp_instances={"VI_1": plain}))
    no_accept = VrrpInstance(name="VI_1", virtual_router_id=1, accept=False)
    assert needed(Config(vrrp_instances={"VI_1": no_accept}))
    assert needed(Config(global_defs=GlobalDefs(nftables="keepalived")))
