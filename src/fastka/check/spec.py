"""What the checker child is asked to run: virtual servers, real servers, checkers.

These are small frozen objects with every default already applied (behaviour.md §C1:
checker <- real_server <- virtual_server <- built-in). The configuration compiler's model
(``fastka.config.model``) is mapped onto them in :mod:`fastka.check.from_config`; tests
build them directly. Times are float seconds.

Identity (for reload, behaviour.md §R): a virtual server is identified by
:attr:`VirtualServerSpec.key`, a real server by (address, port) inside it, and a checker by
its whole spec minus the timing knobs that do not change what is checked
(:meth:`CheckerSpec.identity`).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from fastka.smtp import SmtpSettings

# IPVS forwarding methods, named as ipvsadm/Keepalived (lb_kind / lvs_method).
FWD_NAT = "NAT"
FWD_DR = "DR"
FWD_TUN = "TUN"


def family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def normalise_ip(address: str) -> str:
    return str(ipaddress.ip_address(address))


@dataclass(frozen=True)
class Script:
    """A notify/quorum/MISC script: argv and the user/group it runs as (None = default)."""

    argv: tuple[str, ...]
    user: str | None = None
    group: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.argv)


# ---------------------------------------------------------------------- checker kinds
@dataclass(frozen=True)
class TcpParams:
    pass


@dataclass(frozen=True)
class UrlSpec:
    """One ``url {}`` block of HTTP_GET/SSL_GET."""

    path: str = "/"
    digest: str | None = None  # 32 lowercase hex digits
    # Accepted status codes as inclusive ranges; default 200-299.
    status_code: tuple[tuple[int, int], ...] = ((200, 299),)
    virtualhost: str | None = None
    regex: str | None = None
    regex_no_match: bool = False
    regex_min_offset: int = 0
    regex_max_offset: int | None = None

    def status_ok(self, code: int) -> bool:
        return any(lo <= code <= hi for lo, hi in self.status_code)


@dataclass(frozen=True)
class HttpParams:
    urls: tuple[UrlSpec, ...] = (UrlSpec(),)
    ssl: bool = False  # SSL_GET
    virtualhost: str | None = None  # checker > RS > VS default (applied by the mapper)
    http_protocol: str = "1.0"  # "1.0", "1.0C", "1.1"
    fast_recovery: bool = False
    enable_sni: bool = False
    sni_name: str | None = None
    tls_compliant: bool = False


@dataclass(frozen=True)
class SmtpParams:
    helo_name: str = "smtpchecker.keepalived.org"


@dataclass(frozen=True)
class DnsParams:
    type: str = "SOA"
    name: str = "."


@dataclass(frozen=True)
class UdpParams:
    payload: bytes | None = None  # None = random bytes, as Keepalived
    require_reply: bool = False
    # Expected reply prefix as (byte, mask) pairs: mask 0xF0/0x0F/0x00 for 'x' nibbles.
    reply_pattern: tuple[tuple[int, int], ...] = ()
    min_reply_length: int = 0
    max_reply_length: int = 255


@dataclass(frozen=True)
class PingParams:
    pass


@dataclass(frozen=True)
class MiscParams:
    script: Script = Script(("/bin/true",))
    timeout: float | None = None  # None = delay_loop
    dynamic: bool = False


@dataclass(frozen=True)
class FileParams:
    path: str = ""
    weight: int = 1  # multiplier of the file's value
    reverse: bool = False
    name: str = ""  # the track_file name, for logs


CheckParams = (
    TcpParams | HttpParams | SmtpParams | DnsParams | UdpParams | PingParams | MiscParams | FileParams
)

KIND_BY_PARAMS: dict[type[object], str] = {
    TcpParams: "TCP_CHECK",
    HttpParams: "HTTP_GET",
    SmtpParams: "SMTP_CHECK",
    DnsParams: "DNS_CHECK",
    UdpParams: "UDP_CHECK",
    PingParams: "PING_CHECK",
    MiscParams: "MISC_CHECK",
    FileParams: "FILE_CHECK",
}


@dataclass(frozen=True)
class CheckerSpec:
    """One checker block with its defaults applied (behaviour.md §C1)."""

    params: CheckParams = TcpParams()
    delay_loop: float = 60.0
    connect_timeout: float = 5.0
    retry: int = 1
    delay_before_retry: float = 1.0
    warmup: float | None = None  # None = delay_loop
    alpha: bool = False
    log_all_failures: bool = False
    # Connection options (not MISC/FILE).
    connect_ip: str | None = None
    connect_port: int | None = None
    bindto: str | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int | None = None

    @property
    def kind(self) -> str:
        if isinstance(self.params, HttpParams) and self.params.ssl:
            return "SSL_GET"
        return KIND_BY_PARAMS[type(self.params)]

    @property
    def effective_warmup(self) -> float:
        return self.delay_loop if self.warmup is None else self.warmup

    def identity(self) -> tuple[object, ...]:
        """What must be equal for a checker to keep its state across a reload: type,
        connection options and type-specific fields (Keepalived's checker ``compare``)."""
        return (
            self.params,
            self.connect_ip,
            self.connect_port,
            self.bindto,
            self.bind_port,
            self.bind_if,
            self.fwmark,
        )


# ---------------------------------------------------------------------- servers
@dataclass(frozen=True)
class RealServerSpec:
    address: str
    port: int = 0
    weight: int = 1
    fwd: str = FWD_NAT
    inhibit_on_failure: bool = False
    notify_up: Script | None = None
    notify_down: Script | None = None
    uthreshold: int = 0
    lthreshold: int = 0
    tun_type: int = 0
    tun_port: int = 0
    tun_flags: int = 0
    checkers: tuple[CheckerSpec, ...] = ()
    smtp_alert: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.address, self.port)


@dataclass(frozen=True)
class ServiceSpec:
    """One IPVS service (a virtual server, or one entry of a virtual_server_group)."""

    af: int
    protocol: str = "tcp"  # tcp | udp | sctp | none (fwmark)
    address: str | None = None
    port: int = 0
    fwmark: int = 0
    sched_name: str = "wlc"
    flags: int = 0
    timeout: int = 0  # persistence_timeout, seconds
    netmask: int = 0xFFFFFFFF
    pe_name: str | None = None

    @property
    def key(self) -> tuple[object, ...]:
        if self.fwmark:
            return (self.af, "fwmark", self.fwmark)
        return (self.af, self.protocol, self.address, self.port)

    def describe(self) -> str:
        """Keepalived's ``format_vs()`` for one service: ``[IP]:proto:port`` or ``FWM n``."""
        if self.fwmark:
            return f"FWM {self.fwmark}"
        return f"[{self.address}]:{self.protocol}:{self.port}"


@dataclass(frozen=True)
class VirtualServerSpec:
    services: tuple[ServiceSpec, ...]
    real_servers: tuple[RealServerSpec, ...] = ()
    group: str | None = None  # virtual_server_group name
    group_port: int = 0
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: Script | None = None
    quorum_down: Script | None = None
    sorry_server: RealServerSpec | None = None
    sorry_server_inhibit: bool = False
    ha_suspend: bool = False
    omega: bool = False
    # For ha_suspend: the address(es) that must be local.
    ha_suspend_addresses: tuple[str, ...] = ()
    smtp_alert: bool = False
    # no_checker_emails: a real server's mail only when the server itself changes state
    rs_alert_changes_only: bool = False

    @property
    def key(self) -> tuple[object, ...]:
        """Keepalived's ``vs_iseq()``: group + port, or the single service's key."""
        if self.group is not None:
            return ("group", self.group, self.group_port)
        return self.services[0].key

    def describe(self) -> str:
        if self.group is not None:
            return f"[{self.group}]:{self.group_port}"
        return self.services[0].describe()

    @property
    def protocol(self) -> str:
        return self.services[0].protocol if self.services else "tcp"


@dataclass(frozen=True)
class CheckGlobals:
    """The global_defs settings the checker child uses."""

    lvs_notify_fifos: tuple[str, ...] = ()  # notify_fifo and lvs_notify_fifo
    # lvs_notify_fifo_script: (fifo path, script) started once the FIFO is open.
    lvs_notify_fifo_script: tuple[str, Script] | None = None
    script_user: str | None = None
    script_group: str | None = None
    enable_script_security: bool = False
    checker_log_all_failures: bool = False
    rs_init_notifies: bool = False
    dont_release_ipvs: bool = False  # -I
    lvs_flush: bool = False
    lvs_flush_on_stop: str | None = None  # None, "all" (flush) or "vs" (our services only)
    ssl_ca: str | None = None
    ssl_certificate: str | None = None
    ssl_key: str | None = None
    ssl_password: str | None = None
    smtp: SmtpSettings | None = None  # None: no SMTP alerts


@dataclass(frozen=True)
class CheckConfig:
    virtual_servers: tuple[VirtualServerSpec, ...] = ()
    globals: CheckGlobals = field(default_factory=CheckGlobals)
