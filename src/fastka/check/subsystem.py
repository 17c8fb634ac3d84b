"""The checker child (``fastka -C`` / the daemon's ``checker`` role): the
:class:`~fastka.check.manager.CheckerManager` behind the process framework's
:class:`~fastka.child.Subsystem` protocol.

start: map the compiled configuration, open IPVS, start every virtual server; reload:
compare and migrate; stop: remove what fastka added to IPVS (unless ``-I``), run the
omega notifiers; status: the ``checker`` section of the status document (docs/status.md).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastka.check.from_config import check_config
from fastka.check.fsm import VirtualServer
from fastka.check.manager import CheckerManager
from fastka.check.sink import IpvsSink, KernelSink
from fastka.child import ChildContext, SubsystemBase
from fastka.cli import ExitCode
from fastka.status import CheckerResult, CheckerSection
from fastka.status import RealServer as RealServerStatus
from fastka.status import VirtualServer as VirtualServerStatus


def _batch(sink: IpvsSink) -> contextlib.AbstractContextManager[object]:
    """The sink's batch (``KernelSink.batch``), or nothing for sinks without one."""
    batch = getattr(sink, "batch", None)
    return batch() if batch is not None else contextlib.nullcontext()


def preload_modules(config: Any) -> list[str]:
    """Modules the checker child of ``config`` will import (the parent imports them before
    forking, so that neither the first child nor a respawned one waits for them): the
    IPVS codec always, ssl for SSL_GET, h11 for HTTP heads the quick parser leaves, and
    dnspython for DNS_CHECK -- never what the configuration does not use."""
    kinds = {
        getattr(c, "TYPE", "")
        for vs in getattr(config, "virtual_servers", ())
        for rs in vs.real_servers
        for c in rs.checkers
    }
    mods = ["fastka.ipvs.ipvs"]
    if kinds & {"HTTP_GET", "SSL_GET"}:
        mods.append("h11")
    if "SSL_GET" in kinds:
        mods.append("ssl")
    if "DNS_CHECK" in kinds:
        mods.append("fastka.check.dns")
    return mods


class CheckerSubsystem(SubsystemBase):
    def __init__(self, sink_factory: Callable[[], IpvsSink] | None = None) -> None:
        self.sink_factory = sink_factory or KernelSink
        self.mgr: CheckerManager | None = None
        self.ctx: ChildContext | None = None
        self.dont_release = False

    def start(self, ctx: ChildContext, config: Any) -> None:
        self.ctx = ctx
        self.dont_release = bool(getattr(ctx.options, "dont_release_ipvs", False))
        try:
            sink = self.sink_factory()
        except PermissionError:
            raise
        except OSError as exc:
            # No IPVS in this kernel: nothing a restart can fix (Keepalived exits too).
            ctx.exit(ExitCode.FATAL, f"IPVS: Can't initialize ipvs: {exc}")
            return
        self.mgr = CheckerManager(ctx.loop, check_config(config, dont_release_ipvs=self.dont_release), sink)
        self.mgr.on_change = ctx.status_changed
        with _batch(sink):  # the whole initial table in a few sendmsg calls
            self.mgr.start()

    def reload(self, config: Any) -> None:
        assert self.mgr is not None
        self.mgr.reload(check_config(config, dont_release_ipvs=self.dont_release))
        if self.ctx is not None:
            self.ctx.status_changed()

    def stop(self, done: Callable[[], None]) -> None:
        if self.mgr is not None:
            with _batch(self.mgr.sink):
                self.mgr.shutdown()
        done()

    # -- reports
    def status(self) -> Mapping[str, Any]:
        section: CheckerSection = {"virtual_servers": []}
        if self.mgr is not None:
            section["virtual_servers"] = [vs_status(vs) for vs in self.mgr.vss.values()]
        return section

    def dump(self) -> str:
        out = [f"------< Health checkers >------ {time.strftime('%c')}"]
        for vs in self.status()["virtual_servers"]:
            out.append(
                f" VS {vs['name']} sched {vs['scheduler']} quorum {vs['quorum']} "
                f"({'up' if vs['quorum_up'] else 'down'}, alive weight {vs['alive_weight']})"
            )
            if vs["sorry_server"]:
                out.append(
                    f"   sorry server {vs['sorry_server']['name']} active={vs['sorry_server']['active']}"
                )
            for rs in vs["real_servers"]:
                out.append(
                    f"   RS {rs['name']} {'UP' if rs['up'] else 'DOWN'} weight {rs['weight']}"
                    f" (configured {rs['configured_weight']}){'' if rs['in_ipvs'] else ' not in IPVS'}"
                )
                for c in rs["checkers"]:
                    state = {True: "up", False: "down", None: "?"}[c["up"]]
                    detail = f" ({c['detail']})" if c["detail"] else ""
                    out.append(f"     {c['type']} {c['target']} {state}, failures {c['failures']}{detail}")
        return "\n".join(out) + "\n"

    def json_dump(self) -> Any:
        return self.status()


def vs_status(vs: VirtualServer) -> VirtualServerStatus:
    spec = vs.spec
    svc = spec.services[0] if spec.services else None
    sorry = spec.sorry_server
    return {
        "name": vs.describe(),
        "family": "inet6" if svc is not None and svc.af == socket.AF_INET6 else "inet",
        "address": svc.address if svc is not None and spec.group is None else None,
        "port": (spec.group_port if spec.group else svc.port) if svc is not None else None,
        "protocol": svc.protocol if svc is not None and not svc.fwmark else None,
        "fwmark": svc.fwmark if svc is not None and svc.fwmark and spec.group is None else None,
        "group": spec.group,
        "scheduler": svc.sched_name if svc is not None else None,
        "forwarding": spec.real_servers[0].fwd if spec.real_servers else None,
        "quorum": spec.quorum,
        "quorum_up": vs.quorum_up,
        "alive_weight": vs.weight_sum(),
        "sorry_server": (
            {"name": f"[{sorry.address}]:{spec.protocol}:{sorry.port}", "active": vs.sorry_active}
            if sorry is not None
            else None
        ),
        "real_servers": [rs_status(rs) for rs in vs.rss.values()],
    }


def rs_status(rs: Any) -> RealServerStatus:
    checkers: list[CheckerResult] = []
    for c in rs.checkers:
        last: str | None = None
        if c.last_ok is not None:
            last = (
                "success"
                if c.last_ok
                else ("timeout" if (c.detail or "").startswith("timeout") else "failure")
            )
        checkers.append(
            {
                "type": c.spec.kind,
                "target": c.target,
                "up": c.is_up,
                "last_result": last,
                "last_check": c.last_check,
                "last_change": c.last_change,
                "failures": c.failures,
                "detail": c.detail,
            }
        )
    return {
        "name": rs.describe(),
        "address": rs.spec.address,
        "port": rs.spec.port,
        "up": rs.alive,
        "weight": rs.ipvs_weight if rs.in_ipvs else 0,
        "configured_weight": rs.spec.weight,
        "in_ipvs": rs.in_ipvs,
        "checkers": checkers,
    }
