"""fastka's status: the versioned JSON document, Keepalived's dump files, ``fastka status``.

The document (schema in ``docs/status.md``) is assembled by the parent from the snapshots
its children report over their channel: each child's subsystem returns its section from
``Subsystem.status()`` (typed below as :class:`VrrpSection` and :class:`CheckerSection`),
the parent adds its own and the children's health. It is served by the parent's status
endpoint (:mod:`fastka.statusd`), optionally written to a file on every change, and
printed as a table by ``fastka status``.

Keepalived's signal-triggered dumps (``/tmp/keepalived.data``, ``.stats``, ``.json``; cli.md
§3, §5) are written here too, atomically (temporary file + rename, the fix Keepalived
adopted in #2661), at Keepalived's paths: ``$TMPDIR`` if it is an absolute directory, else
``/tmp``, or wherever ``state_dump_file``/``stats_dump_file``/``json_dump_file`` say.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from fastka._version import __version__

if TYPE_CHECKING:
    import http.client

# Every process imports this module (dumps, the status file); the client half
# (``fetch``, ``fastka status``) imports http.client and argparse -- about 50 modules with
# email -- only when it runs.

SCHEMA_VERSION = 1

# ---------------------------------------------------------------------------------------
# The schema, as TypedDicts (the subsystems build these; docs/status.md explains them).


# "from" is a Python keyword, hence the functional form.
Transition = TypedDict("Transition", {"time": float, "from": str, "to": str, "reason": str})


class TrackedRef(TypedDict):
    """An object an instance or group tracks, with what it contributes there."""

    type: str  # "script" | "file" | "process" | "interface" | "bfd"
    name: str
    up: bool | None
    weight: int  # the configured weight (0: failure means FAULT)


class VrrpPeer(TypedDict):
    """Accepted adverts from one source address."""

    address: str  # "" counts the sources beyond the 64 kept per instance
    adverts: int
    last_priority: int
    last_seen: float  # time (epoch seconds)


class VrrpStats(TypedDict):
    adverts_sent: int
    adverts_received: int
    became_master: int
    released_master: int
    priority_zero_sent: int
    priority_zero_received: int
    drops: dict[str, int]  # reason -> count, e.g. "ttl", "checksum", "auth", "interval"
    peers: NotRequired[list[VrrpPeer]]


class VrrpInstance(TypedDict):
    name: str
    vrid: int
    family: str  # "inet" | "inet6"
    version: int  # 2 | 3
    interface: str | None
    state: str  # "INIT" | "BACKUP" | "MASTER" | "FAULT" | "STOP" | "DELETED"
    wanted_state: str | None  # the configured `state`
    priority: int  # configured
    effective_priority: int
    advert_interval: float  # seconds
    master_address: str | None
    master_priority: int | None
    virtual_ipaddresses: list[str]
    sync_group: str | None
    last_transition: Transition | None
    transitions: int
    stats: VrrpStats
    tracked: list[TrackedRef]
    faults: NotRequired[list[str]]  # why it is (or would be) FAULT
    old_unicast_checksum: NotRequired[bool]  # our unicast adverts use Keepalived < 1.3.6's checksum


class SyncGroup(TypedDict):
    name: str
    state: str
    instances: list[str]
    last_transition: Transition | None


class TrackedObject(TypedDict):
    type: str  # "script" | "file" | "process" | "interface" | "bfd"
    name: str
    up: bool | None  # None until the first result
    status: str  # free text: "GOOD", "BAD", "INIT", a file's value, a process count
    value: float | None  # track_file value, number of processes, script exit status
    last_change: float | None
    users: list[str]  # instances and groups that track it


class VrrpSection(TypedDict):
    instances: list[VrrpInstance]
    sync_groups: list[SyncGroup]
    tracked: list[TrackedObject]


class CheckerResult(TypedDict):
    type: str  # "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | ...
    target: str  # "[address]:port" actually connected to
    up: bool | None
    last_result: str | None  # "success" | "failure" | "timeout" | "error"
    last_check: float | None
    last_change: float | None
    failures: int  # consecutive
    detail: str | None  # e.g. "HTTP status 503", "connection refused"


class RealServer(TypedDict):
    name: str  # "[192.0.2.21]:tcp:80"
    address: str
    port: int
    up: bool
    weight: int  # current IPVS weight (0 when inhibited)
    configured_weight: int
    in_ipvs: bool
    checkers: list[CheckerResult]


class SorryServer(TypedDict):
    name: str
    active: bool


class VirtualServer(TypedDict):
    name: str  # Keepalived's format_vs(): "[IP]:proto:port", "FWM n", "[group]:port"
    family: str
    address: str | None
    port: int | None
    protocol: str | None
    fwmark: int | None
    group: str | None
    scheduler: str | None
    forwarding: str | None  # "NAT" | "DR" | "TUN"
    quorum: int
    quorum_up: bool
    alive_weight: int
    sorry_server: SorryServer | None
    real_servers: list[RealServer]


class CheckerSection(TypedDict):
    virtual_servers: list[VirtualServer]


# ---------------------------------------------------------------------------------------
# Keepalived's dump files.

DumpKind = Literal["data", "stats", "json"]
_DEFAULT_NAMES: dict[str, str] = {
    "data": "keepalived.data",
    "stats": "keepalived.stats",
    "json": "keepalived.json",
}
# Suffix before the last dot, per process (Keepalived: keepalived_check.data, _parent.data).
_ROLE_SUFFIX = {"vrrp": "", "checker": "_check", "parent": "_parent"}


def dump_dir() -> str:
    """Where dumps go by default: ``$TMPDIR`` if it is an absolute directory, else /tmp."""
    tmpdir = os.environ.get("TMPDIR", "")
    if tmpdir.startswith("/") and os.path.isdir(tmpdir):
        return tmpdir
    return "/tmp"


def _insert_suffix(path: str, suffix: str) -> str:
    if not suffix:
        return path
    head, base = os.path.split(path)
    stem, dot, ext = base.rpartition(".")
    return os.path.join(head, f"{stem}{suffix}.{ext}" if dot and stem else f"{base}{suffix}")


def dump_path(kind: DumpKind, role: str, configured: str | None = None) -> str:
    """The file a dump of ``kind`` by process ``role`` goes to.

    ``configured`` is the ``*_dump_file`` keyword's value; a trailing ``/`` names a
    directory for the default file name.
    """
    name = _DEFAULT_NAMES[kind]
    if configured:
        base = os.path.join(configured, name) if configured.endswith("/") else configured
    else:
        base = os.path.join(dump_dir(), name)
    return _insert_suffix(base, _ROLE_SUFFIX.get(role, f"_{role}"))


def atomic_write(path: str, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` so that no reader ever sees a partial file.

    The temporary file has a random name and is created exclusively (``O_EXCL``: a planted
    file or link is never followed), with the mode a plain ``open()`` gives (0666 less the
    umask), then renamed over ``path``. (``tempfile`` would do the same at the price of
    importing ``random``, ``shutil`` and more into every process.)"""
    raw = data.encode() if isinstance(data, str) else data
    directory = os.path.dirname(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    while True:
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------
# The document the parent serves.


def to_json(doc: Any, *, pretty: bool = False) -> str:
    """JSON text of a status document or dump (addresses and enums become strings).

    Compact by default: the C encoder is several times faster than an indented dump, and
    the parent serves large documents from its loop (``fastka status --json`` indents)."""
    if pretty:
        return json.dumps(doc, indent=2, default=str) + "\n"
    return json.dumps(doc, separators=(",", ":"), default=str) + "\n"


class ChildHealth(TypedDict):
    state: str  # "starting" | "running" | "reloading" | "stopping" | "backoff" | "stopped"
    pid: int | None
    started: float | None
    restarts: int
    last_exit: dict[str, Any] | None  # {"time", "code", "status", "reason"}
    last_hello: float | None  # unix time of the last answered hello
    hello_rtt: float | None  # seconds
    status_time: float | None  # when the child last reported its status


class Board:
    """The parent's view: its own facts, each child's health and latest section."""

    def __init__(self, *, config_file: str, config_id: str) -> None:
        self.started = time.time()
        self.daemon: dict[str, Any] = {
            "pid": os.getpid(),
            "version": __version__,
            "started": self.started,
            "config_file": config_file,
            "config_id": config_id,
            "router_id": None,
            "config_loaded": None,
            "state": "starting",
            "reloads": {"ok": 0, "failed": 0, "last": None},
        }
        self.children: dict[str, ChildHealth] = {}
        self.sections: dict[str, Mapping[str, Any] | None] = {"vrrp": None, "checker": None}

    def child(self, name: str) -> ChildHealth:
        if name not in self.children:
            self.children[name] = ChildHealth(
                state="stopped",
                pid=None,
                started=None,
                restarts=0,
                last_exit=None,
                last_hello=None,
                hello_rtt=None,
                status_time=None,
            )
        return self.children[name]

    def document(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "generator": f"fastka {__version__}",
            "time": time.time(),
            "daemon": dict(self.daemon),
            "children": {name: dict(health) for name, health in self.children.items()},
            "vrrp": self.sections.get("vrrp"),
            "checker": self.sections.get("checker"),
        }


def find_instance(doc: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    vrrp = doc.get("vrrp") or {}
    for inst in vrrp.get("instances", []):
        if inst.get("name") == name:
            return dict(inst)
    return None


# ---------------------------------------------------------------------------------------
# `fastka status`

DEFAULT_SOCKET = "/run/fastka/status.sock"


def _unix_http_connection(path: str, timeout: float) -> http.client.HTTPConnection:
    import http.client
    import socket

    class UnixHTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(path)
            except OSError:
                sock.close()
                raise
            self.sock = sock

    return UnixHTTPConnection("localhost", timeout=timeout)


def fetch(
    path: str, *, unix_socket: str | None = None, address: str | None = None, timeout: float = 5.0
) -> str:
    """GET ``path`` from a running fastka's status endpoint (unix socket or HOST:PORT)."""
    conn: http.client.HTTPConnection
    if address:
        host, _, port = address.rpartition(":")
        conn = http_client_for(host or "127.0.0.1", int(port), timeout)
    else:
        conn = _unix_http_connection(unix_socket or DEFAULT_SOCKET, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body: str = resp.read().decode()
        if resp.status != 200:
            raise OSError(f"{path}: HTTP {resp.status}: {body.strip()}")
        return body
    finally:
        conn.close()


def http_client_for(host: str, port: int, timeout: float) -> http.client.HTTPConnection:
    import http.client

    return http.client.HTTPConnection(host.strip("[]"), port, timeout=timeout)


def _ago(now: float, then: float | None) -> str:
    if not then:
        return "-"
    secs = max(0, int(now - then))
    if secs < 120:
        return f"{secs}s ago"
    if secs < 7200:
        return f"{secs // 60}m ago"
    if secs < 172800:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m ago"
    return f"{secs // 86400}d ago"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def render(doc: Mapping[str, Any]) -> str:
    """The document as the readable table ``fastka status`` prints."""
    now = float(doc.get("time") or time.time())
    d = doc.get("daemon", {})
    reloads = d.get("reloads", {})
    last = reloads.get("last")
    lines = [
        f"fastka {d.get('version', '?')}  pid {d.get('pid')}  {d.get('state', '?')}  "
        f"up {_ago(now, d.get('started')).removesuffix(' ago')}  config {d.get('config_file')}",
        f"config loaded {_ago(now, d.get('config_loaded'))}; reloads: {reloads.get('ok', 0)} ok, "
        f"{reloads.get('failed', 0)} failed"
        + (
            f"; last {'ok' if last.get('ok') else 'FAILED: ' + str(last.get('error'))} {_ago(now, last.get('time'))}"
            if last
            else ""
        ),
    ]
    children = doc.get("children") or {}
    if children:
        rows = [["CHILD", "STATE", "PID", "STARTED", "RESTARTS", "LAST EXIT"]]
        for name, h in children.items():
            le = h.get("last_exit")
            rows.append(
                [
                    name,
                    str(h.get("state")),
                    str(h.get("pid") or "-"),
                    _ago(now, h.get("started")),
                    str(h.get("restarts", 0)),
                    f"{le.get('status')} ({le.get('reason')}) {_ago(now, le.get('time'))}" if le else "-",
                ]
            )
        lines += ["", *_table(rows)]
    vrrp = doc.get("vrrp")
    if vrrp is not None:
        lines += ["", "VRRP instances"]
        rows = [["NAME", "VRID", "INTERFACE", "STATE", "PRIO", "EFF", "MASTER", "LAST TRANSITION"]]
        for inst in vrrp.get("instances", []):
            lt = inst.get("last_transition")
            rows.append(
                [
                    str(inst.get("name")),
                    str(inst.get("vrid")),
                    str(inst.get("interface") or "-"),
                    str(inst.get("state")),
                    str(inst.get("priority")),
                    str(inst.get("effective_priority")),
                    str(inst.get("master_address") or "-"),
                    f"{lt.get('from')}->{lt.get('to')} {_ago(now, lt.get('time'))} ({lt.get('reason')})"
                    if lt
                    else "-",
                ]
            )
        lines += _table(rows) if len(rows) > 1 else ["  (none)"]
        rows = [["INSTANCE", "PEER", "ADVERTS", "LAST PRIO", "LAST SEEN"]]
        for inst in vrrp.get("instances", []):
            for p in (inst.get("stats") or {}).get("peers") or ():
                rows.append(
                    [
                        str(inst.get("name")),
                        str(p.get("address") or "(others)"),
                        str(p.get("adverts")),
                        str(p.get("last_priority")),
                        _ago(now, p.get("last_seen")),
                    ]
                )
        if len(rows) > 1:
            lines += ["", "VRRP peers (accepted adverts)", *_table(rows)]
        groups = vrrp.get("sync_groups", [])
        if groups:
            lines += ["", "Sync groups"]
            rows = [["NAME", "STATE", "INSTANCES"]]
            rows += [
                [str(g.get("name")), str(g.get("state")), ", ".join(g.get("instances", []))] for g in groups
            ]
            lines += _table(rows)
        tracked = vrrp.get("tracked", [])
        if tracked:
            lines += ["", "Tracked objects"]
            rows = [["TYPE", "NAME", "UP", "STATUS", "CHANGED", "USED BY"]]
            for t in tracked:
                up = t.get("up")
                rows.append(
                    [
                        str(t.get("type")),
                        str(t.get("name")),
                        "-" if up is None else ("yes" if up else "NO"),
                        str(t.get("status")),
                        _ago(now, t.get("last_change")),
                        ", ".join(t.get("users", [])),
                    ]
                )
            lines += _table(rows)
    checker = doc.get("checker")
    if checker is not None:
        lines += ["", "Virtual servers"]
        rows = [["VIRTUAL SERVER", "QUORUM", "REAL SERVER", "UP", "WEIGHT", "LAST CHECK"]]
        for vs in checker.get("virtual_servers", []):
            quorum = "up" if vs.get("quorum_up") else "DOWN"
            rss = vs.get("real_servers", []) or [None]
            for i, rs in enumerate(rss):
                first = [str(vs.get("name")), quorum] if i == 0 else ["", ""]
                if rs is None:
                    rows.append([*first, "-", "-", "-", "-"])
                    continue
                checks = rs.get("checkers", [])
                last_check = max((c.get("last_check") or 0 for c in checks), default=0) or None
                results = ", ".join(
                    f"{c.get('type')} {c.get('last_result') or '-'}"
                    + (f" ({c.get('detail')})" if c.get("detail") else "")
                    for c in checks
                )
                rows.append(
                    [
                        *first,
                        str(rs.get("name")),
                        "yes" if rs.get("up") else "NO",
                        str(rs.get("weight")),
                        f"{results} {_ago(now, last_check)}".strip() if checks else "-",
                    ]
                )
            if vs.get("sorry_server") and vs["sorry_server"].get("active"):
                rows.append(["", "", f"sorry server {vs['sorry_server'].get('name')}", "active", "-", "-"])
        lines += _table(rows) if len(rows) > 1 else ["  (none)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """``fastka status [--socket PATH | --http HOST:PORT | --file PATH] [--json]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="fastka status", description="Show a running fastka's status.")
    src = parser.add_mutually_exclusive_group()
    src.add_argument(
        "--socket",
        default=os.environ.get("FASTKA_STATUS_SOCKET"),
        help=f"status unix socket (fastka_status_socket; default {DEFAULT_SOCKET})",
    )
    src.add_argument("--http", help="status HTTP endpoint HOST:PORT (fastka_status_http)")
    src.add_argument("--file", help="read a status file (fastka_status_file) instead")
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    args = parser.parse_args(argv)
    try:
        if args.file:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
        else:
            text = fetch("/status", unix_socket=args.socket, address=args.http)
        doc = json.loads(text)
    except (OSError, ValueError) as exc:
        where = args.file or args.http or args.socket or DEFAULT_SOCKET
        print(f"fastka status: cannot read the status from {where}: {exc}", file=sys.stderr)
        if not (args.file or args.http or args.socket):
            print(
                "(the endpoint is off by default: fastka_status_socket in global_defs or "
                "--status-socket; see docs/status.md)",
                file=sys.stderr,
            )
        return 1
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
        print(f"fastka status: unknown status schema {doc.get('schema') if isinstance(doc, dict) else '?'}")
        return 1
    sys.stdout.write(to_json(doc, pretty=True) if args.json else render(doc))
    return 0
