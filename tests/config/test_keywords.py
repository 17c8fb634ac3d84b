"""Keyword tables: every catalogue keyword is known; bad values and unknown keywords are
reported with Keepalived's wording, the location, the value and what was expected."""

from __future__ import annotations

import re

import pytest
from cfghelp import SAMPLES, compile_text, located, problems

from fastka.config import exit_code
from fastka.config import grammar as g
from fastka.config.diagnostics import Status

CATALOGUE = SAMPLES.parent / "keepalived-reference" / "catalogue.md"

VI = """
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {{
        10.0.0.1
    }}
    {}
}}
"""


def vi(body: str) -> str:
    return VI.format(body)


def test_every_catalogue_keyword_is_known() -> None:
    """Nothing the catalogue lists is "unknown" to fastka (P2 ones are at least recognised)."""
    known = {k.name for k in g.all_keywords()}
    # entry options and preprocessor keywords are handled outside the keyword tables
    handled_elsewhere = {
        "autojoin", "brd", "home", "mngtmpaddr", "no_track", "noprefixroute", "peer", "preferred_lft",
        "scope", "includer", "includem", "includew", "includeb", "includea",
    }  # fmt: skip
    missing = set()
    for line in CATALOGUE.read_text().splitlines():
        if line.startswith("| `"):
            for keyword in re.findall(r"`([A-Za-z_][A-Za-z0-9_\-]*)`", line.split("|")[1]):
                if keyword not in known and keyword not in handled_elsewhere:
                    missing.add(keyword)
    assert missing == set()


def test_parser_keyword_not_in_man_page_is_unknown_as_in_keepalived() -> None:
    # catalogue §17.3: FILE_CHECK "dynamic" is documented but not installed by the parser
    assert "dynamic" not in g.CHECKERS["FILE_CHECK"].keywords
    # and §17.1: the man page's state_file_location is not a keyword, state_dump_file is
    assert "state_file_location" not in g.GLOBAL_DEFS.keywords
    assert "state_dump_file" in g.GLOBAL_DEFS.keywords


def test_unknown_keyword_is_a_warning_with_location_and_parsing_goes_on() -> None:
    config, diags = compile_text("global_defs {\n  bogus_kw 1\n  router_id r1\n}\n")
    assert located(diags) == [(2, "Unknown keyword 'bogus_kw'")]
    assert diags[0].keyword == "bogus_kw"
    assert config.global_defs.router_id == "r1"
    assert exit_code(diags) == 5


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("priorty", "priority"), ("virtual_router_idd", "virtual_router_id"), ("advert_intt", "advert_int"),
     ("nopremept", "nopreempt"), ("virtual_ipadress", "virtual_ipaddress")],
)  # fmt: skip
def test_misspelt_keyword_gets_a_suggestion(typo: str, suggestion: str) -> None:
    _, diags = compile_text(vi(f"{typo} 1"))
    assert problems(diags)[0] == f"Unknown keyword '{typo}' - did you mean '{suggestion}'?"


def test_unknown_keyword_block_is_skipped() -> None:
    config, diags = compile_text(
        "bogus {\n  router_id x\n  nested {\n  }\n}\nglobal_defs {\n router_id y\n}\n"
    )
    assert problems(diags) == ["Unknown keyword 'bogus'"]
    assert config.global_defs.router_id == "y"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("priority 300", ["number '300' outside range [1, 255]", "priority '300' is invalid"]),
        ("priority high", ["invalid number 'high'", "priority 'high' is invalid"]),
        ("priority", ["priority is missing a parameter - expected a priority 1..255"]),
        ("virtual_router_id 0", ["number '0' outside range [1, 255]", "virtual_router_id '0' is invalid"]),
        ("advert_int abc", ["invalid number 'abc'", "advert_int 'abc' is invalid"]),
        ("advert_int 0", ["(VI_1) Advert interval (0) not valid! Must be > 0 - ignoring"]),
        ("preempt_delay 1001", ["number '1001' outside range [0.000000, 1000.000000]", "preempt_delay '1001' is invalid"]),
        ("garp_master_delay 1.1234567", ["number '1.1234567' has too many decimal places", "garp_master_delay '1.1234567' is invalid"]),
        ("smtp_alert maybe", ["smtp_alert 'maybe' is invalid - expected on|off|true|false|yes|no"]),
        ("state FOO", ["(VI_1) unknown state 'FOO', defaulting to BACKUP"]),
        ("unicast_src_ip 10.0.0.300", ["unicast_src_ip '10.0.0.300' is invalid - expected an IP address"]),
        ("mcast_dst_ip 10.0.0.1", ["(VI_1) mcast_dst_ip 10.0.0.1 is not a multicast address - ignoring"]),
    ],
)  # fmt: skip
def test_bad_value(line: str, expected: list[str]) -> None:
    _, diags = compile_text(vi(line))
    assert problems(diags) == expected
    assert all(d.location is not None and d.location.line == 8 for d in diags if d.status is not Status.OK)


def test_bad_value_keeps_the_default() -> None:
    config, _ = compile_text(vi("priority 0"))
    assert config.vrrp_instances["VI_1"].priority == 100


@pytest.mark.parametrize(
    ("block", "line", "expected"),
    [
        ("global_defs", "vrrp_garp_interval 0", ["number '0' outside range [0.000001, 4294.967295]", "vrrp_garp_interval '0' is invalid"]),
        ("global_defs", "vrrp_version 4", ["number '4' outside range [2, 3]", "vrrp_version '4' is invalid"]),
        ("global_defs", "vrrp_mcast_group4 ff02::1", ["vrrp_mcast_group4 'ff02::1' is invalid - expected an IPv4 address"]),
        ("global_defs", "lvs_flush_on_stop ALL", ["lvs_flush_on_stop 'ALL' is invalid - expected VS or nothing"]),
        ("global_defs", "include_check sometimes", ["Unknown include_check type 'sometimes' - ignoring"]),
        ("global_defs", "umask IXUSR|BOGUS", ["umask 'IXUSR|BOGUS' is invalid - expected a number or IRUSR|IWUSR|IXUSR|IRGRP|IWGRP|IXGRP|IROTH|IWOTH|IXOTH|IRWXU|IRWXG|IRWXO"]),
    ],
)  # fmt: skip
def test_bad_global_value(block: str, line: str, expected: list[str]) -> None:
    _, diags = compile_text(f"{block} {{\n{line}\n}}\n")
    assert problems(diags) == expected


VS = """
virtual_server 10.0.0.1 80 {{
    lb_algo rr
    lb_kind NAT
    protocol TCP
    {}
    real_server 10.0.0.2 80 {{
        {}
    }}
}}
"""


@pytest.mark.parametrize(
    ("vs_line", "rs_line", "expected"),
    [
        ("lb_algo rrr", "", ["Invalid lvs_scheduler 'rrr' - ignoring"]),
        ("lb_kind NATT", "", ["lb_kind 'NATT' is invalid - expected one of NAT, DR, TUN"]),
        ("protocol ICMP", "", ["protocol 'ICMP' is invalid - expected one of TCP, UDP, SCTP"]),
        ("persistence_granularity 255.0.255.0", "", ["persistence_granularity '255.0.255.0' is invalid - expected a netmask or prefix length"]),
        ("", "TCP_CHECK {\nconnect_timeout x\n}", ["invalid number 'x'", "connect_timeout 'x' is invalid"]),
        ("", "HTTP_GET {\nurl {\npath /\ndigest 123\n}\n}", ["digest '123' is invalid - expected 32 hex digits (an MD5 sum)"]),
        ("", "HTTP_GET {\nurl {\nstatus_code 99 200-100\n}\n}", ["number '99' outside range [100, 599]", "status_code '99' is invalid", "status_code range '200-100' is invalid - expected A-B with A <= B"]),
        ("", "HTTP_GET {\nhttp_protocol 2.0\nurl {\npath /\n}\n}", ["http_protocol '2.0' is invalid - expected one of 1.0, 1.0C, 1.1"]),
        ("", "DNS_CHECK {\ntype XX\nname a..b\n}", ["Unknown DNS check type XX - ignoring", "DNS_CHECK name 'a..b' has empty label - ignoring"]),
        ("", "UDP_CHECK {\npayload zz\n}", ["Invalid hex string for UDP_CHECK payload"]),
        ("", "weight -1", ["invalid number '-1'", "weight '-1' is invalid"]),
    ],
)  # fmt: skip
def test_bad_lvs_value(vs_line: str, rs_line: str, expected: list[str]) -> None:
    _, diags = compile_text(VS.format(vs_line, rs_line))
    got = problems(diags)
    assert got == expected


def test_not_supported_yet_is_reported_but_not_an_error() -> None:
    config, diags = compile_text(
        "global_defs {\n  enable_snmp_vrrp\n  vrrp_cpu_affinity 0-1\n}\nnet_namespace blue\n"
        + vi("use_ipvlan ipv1")
    )
    assert [d.message for d in diags if d.status is Status.OK] == [
        "'enable_snmp_vrrp' is recognised but not supported yet by fastka - ignored",
        "'vrrp_cpu_affinity' is recognised but not supported yet by fastka - ignored",
        "'net_namespace' is recognised but not supported yet by fastka - ignored",
        "'use_ipvlan' is recognised but not supported yet by fastka - ignored",
    ]
    assert exit_code(diags) == 0
    assert config.global_defs.enable_snmp_vrrp and config.global_defs.vrrp_cpu_affinity == [0, 1]
    assert config.global_defs.net_namespace == "blue"


def test_deprecated_aliases_work_and_warn() -> None:
    config, diags = compile_text(
        "vrrp_track_file tf {\n file /tmp/x\n}\nglobal_defs {\n lvs_flush_onstop\n}\n"
        + VS.format("lvs_sched wrr", "HTTP_GET {\nnb_get_retry 4\nurl {\npath /\n}\n}")
    )
    assert problems(diags) == [
        "vrrp_track_file is deprecated, please use track_file",
        "nb_get_retry is deprecated - please use 'retry'",
    ]
    assert "tf" in config.track_files
    assert config.global_defs.lvs_flush_on_stop == "all"
    vs = config.virtual_servers[0]
    assert vs.lb_algo == "wrr" and vs.real_servers[0].checkers[0].retry == 4


def test_everything_is_reported_in_one_run() -> None:
    _, diags = compile_text(
        """
        global_defs {
            bogus 1
            vrrp_version 9
        }
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 300
            priorty 5
            virtual_ipaddress {
                10.0.0.300
            }
        }
        virtual_server 10.0.0.1 80 {
            lb_algo nope
            real_server 10.0.0.2 80 {
            }
        }
        """
    )
    lines = [line for line, _ in located(diags)]
    assert {3, 4, 8, 9, 11, 15} <= set(lines)
    assert exit_code(diags) == 5


def test_bool_keywords_accept_every_spelling() -> None:
    for word, value in g.BOOL_WORDS.items():
        config, diags = compile_text(f"global_defs {{\n vrrp_strict {word}\n}}\n")
        assert problems(diags) == []
        assert config.global_defs.vrrp_strict is value
    config, _ = compile_text("global_defs {\n vrrp_strict\n}\n")
    assert config.global_defs.vrrp_strict is True


def test_extra_parameters_are_noted_without_failing() -> None:
    config, diags = compile_text(vi("priority 120 130"))
    assert [d.message for d in diags] == ["priority: ignoring extra parameter(s) '130'"]
    assert exit_code(diags) == 0
    assert config.vrrp_instances["VI_1"].priority == 120


def test_block_keyword_without_brace() -> None:
    _, diags = compile_text(vi("virtual_ipaddress_excluded"))
    assert problems(diags) == ["'{' missing from beginning of block virtual_ipaddress_excluded"]


def test_plain_keyword_with_block() -> None:
    _, diags = compile_text(vi("priority 50 {\n  x\n}"))
    assert problems(diags) == ["Unexpected '{' after priority - ignoring the block"]


def test_keyword_from_another_block_says_where_it_belongs() -> None:
    _, diags = compile_text(vi("lb_algo rr\ndelay_loop 3"))
    assert problems(diags) == [
        "Unknown keyword 'lb_algo' - it belongs in virtual_server",
        "Unknown keyword 'delay_loop' - it belongs in virtual_server, real_server, TCP_CHECK ...",
    ]
