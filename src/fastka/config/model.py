"""The compiled configuration: typed dataclasses with every default already applied.

This is what the rest of fastka codes against. ``fastka.config.load()`` returns a
:class:`Config`; nothing downstream ever re-derives a Keepalived default -- e.g.
:attr:`VrrpInstance.priority` is the effective base priority (255 for an address owner),
:attr:`VrrpInstance.advert_int` is float seconds, and every checker carries its effective
``delay_loop``/``connect_timeout``/``retry``/``delay_before_retry``/``warmup`` (inherited
checker <- real_server <- virtual_server <- built-in, catalogue §14-16).

Conventions:

* Times are float seconds (Keepalived keeps µs; 6 decimal places survive).
* Addresses are :mod:`ipaddress` objects: ``IPv4Address``/``IPv6Address`` for hosts,
  ``IPv4Interface``/``IPv6Interface`` for an address with its prefix (VIPs),
  ``IPv4Network``/``IPv6Network`` for prefixes (route destinations, rule selectors).
* Names are Keepalived's keyword names (``virtual_router_id``, ``lb_algo`` ...), so the
  JSON dump (``docs/config-json.md``) reads like the configuration file.
* ``location`` (file:line of the defining keyword) never takes part in ``==``: two objects
  that configure the same thing compare equal even if they moved in the file, which is what
  a reload diff needs. Identity on reload (behaviour.md §R) is given by each object's
  ``key()``; objects with equal keys are "the same thing, possibly changed".
* Every class is ``kw_only``: construct with keywords only, so fields can be added later
  without breaking callers.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import ClassVar, Generic, NamedTuple, TypeVar

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
IPNetwork = IPv4Network | IPv6Network

VRRP_MCAST_GROUP4 = IPv4Address("224.0.0.18")
VRRP_MCAST_GROUP6 = IPv6Address("ff02::12")


class Family(enum.StrEnum):
    """Address family, spelled as ``ip -f``."""

    INET = "inet"
    INET6 = "inet6"

    @staticmethod
    def of(address: IPAddress | IPInterface | IPNetwork) -> Family:
        return Family.INET if address.version == 4 else Family.INET6


class Location(NamedTuple):
    """Where a keyword was written: the file (as named by -f or the include) and line.

    A named tuple: immutable, hashable and cheap (one per configuration line)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


# --------------------------------------------------------------------------- scripts
@dataclass(slots=True, kw_only=True)
class Script:
    """A command Keepalived runs: notify scripts, ``vrrp_script script``, ``misc_path``.

    ``argv`` is split as Keepalived splits it (unquoted blanks separate arguments, single
    quotes protect blanks, escapes resolved). ``user``/``group`` are the per-script
    ``[username [:][groupname]]`` after the command; ``None`` means the global
    ``script_user`` default (resolved by the process that runs scripts, since it depends on
    the users that exist at run time). ``text`` is the command as written.
    """

    argv: tuple[str, ...]
    text: str = ""
    user: str | None = None
    group: str | None = None
    # ':' before the group (or alone): also set the user's supplementary groups.
    supplementary_groups: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True, kw_only=True)
class NotifyFifo:
    """``notify_fifo FIFO [user [group]]`` (+ the matching ``*_fifo_script``)."""

    path: str
    user: str | None = None
    group: str | None = None
    script: Script | None = None
    location: Location | None = field(default=None, compare=False, repr=False)


# --------------------------------------------------------------------------- global_defs
@dataclass(slots=True, kw_only=True)
class LvsSyncDaemon:
    """``lvs_sync_daemon IF [[inst] VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group IP]``."""

    interface: str
    vrrp_instance: str | None = None
    syncid: int | None = None  # None: the VRRP instance's VRID, else 0 (resolved by compile)
    maxlen: int | None = None
    port: int = 8848
    ttl: int | None = None
    group: IPAddress | None = None  # None = kernel default 224.0.0.81
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True, kw_only=True)
class LvsTimeouts:
    """``lvs_timeouts [tcp S] [tcpfin S] [udp S]``; None = leave the kernel's value."""

    tcp: int | None = None
    tcpfin: int | None = None
    udp: int | None = None


@dataclass(slots=True, kw_only=True)
class GlobalDefs:
    """``global_defs`` plus the root-level process settings (``net_namespace`` ...)."""

    # -- identity, e-mail
    router_id: str = ""  # default: local host name (filled by compile)
    notification_email: list[str] = field(default_factory=list)
    notification_email_from: str = ""  # default <user>@<host> (filled by compile)
    smtp_server: str | None = None  # IP address or DNS name
    smtp_server_port: int = 25
    smtp_helo_name: str = ""  # default: local host name
    smtp_connect_timeout: float = 30.0
    smtp_alert: bool | None = None  # None = not set (VRRP/VS default off, RS default on)
    smtp_alert_vrrp: bool | None = None
    smtp_alert_checker: bool | None = None
    no_email_faults: bool = False
    checker_log_all_failures: bool = False
    no_checker_emails: bool = False
    rs_init_notifies: bool = False
    # -- scripts
    script_user: str | None = None
    script_group: str | None = None
    enable_script_security: bool = False
    use_symlink_paths: bool = False
    set_supplementary_groups: bool = False
    startup_script: Script | None = None
    startup_script_timeout: float = 10.0
    shutdown_script: Script | None = None
    shutdown_script_timeout: float = 10.0
    # -- process control
    process_names: bool = False
    process_name: str | None = None
    vrrp_process_name: str | None = None
    checker_process_name: str | None = None
    bfd_process_name: str | None = None
    vrrp_priority: int | None = None
    checker_priority: int | None = None
    bfd_priority: int | None = None
    vrrp_no_swap: bool = False
    checker_no_swap: bool = False
    bfd_no_swap: bool = False
    vrrp_rt_priority: int | None = None
    checker_rt_priority: int | None = None
    bfd_rt_priority: int | None = None
    vrrp_cpu_affinity: list[int] = field(default_factory=list)
    checker_cpu_affinity: list[int] = field(default_factory=list)
    bfd_cpu_affinity: list[int] = field(default_factory=list)
    vrrp_rlimit_rttime: int = 10000
    checker_rlimit_rttime: int = 10000
    bfd_rlimit_rttime: int = 10000
    max_auto_priority: int = 0
    min_auto_priority_delay: int = 1000000
    umask: int | None = None
    random_seed: int | None = None
    tmp_config_directory: str | None = None
    config_save_dir: str | None = None
    reload_check_config: str | None = None  # None = off; "" = check, log to stderr; else log file
    reload_time_file: str | None = None
    reload_repeat: bool = False
    reload_file: str | None = None
    data_use_instance: bool = False
    state_dump_file: str | None = None
    stats_dump_file: str | None = None
    json_dump_file: str | None = None
    json_version: int = 1
    # fastka's own status service (docs/status.md); Keepalived has no equivalent.
    fastka_status_socket: str | None = None
    fastka_status_http: str | None = None
    fastka_status_file: str | None = None
    fastka_status_file_interval: float | None = None  # seconds; 0 = on changes only
    iproute_usr_dir: str | None = None
    iproute_etc_dir: str | None = None
    # -- root-level keywords kept here as Keepalived does
    net_namespace: str | None = None
    net_namespace_ipvs: str | None = None
    namespace_with_ipsets: bool = False
    instance: str | None = None
    use_pid_dir: bool = False
    child_wait_time: int = 5
    linkbeat_use_polling: bool = False
    # -- SNMP / DBus (recognised, not supported)
    snmp_socket: str | None = None
    enable_snmp_vrrp: bool = False
    enable_snmp_checker: bool = False
    enable_snmp_rfc: bool = False
    enable_snmp_rfcv2: bool = False
    enable_snmp_rfcv3: bool = False
    enable_traps: bool = False
    snmp_vs_stats_update_interval: float | None = None
    snmp_rs_stats_update_interval: float | None = None
    enable_dbus: bool = False
    dbus_service_name: str | None = None
    dbus_no_interface_name: str | None = None
    # -- notify FIFOs
    notify_fifo: NotifyFifo | None = None
    vrrp_notify_fifo: NotifyFifo | None = None
    lvs_notify_fifo: NotifyFifo | None = None
    vrrp_notify_priority_changes: bool = False
    fifo_write_vrrp_states_on_reload: bool = False
    # -- VRRP defaults (the per-instance effective values live on VrrpInstance)
    vrrp_version: int = 2
    vrrp_mcast_group4: IPv4Address = VRRP_MCAST_GROUP4
    vrrp_mcast_group6: IPv6Address = VRRP_MCAST_GROUP6
    default_interface: str = "eth0"
    vrrp_garp_master_delay: float = 5.0
    vrrp_garp_master_repeat: int = 5
    vrrp_garp_master_refresh: float = 0.0
    vrrp_garp_master_refresh_repeat: int = 1
    vrrp_garp_lower_prio_delay: float = 5.0  # effective (= garp_master_delay unless set)
    vrrp_garp_lower_prio_repeat: int = 5  # effective (= garp_master_repeat; 0 strict)
    vrrp_garp_interval: float = 0.0
    vrrp_gna_interval: float = 0.0
    vrrp_min_garp: bool = False
    vrrp_garp_extra_if: float | None = None
    vrrp_garp_extra_if_all: bool = False
    vrrp_down_timer_adverts: int = 3
    vrrp_lower_prio_no_advert: bool = False  # effective (true in strict mode)
    vrrp_higher_prio_send_advert: bool = False
    vrrp_owner_ignore_adverts: bool = False
    vrrp_check_unicast_src: bool = False
    vrrp_skip_check_adv_addr: bool = False
    vrrp_strict: bool = False
    v3_checksum_as_v2: bool = False
    vrrp_iptables: list[str] | None = None
    vrrp_ipsets: list[str] | None = None
    nftables: str | None = None
    nftables_priority: int = -1
    nftables_counters: bool = False
    nftables_ifindex: bool = False
    disable_local_igmp: bool = False
    dynamic_interfaces: bool = False
    dynamic_interfaces_allow_if_changes: bool = False
    vrrp_netlink_cmd_rcv_bufs: int | None = None
    vrrp_netlink_cmd_rcv_bufs_force: bool = False
    vrrp_netlink_monitor_rcv_bufs: int | None = None
    vrrp_netlink_monitor_rcv_bufs_force: bool = False
    process_monitor_rcv_bufs: int | None = None
    process_monitor_rcv_bufs_force: bool = False
    vrrp_rx_bufs_policy: str | None = None
    vrrp_rx_bufs_multiplier: int = 3
    vrrp_startup_delay: float = 0.0
    vrrp_delay_after_boot: float = 0.0
    log_unknown_vrids: bool = False
    vmac_prefix: str = "vrrp"
    vmac_addr_prefix: str | None = None
    # -- LVS globals
    lvs_sync_daemon: LvsSyncDaemon | None = None
    lvs_timeouts: LvsTimeouts | None = None
    lvs_flush: bool = False
    lvs_flush_on_stop: str | None = None  # None, "all" or "vs"
    lvs_netlink_cmd_rcv_bufs: int | None = None
    lvs_netlink_cmd_rcv_bufs_force: bool = False
    lvs_netlink_monitor_rcv_bufs: int | None = None
    lvs_netlink_monitor_rcv_bufs_force: bool = False
    nftables_ipvs: str | None = None
    nftables_ipvs_priority: int | None = None
    nftables_ipvs_start_fwmark: int = 1000
    # -- include_check as set in the config (the -e option also enables all checks)
    include_check: list[str] = field(default_factory=list)
    location: Location | None = field(default=None, compare=False, repr=False)


# --------------------------------------------------------------------------- addresses
@dataclass(slots=True, kw_only=True)
class IpAddress:
    """An address entry (catalogue §5.1): ``virtual_ipaddress``, ``_excluded``, ``static_ipaddress``.

    ``dev`` is effective: the instance's interface for virtual addresses without ``dev``,
    ``default_interface`` for static ones. ``broadcast`` is the explicit ``brd`` address;
    ``broadcast_mode`` is ``"+"``/``"-"`` for ``brd +``/``brd -``.
    """

    address: IPInterface  # address/prefix; /32 or /128 when no mask given
    dev: str | None = None
    scope: str | None = None  # None = kernel default (global)
    broadcast: IPAddress | None = None
    broadcast_mode: str | None = None
    label: str | None = None
    peer: IPInterface | None = None
    home: bool = False
    nodad: bool = False
    mngtmpaddr: bool = False
    noprefixroute: bool = False
    autojoin: bool = False
    preferred_lft: int | None = None  # None = default; 0xFFFFFFFF = forever
    no_track: bool = False
    track_group: str | None = None
    use_vmac: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)

    @property
    def family(self) -> Family:
        return Family.of(self.address)

    def key(self) -> tuple[object, ...]:
        """What the kernel identifies an address by: the address, its prefix and the device."""
        return (self.address, self.dev)


# Keepalived's name; the same class serves static and virtual addresses.
VirtualIpAddress = IpAddress
StaticAddress = IpAddress


@dataclass(slots=True, kw_only=True)
class Nexthop:
    """One ``nexthop via IP dev IF weight N [onlink]`` of a multipath route (or ``or IP``)."""

    via: IPAddress | None = None
    dev: str | None = None
    weight: int | None = None
    onlink: bool = False
    realms: str | None = None


@dataclass(slots=True, kw_only=True)
class Route:
    """A route entry (catalogue §5.2), ``ip route add`` syntax."""

    dst: IPNetwork
    type: str = (
        "unicast"  # unicast blackhole unreachable prohibit throw local broadcast anycast multicast nat
    )
    src: IPAddress | None = None  # preferred source (``src``)
    from_prefix: IPNetwork | None = None  # ``from`` (IPv6 source-specific routing)
    via: IPAddress | None = None
    dev: str | None = None
    table: int | None = None  # None = main
    metric: int | None = None
    scope: str | None = None
    protocol: str | None = None
    tos: int | None = None
    onlink: bool = False
    realms: str | None = None
    pref: str | None = None
    expires: int | None = None
    nexthops: list[Nexthop] = field(default_factory=list)
    # route metrics and the rarer options, spelled as ``ip route`` (mtu, advmss, initcwnd, ...)
    options: dict[str, str] = field(default_factory=dict)
    mode: str | None = None  # None (kernel prepend), "add", "append", "prepend"
    no_track: bool = False
    track_group: str | None = None
    location: Location | None = field(default=None, compare=False, repr=False)

    @property
    def family(self) -> Family:
        return Family.of(self.dst)

    def key(self) -> tuple[object, ...]:
        """What the kernel identifies a route by (table, dst, tos, metric)."""
        return (self.table, self.dst, self.tos, self.metric)


@dataclass(slots=True, kw_only=True)
class Rule:
    """A policy-routing rule entry (catalogue §5.3), ``ip rule add`` syntax."""

    family: Family = Family.INET
    from_prefix: IPNetwork | None = None
    to_prefix: IPNetwork | None = None
    invert: bool = False  # ``not``
    iif: str | None = None
    oif: str | None = None
    tos: int | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    table: int | None = None
    preference: int | None = None  # effective: 16384, 16383 ... assigned when missing
    realms: str | None = None
    goto: int | None = None
    type: str | None = None  # None (= lookup), blackhole, unreachable, prohibit, nop
    suppress_prefixlength: int | None = None
    suppress_ifgroup: str | None = None
    uidrange: tuple[int, int] | None = None
    l3mdev: bool = False
    protocol: str | None = None
    ipproto: str | None = None
    sport: tuple[int, int] | None = None
    dport: tuple[int, int] | None = None
    tunnel_id: int | None = None
    no_track: bool = False
    track_group: str | None = None
    location: Location | None = field(default=None, compare=False, repr=False)

    def key(self) -> tuple[object, ...]:
        return (self.family, self.preference, self.from_prefix, self.to_prefix, self.table, self.fwmark)


# --------------------------------------------------------------------------- trackers
@dataclass(slots=True, kw_only=True)
class VrrpScript:
    """``vrrp_script NAME {}`` (catalogue §7)."""

    name: str
    script: Script
    interval: float = 1.0
    timeout: float = 1.0  # effective: = interval unless set
    weight: int = 0
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    init_fail: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)

    def key(self) -> str:
        return self.name


@dataclass(slots=True, kw_only=True)
class TrackFile:
    """``track_file NAME {}`` (catalogue §6)."""

    name: str
    file: str
    weight: int = 1
    weight_reverse: bool = False
    init_file: bool = False
    init_value: int = 0
    init_overwrite: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)

    def key(self) -> str:
        return self.name


@dataclass(slots=True, kw_only=True)
class TrackProcess:
    """``vrrp_track_process NAME {}`` (catalogue §6b)."""

    name: str
    process: str
    params: tuple[str, ...] | None = None  # None = match the process name only
    param_match: str = "exact"  # exact, initial, partial
    full_command: bool = False
    weight: int = 0
    weight_reverse: bool = False
    quorum: int = 1
    quorum_max: int | None = None
    delay: float = 0.0
    fork_delay: float = 0.0
    terminate_delay: float = 0.0
    location: Location | None = field(default=None, compare=False, repr=False)

    def key(self) -> str:
        return self.name


@dataclass(slots=True, kw_only=True)
class TrackInterface:
    """One ``track_interface`` entry; weight 0 = the instance goes FAULT when it is down."""

    name: str
    weight: int = 0
    weight_reverse: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True, kw_only=True)
class TrackRef:
    """One ``track_script``/``track_file``/``track_process``/``track_bfd`` entry.

    ``weight`` is effective: the entry's own weight, or else the tracked object's.
    """

    name: str
    weight: int = 0
    weight_reverse: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)


# --------------------------------------------------------------------------- VRRP
@dataclass(slots=True, kw_only=True)
class Authentication:
    """VRRPv2 ``authentication {}``: ``auth_type`` PASS or AH; ``auth_pass`` <= 8 bytes."""

    auth_type: str  # "PASS" or "AH"
    auth_pass: bytes = b""  # as configured (truncated to 8); the wire field is zero-padded

    @property
    def auth_data(self) -> bytes:
        """The 8-byte authentication field of a VRRPv2 advert."""
        return self.auth_pass[:8].ljust(8, b"\0")


@dataclass(slots=True, kw_only=True)
class UnicastPeer:
    address: IPAddress
    min_ttl: int | None = None
    max_ttl: int | None = None
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True, kw_only=True)
class Vmac:
    """``use_vmac [[name] IFNAME] [MAC] [netlink_notify_msg] [group ID]``.

    ``ifname`` and ``mac`` are effective (``vrrp.VRID`` and ``00:00:5e:00:0{1,2}:VRID``).
    """

    ifname: str
    mac: str
    netlink_notify_msg: bool = False
    group: int | None = None
    xmit_base: bool = False  # vmac_xmit_base
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True, kw_only=True)
class Ipvlan:
    """``use_ipvlan [[name] IF] [IP/PFX] [bridge|private|vepa] [group ID]``."""

    ifname: str | None = None
    address: IPInterface | None = None
    mode: str = "bridge"
    group: int | None = None
    location: Location | None = field(default=None, compare=False, repr=False)


class VrrpState(enum.StrEnum):
    MASTER = "MASTER"
    BACKUP = "BACKUP"


@dataclass(slots=True, kw_only=True)
class VrrpInstance:
    """``vrrp_instance NAME {}`` (catalogue §10), every default applied.

    Effective values: ``state`` (wanted initial state; a configured MASTER that is not the
    address owner stays MASTER here -- it still waits the master-down timer, as Keepalived),
    ``priority`` (100, or 255 for ``state MASTER`` without a priority), ``version`` (3 for
    IPv6), ``advert_int`` (float seconds, rounded as Keepalived rounds), ``accept``,
    the ``garp_*`` values and the strict-mode overrides, ``mcast_dst_ip`` (the group the
    adverts go to), ``family`` (from the VIPs, else unicast/source addresses, else IPv4).
    """

    name: str
    virtual_router_id: int
    interface: str | None = None
    family: Family = Family.INET
    version: int = 2
    state: VrrpState = VrrpState.BACKUP
    state_configured: bool = False  # ``state`` was written in the config
    priority: int = 100
    advert_int: float = 1.0
    virtual_ipaddress: list[IpAddress] = field(default_factory=list)
    virtual_ipaddress_excluded: list[IpAddress] = field(default_factory=list)
    no_virtual_ipaddress: bool = False
    virtual_routes: list[Route] = field(default_factory=list)
    virtual_rules: list[Rule] = field(default_factory=list)
    nopreempt: bool = False
    preempt_delay: float = 0.0
    authentication: Authentication | None = None
    strict_mode: bool = False
    accept: bool = True
    skip_check_adv_addr: bool = False
    debug: int = 0
    # -- addressing / transport
    unicast_peer: list[UnicastPeer] = field(default_factory=list)
    unicast_src_ip: IPAddress | None = None
    mcast_src_ip: IPAddress | None = None
    mcast_dst_ip: IPAddress | None = None  # effective multicast group (None with unicast)
    check_unicast_src: bool = False
    unicast_fault_no_peer: bool = False
    unicast_ttl: int | None = None
    old_unicast_checksum: str | None = None  # None, "auto" or "never"
    v3_checksum_as_v2: bool = False
    track_src_ip: bool = False
    vrf: str | None = None
    native_ipv6: bool = False
    kernel_rx_buf_size: int | None = None
    # -- VMAC / ipvlan
    use_vmac: Vmac | None = None
    use_vmac_addr: bool = False
    use_ipvlan: Ipvlan | None = None
    # -- tracking
    track_interface: list[TrackInterface] = field(default_factory=list)
    track_script: list[TrackRef] = field(default_factory=list)
    track_file: list[TrackRef] = field(default_factory=list)
    track_process: list[TrackRef] = field(default_factory=list)
    track_bfd: list[TrackRef] = field(default_factory=list)
    dont_track_primary: bool = False
    linkbeat_use_polling: bool = False
    promote_secondaries: bool = False
    # -- GARP / advert tuning (effective: instance value, else global)
    garp_master_delay: float = 5.0
    garp_master_repeat: int = 5
    garp_master_refresh: float = 0.0
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_delay: float = 5.0
    garp_lower_prio_repeat: int = 5
    garp_extra_if: float | None = None
    garp_extra_if_all: bool = False
    down_timer_adverts: int = 3
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    owner_ignore_adverts: bool = False
    timer_expired_backup: int | None = None
    # -- notification
    notify_master: Script | None = None
    notify_backup: Script | None = None
    notify_fault: Script | None = None
    notify_stop: Script | None = None
    notify_deleted: bool = False
    notify_deleted_script: Script | None = None
    notify: Script | None = None
    notify_master_rx_lower_pri: Script | None = None
    notify_priority_changes: bool = False
    smtp_alert: bool = False
    lvs_sync_daemon_interface: str | None = None
    sync_group: str | None = None  # name of the vrrp_sync_group this instance belongs to
    location: Location | None = field(default=None, compare=False, repr=False)

    @property
    def unicast(self) -> bool:
        """Adverts go by unicast (peers configured, or ``unicast_src_ip`` given)."""
        return bool(self.unicast_peer) or self.unicast_src_ip is not None

    @property
    def address_owner(self) -> bool:
        return self.priority == 255

    def key(self) -> tuple[object, ...]:
        """Reload identity (``vrrp_exist()``): VRID, family, interface, unicast-ness and
        the source address (unicast) or VMAC flags and group (multicast). Not the name."""
        if self.unicast:
            return (self.virtual_router_id, self.family, self.interface, True, self.unicast_src_ip)
        vmac = self.use_vmac.ifname if self.use_vmac else None
        return (self.virtual_router_id, self.family, self.interface, False, vmac, self.mcast_dst_ip)


@dataclass(slots=True, kw_only=True)
class SyncGroup:
    """``vrrp_sync_group NAME {}`` (catalogue §8). Its trackers apply to every member."""

    name: str
    group: list[str] = field(default_factory=list)  # member instance names, in order
    track_interface: list[TrackInterface] = field(default_factory=list)
    track_script: list[TrackRef] = field(default_factory=list)
    track_file: list[TrackRef] = field(default_factory=list)
    track_process: list[TrackRef] = field(default_factory=list)
    track_bfd: list[TrackRef] = field(default_factory=list)
    notify_master: Script | None = None
    notify_backup: Script | None = None
    notify_fault: Script | None = None
    notify_stop: Script | None = None
    notify: Script | None = None
    smtp_alert: bool = False
    notify_priority_changes: bool = False
    sync_group_tracking_weight: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)

    def key(self) -> str:
        return self.name


@dataclass(slots=True, kw_only=True)
class GarpGroup:
    """``garp_group {}`` (catalogue §9)."""

    garp_interval: float = 0.0
    gna_interval: float = 0.0
    interfaces: list[str] = field(default_factory=list)
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True, kw_only=True)
class TrackGroup:
    """``track_group NAME { group { VI_1 ... } }``."""

    name: str
    group: list[str] = field(default_factory=list)
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True, kw_only=True)
class LinkbeatInterface:
    name: str
    type: str = "MII"  # MII, ETHTOOL, IOCTL


@dataclass(slots=True, kw_only=True)
class InterfaceUpDownDelay:
    name: str
    down_delay: float
    up_delay: float = 0.0  # the parser's default (the man page says "= down delay")


@dataclass(slots=True, kw_only=True)
class BfdInstance:
    """``bfd_instance NAME {}`` (catalogue §11; recognised, not supported yet)."""

    name: str
    neighbor_ip: IPAddress | None = None
    source_ip: IPAddress | None = None
    min_rx: float = 10.0  # milliseconds
    min_tx: float = 10.0
    idle_tx: float = 1000.0
    multiplier: int = 5
    passive: bool = False
    ttl: int | None = None
    hoplimit: int | None = None
    max_hops: int = 0
    multihop: bool = False
    weight: int = 0
    weight_reverse: bool = False
    vrrp: bool = False
    checker: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True, kw_only=True)
class SslConfig:
    """Root ``SSL {}``: the client TLS context for SSL_GET; all None = auto context."""

    password: str | None = None
    ca: str | None = None
    certificate: str | None = None
    key: str | None = None
    location: Location | None = field(default=None, compare=False, repr=False)


# --------------------------------------------------------------------------- LVS
@dataclass(slots=True, kw_only=True)
class Forwarding:
    """``lb_kind``/``lvs_method``: NAT, DR or TUN (+ tunnel type, port and checksum)."""

    method: str = "NAT"  # NAT, DR, TUN
    tunnel_type: str | None = None  # ipip (default for TUN), gue, gre
    tunnel_port: int | None = None  # gue
    tunnel_csum: str | None = None  # nocsum, csum, remcsum


@dataclass(slots=True, kw_only=True)
class VsgEntry:
    """One ``virtual_server_group`` member: an address range with a port, or a fwmark.

    A single address has ``address_end == address``; ``A.B.C.D-E`` and prefix forms are
    expanded to their first and last address.
    """

    address: IPAddress | None = None
    address_end: IPAddress | None = None
    port: int = 0
    fwmark: int | None = None
    family: Family | None = None  # fwmark entries: only with ``inet``/``inet6``
    location: Location | None = field(default=None, compare=False, repr=False)

    def addresses(self) -> list[IPAddress]:
        if self.address is None or self.address_end is None:
            return []
        start, end = int(self.address), int(self.address_end)
        cls = type(self.address)
        return [cls(i) for i in range(start, end + 1)]


@dataclass(slots=True, kw_only=True)
class VirtualServerGroup:
    name: str
    entries: list[VsgEntry] = field(default_factory=list)
    location: Location | None = field(default=None, compare=False, repr=False)

    def key(self) -> str:
        return self.name


@dataclass(slots=True, kw_only=True)
class Url:
    """One ``url {}`` of HTTP_GET/SSL_GET. ``status_code`` = inclusive ranges."""

    path: str = "/"
    digest: str | None = None  # 32 lowercase hex digits
    status_code: list[tuple[int, int]] = field(default_factory=lambda: [(200, 299)])
    virtualhost: str | None = None  # effective Host: url > checker > RS > VS (None = IP:port)
    regex: str | None = None
    regex_no_match: bool = False
    regex_options: list[str] = field(default_factory=list)
    regex_stack: tuple[int, int] | None = None
    regex_min_offset: int | None = None
    regex_max_offset: int | None = None
    tls_compliant: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True, kw_only=True)
class Checker:
    """A health checker in a real server; the common keywords (catalogue §16.1).

    Timing fields are effective (checker <- real_server <- virtual_server <- built-in).
    ``connect_ip``/``connect_port`` default to the real server's (filled by compile).
    Subclasses add their own keywords; ``TYPE`` is the Keepalived block name.
    """

    TYPE: ClassVar[str] = ""
    connect_ip: IPAddress | None = None
    connect_port: int = 0
    bindto: IPAddress | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    connect_timeout: float = 5.0
    fwmark: int | None = None
    retry: int = 1
    delay_before_retry: float = 1.0
    warmup: float = 60.0
    delay_loop: float = 60.0
    alpha: bool = False
    log_all_failures: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)

    @property
    def type(self) -> str:
        return self.TYPE


@dataclass(slots=True, kw_only=True)
class TcpCheck(Checker):
    TYPE: ClassVar[str] = "TCP_CHECK"


@dataclass(slots=True, kw_only=True)
class HttpGetCheck(Checker):
    TYPE: ClassVar[str] = "HTTP_GET"
    urls: list[Url] = field(default_factory=list)
    virtualhost: str | None = None  # checker-level Host (already folded into each url)
    http_protocol: str = "1.0"  # 1.0, 1.0C, 1.1
    fast_recovery: bool = False
    enable_sni: bool = False
    sni_name: str | None = None
    tls_compliant: bool = False

    @property
    def ssl(self) -> bool:
        return False


@dataclass(slots=True, kw_only=True)
class SslGetCheck(HttpGetCheck):
    TYPE: ClassVar[str] = "SSL_GET"

    @property
    def ssl(self) -> bool:
        return True


@dataclass(slots=True, kw_only=True)
class MiscCheck(Checker):
    """MISC_CHECK: ``misc_timeout`` effective (= delay_loop); ``user`` overrides the script's."""

    TYPE: ClassVar[str] = "MISC_CHECK"
    misc_path: Script | None = None
    misc_timeout: float = 60.0
    misc_dynamic: bool = False


@dataclass(slots=True, kw_only=True)
class SmtpHost:
    """A deprecated ``host {}`` sub-block of SMTP_CHECK."""

    connect_ip: IPAddress | None = None
    connect_port: int | None = None
    bindto: IPAddress | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    connect_timeout: float | None = None
    fwmark: int | None = None


@dataclass(slots=True, kw_only=True)
class SmtpCheck(Checker):
    TYPE: ClassVar[str] = "SMTP_CHECK"
    helo_name: str = "smtpchecker.keepalived.org"
    hosts: list[SmtpHost] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class DnsCheck(Checker):
    TYPE: ClassVar[str] = "DNS_CHECK"
    query_type: str = "SOA"  # the ``type`` keyword: the DNS query type
    name: str = "."


@dataclass(slots=True, kw_only=True)
class UdpCheck(Checker):
    TYPE: ClassVar[str] = "UDP_CHECK"
    payload: bytes | None = None  # None = random
    require_reply: bool = False
    reply_data: bytes | None = None  # expected prefix (``x`` nibbles -> reply_mask)
    reply_mask: bytes | None = None
    min_reply_length: int = 0
    max_reply_length: int = 255


@dataclass(slots=True, kw_only=True)
class PingCheck(Checker):
    TYPE: ClassVar[str] = "PING_CHECK"


@dataclass(slots=True, kw_only=True)
class FileCheck(Checker):
    """FILE_CHECK: ``weight`` effective (= the track_file's weight unless given)."""

    TYPE: ClassVar[str] = "FILE_CHECK"
    track_file: str = ""
    weight: int = 1
    weight_reverse: bool = False


@dataclass(slots=True, kw_only=True)
class BfdCheck(Checker):
    TYPE: ClassVar[str] = "BFD_CHECK"
    name: str = ""


CHECKER_TYPES: dict[str, type[Checker]] = {
    cls.TYPE: cls
    for cls in (
        TcpCheck,
        HttpGetCheck,
        SslGetCheck,
        MiscCheck,
        SmtpCheck,
        DnsCheck,
        UdpCheck,
        PingCheck,
        FileCheck,
        BfdCheck,
    )
}


@dataclass(slots=True, kw_only=True)
class RealServer:
    """``real_server IP [PORT] {}`` (catalogue §15) -- also used for ``sorry_server``."""

    address: IPAddress
    port: int = 0
    weight: int = 1  # effective: = the virtual server's ``weight`` (1)
    forwarding: Forwarding = field(default_factory=Forwarding)  # effective: = VS lb_kind
    inhibit_on_failure: bool = False
    notify_up: Script | None = None
    notify_down: Script | None = None
    uthreshold: int = 0
    lthreshold: int = 0
    alpha: bool = False
    smtp_alert: bool = True
    virtualhost: str | None = None
    snmp_name: str | None = None
    delay_loop: float = 60.0  # effective defaults handed to this RS's checkers
    connect_timeout: float = 5.0
    retry: int | None = None  # None = each checker's own default
    delay_before_retry: float | None = None
    warmup: float | None = None
    checkers: list[Checker] = field(default_factory=list)
    location: Location | None = field(default=None, compare=False, repr=False)

    @property
    def family(self) -> Family:
        return Family.of(self.address)

    def key(self) -> tuple[object, ...]:
        """Reload identity (``rs_iseq()``): address + port."""
        return (self.address, self.port)


@dataclass(slots=True, kw_only=True)
class VirtualServer:
    """``virtual_server IP [PORT] | fwmark N | group NAME {}`` (catalogue §14).

    Exactly one of ``address`` (with ``port``), ``fwmark`` or ``group`` is set.
    """

    address: IPAddress | None = None
    port: int = 0
    fwmark: int | None = None
    group: str | None = None
    family: Family = Family.INET
    protocol: str = "TCP"  # TCP, UDP, SCTP (effective; fwmark services ignore it)
    protocol_configured: bool = False
    lb_algo: str = "wlc"
    forwarding: Forwarding = field(default_factory=Forwarding)  # lb_kind / lvs_method
    persistence_timeout: int = 0  # 0 = not persistent
    persistence_granularity: str | None = None  # netmask (IPv4) or prefix length (IPv6)
    persistence_engine: str | None = None
    ops: bool = False
    hashed: bool = False
    flag_1: bool = False
    flag_2: bool = False
    flag_3: bool = False
    sh_port: bool = False
    sh_fallback: bool = False
    mh_port: bool = False
    mh_fallback: bool = False
    delay_loop: float = 60.0
    connect_timeout: float = 5.0
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    inhibit_on_failure: bool = False
    alpha: bool = False
    omega: bool = False
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: Script | None = None
    quorum_down: Script | None = None
    sorry_server: RealServer | None = None
    sorry_server_inhibit: bool = False
    sorry_server_lvs_method: Forwarding | None = None  # already applied to sorry_server
    ha_suspend: bool = False
    virtualhost: str | None = None
    smtp_alert: bool = False
    weight: int = 1
    ip_family: Family | None = None
    snmp_name: str | None = None
    real_servers: list[RealServer] = field(default_factory=list)
    location: Location | None = field(default=None, compare=False, repr=False)

    def key(self) -> tuple[object, ...]:
        """Reload identity (``vs_iseq()``): group name + port, af + fwmark, or af +
        protocol + address + port."""
        if self.group is not None:
            return ("group", self.group, self.port)
        if self.fwmark is not None:
            return ("fwmark", self.family, self.fwmark)
        return ("address", self.family, self.protocol, self.address, self.port)

    def describe(self) -> str:
        """Keepalived's ``format_vs()``: ``[IP]:proto:port``, ``FWM n`` or ``[group]:port``."""
        if self.group is not None:
            return f"[{self.group}]:{self.port}"
        if self.fwmark is not None:
            return f"FWM {self.fwmark}"
        return f"[{self.address}]:{self.protocol.lower()}:{self.port}"


# --------------------------------------------------------------------------- the whole
@dataclass(slots=True, kw_only=True)
class Config:
    """A compiled keepalived.conf. Dicts keep configuration order."""

    global_defs: GlobalDefs = field(default_factory=GlobalDefs)
    vrrp_scripts: dict[str, VrrpScript] = field(default_factory=dict)
    track_files: dict[str, TrackFile] = field(default_factory=dict)
    track_processes: dict[str, TrackProcess] = field(default_factory=dict)
    vrrp_sync_groups: dict[str, SyncGroup] = field(default_factory=dict)
    garp_groups: list[GarpGroup] = field(default_factory=list)
    vrrp_instances: dict[str, VrrpInstance] = field(default_factory=dict)
    static_ipaddress: list[IpAddress] = field(default_factory=list)
    static_routes: list[Route] = field(default_factory=list)
    static_rules: list[Rule] = field(default_factory=list)
    track_groups: dict[str, TrackGroup] = field(default_factory=dict)
    linkbeat_interfaces: list[LinkbeatInterface] = field(default_factory=list)
    interface_up_down_delays: list[InterfaceUpDownDelay] = field(default_factory=list)
    bfd_instances: dict[str, BfdInstance] = field(default_factory=dict)
    ssl: SslConfig | None = None
    virtual_server_groups: dict[str, VirtualServerGroup] = field(default_factory=dict)
    virtual_servers: list[VirtualServer] = field(default_factory=list)
    # every file read, main file first (for reload watching and -d)
    files: list[str] = field(default_factory=list, compare=False)

    @property
    def has_vrrp(self) -> bool:
        """Whether a VRRP child is needed (vrrp_* or static_* configuration)."""
        return bool(
            self.vrrp_instances
            or self.static_ipaddress
            or self.static_routes
            or self.static_rules
            or self.vrrp_scripts
            or self.vrrp_sync_groups
        )

    @property
    def has_checker(self) -> bool:
        """Whether a checker child is needed (any virtual_server)."""
        return bool(self.virtual_servers)


# --------------------------------------------------------------------------- reload matching
T = TypeVar("T")


@dataclass(slots=True)
class Matched(Generic[T]):
    """Old and new objects paired by identity key (what a reload diff starts from)."""

    removed: list[T] = field(default_factory=list)  # only in the old configuration
    added: list[T] = field(default_factory=list)  # only in the new one
    changed: list[tuple[T, T]] = field(default_factory=list)  # same key, different settings
    unchanged: list[tuple[T, T]] = field(default_factory=list)  # same key, equal


def match_by_key(old: Iterable[T], new: Iterable[T], key: Callable[[T], Hashable]) -> Matched[T]:
    """Pair ``old`` and ``new`` objects by ``key`` (e.g. ``VrrpInstance.key``), in order.

    Keys are expected to be unique on each side; for a repeated key the first wins.
    """
    result: Matched[T] = Matched()
    old_by_key: dict[Hashable, T] = {}
    for item in old:
        old_by_key.setdefault(key(item), item)
    seen: set[Hashable] = set()
    for item in new:
        k = key(item)
        if k in seen:
            continue
        seen.add(k)
        previous = old_by_key.get(k)
        if previous is None:
            result.added.append(item)
        elif previous == item:
            result.unchanged.append((previous, item))
        else:
            result.changed.append((previous, item))
    result.removed = [item for k, item in old_by_key.items() if k not in seen]
    return result
