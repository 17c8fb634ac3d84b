"""fastka.vrrp.netlink without privileges: the requests built for pyroute2 (through a
recording fake IPRoute), idempotence and error mapping, sysctl bookkeeping, and the netlink
reflector decoding crafted kernel messages fed through a socketpair."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from fastka.config.model import Family, IpAddress, Nexthop, Route, Rule, Vmac
from fastka.errors import NetlinkOpError
from fastka.vrrp.netlink import (
    RTPROT_KEEPALIVED,
    AddressEvent,
    AddressEventKind,
    LinkEvent,
    LinkEventKind,
    Netlink,
    RtnlMonitor,
    Sysctl,
    eui64_link_local,
    vmac_mac,
    vmac_name,
)


class KernelError(Exception):
    """Looks like pyroute2's NetlinkError: an errno in ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code, errno.errorcode.get(code, "?"))
        self.code = code


class FakeMsg:
    def __init__(self, fields: dict[str, Any], attrs: dict[str, Any]) -> None:
        self.fields, self.attrs = fields, attrs

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get_attr(self, name: str) -> Any:
        return self.attrs.get(name)


def link_msg(
    index: int,
    name: str,
    *,
    kind: str | None = None,
    parent: int | None = None,
    mac: str = "02:00:00:00:00:01",
) -> FakeMsg:
    info = FakeMsg(
        {}, {"IFLA_INFO_KIND": kind, "IFLA_INFO_DATA": FakeMsg({}, {"IFLA_MACVLAN_MODE": "private"})}
    )
    return FakeMsg(
        {"index": index, "flags": 0x41},
        {
            "IFLA_IFNAME": name,
            "IFLA_ADDRESS": mac,
            "IFLA_LINKINFO": info if kind else None,
            "IFLA_LINK": parent,
            "IFLA_GROUP": 0,
        },
    )


class FakeIPRoute:
    """Records every request; ``fail[(method, command)] = errno`` makes it refuse."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.fail: dict[tuple[str, str], int] = {}
        self.links = {"eth0": link_msg(2, "eth0")}

    def _do(self, method: str, command: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((method, command, kwargs))
        if (method, command) in self.fail:
            raise KernelError(self.fail[(method, command)])
        if method == "link" and command == "get":
            key = kwargs.get("ifname") or next(
                (n for n, m in self.links.items() if m["index"] == kwargs.get("index")), None
            )
            if key not in self.links:
                raise KernelError(errno.ENODEV)
            return (self.links[key],)
        if method == "link" and command == "add":
            self.links[kwargs["ifname"]] = link_msg(
                10 + len(self.links),
                kwargs["ifname"],
                kind=kwargs["kind"],
                parent=kwargs["link"],
                mac=kwargs["address"],
            )
        return ()

    def link(self, command: str, **kw: Any) -> Any:
        return self._do("link", command, kw)

    def addr(self, command: str, **kw: Any) -> Any:
        return self._do("addr", command, kw)

    def route(self, command: str, **kw: Any) -> Any:
        return self._do("route", command, kw)

    def rule(self, command: str, **kw: Any) -> Any:
        return self._do("rule", command, kw)

    def close(self) -> None:
        self.calls.append(("close", "", {}))

    def last(self) -> tuple[str, str, dict[str, Any]]:
        return self.calls[-1]


@pytest.fixture
def ipr() -> FakeIPRoute:
    return FakeIPRoute()


@pytest.fixture
def nl(ipr: FakeIPRoute, tmp_path: Path) -> Netlink:
    return Netlink(ipr, sysctl=Sysctl(tmp_path))


def vip(text: str, **kw: Any) -> IpAddress:
    return IpAddress(address=ip_interface(text), dev="eth0", **kw)


# --------------------------------------------------------------------------- addresses


def test_ipv4_vip_request(nl: Netlink, ipr: FakeIPRoute) -> None:
    assert nl.add_address(vip("10.0.0.5/24", label="eth0:1", scope="link"))
    method, command, kw = ipr.last()
    assert (method, command) == ("addr", "add")
    assert kw == {
        "index": 2,
        "family": socket.AF_INET,
        "address": "10.0.0.5",
        "prefixlen": 24,
        "scope": 253,
        "label": "eth0:1",
    }
    nl.add_address(vip("10.0.0.6/24", broadcast_mode="+"))
    assert ipr.last()[2]["broadcast"] == "10.0.0.255"
    nl.add_address(vip("10.0.0.7/24", broadcast_mode="-"))
    assert ipr.last()[2]["broadcast"] == "10.0.0.0"
    nl.add_address(vip("10.0.0.8/24", broadcast=ip_address("10.0.0.250")), ifindex=7)
    assert ipr.last()[2]["broadcast"] == "10.0.0.250" and ipr.last()[2]["index"] == 7
    nl.add_address(vip("10.9.0.1/32", peer=ip_interface("10.9.0.2/30")))
    assert {k: ipr.last()[2][k] for k in ("local", "address", "prefixlen")} == {
        "local": "10.9.0.1",
        "address": "10.9.0.2",
        "prefixlen": 30,
    }


def test_ipv6_vips_always_nodad_host_routes_deprecated(nl: Netlink, ipr: FakeIPRoute) -> None:
    nl.add_address(vip("fd00::1/64"))
    kw = ipr.last()[2]
    assert kw["flags"] == 0x02 and "preferred_lft" not in kw and kw["family"] == socket.AF_INET6
    nl.add_address(vip("fd00::2/128"))
    assert ipr.last()[2]["preferred_lft"] == 0 and ipr.last()[2]["valid_lft"] == 0xFFFFFFFF
    nl.add_address(vip("fd00::3/128", preferred_lft=0xFFFFFFFF, noprefixroute=True, home=True))
    kw = ipr.last()[2]
    assert kw["preferred_lft"] == 0xFFFFFFFF and kw["flags"] == 0x02 | 0x200 | 0x10


def test_idempotence_and_errors(nl: Netlink, ipr: FakeIPRoute) -> None:
    ipr.fail[("addr", "add")] = errno.EEXIST
    assert nl.add_address(vip("10.0.0.5/24")) is False
    ipr.fail[("addr", "del")] = errno.EADDRNOTAVAIL
    assert nl.del_address(vip("10.0.0.5/24")) is False
    ipr.fail[("addr", "add")] = errno.EPERM
    with pytest.raises(NetlinkOpError) as e:
        nl.add_address(vip("10.0.0.5/24"))
    assert e.value.errno == errno.EPERM and "10.0.0.5/24" in e.value.op
    assert isinstance(e.value.__cause__, KernelError)
    with pytest.raises(NetlinkOpError) as e:
        nl.add_address(vip("10.0.0.5/24", scope="galaxy"))
    assert e.value.errno == errno.EINVAL
    # the interface is gone: nothing to remove
    assert nl.del_address(IpAddress(address=ip_interface("10.0.0.5/24"), dev="nosuchdev")) is False
    with pytest.raises(NetlinkOpError) as e:
        nl.add_address(IpAddress(address=ip_interface("10.0.0.5/24")))
    assert e.value.errno == errno.ENODEV


# --------------------------------------------------------------------------- routes and rules


def test_route_requests(nl: Netlink, ipr: FakeIPRoute) -> None:
    nl.add_route(Route(dst=ip_network("10.50.0.0/24"), via=ip_address("10.0.0.1"), dev="eth0"))
    method, command, kw = ipr.last()
    assert (method, command) == ("route", "add")
    assert kw == {
        "family": socket.AF_INET, "dst": "10.50.0.0", "dst_len": 24, "type": "unicast", "table": 254,
        "proto": RTPROT_KEEPALIVED, "gateway": "10.0.0.1", "oif": 2,
    }  # fmt: skip
    nl.add_route(
        Route(dst=ip_network("0.0.0.0/0"), via=ip_address("10.0.0.1"), table=100, protocol="static", metric=7)
    )
    kw = ipr.last()[2]
    assert (
        "dst" not in kw
        and kw["dst_len"] == 0
        and kw["table"] == 100
        and kw["proto"] == 4
        and kw["priority"] == 7
    )
    nl.add_route(
        Route(
            dst=ip_network("10.53.0.0/24"),
            nexthops=[
                Nexthop(via=ip_address("10.0.0.1"), dev="eth0", weight=3, onlink=True),
                Nexthop(via=ip_address("10.0.0.2")),
            ],
            mode="append",
        )
    )
    method, command, kw = ipr.last()
    assert command == "append"
    assert kw["multipath"] == [
        {"gateway": "10.0.0.1", "oif": 2, "hops": 2, "flags": 4},
        {"gateway": "10.0.0.2"},
    ]
    nl.add_route(
        Route(
            dst=ip_network("fd00::/64"),
            dev="eth0",
            pref="high",
            realms="1/2",
            options={"mtu": "lock 1400", "rtt": "10ms", "rttvar": "5", "congctl": "cubic", "features": "ecn"},
        )
    )
    kw = ipr.last()[2]
    assert kw["pref"] == 1 and kw["flow"] == (1 << 16) | 2
    assert kw["metrics"] == {
        "mtu": 1400,
        "lock": 1 << 2,
        "rtt": 80,
        "rttvar": 5,
        "cc_algo": "cubic",
        "features": 1,
    }
    with pytest.raises(NetlinkOpError) as e:
        nl.add_route(Route(dst=ip_network("10.0.0.0/8"), options={"hoopla": "1"}))
    assert e.value.errno == errno.EOPNOTSUPP
    with pytest.raises(NetlinkOpError):
        nl.add_route(Route(dst=ip_network("10.0.0.0/8"), mode="sideways"))
    ipr.fail[("route", "add")] = errno.EEXIST
    assert nl.add_route(Route(dst=ip_network("10.0.0.0/8"))) is False
    ipr.fail[("route", "del")] = errno.ESRCH
    assert nl.del_route(Route(dst=ip_network("10.0.0.0/8"))) is False
    assert nl.del_route(Route(dst=ip_network("10.0.0.0/8"), dev="nosuchdev")) is False


def test_rule_requests(nl: Netlink, ipr: FakeIPRoute) -> None:
    nl.add_rule(Rule(from_prefix=ip_network("10.0.0.5/32"), table=100, preference=100))
    assert ipr.last()[2] == {
        "family": socket.AF_INET, "src": "10.0.0.5", "src_len": 32, "priority": 100, "action": 1, "table": 100,
        "protocol": RTPROT_KEEPALIVED,
    }  # fmt: skip
    nl.add_rule(
        Rule(family=Family.INET6, to_prefix=ip_network("fd00::/64"), invert=True, iif="eth0", fwmark=5, fwmask=0xFF,
             type="unreachable", preference=5, uidrange=(1, 2), ipproto="udp", sport=(1, 2), dport=(53, 53), l3mdev=True,
             suppress_prefixlength=0, protocol="boot")
    )  # fmt: skip
    kw = ipr.last()[2]
    assert (
        kw["family"] == socket.AF_INET6 and kw["flags"] == 2 and kw["action"] == 7 and kw["iifname"] == "eth0"
    )
    assert (kw["uid_range"], kw["ip_proto"], kw["sport_range"], kw["dport_range"]) == (
        "1:2",
        17,
        "1:2",
        "53:53",
    )
    assert (kw["l3mdev"], kw["suppress_prefixlen"], kw["protocol"], kw["fwmask"]) == (1, 0, 3, 0xFF)
    nl.add_rule(Rule(goto=200, preference=6))
    assert ipr.last()[2]["action"] == 2 and ipr.last()[2]["goto"] == 200
    ipr.fail[("rule", "del")] = errno.ENOENT
    assert nl.del_rule(Rule(table=1, preference=1)) is False


# --------------------------------------------------------------------------- sysctl and VMAC


def make_proc(root: Path, values: dict[str, str]) -> None:
    for key, value in values.items():
        p = root.joinpath(*key.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(value + "\n")


def test_sysctl_set_and_restore(tmp_path: Path) -> None:
    make_proc(tmp_path, {"net/ipv4/conf/vrrp.51/arp_ignore": "0"})
    s = Sysctl(tmp_path)
    assert s.set_conf(socket.AF_INET, "vrrp.51", "arp_ignore", 1)
    assert not s.set_conf(socket.AF_INET, "vrrp.51", "arp_ignore", 1)  # unchanged
    assert s.set_conf(socket.AF_INET, "vrrp.51", "arp_ignore", 2)
    assert s.conf(socket.AF_INET, "vrrp.51", "arp_ignore") == "2"
    s.restore()
    assert s.conf(socket.AF_INET, "vrrp.51", "arp_ignore") == "0"  # the first value, not the second
    with pytest.raises(NetlinkOpError) as e:
        s.get("net", "nope")
    assert e.value.errno == errno.ENOENT


def test_vmac_creation_sysctls_and_restore(ipr: FakeIPRoute, tmp_path: Path) -> None:
    conf = {
        f"net/ipv4/conf/{d}/{k}": "0"
        for d in ("all", "lo", "eth0", "vrrp.51")
        for k in ("rp_filter", "arp_ignore", "arp_filter", "accept_local")
    }
    conf["net/ipv4/conf/all/rp_filter"] = "1"
    conf |= {f"net/ipv6/conf/vrrp.51/{k}": "0" for k in ("addr_gen_mode", "disable_ipv6")}
    make_proc(tmp_path, conf)
    nl = Netlink(ipr, sysctl=Sysctl(tmp_path))
    info = nl.add_vmac(Vmac(ifname=vmac_name(51), mac=vmac_mac(51)), "eth0")
    add = next(c for c in ipr.calls if c[:2] == ("link", "add"))[2]
    assert add == {
        "ifname": "vrrp.51",
        "kind": "macvlan",
        "link": 2,
        "macvlan_mode": "private",
        "address": "00:00:5e:00:01:33",
    }
    assert ("link", "set", {"index": info.ifindex, "state": "up"}) in ipr.calls
    s = nl.sysctl
    assert [s.conf(socket.AF_INET, "vrrp.51", k) for k in ("arp_ignore", "accept_local", "rp_filter")] == [
        "1",
        "1",
        "0",
    ]
    assert [s.conf(socket.AF_INET, "eth0", k) for k in ("arp_ignore", "arp_filter")] == ["1", "1"]
    assert [s.conf(socket.AF_INET6, "vrrp.51", k) for k in ("addr_gen_mode", "disable_ipv6")] == ["1", "1"]
    # all.rp_filter 1 -> 0, and the others raised to 1 so nothing else changes behaviour
    assert [s.conf(socket.AF_INET, d, "rp_filter") for d in ("all", "lo", "eth0")] == ["0", "1", "1"]
    # adopting the same VMAC again creates nothing new
    n_adds = sum(c[:2] == ("link", "add") for c in ipr.calls)
    nl.add_vmac(Vmac(ifname="vrrp.51", mac="00:00:5E:00:01:33"), "eth0")
    assert sum(c[:2] == ("link", "add") for c in ipr.calls) == n_adds
    with pytest.raises(NetlinkOpError) as e:
        nl.add_vmac(Vmac(ifname="vrrp.51", mac=vmac_mac(52)), "eth0")  # same name, other MAC
    assert e.value.errno == errno.EEXIST
    nl.restore_sysctls()
    assert [s.conf(socket.AF_INET, d, "rp_filter") for d in ("all", "lo", "eth0", "vrrp.51")] == [
        "1",
        "0",
        "0",
        "0",
    ]
    assert nl.del_vmac("vrrp.51")
    assert ipr.last()[:2] == ("link", "del")
    assert not nl.del_vmac("vrrp.99")


def test_vmac_names_and_macs() -> None:
    assert vmac_mac(1) == "00:00:5e:00:01:01" and vmac_mac(255, socket.AF_INET6) == "00:00:5e:00:02:ff"
    assert str(eui64_link_local("00:00:5e:00:02:39")) == "fe80::200:5eff:fe00:239"
    assert str(eui64_link_local("02:99:00:00:00:11")) == "fe80::99:ff:fe00:11"  # the golden r1
    assert vmac_name(7) == "vrrp.7" and vmac_name(7, "vr") == "vr.7"


# --------------------------------------------------------------------------- the reflector


def nl_link(
    msg_type: int, index: int, name: str, flags: int, family: int = 0, mac: str = "02:00:00:00:00:05"
) -> bytes:
    m = ifinfmsg()
    m["header"]["type"] = msg_type
    m["family"], m["index"], m["flags"] = family, index, flags
    m["attrs"] = [("IFLA_IFNAME", name), ("IFLA_ADDRESS", mac)]
    m.encode()
    return bytes(m.data)


def nl_addr(msg_type: int, index: int, address: str, prefixlen: int) -> bytes:
    a = ifaddrmsg()
    a["header"]["type"] = msg_type
    v6 = ":" in address
    a["family"], a["prefixlen"], a["index"] = (socket.AF_INET6 if v6 else socket.AF_INET), prefixlen, index
    a["attrs"] = [("IFA_ADDRESS", address)] if v6 else [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    a.encode()
    return bytes(a.data)


UP, DOWN = 0x1 | 0x40, 0x1


@pytest.fixture
def monitor() -> Iterator[tuple[RtnlMonitor, socket.socket]]:
    kernel, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    mon = RtnlMonitor(sock=ours, seed=False)
    yield mon, kernel
    mon.close()
    kernel.close()


def test_monitor_link_events(monitor: tuple[RtnlMonitor, socket.socket]) -> None:
    mon, kernel = monitor
    assert mon.read() == []
    kernel.send(nl_link(16, 5, "eth5", DOWN))
    kernel.send(nl_link(16, 5, "eth5", DOWN))  # a repeat (statistics): no event
    kernel.send(nl_link(16, 5, "eth5", UP) + nl_link(16, 5, "eth5", UP, family=7))  # + a bridge-port message
    kernel.send(nl_link(16, 5, "wan0", UP, mac="02:00:00:00:00:99"))
    kernel.send(nl_link(16, 5, "wan0", DOWN, mac="02:00:00:00:00:99"))
    kernel.send(nl_link(17, 5, "wan0", DOWN, mac="02:00:00:00:00:99"))
    kernel.send(nl_link(17, 6, "ghost", DOWN))  # deleting what we never knew: nothing
    kinds = [(e.kind, e.ifname) for e in mon.read() if isinstance(e, LinkEvent)]
    assert kinds == [
        (LinkEventKind.ADDED, "eth5"),
        (LinkEventKind.UP, "eth5"),
        (LinkEventKind.CHANGED, "wan0"),
        (LinkEventKind.DOWN, "wan0"),
        (LinkEventKind.DELETED, "wan0"),
    ]
    assert mon.links == {}


def test_monitor_address_events(monitor: tuple[RtnlMonitor, socket.socket]) -> None:
    mon, kernel = monitor
    kernel.send(nl_link(16, 5, "eth5", UP))
    kernel.send(nl_addr(20, 5, "10.0.0.1", 24) + nl_addr(20, 5, "10.0.0.1", 24))  # + a lifetime update
    kernel.send(nl_addr(20, 5, "fd00::1", 64))
    kernel.send(nl_addr(21, 5, "10.0.0.1", 24))
    kernel.send(nl_addr(21, 5, "10.0.0.1", 24))
    events = [e for e in mon.read() if isinstance(e, AddressEvent)]
    assert [(e.kind, e.ifindex, e.address) for e in events] == [
        (AddressEventKind.ADDED, 5, ip_interface("10.0.0.1/24")),
        (AddressEventKind.ADDED, 5, ip_interface("fd00::1/64")),
        (AddressEventKind.REMOVED, 5, ip_interface("10.0.0.1/24")),
    ]
    assert mon.link_name(5) == "eth5" and mon.addresses == {(5, ip_interface("fd00::1/64"))}
    kernel.send(nl_link(17, 5, "eth5", DOWN))  # a deleted link takes its addresses along
    assert [e.kind for e in mon.read()] == [LinkEventKind.DELETED]
    assert mon.addresses == set()


class FakeLoop:
    def __init__(self) -> None:
        self.readers: dict[int, Any] = {}

    def add_reader(self, fd: int, callback: Any, *args: Any) -> None:
        self.readers[fd] = (callback, args)

    def remove_reader(self, fd: int) -> bool:
        return self.readers.pop(fd, None) is not None


def test_monitor_attach_to_loop(monitor: tuple[RtnlMonitor, socket.socket]) -> None:
    mon, kernel = monitor
    loop = FakeLoop()
    got: list[Any] = []
    mon.attach(loop, got.append)
    kernel.send(nl_link(16, 3, "eth3", UP))
    cb, args = loop.readers[mon.fileno()]
    cb(*args)
    assert [(e.kind, e.ifindex) for e in got] == [(LinkEventKind.ADDED, 3)]
    mon.detach()
    assert loop.readers == {}


def test_monitor_decodes_what_pyroute2_encodes(monitor: tuple[RtnlMonitor, socket.socket]) -> None:
    """Attributes the decoder skips (nested link info, MTU, cache info) do not confuse it;
    IFA_FLAGS (32 bits) wins over the 8-bit header flags, as in the kernel."""
    mon, kernel = monitor
    m = ifinfmsg()
    m["header"]["type"] = 16
    m["index"], m["flags"] = 9, 0x41
    m["attrs"] = [
        ("IFLA_MTU", 1500),
        ("IFLA_IFNAME", "vrrp.51"),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "macvlan")]}),
        ("IFLA_ADDRESS", "00:00:5e:00:01:33"),
    ]
    m.encode()
    a = ifaddrmsg()
    a["header"]["type"] = 20
    a["family"], a["prefixlen"], a["index"], a["flags"] = socket.AF_INET6, 128, 9, 0x80
    a["attrs"] = [
        ("IFA_ADDRESS", "fd99::101"),
        ("IFA_CACHEINFO", {"ifa_preferred": 0, "ifa_valid": 1, "cstamp": 0, "tstamp": 0}),
        ("IFA_FLAGS", 0x282),
        ("IFA_LABEL", "vrrp.51"),
    ]
    a.encode()
    kernel.send(bytes(m.data) + bytes(a.data))
    link, addr = mon.read()
    assert isinstance(link, LinkEvent) and (link.ifname, link.mac, link.up) == (
        "vrrp.51",
        "00:00:5e:00:01:33",
        True,
    )
    assert isinstance(addr, AddressEvent)
    assert (addr.address, addr.flags, addr.label) == (ip_interface("fd99::101/128"), 0x282, "vrrp.51")


def test_monitor_survives_garbage(monitor: tuple[RtnlMonitor, socket.socket]) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    mon, _kernel = monitor
    valid = nl_link(16, 5, "eth5", UP)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200), st.integers(0, len(valid)))
    def check(junk: bytes, cut: int) -> None:
        mon.feed(junk)  # never raises
        mon.feed(valid[:cut] + junk)

    check()
