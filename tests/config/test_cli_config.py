"""``fastka -t`` and ``--dump-conf`` end to end (subprocesses), and the samples inside a
network namespace built like samples.txt's (veths eth0..eth3, 192.168.200.10/24 on eth0)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cfghelp import SAMPLES, fake_program
from test_samples import GOLDEN

from conftest import require_root, require_tool
from fastka.cli import parse_args
from fastka.config import jsonio
from fastka.config.check import dump_config, dump_text

OK_CONFIG = """
global_defs {
    router_id lb1
}
vrrp_instance VI_1 {
    unicast_src_ip 127.0.0.1
    unicast_peer {
        127.0.0.2
    }
    virtual_router_id 7
    virtual_ipaddress {
        10.0.0.1
    }
}
"""


def fastka(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastka", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def write(tmp_path: Path, text: str, name: str = "keepalived.conf") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_config_test_ok(tmp_path: Path) -> None:
    res = fastka("-t", "-f", str(write(tmp_path, OK_CONFIG)))
    assert (res.returncode, res.stderr, res.stdout) == (0, "", "")


def test_config_test_unknown_keyword_and_bad_value(tmp_path: Path) -> None:
    path = write(
        tmp_path, OK_CONFIG.replace("router_id lb1", "router_id lb1\n    bogus_kw 1\n    vrrp_version 7")
    )
    res = fastka("-t", "-f", str(path))
    assert res.returncode == 5
    assert res.stderr.splitlines() == [
        "(Line 4) Unknown keyword 'bogus_kw'",
        "(Line 5) number '7' outside range [2, 3]",
        "(Line 5) vrrp_version '7' is invalid",
    ]


def test_config_test_missing_file() -> None:
    res = fastka("-t", "-f", "/nonexistent/keepalived.conf")
    assert res.returncode == 4
    assert res.stderr == "Config files missing '/nonexistent/keepalived.conf'.\n"


def test_config_test_log_file(tmp_path: Path) -> None:
    path = write(tmp_path, OK_CONFIG.replace("router_id lb1", "bogus_kw"))
    log = tmp_path / "check.log"
    res = fastka(f"-t{log}", "-f", str(path))
    assert res.returncode == 5 and res.stderr == ""
    assert log.read_text() == "(Line 3) Unknown keyword 'bogus_kw'\n"


def test_config_test_file_names_once_several_files(tmp_path: Path) -> None:
    write(tmp_path, "vrrp_instance VI_1 {\n  priorty 1\n}\n", "vi.conf")
    path = write(tmp_path, "global_defs {\n}\ninclude vi.conf\n")
    res = fastka("-t", "-f", str(path))
    assert "(vi.conf: Line 2) Unknown keyword 'priorty' - did you mean 'priority'?" in res.stderr.splitlines()


def test_config_test_config_id_and_all_config(tmp_path: Path) -> None:
    path = write(tmp_path, "@lb9 bogus_kw\ninclude nothere.conf\n" + OK_CONFIG)
    assert fastka("-t", "-f", str(path), "-i", "other").returncode == 0
    assert fastka("-t", "-f", str(path), "-i", "lb9").returncode == 5
    res = fastka("-t", "-e", "-f", str(path), "-i", "other")
    assert res.returncode == 4 and "Config files missing 'nothere.conf'." in res.stderr


def test_config_test_security_violation(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    fake_program(bindir, "check.sh")
    path = write(tmp_path, 'vrrp_script chk {\n  script "check.sh"\n}\n')
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
    res = fastka("-t", "-f", str(path), env=env)
    if os.geteuid() == 0:
        assert res.returncode == 6
        assert (
            res.stderr == "SECURITY VIOLATION - scripts are being executed but script_security not enabled.\n"
        )


def test_no_traceback_on_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.conf"
    path.write_bytes(bytes(range(256)) * 20 + b"\n}}}{{{ $X=${X}${X}\n~SEQ(a,b\n@@@\n")
    res = fastka("-t", "-f", str(path))
    assert res.returncode in (0, 4, 5)
    assert "Traceback" not in res.stderr


def test_dump_text_and_json(tmp_path: Path) -> None:
    path = write(tmp_path, OK_CONFIG)
    out = io.StringIO()
    assert dump_config(parse_args(["-f", str(path), "-d"]), stream=out) == 0
    text = out.getvalue()
    assert "------< Global definitions >------" in text and "------< VRRP instances >------" in text
    assert "virtual_router_id = 7" in text and "router_id = lb1" in text
    out = io.StringIO()
    assert dump_config(parse_args(["-f", str(path), "--dump-conf=json"]), stream=out) == 0
    doc = json.loads(out.getvalue())
    assert doc["vrrp_instances"]["VI_1"]["virtual_router_id"] == 7
    config = jsonio.from_json(doc)
    assert dump_text(config) == text


def test_dump_of_a_config_given_by_the_daemon(tmp_path: Path) -> None:
    config = jsonio.loads('{"global_defs": {"router_id": "given"}}')
    out = io.StringIO()
    assert dump_config(parse_args(["--dump-conf=json"]), config, out) == 0
    assert json.loads(out.getvalue())["global_defs"]["router_id"] == "given"


# --------------------------------------------------------------------------- samples in a netns
_SETUP = """
set -e
ip link set lo up
for i in 0 1 2 3; do
    ip link add eth$i type veth peer name peer$i
    ip link set eth$i up
    ip link set peer$i up
done
ip addr add 192.168.200.10/24 dev eth0
set +e
"""

_LOCATION = re.compile(r"^\((?:(?P<file>[^:]*): )?Line (?P<line>\d+)\) (?P<text>.*)$")


@pytest.mark.root
@pytest.mark.netns
@pytest.mark.slow
def test_samples_end_to_end_in_a_namespace(tmp_path: Path) -> None:
    require_root()
    unshare = require_tool("unshare")
    require_tool("ip")
    bindir = tmp_path / "bin"
    fake_program(bindir, "killall")
    script = [_SETUP]
    for index, (sample, config_id, _rc, _msgs) in enumerate(GOLDEN):
        cid = config_id or "nohost"
        script.append(
            f"echo '@@@ {index}'; {sys.executable} -m fastka -t -i {cid} -f {SAMPLES / sample} 2>&1; echo \"@@@ rc $?\""
        )
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
    res = subprocess.run(
        [unshare, "-n", "sh", "-c", "\n".join(script)], capture_output=True, text=True, timeout=600, env=env
    )
    assert res.returncode == 0, res.stderr
    chunks = res.stdout.split("@@@ ")[1:]
    results: dict[int, tuple[list[tuple[int | None, str]], int]] = {}
    for head, tail in zip(chunks[::2], chunks[1::2], strict=True):
        index = int(head.split("\n", 1)[0])
        body = head.split("\n", 1)[1]
        got = []
        for line in body.splitlines():
            m = _LOCATION.match(line)
            got.append((int(m["line"]), m["text"]) if m else (None, line))
        results[index] = (got, int(tail.split()[1]))
    for index, (sample, config_id, rc, expected) in enumerate(GOLDEN):
        got, got_rc = results[index]
        problems = [g for g in got if "not supported yet" not in g[1] and "checks skipped" not in g[1]]
        assert got_rc == rc, (sample, config_id, got)
        assert sorted(t for _l, t in problems) == sorted(t for _l, t in expected), (sample, got)
        for line, text in expected:
            if line is not None:
                assert (line, text) in problems, (sample, line, text)
