"""Every Keepalived sample compiles, with the outcome Keepalived 2.2.7's ``-t`` documents.

The expected results are samples.txt's ground truth ("Debian keepalived 2.2.7 ``-t`` on
each sample", taken in a namespace with eth0..eth3): the exit code and every message.
The interface check is parametrised with the same interfaces, so these tests do not
depend on the host's; ``test_cli_config.py`` repeats them end to end inside a real
namespace built the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cfghelp import SAMPLE_INTERFACES, SAMPLES, fake_program, host, located

from fastka.config import exit_code, jsonio, load
from fastka.config import model as m

ALL_SAMPLES = sorted(
    str(p.relative_to(SAMPLES))
    for p in SAMPLES.rglob("*")
    if p.is_file() and p.name.startswith("keepalived.conf")
)

ROUTE_NO_DEV = "Warning - cannot track route {} with no interface specified, not tracking"

# (sample, config id, exit code, [(line or None, message)])
GOLDEN: list[tuple[str, str | None, int, list[tuple[int | None, str]]]] = [
    ("keepalived.conf.HTTP_GET.port", None, 0, []),
    ("keepalived.conf.IPv6", None, 0, []),
    ("keepalived.conf.PING_CHECK", None, 0, []),
    ("keepalived.conf.SMTP_CHECK", None, 0, []),
    ("keepalived.conf.UDP_CHECK", None, 0, []),
    ("keepalived.conf.inhibit", None, 0, []),
    ("keepalived.conf.misc_check", None, 0, []),
    ("keepalived.conf.misc_check_arg", None, 0, []),
    ("keepalived.conf.quorum", None, 0, []),
    ("keepalived.conf.sample", None, 0, []),
    ("keepalived.conf.status_code", None, 0, []),
    ("keepalived.conf.virtual_server_group", None, 0, []),
    ("keepalived.conf.virtualhost", None, 0, []),
    ("keepalived.conf.vrrp", None, 0, []),
    ("keepalived.conf.vrrp.scripts", None, 0, []),
    ("keepalived.conf.vrrp.sync", None, 0, []),
    ("docker/keepalived.conf", None, 0, []),
    ("keepalived.conf.conditional_conf", "high", 0, []),
    ("keepalived.conf.conditional_conf", "low", 0, []),
    (
        "keepalived.conf.SSL_GET",
        None,
        5,
        [(None, "(VI_1) Initial state master is incompatible with AH authentication - clearing")],
    ),
    (
        "keepalived.conf.conditional_conf",
        None,
        5,
        [
            (13, "No script set for vrrp_script check_VI_0 - removing"),
            (25, "(VI_0) track script check_VI_0 not found, ignoring..."),
        ],
    ),
    (
        "keepalived.conf.fwmark",
        None,
        5,
        [(None, "Warning: Virtual server FWM 1: protocol specified for fwmark - protocol will be ignored")],
    ),
    (
        "keepalived.conf.track_interface",
        None,
        5,
        [
            (16, "WARNING - interface eth0.1 for vrrp_instance VI_1 doesn't exist"),
            (31, ROUTE_NO_DEV.format("192.168.112.0/24")),
            (None, "Non-existent interface specified in configuration"),
        ],
    ),
    (
        "keepalived.conf.vrrp.localcheck",
        None,
        6,
        [(None, "SECURITY VIOLATION - scripts are being executed but script_security not enabled.")],
    ),
    (
        "keepalived.conf.vrrp.lvs_syncd",
        None,
        5,
        [
            (4, "Unknown keyword 'VI_2'"),
            (5, "Unknown keyword 'VI_3'"),
            (11, "(VI_1) Specifying lvs_sync_daemon_interface against a vrrp is deprecated."),
            (11, "        Please use global lvs_sync_daemon"),
            (None, "Sync group VG1 has no virtual router(s). removing"),
        ],
    ),
    (
        "keepalived.conf.vrrp.routes",
        None,
        5,
        [
            (29, ROUTE_NO_DEV.format("192.168.112.0/24")),
            (30, '"or" for routes is deprecated. Please use "nexthop"'),
            (30, ROUTE_NO_DEV.format("192.168.113.0/24")),
            (31, ROUTE_NO_DEV.format("192.168.113.1/32")),
            (32, '"gw" for routes is deprecated. Please use "via"'),
            (32, ROUTE_NO_DEV.format("0.0.0.0/0")),
        ],
    ),
    (
        "keepalived.conf.vrrp.rules",
        None,
        5,
        [
            (10, "Rule has no preference specified - setting to 16384. This is probably not what you want."),
            (11, "VRRP parsed invalid IP 192.168.100./24. skipping IP..."),
            (11, "Invalid rule to address 192.168.100./24"),
            (25, "Rule has no preference specified - setting to 16383. This is probably not what you want."),
            (26, "VRRP parsed invalid IP 192.168.200./24. skipping IP..."),
            (26, "Invalid rule to address 192.168.200./24"),
        ],
    ),
    ("keepalived.conf.vrrp.static_ipaddress", None, 5, [(25, ROUTE_NO_DEV.format("192.168.112.0/24"))]),
    (
        "keepalived-etc/keepalived.conf",
        None,
        5,
        [
            (15, "number '0' outside range [0.000001, 4294.967295]"),
            (15, "vrrp_garp_interval '0' is invalid"),
            (16, "number '0' outside range [0.000001, 4294.967295]"),
            (16, "vrrp_gna_interval '0' is invalid"),
            (None, "(VI_1) State MASTER must match being address owner"),
            (None, "(VI_1) Strict mode does not support authentication. Ignoring."),
        ],
    ),
]


@pytest.fixture(scope="module")
def script_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH where ``killall`` (used by the localcheck sample) exists, root-owned."""
    bindir = tmp_path_factory.mktemp("bin")
    fake_program(bindir, "killall")
    return str(bindir)


def test_golden_table_covers_every_sample() -> None:
    assert {g[0] for g in GOLDEN} == set(ALL_SAMPLES)


@pytest.mark.parametrize(
    ("sample", "config_id", "rc", "expected"),
    GOLDEN,
    ids=[f"{g[0]}-{g[1]}" if g[1] else g[0] for g in GOLDEN],
)
def test_sample_outcome(
    sample: str, config_id: str | None, rc: int, expected: list[tuple[int | None, str]], script_path: str
) -> None:
    config, diags = load(
        str(SAMPLES / sample),
        config_id=config_id or "nohost",
        host=host(SAMPLE_INTERFACES, scripts=True, path=script_path),
    )
    got = located(diags)
    # Same messages (and lines where samples.txt gives one); the order may differ where
    # Keepalived reports during parsing what fastka checks after it (interfaces).
    assert sorted(text for _line, text in got) == sorted(text for _line, text in expected)
    for line, text in expected:
        if line is not None:
            assert (line, text) in got, (line, text, got)
    assert exit_code(diags) == rc
    assert config.files == [str(SAMPLES / sample)]


@pytest.mark.parametrize("sample", ALL_SAMPLES)
def test_sample_json_round_trip(sample: str) -> None:
    config, _ = load(str(SAMPLES / sample), config_id="high", host=host())
    text = jsonio.dumps(config)
    back = jsonio.loads(text)
    assert back == config
    assert jsonio.dumps(back) == text


def _sample(name: str, **kwargs: object) -> m.Config:
    config, _ = load(str(SAMPLES / name), host=host(), **kwargs)  # type: ignore[arg-type]
    return config


def test_sample_vrrp_model() -> None:
    config = _sample("keepalived.conf.vrrp")
    vi1 = config.vrrp_instances["VI_1"]
    assert vi1.state is m.VrrpState.MASTER
    assert vi1.interface == "eth0"
    assert vi1.virtual_router_id == 51
    assert vi1.priority == 100
    assert vi1.advert_int == 1.0
    assert vi1.authentication == m.Authentication(auth_type="PASS", auth_pass=b"1111")
    assert vi1.authentication is not None and vi1.authentication.auth_data == b"1111\0\0\0\0"
    assert [str(v.address) for v in vi1.virtual_ipaddress] == [
        "192.168.200.16/32",
        "192.168.200.17/32",
        "192.168.200.18/32",
        "192.168.200.18/32",
    ]
    assert [v.label for v in vi1.virtual_ipaddress] == [None, None, None, "eth0:1"]
    assert all(v.dev == "eth0" for v in vi1.virtual_ipaddress)
    assert vi1.garp_master_delay == 10.0 and vi1.smtp_alert
    assert vi1.mcast_dst_ip == m.VRRP_MCAST_GROUP4
    assert vi1.version == 2 and vi1.family is m.Family.INET


def test_sample_ipv6_virtual_server_group() -> None:
    config = _sample("keepalived.conf.IPv6")
    (vs,) = config.virtual_servers
    assert vs.family is m.Family.INET6 and str(vs.address) == "ae00::1" and vs.port == 80
    group = config.virtual_server_groups["IPv6_group"]
    first, second = group.entries
    assert (str(first.address), str(first.address_end), first.port) == ("ae00::2", "ae00::9", 80)
    assert len(first.addresses()) == 8
    assert (str(second.address), second.port) == ("ae00::1", 80)
    (rs,) = vs.real_servers
    assert rs.family is m.Family.INET6 and rs.port == 25
    (check,) = rs.checkers
    assert isinstance(check, m.SmtpCheck)
    assert check.helo_name == "foo.bar.com" and check.retry == 3 and check.connect_timeout == 3.0
    assert check.connect_port == 25 and check.delay_loop == 6.0


def test_sample_conditional_selects_lines() -> None:
    high = _sample("keepalived.conf.conditional_conf", config_id="high")
    low = _sample("keepalived.conf.conditional_conf", config_id="low")
    assert high.vrrp_instances["VI_0"].priority == 170
    assert low.vrrp_instances["VI_0"].priority == 85
    assert high.vrrp_scripts["check_VI_0"].script.argv == ("/etc/keepalived/scripts/check_high_VI_0.sh",)
    assert high.global_defs.net_namespace == "high"
    vi = high.vrrp_instances["VI_0"]
    assert vi.version == 3 and vi.advert_int == 12.0
    assert (
        vi.use_vmac is not None and vi.use_vmac.ifname == "vrrp.1" and vi.use_vmac.mac == "00:00:5e:00:01:01"
    )
    assert [(t.name, t.weight) for t in vi.track_interface] == [("eth3", 0), ("eth2", 20)]
    assert [(t.name, t.weight) for t in vi.track_script] == [("check_VI_0", 0)]
    vs = high.vrrp_scripts["check_VI_0"]
    assert (vs.interval, vs.timeout, vs.rise, vs.fall) == (1.0, 10.0, 3, 3)


def test_sample_misc_check_arguments() -> None:
    config = _sample("keepalived.conf.misc_check_arg")
    (check,) = config.virtual_servers[0].real_servers[0].checkers
    assert isinstance(check, m.MiscCheck) and check.misc_path is not None
    assert check.misc_path.argv == ("/usr/local/bin/script.sh", "arg1", "arg2")


def test_sample_status_code_ranges() -> None:
    config = _sample("keepalived.conf.status_code")
    urls = [u for vs in config.virtual_servers for rs in vs.real_servers for c in rs.checkers for u in c.urls]  # type: ignore[attr-defined]
    assert any(len(u.status_code) > 1 or u.status_code != [(200, 299)] for u in urls)
    assert all(100 <= lo <= hi <= 599 for u in urls for lo, hi in u.status_code)


def test_sample_quorum() -> None:
    config = _sample("keepalived.conf.quorum")
    (vs,) = config.virtual_servers
    assert vs.quorum_up is not None and vs.quorum_up.argv == ("/usr/local/sbin/quorum-up.sh",)
    assert vs.alpha and vs.omega
    assert all(rs.alpha for rs in vs.real_servers)
    assert vs.quorum <= sum(rs.weight for rs in vs.real_servers)


def test_sample_routes() -> None:
    config = _sample("keepalived.conf.vrrp.routes")
    routes = config.vrrp_instances["VI_1"].virtual_routes
    first = routes[0]
    assert str(first.src) == "192.168.100.1" and str(first.dst) == "192.168.109.0/24"
    assert str(first.via) == "192.168.200.254" and first.dev == "eth1"
    multipath = routes[4]
    assert [str(h.via) for h in multipath.nexthops] == ["192.168.100.252", "192.168.100.253"]
    assert routes[5].type == "blackhole"
    default = routes[6]
    assert str(default.dst) == "0.0.0.0/0" and default.table == 100 and str(default.via) == "192.168.0.1"
    statics = config.static_routes
    assert statics[3].scope == "site" and statics[4].scope == "link"


def test_sample_sorry_server_and_defaults() -> None:
    config = _sample("keepalived.conf.sample")
    vs = config.virtual_servers[0]
    assert vs.sorry_server is not None and vs.sorry_server.forwarding == vs.forwarding
    for rs in vs.real_servers:
        for check in rs.checkers:
            assert check.connect_ip == rs.address
            assert check.delay_loop == vs.delay_loop


@pytest.mark.parametrize("sample", ALL_SAMPLES)
def test_sample_parses_without_host_checks(sample: str, tmp_path: Path) -> None:
    """Without interface/script checks no sample needs anything from this machine."""
    config, diags = load(str(SAMPLES / sample), config_id="high", host=host())
    assert isinstance(config, m.Config)
    assert all(d.message for d in diags)
