"""Defaults applied at compile time, cross references, and Keepalived's semantic checks."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cfghelp import compile_text, fake_program, host, located, problems

from fastka.config import exit_code
from fastka.config import model as m
from fastka.config.diagnostics import Status


def one_instance(body: str, prefix: str = "", **kwargs: object) -> tuple[m.VrrpInstance, list[str]]:
    config, diags = compile_text(
        f"{prefix}\nvrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 10\n{body}\n}}\n", **kwargs
    )
    return config.vrrp_instances["VI_1"], problems(diags)


VIP = "virtual_ipaddress {\n 10.0.0.1/24\n}"


# --------------------------------------------------------------------------- VRRP defaults
def test_instance_defaults() -> None:
    vi, errs = one_instance(VIP)
    assert errs == []
    assert vi.priority == 100 and vi.state is m.VrrpState.BACKUP and not vi.state_configured
    assert vi.advert_int == 1.0 and vi.version == 2 and vi.family is m.Family.INET
    assert vi.accept and not vi.nopreempt and vi.preempt_delay == 0
    assert vi.mcast_dst_ip == ipaddress.ip_address("224.0.0.18")
    assert (vi.garp_master_delay, vi.garp_master_repeat, vi.garp_master_refresh) == (5.0, 5, 0.0)
    assert (vi.garp_lower_prio_delay, vi.garp_lower_prio_repeat) == (5.0, 5)
    assert vi.down_timer_adverts == 3 and not vi.smtp_alert
    assert vi.virtual_ipaddress[0].dev == "eth0"


def test_state_master_without_priority_is_address_owner() -> None:
    vi, _ = one_instance("state MASTER\n" + VIP)
    assert vi.priority == 255 and vi.address_owner and vi.state is m.VrrpState.MASTER


def test_state_follows_priority_when_not_configured() -> None:
    vi, _ = one_instance("priority 255\n" + VIP)
    assert vi.state is m.VrrpState.MASTER
    vi, _ = one_instance("priority 254\n" + VIP)
    assert vi.state is m.VrrpState.BACKUP


def test_configured_master_below_255_stays_master() -> None:
    vi, errs = one_instance("state MASTER\npriority 150\n" + VIP)
    assert errs == [] and vi.state is m.VrrpState.MASTER and vi.priority == 150


def test_ipv6_instance_is_version_3() -> None:
    vi, errs = one_instance("virtual_ipaddress {\n fe80::1\n 2001:db8::1/64\n}")
    assert errs == [] and vi.family is m.Family.INET6 and vi.version == 3
    assert vi.mcast_dst_ip == ipaddress.ip_address("ff02::12")
    vi, errs = one_instance("version 2\nvirtual_ipaddress {\n fe80::1\n}")
    assert errs == ["(VI_1) cannot use IPv6 with VRRP version 2; setting version 3"] and vi.version == 3


def test_mixed_families_in_virtual_ipaddress() -> None:
    vi, errs = one_instance(
        "virtual_ipaddress {\n 10.0.0.1\n 2001:db8::1\n}\nvirtual_ipaddress_excluded {\n 2001:db8::2\n}"
    )
    assert errs == ["(VI_1): address family must match VRRP instance [2001:db8::1] - ignoring"]
    assert len(vi.virtual_ipaddress) == 1 and len(vi.virtual_ipaddress_excluded) == 1


@pytest.mark.parametrize(
    ("version", "advert", "effective", "errors"),
    [
        (2, "1", 1.0, 0),
        (2, "3", 3.0, 0),
        (2, "1.5", 2.0, 1),
        (2, "300", 255.0, 1),
        (3, "0.01", 0.01, 0),
        (3, "12", 12.0, 0),
        (3, "0.015", 0.02, 1),
        (3, "50", 40.95, 1),
    ],
)
def test_advert_int(version: int, advert: str, effective: float, errors: int) -> None:
    vi, errs = one_instance(f"version {version}\nadvert_int {advert}\n" + VIP)
    assert vi.advert_int == pytest.approx(effective)
    assert len(errs) == errors


def test_authentication() -> None:
    vi, errs = one_instance("authentication {\n auth_type PASS\n auth_pass secret123456\n}\n" + VIP)
    assert errs == ["Truncating auth_pass to 8 characters"]
    assert vi.authentication == m.Authentication(auth_type="PASS", auth_pass=b"secret12")
    vi, errs = one_instance("version 3\nauthentication {\n auth_type PASS\n auth_pass x\n}\n" + VIP)
    assert errs == ["(VI_1) VRRP version 3 does not support authentication. Ignoring."]
    assert vi.authentication is None


def test_strict_mode() -> None:
    vi, errs = one_instance(
        "state MASTER\npriority 100\naccept\npreempt_delay 3\nauthentication {\n auth_type PASS\n auth_pass x\n}\n"
        + VIP,
        prefix="global_defs {\n vrrp_strict\n}",
    )
    assert errs == [
        "(VI_1) State MASTER must match being address owner",
        "(VI_1) Strict mode does not support authentication. Ignoring.",
        "(VI_1) preempt_delay is incompatible with strict mode - resetting",
        "(VI_1) Strict mode requires no_accept - resetting",
    ]
    assert vi.strict_mode and vi.state is m.VrrpState.BACKUP and vi.authentication is None
    assert not vi.accept and vi.preempt_delay == 0
    assert vi.garp_lower_prio_repeat == 0 and vi.lower_prio_no_advert and not vi.higher_prio_send_advert
    assert vi.owner_ignore_adverts


def test_nopreempt_and_preempt_delay() -> None:
    vi, errs = one_instance("nopreempt\npreempt_delay 5\n" + VIP)
    assert errs == ["(VI_1) preempt_delay is incompatible with nopreempt mode - resetting"]
    assert vi.nopreempt and vi.preempt_delay == 0
    vi, errs = one_instance("nopreempt\npreempt\n" + VIP)
    assert not vi.nopreempt


def test_global_vrrp_defaults_apply_to_instances() -> None:
    prefix = (
        "global_defs {\n vrrp_garp_master_delay 3\n vrrp_garp_master_repeat 2\n vrrp_version 3\n"
        " vrrp_garp_lower_prio_repeat 1\n vrrp_skip_check_adv_addr\n vrrp_check_unicast_src\n smtp_alert\n}"
    )
    vi, errs = one_instance(VIP, prefix=prefix)
    assert errs == []
    assert (vi.garp_master_delay, vi.garp_master_repeat, vi.version) == (3.0, 2, 3)
    assert (vi.garp_lower_prio_delay, vi.garp_lower_prio_repeat) == (3.0, 1)
    assert vi.skip_check_adv_addr and vi.check_unicast_src and vi.smtp_alert
    vi, _ = one_instance("garp_master_delay 1\nsmtp_alert off\n" + VIP, prefix=prefix)
    assert vi.garp_master_delay == 1.0 and not vi.smtp_alert


def test_vrrp_min_garp() -> None:
    config, _ = compile_text("global_defs {\n vrrp_min_garp\n vrrp_garp_master_delay 2\n}\n")
    gd = config.global_defs
    assert (gd.vrrp_garp_master_repeat, gd.vrrp_garp_master_delay, gd.vrrp_garp_master_refresh) == (
        1,
        2.0,
        0.0,
    )


def test_unicast() -> None:
    vi, errs = one_instance(
        "unicast_src_ip 10.0.0.2\nunicast_peer {\n 10.0.0.3\n 10.0.0.4 min_ttl 250 max_ttl 255\n 2001:db8::9\n}\n"
        + VIP
    )
    assert errs == ["(VI_1) unicast peer 2001:db8::9 is not the instance's address family - ignoring"]
    assert vi.unicast and vi.mcast_dst_ip is None and vi.check_unicast_src
    assert [(str(p.address), p.min_ttl, p.max_ttl) for p in vi.unicast_peer] == [
        ("10.0.0.3", None, None),
        ("10.0.0.4", 250, 255),
    ]


def test_use_vmac_defaults() -> None:
    vi, _ = one_instance("use_vmac\n" + VIP)
    assert vi.use_vmac == m.Vmac(ifname="vrrp.10", mac="00:00:5e:00:01:0a")
    vi, _ = one_instance("use_vmac vmac1 02:00:00:00:00\nvmac_xmit_base\n" + VIP)
    assert vi.use_vmac is not None
    assert (vi.use_vmac.ifname, vi.use_vmac.mac, vi.use_vmac.xmit_base) == (
        "vmac1",
        "02:00:00:00:00:0a",
        True,
    )
    vi, _ = one_instance("use_vmac\nvirtual_ipaddress {\n fe80::1\n}")
    assert vi.use_vmac is not None and vi.use_vmac.mac == "00:00:5e:00:02:0a"


def test_virtual_ipaddress_options() -> None:
    vi, errs = one_instance(
        "virtual_ipaddress {\n 10.0.0.1/24 dev eth1 brd 10.0.0.255 scope link label eth1:1\n"
        " 10.0.0.2 brd + no_track preferred_lft forever\n 10.0.0.3 peer 10.0.0.4/32 home -nodad unknownopt\n}"
    )
    assert errs == ["Unknown configuration entry 'unknownopt' for ip address - ignoring"]
    first, second, third = vi.virtual_ipaddress
    assert (first.dev, str(first.broadcast), first.scope, first.label) == (
        "eth1",
        "10.0.0.255",
        "link",
        "eth1:1",
    )
    assert (second.dev, second.broadcast_mode, second.no_track, second.preferred_lft) == (
        "eth0",
        "+",
        True,
        0xFFFFFFFF,
    )
    assert str(third.peer) == "10.0.0.4/32" and third.home and third.nodad


def test_track_script_weights_and_missing_references() -> None:
    config, diags = compile_text(
        """
        vrrp_script chk {
            script "/bin/true"
            weight -20 reverse
        }
        vrrp_script chk2 {
            script "/bin/true"
            weight 10
        }
        track_file tf {
            file /tmp/tf
            weight 3
        }
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 1
            virtual_ipaddress {
                10.0.0.1
            }
            track_script {
                chk
                chk2 weight 5 noreverse
                missing
            }
            track_file {
                tf
            }
            track_process {
                nothere weight 1
            }
        }
        """
    )
    vi = config.vrrp_instances["VI_1"]
    assert [(t.name, t.weight, t.weight_reverse) for t in vi.track_script] == [
        ("chk", -20, True),
        ("chk2", 5, False),
    ]
    assert [(t.name, t.weight) for t in vi.track_file] == [("tf", 3)]
    assert located(diags) == [
        (23, "(VI_1) track script missing not found, ignoring..."),
        (29, "(VI_1) track process nothere not found, ignoring..."),
    ]


def test_vrrp_script_defaults() -> None:
    config, diags = compile_text(
        'vrrp_script a {\n script "/bin/x arg"\n interval 3\n}\n'
        "vrrp_script b {\n script /bin/y\n interval 2\n timeout 5\n weight 254\n user nobody\n}\n"
    )
    a, b = config.vrrp_scripts["a"], config.vrrp_scripts["b"]
    assert (a.interval, a.timeout, a.weight, a.rise, a.fall) == (3.0, 3.0, 0, 1, 1)
    assert a.script.argv == ("/bin/x", "arg")
    assert (b.timeout, b.weight, b.script.user) == (5.0, 253, "nobody")
    assert problems(diags) == ["vrrp_script b weight 254 is out of range [-253, 253] - setting to 253"]


def test_sync_groups() -> None:
    config, diags = compile_text(
        """
        vrrp_sync_group G1 {
            group {
                VI_1 VI_2
                VI_X
            }
            notify_master /bin/m
        }
        vrrp_sync_group G2 {
            group {
                VI_2
            }
        }
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 1
            virtual_ipaddress {
                10.0.0.1
            }
        }
        vrrp_instance VI_2 {
            interface eth0
            virtual_router_id 2
            virtual_ipaddress {
                10.0.0.2
            }
        }
        """
    )
    assert problems(diags) == [
        "Virtual router VI_X specified in sync group G1 doesn't exist - ignoring",
        "Virtual router VI_2 cannot exist in more than one sync group; ignoring G2",
        "Sync group G2 has no virtual router(s). removing",
    ]
    assert config.vrrp_sync_groups["G1"].group == ["VI_1", "VI_2"]
    assert "G2" not in config.vrrp_sync_groups
    assert {vi.sync_group for vi in config.vrrp_instances.values()} == {"G1"}


def test_instance_needs_vrid_and_interface() -> None:
    config, diags = compile_text(
        "vrrp_instance A {\n interface eth0\n}\nvrrp_instance B {\n virtual_router_id 3\n}\n"
        "vrrp_instance C {\n unicast_src_ip 10.0.0.1\n virtual_router_id 4\n unicast_peer {\n 10.0.0.2\n}\n"
        " virtual_ipaddress {\n 10.0.0.9\n}\n}\n"
    )
    assert problems(diags) == ["(A) the virtual router id must be set", "(B) Unknown interface!"]
    assert list(config.vrrp_instances) == ["C"]


def test_duplicate_vrid_on_an_interface() -> None:
    text = "".join(
        f"vrrp_instance {n} {{\n interface {i}\n virtual_router_id 5\n virtual_ipaddress {{\n {a}\n}}\n}}\n"
        for n, i, a in (("VI_1", "eth0", "10.0.0.1"), ("VI_2", "eth0", "10.0.0.2"), ("VI_3", "eth1", "10.0.0.3"),
                        ("VI_4", "eth0", "fe80::1"))
    )  # fmt: skip
    _, diags = compile_text(text)
    assert problems(diags) == ["VI_1 and VI_2 both use VRID 5 with IPv4 on interface eth0"]


def test_no_vip_is_sensible() -> None:
    _vi, errs = one_instance("")
    assert errs == ["(VI_1) No VIP specified; at least one is sensible"]
    _vi, errs = one_instance("no_virtual_ipaddress")
    assert errs == []


def test_routes_and_rules() -> None:
    vi, errs = one_instance(
        VIP
        + "\nvirtual_routes {\n 10.1.0.0/16 via 10.0.0.254 dev eth0 metric 5 table main proto static onlink\n"
        " 10.2.0.0/16 dev eth0 nexthop via 10.0.0.1 dev eth0 weight 2 nexthop via 10.0.0.2 dev eth1 mtu lock 1400\n"
        " unreachable 10.3.0.0/16 dev eth0\n}\n"
        "virtual_rules {\n from 10.0.0.0/24 to 10.9.0.0/16 table 100 priority 200 fwmark 0x10/0xff\n"
        " not from all iif eth0 lookup main pref 10 sport 1000-2000\n}"
    )
    assert errs == []
    r1, r2, r3 = vi.virtual_routes
    assert (str(r1.via), r1.metric, r1.table, r1.protocol, r1.onlink) == (
        "10.0.0.254",
        5,
        254,
        "static",
        True,
    )
    assert [(str(h.via), h.dev, h.weight) for h in r2.nexthops] == [
        ("10.0.0.1", "eth0", 2),
        ("10.0.0.2", "eth1", None),
    ]
    assert r2.options == {"mtu": "lock 1400"}
    assert r3.type == "unreachable"
    rule1, rule2 = vi.virtual_rules
    assert (str(rule1.from_prefix), str(rule1.to_prefix), rule1.table, rule1.preference) == (
        "10.0.0.0/24",
        "10.9.0.0/16",
        100,
        200,
    )
    assert (rule1.fwmark, rule1.fwmask) == (16, 255)
    assert rule2.invert and rule2.iif == "eth0" and rule2.table == 254 and rule2.sport == (1000, 2000)


# --------------------------------------------------------------------------- interfaces
def test_interface_checks() -> None:
    text = (
        "vrrp_instance VI_1 {\n interface eth9\n virtual_router_id 9\n track_interface {\n eth8\n eth0 weight 10\n}\n"
        " virtual_ipaddress {\n 10.0.0.6 dev eth7\n}\n virtual_routes {\n 10.1.0.0/16 dev eth6\n}\n}\n"
    )
    _, diags = compile_text(text, host=host(frozenset({"eth0"})))
    assert located(diags) == [
        (2, "WARNING - interface eth9 for vrrp_instance VI_1 doesn't exist"),
        (5, "(VI_1) tracked interface eth8 doesn't exist"),
        (9, "WARNING - interface eth7 for ip address 10.0.0.6 doesn't exist"),
        (12, "WARNING - interface eth6 for VROUTE nexthop doesn't exist"),
        (None, "Non-existent interface specified in configuration"),
    ]
    assert exit_code(diags) == 5
    _, diags = compile_text("global_defs {\n dynamic_interfaces\n}\n" + text, host=host(frozenset({"eth0"})))
    assert exit_code(diags) == 0


def test_net_namespace_skips_host_checks() -> None:
    _, diags = compile_text(
        "net_namespace blue\nvrrp_instance VI_1 {\n interface eth9\n virtual_router_id 9\n"
        " virtual_ipaddress {\n 10.0.0.1\n}\n}\n",
        host=host(frozenset()),
    )
    assert exit_code(diags) == 0


# --------------------------------------------------------------------------- LVS
VS_HEAD = "virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n"


def test_checker_inheritance_chain() -> None:
    config, diags = compile_text(
        VS_HEAD
        + " delay_loop 10\n connect_timeout 7\n retry 4\n delay_before_retry 2\n warmup 1\n"
        + " real_server 10.0.0.2 80 {\n  connect_timeout 6\n  retry 3\n"
        + "  TCP_CHECK {\n   retry 2\n  }\n  HTTP_GET {\n   url {\n    path /\n   }\n  }\n }\n"
        + " real_server 10.0.0.3 80 {\n  MISC_CHECK {\n   misc_path /bin/x\n  }\n  DNS_CHECK {\n  }\n }\n}\n"
        + "virtual_server 10.0.0.9 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n"
        + " real_server 10.0.0.2 80 {\n  TCP_CHECK {\n  }\n  HTTP_GET {\n   url {\n    path /\n   }\n  }\n"
        + "  MISC_CHECK {\n   misc_path /bin/x\n  }\n  DNS_CHECK {\n  }\n }\n}\n"
    )
    assert problems(diags) == []
    vs1, vs2 = config.virtual_servers
    tcp, http = vs1.real_servers[0].checkers
    misc, dns = vs1.real_servers[1].checkers
    # checker <- real_server <- virtual_server
    assert (tcp.delay_loop, tcp.connect_timeout, tcp.retry, tcp.delay_before_retry, tcp.warmup) == (
        10,
        6,
        2,
        2,
        1,
    )
    assert (http.retry, http.delay_before_retry) == (3, 2)
    assert (misc.retry, misc.connect_timeout, dns.retry) == (4, 7, 4)
    assert isinstance(misc, m.MiscCheck) and misc.misc_timeout == 10
    # <- built-in defaults per checker type
    tcp, http, misc, dns = vs2.real_servers[0].checkers
    assert (tcp.delay_loop, tcp.connect_timeout, tcp.retry, tcp.delay_before_retry, tcp.warmup) == (
        60,
        5,
        1,
        1,
        60,
    )
    assert (http.retry, http.delay_before_retry) == (1, 3)
    assert (misc.retry, misc.delay_before_retry) == (0, 1)
    assert (dns.retry, dns.delay_before_retry, dns.connect_port) == (3, 60, 80)
    assert tcp.connect_ip == ipaddress.ip_address("10.0.0.2") and tcp.connect_port == 80


def test_virtualhost_precedence() -> None:
    config, _ = compile_text(
        VS_HEAD + " virtualhost vs.example\n"
        " real_server 10.0.0.2 80 {\n  virtualhost rs.example\n"
        "  HTTP_GET {\n   virtualhost chk.example\n   url {\n    path /a\n    virtualhost url.example\n   }\n"
        "   url {\n    path /b\n   }\n  }\n  SSL_GET {\n   enable_sni\n   url {\n    path /c\n   }\n  }\n }\n"
        " real_server 10.0.0.3 80 {\n  HTTP_GET {\n   url {\n    path /\n   }\n  }\n }\n}\n"
    )
    rs1, rs2 = config.virtual_servers[0].real_servers
    http, ssl = rs1.checkers
    assert [u.virtualhost for u in http.urls] == ["url.example", "chk.example"]  # type: ignore[attr-defined]
    assert [u.virtualhost for u in ssl.urls] == ["rs.example"]  # type: ignore[attr-defined]
    assert isinstance(ssl, m.SslGetCheck) and ssl.ssl and ssl.sni_name == "rs.example"
    assert [u.virtualhost for u in rs2.checkers[0].urls] == ["vs.example"]  # type: ignore[attr-defined]
    assert rs2.checkers[0].urls[0].status_code == [(200, 299)]  # type: ignore[attr-defined]


def test_virtual_server_defaults_and_messages() -> None:
    config, diags = compile_text(
        "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n}\n"
        "virtual_server 10.0.0.1 81 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n}\n"
        "virtual_server 10.0.0.1 82 {\n lb_algo rr\n lb_kind DR\n protocol TCP\n"
        " real_server 10.0.0.2 83 {\n  TCP_CHECK {\n  }\n }\n real_server 10.0.0.2 83 {\n }\n}\n"
        "virtual_server fwmark 1 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n real_server 10.0.0.2 80 {\n }\n}\n"
        "virtual_server 10.0.0.5 0 {\n lb_algo rr\n lb_kind NAT\n protocol UDP\n ops\n real_server 10.0.0.2 {\n }\n}\n"
    )
    assert problems(diags) == [
        "Virtual server [10.0.0.1]:none:80: no protocol set - defaulting to UDP",
        "Virtual server [10.0.0.1]:udp:80: no scheduler set, setting default 'wlc'",
        "Virtual server [10.0.0.1]:udp:80: no forwarding method set, setting default NAT",
        "Virtual server [10.0.0.1]:tcp:81 has no real servers - ignoring",
        "WARNING - virtual server [10.0.0.1]:tcp:82 and real server [10.0.0.2]:tcp:83 ports don't match - resetting",
        "WARNING - virtual server [10.0.0.1]:tcp:82 and real server [10.0.0.2]:tcp:83 ports don't match - resetting",
        "VS [10.0.0.1]:tcp:82: real server [10.0.0.2]:tcp:82 is duplicated - removing second rs",
        "Warning: Virtual server FWM 1: protocol specified for fwmark - protocol will be ignored",
        "Virtual server [10.0.0.5]:udp:0: zero port only valid for persistent services - setting",
    ]
    vs80, vs82, fwm, zero = config.virtual_servers
    assert (vs80.protocol, vs80.lb_algo, vs80.forwarding.method) == ("UDP", "wlc", "NAT")
    assert [rs.port for rs in vs82.real_servers] == [82]
    assert vs82.real_servers[0].forwarding.method == "DR"
    assert fwm.key() == ("fwmark", m.Family.INET, 1) and fwm.real_servers[0].port == 80
    assert zero.persistence_timeout == 360 and zero.ops and zero.real_servers[0].port == 0


def test_real_server_defaults() -> None:
    config, _ = compile_text(
        VS_HEAD + " weight 3\n inhibit_on_failure\n alpha\n lb_kind TUN type gue port 6080 csum\n"
        " real_server 10.0.0.2 80 {\n }\n real_server 10.0.0.3 80 {\n  weight 0\n  inhibit_on_failure off\n"
        "  lvs_method DR\n }\n sorry_server 10.0.0.99 8080\n sorry_server_lvs_method NAT\n}\n"
    )
    vs = config.virtual_servers[0]
    rs2, rs3 = vs.real_servers
    assert (rs2.weight, rs2.inhibit_on_failure, rs2.alpha, rs2.smtp_alert) == (3, True, True, True)
    assert rs2.forwarding == m.Forwarding(
        method="TUN", tunnel_type="gue", tunnel_port=6080, tunnel_csum="csum"
    )
    assert (rs3.weight, rs3.inhibit_on_failure, rs3.forwarding.method) == (0, False, "DR")
    assert vs.sorry_server is not None
    assert (vs.sorry_server.port, vs.sorry_server.forwarding.method) == (8080, "NAT")


def test_quorum_and_hysteresis_are_bounded() -> None:
    config, diags = compile_text(
        VS_HEAD + " quorum 10\n hysteresis 20\n real_server 10.0.0.2 80 {\n  weight 2\n }\n"
        " real_server 10.0.0.3 80 {\n  weight 3\n }\n}\n"
    )
    vs = config.virtual_servers[0]
    assert (vs.quorum, vs.hysteresis) == (5, 4)
    assert len(problems(diags)) == 2


def test_virtual_server_groups() -> None:
    config, diags = compile_text(
        "virtual_server_group G {\n 10.0.0.1-3 80\n 10.0.1.0/30 80\n 10.0.2.1-10.0.2.2 80\n fwmark 5\n}\n"
        "virtual_server_group EMPTY {\n}\n"
        "virtual_server_group BAD {\n 10.0.0.9/30 80\n 10.0.0.1 80\n 2001:db8::1 80\n}\n"
        "virtual_server group G {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n real_server 10.0.0.2 80 {\n }\n}\n"
        "virtual_server group NOPE {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n real_server 10.0.0.2 80 {\n }\n}\n"
    )
    assert problems(diags) == [
        "Address mask bits not empty - 10.0.0.9/30 - skipping",
        "virtual server group EMPTY has no entries - removing",
        "virtual server group BAD cannot have IPv4, IPv6 and fwmark without family - removing",
        "Virtual server group NOPE not found - removing virtual server",
    ]
    group = config.virtual_server_groups["G"]
    assert [len(e.addresses()) for e in group.entries] == [3, 4, 2, 0]
    assert group.entries[3].fwmark == 5
    (vs,) = config.virtual_servers
    assert vs.key() == ("group", "G", 80) and vs.describe() == "[G]:80"


def test_checker_requirements() -> None:
    _, diags = compile_text(
        "virtual_server fwmark 3 {\n lb_algo rr\n lb_kind DR\n real_server 10.0.0.2 {\n"
        "  HTTP_GET {\n  }\n  MISC_CHECK {\n  }\n  TCP_CHECK {\n  }\n  FILE_CHECK {\n   track_file nope\n  }\n }\n}\n"
    )
    assert problems(diags) == [
        "HTTP/SSL_GET checker has no urls specified - ignoring",
        "No script path has been specified for MISC_CHECKER - skipping",
        "TCP_CHECK for real server [10.0.0.2] of FWM 3 has no port to connect to (set connect_port) - ignoring checker",
        "FILE_CHECK track_file 'nope' not found - ignoring checker",
    ]


def test_udp_check_and_file_check() -> None:
    config, diags = compile_text(
        "track_file tf {\n file /tmp/tf\n weight -5 reverse\n}\n"
        + VS_HEAD
        + " real_server 10.0.0.2 53 {\n  UDP_CHECK {\n   payload 0102ab\n   require_reply 01x2\n  }\n"
        "  FILE_CHECK {\n   track_file tf\n  }\n }\n}\n"
    )
    assert problems(diags) == []
    udp, fc = config.virtual_servers[0].real_servers[0].checkers
    assert isinstance(udp, m.UdpCheck) and udp.payload == b"\x01\x02\xab"
    assert (udp.reply_data, udp.reply_mask) == (b"\x01\x02", b"\xff\x0f")
    assert isinstance(fc, m.FileCheck) and (fc.weight, fc.weight_reverse) == (-5, True)


# --------------------------------------------------------------------------- identity keys
def test_vrrp_instance_identity_ignores_the_name() -> None:
    a, _ = compile_text("vrrp_instance A {\n interface eth0\n virtual_router_id 5\n" + VIP + "\n}\n")
    b, _ = compile_text(
        "vrrp_instance B {\n interface eth0\n virtual_router_id 5\n priority 50\n" + VIP + "\n}\n"
    )
    c, _ = compile_text("vrrp_instance A {\n interface eth1\n virtual_router_id 5\n" + VIP + "\n}\n")
    d, _ = compile_text(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 5\n unicast_src_ip 10.0.0.7\n" + VIP + "\n}\n"
    )
    ka, kb, kc, kd = (next(iter(x.vrrp_instances.values())).key() for x in (a, b, c, d))
    assert ka == kb and ka != kc and ka != kd


def test_reload_diff_by_keys() -> None:
    old, _ = compile_text(
        VS_HEAD + " real_server 10.0.0.2 80 {\n  weight 1\n }\n real_server 10.0.0.3 80 {\n }\n}\n"
    )
    new, _ = compile_text(
        VS_HEAD + " real_server 10.0.0.2 80 {\n  weight 5\n }\n real_server 10.0.0.4 80 {\n }\n}\n"
    )
    (ovs,), (nvs,) = old.virtual_servers, new.virtual_servers
    assert ovs.key() == nvs.key()
    old_rs = {rs.key(): rs for rs in ovs.real_servers}
    new_rs = {rs.key(): rs for rs in nvs.real_servers}
    assert set(old_rs) & set(new_rs) == {(ipaddress.ip_address("10.0.0.2"), 80)}
    kept = (ipaddress.ip_address("10.0.0.2"), 80)
    assert old_rs[kept] != new_rs[kept] and old_rs[kept].weight == 1 and new_rs[kept].weight == 5


def test_locations_do_not_affect_equality() -> None:
    a, _ = compile_text(VS_HEAD + " real_server 10.0.0.2 80 {\n }\n}\n")
    b, _ = compile_text("\n\n\n" + VS_HEAD + " real_server 10.0.0.2 80 {\n }\n}\n")
    assert a.virtual_servers == b.virtual_servers
    assert a.virtual_servers[0].location != b.virtual_servers[0].location


# --------------------------------------------------------------------------- global_defs
def test_global_defaults_from_the_host() -> None:
    config, _ = compile_text("global_defs {\n}\n")
    gd = config.global_defs
    assert gd.router_id == "lb1.example.com" and gd.smtp_helo_name == "lb1.example.com"
    assert gd.notification_email_from == "root@lb1.example.com"
    assert gd.smtp_connect_timeout == 30 and gd.vrrp_version == 2 and gd.default_interface == "eth0"


def test_global_defs_values() -> None:
    config, diags = compile_text(
        'global_defs {\n notification_email {\n a@x\n "B <b@x>"\n }\n smtp_server mail.example 2525\n'
        " script_user nobody:nogroup\n lvs_sync_daemon eth1 VI_1 id 7 port 9000 group 224.0.0.90\n"
        " lvs_timeouts tcp 900 udp 30\n notify_fifo /run/f root\n notify_fifo_script /bin/fifo.sh\n"
        " vrrp_garp_extra_if all 60\n reload_check_config /tmp/check.log\n}\n"
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 3\n" + VIP + "\n}\n"
    )
    assert problems(diags) == []
    gd = config.global_defs
    assert gd.notification_email == ["a@x", "B <b@x>"]
    assert (gd.smtp_server, gd.smtp_server_port) == ("mail.example", 2525)
    assert (gd.script_user, gd.script_group) == ("nobody", "nogroup")
    assert gd.lvs_sync_daemon is not None
    assert (gd.lvs_sync_daemon.vrrp_instance, gd.lvs_sync_daemon.syncid, gd.lvs_sync_daemon.port) == (
        "VI_1",
        7,
        9000,
    )
    assert gd.lvs_timeouts == m.LvsTimeouts(tcp=900, udp=30)
    assert gd.notify_fifo is not None and gd.notify_fifo.user == "root"
    assert gd.notify_fifo.script is not None and gd.notify_fifo.script.argv == ("/bin/fifo.sh",)
    assert (gd.vrrp_garp_extra_if, gd.vrrp_garp_extra_if_all) == (60.0, True)
    assert gd.reload_check_config == "/tmp/check.log"
    assert config.vrrp_instances["VI_1"].garp_extra_if == 60.0


# --------------------------------------------------------------------------- script security
def test_script_security(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    fake_program(bindir, "ok.sh")
    base = 'vrrp_script chk {\n script "ok.sh arg"\n}\n'
    _, diags = compile_text(base, host=host(scripts=True, path=str(bindir)))
    assert [(d.message, d.status) for d in diags] == [
        ("SECURITY VIOLATION - scripts are being executed but script_security not enabled.", Status.SECURITY)
    ]
    assert exit_code(diags) == 6
    _, diags = compile_text(
        "global_defs {\n enable_script_security\n script_user root\n}\n" + base,
        host=host(scripts=True, path=str(bindir)),
    )
    assert exit_code(diags) == 0
    _, diags = compile_text(
        "global_defs {\n script_user nobody\n}\n" + base, host=host(scripts=True, path=str(bindir))
    )
    assert exit_code(diags) == 0


def test_missing_vrrp_script_is_disabled(tmp_path: Path) -> None:
    config, diags = compile_text(
        'vrrp_script chk {\n script "/nonexistent/x.sh"\n}\nvrrp_script shell {\n script "</dev/tcp/127.0.0.1/80"\n}\n'
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 3\n"
        + VIP
        + "\n track_script {\n chk\n shell\n}\n}\n",
        host=host(scripts=True, path=str(tmp_path)),
    )
    assert problems(diags) == ["Disabling track script chk since not found/accessible"]
    assert [t.name for t in config.vrrp_instances["VI_1"].track_script] == ["shell"]


def test_insecure_script_is_flagged(tmp_path: Path) -> None:
    world = tmp_path / "world"
    world.mkdir()
    script = world / "x.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o777)
    _, diags = compile_text(
        f'vrrp_script chk {{\n script "{script}"\n}}\n', host=host(scripts=True, path=str(tmp_path))
    )
    assert problems(diags) == [
        "SECURITY VIOLATION - scripts are being executed but script_security not enabled. There are insecure scripts."
    ]


def test_a_compiler_bug_is_a_fatal_diagnostic_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastka.config import compile as compile_mod

    def broken(self: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(compile_mod.Completer, "run", broken)
    config, diags = compile_text("global_defs {\n}\n")
    assert [d.status for d in diags] == [Status.FATAL]
    assert diags[0].message.startswith(compile_mod.INTERNAL_ERROR) and "KeyError('bug')" in diags[0].message
    assert exit_code(diags) == 4 and isinstance(config, m.Config)


def test_static_addresses_default_to_default_interface() -> None:
    config, _ = compile_text(
        "global_defs {\n default_interface bond0\n}\nstatic_ipaddress {\n 10.0.0.1/24\n 10.0.0.2 dev eth1\n}\n"
    )
    assert [a.dev for a in config.static_ipaddress] == ["bond0", "eth1"]
    config, _ = compile_text("static_ipaddress {\n 10.0.0.1/24\n}\n")
    assert config.static_ipaddress[0].dev == "eth0"


def test_loopback_interface_is_refused() -> None:
    _config, diags = compile_text(
        "vrrp_instance VI_1 {\n interface lo\n virtual_router_id 3\n" + VIP + "\n}\n"
    )
    assert problems(diags) == ["(VI_1) cannot use the loopback interface lo for VRRP"]


def test_match_by_key_for_reload() -> None:
    old, _ = compile_text(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n" + VIP + "\n}\n"
        "vrrp_instance B {\n interface eth0\n virtual_router_id 2\n" + VIP + "\n}\n"
        "vrrp_instance C {\n interface eth0\n virtual_router_id 3\n" + VIP + "\n}\n"
    )
    new, _ = compile_text(
        "vrrp_instance A2 {\n interface eth0\n virtual_router_id 1\n" + VIP + "\n}\n"
        "vrrp_instance B {\n interface eth0\n virtual_router_id 2\n priority 50\n" + VIP + "\n}\n"
        "vrrp_instance D {\n interface eth0\n virtual_router_id 4\n" + VIP + "\n}\n"
    )
    matched = m.match_by_key(old.vrrp_instances.values(), new.vrrp_instances.values(), m.VrrpInstance.key)
    assert [i.name for i in matched.removed] == ["C"]
    assert [i.name for i in matched.added] == ["D"]
    assert [(a.name, b.name) for a, b in matched.changed] == [("A", "A2"), ("B", "B")]
    assert matched.unchanged == []
