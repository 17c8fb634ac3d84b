"""Load-balancing labs inside the UML guest: a client, the director and real servers.

These functions run **inside the guest** (through :meth:`uml.rig.Guest.call`); they
return plain picklable data. The director is the guest's own network namespace, so
``ipvsadm``, ``keepalived`` and ``fastka`` run there without ``ip netns exec``::

    from uml import netlab

    lab = guest.call(netlab.build, "dr", n_real=3)        # or "nat"
    guest.call(program_ipvs, lab)                          # your code: VIP lab.vip:lab.port
    names = guest.call(netlab.fetch, lab, 30)              # ["rs1", "rs2", "rs3", "rs1", ...]
    guest.call(netlab.stop_server, lab, 2)                 # rs2's HTTP server dies
    lab = guest.call(netlab.start_server, lab, 2)          # ... and comes back
    guest.call(netlab.teardown, lab)

Topology (``net`` shifts every subnet, so two labs can coexist)::

    client ns <name>-c          director (guest's init ns)             real server ns <name>-rK
    eth0 10.0.N.2/24 --veth-- <name>-c0 10.0.N.1/24                    eth0 10.1.N.(10+K)/24
    default via 10.0.N.1      + VIP 10.0.N.100/32 on <name>-c0         default via 10.1.N.1
                              <name>-br 10.1.N.1/24 --veth-- ...        HTTP :80 answers "rsK"

The director forwards (``ip_forward=1``). NAT: the real servers route replies back
through the director, which rewrites them. DR: every real server also has the VIP on
``lo`` with ``arp_ignore=1``/``arp_announce=2`` (it accepts the VIP but never answers ARP
for it) and replies straight to the client through the director as a plain router; the
director accepts those packets although their source (the VIP) is its own address
(``accept_local=1``, ``rp_filter=0``).

Links and addresses are made with one ``ip -batch`` per namespace (every exec costs tens
of milliseconds in the guest).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

HTTPD = str(Path(__file__).resolve().parent / "httpd.py")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class RealServer:
    name: str  # rsK
    netns: str
    addr: str
    port: int
    pid: int = 0  # the HTTP server (a process group leader), 0 when stopped


@dataclass(frozen=True)
class Lab:
    name: str
    kind: str  # "nat" or "dr"
    net: int
    vip: str
    port: int
    client_netns: str
    client_addr: str
    director_addr: str  # on the client side
    director_rs_addr: str  # on the real servers' bridge
    client_link: str
    bridge: str
    real_servers: tuple[RealServer, ...] = field(default_factory=tuple)


def setns(name: str) -> None:
    """Move the calling thread into ``/run/netns/NAME`` (or ``/proc/PID/ns/net`` paths)."""
    path = name if name.startswith("/") else f"/run/netns/{name}"
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


@contextlib.contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the block in namespace ``name``; sockets made inside stay there."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(name)
        yield
    finally:
        try:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(own)


def sysctl(values: dict[str, str | int], ns: str | None = None) -> None:
    """Write ``net.ipv4.ip_forward``-style keys (in namespace ``ns``)."""
    ctx = netns(ns) if ns else contextlib.nullcontext()
    with ctx:
        for key, value in values.items():
            Path("/proc/sys", *key.split(".")).write_text(f"{value}\n")


def ip_batch(lines: list[str], ns: str | None = None) -> None:
    cmd = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    res = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()}\n" + "\n".join(lines))


def build(kind: str = "nat", n_real: int = 3, *, name: str = "lab", net: int = 0, port: int = 80) -> Lab:
    """Create the namespaces, links, addresses and HTTP servers of a lab (see above)."""
    if kind not in ("nat", "dr"):
        raise ValueError(f"kind must be nat or dr, not {kind!r}")
    vip = f"10.0.{net}.100"
    lab = Lab(
        name=name,
        kind=kind,
        net=net,
        vip=vip,
        port=port,
        client_netns=f"{name}-c",
        client_addr=f"10.0.{net}.2",
        director_addr=f"10.0.{net}.1",
        director_rs_addr=f"10.1.{net}.1",
        client_link=f"{name}-c0",
        bridge=f"{name}-br",
        real_servers=tuple(
            RealServer(f"rs{k}", f"{name}-r{k}", f"10.1.{net}.{10 + k}", port) for k in range(1, n_real + 1)
        ),
    )
    namespaces = [lab.client_netns] + [rs.netns for rs in lab.real_servers]
    root = [f"netns add {ns}" for ns in namespaces] + [
        f"link add {lab.client_link} type veth peer name eth0 netns {lab.client_netns}",
        f"addr add {lab.director_addr}/24 dev {lab.client_link}",
        f"addr add {vip}/32 dev {lab.client_link}",
        f"link set {lab.client_link} up",
        f"link add {lab.bridge} type bridge",
        f"addr add {lab.director_rs_addr}/24 dev {lab.bridge}",
        f"link set {lab.bridge} up",
    ]
    for k, rs in enumerate(lab.real_servers, 1):
        root += [
            f"link add {name}-r{k} type veth peer name eth0 netns {rs.netns}",
            f"link set {name}-r{k} master {lab.bridge} up",
        ]
    ip_batch(root)
    ip_batch(
        [
            f"addr add {lab.client_addr}/24 dev eth0",
            "link set eth0 up",
            "link set lo up",
            f"route add default via {lab.director_addr}",
        ],
        lab.client_netns,
    )
    sysctl({"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0})
    if kind == "dr":
        sysctl(
            {
                "net.ipv4.conf.all.accept_local": 1,
                f"net.ipv4.conf.{lab.bridge}.accept_local": 1,
                f"net.ipv4.conf.{lab.bridge}.rp_filter": 0,
                f"net.ipv4.conf.{lab.client_link}.rp_filter": 0,
            }
        )
    for rs in lab.real_servers:
        lines = [
            f"addr add {rs.addr}/24 dev eth0",
            "link set eth0 up",
            "link set lo up",
            f"route add default via {lab.director_rs_addr}",
        ]
        if kind == "dr":
            lines.append(f"addr add {vip}/32 dev lo")
            sysctl(
                {
                    "net.ipv4.conf.all.arp_ignore": 1,
                    "net.ipv4.conf.all.arp_announce": 2,
                    "net.ipv4.conf.eth0.arp_ignore": 1,
                    "net.ipv4.conf.eth0.arp_announce": 2,
                    "net.ipv4.conf.all.rp_filter": 0,
                },
                rs.netns,
            )
        ip_batch(lines, rs.netns)
    started = _start_servers(lab.real_servers)
    return replace(lab, real_servers=started)


def _start_servers(servers: tuple[RealServer, ...], status: int = 200) -> tuple[RealServer, ...]:
    procs = []
    for rs in servers:
        p = subprocess.Popen(
            [sys.executable, "-S", HTTPD, rs.name, str(rs.port), str(status)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda ns=rs.netns: setns(ns),  # type: ignore[misc]
        )
        procs.append(p)
    out = []
    for rs, p in zip(servers, procs, strict=True):
        assert p.stdout is not None
        line = p.stdout.readline()
        p.stdout.close()
        if line.strip() != b"ready":
            raise RuntimeError(f"HTTP server of {rs.name} did not start")
        out.append(replace(rs, pid=p.pid))
    return tuple(out)


def stop_server(lab: Lab, k: int) -> Lab:
    """Kill real server ``rsK``'s HTTP server (connections are then refused)."""
    rs = lab.real_servers[k - 1]
    if rs.pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(rs.pid, signal.SIGKILL)
    servers = list(lab.real_servers)
    servers[k - 1] = replace(rs, pid=0)
    return replace(lab, real_servers=tuple(servers))


def start_server(lab: Lab, k: int, status: int = 200) -> Lab:
    """(Re)start real server ``rsK``'s HTTP server; ``status`` is what it answers."""
    lab = stop_server(lab, k)
    (rs,) = _start_servers((lab.real_servers[k - 1],), status)
    servers = list(lab.real_servers)
    servers[k - 1] = rs
    return replace(lab, real_servers=tuple(servers))


def http_get(addr: str, port: int, timeout: float = 3.0, path: str = "/") -> str:
    """One HTTP/1.0 GET in the current namespace: the body, or ``ERR:<reason>``."""
    try:
        with socket.create_connection((addr, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError as exc:
        return f"ERR:{type(exc).__name__}"
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        return "ERR:bad-reply"
    return body.decode(errors="replace").strip()


def fetch(lab: Lab, count: int, timeout: float = 3.0) -> list[str]:
    """``count`` GETs to the VIP from the client namespace, each on a new connection;
    the names of the real servers that answered (``ERR:...`` for failures)."""
    with netns(lab.client_netns):
        return [http_get(lab.vip, lab.port, timeout) for _ in range(count)]


def wait_for(predicate_name: str, *args: object, timeout: float = 10.0, interval: float = 0.05) -> float:
    """Poll a function of this module (by name) until it returns true; seconds waited."""
    func = globals()[predicate_name]
    t0 = time.monotonic()
    while not func(*args):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{predicate_name}{args} still false after {timeout} s")
        time.sleep(interval)
    return time.monotonic() - t0


def ipvs_proc() -> str:
    """``/proc/net/ip_vs`` of the director (cheaper than running ipvsadm)."""
    return Path("/proc/net/ip_vs").read_text()


def teardown(lab: Lab) -> None:
    """Stop the servers and remove the lab's namespaces, links and addresses."""
    for rs in lab.real_servers:
        if rs.pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(rs.pid, signal.SIGKILL)
    lines = [f"netns del {ns}" for ns in [lab.client_netns] + [rs.netns for rs in lab.real_servers]]
    lines += [f"link del {lab.bridge}"]
    # Deleting a namespace destroys its veth ends, and with them their peers here.
    ip_batch(lines)
