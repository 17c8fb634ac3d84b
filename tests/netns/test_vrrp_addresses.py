"""The fast VIP path (``fastka.vrrp.addresses``) leaves the kernel exactly as
``fastka.vrrp.netlink.Netlink`` does (which is checked against Keepalived 2.2.7), for
every kind of address entry, and is idempotent the same way."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, ip_interface
from typing import Any

import pytest
from rig import Lan, Netns

from fastka.config.model import IpAddress
from fastka.vrrp.addresses import AddressOps
from fastka.vrrp.netlink import Netlink

pytestmark = [pytest.mark.root, pytest.mark.netns]

ENTRIES = [
    IpAddress(address=ip_interface("10.99.0.100/24"), label="eth0:vip"),
    IpAddress(address=ip_interface("10.98.0.101/24"), scope="link", broadcast_mode="+"),
    IpAddress(address=ip_interface("10.99.0.102/24"), broadcast=IPv4Address("10.99.0.250")),
    IpAddress(address=ip_interface("10.99.0.103/32"), scope="host"),
    IpAddress(address=ip_interface("10.97.0.104/32"), peer=ip_interface("10.97.0.1/32")),
    IpAddress(address=ip_interface("fd99::100/64")),
    IpAddress(address=ip_interface("fd99::101/128")),
    IpAddress(address=ip_interface("fd99::102/128"), preferred_lft=0xFFFFFFFF),
    IpAddress(address=ip_interface("fd99::103/64"), noprefixroute=True),
]


def _state(ns: Netns) -> dict[str, dict[str, Any]]:
    (link,) = json.loads(ns.ip("-j", "-d", "addr", "show", "dev", "eth0"))
    out = {}
    for a in link["addr_info"]:
        a = dict(a)
        a.pop("valid_life_time", None)
        if a.get("preferred_life_time") not in (0, 0xFFFFFFFF):
            a.pop("preferred_life_time", None)
        out[f"{a['local']}/{a['prefixlen']}"] = a
    return out


def test_same_kernel_state_as_netlink(lan: Lan) -> None:
    fast = lan.rig.own(lan.r1.call(AddressOps))
    slow = lan.r2.proxy(Netlink)
    i1, i2 = lan.r1.ifindex("eth0"), lan.r2.ifindex("eth0")
    for e in ENTRIES:
        assert fast.add_address(e, i1) is True
        assert fast.add_address(e, i1) is False  # already there
        assert slow.add_address(e, ifindex=i2) is True
    s1, s2 = _state(lan.r1), _state(lan.r2)

    vips1 = {k for k in s1 if not k.startswith(("10.99.0.11/", "fd99::11/", "fe80"))}
    vips2 = {k for k in s2 if not k.startswith(("10.99.0.12/", "fd99::12/", "fe80"))}
    assert vips1 == vips2 and len(vips1) == len(ENTRIES)
    for key in vips1:
        assert s1[key] == s2[key], key
    for e in ENTRIES:
        assert fast.del_address(e, i1) is True
        assert fast.del_address(e, i1) is False  # already gone
    left = set(_state(lan.r1))
    assert not any(k.startswith(("10.99.0.10", "10.98", "10.97", "fd99::10")) for k in left), left
