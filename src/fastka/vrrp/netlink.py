"""Kernel networking state for the VRRP child: VIPs, virtual routes and rules, interface
queries, VMACs (through pyroute2 ``IPRoute``), and the netlink reflector (:class:`RtnlMonitor`).

:class:`Netlink` wraps one pyroute2 ``IPRoute`` -- created after fork, in the current
network namespace, or injected (tests pass a fake or one made inside a test namespace).
The ``IPRoute`` is made (and pyroute2, ~230 modules, 9 MB and 0.2-1 s, imported) only when
a change needs it -- routes, rules, VMACs, addresses outside the fast path of
:mod:`fastka.vrrp.addresses`; the address queries every VRRP child makes at start-up
(primary IPv4, IPv6 link-local) are one raw ``RTM_GETADDR`` dump on a socket opened with
the object, so that a VRRP child without such configuration never imports pyroute2 and
a respawned one is back in milliseconds. :func:`preload_modules` names what the parent
imports before forking when the configuration does need it.
Changes are **idempotent**, as a VRRP instance needs them to be: adding what exists or
removing what is gone is not an error, and the call returns whether it changed anything.
The kernel's other refusals become :class:`fastka.errors.NetlinkOpError` naming the
operation. Inputs are the configuration model's entries (``fastka.config.model``:
:class:`IpAddress`, :class:`Route`, :class:`Rule`, :class:`Vmac`), programmed the way
Keepalived 2.2.7 does (checked against it in a namespace):

* IPv6 addresses always get ``nodad``; an IPv6 ``/128`` defaults to ``preferred_lft 0``
  (deprecated: never chosen as a source address) unless ``preferred_lft`` says otherwise.
* Routes and rules carry ``proto keepalived`` (18) unless ``protocol`` is given.
* A route without ``mode`` (the kernel's "prepend") is added like ``ip route add``: an
  identical route already present counts as success.

:class:`RtnlMonitor` is the "netlink reflector": a non-blocking ``NETLINK_ROUTE`` socket
bound to the link and IPv4/IPv6 address groups whose fd the event loop watches. It keeps
the current link table and address set (seeded by dumps when it opens), and turns kernel
notifications into a few typed events (:class:`LinkEvent`, :class:`AddressEvent`,
:class:`Overrun`). No asyncio loop runs inside ours. The monitor decodes the two message
types it subscribes to itself (``ifinfomsg``/``ifaddrmsg`` headers plus four attributes):
pyroute2's ``MarshalRtnl`` took about 750 µs per address message here, the hand decoder
about 10 µs, and every VIP fastka adds or removes comes back through this path. The unit
tests feed it messages encoded by pyroute2's classes, as an independent encoder.
"""

from __future__ import annotations

import enum
import errno as _errno
import functools
import logging
import os
import select
import socket
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_interface,
)
from pathlib import Path
from typing import Any, Protocol

from fastka.config.model import IpAddress, Route, Rule, Vmac
from fastka.errors import NetlinkOpError

__all__ = [
    "RTPROT_KEEPALIVED",
    "AddressEvent",
    "AddressEventKind",
    "AddressInfo",
    "LinkEvent",
    "LinkEventKind",
    "LinkInfo",
    "Netlink",
    "Overrun",
    "RtnlEvent",
    "RtnlMonitor",
    "Sysctl",
    "eui64_link_local",
    "vmac_mac",
    "vmac_name",
]

log = logging.getLogger("fastka.vrrp.netlink")

IPAddressT = IPv4Address | IPv6Address
IPInterfaceT = IPv4Interface | IPv6Interface

RTPROT_KEEPALIVED = 18  # what Keepalived's routes and rules show as "proto keepalived"
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFF_NOARP = 0x80
IFA_F_NODAD = 0x02
IFA_F_HOMEADDRESS = 0x10
IFA_F_TENTATIVE = 0x40
IFA_F_SECONDARY = 0x01
IFA_F_MANAGETEMPADDR = 0x100
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_MCAUTOJOIN = 0x400
RTNH_F_ONLINK = 0x4
FIB_RULE_INVERT = 0x2
INFINITY_LIFE_TIME = 0xFFFFFFFF

SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
# /etc/iproute2/rt_protos plus the names Keepalived's configs use
PROTOCOLS = {
    "unspec": 0, "redirect": 1, "kernel": 2, "boot": 3, "static": 4, "gated": 8, "ra": 9,
    "mrt": 10, "zebra": 11, "bird": 12, "dnrouted": 13, "xorp": 14, "ntk": 15, "dhcp": 16,
    "keepalived": 18, "babel": 42, "openr": 99, "bgp": 186, "isis": 187, "ospf": 188,
    "rip": 189, "eigrp": 192,
}  # fmt: skip
ROUTE_PREF = {"low": 3, "medium": 0, "high": 1}
RULE_ACTIONS = {"lookup": 1, "table": 1, "goto": 2, "nop": 3, "blackhole": 6, "unreachable": 7, "prohibit": 8}
IP_PROTOCOLS = {
    "icmp": 1,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "ipv6-icmp": 58,
    "icmpv6": 58,
    "sctp": 132,
}
# ``ip route`` metrics that take a plain number (RTAX_* in pyroute2's spelling)
_INT_METRICS = {
    "mtu", "window", "cwnd", "ssthresh", "advmss", "reordering", "hoplimit", "initcwnd",
    "initrwnd", "quickack", "fastopen_no_cookie",
}  # fmt: skip
_RTAX_LOCK_BITS = {  # RTAX_* numbers (linux/rtnetlink.h)
    "mtu": 2, "window": 3, "rtt": 4, "rttvar": 5, "ssthresh": 6, "cwnd": 7, "advmss": 8,
                   "reordering": 9, "hoplimit": 10, "initcwnd": 11, "features": 12, "rto_min": 13,
                   "initrwnd": 14}  # fmt: skip


# --------------------------------------------------------------------------- small helpers


class IPRouteLike(Protocol):
    """The part of pyroute2's sync ``IPRoute`` used here (tests inject fakes)."""

    def link(self, command: str, **kwargs: Any) -> Any: ...
    def addr(self, command: str, **kwargs: Any) -> Any: ...
    def route(self, command: str, **kwargs: Any) -> Any: ...
    def rule(self, command: str, **kwargs: Any) -> Any: ...
    def close(self) -> Any: ...


def _errno_of(exc: BaseException) -> int:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    return _errno.EIO


def _family(addr: IPAddressT | IPInterfaceT | IPv4Network | IPv6Network) -> int:
    return socket.AF_INET if addr.version == 4 else socket.AF_INET6


def address_flags(ip: IpAddress) -> tuple[int, int | None]:
    """The ``IFA_F_*`` flags and preferred lifetime a VIP is added with."""
    flags = 0
    preferred = ip.preferred_lft
    if isinstance(ip.address, IPv6Interface):
        flags |= IFA_F_NODAD  # a VIP moves between routers: duplicate detection would only delay it
        if preferred is None and ip.address.network.prefixlen == 128:
            preferred = 0  # Keepalived: /128 VIPs are deprecated, never a source address
    if ip.home:
        flags |= IFA_F_HOMEADDRESS
    if ip.nodad:
        flags |= IFA_F_NODAD
    if ip.mngtmpaddr:
        flags |= IFA_F_MANAGETEMPADDR
    if ip.noprefixroute:
        flags |= IFA_F_NOPREFIXROUTE
    if ip.autojoin:
        flags |= IFA_F_MCAUTOJOIN
    return flags, preferred


def _primary_ipv4(addrs: Iterable[AddressInfo], skip: set[IPAddressT]) -> IPv4Address | None:
    """The first global-scope primary not in ``skip``, else the first primary of any scope."""
    first = None
    for a in addrs:
        ip = a.ip
        if isinstance(ip, IPv4Address) and not a.secondary and ip not in skip:
            if a.scope == 0:
                return ip
            if first is None:
                first = ip
    return first


def _link_local6(addrs: Iterable[AddressInfo]) -> IPv6Address | None:
    for a in addrs:
        if isinstance(a.ip, IPv6Address) and a.ip.is_link_local and not a.tentative:
            return a.ip
    return None


def _scope(scope: str | int | None) -> int | None:
    if scope is None or isinstance(scope, int):
        return scope
    if scope in SCOPES:
        return SCOPES[scope]
    if scope.isdigit():
        return int(scope)
    raise NetlinkOpError(_errno.EINVAL, f"unknown scope {scope!r}")


def _named_number(value: str | int | None, table: Mapping[str, int], what: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if value in table:
        return table[value]
    try:
        return int(value, 0)
    except ValueError:
        raise NetlinkOpError(_errno.EINVAL, f"unknown {what} {value!r}") from None


def _realms(value: str | None) -> int | None:
    """``realms [FROM/]TO`` as RTA_FLOW / FRA_FLOW (numbers only; names need rt_realms)."""
    if value is None:
        return None
    src, _, dst = value.rpartition("/")
    try:
        return (int(src, 0) << 16 if src else 0) | int(dst, 0)
    except ValueError:
        raise NetlinkOpError(_errno.EINVAL, f"realm names are not supported: {value!r}") from None


def _time_ms(value: str) -> tuple[int, bool]:
    """An ``ip route`` TIME: (milliseconds, False), or (raw value, True) without a unit."""
    v = value.strip().lower()
    for suffix, scale in (("msecs", 1), ("msec", 1), ("ms", 1), ("secs", 1000), ("sec", 1000), ("s", 1000)):
        if v.endswith(suffix):
            return round(float(v[: -len(suffix)]) * scale), False
    return int(v, 0), True


def _metrics(options: Mapping[str, str]) -> dict[str, int | str]:
    """``Route.options`` (``mtu 1400``, ``mtu lock 1400``, ``rtt 10ms`` ...) as pyroute2 metrics."""
    out: dict[str, int | str] = {}
    lock = 0
    for name, raw in options.items():
        value = raw.strip()
        if value.startswith("lock"):
            value = value[4:].strip()
            if name not in _RTAX_LOCK_BITS:
                raise NetlinkOpError(_errno.EINVAL, f"route option {name!r} cannot be locked")
            lock |= 1 << _RTAX_LOCK_BITS[name]  # RTAX_LOCK is a bitmask of 1 << RTAX_*
        try:
            if name in _INT_METRICS:
                out[name] = int(value, 0)
            elif name in ("rtt", "rttvar"):
                ms, raw_value = _time_ms(value)
                # as iproute2: a time with a unit is scaled to the kernel's fixed point
                out[name] = ms if raw_value else ms * (8 if name == "rtt" else 4)
            elif name == "rto_min":
                out[name] = _time_ms(value)[0]
            elif name == "features":
                if value != "ecn":
                    raise ValueError(value)
                out[name] = 1
            elif name == "congctl":
                out["cc_algo"] = value
            else:
                raise NetlinkOpError(_errno.EOPNOTSUPP, f"route option {name!r} is not supported")
        except ValueError:
            raise NetlinkOpError(_errno.EINVAL, f"bad value for route option {name}: {raw!r}") from None
    if lock:
        out["lock"] = lock
    return out


def vmac_mac(vrid: int, family: int = socket.AF_INET) -> str:
    """The VRRP virtual MAC (RFC 5798 §7.3): 00:00:5e:00:01:VRID, IPv6 00:00:5e:00:02:VRID."""
    return f"00:00:5e:00:{1 if family == socket.AF_INET else 2:02x}:{vrid:02x}"


def eui64_link_local(mac: str) -> IPv6Address:
    """The EUI-64 link-local address of a MAC (RFC 4291 appendix A)."""
    b = bytearray(bytes.fromhex(mac.replace(":", "")))
    b[0] ^= 0x02
    return IPv6Address(b"\xfe\x80" + bytes(6) + bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:]))


def vmac_name(vrid: int, prefix: str = "vrrp") -> str:
    """Keepalived's default VMAC interface name, ``vrrp.VRID`` (``vmac_prefix`` changes it)."""
    return f"{prefix}.{vrid}"


# --------------------------------------------------------------------------- sysctl


class Sysctl:
    """``/proc/sys`` access with memory: :meth:`set` records each key's first value so
    :meth:`restore` can put everything back at exit (VMAC and promote_secondaries settings).

    Paths are split into components because interface names may contain dots (``vrrp.51``).
    ``root`` exists for tests; the namespace is that of the calling thread.
    """

    def __init__(self, root: str | os.PathLike[str] = "/proc/sys") -> None:
        self.root = Path(root)
        self.saved: dict[tuple[str, ...], str] = {}

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def get(self, *parts: str) -> str:
        try:
            return self.path(*parts).read_text().strip()
        except OSError as e:
            raise NetlinkOpError(e.errno or _errno.EIO, f"read sysctl {'/'.join(parts)}") from e

    def set(self, *parts_and_value: str | int) -> bool:
        """``set("net", "ipv4", "conf", IF, "arp_ignore", 1)``; True if the value changed."""
        *parts, value = (str(p) for p in parts_and_value)
        key = tuple(parts)
        old = self.get(*key)
        if old == value:
            return False
        self.saved.setdefault(key, old)
        try:
            self.path(*key).write_text(f"{value}\n")
        except OSError as e:
            raise NetlinkOpError(e.errno or _errno.EIO, f"write sysctl {'/'.join(key)}={value}") from e
        return True

    def conf(self, family: int, ifname: str, name: str) -> str:
        return self.get("net", "ipv4" if family == socket.AF_INET else "ipv6", "conf", ifname, name)

    def set_conf(self, family: int, ifname: str, name: str, value: int | str) -> bool:
        return self.set("net", "ipv4" if family == socket.AF_INET else "ipv6", "conf", ifname, name, value)

    def restore(self, *, prefix: tuple[str, ...] = ()) -> None:
        """Write back the saved originals (those under ``prefix``); missing keys are skipped
        (an interface may be gone)."""
        for key in [k for k in self.saved if k[: len(prefix)] == prefix]:
            old = self.saved.pop(key)
            try:
                self.path(*key).write_text(f"{old}\n")
            except OSError as e:
                if e.errno != _errno.ENOENT:
                    log.warning("cannot restore sysctl %s=%s: %s", "/".join(key), old, e)


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """An interface as the kernel reports it."""

    ifindex: int
    ifname: str
    flags: int
    mac: str | None
    mtu: int | None = None
    kind: str | None = None  # veth, macvlan, bridge ... (None for plain devices)
    link: int | None = None  # parent ifindex (macvlan, vlan, veth peer)
    group: int | None = None
    macvlan_mode: str | None = None

    @property
    def up(self) -> bool:
        """Administratively up and with carrier -- Keepalived's test for a usable interface."""
        return self.flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING

    @property
    def noarp(self) -> bool:
        return bool(self.flags & IFF_NOARP)


@dataclass(frozen=True, slots=True)
class AddressInfo:
    ifindex: int
    address: IPInterfaceT
    scope: int
    flags: int
    label: str | None = None

    @property
    def ip(self) -> IPAddressT:
        return self.address.ip

    @property
    def secondary(self) -> bool:
        return bool(self.flags & IFA_F_SECONDARY)

    @property
    def tentative(self) -> bool:
        return bool(self.flags & IFA_F_TENTATIVE)


def _link_info(msg: Any) -> LinkInfo:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = mode = None
    if info is not None:
        kind = info.get_attr("IFLA_INFO_KIND")
        data = info.get_attr("IFLA_INFO_DATA")
        if kind == "macvlan" and data is not None and hasattr(data, "get_attr"):
            mode = data.get_attr("IFLA_MACVLAN_MODE")
    return LinkInfo(
        ifindex=int(msg["index"]),
        ifname=str(msg.get_attr("IFLA_IFNAME")),
        flags=int(msg["flags"]),
        mac=msg.get_attr("IFLA_ADDRESS"),
        mtu=msg.get_attr("IFLA_MTU"),
        kind=kind,
        link=msg.get_attr("IFLA_LINK"),
        group=msg.get_attr("IFLA_GROUP"),
        macvlan_mode=mode,
    )


def _address_info(msg: Any) -> AddressInfo | None:
    raw = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    if raw is None:
        return None
    flags = msg.get_attr("IFA_FLAGS")
    return AddressInfo(
        ifindex=int(msg["index"]),
        address=ip_interface(f"{raw}/{msg['prefixlen']}"),
        scope=int(msg["scope"]),
        flags=int(flags if flags is not None else msg["flags"]),
        label=msg.get_attr("IFA_LABEL"),
    )


# --------------------------------------------------------------------------- changes


def preload_modules(config: Any) -> list[str]:
    """Modules the VRRP child of ``config`` will import: pyroute2 when it has VMACs,
    virtual or static routes and rules, or static addresses (the parent imports them
    before forking, so that neither the first child nor a respawned one waits for them)."""
    needs = bool(
        getattr(config, "static_ipaddress", None)
        or getattr(config, "static_routes", None)
        or getattr(config, "static_rules", None)
    )
    for inst in getattr(config, "vrrp_instances", {}).values():
        if needs:
            break
        needs = bool(
            getattr(inst, "use_vmac", None)
            or getattr(inst, "virtual_routes", None)
            or getattr(inst, "virtual_rules", None)
        )
    return ["pyroute2"] if needs else []


class Netlink:
    """VIPs, routes, rules, VMACs and interface queries through one pyroute2 ``IPRoute``
    (made on first use; address dumps go through a raw socket, see the module docstring)."""

    def __init__(self, ipr: IPRouteLike | None = None, *, sysctl: Sysctl | None = None) -> None:
        self._ipr: IPRouteLike | None = ipr
        # Without an injected IPRoute, queries use a raw socket made now, in the namespace
        # the object is made in (as IPRoute would be).
        self._rt: socket.socket | None = None
        if ipr is None:
            self._rt = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
            self._rt.settimeout(5.0)
            self._rt.bind((0, 0))
        self._seq = 0
        self.sysctl = sysctl if sysctl is not None else Sysctl()

    @property
    def ipr(self) -> IPRouteLike:
        if self._ipr is None:
            from pyroute2 import IPRoute

            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._rt is not None:
            self._rt.close()
            self._rt = None

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, op: str, fn: Callable[..., Any], command: str, ok: Iterable[int] = (), **kwargs: Any
    ) -> bool:
        """Run one request; True if it changed something, False if refused with an ``ok`` errno."""
        try:
            fn(command, **kwargs)
        except Exception as e:
            code = _errno_of(e)
            if code in ok:
                return False
            raise NetlinkOpError(code, op) from e
        return True

    # -- queries ---------------------------------------------------------------------------

    def link(self, ifname_or_index: str | int) -> LinkInfo:
        """The interface by name or index; ``NetlinkOpError(ENODEV)`` if there is none."""
        key = {"index": ifname_or_index} if isinstance(ifname_or_index, int) else {"ifname": ifname_or_index}
        try:
            msgs = list(self.ipr.link("get", **key))
        except Exception as e:
            raise NetlinkOpError(_errno_of(e), f"get link {ifname_or_index}") from e
        if not msgs:
            raise NetlinkOpError(_errno.ENODEV, f"get link {ifname_or_index}")
        return _link_info(msgs[0])

    def links(self) -> list[LinkInfo]:
        try:
            return [_link_info(m) for m in self.ipr.link("dump")]
        except Exception as e:
            raise NetlinkOpError(_errno_of(e), "dump links") from e

    def ifindex(self, ifname: str) -> int:
        return self.link(ifname).ifindex

    def addresses(self, ifindex: int | None = None, family: int = socket.AF_UNSPEC) -> list[AddressInfo]:
        """Addresses of one interface (or all), optionally of one family, in kernel order."""
        if self._rt is not None:
            return [a for a in self._dump_addresses(family) if ifindex is None or a.ifindex == ifindex]
        kwargs: dict[str, Any] = {}
        if family != socket.AF_UNSPEC:
            kwargs["family"] = family
        try:
            msgs = list(self.ipr.addr("dump", **kwargs))
        except Exception as e:
            raise NetlinkOpError(_errno_of(e), "dump addresses") from e
        out = []
        for m in msgs:
            a = _address_info(m)
            if a is not None and (ifindex is None or a.ifindex == ifindex):
                out.append(a)
        return out

    def source_addresses(
        self, *, exclude: Iterable[IPAddressT] = ()
    ) -> dict[int, tuple[IPv4Address | None, IPv6Address | None]]:
        """Every interface's VRRP source addresses, by ifindex, from one address dump: the
        primary IPv4 address -- the first global-scope address that is not a secondary
        (the kernel lists host- and link-scope primaries first), else the first primary of
        any scope, ``exclude`` left out (our own VIPs) -- and the first usable (not
        tentative) IPv6 link-local address."""
        skip = set(exclude)
        by_index: dict[int, list[AddressInfo]] = {}
        for a in self.addresses():
            by_index.setdefault(a.ifindex, []).append(a)
        return {i: (_primary_ipv4(addrs, skip), _link_local6(addrs)) for i, addrs in by_index.items()}

    def _dump_addresses(self, family: int) -> list[AddressInfo]:
        """``RTM_GETADDR`` dump on the raw socket, decoded as :func:`_address_info` does
        pyroute2's messages."""
        assert self._rt is not None
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
        body = _IFADDRMSG.pack(family, 0, 0, 0, 0)
        out: list[AddressInfo] = []
        try:
            self._rt.send(_NLMSG_HDR.pack(16 + len(body), _RTM_GETADDR, _NLM_F_REQUEST_DUMP, seq, 0) + body)
            while True:
                data = self._rt.recv(1 << 16)
                for mtype, mseq, off, end in _messages(data):
                    if mseq != seq:
                        continue
                    if mtype == _NLMSG_DONE:
                        return out
                    if mtype == _NLMSG_ERROR:
                        err = -_I32.unpack_from(data, off)[0]
                        if err:
                            raise NetlinkOpError(err, "dump addresses")
                        continue
                    if mtype == _RTM_NEWADDR and (a := _ifaddr(data, off, end)) is not None:
                        out.append(a)
        except OSError as e:
            raise NetlinkOpError(e.errno or _errno.EIO, "dump addresses") from e

    def has_address(self, address: IPAddressT, ifindex: int | None = None) -> bool:
        return any(a.ip == address for a in self.addresses(ifindex, _family(address)))

    def forwarding(self, ifname: str, family: int = socket.AF_INET6) -> bool:
        """Whether the interface forwards (IPv6: the NA Router flag)."""
        return self.sysctl.conf(family, ifname, "forwarding") not in ("", "0")

    # -- addresses -------------------------------------------------------------------------

    def _resolve(self, dev: str | None, ifindex: int | None, what: str) -> int:
        if ifindex is not None:
            return ifindex
        if dev is None:
            raise NetlinkOpError(_errno.ENODEV, f"{what}: no interface")
        return self.ifindex(dev)

    def _address_args(self, ip: IpAddress, ifindex: int) -> dict[str, Any]:
        addr = ip.address
        family = _family(addr)
        args: dict[str, Any] = {
            "index": ifindex,
            "family": family,
            "address": str(addr.ip),
            "prefixlen": addr.network.prefixlen,
        }
        if ip.peer is not None:
            # as `ip addr add LOCAL peer PEER/LEN`: IFA_LOCAL = ours, IFA_ADDRESS = the peer's
            args.update(local=str(addr.ip), address=str(ip.peer.ip), prefixlen=ip.peer.network.prefixlen)
        return args

    def add_address(self, ip: IpAddress, ifindex: int | None = None) -> bool:
        """Add a VIP (on ``ifindex``, else on ``ip.dev``); False if it was already there."""
        index = self._resolve(ip.dev, ifindex, f"add address {ip.address}")
        args = self._address_args(ip, index)
        addr = ip.address
        flags, preferred = address_flags(ip)
        if preferred is not None:
            args.update(preferred_lft=preferred, valid_lft=INFINITY_LIFE_TIME)
        if flags:
            args["flags"] = flags
        scope = _scope(ip.scope)
        if scope is not None:
            args["scope"] = scope
        if ip.label:
            args["label"] = ip.label
        if isinstance(addr, IPv4Interface):
            if ip.broadcast is not None:
                args["broadcast"] = str(ip.broadcast)
            elif ip.broadcast_mode == "+":
                args["broadcast"] = str(addr.network.broadcast_address)
            elif ip.broadcast_mode == "-":
                args["broadcast"] = str(addr.network.network_address)
        return self._call(f"add address {addr} dev #{index}", self.ipr.addr, "add", (_errno.EEXIST,), **args)

    def del_address(self, ip: IpAddress, ifindex: int | None = None) -> bool:
        """Remove a VIP; False if it was not there (or its interface is gone)."""
        try:
            index = self._resolve(ip.dev, ifindex, f"del address {ip.address}")
        except NetlinkOpError as e:
            if e.errno == _errno.ENODEV:
                return False
            raise
        return self._call(
            f"del address {ip.address} dev #{index}",
            self.ipr.addr,
            "del",
            (_errno.EADDRNOTAVAIL, _errno.ENODEV, _errno.ENOENT),
            **self._address_args(ip, index),
        )

    # -- routes ----------------------------------------------------------------------------

    def _route_args(self, route: Route) -> dict[str, Any]:
        dst = route.dst
        args: dict[str, Any] = {"family": _family(dst), "dst_len": dst.prefixlen, "type": route.type}
        if dst.prefixlen:
            args["dst"] = str(dst.network_address)
        args["table"] = route.table if route.table is not None else 254
        args["proto"] = (
            _named_number(route.protocol, PROTOCOLS, "protocol") if route.protocol else RTPROT_KEEPALIVED
        )
        if route.metric is not None:
            args["priority"] = route.metric
        if route.src is not None:
            args["prefsrc"] = str(route.src)
        if route.from_prefix is not None:
            args.update(src=str(route.from_prefix.network_address), src_len=route.from_prefix.prefixlen)
        if route.via is not None:
            args["gateway"] = str(route.via)
        if route.dev is not None:
            args["oif"] = self.ifindex(route.dev)
        scope = _scope(route.scope)
        if scope is not None:
            args["scope"] = scope
        if route.tos is not None:
            args["tos"] = route.tos
        if route.onlink:
            args["flags"] = RTNH_F_ONLINK
        realms = _realms(route.realms)
        if realms is not None:
            args["flow"] = realms
        if route.pref is not None:
            args["pref"] = ROUTE_PREF[route.pref] if route.pref in ROUTE_PREF else int(route.pref)
        if route.expires is not None:
            args["expires"] = route.expires
        if route.nexthops:
            hops = []
            for nh in route.nexthops:
                hop: dict[str, Any] = {}
                if nh.via is not None:
                    hop["gateway"] = str(nh.via)
                if nh.dev is not None:
                    hop["oif"] = self.ifindex(nh.dev)
                if nh.weight is not None:
                    hop["hops"] = nh.weight - 1  # rtnexthop counts weight - 1
                if nh.onlink:
                    hop["flags"] = RTNH_F_ONLINK
                nh_realms = _realms(nh.realms)
                if nh_realms is not None:
                    hop["flow"] = nh_realms
                hops.append(hop)
            args["multipath"] = hops
        if route.options:
            args["metrics"] = _metrics(route.options)
        return args

    def add_route(self, route: Route) -> bool:
        """Add a virtual/static route; False if the same route is already there."""
        command = {None: "add", "add": "add", "prepend": "add", "append": "append", "replace": "replace"}.get(
            route.mode
        )
        if command is None:
            raise NetlinkOpError(_errno.EINVAL, f"route mode {route.mode!r}")
        return self._call(
            f"add route {route.dst}", self.ipr.route, command, (_errno.EEXIST,), **self._route_args(route)
        )

    def del_route(self, route: Route) -> bool:
        """Remove a route; False if it is not there (or its device is gone)."""
        try:
            args = self._route_args(route)
        except NetlinkOpError as e:
            if e.errno == _errno.ENODEV:
                return False
            raise
        args.pop("metrics", None)
        return self._call(
            f"del route {route.dst}", self.ipr.route, "del", (_errno.ESRCH, _errno.ENODEV), **args
        )

    # -- rules -----------------------------------------------------------------------------

    def _rule_args(self, rule: Rule) -> dict[str, Any]:
        family = socket.AF_INET if rule.family == "inet" else socket.AF_INET6
        args: dict[str, Any] = {"family": family}
        if rule.from_prefix is not None:
            args.update(src=str(rule.from_prefix.network_address), src_len=rule.from_prefix.prefixlen)
        if rule.to_prefix is not None:
            args.update(dst=str(rule.to_prefix.network_address), dst_len=rule.to_prefix.prefixlen)
        if rule.invert:
            args["flags"] = FIB_RULE_INVERT
        if rule.iif is not None:
            args["iifname"] = rule.iif
        if rule.oif is not None:
            args["oifname"] = rule.oif
        if rule.tos is not None:
            args["tos"] = rule.tos
        if rule.fwmark is not None:
            args["fwmark"] = rule.fwmark
        if rule.fwmask is not None:
            args["fwmask"] = rule.fwmask
        if rule.preference is not None:
            args["priority"] = rule.preference
        if rule.goto is not None:
            args.update(goto=rule.goto, action=RULE_ACTIONS["goto"])
        elif rule.type is not None:
            if rule.type not in RULE_ACTIONS:
                raise NetlinkOpError(_errno.EINVAL, f"rule type {rule.type!r}")
            args["action"] = RULE_ACTIONS[rule.type]
        else:
            args["action"] = RULE_ACTIONS["lookup"]
        if rule.table is not None:
            args["table"] = rule.table
        realms = _realms(rule.realms)
        if realms is not None:
            args["flow"] = realms
        if rule.suppress_prefixlength is not None:
            args["suppress_prefixlen"] = rule.suppress_prefixlength
        if rule.suppress_ifgroup is not None:
            args["suppress_ifgroup"] = _named_number(rule.suppress_ifgroup, {"default": 0}, "interface group")
        if rule.uidrange is not None:
            args["uid_range"] = f"{rule.uidrange[0]}:{rule.uidrange[1]}"
        if rule.l3mdev:
            args["l3mdev"] = 1
        args["protocol"] = (
            _named_number(rule.protocol, PROTOCOLS, "protocol") if rule.protocol else RTPROT_KEEPALIVED
        )
        if rule.ipproto is not None:
            args["ip_proto"] = _named_number(rule.ipproto, IP_PROTOCOLS, "IP protocol")
        if rule.sport is not None:
            args["sport_range"] = f"{rule.sport[0]}:{rule.sport[1]}"
        if rule.dport is not None:
            args["dport_range"] = f"{rule.dport[0]}:{rule.dport[1]}"
        if rule.tunnel_id is not None:
            args["tun_id"] = rule.tunnel_id
        return args

    def add_rule(self, rule: Rule) -> bool:
        """Add a virtual/static rule; False if an identical rule exists."""
        return self._call(
            f"add rule pref {rule.preference}",
            self.ipr.rule,
            "add",
            (_errno.EEXIST,),
            **self._rule_args(rule),
        )

    def del_rule(self, rule: Rule) -> bool:
        """Remove a rule; False if there is none like it."""
        return self._call(
            f"del rule pref {rule.preference}",
            self.ipr.rule,
            "del",
            (_errno.ENOENT,),
            **self._rule_args(rule),
        )

    # -- promote_secondaries ----------------------------------------------------------------

    def set_promote_secondaries(self, ifname: str) -> bool:
        """``promote_secondaries``: removing one VIP must not take its subnet's others with it."""
        return self.sysctl.set_conf(socket.AF_INET, ifname, "promote_secondaries", 1)

    # -- VMAC ------------------------------------------------------------------------------

    def add_vmac(
        self,
        vmac: Vmac,
        parent: str,
        *,
        family: int = socket.AF_INET,
        link_local: IPv6Address | None = None,
        before_up: Callable[[LinkInfo], object] | None = None,
    ) -> LinkInfo:
        """Create (or adopt) the macvlan VMAC of an instance and bring it up (behaviour.md §V7).

        Mode private on ``parent``, MAC ``vmac.mac``, name ``vmac.ifname``, the parent's
        interface group unless ``vmac.group``. IPv6 address generation is off (every router
        of the segment has a VMAC with this MAC, so the kernel's EUI-64 link-locals would
        collide in DAD); as Keepalived 2.2.7 does, an IPv4 VMAC gets no IPv6 at all
        (``disable_ipv6``: no MLD reports from the virtual MAC) and an IPv6 VMAC gets
        ``link_local`` (default: the EUI-64 of the virtual MAC; 2.2.7 copies the parent's
        link-local instead) with ``nodad``. IPv4 VMAC sysctls: on the VMAC ``arp_ignore=1``,
        ``accept_local=1``, ``rp_filter=0`` (``all.rp_filter`` lowered to 0 with every other
        interface raised to the old value, so their behaviour stays the same), on the parent
        ``arp_ignore=1`` and ``arp_filter=1``; originals restored by :meth:`restore_sysctls`.
        An existing macvlan with the same name, parent and MAC is adopted; any other
        interface of that name is an error (EEXIST). ``before_up(info)`` runs just before
        the VMAC is brought up (the firewall's IGMP/MLD filter must be there first).
        """
        base = self.link(parent)
        mac = vmac.mac.lower()
        try:
            existing: LinkInfo | None = self.link(vmac.ifname)
        except NetlinkOpError as e:
            if e.errno != _errno.ENODEV:
                raise
            existing = None
        if existing is not None:
            if (
                existing.kind != "macvlan"
                or existing.link != base.ifindex
                or (existing.mac or "").lower() != mac
            ):
                raise NetlinkOpError(
                    _errno.EEXIST, f"add VMAC {vmac.ifname}: the name belongs to another interface"
                )
        else:
            args: dict[str, Any] = {
                "ifname": vmac.ifname,
                "kind": "macvlan",
                "link": base.ifindex,
                "macvlan_mode": "private",
                "address": mac,
            }
            group = vmac.group if vmac.group is not None else base.group
            if group:
                args["group"] = group
            self._call(f"add VMAC {vmac.ifname}", self.ipr.link, "add", (_errno.EEXIST,), **args)
        info = self.link(vmac.ifname)
        s = self.sysctl
        try:
            s.set_conf(socket.AF_INET6, info.ifname, "addr_gen_mode", 1)  # IN6_ADDR_GEN_MODE_NONE
            if family == socket.AF_INET:
                s.set_conf(socket.AF_INET6, info.ifname, "disable_ipv6", 1)
        except NetlinkOpError as e:
            if e.errno != _errno.ENOENT or family == socket.AF_INET6:
                raise  # (no /proc/sys/net/ipv6 at all is fine for an IPv4 VMAC)
        if family == socket.AF_INET:
            self._vmac_sysctls(info.ifname, base.ifname)
        if before_up is not None:
            before_up(info)
        self._call(f"set VMAC {vmac.ifname} up", self.ipr.link, "set", index=info.ifindex, state="up")
        if family == socket.AF_INET6:
            ll = link_local if link_local is not None else eui64_link_local(mac)
            self.add_address(
                IpAddress(address=IPv6Interface((ll.packed, 64)), nodad=True), ifindex=info.ifindex
            )
        return self.link(info.ifindex)

    def _vmac_sysctls(self, ifname: str, parent: str) -> None:
        s = self.sysctl
        s.set_conf(socket.AF_INET, ifname, "arp_ignore", 1)
        s.set_conf(socket.AF_INET, ifname, "accept_local", 1)
        s.set_conf(socket.AF_INET, ifname, "rp_filter", 0)
        s.set_conf(socket.AF_INET, parent, "arp_ignore", 1)
        s.set_conf(socket.AF_INET, parent, "arp_filter", 1)
        # the effective rp_filter is max(all, interface): the VMAC's 0 needs all=0
        all_rp = s.conf(socket.AF_INET, "all", "rp_filter")
        if all_rp != "0":
            conf = s.path("net", "ipv4", "conf")
            for entry in sorted(p.name for p in conf.iterdir()):
                if entry in ("all", ifname):
                    continue
                try:
                    if int(s.conf(socket.AF_INET, entry, "rp_filter")) < int(all_rp):
                        s.set_conf(socket.AF_INET, entry, "rp_filter", all_rp)
                except (NetlinkOpError, ValueError):
                    continue  # the interface went away meanwhile
            s.set_conf(socket.AF_INET, "all", "rp_filter", 0)

    def del_vmac(self, ifname: str) -> bool:
        """Delete a VMAC; False if it is already gone. Only macvlan interfaces are deleted."""
        try:
            info = self.link(ifname)
        except NetlinkOpError as e:
            if e.errno == _errno.ENODEV:
                return False
            raise
        if info.kind != "macvlan":
            raise NetlinkOpError(_errno.EINVAL, f"del VMAC {ifname}: not a macvlan interface")
        return self._call(f"del VMAC {ifname}", self.ipr.link, "del", (_errno.ENODEV,), index=info.ifindex)

    def restore_sysctls(self) -> None:
        """Put back every sysctl changed through this object (at shutdown)."""
        self.sysctl.restore()


# --------------------------------------------------------------------------- the reflector


class LinkEventKind(enum.Enum):
    ADDED = "added"
    DELETED = "deleted"
    UP = "up"  # became IFF_UP and IFF_RUNNING
    DOWN = "down"  # lost IFF_UP or IFF_RUNNING
    CHANGED = "changed"  # renamed, or a new MAC


class AddressEventKind(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class LinkEvent:
    kind: LinkEventKind
    ifindex: int
    ifname: str
    flags: int
    mac: str | None = None

    @property
    def up(self) -> bool:
        return self.flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING


@dataclass(frozen=True, slots=True)
class AddressEvent:
    kind: AddressEventKind
    ifindex: int
    address: IPInterfaceT
    label: str | None = None
    flags: int = 0

    @property
    def ip(self) -> IPAddressT:
        return self.address.ip


@dataclass(frozen=True, slots=True)
class Overrun:
    """The kernel dropped notifications (socket buffer full). The monitor re-read links and
    addresses and reported the differences as ordinary events after this one; anything
    else the consumer caches from netlink should be re-read too."""


RtnlEvent = LinkEvent | AddressEvent | Overrun

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
_RTM_NEWLINK, _RTM_DELLINK, _RTM_GETLINK = 16, 17, 18
_RTM_NEWADDR, _RTM_DELADDR, _RTM_GETADDR = 20, 21, 22
_NLMSG_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_AF_BRIDGE = 7
_IFLA_ADDRESS, _IFLA_IFNAME = 1, 3
_IFA_ADDRESS, _IFA_LOCAL, _IFA_LABEL, _IFA_FLAGS = 1, 2, 3, 8


@functools.lru_cache(maxsize=4096)
def _ifaddr(data: bytes, off: int, end: int) -> AddressInfo | None:
    """One ``ifaddrmsg`` with its attributes (an RTM_NEWADDR/DELADDR payload), as
    :func:`_address_info` decodes pyroute2's; None for other families or no address."""
    if end - off < _IFADDRMSG.size:
        return None
    family, prefixlen, flags, scope, index = _IFADDRMSG.unpack_from(data, off)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    attrs = _rtattrs(data, off + _IFADDRMSG.size, end)
    raw = attrs.get(_IFA_LOCAL) or attrs.get(_IFA_ADDRESS)
    if raw is None or len(raw) != (4 if family == socket.AF_INET else 16):
        return None
    if _IFA_FLAGS in attrs and len(attrs[_IFA_FLAGS]) >= 4:
        flags = _U32.unpack_from(attrs[_IFA_FLAGS])[0]
    label = attrs[_IFA_LABEL].rstrip(b"\0").decode(errors="replace") if _IFA_LABEL in attrs else None
    return AddressInfo(index, _interface(raw, prefixlen), scope, flags, label)


def _interface(raw: bytes, prefixlen: int) -> IPInterfaceT:
    # the same VIPs come and go: building ipaddress objects is most of the decoding cost
    return IPv4Interface((raw, prefixlen)) if len(raw) == 4 else IPv6Interface((raw, prefixlen))


def _messages(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """``(type, seq, payload offset, end)`` of each netlink message in a buffer."""
    off, size = 0, len(data)
    while off + 16 <= size:
        length, mtype, _flags, seq, _pid = _NLMSG_HDR.unpack_from(data, off)
        if length < 16 or off + length > size:
            return  # truncated or garbage: nothing after it can be trusted
        yield mtype, seq, off + 16, off + length
        off += (length + 3) & ~3


def _rtattrs(data: bytes, off: int, end: int) -> dict[int, bytes]:
    """The route attributes between ``off`` and ``end`` (type without the nested/byte-order bits)."""
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        length, atype = _RTATTR.unpack_from(data, off)
        if length < 4 or off + length > end:
            break
        out[atype & 0x3FFF] = data[off + 4 : off + length]
        off += (length + 3) & ~3
    return out


@dataclass(frozen=True, slots=True)
class _Link:
    ifname: str
    flags: int
    mac: str | None

    @property
    def up(self) -> bool:
        return self.flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING


class _ReaderLoop(Protocol):
    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_reader(self, fd: int) -> bool: ...


SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; not exported by the socket module


class RtnlMonitor:
    """Link and address notifications from the kernel, as typed events.

    ``links`` (ifindex -> name/flags/MAC) and ``addresses`` (set of (ifindex, address)) are
    the current state: seeded by dumps when the monitor opens, then kept up to date by
    :meth:`read`. Events are emitted only for real changes (the kernel repeats RTM_NEWLINK
    for statistics and RTM_NEWADDR for lifetime updates). Bridge-port notifications
    (family AF_BRIDGE) are ignored. ``sock`` lets tests feed crafted messages.
    """

    def __init__(
        self, *, sock: socket.socket | None = None, rcvbuf: int | None = None, seed: bool = True
    ) -> None:
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
            try:
                if rcvbuf is not None:
                    try:  # beyond net.core.rmem_max when we may (root)
                        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
                    except PermissionError:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.sock.setblocking(False)
        self.links: dict[int, _Link] = {}
        self.addresses: set[tuple[int, IPInterfaceT]] = set()
        self._seq = 0
        self._loop: _ReaderLoop | None = None
        self.overruns = 0
        if seed:
            self._reseed()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        if self._loop is not None:
            self.detach()
        self.sock.close()

    def __enter__(self) -> RtnlMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def link_name(self, ifindex: int) -> str | None:
        link = self.links.get(ifindex)
        return link.ifname if link else None

    # -- the loop --------------------------------------------------------------------------

    def attach(self, loop: _ReaderLoop, callback: Callable[[RtnlEvent], object]) -> None:
        """Watch the socket on ``loop``; ``callback(event)`` for each event, in order."""

        def on_readable() -> None:
            for ev in self.read():
                callback(ev)

        self._loop = loop
        loop.add_reader(self.fileno(), on_readable)

    def detach(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.fileno())
            self._loop = None

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> list[RtnlEvent]:
        """Everything queued, decoded (non-blocking; an empty list when nothing is)."""
        events: list[RtnlEvent] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return events
            except OSError as e:
                if e.errno != _errno.ENOBUFS:
                    raise
                self.overruns += 1
                log.warning(
                    "netlink monitor overrun: kernel dropped notifications, re-reading links and addresses"
                )
                events.append(Overrun())
                events.extend(self._resync())
                continue
            events.extend(self.feed(data))

    def feed(self, data: bytes) -> list[RtnlEvent]:
        """Decode one buffer of netlink messages into events, updating the state."""
        events: list[RtnlEvent] = []
        for mtype, _seq, off, end in _messages(data):
            self._apply(mtype, data, off, end, events)
        return events

    def _apply(self, mtype: int, data: bytes, off: int, end: int, events: list[RtnlEvent] | None) -> None:
        if mtype in (_RTM_NEWLINK, _RTM_DELLINK) and end - off >= _IFINFOMSG.size:
            family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, off)
            if family == _AF_BRIDGE:  # bridge-port notifications repeat the port's link
                return
            attrs = _rtattrs(data, off + _IFINFOMSG.size, end)
            name = (
                attrs[_IFLA_IFNAME].rstrip(b"\0").decode(errors="replace") if _IFLA_IFNAME in attrs else None
            )
            mac = ":".join(f"{b:02x}" for b in attrs[_IFLA_ADDRESS]) if _IFLA_ADDRESS in attrs else None
            self._link(index, name, flags, mac, mtype == _RTM_DELLINK, events)
        elif mtype in (_RTM_NEWADDR, _RTM_DELADDR) and (a := _ifaddr(data, off, end)) is not None:
            self._addr(a.ifindex, a.address, a.label, a.flags, mtype == _RTM_DELADDR, events)

    def _link(
        self,
        index: int,
        name: str | None,
        flags: int,
        mac: str | None,
        deleted: bool,
        events: list[RtnlEvent] | None,
    ) -> None:
        old = self.links.get(index)
        if deleted:
            if old is None:
                return
            del self.links[index]
            self.addresses = {a for a in self.addresses if a[0] != index}
            if events is not None:
                events.append(
                    LinkEvent(LinkEventKind.DELETED, index, name or old.ifname, flags, mac or old.mac)
                )
            return
        new = _Link(
            name or (old.ifname if old else ""), flags, mac if mac is not None else (old.mac if old else None)
        )
        self.links[index] = new
        if events is None:
            return
        if old is None:
            events.append(LinkEvent(LinkEventKind.ADDED, index, new.ifname, flags, new.mac))
            return
        if (old.ifname, old.mac) != (new.ifname, new.mac):
            events.append(LinkEvent(LinkEventKind.CHANGED, index, new.ifname, flags, new.mac))
        if old.up != new.up:
            kind = LinkEventKind.UP if new.up else LinkEventKind.DOWN
            events.append(LinkEvent(kind, index, new.ifname, flags, new.mac))

    def _addr(
        self,
        index: int,
        address: IPInterfaceT,
        label: str | None,
        flags: int,
        deleted: bool,
        events: list[RtnlEvent] | None,
    ) -> None:
        key = (index, address)
        if deleted:
            if key not in self.addresses:
                return
            self.addresses.discard(key)
            kind = AddressEventKind.REMOVED
        else:
            if key in self.addresses:
                return
            self.addresses.add(key)
            kind = AddressEventKind.ADDED
        if events is not None:
            events.append(AddressEvent(kind, index, address, label, flags))

    # -- seeding and resync --------------------------------------------------------------------

    def _dump(self, msg_type: int, body: bytes, timeout: float = 5.0) -> None:
        """Request a dump and apply its replies (and anything interleaved) without events."""
        self._seq += 1
        seq = self._seq
        self.sock.send(_NLMSG_HDR.pack(16 + len(body), msg_type, _NLM_F_REQUEST_DUMP, seq, 0) + body)
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while True:
            if not poller.poll(timeout * 1000):
                raise NetlinkOpError(_errno.ETIMEDOUT, "netlink monitor dump")
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == _errno.ENOBUFS:
                    continue  # notifications lost while dumping: the dump itself is current
                raise
            done = False
            for mtype, mseq, off, end in _messages(data):
                if mseq == seq and mtype == _NLMSG_DONE:
                    done = True
                elif mseq == seq and mtype == _NLMSG_ERROR:
                    err = -_I32.unpack_from(data, off)[0]
                    if err:
                        raise NetlinkOpError(err, "netlink monitor dump")
                else:
                    self._apply(mtype, data, off, end, None)
            if done:
                return

    def _reseed(self) -> None:
        self.links.clear()
        self.addresses.clear()
        self._dump(_RTM_GETLINK, struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0))
        self._dump(_RTM_GETADDR, struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0))

    def _resync(self) -> Iterator[RtnlEvent]:
        """After an overrun: re-read everything and report what changed meanwhile."""
        old_links, old_addrs = dict(self.links), set(self.addresses)
        self._reseed()
        for index, old in old_links.items():
            if index not in self.links:
                yield LinkEvent(LinkEventKind.DELETED, index, old.ifname, old.flags, old.mac)
        for index, new in self.links.items():
            old_link = old_links.get(index)
            if old_link is None:
                yield LinkEvent(LinkEventKind.ADDED, index, new.ifname, new.flags, new.mac)
                continue
            if (old_link.ifname, old_link.mac) != (new.ifname, new.mac):
                yield LinkEvent(LinkEventKind.CHANGED, index, new.ifname, new.flags, new.mac)
            if old_link.up != new.up:
                kind = LinkEventKind.UP if new.up else LinkEventKind.DOWN
                yield LinkEvent(kind, index, new.ifname, new.flags, new.mac)
        for index, addr in sorted(old_addrs - self.addresses, key=str):
            yield AddressEvent(AddressEventKind.REMOVED, index, addr)
        for index, addr in sorted(self.addresses - old_addrs, key=str):
            yield AddressEvent(AddressEventKind.ADDED, index, addr)
