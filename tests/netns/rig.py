"""The network-namespace test rig: routers on a bridge, real Keepalived, capture, VIP sampling.

Every VRRP test builds its world with this module. Nothing here touches the host's own
interfaces: every link, address and process lives in a namespace the rig created, and
:meth:`Rig.close` (fixture finalizers, plus an ``atexit``/signal guard) removes them all.

Topology (as the golden captures in ``shared/vrrp-golden`` were made)::

    netns fkt-<pid>-<n>-lan          netns fkt-<pid>-<n>-r1     netns fkt-<pid>-<n>-r2
    br0 ──┬── r1-eth0 (veth) ────────── eth0 02:99:00:00:00:11  10.99.0.11/24 fd99::11/64
          └── r2-eth0 (veth) ──────────────────────────────── eth0 02:99:00:00:00:12 ...

Example::

    with Rig() as rig:
        lan = rig.bridge("lan")                      # 10.99.0.0/24, fd99::/64
        r1 = rig.router("r1", lan, host=11)          # the golden r1 (MAC, IPv4, IPv6)
        r2 = rig.router("r2", lan, host=12)
        r1.exec(["ping", "-c1", "10.99.0.12"])
        k1 = rig.keepalived(r1, CONFIG)              # /usr/sbin/keepalived -n -l -D -G -P ...
        with rig.sampler("10.99.0.100", [r1, r2]) as sampler:
            k1.wait_log("Entering MASTER STATE")
            rig.crash(k1)                            # SIGKILL the group, drop its VIPs
        sampler.timeline.assert_one_owner(max_overlap=0.1)

Design choices:

* Namespace names are ``fkt-<pid>-<n>-<name>``: unique across concurrent test runs, and
  :func:`remove_stale_namespaces` can tell a dead run's leftovers (its pid is gone).
* Code runs *inside* a namespace in a worker thread that entered it
  (``fastka._linux.enter_netns``; :meth:`Netns.call`): sockets it creates belong to that namespace and stay usable from
  any thread afterwards, and ``/proc/sys/net`` resolves to the namespace too. This is how
  tests create fastka's sockets and netlink objects "inside" a router without a subprocess.
* Processes run through ``ip netns exec`` (which also gives them a matching ``/sys``) in
  their own session, so they are stopped by PID as a whole process group.
* Addresses are read with a hand-parsed ``RTM_GETADDR`` dump on a netlink socket opened in
  the namespace (tens of microseconds), fast enough to sample VIP ownership every 10 ms.
* IPv6 DAD is disabled in every namespace (``accept_dad=0``) so addresses are usable at
  once; router solicitations are off so captures stay quiet.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import ipaddress
import itertools
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, NamedTuple, TypeVar

from fastka._linux import enter_netns

T = TypeVar("T")

PREFIX = "fkt-"
NETNS_RUN_DIR = Path("/run/netns")
KEEPALIVED = "/usr/sbin/keepalived"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

_counter = itertools.count(1)


def _load_root_conftest() -> ModuleType:
    """``tests/conftest.py`` loaded under its own name (see ``tests/netns/conftest.py`` for why)."""
    name = "_fastka_tests_root_conftest"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_root = _load_root_conftest()
require_root: Callable[[], None] = _root.require_root
require_tool: Callable[[str], str] = _root.require_tool


def require_netns() -> None:
    """Skip (or fail under ``FASTKA_REQUIRE_ALL=1``) unless namespaces can be built here."""
    require_root()
    require_tool("ip")


# --------------------------------------------------------------------------- setns


def _ip(args: Sequence[str], *, netns: str | None = None, batch: str | None = None) -> str:
    """Run ``ip [-n NS] ARGS`` (or a ``-batch -`` script); raise with ip's message on failure."""
    cmd = ["ip"]
    if netns is not None:
        cmd += ["-n", netns]
    cmd += ["-batch", "-"] if batch is not None else list(args)
    res = subprocess.run(cmd, input=batch, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}\n{batch or ''}")
    return res.stdout


# --------------------------------------------------------------------------- netlink dumps

_NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_RTA_HDR = struct.Struct("=HH")
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_GETLINK, RTM_NEWLINK, RTM_GETADDR, RTM_NEWADDR = 18, 16, 22, 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_FLAGS = 1, 2, 3, 8
IFLA_ADDRESS, IFLA_IFNAME = 1, 3
IFA_F_TENTATIVE = 0x40
IFF_UP, IFF_RUNNING = 0x1, 0x40


@dataclass(frozen=True, slots=True)
class Addr:
    """One address of an interface, as ``ip addr`` shows it."""

    ifindex: int
    address: IPInterface
    flags: int
    scope: int
    label: str | None

    @property
    def ip(self) -> IPAddress:
        return self.address.ip


@dataclass(frozen=True, slots=True)
class Link:
    ifindex: int
    name: str
    flags: int
    mac: str

    @property
    def up(self) -> bool:
        """Administratively up and with carrier (what Keepalived calls up)."""
        return self.flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING


def _attrs(data: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        ln, typ = _RTA_HDR.unpack_from(data, off)
        if ln < 4:
            break
        out[typ & 0x3FFF] = data[off + 4 : off + ln]
        off += (ln + 3) & ~3
    return out


class NetlinkDumper:
    """A NETLINK_ROUTE socket (created in the caller's namespace) that dumps links/addresses.

    Thread-safe (one request at a time). Used by :class:`Netns` and the sampler; fastka's own
    code uses pyroute2 instead, so the rig is an independent observer.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.sock.bind((0, 0))
        self._seq = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.sock.close()

    def _dump(self, msg_type: int, body: bytes) -> Iterator[tuple[int, bytes, int, int]]:
        with self._lock:
            self._seq += 1
            seq = self._seq
            self.sock.send(
                _NLMSG_HDR.pack(16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body
            )
            chunks: list[tuple[int, bytes, int, int]] = []
            while True:
                data = self.sock.recv(65536)
                off = 0
                while off + 16 <= len(data):
                    ln, typ, _flags, mseq, _pid = _NLMSG_HDR.unpack_from(data, off)
                    if ln < 16:
                        break
                    if mseq == seq:
                        if typ == NLMSG_DONE:
                            return iter(chunks)
                        if typ == NLMSG_ERROR:
                            (err,) = struct.unpack_from("=i", data, off + 16)
                            if err:
                                raise OSError(-err, os.strerror(-err))
                        else:
                            chunks.append((typ, data, off + 16, off + ln))
                    off += (ln + 3) & ~3

    def addresses(self, family: int = socket.AF_UNSPEC) -> list[Addr]:
        out: list[Addr] = []
        for typ, data, off, end in self._dump(RTM_GETADDR, _IFADDRMSG.pack(family, 0, 0, 0, 0)):
            if typ != RTM_NEWADDR:
                continue
            fam, plen, flags, scope, index = _IFADDRMSG.unpack_from(data, off)
            attrs = _attrs(data, off + _IFADDRMSG.size, end)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is None or fam not in (socket.AF_INET, socket.AF_INET6):
                continue
            if IFA_FLAGS in attrs:
                (flags,) = struct.unpack("=I", attrs[IFA_FLAGS])
            ip = ipaddress.ip_address(raw)
            label = attrs[IFA_LABEL].rstrip(b"\0").decode() if IFA_LABEL in attrs else None
            out.append(Addr(index, ipaddress.ip_interface(f"{ip}/{plen}"), flags, scope, label))
        return out

    def has_address(self, address: IPAddress, family: int, *, carrier: bool = False) -> bool:
        """Whether an interface has ``address``; with ``carrier``, only an interface that is
        up with carrier counts (FRR keeps a Backup's VIPs on a macvlan in protodown)."""
        packed = address.packed
        live = {lk.ifindex for lk in self.links().values() if lk.up} if carrier else None
        for typ, data, off, end in self._dump(RTM_GETADDR, _IFADDRMSG.pack(family, 0, 0, 0, 0)):
            if typ != RTM_NEWADDR:
                continue
            attrs = _attrs(data, off + _IFADDRMSG.size, end)
            if (attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)) == packed and (
                live is None or _IFADDRMSG.unpack_from(data, off)[4] in live
            ):
                return True
        return False

    def links(self) -> dict[str, Link]:
        out: dict[str, Link] = {}
        for typ, data, off, end in self._dump(RTM_GETLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            if typ != RTM_NEWLINK:
                continue
            _fam, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, off)
            attrs = _attrs(data, off + _IFINFOMSG.size, end)
            name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
            mac = ":".join(f"{b:02x}" for b in attrs.get(IFLA_ADDRESS, b""))
            out[name] = Link(index, name, flags, mac)
        return out


# --------------------------------------------------------------------------- namespaces


class Netns:
    """A named network namespace made by the rig.

    ``name`` is the short name given by the test (``"r1"``); ``netns`` the real one
    (``fkt-<pid>-<n>-r1``). Methods that take ``ifname`` refer to interfaces inside it.
    """

    def __init__(self, rig: Rig, name: str) -> None:
        self.rig = rig
        self.name = name
        self.netns = f"{rig.prefix}{name}"
        self.path = str(NETNS_RUN_DIR / self.netns)
        #: addresses the rig configured (kept by :meth:`release_addresses`)
        self.static_addresses: set[IPAddress] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._dumper: NetlinkDumper | None = None

    def __repr__(self) -> str:
        return f"<Netns {self.netns}>"

    # -- running code and commands inside -------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a thread that lives in this namespace; return its result.

        Sockets created there belong to this namespace (and can then be used from any
        thread); interface names resolve here; ``/proc/sys/net`` is this namespace's.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"netns-{self.name}",
                initializer=enter_netns,
                initargs=(self.path,),
            )
        return self._executor.submit(fn, *args, **kwargs).result()

    def proxy(self, factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Build ``factory(*args, **kwargs)`` inside the namespace and return a proxy whose
        method calls also run there (pyroute2 objects, ``/proc/sys`` writers ...). The object
        is closed with the rig. ``proxy.target`` is the object itself."""
        # closed through the proxy, i.e. in the namespace's thread: pyroute2 keeps its
        # transport in thread-local storage and only cleans up in the thread that made it
        return self.rig.own(InNetns(self, self.call(factory, *args, **kwargs)))

    def ip(self, *args: str) -> str:
        """``ip -n NETNS ARGS...``; returns stdout."""
        return _ip(args, netns=self.netns)

    def ip_batch(self, commands: Iterable[str]) -> None:
        """Several ``ip`` commands in one process (``ip -n NETNS -batch -``)."""
        _ip((), netns=self.netns, batch="\n".join(commands) + "\n")

    def exec(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion inside the namespace (``ip netns exec``)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def popen(
        self, argv: Sequence[str], *, log: str | None = None, env: dict[str, str] | None = None
    ) -> Process:
        """Start a long-running process inside the namespace (own session; output to a log file)."""
        return self.rig._start(self, argv, log=log, env=env)

    def ping(self, address: str, *, count: int = 1, timeout: float = 2.0) -> bool:
        res = self.exec(
            ["ping", "-n", "-q", "-c", str(count), "-W", str(timeout), address],
            check=False,
            timeout=timeout * count + 5,
        )
        return res.returncode == 0

    # -- sysctl ----------------------------------------------------------------------------

    def sysctl(self, key: str, value: str | int | None = None) -> str:
        """Read (and with ``value``, first write) sysctl ``key`` of this namespace: dotted
        (``net.ipv4.conf.eth0.arp_ignore``) or, for names with dots, a path
        (``net/ipv4/conf/vrrp.51/arp_ignore``)."""
        path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))

        def run() -> str:
            if value is not None:
                Path(path).write_text(f"{value}\n")
            return Path(path).read_text().strip()

        return self.call(run)

    # -- links and addresses ---------------------------------------------------------------

    @property
    def dumper(self) -> NetlinkDumper:
        if self._dumper is None:
            self._dumper = self.call(NetlinkDumper)
        return self._dumper

    def links(self) -> dict[str, Link]:
        return self.dumper.links()

    def link(self, ifname: str) -> Link:
        links = self.links()
        if ifname not in links:
            raise KeyError(f"{self.netns} has no interface {ifname!r} (has {sorted(links)})")
        return links[ifname]

    def ifindex(self, ifname: str) -> int:
        return self.link(ifname).ifindex

    def addresses(self, ifname: str | None = None, family: int = socket.AF_UNSPEC) -> list[Addr]:
        """The addresses (of one interface, or all), fresh from the kernel."""
        addrs = self.dumper.addresses(family)
        if ifname is None:
            return addrs
        index = self.ifindex(ifname)
        return [a for a in addrs if a.ifindex == index]

    def has_address(self, address: str | IPAddress) -> bool:
        ip = ipaddress.ip_address(address)
        return self.dumper.has_address(ip, socket.AF_INET if ip.version == 4 else socket.AF_INET6)

    def link_up(self, ifname: str) -> None:
        self.ip("link", "set", ifname, "up")

    def link_down(self, ifname: str) -> None:
        self.ip("link", "set", ifname, "down")

    def wait_link(self, ifname: str, *, up: bool = True, ipv6: bool = True, timeout: float = 5.0) -> Link:
        """Wait until ``ifname`` is up with carrier (and has its IPv6 link-local), or down."""
        deadline = time.monotonic() + timeout
        while True:
            link = self.links().get(ifname)
            if link is not None and link.up == up:
                if not up or not ipv6:
                    return link
                lls = [
                    a
                    for a in self.addresses(family=socket.AF_INET6)
                    if a.ifindex == link.ifindex and a.ip.is_link_local and not a.flags & IFA_F_TENTATIVE
                ]
                if lls:
                    return link
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.netns}: {ifname} not {'up' if up else 'down'} after {timeout} s")
            time.sleep(0.005)

    def link_local(self, ifname: str) -> ipaddress.IPv6Address:
        for a in self.addresses(ifname, socket.AF_INET6):
            if a.ip.is_link_local:
                assert isinstance(a.ip, ipaddress.IPv6Address)
                return a.ip
        raise LookupError(f"{self.netns}: {ifname} has no IPv6 link-local address")

    def release_addresses(self) -> list[Addr]:
        """Delete every address the rig did not configure (VIPs a killed daemon left behind)."""
        removed: list[Addr] = []
        links = {lk.ifindex: lk.name for lk in self.links().values()}
        for a in self.addresses():
            if a.ip in self.static_addresses or a.ip.is_loopback or a.ip.is_link_local:
                continue
            name = links.get(a.ifindex)
            if name is None:
                continue
            with contextlib.suppress(RuntimeError):  # already gone
                self.ip("addr", "del", str(a.address), "dev", name)
                removed.append(a)
        return removed

    def _close(self) -> None:
        if self._dumper is not None:
            self._dumper.close()
            self._dumper = None
        if self._executor is not None:
            # the worker thread holds a reference to the namespace: end it before deleting
            self._executor.shutdown(wait=True)
            self._executor = None


class InNetns:
    """Forwards method calls on ``target`` to the namespace's thread (see :meth:`Netns.proxy`)."""

    def __init__(self, ns: Netns, target: Any) -> None:
        self.ns = ns
        self.target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.ns.call(attr, *args, **kwargs)

        return call


class Bridge(Netns):
    """A namespace holding one bridge ``br0``; the segment's addressing plan comes with it.

    Hosts on segment ``net`` get MAC ``02:NET:00:00:00:HOST``, ``10.NET.0.HOST/24`` and
    ``fdNET::HOST/64`` (digits copied literally, so host 11 on net 99 is the golden r1).
    """

    def __init__(self, rig: Rig, name: str, net: int) -> None:
        Netns.__init__(self, rig, name)
        self.net = net
        self.ifname = "br0"
        self.ports: list[Port] = []

    def mac(self, host: int) -> str:
        return f"02:{self.net:02d}:00:00:00:{host:02d}"

    def ipv4(self, host: int) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"10.{self.net}.0.{host}/24")

    def ipv6(self, host: int) -> ipaddress.IPv6Interface:
        return ipaddress.IPv6Interface(f"fd{self.net}::{host}/64")

    def address(self, host: int, version: int = 4) -> str:
        """The plain address of ``host`` on this segment (``"10.99.0.11"``/``"fd99::11"``)."""
        return str((self.ipv4(host) if version == 4 else self.ipv6(host)).ip)


@dataclass(eq=False)
class Port:
    """A veth pair: ``ifname`` in ``ns`` plugged into ``bridge`` as ``peer``."""

    ns: Netns
    ifname: str
    bridge: Bridge
    peer: str
    mac: str
    ipv4: ipaddress.IPv4Interface | None
    ipv6: ipaddress.IPv6Interface | None

    def down(self) -> None:
        """Admin-down the router's side (the router sees its interface go down)."""
        self.ns.link_down(self.ifname)

    def up(self) -> None:
        self.ns.link_up(self.ifname)

    def unplug(self) -> None:
        """Down the bridge side: the router keeps IFF_UP but loses carrier (cable pulled)."""
        self.bridge.link_down(self.peer)

    def plug(self) -> None:
        self.bridge.link_up(self.peer)


# --------------------------------------------------------------------------- processes


def _live_group_members(pgid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may contain spaces, so split after the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            out.append(int(entry.name))
    return out


class Process:
    """A process started in a namespace, in its own session (process group = its pid)."""

    def __init__(self, ns: Netns, argv: Sequence[str], log_path: Path, env: dict[str, str] | None) -> None:
        self.ns = ns
        self.argv = list(argv)
        self.log_path = log_path
        with open(log_path, "ab") as logf:
            self.popen = subprocess.Popen(
                ["ip", "netns", "exec", ns.netns, *argv],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        self.pid = self.popen.pid

    def __repr__(self) -> str:
        return f"<Process {self.pid} in {self.ns.name}: {' '.join(self.argv)}>"

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def mark(self) -> int:
        """The current length of the output: pass as ``since`` to wait for what comes next."""
        return len(self.log())

    def wait_log(
        self, pattern: str, *, timeout: float = 10.0, count: int = 1, since: int = 0
    ) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) has appeared ``count`` times in the output
        (after position ``since``, see :meth:`mark`)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            matches = list(rx.finditer(self.log(), since))
            if len(matches) >= count:
                return matches[count - 1]
            if time.monotonic() > deadline or not self.running:
                state = "still running" if self.running else f"exited {self.popen.returncode}"
                raise TimeoutError(
                    f"{pattern!r} x{count} not in output of {self} ({state}) after {timeout} s:\n{self.log()[-3000:]}"
                )
            time.sleep(0.01)

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the main process only."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the whole process group (the main process and its children)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def group_members(self) -> list[int]:
        """Live (non-zombie) processes of the group. Zombies do not count: they hold no
        addresses and send nothing, and orphans may wait a while for init to reap them."""
        return _live_group_members(self.pid)

    def wait_group_gone(self, timeout: float = 5.0) -> bool:
        """Wait until no live process of the group is left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.group_members():
                return True
            time.sleep(0.002)
        return False

    def kill(self) -> int:
        """SIGKILL the whole group (a crash: nothing gets to clean up) and reap the main process."""
        self.signal_group(signal.SIGKILL)
        rc = self.popen.wait()
        self.wait_group_gone()
        return rc

    def stop(self, *, timeout: float = 10.0, signum: int = signal.SIGTERM) -> int | None:
        """Graceful stop: ``signum`` to the main process, wait, then SIGKILL what is left of the group."""
        self.send_signal(signum)
        try:
            rc: int | None = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        self.signal_group(signal.SIGKILL)
        if rc is None:
            rc = self.popen.wait()
        self.wait_group_gone()
        return rc


class VrrpDaemon(Process):
    """Keepalived (or fastka) run as ``-n -l -D -G -P -f CONF -p PID -r PID -c PID`` in a namespace."""

    def __init__(
        self, ns: Netns, program: Sequence[str], config: str, workdir: Path, extra: Sequence[str]
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.config_path = workdir / "keepalived.conf"
        self.config_path.write_text(config)
        self.pid_file = workdir / "main.pid"
        self.vrrp_pid_file = workdir / "vrrp.pid"
        self.checkers_pid_file = workdir / "checkers.pid"
        argv = [
            *program,
            "-n", "-l", "-D", "-G", "-P",
            "-f", str(self.config_path),
            "-p", str(self.pid_file),
            "-r", str(self.vrrp_pid_file),
            "-c", str(self.checkers_pid_file),
            *extra,
        ]  # fmt: skip
        super().__init__(ns, argv, workdir / "output.log", None)

    def vrrp_pid(self, *, timeout: float = 10.0) -> int:
        """The VRRP child's pid (from the ``-r`` file), waiting for it to be written."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int(self.vrrp_pid_file.read_text().strip())
            if time.monotonic() > deadline or not self.running:
                raise TimeoutError(f"{self.vrrp_pid_file} not written:\n{self.log()[-3000:]}")
            time.sleep(0.01)

    def wait_state(
        self, state: str, *, instance: str | None = None, timeout: float = 10.0, since: int = 0
    ) -> None:
        """Wait for ``(INSTANCE) Entering STATE STATE`` in the log (Keepalived's wording)."""
        who = re.escape(f"({instance})") if instance else r"\([^)]*\)"
        self.wait_log(rf"{who} Entering {state} STATE", timeout=timeout, since=since)


# --------------------------------------------------------------------------- FRR vrrpd

FRR_SBIN = Path("/usr/lib/frr")
FRR_USER = "frr"
VTYSH = "vtysh"
_FRR_CRASH_DIR = Path("/var/tmp/frr")  # FRR's per-process scratch dirs <daemon>.<pid> (fixed path)


def virtual_mac(vrid: int, version: int = 4) -> str:
    """RFC 5798's virtual router MAC: ``00:00:5e:00:01:VRID`` (IPv4), ``00:00:5e:00:02:VRID`` (IPv6)."""
    return f"00:00:5e:00:{1 if version == 4 else 2:02x}:{vrid:02x}"


@dataclass(frozen=True)
class FrrVirtualRouter:
    """One (interface, VRID, family) of an FRR configuration and the macvlan vrrpd needs for it."""

    parent: str
    vrid: int
    version: int  # IP version, 4 or 6
    addresses: tuple[IPAddress, ...]

    @property
    def ifname(self) -> str:
        return f"vrrp{self.version}-{self.vrid}"  # at most 10 characters

    @property
    def mac(self) -> str:
        return virtual_mac(self.vrid, self.version)


def frr_virtual_routers(config: str) -> list[FrrVirtualRouter]:
    """The virtual routers of an FRR ``vrrpd.conf`` (``interface IF`` / `` vrrp N ip(v6) ADDR``)."""
    found: dict[tuple[str, int, int], list[IPAddress]] = {}
    parent = None
    for raw in config.splitlines():
        words = raw.split()
        if not words or words[0] == "!":
            continue
        if not raw[0].isspace():
            parent = words[1] if words[0] == "interface" and len(words) > 1 else None
            continue
        if parent and len(words) == 4 and words[0] == "vrrp" and words[2] in ("ip", "ipv6"):
            ip = ipaddress.ip_address(words[3])
            found.setdefault((parent, int(words[1]), ip.version), []).append(ip)
    return [FrrVirtualRouter(p, vrid, ver, tuple(a)) for (p, vrid, ver), a in found.items()]


class FrrVrrpd:
    """FRR's ``zebra`` and ``vrrpd`` (Debian's FRR 8.4), run by hand inside a namespace.

    The Debian package's service never runs (``policy-rc.d`` blocks it at install; nothing
    here uses it). Each instance keeps everything in its own directory: configs (``-f``), pid
    files (``-i``), vty sockets (``--vty_socket``), zebra's API socket (``-z``), and a
    pathspace of its own (``-N``) for whatever default path is left. The daemons drop to
    FRR's user ``frr`` as packaged, so that directory belongs to it. Processes are stopped
    by PID; FRR's scratch directories ``/var/tmp/frr/<daemon>.<pid>`` are removed with them.

    vrrpd cannot run without one macvlan per virtual router and family: bridge mode, the
    virtual MAC, ``addrgenmode random`` (its IPv6 link-local must differ from the parent's),
    the VIPs configured on it. :meth:`start` creates them from the configuration (once its
    link-local exists) and puts them in ``protodown`` before adding the VIPs, so that
    nothing answers for a VIP before vrrpd decides; zebra takes the protodown over. vrrpd
    holds a VIP by taking its macvlan out of protodown (Master) and gives it up by putting
    it back (Backup): an ownership sampler for an FRR router needs ``carrier=True``.

    Example::

        frr = rig.frr(r2, "interface eth0\n vrrp 51 priority 200\n vrrp 51 ip 10.99.0.100\n")
        frr.start()
        frr.wait_status(51, "Master")        # show vrrp json, through vtysh
        frr.crash()                          # SIGKILL; the macvlans go to protodown
    """

    def __init__(self, rig: Rig, ns: Netns, config: str, workdir: Path) -> None:
        self.rig = rig
        self.ns = ns
        self.config = config
        self.dir = workdir
        self.routers = frr_virtual_routers(config)
        self.pathspace = workdir.name
        self.zebra: Process | None = None
        self.vrrpd: Process | None = None
        self._procs: list[tuple[str, Process]] = []
        workdir.mkdir(parents=True)
        # the daemons run as FRR's user: it must reach (not read) the rig's temp dir
        self.rig.tmp.chmod(0o711)
        (workdir / "zebra.conf").write_text(f"hostname {ns.name}\n")
        (workdir / "vrrpd.conf").write_text(config)
        shutil.chown(workdir, FRR_USER, FRR_USER)
        for f in workdir.iterdir():
            shutil.chown(f, FRR_USER, FRR_USER)

    def __repr__(self) -> str:
        return f"<FrrVrrpd in {self.ns.name}: zebra {self.zebra and self.zebra.pid}, vrrpd {self.vrrpd and self.vrrpd.pid}>"

    # -- lifecycle ---------------------------------------------------------------------------

    def _argv(self, daemon: str) -> list[str]:
        return [
            str(FRR_SBIN / daemon),
            "-N", self.pathspace,
            "-u", FRR_USER, "-g", FRR_USER,
            "-f", str(self.dir / f"{daemon}.conf"),
            "-i", str(self.dir / f"{daemon}.pid"),
            "-z", str(self.dir / "zserv.api"),
            "--vty_socket", str(self.dir),
            "-P", "0",  # no TCP vty
            "--log", "stdout", "--log-level", "debug",
        ]  # fmt: skip

    def _macvlans(self) -> None:
        links = self.ns.links()
        new = [vr for vr in self.routers if vr.ifname not in links]
        if new:
            self.ns.ip_batch(
                cmd
                for vr in new
                for cmd in (
                    f"link add {vr.ifname} link {vr.parent} type macvlan mode bridge",
                    # addrgenmode cannot be given to `link add` on every kernel/iproute2 pair
                    f"link set {vr.ifname} address {vr.mac} addrgenmode random",
                    f"link set {vr.ifname} up",
                )
            )
            # as on a router configured long ago: the IPv6 link-local exists (the kernel makes
            # it only once the link has carrier, i.e. not in protodown) ...
            for vr in new:
                self.ns.wait_link(vr.ifname)
        # ... and nothing answers for the VIPs before vrrpd decides
        cmds = [f"link set {vr.ifname} protodown on" for vr in self.routers]
        for vr in new:
            nets = [a.address.network for a in self.ns.addresses(vr.parent)]
            for ip in vr.addresses:
                plen = next((n.prefixlen for n in nets if ip in n), ip.max_prefixlen)
                cmds.append(f"addr add {ip}/{plen} dev {vr.ifname}" + (" nodad" if ip.version == 6 else ""))
        self.ns.ip_batch(cmds)

    def _wait_path(self, path: Path, proc: Process, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if not proc.running or time.monotonic() > deadline:
                raise TimeoutError(f"{path} not created by {proc}:\n{proc.log()[-3000:]}")
            time.sleep(0.01)

    def start(self, *, timeout: float = 10.0) -> FrrVrrpd:
        """Create the macvlans (in protodown), start zebra, then vrrpd; return once vrrpd's vty answers."""
        if self.running:
            raise RuntimeError(f"{self} is running")
        self._macvlans()
        for name in ("zserv.api", "zebra.vty", "vrrpd.vty", "zebra.pid", "vrrpd.pid"):
            (self.dir / name).unlink(missing_ok=True)
        n = len(self.rig.processes)
        self.zebra = self.ns.popen(self._argv("zebra"), log=f"{self.dir.name}/zebra-{n}.log")
        self._procs.append(("zebra", self.zebra))
        self._wait_path(self.dir / "zserv.api", self.zebra, timeout)
        self.vrrpd = self.ns.popen(self._argv("vrrpd"), log=f"{self.dir.name}/vrrpd-{n}.log")
        self._procs.append(("vrrpd", self.vrrpd))
        self._wait_path(self.dir / "vrrpd.vty", self.vrrpd, timeout)
        return self

    @property
    def running(self) -> bool:
        return any(p is not None and p.running for p in (self.zebra, self.vrrpd))

    def stop(self, *, timeout: float = 10.0) -> None:
        """Graceful stop: SIGTERM vrrpd (a Master sends priority 0 and asks zebra for protodown),
        then zebra."""
        for p in (self.vrrpd, self.zebra):
            if p is not None:
                p.stop(timeout=timeout)
        self._clean_scratch()

    def crash(self) -> None:
        """SIGKILL vrrpd and zebra (nothing gets to clean up), then put the macvlans in protodown:
        the host died and its VIPs with it (as :meth:`Rig.crash` drops a dead daemon's VIPs)."""
        for p in (self.vrrpd, self.zebra):
            if p is not None:
                p.kill()
        self._clean_scratch()
        self.ns.ip_batch([f"link set {vr.ifname} protodown on" for vr in self.routers])

    def _clean_scratch(self) -> None:
        for daemon, p in self._procs:
            if not p.running:
                shutil.rmtree(_FRR_CRASH_DIR / f"{daemon}.{p.pid}", ignore_errors=True)

    def close(self) -> None:
        """Kill both daemons (the rig's cleanup); FRR's scratch directories go with them."""
        for p in (self.vrrpd, self.zebra):
            if p is not None:
                with contextlib.suppress(Exception):
                    p.kill()
        self._clean_scratch()

    # -- state ---------------------------------------------------------------------------------

    def vtysh(self, *commands: str, daemon: str = "vrrpd", check: bool = True, timeout: float = 10.0) -> str:
        """Run ``vtysh -c CMD ...`` in the namespace against this instance's vty sockets; return
        its output (with ``check``, raise if vtysh fails, e.g. on an unknown command)."""
        argv = [VTYSH, "--vty_socket", str(self.dir), "-d", daemon]
        for c in commands:
            argv += ["-c", c]
        res = self.ns.exec(argv, check=False, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stdout}{res.stderr}")
        return res.stdout + res.stderr

    def show_vrrp(self) -> list[dict[str, Any]]:
        """``show vrrp json``: one object per VRID, with ``v4`` and ``v6`` halves."""
        import json

        return list(json.loads(self.vtysh("show vrrp json")))

    def router(self, vrid: int, version: int = 4) -> dict[str, Any]:
        """The ``v4``/``v6`` half of VRID ``vrid`` in ``show vrrp json`` (``status``, ``stats`` ...)."""
        for vr in self.show_vrrp():
            if vr["vrid"] == vrid:
                return dict(vr[f"v{version}"])
        raise KeyError(f"{self}: no VRID {vrid}")

    def status(self, vrid: int, version: int = 4) -> str:
        """``Initialize``, ``Backup`` or ``Master``."""
        return str(self.router(vrid, version)["status"])

    def wait_status(self, vrid: int, status: str, version: int = 4, *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            got = self.status(vrid, version)
            if got == status:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self}: VRID {vrid} IPv{version} is {got}, not {status}, after {timeout} s"
                )
            time.sleep(0.05)

    def log(self, daemon: str = "vrrpd") -> str:
        """The output of every run of ``daemon`` so far (vrrpd logs ``debug vrrp ...`` lines
        when the configuration asks for them)."""
        return "".join(p.log() for d, p in self._procs if d == daemon)

    def mark(self) -> int:
        """The current length of :meth:`log`: pass as ``since`` to :meth:`wait_log`."""
        return len(self.log())

    def wait_log(self, pattern: str, *, timeout: float = 10.0, since: int = 0) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) appears in vrrpd's output after position ``since``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log(), since)
            if m is not None:
                return m
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{pattern!r} not in vrrpd's output after {timeout} s:\n{self.log()[-3000:]}"
                )
            time.sleep(0.02)


# --------------------------------------------------------------------------- capture


@dataclass(frozen=True, slots=True)
class Frame:
    """A captured Ethernet frame; ``t`` is ``time.monotonic()`` time of the kernel timestamp."""

    t: float
    data: bytes

    @property
    def ethertype(self) -> int:
        return int.from_bytes(self.data[12:14], "big")

    @property
    def src_mac(self) -> str:
        return ":".join(f"{b:02x}" for b in self.data[6:12])

    @property
    def ip_proto(self) -> int | None:
        """IPv4 protocol / IPv6 next header (no extension headers), else None."""
        if self.ethertype == 0x0800 and len(self.data) >= 34:
            return self.data[23]
        if self.ethertype == 0x86DD and len(self.data) >= 54:
            return self.data[20]
        return None

    @property
    def is_vrrp(self) -> bool:
        return self.ip_proto in (112, 51)

    @property
    def is_garp(self) -> bool:
        """ARP request with sender IP == target IP (Keepalived's gratuitous ARP)."""
        d = self.data
        return self.ethertype == 0x0806 and len(d) >= 42 and d[20:22] == b"\0\1" and d[28:32] == d[38:42]

    @property
    def is_unsolicited_na(self) -> bool:
        d = self.data
        return (
            self.ip_proto == 58
            and len(d) >= 78
            and d[54] == 136
            and d[38:54] == ipaddress.IPv6Address("ff02::1").packed
        )


PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC, SOL_PACKET = 1, 1, 263
SO_TIMESTAMPNS = 35


class Capture:
    """Frames seen on ``ifname`` (default the bridge) of ``ns``, read by an AF_PACKET socket.

    The interface is put in promiscuous mode for the socket's lifetime, so a bridge also
    shows unicast frames between two of its ports. Start/stop as a context manager.
    """

    def __init__(self, ns: Netns, ifname: str = "br0") -> None:
        self.ns = ns
        self.ifname = ifname
        self.frames: list[Frame] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._offset = time.time() - time.monotonic()

        def open_sock() -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.htons(0x0003))
            s.bind((ifname, 0x0003))
            index = socket.if_nametoindex(ifname)
            s.setsockopt(
                SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("=iHH8s", index, PACKET_MR_PROMISC, 0, b"")
            )
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            return s

        self.sock = ns.call(open_sock)

    def start(self) -> Capture:
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.ns.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(20):
                continue
            while True:
                try:
                    data, anc, _flags, addr = self.sock.recvmsg(65536, 64, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:
                    return
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                t = time.monotonic()
                for level, typ, val in anc:
                    if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("=qq", val[:16])
                        t = sec + nsec / 1e9 - self._offset
                with self._cond:
                    self.frames.append(Frame(t, data))
                    self._cond.notify_all()

    def stop(self) -> list[Frame]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.sock.close()
        return self.frames

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def select(self, pred: Callable[[Frame], bool]) -> list[Frame]:
        with self._cond:
            return [f for f in self.frames if pred(f)]

    def wait(self, pred: Callable[[Frame], bool], *, count: int = 1, timeout: float = 5.0) -> list[Frame]:
        """Wait until ``count`` frames match ``pred``; return all matching frames."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [f for f in self.frames if pred(f)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(got)}/{count} matching frames after {timeout} s")
                self._cond.wait(min(left, 0.05))

    def write_pcap(self, path: str | Path) -> None:
        """Write what was captured as a classic pcap (for tshark/tcpdump -r when debugging)."""
        with open(path, "wb") as f:
            f.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
            for fr in list(self.frames):
                real = fr.t + self._offset
                f.write(struct.pack("=IIII", int(real), int((real % 1) * 1e6), len(fr.data), len(fr.data)))
                f.write(fr.data)


# --------------------------------------------------------------------------- VIP ownership


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    owners: frozenset[str]


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of samples with the same owners: from ``start`` to the first sample after it."""

    start: float
    end: float
    owners: frozenset[str]

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Timeline:
    """What the sampler saw: which namespaces held ``address`` at each sample."""

    address: str
    interval: float
    samples: list[Sample] = field(default_factory=list)

    def segments(self) -> list[Segment]:
        out: list[Segment] = []
        for s in self.samples:
            if out and out[-1].owners == s.owners:
                continue
            if out:
                out[-1] = Segment(out[-1].start, s.t, out[-1].owners)
            out.append(Segment(s.t, s.t, s.owners))
        if out and self.samples:
            out[-1] = Segment(out[-1].start, self.samples[-1].t, out[-1].owners)
        return out

    def overlaps(self) -> list[Segment]:
        """Segments where more than one namespace held the address (split brain)."""
        return [s for s in self.segments() if len(s.owners) > 1]

    def gaps(self, *, after: float | None = None) -> list[Segment]:
        """Segments where nobody held it (optionally only those starting after ``after``)."""
        return [s for s in self.segments() if not s.owners and (after is None or s.start >= after)]

    def owner_at(self, t: float) -> frozenset[str]:
        last: frozenset[str] = frozenset()
        for s in self.samples:
            if s.t > t:
                break
            last = s.owners
        return last

    @property
    def final_owners(self) -> frozenset[str]:
        return self.samples[-1].owners if self.samples else frozenset()

    def owners_sequence(self) -> list[frozenset[str]]:
        """The owner sets in order, consecutive duplicates removed."""
        return [s.owners for s in self.segments()]

    def first_time(self, owner: str, *, after: float = 0.0) -> float | None:
        """When ``owner`` was first seen holding the address (at or after ``after``)."""
        for s in self.samples:
            if s.t >= after and owner in s.owners:
                return s.t
        return None

    def assert_one_owner(
        self, *, max_overlap: float, max_gap: float | None = None, after: float | None = None
    ) -> None:
        """No overlap longer than ``max_overlap`` s; with ``max_gap``, no ownerless stretch
        longer than it after the first owner appeared (or after ``after``)."""
        problems: list[str] = []
        for seg in self.overlaps():
            if seg.duration > max_overlap:
                problems.append(
                    f"{sorted(seg.owners)} held {self.address} together for {seg.duration * 1000:.1f} ms"
                )
        if max_gap is not None:
            start = after
            if start is None:
                start = next((s.t for s in self.samples if s.owners), None)
            if start is not None:
                for seg in self.gaps(after=start):
                    if seg.duration > max_gap:
                        problems.append(f"nobody held {self.address} for {seg.duration * 1000:.1f} ms")
        assert not problems, "; ".join(problems) + "\n" + str(self)

    def __str__(self) -> str:
        if not self.samples:
            return f"{self.address}: no samples"
        t0 = self.samples[0].t
        rows = [
            f"{self.address} ownership ({len(self.samples)} samples, every {self.interval * 1000:.0f} ms):"
        ]
        for seg in self.segments():
            who = ",".join(sorted(seg.owners)) or "-"
            rows.append(f"  {seg.start - t0:8.3f} s  +{seg.duration * 1000:8.1f} ms  {who}")
        return "\n".join(rows)


class OwnershipSampler:
    """Polls which of ``namespaces`` hold ``address`` every ``interval`` s into a :class:`Timeline`.

    Runs in a thread with its own netlink socket per namespace. Use as a context manager
    (``with rig.sampler(...) as s:``) or ``start()``/``stop()``; ``timeline`` grows live.
    With ``carrier``, an address counts only on an interface that is up with carrier:
    FRR's vrrpd keeps the VIPs configured and puts their macvlan in protodown (no carrier)
    while Backup.
    """

    def __init__(
        self, address: str, namespaces: Sequence[Netns], *, interval: float = 0.01, carrier: bool = False
    ) -> None:
        self.address = ipaddress.ip_address(address)
        self.family = socket.AF_INET if self.address.version == 4 else socket.AF_INET6
        self.namespaces = list(namespaces)
        self.interval = interval
        self.carrier = carrier
        self.timeline = Timeline(str(self.address), interval)
        self._dumpers = [ns.call(NetlinkDumper) for ns in self.namespaces]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> Sample:
        t = time.monotonic()
        owners = frozenset(
            ns.name
            for ns, d in zip(self.namespaces, self._dumpers, strict=True)
            if d.has_address(self.address, self.family, carrier=self.carrier)
        )
        s = Sample(t, owners)
        self.timeline.samples.append(s)
        return s

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.sample()
            next_t += self.interval
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind (a busy machine): skip ticks rather than bunch them
                next_t = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def start(self) -> OwnershipSampler:
        self._thread = threading.Thread(target=self._run, name=f"sampler-{self.address}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Timeline:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for d in self._dumpers:
            d.close()
        self._dumpers = []
        return self.timeline

    def wait_owner(self, owners: Iterable[str], *, timeout: float = 10.0) -> float:
        """Wait until exactly ``owners`` hold the address -- judged from the latest sample
        taken before the call onwards, never from older history; return the sample time."""
        want = frozenset(owners)
        deadline = time.monotonic() + timeout
        seen = max(len(self.timeline.samples) - 1, 0)
        while time.monotonic() < deadline:
            samples = self.timeline.samples
            for s in samples[seen:]:
                if s.owners == want:
                    return s.t
            seen = len(samples)
            time.sleep(self.interval / 2)
        raise TimeoutError(
            f"{self.address} not held by exactly {sorted(want)} after {timeout} s\n{self.timeline}"
        )

    def __enter__(self) -> OwnershipSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Lan(NamedTuple):
    """The golden topology (the ``lan`` fixture): bridge ``lan``, routers r1 (host 11), r2 (host 12)."""

    rig: Rig
    lan: Bridge
    r1: Netns
    r2: Netns


# --------------------------------------------------------------------------- golden captures


def golden_dir() -> Path:
    """Keepalived 2.2.7's captures (``vrrp-golden`` in the shared reference material)."""
    return Path(_root.shared_path("vrrp-golden"))


def golden(name: str) -> dict[str, Any]:
    """``NAME.expected.json`` of a golden scenario (frames as hex, decoded fields)."""
    import json

    return dict(json.loads((golden_dir() / f"{name}.expected.json").read_text()))


# --------------------------------------------------------------------------- the rig

_live_rigs: weakref.WeakSet[Rig] = weakref.WeakSet()


class Rig:
    """Owns namespaces, processes, captures and samplers; :meth:`close` removes everything."""

    def __init__(self) -> None:
        self.prefix = f"{PREFIX}{os.getpid()}-{next(_counter)}-"
        self.tmp = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.namespaces: dict[str, Netns] = {}
        self.processes: list[Process] = []
        self.captures: list[Capture] = []
        self.samplers: list[OwnershipSampler] = []
        self._owned: list[Any] = []
        self.closed = False
        _live_rigs.add(self)

    def __enter__(self) -> Rig:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- topology --------------------------------------------------------------------------

    def namespace(self, name: str) -> Netns:
        """A new, empty namespace (``lo`` up, DAD and router solicitations off)."""
        return self._add(Netns(self, name))

    def _add(self, ns: T) -> T:
        assert isinstance(ns, Netns)
        if ns.name in self.namespaces:
            raise ValueError(f"namespace {ns.name!r} exists in this rig")
        if len(ns.netns) > 200 or "/" in ns.name:
            raise ValueError(f"bad namespace name {ns.name!r}")
        self.namespaces[ns.name] = ns
        _ip(("netns", "add", ns.netns))

        def setup() -> None:
            for key, val in (
                ("ipv6/conf/all/accept_dad", 0),
                ("ipv6/conf/default/accept_dad", 0),
                ("ipv6/conf/all/router_solicitations", 0),
                ("ipv6/conf/default/router_solicitations", 0),
            ):
                Path(f"/proc/sys/net/{key}").write_text(f"{val}\n")

        ns.call(setup)
        ns.ip("link", "set", "lo", "up")
        return ns

    def bridge(self, name: str = "lan", *, net: int = 99) -> Bridge:
        """A namespace with bridge ``br0`` (no STP, no forward delay, no multicast snooping)."""
        br = self._add(Bridge(self, name, net))
        br.ip_batch(
            [
                "link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
                "link set br0 up",
            ]
        )
        return br

    def connect(
        self,
        ns: Netns,
        bridge: Bridge,
        *,
        ifname: str = "eth0",
        mac: str | None = None,
        ipv4: str | ipaddress.IPv4Interface | None = None,
        ipv6: str | ipaddress.IPv6Interface | None = None,
        wait: bool = True,
    ) -> Port:
        """Plug ``ns`` into ``bridge`` with a veth pair; ``ifname`` gets ``mac`` and the addresses."""
        peer = f"{ns.name}-{ifname}"[:15]
        if any(p.peer == peer for p in bridge.ports):
            peer = f"p{len(bridge.ports)}-{ns.name}"[:15]
        v4 = ipaddress.IPv4Interface(ipv4) if ipv4 is not None else None
        v6 = ipaddress.IPv6Interface(ipv6) if ipv6 is not None else None
        mac_arg = f" address {mac}" if mac else ""
        bridge.ip_batch(
            [
                f"link add {peer} type veth peer name {ifname}{mac_arg} netns {ns.netns}",
                f"link set {peer} master br0 up",
            ]
        )
        cmds = []
        if v4 is not None:
            cmds.append(f"addr add {v4} dev {ifname}")
            ns.static_addresses.add(v4.ip)
        if v6 is not None:
            cmds.append(f"addr add {v6} dev {ifname} nodad")
            ns.static_addresses.add(v6.ip)
        cmds.append(f"link set {ifname} up")
        ns.ip_batch(cmds)
        port = Port(ns, ifname, bridge, peer, mac or ns.link(ifname).mac, v4, v6)
        bridge.ports.append(port)
        if wait:
            ns.wait_link(ifname)
        return port

    def router(self, name: str, lan: Bridge, *, host: int, ifname: str = "eth0") -> Netns:
        """A namespace plugged into ``lan`` as host ``host`` (MAC/IPv4/IPv6 from the lan's plan)."""
        ns = self.namespace(name)
        self.connect(ns, lan, ifname=ifname, mac=lan.mac(host), ipv4=lan.ipv4(host), ipv6=lan.ipv6(host))
        return ns

    # -- processes -------------------------------------------------------------------------

    def _start(
        self, ns: Netns, argv: Sequence[str], *, log: str | None, env: dict[str, str] | None
    ) -> Process:
        name = log or f"{ns.name}-{Path(argv[0]).name}-{len(self.processes)}.log"
        proc = Process(ns, argv, self.tmp / name, env)
        self.processes.append(proc)
        return proc

    def keepalived(self, ns: Netns, config: str, *, extra: Sequence[str] = ()) -> VrrpDaemon:
        """Start real Keepalived (VRRP only) in ``ns`` with ``config``; pid files in a temp dir."""
        require_tool(KEEPALIVED)
        return self._daemon(ns, [KEEPALIVED], config, extra)

    def fastka(self, ns: Netns, config: str, *, extra: Sequence[str] = ()) -> VrrpDaemon:
        """Start fastka with exactly Keepalived's command line (``python -m fastka``)."""
        return self._daemon(ns, [sys.executable, "-m", "fastka"], config, extra)

    def _daemon(self, ns: Netns, program: Sequence[str], config: str, extra: Sequence[str]) -> VrrpDaemon:
        workdir = self.tmp / f"{ns.name}-{Path(program[-1]).name}-{len(self.processes)}"
        proc = VrrpDaemon(ns, program, config, workdir, extra)
        self.processes.append(proc)
        return proc

    def frr(self, ns: Netns, config: str) -> FrrVrrpd:
        """FRR's zebra + vrrpd in ``ns`` with ``config`` as ``vrrpd.conf`` (unstarted: call ``start()``)."""
        require_tool(str(FRR_SBIN / "vrrpd"))
        require_tool(VTYSH)
        n = sum(1 for o in self._owned if isinstance(o, FrrVrrpd))
        return self.own(FrrVrrpd(self, ns, config, self.tmp / f"{ns.name}-frr-{n}"))

    def crash(self, proc: Process, *, release: bool = True) -> None:
        """SIGKILL ``proc``'s whole group; with ``release``, drop the addresses it left behind
        in its namespace, as if the host had died with it (the VIP sampler then sees it gone)."""
        proc.kill()
        if release:
            proc.ns.release_addresses()

    # -- observers -------------------------------------------------------------------------

    def capture(self, ns: Netns, ifname: str = "br0") -> Capture:
        """Start capturing on ``ifname`` of ``ns`` (a bridge namespace by default)."""
        cap = Capture(ns, ifname).start()
        self.captures.append(cap)
        return cap

    def sampler(
        self, address: str, namespaces: Sequence[Netns], *, interval: float = 0.01, carrier: bool = False
    ) -> OwnershipSampler:
        """An (unstarted) VIP ownership sampler; use ``with rig.sampler(...) as s:``."""
        s = OwnershipSampler(address, namespaces, interval=interval, carrier=carrier)
        self.samplers.append(s)
        return s

    # -- cleanup ---------------------------------------------------------------------------

    def own(self, obj: T) -> T:
        """Close ``obj`` (anything with ``close()``: sockets, fastka objects) when the rig closes."""
        self._owned.append(obj)
        return obj

    def close(self) -> None:
        """Stop everything and delete every namespace and temp file. Idempotent; never raises."""
        if self.closed:
            return
        self.closed = True
        for obj in reversed(self._owned):
            with contextlib.suppress(Exception):
                obj.close()
        for s in self.samplers:
            with contextlib.suppress(Exception):
                s.stop()
        for c in self.captures:
            with contextlib.suppress(Exception):
                c.stop()
        for p in self.processes:
            with contextlib.suppress(Exception):
                p.kill()
        for ns in self.namespaces.values():
            with contextlib.suppress(Exception):
                ns._close()
        for ns in self.namespaces.values():
            _delete_netns(ns.netns)
        if os.environ.get("FASTKA_RIG_KEEP", "") in ("", "0"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"rig: kept {self.tmp}", file=sys.stderr)
        _live_rigs.discard(self)


def _delete_netns(name: str) -> bool:
    """Delete namespace ``name``: kill whatever still runs in it, then ``ip netns del``."""
    path = NETNS_RUN_DIR / name
    if not path.exists():
        return False
    with contextlib.suppress(Exception):
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
    res = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
    return res.returncode == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rig_namespaces() -> list[str]:
    """All namespaces named like the rig's (``fkt-<pid>-...``), from any run."""
    if not NETNS_RUN_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_RUN_DIR.iterdir() if re.fullmatch(rf"{PREFIX}\d+-.*", p.name))


def remove_stale_namespaces() -> list[str]:
    """Delete rig namespaces (and temp dirs) whose creating process is gone (killed runs)."""
    removed = []
    for name in rig_namespaces():
        pid = int(name[len(PREFIX) :].split("-", 1)[0])
        if pid != os.getpid() and not _pid_alive(pid) and _delete_netns(name):
            removed.append(name)
    tmp = Path(tempfile.gettempdir())
    for d in tmp.glob(f"{PREFIX}*"):
        m = re.match(rf"{PREFIX}(\d+)-", d.name)
        if m and d.is_dir() and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)
    return removed


def cleanup_all() -> None:
    """Close every live rig of this process (atexit and the signal guard call this)."""
    for rig in list(_live_rigs):
        rig.close()


atexit.register(cleanup_all)


def install_signal_guard() -> Callable[[], None]:
    """On SIGTERM/SIGHUP: close all rigs, then raise KeyboardInterrupt so pytest unwinds.

    Returns a function that restores the previous handlers.
    """
    previous: dict[int, Any] = {}

    def handler(signum: int, _frame: object) -> None:
        cleanup_all()
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, h in previous.items():
            signal.signal(sig, h)

    return restore


__all__ = [
    "KEEPALIVED",
    "PREFIX",
    "Addr",
    "Bridge",
    "Capture",
    "Frame",
    "FrrVirtualRouter",
    "FrrVrrpd",
    "InNetns",
    "Lan",
    "Link",
    "NetlinkDumper",
    "Netns",
    "OwnershipSampler",
    "Port",
    "Process",
    "Rig",
    "Sample",
    "Segment",
    "Timeline",
    "VrrpDaemon",
    "cleanup_all",
    "frr_virtual_routers",
    "golden",
    "golden_dir",
    "install_signal_guard",
    "remove_stale_namespaces",
    "require_netns",
    "require_root",
    "require_tool",
    "rig_namespaces",
    "virtual_mac",
]
