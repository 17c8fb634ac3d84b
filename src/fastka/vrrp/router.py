"""The VRRP router: every instance of a configuration, on one event loop.

:class:`Router` builds, for each ``vrrp_instance``, the state machine
(:class:`fastka.vrrp.instance.Instance`) and its :class:`Slot` -- the instance's
:class:`~fastka.vrrp.instance.InstanceIO`: it turns the state machine's requests into
engine calls (adverts, timers), netlink changes (VIPs, eVIPs, virtual routes and rules),
gratuitous ARPs / unsolicited NAs and notifications. Around them:

* sockets: one send socket per (interface, family) and one receive socket per (interface,
  family, protocol, unicast source), shared by the instances on it and demultiplexed by
  VRID in the engine (``fastka.vrrp.engine``), as Keepalived's socket pool;
* the netlink reflector (:class:`fastka.vrrp.netlink.RtnlMonitor`): an interface going
  down or away, or losing the address adverts are sent from, faults the instances on it
  (and clears the fault when it comes back); a VIP deleted behind a MASTER's back makes it
  give up with a priority-0 advert; a missing interface at start-up is reported and its
  instances wait in FAULT until it appears;
* tracking (:mod:`fastka.vrrp.track`), sync groups (:mod:`fastka.vrrp.sync`) and
  notifications (:mod:`fastka.notify`);
* logs: transitions and their reasons at NOTICE (in the state machine), the first
  refused packet of each reason per instance at INFO (then only counted, until the next
  transition), never a line per packet in the steady state.

The process framework's face (status, dumps, reload, stop) is
:class:`fastka.vrrp.subsystem.VrrpSubsystem`.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastka.errors import NetlinkOpError
from fastka.notify import ScriptRunner, VrrpNotifier, default_script_user
from fastka.vrrp import firewall
from fastka.vrrp.addresses import AddressOps
from fastka.vrrp.arp import GarpSender
from fastka.vrrp.codec import (
    AF_INET,
    AF_INET6,
    FLAG_ADDRESS_MISMATCH,
    FLAG_OLD_UNICAST_CHECKSUM,
    IPPROTO_AH,
    IPPROTO_VRRP,
    VRRP_AUTH_AH,
    VRRP_AUTH_PASS,
    VRRP_MCAST_GROUP4_PACKED,
    Expect,
    Reason,
)
from fastka.vrrp.engine import Engine
from fastka.vrrp.instance import Instance, State, Transition
from fastka.vrrp.netlink import (
    AddressEvent,
    AddressEventKind,
    LinkEvent,
    LinkEventKind,
    LinkInfo,
    Netlink,
    Overrun,
    RtnlEvent,
    RtnlMonitor,
)
from fastka.vrrp.sockets import RecvSocket4, RecvSocket6, SendSocket4, SendSocket6
from fastka.vrrp.sync import SyncGroup
from fastka.vrrp.track import Trackers

if TYPE_CHECKING:
    from fastka.config.model import Config, IpAddress, Route, Rule, VrrpInstance
    from fastka.loop import Loop

__all__ = ["REASON_NAMES", "Iface", "Router", "Slot"]

log = logging.getLogger("fastka.vrrp")

IFF_UP = 0x1
IFF_RUNNING = 0x40

# status/metrics names of the drop reasons (docs/status.md: lower case, short)
REASON_NAMES: dict[int, str] = {
    Reason.TOO_SHORT: "length",
    Reason.BAD_IP_HEADER: "ip_header",
    Reason.BAD_IP_PROTOCOL: "ip_protocol",
    Reason.UNKNOWN_VRID: "vrid",
    Reason.AH_UNEXPECTED: "auth",
    Reason.AH_MISSING: "auth",
    Reason.BAD_LENGTH: "length",
    Reason.BAD_TTL: "ttl",
    Reason.BAD_VERSION: "version",
    Reason.BAD_AUTH_TYPE: "auth",
    Reason.AUTH_TYPE_MISMATCH: "auth",
    Reason.AUTH_DATA_MISMATCH: "auth",
    Reason.BAD_AH_HEADER: "auth",
    Reason.BAD_AH_ICV: "auth",
    Reason.BAD_AH_SPI: "auth",
    Reason.AH_SEQUENCE: "auth",
    Reason.ADVER_INT_MISMATCH: "interval",
    Reason.BAD_TYPE: "type",
    Reason.BAD_IP_TOTAL_LENGTH: "length",
    Reason.BAD_CHECKSUM: "checksum",
    Reason.EXPECTED_UNICAST: "destination",
    Reason.EXPECTED_MULTICAST: "destination",
    Reason.ADDRESS_MISMATCH: "address_list",
}
# what a log line says about each reason
_REASON_TEXT: dict[int, str] = {
    Reason.TOO_SHORT: "packet too short",
    Reason.BAD_IP_HEADER: "bad IP header",
    Reason.BAD_IP_PROTOCOL: "not a VRRP packet",
    Reason.UNKNOWN_VRID: "unknown VRID",
    Reason.AH_UNEXPECTED: "received AH header but auth type not AH",
    Reason.AH_MISSING: "no AH header but auth type is AH",
    Reason.BAD_LENGTH: "length does not match the address count",
    Reason.BAD_TTL: "invalid TTL/hop limit (expect 255)",
    Reason.BAD_VERSION: "wrong VRRP version",
    Reason.BAD_AUTH_TYPE: "invalid auth type",
    Reason.AUTH_TYPE_MISMATCH: "auth type differs from ours",
    Reason.AUTH_DATA_MISMATCH: "invalid password",
    Reason.BAD_AH_HEADER: "bad IPSEC-AH header",
    Reason.BAD_AH_ICV: "invalid IPSEC-AH HMAC-MD5 value",
    Reason.BAD_AH_SPI: "invalid IPSEC-AH SPI",
    Reason.AH_SEQUENCE: "IPSEC-AH sequence number already processed",
    Reason.ADVER_INT_MISMATCH: "advertisement interval mismatch",
    Reason.BAD_TYPE: "invalid packet type",
    Reason.BAD_IP_TOTAL_LENGTH: "IP total length mismatch",
    Reason.BAD_CHECKSUM: "invalid checksum",
    Reason.EXPECTED_UNICAST: "expected unicast but received multicast",
    Reason.EXPECTED_MULTICAST: "expected multicast but received unicast",
    Reason.ADDRESS_MISMATCH: "address list differs",
}

# refusals that mean the two routers are configured differently: logged as warnings
_CONFIG_MISMATCH = frozenset(
    {
        Reason.AH_UNEXPECTED,
        Reason.AH_MISSING,
        Reason.BAD_VERSION,
        Reason.AUTH_TYPE_MISMATCH,
        Reason.AUTH_DATA_MISMATCH,
        Reason.BAD_AH_ICV,
        Reason.ADVER_INT_MISMATCH,
        Reason.ADDRESS_MISMATCH,
        Reason.EXPECTED_UNICAST,
        Reason.EXPECTED_MULTICAST,
    }
)

MONITOR_RCVBUF = 4 << 20

FAULT_NODEV = "nodev"
FAULT_SADDR = "saddr"
FAULT_CONFIG = "config"


def _addresses_of(cfg: VrrpInstance) -> list[IpAddress]:
    return [*cfg.virtual_ipaddress, *cfg.virtual_ipaddress_excluded]


def _fmt(addr: bytes) -> str:
    if len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    if len(addr) == 16:
        return str(ipaddress.IPv6Address(addr))
    return "?"


@dataclass(eq=False)
class Iface:
    """An interface by name, as the netlink reflector last reported it."""

    name: str
    index: int | None = None
    flags: int = 0
    mac: str | None = None
    primary4: bytes | None = None
    link_local6: bytes | None = None
    addrs_valid: bool = False
    garp: GarpSender | None = None

    @property
    def exists(self) -> bool:
        return self.index is not None

    @property
    def up(self) -> bool:
        return self.index is not None and self.flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING


@dataclass(eq=False)
class _SharedSocket:
    sock: Any
    users: set[int] = field(default_factory=set)
    rid: int | None = None


class _PacketSocket:
    """A send-only packet socket bound to one interface, for whole multicast frames
    (protocol 0: the kernel delivers it nothing)."""

    def __init__(self, ifname: str) -> None:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)
        try:
            s.bind((ifname, 0))
        except BaseException:
            s.close()
            raise
        self.sock = s

    def close(self) -> None:
        self.sock.close()


class Slot:
    """One instance's I/O: implements :class:`fastka.vrrp.instance.InstanceIO`.

    It remembers what it put into the kernel (Keepalived's ``set`` flags): the addresses,
    routes and rules added in this run (or by the previous incarnation of a resumed
    MASTER). Only those are removed when the instance leaves MASTER -- an address that
    was already there when we added it (an address owner's own interface address) stays,
    unless ``-X``/``--release-vips`` -- and a reload compares the new configuration with
    them, so that what stays is never removed and re-added.
    """

    def __init__(self, router: Router, cfg: VrrpInstance) -> None:
        self.router = router
        self.engine = router.engine
        self.sid = self.engine.add_slot(cfg.virtual_router_id)
        self.garp_timers: list[Any] = []
        self.refresh_timers: list[Any] = []  # garp_master_refresh and garp_extra_if, while MASTER
        self.send_key: tuple[Any, ...] | None = None
        self.recv_key: tuple[Any, ...] | None = None
        self.saddr: bytes | None = None
        self._expect: Expect | None = None
        self.attached = False
        # set: what this run added to the kernel; (address, interface) -> the address
        self.set_addresses: dict[tuple[Any, str], IpAddress] = {}
        self.set_routes: list[Route] = []
        self.set_rules: list[Rule] = []
        self.resumed = False  # a resumed MASTER: the addresses already there are ours
        # CHKSUM_COMPATIBILITY_AUTO: a peer uses the old unicast checksum, so do we
        self.old_checksum_detected = False
        self.extra_drops: dict[str, int] = {}  # refusals counted here, not in the engine
        self._configure(cfg)
        self.inst = Instance(cfg, self)

    def _configure(self, cfg: VrrpInstance) -> None:
        """Everything derived from the instance's configuration (start and reload)."""
        router = self.router
        self.cfg = cfg
        self.name = cfg.name
        self.family = AF_INET6 if cfg.family == "inet6" else AF_INET
        self.base_ifname = cfg.interface or ""
        vmac = cfg.use_vmac
        self.vmac_ifname = vmac.ifname if vmac is not None else None
        # adverts go out on (and come in through) the VMAC unless vmac_xmit_base
        self.io_ifname: str = (
            self.vmac_ifname
            if self.vmac_ifname is not None and vmac is not None and not vmac.xmit_base
            else self.base_ifname
        )
        self.vips = [
            v for v in cfg.virtual_ipaddress if (v.address.version == 6) == (self.family == AF_INET6)
        ]
        self.vip_packed = b"".join(v.address.ip.packed for v in self.vips)
        auth = cfg.authentication
        self.auth_type = 0
        self.auth_data = b""
        if cfg.version == 2 and auth is not None:
            self.auth_type = VRRP_AUTH_AH if auth.auth_type == "AH" else VRRP_AUTH_PASS
            self.auth_data = auth.auth_data
        self.protocol = IPPROTO_AH if self.auth_type == VRRP_AUTH_AH else IPPROTO_VRRP
        g = router.config.global_defs
        self.pseudo_header = not (cfg.v3_checksum_as_v2 or g.v3_checksum_as_v2)
        self.adver_int_field = (
            round(cfg.advert_int * 100) if cfg.version == 3 else max(1, round(cfg.advert_int))
        )
        self.peers = [p.address.packed for p in cfg.unicast_peer]
        self.check_unicast_src = cfg.check_unicast_src or g.vrrp_check_unicast_src

    @property
    def old_checksum(self) -> bool:
        """Our VRRPv3 unicast adverts carry the checksum of Keepalived < 1.3.6 (224.0.0.18
        as the pseudo-header destination): configured (``old_unicast_checksum`` without
        ``never``) or detected in a peer's adverts."""
        cfg = self.cfg
        if not cfg.unicast or cfg.version != 3 or self.family != AF_INET or not self.pseudo_header:
            return False
        return cfg.old_unicast_checksum == "auto" or (
            self.old_checksum_detected and cfg.old_unicast_checksum != "never"
        )

    def count_drop(self, what: str) -> None:
        self.extra_drops[what] = self.extra_drops.get(what, 0) + 1

    def __repr__(self) -> str:
        return f"<Slot {self.name} sid={self.sid} {self.inst.state.name}>"

    # -- interfaces and addresses ------------------------------------------------------------

    def vip_ifname(self, vip: IpAddress) -> str:
        """The interface a VIP lives on (its ``dev``, or the VMAC for the instance's own)."""
        if (
            self.vmac_ifname is not None
            and vip.dev == self.base_ifname
            and (vip.address.version == 6) == (self.family == AF_INET6)
        ):
            return self.vmac_ifname
        return vip.dev or self.base_ifname

    def all_addresses(self) -> list[IpAddress]:
        return [*self.cfg.virtual_ipaddress, *self.cfg.virtual_ipaddress_excluded]

    @property
    def addr_ifname(self) -> str:
        """Where our source address comes from: IPv4 from the base interface (a VMAC has
        no IPv4 address of its own), IPv6 the link-local of the interface we send on."""
        return self.base_ifname if self.family == AF_INET else self.io_ifname

    def source_address(self) -> bytes | None:
        cfg = self.cfg
        configured = cfg.unicast_src_ip or cfg.mcast_src_ip
        if configured is not None:
            return configured.packed
        if not self.addr_ifname:
            return None
        iface = self.router.iface(self.addr_ifname)
        self.router.refresh_addresses(iface)
        return iface.primary4 if self.family == AF_INET else iface.link_local6

    def expect(self) -> Expect:
        cfg = self.cfg
        return Expect(
            cfg.version,
            auth_type=self.auth_type if cfg.version == 2 else -1,
            auth_data=self.auth_data,
            adver_int=self.adver_int_field,
            unicast=cfg.unicast,
            v3_checksum_as_v2=not self.pseudo_header,
            old_unicast_checksum=cfg.old_unicast_checksum != "never",
            addresses=self.vip_packed if self.vip_packed else None,
            # Keepalived 2.2.7 ignores an advert whose address list differs from its own;
            # so do we: "a different VIP set" is a configuration error, not a master
            strict_addresses=True,
        )

    def attach(self, now: float, *, reopen: bool = False) -> None:
        """Open (or share) the sockets and register with the engine, if the interface
        exists; ``reopen``: the configuration changed (a reload), set everything again."""
        r = self.router
        inst = self.inst
        iface = r.iface(self.io_ifname) if self.io_ifname else None
        if iface is not None and not iface.exists:
            if self.attached:
                self.detach()
            missing = self.io_ifname
            if FAULT_NODEV not in inst.faults:
                log.error(
                    "(%s) interface %s does not exist: waiting in FAULT until it appears", self.name, missing
                )
            inst.set_fault(now, FAULT_NODEV, f"interface {missing} not found")
            return
        saddr = self.source_address()
        if saddr is None:
            if FAULT_SADDR not in inst.faults:
                log.warning(
                    "(%s) no usable %s source address on %s",
                    self.name,
                    "IPv4" if self.family == AF_INET else "IPv6 link-local",
                    self.addr_ifname,
                )
            inst.set_fault(now, FAULT_SADDR, f"no source address on {self.addr_ifname}")
            self.saddr = None
        else:
            changed = saddr != self.saddr
            self.saddr = saddr
            inst.saddr = saddr
            if not self.attached or changed or reopen:
                try:
                    self._open(iface)
                except OSError as exc:
                    log.error("(%s) cannot open VRRP sockets on %s: %s", self.name, self.io_ifname, exc)
                    inst.set_fault(now, FAULT_CONFIG, f"sockets: {exc}")
                    return
                except ValueError as exc:
                    log.error("(%s) %s", self.name, exc)
                    inst.set_fault(now, FAULT_CONFIG, str(exc))
                    return
            inst.clear_fault(now, FAULT_SADDR)
        inst.clear_fault(now, FAULT_NODEV)
        inst.clear_fault(now, FAULT_CONFIG)

    def _open(self, iface: Iface | None) -> None:
        r = self.router
        cfg = self.cfg
        ifname = iface.name if iface is not None else None
        ifindex = iface.index if iface is not None else None
        unicast_src = str(cfg.unicast_src_ip) if cfg.unicast and cfg.unicast_src_ip is not None else None
        ttl = cfg.unicast_ttl if cfg.unicast and cfg.unicast_ttl is not None else 255
        link = self.link_header(iface)
        if link is not None:
            send_key: tuple[Any, ...] = ("packet", ifname)
        else:
            send_key = (ifname, self.family, ttl if self.family == AF_INET6 and cfg.unicast else None)
        recv_key = (ifname, self.family, self.protocol, unicast_src)
        # the new sockets first, then give back the old ones: a socket that stays (a
        # reload) is never closed and reopened
        send = r.shared_send(send_key, ifname, ifindex, ttl if cfg.unicast else None)
        send.users.add(self.sid)
        if self.send_key is not None and self.send_key != send_key:
            r.unshare_send(self.send_key, self.sid)
        self.send_key = send_key
        if self.recv_key is not None and self.recv_key != recv_key:
            self.engine.detach(self.sid)
            r.unshare_recv(self.recv_key, self.sid)
            self.recv_key = None
        rid = r.shared_recv(recv_key, ifname, ifindex, unicast_src, self.protocol)
        rid.users.add(self.sid)
        self.recv_key = recv_key
        assert rid.rid is not None
        old_expect, self._expect = self._expect, self.expect()
        if old_expect is not None:
            # AH anti-replay: the sequence numbers already seen stay seen (Keepalived
            # carries them over a reload)
            self._expect.ah_last_seq = old_expect.ah_last_seq
        self.engine.attach(self.sid, rid.rid, self._expect)
        assert self.saddr is not None
        if cfg.unicast:
            dsts = self.peers
        else:
            dst = cfg.mcast_dst_ip
            dsts = [dst.packed] if dst is not None else []
        self.engine.set_advert(
            self.sid,
            send.sock.sock,
            family=self.family,
            version=cfg.version,
            priority=self.inst.effective_priority,
            adver_int=self.adver_int_field,
            addresses=self.vip_packed,
            auth_type=self.auth_type,
            auth_data=self.auth_data,
            src=self.saddr,
            dsts=dsts,
            multicast=not cfg.unicast,
            ttl=ttl,
            pseudo_header=self.pseudo_header,
            ifindex=ifindex or 0,
            interval=cfg.advert_int,
            link=link,
            checksum_dst=VRRP_MCAST_GROUP4_PACKED if self.old_checksum else None,
        )
        self.engine.set_late_limit(self.sid, self.inst.late_limit())
        self.attached = True

    def link_header(self, iface: Iface | None) -> bytes | None:
        """The Ethernet header of our multicast adverts, when they can go out as whole
        frames through a packet socket (the cheaper path: no route lookup, no IP output):
        multicast on an Ethernet interface. Unicast needs neighbour resolution: IP sockets."""
        if self.cfg.unicast or iface is None or not iface.mac or self.cfg.mcast_dst_ip is None:
            return None
        try:
            src_mac = bytes.fromhex(iface.mac.replace(":", ""))
        except ValueError:
            return None
        if len(src_mac) != 6 or src_mac == bytes(6):
            return None
        group = self.cfg.mcast_dst_ip.packed
        if self.family == AF_INET:  # RFC 1112: 01:00:5e + the group's low 23 bits
            dst_mac = b"\x01\x00\x5e" + bytes([group[1] & 0x7F]) + group[2:4]
            ethertype = b"\x08\x00"
        else:  # RFC 2464: 33:33 + the group's last 32 bits
            dst_mac = b"\x33\x33" + group[12:16]
            ethertype = b"\x86\xdd"
        return dst_mac + src_mac + ethertype

    def release(self) -> None:
        """Give back the shared sockets."""
        r = self.router
        if self.recv_key is not None:
            self.engine.detach(self.sid)
            r.unshare_recv(self.recv_key, self.sid)
            self.recv_key = None
        if self.send_key is not None:
            r.unshare_send(self.send_key, self.sid)
            self.send_key = None

    def detach(self) -> None:
        self.release()
        self.attached = False

    # -- InstanceIO --------------------------------------------------------------------------

    def send_advert(self, priority: int, *, reset_timer: bool = False) -> None:
        self.engine.send_now(self.sid, priority, reset_timer=reset_timer)

    def start_adverts(self) -> None:
        self.engine.start_adverts(self.sid)

    def stop_adverts(self) -> None:
        self.engine.stop_adverts(self.sid)

    def arm_down_timer(self, when: float) -> None:
        self.engine.arm_down(self.sid, when)

    def cancel_down_timer(self) -> None:
        self.engine.cancel_down(self.sid)

    def follow(self, master: bytes | None, priority: int, adver_int: int, down_interval: float) -> None:
        self.engine.follow(self.sid, master, priority, adver_int, down_interval)

    def set_priority(self, priority: int) -> None:
        self.engine.set_priority(self.sid, priority)

    def add_addresses(self) -> None:
        r = self.router
        adopt, self.resumed = self.resumed, False
        for vip in self.all_addresses():
            self._add_address(vip, adopt=adopt)
        for route in self.cfg.virtual_routes:
            self._add_route(route, adopt=adopt)
        for rule in self.cfg.virtual_rules:
            self._add_rule(rule, adopt=adopt)
        r.changed_addresses()

    def _add_address(self, vip: IpAddress, *, adopt: bool = False) -> bool:
        """Add one address; True if we added it (it is ours now)."""
        ifname = self.vip_ifname(vip)
        res = self.router.address_op(True, f"({self.name}) add {vip.address}", vip, ifname)
        if res or (res is False and adopt):
            self.set_addresses[(vip.address, ifname)] = vip
        return bool(res)

    def _del_address(self, vip: IpAddress, ifname: str) -> None:
        self.set_addresses.pop((vip.address, ifname), None)
        self.router.address_op(False, f"({self.name}) del {vip.address}", vip, ifname)

    def _add_route(self, route: Route, *, adopt: bool = False) -> None:
        r = self.router
        if r.netlink is None:
            return
        res = r.netlink_op(f"({self.name}) add route {route.dst}", r.netlink.add_route, route)
        if (res or (res is False and adopt)) and route not in self.set_routes:
            self.set_routes.append(route)

    def _add_rule(self, rule: Rule, *, adopt: bool = False) -> None:
        r = self.router
        if r.netlink is None:
            return
        res = r.netlink_op(f"({self.name}) add rule", r.netlink.add_rule, rule)
        if (res or (res is False and adopt)) and rule not in self.set_rules:
            self.set_rules.append(rule)

    def _del_route(self, route: Route) -> None:
        r = self.router
        if route in self.set_routes:
            self.set_routes.remove(route)
        if r.netlink is not None:
            r.netlink_op(f"({self.name}) del route {route.dst}", r.netlink.del_route, route)

    def _del_rule(self, rule: Rule) -> None:
        r = self.router
        if rule in self.set_rules:
            self.set_rules.remove(rule)
        if r.netlink is not None:
            r.netlink_op(f"({self.name}) del rule", r.netlink.del_rule, rule)

    def remove_addresses(self, *, force: bool = False, only_present: bool = False) -> None:
        """Remove the rules, routes, eVIPs and VIPs we set (``force`` or ``-X``: every one
        configured); ``only_present``: skip what the netlink monitor does not show
        (start-up clean-up, without a request per absent address)."""
        r = self.router
        if r.stopping and not r.release_on_stop:
            return  # -V: the addresses stay (the peer still hears our priority 0)
        force = force or r.release_vips
        cfg = self.cfg
        rules = [*self.set_rules, *(x for x in cfg.virtual_rules if force and x not in self.set_rules)]
        routes = [*self.set_routes, *(x for x in cfg.virtual_routes if force and x not in self.set_routes)]
        for rule in reversed(rules):
            self._del_rule(rule)
        for route in reversed(routes):
            self._del_route(route)
        targets = dict(self.set_addresses)
        if force:
            for vip in self.all_addresses():
                targets.setdefault((vip.address, self.vip_ifname(vip)), vip)
        for (_addr, ifname), vip in reversed(targets.items()):
            if only_present and not r.address_present(vip, ifname):
                continue
            self._del_address(vip, ifname)
        self.set_addresses.clear()
        r.changed_addresses()

    def release_dropped(self, old: VrrpInstance) -> None:
        """A MASTER after a reload, first half: remove what we set that the new
        configuration does not have (with ``-X`` also what the old one had and we did not
        set); what is in both is not touched."""
        r = self.router
        cfg = self.cfg
        force = r.release_vips
        for rule in reversed(list(self.set_rules)):
            if rule not in cfg.virtual_rules:
                self._del_rule(rule)
        for route in reversed(list(self.set_routes)):
            if route not in cfg.virtual_routes:
                self._del_route(route)
        if force:
            for rule in old.virtual_rules:
                if rule not in cfg.virtual_rules and rule not in self.set_rules:
                    self._del_rule(rule)
            for route in old.virtual_routes:
                if route not in cfg.virtual_routes and route not in self.set_routes:
                    self._del_route(route)
        wanted = {(v.address, self.vip_ifname(v)): v for v in self.all_addresses()}
        for key, vip in list(self.set_addresses.items()):
            if wanted.get(key) != vip:  # gone, or its attributes changed
                self._del_address(vip, key[1])
        if force:
            for vip in (*old.virtual_ipaddress, *old.virtual_ipaddress_excluded):
                key = (vip.address, vip.dev or old.interface or "")
                if key not in wanted and key not in self.set_addresses:
                    self._del_address(vip, key[1])
        r.changed_addresses()

    def add_new(self) -> list[IpAddress]:
        """Second half: add what the new configuration has and we have not set. Returns
        the addresses added."""
        cfg = self.cfg
        added = [
            vip
            for vip in self.all_addresses()
            if (vip.address, self.vip_ifname(vip)) not in self.set_addresses and self._add_address(vip)
        ]
        for route in cfg.virtual_routes:
            if route not in self.set_routes:
                self._add_route(route)
        for rule in cfg.virtual_rules:
            if rule not in self.set_rules:
                self._add_rule(rule)
        self.router.changed_addresses()
        return added

    def reconfigure(self, now: float, cfg: VrrpInstance) -> VrrpInstance:
        """A reload matched this instance with ``cfg`` (same identity), first step: the
        new settings (the router then moves addresses between MASTERs, every MASTER
        releases what it dropped -- :meth:`release_dropped` --, and only then
        :meth:`finish_reconfigure` adds: an address moving between two instances is
        never removed after its new owner added it). Returns the old configuration."""
        old = self.cfg
        self._configure(cfg)
        self.inst.reconfigure(now, cfg)
        return old

    def finish_reconfigure(self, now: float, old: VrrpInstance) -> None:
        """Second half: as MASTER the addresses it gained (announced with GARPs, as
        Keepalived does), its refresh timers if they changed; the sockets and adverts."""
        cfg = self.cfg
        if self.inst.state == State.MASTER:
            added = self.add_new()
            if added:
                self._garp_burst(cfg.garp_master_repeat, added)
                if not self.router.config.global_defs.vrrp_min_garp:
                    self._garp_later(cfg.garp_master_delay, cfg.garp_master_repeat, added)
            if (old.garp_master_refresh, old.garp_master_refresh_repeat, old.garp_extra_if,
                    old.garp_extra_if_all) != (cfg.garp_master_refresh, cfg.garp_master_refresh_repeat,
                                               cfg.garp_extra_if, cfg.garp_extra_if_all):  # fmt: skip
                self._cancel_refresh()
                self._start_refresh()
        self.attach(now, reopen=True)

    def _garp_burst(self, repeat: int, vips: Iterable[IpAddress] | None = None) -> None:
        if repeat <= 0:
            return
        by_if: dict[str, list[IpAddress]] = {}
        for vip in self.all_addresses() if vips is None else vips:
            by_if.setdefault(self.vip_ifname(vip), []).append(vip)
        for ifname, group in by_if.items():
            sender = self.router.garp_sender(ifname)
            if sender is None:
                continue
            router_flag = any(v.address.version == 6 for v in group) and self.router.ipv6_forwarding(ifname)
            sender.send_burst([v.address.ip for v in group], repeat, router=router_flag)

    def _garp_later(self, delay: float, repeat: int, vips: list[IpAddress] | None = None) -> None:
        if delay <= 0 or repeat <= 0:
            return
        holder: list[Any] = []

        def fire() -> None:
            with contextlib.suppress(ValueError):
                self.garp_timers.remove(holder[0])
            self._garp_burst(repeat, vips)

        t = self.router.loop.call_later(delay, fire)
        holder.append(t)
        self.garp_timers.append(t)

    def _garp_extra_if(self) -> None:
        """``garp_extra_if``: the addresses on VMACs (``all``: every address) again, so
        that switches keep their MACs (the adverts refresh only the advert interface's)."""
        vmacs = set(self.router.vmacs)
        vips = [v for v in self.all_addresses() if self.cfg.garp_extra_if_all or self.vip_ifname(v) in vmacs]
        self._garp_burst(1, vips)

    def _start_refresh(self) -> None:
        cfg = self.cfg
        loop = self.router.loop
        if cfg.garp_master_refresh > 0:
            self.refresh_timers.append(
                loop.call_periodic(cfg.garp_master_refresh, self._garp_burst, cfg.garp_master_refresh_repeat)
            )
        if cfg.garp_extra_if:
            self.refresh_timers.append(loop.call_periodic(cfg.garp_extra_if, self._garp_extra_if))

    def _cancel_refresh(self) -> None:
        for t in self.refresh_timers:
            t.cancel()
        self.refresh_timers.clear()

    def garp_master(self) -> None:
        cfg = self.cfg
        g = self.router.config.global_defs
        self._garp_burst(cfg.garp_master_repeat)
        if not g.vrrp_min_garp:
            self._garp_later(cfg.garp_master_delay, cfg.garp_master_repeat)
        self._cancel_refresh()
        self._start_refresh()

    def garp_lower_prio(self) -> None:
        cfg = self.cfg
        self._garp_burst(cfg.garp_lower_prio_repeat)
        self._garp_later(cfg.garp_lower_prio_delay, cfg.garp_lower_prio_repeat)

    def cancel_garps(self) -> None:
        for t in self.garp_timers:
            t.cancel()
        self.garp_timers.clear()
        self._cancel_refresh()

    def notify(self, state: State, priority: int) -> None:
        self.router.notifier_instance(self, state, priority)

    def notify_event(self, event: str, priority: int) -> None:
        self.router.notifier_event(self, event, priority)

    def transition(self, t: Transition) -> None:
        if self._expect is not None and self.auth_type == VRRP_AUTH_AH and t.new != State.BACKUP:
            # AH anti-replay: a peer that restarts counts from its start again; once
            # its adverts stopped mattering (we are master, or faulty) accept a new run
            self._expect.ah_last_seq = -1
        self.engine.set_listening(self.sid, t.new in (State.BACKUP, State.MASTER))
        self.engine.reset_reports(self.sid)
        if not self.cfg.accept and (t.new == State.MASTER or t.old == State.MASTER):
            self.router.firewall_accept_mode(self, t.new == State.MASTER)
        self.router.changed()


class _SyncIO:
    def __init__(self, router: Router, name: str) -> None:
        self.router = router
        self.name = name

    def notify_group(self, state: State) -> None:
        self.router.notifier_group(self.name, state)

    def group_transition(self, t: Transition) -> None:
        self.router.changed()


class Router:
    """Runs every VRRP instance of ``config`` on ``loop``."""

    def __init__(
        self,
        loop: Loop,
        config: Config,
        *,
        netlink: Netlink | None = None,
        monitor: RtnlMonitor | None = None,
        on_change: Callable[[], None] | None = None,
        release_on_stop: bool = True,
        release_vips: bool = False,
    ) -> None:
        self.loop = loop
        self.config = config
        self.netlink = netlink
        self.monitor = monitor
        self.on_change = on_change
        self.release_on_stop = release_on_stop
        # -X: on leaving MASTER remove every configured address, not only those we added
        self.release_vips = release_vips
        self.engine = Engine(loop, self)
        self.ifaces: dict[str, Iface] = {}
        self.send_socks: dict[tuple[Any, ...], _SharedSocket] = {}
        self.recv_socks: dict[tuple[Any, ...], _SharedSocket] = {}
        self.slots: dict[str, Slot] = {}
        self.by_sid: dict[int, Slot] = {}
        self.groups: dict[str, SyncGroup] = {}
        self.addr_ops: AddressOps | None = None
        self.runner: ScriptRunner | None = None
        self.notifier: VrrpNotifier | None = None
        self.trackers: Trackers | None = None
        self.vmacs: list[str] = []
        self.firewall: firewall.Firewall | None = None
        self.receiver_drops: dict[int, int] = {}
        self.started = False
        self.stopping = False
        self._vip_check_pending = False
        self._addr_refresh_pending: set[str] = set()
        self._our_vips: set[Any] = set()
        self._present: set[tuple[int, Any]] | None = None
        self.reloads = 0

    # -- helpers used by slots -----------------------------------------------------------------

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def changed_addresses(self) -> None:
        """We added or removed addresses: what the monitor showed is stale."""
        self._present = None

    def iface(self, name: str) -> Iface:
        i = self.ifaces.get(name)
        if i is None:
            i = self.ifaces[name] = Iface(name)
            self._update_iface_from_monitor(i)
        return i

    def ifindex(self, name: str) -> int | None:
        i = self.iface(name)
        return i.index

    def _update_iface_from_monitor(self, i: Iface) -> None:
        if self.monitor is None:
            return
        for index, link in self.monitor.links.items():
            if link.ifname == i.name:
                if i.index != index:
                    i.addrs_valid = False
                i.index, i.flags, i.mac = index, link.flags, link.mac
                return
        i.index, i.flags, i.mac = None, 0, None
        i.addrs_valid = False

    def refresh_addresses(self, iface: Iface) -> None:
        if iface.addrs_valid or iface.index is None or self.netlink is None:
            if iface.index is None:
                iface.primary4 = iface.link_local6 = None
            return
        # one dump for every interface whose addresses are not known (at start: all)
        try:
            found = self.netlink.source_addresses(exclude=self._our_vips)
        except NetlinkOpError as exc:
            log.warning("cannot read the addresses of %s: %s", iface.name, exc)
            return
        for i in self.ifaces.values():
            if i.index is not None and not i.addrs_valid:
                p4, ll6 = found.get(i.index, (None, None))
                i.primary4 = p4.packed if p4 is not None else None
                i.link_local6 = ll6.packed if ll6 is not None else None
                i.addrs_valid = True

    def address_op(self, add: bool, what: str, vip: IpAddress, ifname: str) -> bool | None:
        """Add or remove one VIP (the fast rtnetlink path; pyroute2 when it is not open):
        True done, False nothing to do (already there / not there), None failed."""
        index = self.ifindex(ifname)
        if index is None:
            if add:
                log.error("%s failed: interface %s does not exist", what, ifname)
            return None
        if self.addr_ops is not None:
            fn = self.addr_ops.add_address if add else self.addr_ops.del_address
            return self.netlink_op(what, fn, vip, index)
        if self.netlink is not None:
            fn = self.netlink.add_address if add else self.netlink.del_address
            return self.netlink_op(what, fn, vip, index)
        return None

    def address_present(self, vip: IpAddress, ifname: str) -> bool:
        """Whether the netlink monitor shows ``vip`` on ``ifname`` (as of the last event)."""
        if self.monitor is None:
            return True
        if self._present is None:
            self._present = {(index, a.ip) for index, a in self.monitor.addresses}
        index = self.ifindex(ifname)
        return index is not None and (index, vip.address.ip) in self._present

    def netlink_op(self, what: str, fn: Callable[..., object], *args: object) -> bool | None:
        """``fn(*args)``, its errors logged: True/False as ``fn`` says, None on failure."""
        try:
            return bool(fn(*args))
        except (NetlinkOpError, OSError) as exc:
            log.error("%s failed: %s", what, exc)
            return None

    def shared_send(
        self, key: tuple[Any, ...], ifname: str | None, ifindex: int | None, hops: int | None
    ) -> _SharedSocket:
        s = self.send_socks.get(key)
        if s is None:
            if key[0] == "packet":
                sock: Any = _PacketSocket(ifname or "")
            elif key[1] == AF_INET:
                sock = SendSocket4(ifname, ifindex)
            else:
                sock = SendSocket6(ifname, ifindex, unicast_hops=hops)
            s = self.send_socks[key] = _SharedSocket(sock)
        return s

    def unshare_send(self, key: tuple[Any, ...], sid: int) -> None:
        s = self.send_socks.get(key)
        if s is None:
            return
        s.users.discard(sid)
        if not s.users:
            del self.send_socks[key]
            s.sock.close()

    def shared_recv(
        self,
        key: tuple[Any, ...],
        ifname: str | None,
        ifindex: int | None,
        unicast_src: str | None,
        protocol: int,
    ) -> _SharedSocket:
        s = self.recv_socks.get(key)
        if s is None:
            rcvbuf = 1 << 20
            if key[1] == AF_INET:
                sock: Any = RecvSocket4(
                    ifname, ifindex, unicast_src=unicast_src, protocol=protocol, rcvbuf=rcvbuf
                )
            else:
                sock = RecvSocket6(ifname, ifindex, unicast_src=unicast_src, rcvbuf=rcvbuf)
            s = _SharedSocket(sock)
            s.rid = self.engine.add_receiver(sock.sock, key[1])
            self.recv_socks[key] = s
        return s

    def unshare_recv(self, key: tuple[Any, ...], sid: int) -> None:
        s = self.recv_socks.get(key)
        if s is None:
            return
        s.users.discard(sid)
        if not s.users:
            del self.recv_socks[key]
            if s.rid is not None:
                drops, _trunc = self.engine.receiver_stats(s.rid)
                for k, v in drops.items():
                    self.receiver_drops[k] = self.receiver_drops.get(k, 0) + v
                self.engine.remove_receiver(s.rid)
            s.sock.close()

    def garp_sender(self, ifname: str) -> GarpSender | None:
        i = self.iface(ifname)
        if not i.exists or not i.mac:
            return None
        if i.flags & 0x80:  # IFF_NOARP
            return None
        if i.garp is None:
            g = self.config.global_defs
            garp_iv, gna_iv = g.vrrp_garp_interval, g.vrrp_gna_interval
            for grp in self.config.garp_groups:
                if ifname in grp.interfaces:
                    garp_iv, gna_iv = grp.garp_interval, grp.gna_interval
            try:
                i.garp = GarpSender(self.loop, ifname, i.mac, garp_interval=garp_iv, gna_interval=gna_iv)
            except OSError as exc:
                log.error("cannot send gratuitous ARPs on %s: %s", ifname, exc)
                return None
        return i.garp

    def ipv6_forwarding(self, ifname: str) -> bool:
        if self.netlink is None:
            return False
        try:
            return self.netlink.forwarding(ifname)
        except (NetlinkOpError, OSError):
            return False

    # -- notifications ---------------------------------------------------------------------------

    def notifier_instance(self, slot: Slot, state: State, priority: int) -> None:
        if self.notifier is not None:
            self.notifier.instance(slot.cfg, state, priority)
        self.changed()

    def notifier_event(self, slot: Slot, event: str, priority: int) -> None:
        if self.notifier is not None:
            self.notifier.event(slot.cfg, event, priority)

    def notifier_group(self, name: str, state: State) -> None:
        cfg = self.config.vrrp_sync_groups.get(name)
        if self.notifier is not None and cfg is not None:
            self.notifier.group(cfg, state)
        self.changed()

    # -- EngineHandler -------------------------------------------------------------------------

    def engine_advert(self, sid: int, src: bytes, priority: int, adver_int: int, flags: int) -> None:
        slot = self.by_sid.get(sid)
        if slot is None:
            return
        inst = slot.inst
        if slot.check_unicast_src and slot.cfg.unicast and src not in slot.peers:
            slot.count_drop("unicast_source")
            inst._once("notpeer", logging.INFO, "unicast source address %s not a unicast peer", _fmt(src))
            return
        if inst.owner and slot.cfg.owner_ignore_adverts:
            # RFC 9568: the address owner does not listen (check 16)
            slot.count_drop("owner")
            inst._once(
                "owner", logging.INFO, "Dropping packet(s) from %s since we are address owner", _fmt(src)
            )
            return
        if (
            flags & FLAG_OLD_UNICAST_CHECKSUM
            and not slot.old_checksum
            and slot.cfg.old_unicast_checksum != "never"
        ):
            # CHKSUM_COMPATIBILITY_AUTO: answer in the peer's dialect from now on
            slot.old_checksum_detected = True
            log.info(
                "(%s) Setting unicast VRRPv3 checksum to old version (peer %s uses it)", slot.name, _fmt(src)
            )
            slot.attach(self.loop.time(), reopen=True)
        inst.on_advert(
            self.loop.time(), src, priority, adver_int, address_mismatch=bool(flags & FLAG_ADDRESS_MISMATCH)
        )

    def engine_down_timer(self, sid: int) -> None:
        slot = self.by_sid.get(sid)
        if slot is not None:
            slot.inst.on_down_timer(self.loop.time())

    def engine_drop(self, sid: int, reason: int, src: bytes) -> None:
        text = _REASON_TEXT.get(reason, f"reason {reason}")
        slot = self.by_sid.get(sid)
        if slot is None:
            if reason == Reason.UNKNOWN_VRID and not self.config.global_defs.log_unknown_vrids:
                log.debug("advert with an unknown VRID from %s ignored", _fmt(src))
            else:
                log.info(
                    "VRRP packet from %s ignored: %s (counted; further ones are not logged)", _fmt(src), text
                )
            return
        mismatch = reason in _CONFIG_MISMATCH
        log.log(
            logging.WARNING if mismatch else logging.INFO,
            "(%s) packet from %s ignored: %s%s (counted; not logged again until the next transition)",
            slot.name,
            _fmt(src),
            text,
            " -- are both routers configured alike?" if mismatch else "",
        )

    def engine_late(self, sid: int, gap: float) -> None:
        slot = self.by_sid.get(sid)
        if slot is not None:
            slot.inst.on_late(self.loop.time(), gap)

    def engine_send_error(self, sid: int, err: int) -> None:
        slot = self.by_sid.get(sid)
        name = slot.name if slot is not None else "?"
        log.warning("(%s) cannot send adverts: %s", name, os.strerror(err))

    # -- start ---------------------------------------------------------------------------------

    def start(self, *, resume: dict[str, str] | None = None) -> None:
        """Build and start everything (in the VRRP child, in its network namespace).

        ``resume``: instance name -> state of the previous incarnation of the child (a
        MASTER resumes at once, its addresses still in place)."""
        config = self.config
        g = config.global_defs
        now = self.loop.time()
        if self.netlink is None:
            self.netlink = Netlink()
        if self.monitor is None:
            # room for the events of a reload or a start-up that changes a thousand
            # addresses at once (an overrun costs a full re-read)
            self.monitor = RtnlMonitor(rcvbuf=MONITOR_RCVBUF)
        if self.addr_ops is None:
            self.addr_ops = AddressOps()
        self.monitor.attach(self.loop, self._on_rtnl)
        self.runner = ScriptRunner(
            self.loop,
            script_user=g.script_user,
            script_group=g.script_group,
            script_security=g.enable_script_security,
        )
        self.notifier = VrrpNotifier(self.loop, config, self.runner)
        for cfg in config.vrrp_instances.values():
            slot = Slot(self, cfg)
            self.slots[cfg.name] = slot
            self.by_sid[slot.sid] = slot
            for vip in _addresses_of(cfg):
                self._our_vips.add(vip.address.ip)
        for name, gcfg in config.vrrp_sync_groups.items():
            members = [self.slots[m].inst for m in gcfg.group if m in self.slots]
            if len(members) >= 1:
                self.groups[name] = SyncGroup(gcfg, members, _SyncIO(self, name))
        self.firewall = firewall.for_config(config)
        self._create_vmacs()
        self._firewall_vmacs()
        self.trackers = Trackers.build(
            config, {n: s.inst for n, s in self.slots.items()}, self.runner, self.loop
        )
        for name, tr in self.trackers.interfaces.items():
            tr.up = self.iface(name).up
        resume = resume or {}
        for slot in self.slots.values():
            if resume.get(slot.name) == "MASTER":
                slot.resumed = True
            elif self.release_on_stop and not slot.inst.owner:
                # Keepalived removes what a previous run may have left (not for an owner:
                # it becomes MASTER at once, and its address may be the interface's own)
                slot.remove_addresses(force=True, only_present=True)
            slot.attach(now)
        self._static_addresses()
        self.trackers.initialise(now, [s.inst for s in self.slots.values()])
        delay = max(g.vrrp_startup_delay, 0.0)
        if delay > 0:
            log.info("Delaying startup for %g seconds", delay)
            self.loop.call_later(delay, self._start_instances, resume)
        else:
            self._start_instances(resume)
        self.trackers.start()
        self.started = True

    def _start_instances(self, resume: dict[str, str]) -> None:
        now = self.loop.time()
        # A restarted child's MASTERs advertise first, all of them, and only then re-add
        # their addresses and send GARPs one by one: with a thousand instances that part
        # takes longer than a peer's master-down interval.
        early = [
            s for s in self.slots.values() if resume.get(s.name) == "MASTER" and s.inst.resumes_at_once()
        ]
        for slot in early:
            slot.send_advert(slot.inst.effective_priority)
        sent = {slot.name for slot in early}
        for slot in self.slots.values():
            slot.inst.start(
                now, resume_master=resume.get(slot.name) == "MASTER", advert_sent=slot.name in sent
            )
        for grp in self.groups.values():
            grp.update(now, "startup")
        self.changed()

    # -- reload --------------------------------------------------------------------------------

    def reload(self, config: Config) -> None:
        """Apply a new configuration by its difference (behaviour.md §R; issue 7).

        Instances are matched by identity (``VrrpInstance.key``: VRID, family, interface,
        unicast-ness, source address or VMAC and group -- not the name). A matched
        instance keeps its state, statistics, sockets and trackers' results: a MASTER
        stays MASTER (no election, no "Entering MASTER STATE", no notification; its
        first advert goes out at once), and of its addresses, routes and rules only the
        difference is applied -- what is in both is never removed and re-added -- with
        GARPs for the addresses it gained; a BACKUP listens again with a fresh
        master-down timer. A removed MASTER sends priority 0 and releases its
        addresses; removed instances are notified DELETED (``notify_deleted``) or FAULT.
        New instances start as at start-up. Sync groups are formed again from the new
        configuration, tracking state carries over (:meth:`Trackers.adopt`), static
        addresses, routes and rules are diffed too. With
        ``fifo_write_vrrp_states_on_reload`` the current states go to the FIFO again.
        """
        if not self.started or self.stopping:
            raise RuntimeError("the VRRP router is not running")
        now = self.loop.time()
        old_config = self.config
        g = config.global_defs
        self.reloads += 1
        old_slots = list(self.slots.values())
        # matched by identity only: whether the rest changed does not matter here (every
        # matched instance takes its new configuration), so no deep comparison
        by_key: dict[Any, Slot] = {}
        for slot in old_slots:
            by_key.setdefault(slot.cfg.key(), slot)
        slot_for: dict[int, Slot] = {}
        for cfg in config.vrrp_instances.values():
            kept = by_key.pop(cfg.key(), None)
            if kept is not None:
                slot_for[id(cfg)] = kept
        kept_slots = {id(s) for s in slot_for.values()}
        removed = [s for s in old_slots if id(s) not in kept_slots]
        # the old sync groups go first: a removed member must not move them
        old_groups, self.groups = self.groups, {}
        for slot in old_slots:
            slot.inst.sync = None
        for slot in removed:
            log.info("(%s) removed by the reload", slot.name)
            slot.inst.stop(now, deleted=True)
            self._drop_slot(slot)
        self.config = config
        self._reconfigure_globals(old_config)
        matched: list[tuple[Slot, VrrpInstance]] = []
        added: list[Slot] = []
        self.slots = {}
        for cfg in config.vrrp_instances.values():
            kept = slot_for.get(id(cfg))
            if kept is None:
                kept = Slot(self, cfg)
                self.by_sid[kept.sid] = kept
                added.append(kept)
            else:
                matched.append((kept, cfg))
            self.slots[cfg.name] = kept
        self._our_vips = {v.address.ip for c in config.vrrp_instances.values() for v in _addresses_of(c)}
        self._sync_vmacs()
        olds: list[VrrpInstance] = []
        for slot, cfg in matched:
            if slot.name != cfg.name:
                log.info("(%s) is now called %s (same virtual router)", slot.name, cfg.name)
            olds.append(slot.reconfigure(now, cfg))
        masters = [slot for slot, _ in matched if slot.inst.state == State.MASTER]
        self._move_addresses(masters)
        for (slot, _cfg), old in zip(matched, olds, strict=True):
            if slot in masters:
                slot.release_dropped(old)
        for (slot, _cfg), old in zip(matched, olds, strict=True):
            slot.finish_reconfigure(now, old)
        self._reload_firewall([s for s, _ in matched])
        for name, gcfg in config.vrrp_sync_groups.items():
            members = [self.slots[n].inst for n in gcfg.group if n in self.slots]
            if members:
                grp = self.groups[name] = SyncGroup(gcfg, members, _SyncIO(self, name))
                prev = old_groups.get(name)
                if prev is not None:  # the same group: its state goes on (no notification)
                    grp.state, grp.last_transition = prev.state, prev.last_transition
        self._reload_trackers(now, [s.inst for s, _ in matched], [s.inst for s in added])
        self._reload_sync_faults(now, [s.inst for s, _ in matched])
        for slot in added:
            slot.attach(now)
        for slot in added:
            slot.inst.start(now)
        if self.trackers is not None:
            self.trackers.start()
        for slot, _ in matched:
            slot.inst.reload_done(now)
        for grp in self.groups.values():
            grp.update(now, "reload")
        self._sync_static(old_config)
        if g.fifo_write_vrrp_states_on_reload and self.notifier is not None:
            self.notifier.fifo_states(
                [
                    *(
                        ("INSTANCE", s.name, s.inst.state.name, s.inst.effective_priority)
                        for s in self.slots.values()
                    ),
                    *(("GROUP", n, grp.state.name, 0) for n, grp in self.groups.items()),
                ]
            )
        log.info(
            "VRRP reload: %d instance(s) kept, %d added, %d removed",
            len(matched),
            len(added),
            len(removed),
        )
        self.changed()

    def _move_addresses(self, masters: list[Slot]) -> None:
        """An address one MASTER drops and another MASTER gains (same interface and
        attributes) stays in the kernel: only the record of who set it moves. (Keepalived
        may need two reloads for this; its man page says so.)"""
        wanted: dict[tuple[Any, str], tuple[Slot, IpAddress]] = {}
        for slot in masters:
            for vip in slot.all_addresses():
                wanted[(vip.address, slot.vip_ifname(vip))] = (slot, vip)
        for slot in masters:
            mine = {(v.address, slot.vip_ifname(v)) for v in slot.all_addresses()}
            for key, vip in list(slot.set_addresses.items()):
                heir = wanted.get(key)
                if key in mine or heir is None or heir[1] != vip or key in heir[0].set_addresses:
                    continue
                del slot.set_addresses[key]
                heir[0].set_addresses[key] = vip
                log.info("(%s) %s now belongs to %s", slot.name, vip.address, heir[0].name)

    def _drop_slot(self, slot: Slot) -> None:
        slot.cancel_garps()
        slot.detach()
        self.engine.remove_slot(slot.sid)
        self.by_sid.pop(slot.sid, None)

    def _reconfigure_globals(self, old: Config) -> None:
        g, og = self.config.global_defs, old.global_defs
        if self.runner is not None:
            self.runner.default_user = default_script_user(g.script_user, g.script_group)
            self.runner.script_security = g.enable_script_security
        if self.notifier is not None:
            self.notifier.reconfigure(self.config)
        if (g.vrrp_garp_interval, g.vrrp_gna_interval, self.config.garp_groups) != (
            og.vrrp_garp_interval,
            og.vrrp_gna_interval,
            old.garp_groups,
        ):
            for i in self.ifaces.values():  # made again with the new spacing when needed
                if i.garp is not None:
                    i.garp.close()
                    i.garp = None

    def _reload_trackers(self, now: float, kept: list[Instance], new: list[Instance]) -> None:
        assert self.runner is not None
        old = self.trackers
        self.trackers = Trackers.build(
            self.config, {n: s.inst for n, s in self.slots.items()}, self.runner, self.loop
        )
        if old is not None:
            self.trackers.adopt(old)
            old.stop()
        for name, tr in self.trackers.interfaces.items():
            tr.up = self.iface(name).up
        self.trackers.initialise(now, new)
        for inst in kept:
            self.trackers.apply(now, inst)

    def _reload_sync_faults(self, now: float, kept: list[Instance]) -> None:
        """The new groups' FAULT rule for the instances that run on: a member with a
        fault of its own faults the others; a group fault that no longer holds clears."""
        for grp in self.groups.values():
            faulty = [m for m in grp.members if m.own_faults]
            for m in grp.members:
                if faulty and m not in faulty and grp.fault_key not in m.faults:
                    m.set_fault(now, grp.fault_key, f"sync group {grp.name}: {faulty[0].name} is faulty")
                elif not faulty and grp.fault_key in m.faults:
                    m.clear_fault(now, grp.fault_key)
        for inst in kept:
            key = inst.sync.fault_key if inst.sync is not None else None
            for k in [k for k in inst.faults if k.startswith("sync:") and k != key]:
                inst.clear_fault(now, k)

    def _sync_vmacs(self) -> None:
        """Create the VMACs the configuration has and we lack; delete those it dropped."""
        wanted = {s.cfg.use_vmac.ifname for s in self.slots.values() if s.cfg.use_vmac is not None}
        for name in [n for n in self.vmacs if n not in wanted]:
            self.vmacs.remove(name)
            index = self.ifindex(name)
            if self.firewall is not None and index is not None:
                self.firewall.remove_vmac(index)
            if self.netlink is not None:
                self.netlink_op(f"del VMAC {name}", self.netlink.del_vmac, name)
        self._create_vmacs()

    def _reload_firewall(self, matched: list[Slot]) -> None:
        """The firewall of the new configuration; a MASTER without accept mode keeps its
        addresses blocked (under its new name, if renamed), one with it now unblocks."""
        fw = self.firewall = firewall.for_config(self.config)
        if fw is not None:
            owners = fw.owners()
            for slot in matched:
                if slot.inst.state != State.MASTER:
                    continue
                if not slot.cfg.accept:
                    self.firewall_accept_mode(slot, True)
                elif slot.name in owners:
                    self.firewall_accept_mode(slot, False)
        self._firewall_vmacs()

    def _sync_static(self, old: Config) -> None:
        """``static_ipaddress``/``static_routes``/``static_rules``: remove what went, add
        what came; what stays is not touched."""
        nl = self.netlink
        new = self.config
        if nl is None:
            return
        for ip in old.static_ipaddress:
            if ip not in new.static_ipaddress:
                self.netlink_op(
                    f"del static {ip.address}", nl.del_address, ip, self.ifindex(ip.dev) if ip.dev else None
                )
        for route in old.static_routes:
            if route not in new.static_routes:
                self.netlink_op(f"del static route {route.dst}", nl.del_route, route)
        for rule in old.static_rules:
            if rule not in new.static_rules:
                self.netlink_op("del static rule", nl.del_rule, rule)
        for ip in new.static_ipaddress:
            if ip not in old.static_ipaddress:
                self.netlink_op(
                    f"add static {ip.address}", nl.add_address, ip, self.ifindex(ip.dev) if ip.dev else None
                )
        for route in new.static_routes:
            if route not in old.static_routes:
                self.netlink_op(f"add static route {route.dst}", nl.add_route, route)
        for rule in new.static_rules:
            if rule not in old.static_rules:
                self.netlink_op("add static rule", nl.add_rule, rule)

    def _create_vmacs(self) -> None:
        if self.netlink is None:
            return
        for slot in self.slots.values():
            vmac = slot.cfg.use_vmac
            if vmac is None or vmac.ifname in self.vmacs:
                continue
            base = self.iface(slot.base_ifname)
            if not base.exists:
                continue
            # the IGMP/MLD filter goes in before the VMAC is up (its first reports too)
            vmac_filter = (
                functools.partial(self._vmac_filter, base.index, slot.family == AF_INET6)
                if self.firewall is not None and base.index is not None
                else None
            )
            try:
                self.netlink.add_vmac(
                    vmac,
                    slot.base_ifname,
                    family=socket.AF_INET6 if slot.family == AF_INET6 else socket.AF_INET,
                    before_up=vmac_filter,
                )
                self.vmacs.append(vmac.ifname)
            except (NetlinkOpError, OSError) as exc:
                log.error("(%s) cannot create VMAC %s: %s", slot.name, vmac.ifname, exc)
        if self.monitor is not None and self.vmacs:
            self._drain_monitor()

    def _vmac_filter(self, base_index: int, ipv6: bool, info: LinkInfo) -> None:
        if self.firewall is not None:
            self.firewall.add_vmac(info.ifindex, base_index, ipv6)

    def _firewall_vmacs(self) -> None:
        """Keepalived's IGMP/MLD (and router solicitation) filter on every VMAC."""
        fw = self.firewall
        if fw is None:
            return
        fw.retain(self.slots)  # after a reload: instances that are gone unblock their VIPs
        for slot in self.slots.values():
            if slot.vmac_ifname in self.vmacs:
                index, base = self.ifindex(slot.vmac_ifname), self.ifindex(slot.base_ifname)
                if index is not None and base is not None:
                    fw.add_vmac(index, base, slot.family == AF_INET6)

    def firewall_accept_mode(self, slot: Slot, master: bool) -> None:
        """no_accept: drop traffic to the VIPs while MASTER (nftables, as Keepalived)."""
        fw = self.firewall
        if fw is None:
            return
        if not master:
            log.info("(%s) removing firewall drop rule", slot.name)
            fw.clear(slot.name)
            return
        log.info("(%s) setting firewall drop rule", slot.name)
        by_name = slot.cfg.dont_track_primary and not self.config.global_defs.nftables_ifindex
        addrs = []
        for vip in slot.all_addresses():
            ifname = slot.vip_ifname(vip)
            addrs.append(firewall.FirewallAddress(vip.address.ip, self.ifindex(ifname) or 0, ifname, by_name))
        fw.set_master(slot.name, addrs)

    def _drain_monitor(self) -> None:
        """Apply pending netlink notifications now (e.g. a VMAC just created)."""
        assert self.monitor is not None
        for ev in self.monitor.read():
            self._on_rtnl(ev)

    def _static_addresses(self) -> None:
        nl = self.netlink
        if nl is None:
            return
        for ip in self.config.static_ipaddress:
            self.netlink_op(
                f"add static {ip.address}", nl.add_address, ip, self.ifindex(ip.dev) if ip.dev else None
            )
        for route in self.config.static_routes:
            self.netlink_op(f"add static route {route.dst}", nl.add_route, route)
        for rule in self.config.static_rules:
            self.netlink_op("add static rule", nl.add_rule, rule)

    # -- netlink events --------------------------------------------------------------------------

    def _on_rtnl(self, ev: RtnlEvent) -> None:
        self._present = None
        if self.stopping:
            return
        now = self.loop.time()
        if isinstance(ev, Overrun):
            for i in self.ifaces.values():
                i.addrs_valid = False
            return
        if isinstance(ev, LinkEvent):
            self._on_link(now, ev)
        elif isinstance(ev, AddressEvent):
            self._on_address(now, ev)

    def _on_link(self, now: float, ev: LinkEvent) -> None:
        affected: list[Iface] = []
        for i in self.ifaces.values():
            if i.name == ev.ifname or i.index == ev.ifindex:
                affected.append(i)
        for i in affected:
            was_exists, was_up = i.exists, i.up
            self._update_iface_from_monitor(i)
            if ev.kind in (LinkEventKind.ADDED, LinkEventKind.DELETED):
                i.addrs_valid = False
                if i.garp is not None:
                    i.garp.close()
                    i.garp = None
            if self.trackers is not None:
                tr = self.trackers.interfaces.get(i.name)
                if tr is not None:
                    tr.set_up(now, i.up)
            renamed = ev.kind == LinkEventKind.CHANGED  # a new MAC: rebuild the frames
            if i.exists != was_exists or (i.up and not was_up) or renamed:
                for slot in self.slots.values():
                    if slot.io_ifname == i.name:
                        if not i.exists or renamed:
                            slot.detach()
                        slot.attach(now)

    def _on_address(self, now: float, ev: AddressEvent) -> None:
        ip = ev.address.ip
        if ip in self._our_vips:
            if ev.kind == AddressEventKind.REMOVED and not self._vip_check_pending:
                self._vip_check_pending = True
                self.loop.call_soon(self._check_vips)
            return
        for i in self.ifaces.values():
            if i.index == ev.ifindex:
                i.addrs_valid = False
                self._addr_refresh_pending.add(i.name)
        if self._addr_refresh_pending:
            self.loop.call_soon(self._refresh_saddrs)

    def _refresh_saddrs(self) -> None:
        names, self._addr_refresh_pending = self._addr_refresh_pending, set()
        now = self.loop.time()
        for slot in self.slots.values():
            if slot.io_ifname in names or slot.addr_ifname in names:
                slot.attach(now)

    def _check_vips(self) -> None:
        """A VIP of ours disappeared: which MASTER lost one it holds?"""
        self._vip_check_pending = False
        if self.monitor is None:
            return
        present = {a[1].ip for a in self.monitor.addresses}
        now = self.loop.time()
        for slot in list(self.slots.values()):
            if slot.inst.state != State.MASTER:
                continue
            for vip in list(slot.set_addresses.values()):
                if vip.no_track or vip.address.ip in present:
                    continue
                if self.netlink is not None:
                    # the monitor may not have read our own re-add yet: ask the kernel
                    with contextlib.suppress(NetlinkOpError, OSError):
                        if self.netlink.has_address(vip.address.ip):
                            continue
                log.warning("(%s) virtual address %s was removed behind our back", slot.name, vip.address)
                slot.inst.address_removed(now, str(vip.address))
                break

    # -- stop ----------------------------------------------------------------------------------

    def stop(self, done: Callable[[], None]) -> None:
        """Graceful stop: MASTERs send priority 0 and release their addresses; STOP notifies."""
        if self.stopping:
            return
        self.stopping = True
        now = self.loop.time()
        if self.trackers is not None:
            self.trackers.stop()
        for slot in self.slots.values():
            slot.inst.stop(now)
        for grp in self.groups.values():
            grp.update(now, "stop")

        def finish() -> None:
            self.close()
            firewall.release()  # the table goes at exit (a reload keeps it)
            done()

        if self.notifier is not None:
            self.notifier.when_idle(finish, 1.0)
        else:
            finish()

    def close(self, *, keep_vmacs: set[str] | frozenset[str] = frozenset()) -> None:
        for slot in self.slots.values():
            slot.cancel_garps()
            self.engine.remove_slot(slot.sid)
            slot.detach()
        for key in list(self.recv_socks):
            s = self.recv_socks.pop(key)
            if s.rid is not None:
                self.engine.remove_receiver(s.rid)
            s.sock.close()
        for key in list(self.send_socks):
            self.send_socks.pop(key).sock.close()
        for i in self.ifaces.values():
            if i.garp is not None:
                i.garp.close()
                i.garp = None
        if self.netlink is not None:
            for name in self.vmacs:
                if name in keep_vmacs:
                    continue
                index = self.ifindex(name)
                if self.firewall is not None and index is not None:
                    self.firewall.remove_vmac(index)
                self.netlink_op(f"del VMAC {name}", self.netlink.del_vmac, name)
            with contextlib.suppress(Exception):
                self.netlink.restore_sysctls()
        self.vmacs.clear()
        if self.notifier is not None:
            self.notifier.close()
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        if self.netlink is not None:
            with contextlib.suppress(Exception):
                self.netlink.close()
            self.netlink = None
        if self.addr_ops is not None:
            self.addr_ops.close()
            self.addr_ops = None

    # -- introspection ---------------------------------------------------------------------------

    def instances(self) -> Iterable[Slot]:
        return self.slots.values()

    def drops(self, slot: Slot) -> dict[str, int]:
        out: dict[str, int] = {}
        for reason, n in self.engine.stats(slot.sid).drops.items():
            key = REASON_NAMES.get(reason, str(reason))
            out[key] = out.get(key, 0) + n
        for key, n in slot.extra_drops.items():
            out[key] = out.get(key, 0) + n
        return out
