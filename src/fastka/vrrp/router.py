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
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastka.errors import NetlinkOpError
from fastka.notify import ScriptRunner, VrrpNotifier
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
    Netlink,
    Overrun,
    RtnlEvent,
    RtnlMonitor,
)
from fastka.vrrp.sockets import RecvSocket4, RecvSocket6, SendSocket4, SendSocket6
from fastka.vrrp.sync import SyncGroup
from fastka.vrrp.track import Trackers

if TYPE_CHECKING:
    from fastka.config.model import Config, IpAddress, VrrpInstance
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

FAULT_NODEV = "nodev"
FAULT_SADDR = "saddr"
FAULT_CONFIG = "config"


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
    """One instance's I/O: implements :class:`fastka.vrrp.instance.InstanceIO`."""

    def __init__(self, router: Router, cfg: VrrpInstance) -> None:
        self.router = router
        self.cfg = cfg
        self.name = cfg.name
        self.family = AF_INET6 if cfg.family == "inet6" else AF_INET
        self.engine = router.engine
        self.sid = self.engine.add_slot(cfg.virtual_router_id)
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
        self.garp_timers: list[Any] = []
        self.send_key: tuple[Any, ...] | None = None
        self.recv_key: tuple[Any, ...] | None = None
        self.saddr: bytes | None = None
        self._expect: Expect | None = None
        self.attached = False
        self.removed_vips_check = False
        self.inst = Instance(cfg, self)
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

    def attach(self, now: float) -> None:
        """Open (or share) the sockets and register with the engine, if the interface exists."""
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
            if not self.attached or changed:
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
        self.release()
        send = r.shared_send(send_key, ifname, ifindex, ttl if cfg.unicast else None)
        send.users.add(self.sid)
        self.send_key = send_key
        rid = r.shared_recv(recv_key, ifname, ifindex, unicast_src, self.protocol)
        rid.users.add(self.sid)
        self.recv_key = recv_key
        assert rid.rid is not None
        self._expect = self.expect()
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
        )
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
        for vip in self.all_addresses():
            r.address_op(True, f"({self.name}) add {vip.address}", vip, self.vip_ifname(vip))
        if r.netlink is None:
            return
        for route in self.cfg.virtual_routes:
            r.netlink_op(f"({self.name}) add route {route.dst}", r.netlink.add_route, route)
        for rule in self.cfg.virtual_rules:
            r.netlink_op(f"({self.name}) add rule", r.netlink.add_rule, rule)

    def remove_addresses(self, *, only_present: bool = False) -> None:
        """Remove rules, routes, eVIPs and VIPs; ``only_present``: skip what the netlink
        monitor does not show (start-up clean-up, without a request per absent address)."""
        r = self.router
        if r.stopping and not r.release_on_stop:
            return  # -V: the addresses stay (the peer still hears our priority 0)
        if r.netlink is not None:
            for rule in reversed(self.cfg.virtual_rules):
                r.netlink_op(f"({self.name}) del rule", r.netlink.del_rule, rule)
            for route in reversed(self.cfg.virtual_routes):
                r.netlink_op(f"({self.name}) del route {route.dst}", r.netlink.del_route, route)
        for vip in reversed(self.all_addresses()):
            ifname = self.vip_ifname(vip)
            if only_present and not r.address_present(vip, ifname):
                continue
            r.address_op(False, f"({self.name}) del {vip.address}", vip, ifname)

    def _garp_burst(self, repeat: int) -> None:
        if repeat <= 0:
            return
        by_if: dict[str, list[IpAddress]] = {}
        for vip in self.all_addresses():
            by_if.setdefault(self.vip_ifname(vip), []).append(vip)
        for ifname, vips in by_if.items():
            sender = self.router.garp_sender(ifname)
            if sender is None:
                continue
            router_flag = any(v.address.version == 6 for v in vips) and self.router.ipv6_forwarding(ifname)
            sender.send_burst([v.address.ip for v in vips], repeat, router=router_flag)

    def _garp_later(self, delay: float, repeat: int) -> None:
        if delay <= 0 or repeat <= 0:
            return
        holder: list[Any] = []

        def fire() -> None:
            with contextlib.suppress(ValueError):
                self.garp_timers.remove(holder[0])
            self._garp_burst(repeat)

        t = self.router.loop.call_later(delay, fire)
        holder.append(t)
        self.garp_timers.append(t)

    def garp_master(self) -> None:
        cfg = self.cfg
        g = self.router.config.global_defs
        self._garp_burst(cfg.garp_master_repeat)
        if not g.vrrp_min_garp:
            self._garp_later(cfg.garp_master_delay, cfg.garp_master_repeat)
        if cfg.garp_master_refresh > 0:
            self.garp_timers.append(
                self.router.loop.call_periodic(
                    cfg.garp_master_refresh, self._garp_burst, cfg.garp_master_refresh_repeat
                )
            )

    def garp_lower_prio(self) -> None:
        cfg = self.cfg
        self._garp_burst(cfg.garp_lower_prio_repeat)
        self._garp_later(cfg.garp_lower_prio_delay, cfg.garp_lower_prio_repeat)

    def cancel_garps(self) -> None:
        for t in self.garp_timers:
            t.cancel()
        self.garp_timers.clear()

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
    ) -> None:
        self.loop = loop
        self.config = config
        self.netlink = netlink
        self.monitor = monitor
        self.on_change = on_change
        self.release_on_stop = release_on_stop
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
        self.quiet_resume: set[str] = set()

    # -- helpers used by slots -----------------------------------------------------------------

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

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
        try:
            p4 = self.netlink.primary_ipv4(iface.index, exclude=self._our_vips)
            ll6 = self.netlink.ipv6_link_local(iface.index)
        except NetlinkOpError as exc:
            log.warning("cannot read the addresses of %s: %s", iface.name, exc)
            return
        iface.primary4 = p4.packed if p4 is not None else None
        iface.link_local6 = ll6.packed if ll6 is not None else None
        iface.addrs_valid = True

    def address_op(self, add: bool, what: str, vip: IpAddress, ifname: str) -> None:
        """Add or remove one VIP (the fast rtnetlink path; pyroute2 when it is not open)."""
        index = self.ifindex(ifname)
        if index is None:
            if add:
                log.error("%s failed: interface %s does not exist", what, ifname)
            return
        if self.addr_ops is not None:
            fn = self.addr_ops.add_address if add else self.addr_ops.del_address
            self.netlink_op(what, fn, vip, index)
        elif self.netlink is not None:
            fn = self.netlink.add_address if add else self.netlink.del_address
            self.netlink_op(what, fn, vip, index)

    def address_present(self, vip: IpAddress, ifname: str) -> bool:
        """Whether the netlink monitor shows ``vip`` on ``ifname`` (as of the last event)."""
        if self.monitor is None:
            return True
        if self._present is None:
            self._present = {(index, a.ip) for index, a in self.monitor.addresses}
        index = self.ifindex(ifname)
        return index is not None and (index, vip.address.ip) in self._present

    def netlink_op(self, what: str, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except (NetlinkOpError, OSError) as exc:
            log.error("%s failed: %s", what, exc)

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
        if slot.name in self.quiet_resume and slot.inst.transitions <= 1:
            return  # a reload that changed nothing for this MASTER tells nobody (Keepalived)
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
        if slot.check_unicast_src and slot.cfg.unicast and src not in slot.peers:
            inst = slot.inst
            inst._once("notpeer", logging.INFO, "unicast source address %s not a unicast peer", _fmt(src))
            return
        if flags & FLAG_OLD_UNICAST_CHECKSUM:
            slot.inst._once(
                "oldcsum", logging.INFO, "peer %s uses the old unicast VRRPv3 checksum", _fmt(src)
            )
        slot.inst.on_advert(
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

    def engine_send_error(self, sid: int, err: int) -> None:
        slot = self.by_sid.get(sid)
        name = slot.name if slot is not None else "?"
        log.warning("(%s) cannot send adverts: %s", name, os.strerror(err))

    # -- start ---------------------------------------------------------------------------------

    def start(self, *, resume: dict[str, str] | None = None, reload: bool = False) -> None:
        """Build and start everything (in the VRRP child, in its network namespace).

        ``resume``: instance name -> state of the previous incarnation (MASTERs resume at
        once); ``reload``: it was a reload, so resumed MASTERs are not notified again
        unless ``fifo_write_vrrp_states_on_reload``."""
        config = self.config
        g = config.global_defs
        now = self.loop.time()
        if self.netlink is None:
            self.netlink = Netlink()
        if self.monitor is None:
            self.monitor = RtnlMonitor()
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
            for vip in slot.all_addresses():
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
        if reload and not g.fifo_write_vrrp_states_on_reload:
            self.quiet_resume = {n for n, st in resume.items() if st == "MASTER"}
        for slot in self.slots.values():
            if resume.get(slot.name) != "MASTER" and self.release_on_stop:
                # Keepalived removes what a previous run may have left (non-masters)
                slot.remove_addresses(only_present=True)
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
        for slot in self.slots.values():
            slot.inst.start(now, resume_master=resume.get(slot.name) == "MASTER")
        for grp in self.groups.values():
            grp.update(now, "startup")
        self.changed()

    def _create_vmacs(self) -> None:
        if self.netlink is None:
            return
        for slot in self.slots.values():
            vmac = slot.cfg.use_vmac
            if vmac is None:
                continue
            base = self.iface(slot.base_ifname)
            if not base.exists:
                continue
            try:
                self.netlink.add_vmac(
                    vmac,
                    slot.base_ifname,
                    family=socket.AF_INET6 if slot.family == AF_INET6 else socket.AF_INET,
                )
                self.vmacs.append(vmac.ifname)
            except (NetlinkOpError, OSError) as exc:
                log.error("(%s) cannot create VMAC %s: %s", slot.name, vmac.ifname, exc)
        if self.monitor is not None and self.vmacs:
            self._drain_monitor()

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
        """A VIP of ours disappeared: which MASTER lost one it should hold?"""
        self._vip_check_pending = False
        if self.monitor is None:
            return
        present = {a[1].ip for a in self.monitor.addresses}
        now = self.loop.time()
        for slot in self.slots.values():
            if slot.inst.state != State.MASTER:
                continue
            for vip in slot.all_addresses():
                if not vip.no_track and vip.address.ip not in present:
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
        return out
