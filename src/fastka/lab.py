"""``fastka lab``: a self-contained VRRP demo in network namespaces (needs root).

Builds a small LAN -- a bridge, two or three routers and a client, each in its own
network namespace, nothing touching the host's interfaces -- runs fastka on the routers
(and the real Keepalived on one of them when it is installed), then fails the master
three ways and prints a timeline: who holds the virtual IP, when it moved, how many of
the client's pings (every 20 ms) were lost.

1. the master's host dies (its link goes down and its daemon is killed): the backups
   notice after Master_Down_Interval;
2. it comes back and takes its VIP back (preemption);
3. it is stopped cleanly (SIGTERM): a priority-0 advert hands over after Skew_Time only.

Everything it made is removed at the end, also on Ctrl-C. ``--keep`` leaves the
namespaces and logs for a look around (``ip netns list``).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastka._linux import enter_netns

__all__ = ["main"]

KEEPALIVED = "/usr/sbin/keepalived"
VIP = "10.99.0.100"
NET = "10.99.0"


# --------------------------------------------------------------------------- namespaces


def _run(*args: str, check: bool = True, input: str | None = None) -> str:
    res = subprocess.run(list(args), capture_output=True, text=True, input=input)
    if check and res.returncode:
        raise RuntimeError(f"{' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def _in_netns(netns: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a thread that entered ``netns``; sockets made there stay in it."""
    out: list[Any] = []
    err: list[BaseException] = []

    def body() -> None:
        try:
            enter_netns(netns)
            out.append(fn())
        except BaseException as exc:
            err.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


class _AddrDump:
    """Which addresses a namespace has, by a hand-made RTM_GETADDR dump (fast to poll)."""

    def __init__(self, netns: str) -> None:
        self.sock: socket.socket = _in_netns(
            netns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        )
        self.sock.bind((0, 0))
        self.seq = 0

    def has(self, addr: bytes) -> bool:
        self.seq += 1
        req = struct.pack("=IHHII", 24, 22, 0x301, self.seq, 0) + struct.pack(
            "=BBBBI", socket.AF_INET, 0, 0, 0, 0
        )
        self.sock.send(req)
        found = False
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, mtype = struct.unpack_from("=IH", data, off)
                if mtype == 3 or length < 16:  # NLMSG_DONE
                    return found
                if mtype == 20:
                    a = off + 16 + 8
                    end = off + length
                    while a + 4 <= end:
                        alen, atype = struct.unpack_from("=HH", data, a)
                        if alen < 4:
                            break
                        if atype in (1, 2) and data[a + 4 : a + alen] == addr:
                            found = True
                        a += (alen + 3) & ~3
                off += (length + 3) & ~3

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- the lab


@dataclass
class Router:
    name: str
    host: int
    kind: str  # "fastka" | "keepalived"
    priority: int
    netns: str = ""
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path = Path()
    dump: _AddrDump | None = None

    @property
    def address(self) -> str:
        return f"{NET}.{self.host}"


@dataclass
class Lab:
    routers: list[Router]
    advert_int: float
    keep: bool = False
    prefix: str = field(default_factory=lambda: f"fklab{os.getpid()}-")
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fastka-lab-")))
    namespaces: list[str] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    owner: str = "-"
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    pings: dict[int, tuple[float, float | None]] = field(default_factory=dict)

    # -- output --------------------------------------------------------------------------

    def say(self, text: str) -> None:
        t = time.monotonic() - self.t0
        self.events.append((t, text))
        print(f"  {t:7.3f} s  {text}", flush=True)

    # -- building ------------------------------------------------------------------------

    def ns(self, name: str) -> str:
        full = self.prefix + name
        _run("ip", "netns", "add", full)
        self.namespaces.append(full)
        _run("ip", "-n", full, "link", "set", "lo", "up")
        return full

    def build(self) -> None:
        lan = self.ns("lan")
        _run("ip", "-n", lan, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        _run("ip", "-n", lan, "link", "set", "br0", "up")
        for r in self.routers:
            r.netns = self.ns(r.name)
            self._plug(lan, r.netns, r.name, r.host)
        client = self.ns("client")
        self._plug(lan, client, "client", 50)

    def _plug(self, lan: str, netns: str, name: str, host: int) -> None:
        peer = f"{name}-eth0"[:15]
        _run("ip", "-n", lan, "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _run("ip", "-n", lan, "link", "set", peer, "master", "br0", "up")
        _run("ip", "-n", netns, "link", "set", "eth0", "address", f"02:99:00:00:00:{host:02x}")
        _run("ip", "-n", netns, "addr", "add", f"{NET}.{host}/24", "dev", "eth0")
        _run("ip", "-n", netns, "link", "set", "eth0", "up")

    def config(self, r: Router) -> str:
        return (
            f"global_defs {{\n    router_id {r.name}\n    vrrp_version 3\n}}\n"
            f"vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n"
            f"    priority {r.priority}\n    advert_int {self.advert_int:g}\n"
            f"    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n"
        )

    def start(self, r: Router) -> None:
        r.workdir = self.tmp / r.name
        r.workdir.mkdir(exist_ok=True)
        conf = r.workdir / "keepalived.conf"
        conf.write_text(self.config(r))
        program = [sys.executable, "-m", "fastka"] if r.kind == "fastka" else [KEEPALIVED]
        argv = [
            *program, "-n", "-l", "-D", "-G", "-P", "-f", str(conf),
            "-p", str(r.workdir / "main.pid"), "-r", str(r.workdir / "vrrp.pid"), "-c", str(r.workdir / "check.pid"),
        ]  # fmt: skip
        with open(r.workdir / "output.log", "ab") as log:
            r.proc = subprocess.Popen(
                ["ip", "netns", "exec", r.netns, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, r: Router) -> None:
        if r.proc is not None and r.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(r.proc.pid, signal.SIGKILL)
            r.proc.wait()

    def terminate(self, r: Router) -> None:
        if r.proc is not None and r.proc.poll() is None:
            r.proc.send_signal(signal.SIGTERM)
            try:
                r.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill(r)

    # -- observing -----------------------------------------------------------------------

    def _watch_owner(self) -> None:
        vip = ipaddress.IPv4Address(VIP).packed
        for r in self.routers:
            r.dump = _AddrDump(r.netns)
        while not self._stop.is_set():
            owners = [r.name for r in self.routers if r.dump is not None and r.dump.has(vip)]
            owner = ",".join(owners) or "-"
            if owner != self.owner:
                self.owner = owner
                self.say(f"{VIP} now on {owner}" if owners else f"{VIP} on no router")
            time.sleep(0.005)

    def _ping(self) -> None:
        sock: socket.socket = _in_netns(
            self.prefix + "client",
            lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
        )
        sock.settimeout(0.01)
        ident = os.getpid() & 0xFFFF
        seq = 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_t:
                seq = (seq + 1) & 0xFFFF
                body = struct.pack("!d", now) + bytes(24)
                hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
                csum = _checksum(hdr + body)
                with contextlib.suppress(OSError):
                    sock.sendto(struct.pack("!BBHHH", 8, 0, csum, ident, seq) + body, (VIP, 0))
                self.pings[seq] = (now, None)
                next_t += 0.02
            try:
                data = sock.recv(2048)
            except (TimeoutError, BlockingIOError):
                continue
            ihl = (data[0] & 0x0F) * 4
            if len(data) >= ihl + 8 and data[ihl] == 0:
                rid, rseq = struct.unpack_from("!HH", data, ihl + 4)
                if rid == ident and rseq in self.pings and self.pings[rseq][1] is None:
                    self.pings[rseq] = (self.pings[rseq][0], time.monotonic())
        sock.close()

    def observe(self) -> None:
        for fn in (self._watch_owner, self._ping):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)

    def lost_between(self, a: float, b: float) -> tuple[int, int, float]:
        """(sent, lost, longest gap without replies) for pings sent between a and b."""
        sent = [(t, r) for t, r in self.pings.values() if a <= t < b]
        lost = sum(1 for _, r in sent if r is None)
        gap, last = 0.0, None
        for t, r in sorted(sent):
            if r is None:
                if last is None:
                    last = t
                gap = max(gap, t - last + 0.02)
            else:
                last = None
        return len(sent), lost, gap

    # -- the story -----------------------------------------------------------------------

    def wait_owner(self, name: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while self.owner != name:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{VIP} did not move to {name} in {timeout:g} s")
            time.sleep(0.005)
        return time.monotonic()

    def run(self) -> None:
        print(f"fastka lab: {len(self.routers)} routers and a client on one LAN, VIP {VIP}, "
              f"VRRPv3 every {self.advert_int:g} s")  # fmt: skip
        for r in self.routers:
            what = "Keepalived " + _keepalived_version() if r.kind == "keepalived" else "fastka"
            print(f"    {r.name}  {r.address:<11} priority {r.priority:<3}  {what}")
        print(f"    client {NET}.50  pings {VIP} every 20 ms")
        print()
        self.build()
        self.t0 = time.monotonic()
        self.observe()
        self.say("starting the routers")
        for r in self.routers:
            self.start(r)
        master = max(self.routers, key=lambda r: r.priority)
        backup = sorted(self.routers, key=lambda r: -r.priority)[1]
        self.wait_owner(master.name)
        time.sleep(1.0)
        phases: list[tuple[str, float, float]] = []

        self.say(f"{master.name} fails: its link goes down and its {master.kind} dies (SIGKILL)")
        t = time.monotonic()
        _run("ip", "-n", master.netns, "link", "set", "eth0", "down")
        self.kill(master)
        # a dead host holds nothing: drop what the killed daemon could not remove
        _run("ip", "-n", master.netns, "addr", "del", f"{VIP}/24", "dev", "eth0", check=False)
        self.wait_owner(backup.name)
        time.sleep(0.5)
        phases.append(("host failure", t, time.monotonic()))

        self.say(f"{master.name} comes back")
        t = time.monotonic()
        _run("ip", "-n", master.netns, "link", "set", "eth0", "up")
        self.start(master)
        self.wait_owner(master.name)
        time.sleep(0.5)
        phases.append(("preemption back", t, time.monotonic()))

        self.say(f"{master.name} is stopped cleanly (SIGTERM: priority 0 advert)")
        t = time.monotonic()
        self.terminate(master)
        self.wait_owner(backup.name)
        time.sleep(0.5)
        phases.append(("clean stop", t, time.monotonic()))
        self._stop.set()
        for th in self._threads:
            th.join(2)

        print()
        mdi = 3 * self.advert_int + (256 - backup.priority) * self.advert_int / 256
        print(f"Master_Down_Interval of {backup.name} (priority {backup.priority}): {mdi * 1000:.0f} ms; "
              f"Skew_Time {(mdi - 3 * self.advert_int) * 1000:.0f} ms")  # fmt: skip
        print(f"{'phase':<16} {'VIP moved after':>15} {'pings sent':>11} {'lost':>5} {'longest gap':>12}")
        for name, a, b in phases:
            moved = next((et for et, text in self.events if et >= a - self.t0 and "now on" in text), None)
            sent, lost, gap = self.lost_between(a, b)
            after = f"{(moved - (a - self.t0)) * 1000:.0f} ms" if moved is not None else "-"
            print(f"{name:<16} {after:>15} {sent:>11} {lost:>5} {gap * 1000:>9.0f} ms")
        print()
        print(f"logs: {self.tmp}" if self.keep else "(run with --keep to look at the routers' logs)")

    def close(self) -> None:
        self._stop.set()
        for r in self.routers:
            with contextlib.suppress(Exception):
                self.kill(r)
            if r.dump is not None:
                r.dump.close()
        if self.keep:
            return
        for ns in reversed(self.namespaces):
            pids = _run("ip", "netns", "pids", ns, check=False).split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _keepalived_version() -> str:
    try:
        out = subprocess.run([KEEPALIVED, "-v"], capture_output=True, text=True, timeout=5)
    except OSError:
        return ""
    words = (out.stderr or out.stdout).split()
    return words[1] if len(words) > 1 else ""


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fastka lab", description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--routers", type=int, choices=(2, 3), default=3, help="how many routers (default 3)")
    p.add_argument(
        "--advert-int", type=float, default=0.1, help="VRRPv3 advert interval in seconds (default 0.1)"
    )
    p.add_argument("--no-keepalived", action="store_true", help="fastka on every router")
    p.add_argument("--keep", action="store_true", help="leave the namespaces and logs behind")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("fastka lab: needs root (it builds network namespaces)", file=sys.stderr)
        return 4
    if shutil.which("ip") is None:
        print("fastka lab: needs iproute2 (the ip command)", file=sys.stderr)
        return 1
    with_keepalived = not args.no_keepalived and os.access(KEEPALIVED, os.X_OK)
    routers = [
        Router("r1", 11, "fastka", 150),
        Router("r2", 12, "keepalived" if with_keepalived else "fastka", 100),
    ]
    if args.routers == 3:
        routers.append(Router("r3", 13, "fastka", 50))
    lab = Lab(routers, args.advert_int, keep=args.keep)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupted)
    try:
        lab.run()
        return 0
    except KeyboardInterrupt:
        print("\nfastka lab: interrupted, cleaning up", file=sys.stderr)
        return 130
    except (TimeoutError, RuntimeError, OSError) as exc:
        print(f"\nfastka lab: {exc}", file=sys.stderr)
        for r in routers:
            log = r.workdir / "output.log"
            if log.is_file():
                print(f"--- {r.name} ({r.kind}):\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)
        return 1
    finally:
        lab.close()
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
