"""IPVS from Python: a model of the table, the diff of two tables, and a netlink socket.

The model::

    svc = Service(addr="10.0.0.100", port=80, sched_name="rr")        # TCP by default
    web = Dest(addr="10.1.0.11", port=80, weight=2)                    # NAT by default
    table = Table()
    table.add(svc, [web, Dest(addr="10.1.0.12", port=80)])

A :class:`Service` is identified like Keepalived's ``vs_iseq()``: ``af + fwmark`` or
``af + protocol + addr + port`` (:attr:`Service.key`); a :class:`Dest` by ``af + addr +
port`` within its service. Everything else (scheduler, flags, persistence, weight,
forwarding, thresholds, tunnel) is an attribute that ``SET_SERVICE``/``SET_DEST`` can
change in place.

The diff (:func:`diff`) lists only what changed: new services and dests, ``SET_*`` for
changed attributes, ``DEL_*`` for removed ones; an unchanged entry never appears, so its
connections and counters survive. :func:`apply_ops` applies a diff to a model (what the
kernel would do), which the property tests use.

The socket (:class:`Ipvs`) sends many commands per ``sendmsg`` (:meth:`Ipvs.execute`),
checks every ACK and reports each failure as an :class:`~fastka.errors.IpvsError` naming
the service and dest, while the rest of the batch is still applied. Single commands
(:meth:`Ipvs.new_dest` ...) raise the error instead. Dumps come back as model objects.

Unit tests run unprivileged by passing a ``transport`` (:class:`Transport`), e.g.
:class:`fastka.ipvs.fake.FakeKernel`, instead of the netlink socket.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import subprocess
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from fastka._linux import NETLINK_GENERIC
from fastka.errors import IpvsError
from fastka.ipvs import codec
from fastka.ipvs.msg import (
    DAEMON,
    DEST,
    IP_VS_CONN_F_DROUTE,
    IP_VS_CONN_F_FWD_MASK,
    IP_VS_CONN_F_MASQ,
    IP_VS_CONN_F_TUNNEL,
    IP_VS_CONN_F_TUNNEL_TYPE_GUE,
    IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
    IP_VS_SCHEDNAME_MAXLEN,
    IP_VS_STATE_BACKUP,
    IP_VS_STATE_MASTER,
    IP_VS_SVC_F,
    IPVS_CMD,
    IPVS_GENL_NAME,
    MSG_MAX,
    NETLINK_CAP_ACK,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGHDR,
    SERVICE,
    SOL_NETLINK,
)

PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": socket.IPPROTO_SCTP}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}
FWD_METHODS = {
    "NAT": IP_VS_CONN_F_MASQ,
    "DR": IP_VS_CONN_F_DROUTE,
    "TUN": IP_VS_CONN_F_TUNNEL,
    "LOCAL": 1,  # IP_VS_CONN_F_LOCALNODE
}
FWD_NAMES = {v: k for k, v in FWD_METHODS.items()}
_ipvsadm_fwd = {
    IP_VS_CONN_F_MASQ: "Masq",
    IP_VS_CONN_F_DROUTE: "Route",
    IP_VS_CONN_F_TUNNEL: "Tunnel",
    1: "Local",
}


_AF_INET = int(socket.AF_INET)
_AF_INET6 = int(socket.AF_INET6)


def _normalise_addr(addr: str, af: int) -> tuple[str, int, bytes]:
    """(canonical text, family, 16-byte network-order address)."""
    af = int(af) or (_AF_INET6 if ":" in addr else _AF_INET)
    packed = socket.inet_pton(af, addr)  # OSError on a bad address
    return socket.inet_ntop(af, packed), af, packed.ljust(16, b"\0")


def _name(value: str, what: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) >= IP_VS_SCHEDNAME_MAXLEN:
        raise ValueError(f"{what} {value!r} longer than {IP_VS_SCHEDNAME_MAXLEN - 1} characters")
    return raw


def _u32(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{what} {value} out of range 0..2^32-1")


def _port(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} out of range 0..65535")


def parse_netmask(af: int, text: str) -> int:
    """``persistence_granularity`` as the kernel wants it: IPv4 ``255.255.255.0`` (or a
    prefix length) -> 0xFFFFFF00; IPv6 prefix length (``64``) -> 64."""
    if af == socket.AF_INET6:
        return int(text)
    if text.isdigit():
        plen = int(text)
        return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
    return int.from_bytes(socket.inet_aton(text), "big")


ServiceKey = tuple[int, int, str, int] | tuple[int, int]
DestKey = tuple[int, str, int]


@dataclass(frozen=True, slots=True)
class Service:
    """An IPVS virtual service (``struct ip_vs_service_user``, with IPv6 and PE).

    ``addr``/``port``/``protocol`` for an address service, or ``fwmark`` (non-zero) for
    a firewall-mark service. ``af`` defaults from ``addr`` (``AF_INET`` for fwmark).
    ``timeout`` is the persistence timeout in seconds; non-zero implies
    ``IP_VS_SVC_F_PERSISTENT`` (added as Keepalived does). ``netmask`` is the persistence
    granularity: an IPv4 mask as an integer or an IPv6 prefix length (default: host).
    ``flags`` are ``IP_VS_SVC_F_*`` (ONEPACKET, SCHED1..3 = sh/mh fallback/port, ...).
    """

    addr: str = ""
    port: int = 0
    protocol: int = socket.IPPROTO_TCP
    fwmark: int = 0
    af: int = 0
    sched_name: str = "wlc"
    flags: int = 0
    timeout: int = 0
    netmask: int = -1
    pe_name: str = ""
    record: bytes = field(init=False, repr=False, compare=False, hash=False)
    """The ``fk_ipvs_service`` record (``msg.SERVICE``) the codec encodes."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        af = self.af
        if self.addr:
            addr, af, packed = _normalise_addr(self.addr, af)
            set_(self, "addr", addr)
        else:
            if not self.fwmark:
                raise ValueError("a service needs an address or a fwmark")
            af = int(af) or _AF_INET
            packed = bytes(16)
        set_(self, "af", af)
        if self.fwmark:
            # A fwmark service has no protocol, address or port (they are not sent).
            set_(self, "protocol", 0)
            set_(self, "port", 0)
            set_(self, "addr", "")
            packed = bytes(16)
        _port(self.port, "port")
        _u32(self.fwmark, "fwmark")
        _u32(self.timeout, "persistence timeout")
        flags = self.flags & ~IP_VS_SVC_F.HASHED  # kernel-owned bit, shown in dumps only
        if self.timeout:
            flags |= IP_VS_SVC_F.PERSISTENT
        set_(self, "flags", int(flags))
        if self.netmask == -1:
            set_(self, "netmask", 128 if af == socket.AF_INET6 else 0xFFFFFFFF)
        _u32(self.netmask, "netmask")
        set_(
            self,
            "record",
            SERVICE.pack(
                packed,
                af,
                self.protocol,
                self.port,
                0,
                self.fwmark,
                self.flags,
                self.timeout,
                self.netmask,
                _name(self.sched_name, "scheduler"),
                _name(self.pe_name, "persistence engine"),
            ),
        )

    @property
    def key(self) -> ServiceKey:
        """Identity, as Keepalived's ``vs_iseq()``: (af, fwmark) or (af, protocol, addr, port)."""
        if self.fwmark:
            return (self.af, self.fwmark)
        return (self.af, self.protocol, self.addr, self.port)

    @classmethod
    def from_record(cls, rec: bytes) -> Service:
        addr, af, proto, port, _r, fwmark, flags, timeout, netmask, sched, pe = SERVICE.unpack(rec)
        return cls(
            addr="" if fwmark else socket.inet_ntop(af, addr[: 16 if af == socket.AF_INET6 else 4]),
            port=port,
            protocol=proto,
            fwmark=fwmark,
            af=af,
            sched_name=sched.rstrip(b"\0").decode("ascii", "replace"),
            flags=flags,
            timeout=timeout,
            netmask=netmask,
            pe_name=pe.rstrip(b"\0").decode("ascii", "replace"),
        )

    def __str__(self) -> str:
        """As ``ipvsadm -Ln`` names it: ``TCP 10.0.0.1:80``, ``TCP [fd00::1]:80``, ``FWM 42``."""
        if self.fwmark:
            return f"FWM {self.fwmark}" + (" IPv6" if self.af == socket.AF_INET6 else "")
        host = f"[{self.addr}]" if self.af == socket.AF_INET6 else self.addr
        return f"{PROTOCOL_NAMES.get(self.protocol, str(self.protocol)).upper()} {host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Dest:
    """An IPVS real server (``struct ip_vs_dest_user``, with IPv6 and tunnels).

    ``fwd_method``: ``IP_VS_CONN_F_MASQ`` (NAT, default), ``IP_VS_CONN_F_DROUTE`` (DR),
    ``IP_VS_CONN_F_TUNNEL`` (TUN, with ``tun_type`` IPIP/GUE/GRE, ``tun_port`` for GUE,
    ``tun_flags`` checksum options for GUE and GRE; fields that do not apply are zeroed). ``u_threshold``/``l_threshold``: connection limits.
    ``af`` defaults from ``addr`` (a TUN dest may differ from its service's family).
    """

    addr: str
    port: int = 0
    weight: int = 1
    fwd_method: int = IP_VS_CONN_F_MASQ
    u_threshold: int = 0
    l_threshold: int = 0
    tun_type: int = 0
    tun_port: int = 0
    tun_flags: int = 0
    af: int = 0
    record: bytes = field(init=False, repr=False, compare=False, hash=False)
    """The ``fk_ipvs_dest`` record (``msg.DEST``) the codec encodes."""

    def __post_init__(self) -> None:
        addr, af, packed = _normalise_addr(self.addr, self.af)
        object.__setattr__(self, "addr", addr)
        object.__setattr__(self, "af", af)
        # Tunnel fields the kernel never gets (as Keepalived sends them: the port for GUE
        # only, checksum flags unless IPIP, nothing unless TUN) are zero in the model too,
        # so that a dump compares equal and a diff never "changes" them.
        if self.fwd_method & IP_VS_CONN_F_FWD_MASK != IP_VS_CONN_F_TUNNEL:
            if self.tun_type or self.tun_port or self.tun_flags:
                object.__setattr__(self, "tun_type", 0)
                object.__setattr__(self, "tun_port", 0)
                object.__setattr__(self, "tun_flags", 0)
        else:
            if self.tun_type != IP_VS_CONN_F_TUNNEL_TYPE_GUE:
                object.__setattr__(self, "tun_port", 0)
            if self.tun_type == IP_VS_CONN_F_TUNNEL_TYPE_IPIP:
                object.__setattr__(self, "tun_flags", 0)
        _port(self.port, "port")
        _port(self.tun_port, "tunnel port")
        _u32(self.weight, "weight")
        _u32(self.u_threshold, "upper threshold")
        _u32(self.l_threshold, "lower threshold")
        object.__setattr__(
            self,
            "record",
            DEST.pack(
                packed,
                af,
                self.port,
                self.fwd_method,
                self.weight,
                self.u_threshold,
                self.l_threshold,
                self.tun_port,
                self.tun_flags,
                self.tun_type,
            ),
        )

    @property
    def key(self) -> DestKey:
        """Identity within a service, as Keepalived's ``rs_iseq()``: (af, addr, port)."""
        return (self.af, self.addr, self.port)

    @classmethod
    def from_record(cls, rec: bytes, service_af: int = socket.AF_INET) -> Dest:
        addr, af, port, fwd, weight, uth, lth, tun_port, tun_flags, tun_type = DEST.unpack(rec)
        af = af or service_af  # kernels before 4.x do not report ADDR_FAMILY
        return cls(
            addr=socket.inet_ntop(af, addr[: 16 if af == socket.AF_INET6 else 4]),
            port=port,
            weight=weight,
            fwd_method=fwd & IP_VS_CONN_F_FWD_MASK,
            u_threshold=uth,
            l_threshold=lth,
            tun_type=tun_type,
            tun_port=tun_port,
            tun_flags=tun_flags,
            af=af,
        )

    def for_service(self, svc: Service) -> Dest:
        """The dest as Keepalived sends it for ``svc``: DR and TUN dests get the service's
        port (a fwmark service's non-NAT dests port 0), as the kernel ignores it anyway."""
        fwd = self.fwd_method & IP_VS_CONN_F_FWD_MASK
        if fwd == IP_VS_CONN_F_MASQ:
            return self
        port = 0 if svc.fwmark else svc.port
        if port == self.port:
            return self
        return Dest(
            addr=self.addr,
            port=port,
            weight=self.weight,
            fwd_method=self.fwd_method,
            u_threshold=self.u_threshold,
            l_threshold=self.l_threshold,
            tun_type=self.tun_type,
            tun_port=self.tun_port,
            tun_flags=self.tun_flags,
            af=self.af,
        )

    def __str__(self) -> str:
        host = f"[{self.addr}]" if self.af == socket.AF_INET6 else self.addr
        return f"{host}:{self.port}"


class Table:
    """A wanted (or dumped) IPVS table: services and their dests, by key.

    ``add()`` replaces a service with the same key (keeping its dests unless new ones are
    given) and normalises dests with :meth:`Dest.for_service`.
    """

    __slots__ = ("_dests", "_svcs")

    def __init__(self, entries: Iterable[tuple[Service, Iterable[Dest]]] = ()) -> None:
        self._svcs: dict[ServiceKey, Service] = {}
        self._dests: dict[ServiceKey, dict[DestKey, Dest]] = {}
        for svc, dests in entries:
            self.add(svc, dests)

    def add(self, svc: Service, dests: Iterable[Dest] | None = None) -> None:
        key = svc.key
        self._svcs[key] = svc
        table = self._dests.setdefault(key, {})
        if dests is not None:
            table.clear()
            for d in dests:
                d = d.for_service(svc)
                table[d.key] = d

    def add_dest(self, svc: Service, dest: Dest) -> None:
        """Add or replace one dest of an existing service."""
        dest = dest.for_service(self._svcs[svc.key])
        self._dests[svc.key][dest.key] = dest

    def remove(self, svc: Service) -> None:
        del self._svcs[svc.key]
        del self._dests[svc.key]

    def remove_dest(self, svc: Service, dest: Dest) -> None:
        del self._dests[svc.key][dest.key]

    def service(self, key: ServiceKey) -> Service | None:
        return self._svcs.get(key)

    def services(self) -> list[Service]:
        return list(self._svcs.values())

    def dests(self, svc: Service | ServiceKey) -> list[Dest]:
        key = svc.key if isinstance(svc, Service) else svc
        return list(self._dests.get(key, {}).values())

    def items(self) -> Iterator[tuple[Service, list[Dest]]]:
        for key, svc in self._svcs.items():
            yield svc, list(self._dests[key].values())

    def copy(self) -> Table:
        t = Table()
        t._svcs = dict(self._svcs)
        t._dests = {k: dict(v) for k, v in self._dests.items()}
        return t

    def __len__(self) -> int:
        return len(self._svcs)

    def __contains__(self, svc: object) -> bool:
        return isinstance(svc, Service) and svc.key in self._svcs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        return self._svcs == other._svcs and self._dests == other._dests

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Table({[(s, list(d.values())) for s, d in zip(self._svcs.values(), self._dests.values(), strict=True)]!r})"

    def ipvsadm(self) -> str:
        """The table in ``ipvsadm -Ln`` style (without the header), sorted, for comparisons
        and messages."""
        lines = []
        for svc in sorted(self._svcs.values(), key=lambda s: _sort_key(s)):
            line = f"{svc} {svc.sched_name}"
            if svc.flags & IP_VS_SVC_F.PERSISTENT:
                line += f" persistent {svc.timeout}"
            lines.append(line)
            for d in sorted(self._dests[svc.key].values(), key=lambda d: (d.af, d.addr, d.port)):
                lines.append(f"  -> {d} {_ipvsadm_fwd.get(d.fwd_method, '?')} {d.weight}")
        return "\n".join(lines)


def _sort_key(s: Service) -> tuple[object, ...]:
    return (s.af, s.fwmark, s.protocol, s.addr, s.port)


class Op(NamedTuple):
    """One IPVS command of a diff or batch: ``cmd`` is an ``IPVS_CMD`` service or dest
    command. (A named tuple: diffs of thousands of entries make thousands of these.)"""

    cmd: IPVS_CMD
    service: Service
    dest: Dest | None = None

    def __str__(self) -> str:
        where = f"{self.service} -> {self.dest}" if self.dest is not None else str(self.service)
        return f"IPVS_CMD_{self.cmd.name} {where}"


def diff(old: Table, new: Table) -> list[Op]:
    """The commands that turn the kernel table ``old`` into ``new``, touching nothing else.

    Order: new services, changed services, new and changed dests, removed dests, removed
    services (the kernel drops a removed service's dests with it, so they are not listed).
    """
    add_svc: list[Op] = []
    set_svc: list[Op] = []
    dest_ops: list[Op] = []
    del_dest: list[Op] = []
    del_svc: list[Op] = []
    for key, svc in new._svcs.items():
        before = old._svcs.get(key)
        new_dests = new._dests[key]
        if before is None:
            add_svc.append(Op(IPVS_CMD.NEW_SERVICE, svc))
            dest_ops.extend(Op(IPVS_CMD.NEW_DEST, svc, d) for d in new_dests.values())
            continue
        if before != svc:
            set_svc.append(Op(IPVS_CMD.SET_SERVICE, svc))
        old_dests = old._dests[key]
        for dkey, d in new_dests.items():
            prev = old_dests.get(dkey)
            if prev is None:
                dest_ops.append(Op(IPVS_CMD.NEW_DEST, svc, d))
            elif prev != d:
                dest_ops.append(Op(IPVS_CMD.SET_DEST, svc, d))
        for dkey, d in old_dests.items():
            if dkey not in new_dests:
                del_dest.append(Op(IPVS_CMD.DEL_DEST, svc, d))
    for key, svc in old._svcs.items():
        if key not in new._svcs:
            del_svc.append(Op(IPVS_CMD.DEL_SERVICE, svc))
    return add_svc + set_svc + dest_ops + del_dest + del_svc


def apply_ops(table: Table, ops: Iterable[Op]) -> Table:
    """A copy of ``table`` after ``ops``, with the kernel's semantics for valid commands
    (raises ``KeyError`` where the kernel would refuse). For tests and dry runs."""
    t = table.copy()
    for op in ops:
        svc, key = op.service, op.service.key
        if op.cmd == IPVS_CMD.NEW_SERVICE:
            if key in t._svcs:
                raise KeyError(f"{op}: exists")
            t.add(svc, [])
        elif op.cmd == IPVS_CMD.SET_SERVICE:
            t._svcs[key]
            t._svcs[key] = svc
        elif op.cmd == IPVS_CMD.DEL_SERVICE:
            t.remove(svc)
        else:
            assert op.dest is not None
            dests = t._dests[key]
            d = op.dest
            if op.cmd == IPVS_CMD.NEW_DEST:
                if d.key in dests:
                    raise KeyError(f"{op}: exists")
                dests[d.key] = d
            elif op.cmd == IPVS_CMD.SET_DEST:
                dests[d.key]
                dests[d.key] = d
            else:
                del dests[d.key]
    return t


# -- status objects of dumps ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters of a service or dest (``IPVS_STATS_ATTR_*``, from STATS64)."""

    conns: int = 0
    inpkts: int = 0
    outpkts: int = 0
    inbytes: int = 0
    outbytes: int = 0
    cps: int = 0
    inpps: int = 0
    outpps: int = 0
    inbps: int = 0
    outbps: int = 0


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    service: Service
    stats: Stats


@dataclass(frozen=True, slots=True)
class DestStatus:
    dest: Dest
    active_conns: int
    inact_conns: int
    persist_conns: int
    stats: Stats


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``lvs_timeouts`` (seconds; 0 = leave unchanged when setting)."""

    tcp: int = 0
    tcp_fin: int = 0
    udp: int = 0


@dataclass(frozen=True, slots=True)
class SyncDaemon:
    """The connection sync daemon (``lvs_sync_daemon``): ``state`` is
    ``IP_VS_STATE_MASTER`` or ``IP_VS_STATE_BACKUP``. Zero/empty optional fields are not sent
    (the kernel picks its defaults)."""

    state: int
    mcast_ifn: str
    syncid: int = 0
    sync_maxlen: int = 0
    mcast_group: str = ""
    mcast_port: int = 0
    mcast_ttl: int = 0

    def record(self) -> bytes:
        af = 0
        group = b""
        if self.mcast_group:
            af = socket.AF_INET6 if ":" in self.mcast_group else socket.AF_INET
            group = socket.inet_pton(af, self.mcast_group)
        return DAEMON.pack(
            self.state,
            self.syncid,
            _name(self.mcast_ifn, "interface"),
            self.sync_maxlen,
            self.mcast_port,
            af,
            self.mcast_ttl,
            group,
        )

    @classmethod
    def from_record(cls, rec: bytes) -> SyncDaemon:
        state, syncid, ifn, maxlen, port, af, ttl, group = DAEMON.unpack(rec)
        return cls(
            state=state,
            mcast_ifn=ifn.rstrip(b"\0").decode("ascii", "replace"),
            syncid=syncid,
            sync_maxlen=maxlen,
            mcast_group=socket.inet_ntop(af, group[: 16 if af == socket.AF_INET6 else 4]) if af else "",
            mcast_port=port,
            mcast_ttl=ttl,
        )


# -- transport -------------------------------------------------------------------------


class Transport(Protocol):
    """Where netlink datagrams go: the kernel (:class:`NetlinkTransport`) or a fake.

    ``recv_into`` returns one datagram; an optional ``max_batch`` attribute caps the
    commands per ``send`` (default 1024).
    """

    def send(self, data: memoryview) -> None: ...
    def recv_into(self, buf: bytearray) -> int: ...
    def close(self) -> None: ...


class NetlinkTransport:
    """A ``NETLINK_GENERIC`` socket. ACKs of failed requests carry only the header
    (``NETLINK_CAP_ACK``), so a large batch's ACKs fit in the receive buffer."""

    def __init__(self, rcvbuf: int = 1 << 20) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC)
        for opt, force in ((socket.SO_SNDBUF, 32), (socket.SO_RCVBUF, 33)):  # SO_*BUFFORCE
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, force, rcvbuf)
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
        with contextlib.suppress(OSError):  # kernels before 4.3 lack it
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        # A reply that never comes (it cannot, short of a kernel bug) must not hang us.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("=qq", 10, 0))
        self.sock.bind((0, 0))
        # Each queued reply costs about 1 KiB of receive buffer (skb overhead included).
        got = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.max_batch = max(64, min(4096, got // 1024))

    def send(self, data: memoryview) -> None:
        self.sock.sendto(data, (0, 0))

    def recv_into(self, buf: bytearray) -> int:
        return self.sock.recv_into(buf)

    def close(self) -> None:
        self.sock.close()


def _messages(buf: bytearray, n: int) -> Iterator[tuple[int, int, int, memoryview]]:
    """(type, flags, seq, message) of each netlink message in ``buf[:n]``."""
    mv = memoryview(buf)
    off = 0
    while off + 16 <= n:
        mlen, mtype, mflags, mseq, _pid = NLMSGHDR.unpack_from(buf, off)
        if mlen < 16 or off + mlen > n:
            raise IpvsError(errno.EBADMSG, "netlink reply truncated")
        yield mtype, mflags, mseq, mv[off : off + mlen]
        off += (mlen + 3) & ~3


_ERRNO = struct.Struct("=i")

# What Keepalived does not count as a failure (behaviour.md §C3): adding what exists,
# deleting what is gone (ENOENT for a dest, ESRCH for a service the kernel cannot find).
_IGNORE: dict[int, tuple[int, ...]] = {
    IPVS_CMD.NEW_SERVICE: (errno.EEXIST,),
    IPVS_CMD.NEW_DEST: (errno.EEXIST,),
    IPVS_CMD.DEL_DEST: (errno.ENOENT, errno.ESRCH),
    IPVS_CMD.DEL_SERVICE: (errno.ENOENT, errno.ESRCH),
}


class Ipvs:
    """The kernel's IPVS table through generic netlink.

    ``Ipvs()`` opens a netlink socket and resolves the ``IPVS`` family (loading the
    ``ip_vs`` module with modprobe if it is missing, as Keepalived does). Pass
    ``transport=`` to talk to something else (a fake kernel in unit tests).

    Batches: :meth:`execute` (a list of :class:`Op`), :meth:`apply` (the diff of two
    tables), :meth:`sync` (make the kernel equal a table). Single commands raise
    :class:`~fastka.errors.IpvsError`: :meth:`new_service`, :meth:`set_service`,
    :meth:`del_service`, :meth:`new_dest`, :meth:`set_dest`, :meth:`del_dest`,
    :meth:`flush`, :meth:`zero`, :meth:`set_timeouts`, :meth:`start_daemon`,
    :meth:`stop_daemon`. Reads: :meth:`dump`, :meth:`services`, :meth:`dests`,
    :meth:`info`, :meth:`timeouts`, :meth:`daemons`.
    """

    CHUNK = 256 * 1024
    """Bytes of requests per ``sendmsg``; their ACKs (36 bytes each) fit the receive buffer."""

    def __init__(self, transport: Transport | None = None, *, modprobe: bool = True) -> None:
        self.transport: Transport = transport if transport is not None else NetlinkTransport()
        self.max_batch: int = getattr(self.transport, "max_batch", 1024)
        """Most commands per ``sendmsg``: their error replies must fit the receive buffer."""
        self.ack_all = False
        """ACK every command (Keepalived's framing) instead of only the last of a batch."""
        self._buf = bytearray(self.CHUNK)
        self._rbuf = bytearray(256 * 1024)
        self._seq = int.from_bytes(os.urandom(2), "little") << 8
        try:
            self.family = self._resolve_family()
        except IpvsError as exc:
            if exc.errno != errno.ENOENT or not modprobe:
                self.transport.close()
                raise
            subprocess.run(["modprobe", "ip_vs"], check=False, capture_output=True)
            try:
                self.family = self._resolve_family()
            except IpvsError:
                self.transport.close()
                raise

    # -- plumbing
    def _next_seq(self, n: int = 1) -> int:
        seq = self._seq
        self._seq = (seq + n) & 0xFFFFFFFF
        return seq

    def _resolve_family(self) -> int:
        seq = self._next_seq()
        n = codec.build_getfamily(self._buf, seq, 0, IPVS_GENL_NAME.encode())
        family = 0
        for mtype, _flags, _seq, m in self._request(n, seq):
            if mtype != NLMSG_ERROR:
                family = codec.parse_family(m)
        if not family:
            raise IpvsError(errno.ENOENT, "CTRL_CMD_GETFAMILY IPVS")
        return family

    def _request(
        self, n: int, seq: int, op: str = "", dump: bool = False
    ) -> list[tuple[int, int, int, memoryview]]:
        """Send one request and collect its replies up to the ACK (or NLMSG_DONE)."""
        self.transport.send(memoryview(self._buf)[:n])
        out: list[tuple[int, int, int, memoryview]] = []
        while True:
            got = self.transport.recv_into(self._rbuf)
            data = bytearray(self._rbuf[:got])  # replies outlive the receive buffer
            for mtype, mflags, mseq, m in _messages(data, got):
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    err = -_ERRNO.unpack_from(m, 16)[0]
                    if err:
                        raise IpvsError(err, op or "netlink request")
                    if not dump:
                        return out
                elif mtype == NLMSG_DONE:
                    return out
                else:
                    out.append((mtype, mflags, mseq, m))

    def _one(self, op: Op) -> None:
        """One service/dest command; raises its error."""
        errors = self.execute([op], keepalived_errors=False)
        if errors:
            raise errors[0]

    # -- batches
    def execute(self, ops: Sequence[Op], *, keepalived_errors: bool = True) -> list[IpvsError]:
        """Send ``ops`` in as few ``sendmsg`` calls as fit, check every ACK, and return
        the failures (each names its command, service and dest); the other commands
        are applied regardless.

        With ``keepalived_errors`` (default) errors are handled as Keepalived does:
        EEXIST of NEW_SERVICE/NEW_DEST and ENOENT/ESRCH of DEL_* are not errors, and a
        SET_DEST that fails with ENOENT is retried as NEW_DEST.
        """
        if not ops:
            return []
        # Records for the codec: each service once (the ops of one service are usually
        # consecutive, so the last one is checked first), each dest as it comes.
        svc_index: dict[int, int] = {}
        svc_recs: list[bytes] = []
        dest_recs: list[bytes] = []
        op_words = array("I")
        add = op_words.extend
        last_svc: Service | None = None
        si = 0
        for cmd, s, d in ops:
            if s is not last_svc:
                last_svc = s
                found = svc_index.get(id(s))
                if found is None:
                    found = svc_index[id(s)] = len(svc_recs)
                    svc_recs.append(s.record)
                si = found
            if d is None:
                add((cmd, si, 0))
            else:
                add((cmd, si, len(dest_recs)))
                dest_recs.append(d.record)
        svcs = b"".join(svc_recs)
        dests = b"".join(dest_recs)
        nops = len(ops)
        errs = array("i", bytes(4 * nops))
        seq = self._next_seq(nops)
        start = failed = 0
        ops_b = op_words.tobytes()
        lost: list[IpvsError] = []
        while start < nops:
            n, nxt = codec.build_batch(
                self._buf,
                self.family,
                seq,
                0,
                ops_b,
                svcs,
                dests,
                start,
                start + self.max_batch,
                self.ack_all,
            )
            self.transport.send(memoryview(self._buf)[:n])
            # Replies come in order; the last op of the chunk carries the ACK that ends it.
            seen = -1
            while seen < nxt - 1:
                try:
                    got = self.transport.recv_into(self._rbuf)
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise IpvsError(exc.errno or errno.EIO, "netlink receive") from exc
                    # The receive queue overflowed: some replies of this chunk are lost.
                    lost.append(IpvsError(errno.ENOBUFS, f"replies of ops {start}..{nxt - 1} lost"))
                    break
                _replies, bad, last = codec.parse_acks(self._rbuf, got, seq, nops, errs)
                failed += bad
                seen = max(seen, last)
            start = nxt
        if not failed:
            return lost
        errors: list[IpvsError] = lost
        retry: list[Op] = []
        for i, err in enumerate(errs):
            if not err:
                continue
            op = ops[i]
            if keepalived_errors:
                if err in _IGNORE.get(op.cmd, ()):
                    continue
                if op.cmd == IPVS_CMD.SET_DEST and err == errno.ENOENT:
                    retry.append(Op(IPVS_CMD.NEW_DEST, op.service, op.dest))
                    continue
            errors.append(IpvsError(err, f"IPVS_CMD_{op.cmd.name}", service=op.service, dest=op.dest))
        if retry:
            errors.extend(self.execute(retry, keepalived_errors=True))
        return errors

    def apply(self, old: Table, new: Table, **kw: bool) -> list[IpvsError]:
        """Turn the table ``old`` (what we programmed) into ``new``: :func:`diff` + :meth:`execute`."""
        return self.execute(diff(old, new), **kw)

    def sync(self, new: Table, **kw: bool) -> list[IpvsError]:
        """Make the kernel's whole table equal ``new`` (diff against a dump). This also
        removes entries fastka did not create; the daemon uses :meth:`apply`."""
        return self.execute(diff(self.dump(), new), **kw)

    # -- single commands (raise IpvsError)
    def new_service(self, svc: Service) -> None:
        self._one(Op(IPVS_CMD.NEW_SERVICE, svc))

    def set_service(self, svc: Service) -> None:
        self._one(Op(IPVS_CMD.SET_SERVICE, svc))

    def del_service(self, svc: Service) -> None:
        self._one(Op(IPVS_CMD.DEL_SERVICE, svc))

    def new_dest(self, svc: Service, dest: Dest) -> None:
        self._one(Op(IPVS_CMD.NEW_DEST, svc, dest.for_service(svc)))

    def set_dest(self, svc: Service, dest: Dest) -> None:
        self._one(Op(IPVS_CMD.SET_DEST, svc, dest.for_service(svc)))

    def del_dest(self, svc: Service, dest: Dest) -> None:
        self._one(Op(IPVS_CMD.DEL_DEST, svc, dest.for_service(svc)))

    def _simple(
        self, cmd: IPVS_CMD, flags: int = NLM_F_REQUEST | NLM_F_ACK
    ) -> list[tuple[int, int, int, memoryview]]:
        seq = self._next_seq()
        n = codec.build_simple(self._buf, self.family, seq, 0, cmd, flags)
        return self._request(n, seq, f"IPVS_CMD_{cmd.name}", dump=bool(flags & NLM_F_DUMP))

    def flush(self) -> None:
        """Remove every service (``ipvsadm -C``; ``lvs_flush``)."""
        self._simple(IPVS_CMD.FLUSH)

    def zero(self) -> None:
        """Zero all counters."""
        self._simple(IPVS_CMD.ZERO)

    def info(self) -> tuple[int, int]:
        """(IPVS version as 0x010201, connection table size)."""
        for _t, _f, _s, m in self._simple(IPVS_CMD.GET_INFO):
            return codec.parse_info(m)
        raise IpvsError(errno.EBADMSG, "IPVS_CMD_GET_INFO")

    def timeouts(self) -> Timeouts:
        for _t, _f, _s, m in self._simple(IPVS_CMD.GET_CONFIG):
            return Timeouts(*codec.parse_config(m))
        raise IpvsError(errno.EBADMSG, "IPVS_CMD_GET_CONFIG")

    def set_timeouts(self, t: Timeouts) -> None:
        """``lvs_timeouts``: the non-zero fields are set."""
        seq = self._next_seq()
        n = codec.build_set_config(self._buf, self.family, seq, 0, t.tcp, t.tcp_fin, t.udp)
        self._request(n, seq, "IPVS_CMD_SET_CONFIG")

    def start_daemon(self, d: SyncDaemon) -> None:
        seq = self._next_seq()
        n = codec.build_daemon(self._buf, self.family, seq, 0, IPVS_CMD.NEW_DAEMON, d.record())
        self._request(n, seq, "IPVS_CMD_NEW_DAEMON")

    def stop_daemon(self, state: int) -> None:
        """Stop the ``IP_VS_STATE_MASTER`` or ``IP_VS_STATE_BACKUP`` sync daemon."""
        if state not in (IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP):
            raise ValueError(f"bad sync daemon state {state}")
        seq = self._next_seq()
        n = codec.build_daemon(
            self._buf, self.family, seq, 0, IPVS_CMD.DEL_DAEMON, SyncDaemon(state, "").record()
        )
        self._request(n, seq, "IPVS_CMD_DEL_DAEMON")

    def daemons(self) -> list[SyncDaemon]:
        return [
            SyncDaemon.from_record(codec.parse_daemon(m))
            for _t, _f, _s, m in self._simple(IPVS_CMD.GET_DAEMON, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP)
        ]

    # -- dumps
    def services(self) -> list[ServiceStatus]:
        out = []
        for _t, _f, _s, m in self._simple(IPVS_CMD.GET_SERVICE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP):
            rec, st = codec.parse_service(m)
            out.append(ServiceStatus(Service.from_record(rec), Stats(*st[:10])))
        return out

    def dests(self, svc: Service) -> list[DestStatus]:
        seq = self._next_seq()
        n = codec.build_get_dests(self._buf, self.family, seq, 0, svc.record)
        out = []
        for _t, _f, _s, m in self._request(n, seq, "IPVS_CMD_GET_DEST", dump=True):
            rec, st = codec.parse_dest(m)
            out.append(DestStatus(Dest.from_record(rec, svc.af), st[10], st[11], st[12], Stats(*st[:10])))
        return out

    def dump(self) -> Table:
        """The kernel's table as a :class:`Table` (one GET_DEST dump per service)."""
        t = Table()
        for s in self.services():
            t._svcs[s.service.key] = s.service
            t._dests[s.service.key] = {d.dest.key: d.dest for d in self.dests(s.service)}
        return t

    # -- lifetime
    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Ipvs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "FWD_METHODS",
    "FWD_NAMES",
    "IP_VS_CONN_F_DROUTE",
    "IP_VS_CONN_F_MASQ",
    "IP_VS_CONN_F_TUNNEL",
    "MSG_MAX",
    "PROTOCOLS",
    "Dest",
    "DestStatus",
    "Ipvs",
    "NetlinkTransport",
    "Op",
    "Service",
    "ServiceStatus",
    "Stats",
    "SyncDaemon",
    "Table",
    "Timeouts",
    "Transport",
    "apply_ops",
    "diff",
    "parse_netmask",
]
