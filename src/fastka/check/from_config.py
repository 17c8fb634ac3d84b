"""Map the compiled configuration (``fastka.config.model``) onto the checker specs.

The model already carries every effective default; this only changes shape: addresses
become strings, a ``virtual_server group`` becomes one IPVS service per group address /
fwmark, scheduler keywords become IPVS service flags, and each checker block becomes a
:class:`~fastka.check.spec.CheckerSpec`.
"""

from __future__ import annotations

import ipaddress
import socket

from fastka.check.spec import (
    CheckConfig,
    CheckerSpec,
    CheckGlobals,
    CheckParams,
    DnsParams,
    FileParams,
    HttpParams,
    MiscParams,
    PingParams,
    RealServerSpec,
    Script,
    ServiceSpec,
    SmtpParams,
    TcpParams,
    UdpParams,
    UrlSpec,
    VirtualServerSpec,
)
from fastka.config import model as m
from fastka.log import get_logger
from fastka.smtp import SmtpSettings

log = get_logger("check")

# include/linux/ip_vs.h
IP_VS_SVC_F_PERSISTENT = 0x0001
IP_VS_SVC_F_HASHED = 0x0002
IP_VS_SVC_F_ONEPACKET = 0x0004
IP_VS_SVC_F_SCHED1 = 0x0008
IP_VS_SVC_F_SCHED2 = 0x0010
IP_VS_SVC_F_SCHED3 = 0x0020
TUN_TYPES = {None: 0, "ipip": 0, "gue": 1, "gre": 2}
TUN_CSUM = {None: 0, "nocsum": 0, "csum": 1, "remcsum": 2}


def _af(family: m.Family | None) -> int:
    return socket.AF_INET6 if family == m.Family.INET6 else socket.AF_INET


def _script(s: m.Script | None) -> Script | None:
    if s is None:
        return None
    return Script(tuple(s.argv), s.user, s.group)


def service_flags(vs: m.VirtualServer) -> int:
    flags = 0
    if vs.persistence_timeout:
        flags |= IP_VS_SVC_F_PERSISTENT
    if vs.ops:
        flags |= IP_VS_SVC_F_ONEPACKET
    if vs.flag_1 or vs.sh_fallback or vs.mh_fallback:
        flags |= IP_VS_SVC_F_SCHED1
    if vs.flag_2 or vs.sh_port or vs.mh_port:
        flags |= IP_VS_SVC_F_SCHED2
    if vs.flag_3:
        flags |= IP_VS_SVC_F_SCHED3
    return flags


def service_netmask(vs: m.VirtualServer, af: int) -> int:
    g = vs.persistence_granularity
    if af == socket.AF_INET6:
        return int(g) if g else 128
    if not g:
        return 0xFFFFFFFF
    return int(ipaddress.IPv4Address(g))


def services_of(vs: m.VirtualServer, groups: dict[str, m.VirtualServerGroup]) -> list[ServiceSpec]:
    proto = vs.protocol.lower()

    def svc(af: int, address: str | None, port: int, fwmark: int = 0) -> ServiceSpec:
        return ServiceSpec(
            af,
            "none" if fwmark else proto,
            address,
            port,
            fwmark,
            vs.lb_algo,
            service_flags(vs),
            vs.persistence_timeout,
            service_netmask(vs, af),
            vs.persistence_engine,
        )

    if vs.group is not None:
        out = []
        group = groups.get(vs.group)
        for entry in group.entries if group else []:
            if entry.fwmark is not None:
                out.append(svc(_af(entry.family or vs.ip_family or vs.family), None, 0, entry.fwmark))
            else:
                for addr in entry.addresses():
                    out.append(svc(_af(m.Family.of(addr)), str(addr), entry.port))
        return out
    if vs.fwmark is not None:
        return [svc(_af(vs.ip_family or vs.family), None, 0, vs.fwmark)]
    assert vs.address is not None
    return [svc(_af(vs.family), str(vs.address), vs.port)]


def checker_params(c: m.Checker, config: m.Config) -> CheckParams | None:
    if isinstance(c, m.HttpGetCheck):
        urls = tuple(
            UrlSpec(
                path=u.path,
                digest=u.digest,
                status_code=tuple(u.status_code),
                virtualhost=u.virtualhost,
                regex=u.regex,
                regex_no_match=u.regex_no_match,
                regex_min_offset=u.regex_min_offset or 0,
                regex_max_offset=u.regex_max_offset,
            )
            for u in c.urls
        )
        return HttpParams(
            urls=urls or (UrlSpec(),),
            ssl=c.ssl,
            virtualhost=c.virtualhost,
            http_protocol=c.http_protocol,
            fast_recovery=c.fast_recovery,
            enable_sni=c.enable_sni,
            sni_name=c.sni_name,
            tls_compliant=c.tls_compliant or any(u.tls_compliant for u in c.urls),
        )
    if isinstance(c, m.TcpCheck):
        return TcpParams()
    if isinstance(c, m.SmtpCheck):
        return SmtpParams(c.helo_name)
    if isinstance(c, m.DnsCheck):
        return DnsParams(c.query_type, c.name)
    if isinstance(c, m.UdpCheck):
        pattern: tuple[tuple[int, int], ...] = ()
        if c.reply_data:
            mask = c.reply_mask or b"\xff" * len(c.reply_data)
            pattern = tuple(zip(c.reply_data, mask, strict=False))
        return UdpParams(c.payload, c.require_reply, pattern, c.min_reply_length, c.max_reply_length)
    if isinstance(c, m.PingCheck):
        return PingParams()
    if isinstance(c, m.MiscCheck):
        script = _script(c.misc_path)
        if script is None:
            return None
        return MiscParams(script, c.misc_timeout, c.misc_dynamic)
    if isinstance(c, m.FileCheck):
        tf = config.track_files.get(c.track_file)
        if tf is None:
            return None
        return FileParams(tf.file, c.weight, c.weight_reverse, c.track_file)
    return None  # BFD_CHECK: not supported by this checker child


def checker_specs(rs: m.RealServer, vs: m.VirtualServer, config: m.Config) -> tuple[CheckerSpec, ...]:
    out = []
    for c in rs.checkers:
        params = checker_params(c, config)
        if params is None:
            log.warning("%s of %s in VS %s is not supported: ignored", c.type, rs.address, vs.describe())
            continue
        base = CheckerSpec(
            params=params,
            delay_loop=c.delay_loop,
            connect_timeout=c.connect_timeout,
            retry=c.retry,
            delay_before_retry=c.delay_before_retry,
            warmup=c.warmup,
            alpha=c.alpha or rs.alpha or vs.alpha,
            log_all_failures=c.log_all_failures,
            connect_ip=str(c.connect_ip) if c.connect_ip is not None else None,
            connect_port=c.connect_port or None,
            bindto=str(c.bindto) if c.bindto is not None else None,
            bind_port=c.bind_port,
            bind_if=c.bind_if,
            fwmark=c.fwmark,
        )
        if isinstance(c, m.SmtpCheck) and c.hosts:
            # Deprecated host{} blocks: each host is one more connection that must work.
            for h in c.hosts:
                out.append(
                    CheckerSpec(
                        params=params,
                        delay_loop=base.delay_loop,
                        connect_timeout=h.connect_timeout or base.connect_timeout,
                        retry=base.retry,
                        delay_before_retry=base.delay_before_retry,
                        warmup=base.warmup,
                        alpha=base.alpha,
                        log_all_failures=base.log_all_failures,
                        connect_ip=str(h.connect_ip) if h.connect_ip is not None else base.connect_ip,
                        connect_port=h.connect_port or base.connect_port,
                        bindto=str(h.bindto) if h.bindto is not None else base.bindto,
                        bind_port=h.bind_port or base.bind_port,
                        bind_if=h.bind_if or base.bind_if,
                        fwmark=h.fwmark or base.fwmark,
                    )
                )
            continue
        out.append(base)
    return tuple(out)


def real_server_spec(rs: m.RealServer, vs: m.VirtualServer, config: m.Config) -> RealServerSpec:
    f = rs.forwarding
    return RealServerSpec(
        address=str(rs.address),
        port=rs.port,
        weight=rs.weight,
        fwd=f.method,
        inhibit_on_failure=rs.inhibit_on_failure or vs.inhibit_on_failure,
        notify_up=_script(rs.notify_up),
        notify_down=_script(rs.notify_down),
        uthreshold=rs.uthreshold,
        lthreshold=rs.lthreshold,
        tun_type=TUN_TYPES.get(f.tunnel_type, 0),
        tun_port=f.tunnel_port or 0,
        tun_flags=TUN_CSUM.get(f.tunnel_csum, 0),
        checkers=checker_specs(rs, vs, config),
        smtp_alert=rs.smtp_alert,
    )


def virtual_server_spec(vs: m.VirtualServer, config: m.Config) -> VirtualServerSpec:
    services = services_of(vs, config.virtual_server_groups)
    sorry = vs.sorry_server
    return VirtualServerSpec(
        services=tuple(services),
        real_servers=tuple(real_server_spec(rs, vs, config) for rs in vs.real_servers),
        group=vs.group,
        group_port=vs.port,
        quorum=vs.quorum,
        hysteresis=vs.hysteresis,
        quorum_up=_script(vs.quorum_up),
        quorum_down=_script(vs.quorum_down),
        sorry_server=(
            RealServerSpec(str(sorry.address), sorry.port, sorry.weight, sorry.forwarding.method)
            if sorry is not None
            else None
        ),
        sorry_server_inhibit=vs.sorry_server_inhibit,
        ha_suspend=vs.ha_suspend,
        omega=vs.omega,
        ha_suspend_addresses=tuple(s.address for s in services if s.address),
        smtp_alert=vs.smtp_alert,
        rs_alert_changes_only=config.global_defs.no_checker_emails,
    )


def check_config(config: m.Config, *, dont_release_ipvs: bool = False) -> CheckConfig:
    g = config.global_defs
    fifos = tuple(f.path for f in (g.notify_fifo, g.lvs_notify_fifo) if f is not None)
    ssl = config.ssl
    lvs = g.lvs_notify_fifo
    fifo_script = _script(lvs.script) if lvs is not None else None
    return CheckConfig(
        virtual_servers=tuple(virtual_server_spec(vs, config) for vs in config.virtual_servers),
        globals=CheckGlobals(
            lvs_notify_fifos=fifos,
            lvs_notify_fifo_script=(lvs.path, fifo_script) if lvs is not None and fifo_script else None,
            script_user=g.script_user,
            script_group=g.script_group,
            enable_script_security=g.enable_script_security,
            checker_log_all_failures=g.checker_log_all_failures,
            rs_init_notifies=g.rs_init_notifies,
            dont_release_ipvs=dont_release_ipvs,
            lvs_flush=g.lvs_flush,
            lvs_flush_on_stop=g.lvs_flush_on_stop,
            ssl_ca=ssl.ca if ssl else None,
            ssl_certificate=ssl.certificate if ssl else None,
            ssl_key=ssl.key if ssl else None,
            ssl_password=ssl.password if ssl else None,
            smtp=SmtpSettings.from_global_defs(g),
        ),
    )
