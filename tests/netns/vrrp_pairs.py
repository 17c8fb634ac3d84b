"""Helpers for the VRRP router tests: keepalived.conf text for the common variants, and a
pair of routers (fastka or Keepalived on each side) with VIP ownership samplers.

Variants (``Variant``): VRRP version, family, multicast/unicast, authentication, and the
advert interval -- 0.1 s for VRRPv3 so that elections take a few hundred milliseconds,
1 s for VRRPv2 (whole seconds only).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from rig import Bridge, Netns, OwnershipSampler, Rig, VrrpDaemon, require_netns

KINDS = ("fastka", "keepalived")


@dataclass(frozen=True)
class Variant:
    name: str
    version: int = 3
    ipv6: bool = False
    unicast: bool = False
    auth: str | None = None  # "PASS" / "AH"
    advert_int: float = 0.1

    def vip(self, n: int) -> str:
        return f"fd99::{n}" if self.ipv6 else f"10.99.0.{n}"

    def vip_cidr(self, n: int) -> str:
        return f"fd99::{n}/64" if self.ipv6 else f"10.99.0.{n}/24"

    def own_address(self, host: int) -> str:
        return f"fd99::{host}" if self.ipv6 else f"10.99.0.{host}"

    @property
    def master_down(self) -> float:
        """Master_Down_Interval of a priority-100 backup (the slowest one in the tests)."""
        skew = (256 - 100) / 256 * (self.advert_int if self.version == 3 else 1.0)
        return 3 * self.advert_int + skew


V3 = Variant("v3-ipv4")
V3_IPV6 = Variant("v3-ipv6", ipv6=True)
V3_UNICAST = Variant("v3-unicast", unicast=True)
V3_IPV6_UNICAST = Variant("v3-ipv6-unicast", ipv6=True, unicast=True)
V2_PASS = Variant("v2-pass", version=2, auth="PASS", advert_int=1.0)
V2_AH = Variant("v2-ah", version=2, auth="AH", advert_int=1.0)


@dataclass
class Inst:
    """One ``vrrp_instance`` as written for one router."""

    name: str
    vrid: int
    priority: int
    vips: list[int]
    extra: str = ""


def config(
    variant: Variant, host: int, peer: int, instances: list[Inst], *, global_extra: str = "", tail: str = ""
) -> str:
    """keepalived.conf for router ``host`` (peer ``peer``) with ``instances``."""
    out = [
        "global_defs {",
        f"    router_id r{host}",
        f"    vrrp_version {variant.version}",
        "    vrrp_garp_master_delay 0" if variant.version == 3 else "",
        global_extra,
        "}",
    ]
    for i in instances:
        out += [
            f"vrrp_instance {i.name} {{",
            "    state BACKUP",
            "    interface eth0",
            f"    virtual_router_id {i.vrid}",
            f"    priority {i.priority}",
            f"    advert_int {variant.advert_int:g}",
        ]
        if variant.auth:
            out += [
                "    authentication {",
                f"        auth_type {variant.auth}",
                "        auth_pass s3cret",
                "    }",
            ]
        if variant.unicast:
            out += [
                f"    unicast_src_ip {variant.own_address(host)}",
                f"    unicast_peer {{\n        {variant.own_address(peer)}\n    }}",
            ]
        out += ["    virtual_ipaddress {", *[f"        {variant.vip_cidr(v)}" for v in i.vips], "    }"]
        if i.extra:
            out.append(i.extra)
        out.append("}")
    if tail:
        out.append(tail)
    return "\n".join(line for line in out if line) + "\n"


@dataclass
class Side:
    """One router of a pair: its namespace and the daemon running there."""

    ns: Netns
    host: int
    kind: str
    conf: str
    daemon: VrrpDaemon | None = None

    def start(self, rig: Rig) -> VrrpDaemon:
        if self.kind == "fastka":
            self.daemon = rig.fastka(self.ns, self.conf)
        else:
            self.daemon = rig.keepalived(self.ns, self.conf)
        return self.daemon


@dataclass
class Pair:
    rig: Rig
    lan: Bridge
    a: Side
    b: Side
    samplers: dict[str, OwnershipSampler] = field(default_factory=dict)

    def sample(self, *vips: str) -> None:
        for v in vips:
            s = self.rig.sampler(v, [self.a.ns, self.b.ns])
            s.start()
            self.samplers[v] = s

    def wait_owner(self, vip: str, side: Side, timeout: float = 15.0) -> float:
        return self.samplers[vip].wait_owner([side.ns.name], timeout=timeout)

    def owned_after(self, vip: str, side: Side, t: float, timeout: float = 15.0) -> float:
        """Seconds from ``t`` until ``side`` alone held ``vip`` (waiting for it if needed)."""
        s = self.samplers[vip]
        deadline = time.monotonic() + timeout
        while True:
            for sample in s.timeline.samples:
                if sample.t >= t and sample.owners == {side.ns.name}:
                    return sample.t - t
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{vip} not held by {side.ns.name} alone {timeout} s after t\n{s.timeline}"
                )
            time.sleep(0.005)

    def stop_samplers(self) -> None:
        for s in self.samplers.values():
            s.stop()

    def logs(self) -> str:
        out = []
        for side in (self.a, self.b):
            if side.daemon is not None:
                out.append(f"===== {side.ns.name} ({side.kind})\n{side.daemon.log()[-6000:]}")
        return "\n".join(out)


def make_pair(rig: Rig, kind_a: str, kind_b: str, conf_a: str, conf_b: str, *, net: int = 99) -> Pair:
    lan = rig.bridge("lan", net=net)
    ra = rig.router("r1", lan, host=11)
    rb = rig.router("r2", lan, host=12)
    return Pair(rig, lan, Side(ra, 11, kind_a, conf_a), Side(rb, 12, kind_b, conf_b))


@contextlib.contextmanager
def explain(pair: Pair) -> Iterator[None]:
    """On failure, add both daemons' logs and the ownership timelines to the error."""
    try:
        yield
    except BaseException as exc:
        timelines = "\n".join(str(s.timeline) for s in pair.samplers.values())
        raise AssertionError(f"{exc}\n{timelines}\n{pair.logs()}") from exc


def wait_for(pred: object, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def parallel(*scenarios: Callable[[], None]) -> None:
    """Run independent scenarios at once (each builds its own namespaces)."""
    require_netns()
    with ThreadPoolExecutor(len(scenarios)) as ex:
        futures = [ex.submit(fn) for fn in scenarios]
        errors = [f.exception() for f in futures]
    failed = [e for e in errors if e is not None]
    if failed:
        raise AssertionError("\n\n".join(f"{type(e).__name__}: {e}" for e in failed)) from failed[0]
