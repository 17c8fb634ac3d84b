"""The address queries of :class:`fastka.vrrp.netlink.Netlink` without pyroute2 (a raw
``RTM_GETADDR`` dump) give exactly what the pyroute2 path gives, and a VRRP child that
needs nothing else never imports pyroute2."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Address, IPv6Address, ip_interface
from pathlib import Path
from typing import Any

import pytest
from rig import Lan

from fastka.config.model import IpAddress
from fastka.vrrp.netlink import Netlink, preload_modules

pytestmark = [pytest.mark.root, pytest.mark.netns]


def _with_pyroute2() -> Netlink:
    from pyroute2 import IPRoute

    return Netlink(IPRoute())


def test_raw_address_dump_equals_pyroute2(lan: Lan) -> None:
    r1 = lan.r1
    raw: Any = r1.proxy(Netlink)
    via_pyroute2: Any = r1.proxy(_with_pyroute2)
    for text, kw in (
        ("10.99.0.100/24", {"label": "eth0:vip"}),  # a secondary with a label
        ("10.98.0.101/24", {"scope": "link"}),
        ("10.99.0.103/32", {"scope": "host"}),
        ("fd99::100/64", {}),
        ("fd99::101/128", {}),  # deprecated (preferred_lft 0): flags beyond 8 bits
    ):
        assert via_pyroute2.add_address(IpAddress(address=ip_interface(text), dev="eth0", **kw))
    index = r1.ifindex("eth0")
    for family in (0, 2, 10):
        got = raw.addresses(family=family)
        assert got == via_pyroute2.addresses(family=family)
        assert raw.addresses(index, family) == via_pyroute2.addresses(index, family)
    labels = {str(a.address): a.label for a in raw.addresses(index)}
    assert labels["10.99.0.100/24"] == "eth0:vip"
    found = raw.source_addresses()
    assert found == via_pyroute2.source_addresses()
    ll = found[index][1]
    assert found[index][0] == IPv4Address("10.99.0.11")
    assert isinstance(ll, IPv6Address) and ll.is_link_local
    assert found[r1.ifindex("lo")] == (IPv4Address("127.0.0.1"), None)
    # 10.99.0.11 excluded: no global primary is left, so the first primary of any scope
    others = raw.source_addresses(exclude=[IPv4Address("10.99.0.11")])
    assert others == via_pyroute2.source_addresses(exclude=[IPv4Address("10.99.0.11")])
    assert others[index] == (IPv4Address("10.99.0.103"), ll)
    assert raw.target._ipr is None, "a query made pyroute2's IPRoute"


INSTANCE = """vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {{
        10.99.0.100/24
    }}
{extra}}}
"""


@pytest.mark.parametrize(
    ("extra", "wanted"),
    [
        ("", []),
        ("    virtual_routes {\n        10.5.0.0/16 via 10.99.0.1\n    }\n", ["pyroute2"]),
        ("    use_vmac\n", ["pyroute2"]),
    ],
)
def test_preload_modules(tmp_path: Path, extra: str, wanted: list[str]) -> None:
    from fastka.config import load

    path = tmp_path / "keepalived.conf"
    path.write_text(INSTANCE.format(extra=extra))
    config, _ = load(str(path))
    assert preload_modules(config) == wanted


def test_vrrp_child_start_imports_no_pyroute2() -> None:
    # What the VRRP child runs at start-up, minus the sockets: importing the router and
    # making its Netlink object never loads pyroute2.
    code = (
        "import sys, fastka.vrrp.subsystem, fastka.vrrp.netlink as n; nl = n.Netlink(); nl.close(); "
        "print(sorted(m for m in sys.modules if m.startswith('pyroute2')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
