"""The IPVS table fastka programs for each sample equals Keepalived 2.2.7's (one UML boot).

For every sample in ``shared/keepalived-samples`` with virtual servers, both daemons run
in the guest as ``-n -l -D -C -f FILE`` (checker side only), one after the other, and
the table each leaves in the kernel once it is stable is compared as sorted
``ipvsadm -Sn`` lines. Checkers are stripped from the samples first (their real servers
do not exist here, so checks would make the table depend on timing); every real server
is then alive, and the table is the configuration's: services, schedulers and flags,
persistence, forwarding, weights, virtual server groups, sorry servers, quorum. After
SIGTERM both must have removed what they added.
"""

from __future__ import annotations

import os
import struct
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from conftest import SHARED, implementations, load, shared_path
from fastka.ipvs import msg
from fastka.ipvs.msg import IPVS_CMD
from uml import lvs_tables
from uml.rig import Guest

pytestmark = [pytest.mark.uml, pytest.mark.slow]

UML_PRELOAD = ("uml.lvs_tables",)
SAMPLES_DIR = SHARED / "keepalived-samples"
FEATURES = Path(__file__).resolve().parent / "data" / "ipvs_features.conf"
# The samples differ little in IPVS terms (mostly NAT, rr, persistence); these cover
# their variety. FASTKA_UML_ALL_SAMPLES=1 runs every sample (~12 s each in the guest).
DEFAULT_SAMPLES = ("sample", "virtual_server_group", "IPv6")
ALL = os.environ.get("FASTKA_UML_ALL_SAMPLES", "") not in ("", "0")
SAMPLES = (
    sorted(
        p
        for p in SAMPLES_DIR.glob("keepalived.conf.*")
        if "virtual_server" in p.read_text(errors="replace")
        and (ALL or p.name.removeprefix("keepalived.conf.") in DEFAULT_SAMPLES)
    )
    if SAMPLES_DIR.is_dir()
    else []
)
FASTKA = str(Path(sys.executable).parent / "fastka")


def _run(guest: Guest, prog: list[str], cfg: Path, tag: str) -> dict[str, object]:
    w = guest.workdir
    argv = [
        *prog,
        "-n",
        "-l",
        "-D",
        "-C",
        "-f",
        str(cfg),
        "-p",
        str(w / f"{tag}.pid"),
        "-c",
        str(w / f"{tag}-c.pid"),
    ]
    return guest.call(lvs_tables.daemon_table, argv, workdir=str(w), timeout=90)  # type: ignore[no-any-return]


def _compare(guest: Guest, text: str, name: str) -> None:
    cfg = guest.workdir / f"{name}.conf"
    cfg.write_text(text)
    ka = _run(guest, ["keepalived"], cfg, "ka")
    assert ka["table"], f"Keepalived programmed nothing:\n{ka['output']}"
    fk = _run(guest, [FASTKA], cfg, "fk")
    assert fk["table"] == ka["table"], (
        f"fastka:\n{fk['listing']}\nKeepalived:\n{ka['listing']}\nfastka's log:\n{fk['output']}"
    )
    assert ka["left"] == [] and fk["left"] == [], "a daemon left IPVS entries behind after SIGTERM"


def test_every_ipvs_feature_as_keepalived(uml_guest: Guest) -> None:
    """data/ipvs_features.conf: every scheduler, sh/mh flags, ops, persistence with
    granularity (v4 and v6) and engine, NAT/DR/TUN (ipip, gue port, gre, csum options),
    per-RS methods, weights 0..n, thresholds, SCTP/UDP, IPv6, fwmark, group ranges."""
    _compare(uml_guest, FEATURES.read_text(), "features")


def test_samples_are_there() -> None:
    """The sample comparisons below are parametrised from shared/; an empty set must fail."""
    shared_path("keepalived-samples")
    assert SAMPLES


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name.removeprefix("keepalived.conf."))
def test_same_table_as_keepalived(uml_guest: Guest, sample: Path) -> None:
    _compare(uml_guest, lvs_tables.strip_checkers(sample.read_text()), sample.name)


def test_strip_checkers() -> None:
    text = (
        "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  real_server 10.1.0.1 80 {\n    weight 2\n"
        "    HTTP_GET {\n      url {\n        path / # {\n      }\n    }\n    TCP_CHECK { connect_timeout 3 }\n"
        "    MISC_CHECK\n    {\n      misc_path /bin/true\n    }\n  }\n}\n"
    )
    assert lvs_tables.strip_checkers(text) == (
        "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  real_server 10.1.0.1 80 {\n    weight 2\n  }\n}\n"
    )


def _reencode(codec: ModuleType, m: bytes) -> bytes:
    """fastka's encoding of the operation in ``m``, with m's family id, seq and pid."""
    _len, family, _flags, seq, pid = struct.unpack_from("=IHHII", m)
    cmd = m[16]
    svc = codec.parse_service(m)[0]
    dest = codec.parse_dest(m)[0] if cmd in msg.DEST_COMMANDS else b""
    buf = bytearray(1024)
    n, _ = codec.build_batch(buf, family, seq, pid, msg.OP.pack(cmd, 0, 0), svc, dest, ack_all=True)
    return bytes(buf[:n])


def test_keepalived_messages_byte_exact(uml_guest: Guest) -> None:
    """Every service and dest command Keepalived sends for data/ipvs_features.conf (start
    and SIGTERM, captured with nlmon) is re-encoded by both of fastka's codecs byte for
    byte: TUN types/ports/checksums, fwmark, IPv6, persistence, ops, sh/mh flags, PE."""
    cfg = uml_guest.workdir / "features-capture.conf"
    cfg.write_text(FEATURES.read_text())
    w = uml_guest.workdir
    argv = [
        "keepalived",
        "-n",
        "-l",
        "-D",
        "-C",
        "-f",
        str(cfg),
        "-p",
        str(w / "kc.pid"),
        "-c",
        str(w / "kc-c.pid"),
    ]
    r = uml_guest.call(lvs_tables.daemon_requests, argv, workdir=str(w), timeout=120)
    ops = [m for m in r["requests"] if m[16] in msg.SERVICE_COMMANDS | msg.DEST_COMMANDS]
    cmds = {IPVS_CMD(m[16]).name for m in ops}
    assert {"NEW_SERVICE", "NEW_DEST", "DEL_DEST", "DEL_SERVICE"} <= cmds, cmds
    counts = Counter(IPVS_CMD(m[16]).name for m in ops)
    assert counts["NEW_SERVICE"] == 19 and counts["NEW_DEST"] >= 27, counts  # the whole table
    for param in implementations("fastka.ipvs._cffi", "fastka._ipvs_py"):
        codec = load(param.values[0])  # type: ignore[attr-defined]
        bad = [(m.hex(), _reencode(codec, m).hex()) for m in ops if _reencode(codec, m) != m]
        assert not bad, f"{codec.__name__}: {len(bad)} of {len(ops)} differ:\n" + "\n".join(
            f"{a}\n{b}\n" for a, b in bad
        )
