"""The command line parses exactly as Keepalived's getopt_long does."""

from __future__ import annotations

import pytest

from fastka.cli import SIGNAL_FUNCTIONS, UsageError, main, parse_args


def test_systemd_unit_invocation() -> None:
    o = parse_args(["--dont-fork", "-D", "-S", "7"])
    assert o.dont_fork and o.log_detail == 1 and o.log_facility == "7"


def test_test_rig_invocation() -> None:
    o = parse_args(["-n", "-l", "-D", "-G", "-f", "/x.conf", "-p", "A", "-r", "B", "-c", "C", "-i", "high"])
    assert (o.dont_fork, o.log_console, o.no_syslog) == (True, True, True)
    assert (o.config_file, o.pid_file, o.vrrp_pid_file, o.checkers_pid_file) == ("/x.conf", "A", "B", "C")
    assert o.config_id == "high"


def test_clustered_and_attached() -> None:
    o = parse_args(["-nlDD", "-f/etc/k.conf", "-PC"])
    assert o.log_detail == 2 and o.config_file == "/etc/k.conf" and o.vrrp_only and o.check_only


def test_optional_argument_only_when_attached() -> None:
    o = parse_args(["-t", "/x.conf"])
    assert o.config_test == "" and o.extra_args == ["/x.conf"]
    assert parse_args(["-t/tmp/log"]).config_test == "/tmp/log"
    assert parse_args(["--config-test=/tmp/log"]).config_test == "/tmp/log"
    assert parse_args(["-g"]).log_file == "/tmp/keepalived.log"
    assert parse_args(["--log-file=/var/log/k.log"]).log_file == "/var/log/k.log"


def test_config_test_implies_foreground() -> None:
    o = parse_args(["-t"])
    assert o.dont_fork and o.dont_respawn and o.no_syslog


def test_dump_conf_short_is_a_flag() -> None:
    o = parse_args(["-dn"])
    assert o.dump_conf == "" and o.dont_fork
    assert parse_args(["--dump-conf=json"]).dump_conf == "json"


def test_long_option_abbreviation() -> None:
    assert parse_args(["--use", "/a"]).config_file == "/a"
    with pytest.raises(UsageError):
        parse_args(["--dont-re"])  # dont-release-vrrp / -ipvs / -respawn


def test_permutation_collects_stray_arguments() -> None:
    o = parse_args(["stray", "-n"])
    assert o.dont_fork and o.extra_args == ["stray"]


@pytest.mark.parametrize(
    "argv,message", [(["-Z"], "Unknown option -Z"), (["-f"], "Missing parameter for option -f")]
)
def test_usage_errors_exit_1(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_signum(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--signum=RELOAD"]) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert main(["--signum=JSON"]) == 0
    assert capsys.readouterr().out.strip() == "36"  # glibc SIGRTMIN+2, as keepalived 2.2.7
    assert SIGNAL_FUNCTIONS["STATS_CLEAR"] == 63
    assert main(["--signum=BOGUS"]) == 1
    assert "Unknown sigfunc BOGUS" in capsys.readouterr().err
