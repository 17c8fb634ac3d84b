"""The VRRP child's subsystem (``daemon.SUBSYSTEMS["vrrp"]``): the process framework's
face of :class:`fastka.vrrp.router.Router` -- start, reload, stop, status, dumps.

Status (docs/status.md, ``status.VrrpSection``) is built on demand from the instances;
``ctx.status_changed()`` is called on transitions, never per advert. The checkpoint
(which instances were MASTER) lets a restarted child resume as MASTER at once: its VIPs
are still in place after a crash and the peer never noticed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastka.child import SubsystemBase
from fastka.errors import ConfigError
from fastka.vrrp.instance import State, Transition
from fastka.vrrp.router import REASON_NAMES, Router, Slot

if TYPE_CHECKING:
    from fastka.child import ChildContext
    from fastka.config.model import Config
    from fastka.status import TrackedRef, VrrpInstance, VrrpSection, VrrpStats

__all__ = ["VrrpSubsystem"]


class VrrpSubsystem(SubsystemBase):
    """Runs the VRRP instances of the configuration in the VRRP child."""

    def __init__(self) -> None:
        self.ctx: ChildContext | None = None
        self.router: Router | None = None
        self.config: Config | None = None

    # -- life ----------------------------------------------------------------------------------

    def start(self, ctx: ChildContext, config: Any) -> None:
        self.ctx = ctx
        self.config = config
        resume = None
        if isinstance(ctx.resume, dict):
            states = ctx.resume.get("states")
            if isinstance(states, dict):
                resume = {str(k): str(v) for k, v in states.items()}
        self.router = self._router(config)
        self.router.start(resume=resume)

    def _router(self, config: Config) -> Router:
        if self.ctx is None:
            raise RuntimeError("not started")
        if not config.vrrp_instances and not config.static_ipaddress and not config.static_routes:
            ctx = self.ctx
            ctx.log.info("No VRRP instances configured")
        return Router(
            self.ctx.loop,
            config,
            on_change=self.ctx.status_changed,
            release_on_stop=not self.ctx.options.dont_release_vrrp,
            release_vips=bool(getattr(self.ctx.options, "release_vips", False)),
        )

    def reload(self, config: Any) -> None:
        """Apply a new configuration by its difference (:meth:`Router.reload`): matched
        instances keep their state, addresses in both configurations stay in place."""
        if self.router is None or self.ctx is None:
            raise ConfigError("the VRRP subsystem is not running")
        self.router.reload(config)
        self.config = config
        self.ctx.status_changed()

    def stop(self, done: Callable[[], None]) -> None:
        if self.router is None:
            done()
            return
        self.router.stop(done)

    # -- status --------------------------------------------------------------------------------

    def _wall(self, t: float) -> float:
        assert self.ctx is not None
        return time.time() - (self.ctx.loop.time() - t)

    def _transition(self, t: Transition | None) -> Any:
        if t is None:
            return None
        return {"time": self._wall(t.time), "from": t.old.name, "to": t.new.name, "reason": t.reason}

    def _tracked_by_instance(self) -> dict[int, list[TrackedRef]]:
        """What each instance tracks, by ``id()`` of the instance: one pass over the
        trackers for the whole snapshot (a pass per instance was quadratic)."""
        out: dict[int, list[TrackedRef]] = {}
        if self.router is not None and self.router.trackers is not None:
            for tr in self.router.trackers.all():
                for u in tr.users:
                    out.setdefault(id(u.instance), []).append(
                        {"type": tr.kind, "name": tr.name, "up": tr.up, "weight": u.weight}
                    )
        return out

    def _instance_status(self, slot: Slot, tracked_by: dict[int, list[TrackedRef]]) -> VrrpInstance:
        assert self.router is not None
        inst = slot.inst
        cfg = slot.cfg
        st = self.router.engine.stats(slot.sid)
        stats: VrrpStats = {
            "adverts_sent": st.adverts_sent,
            "adverts_received": st.adverts_received,
            "became_master": inst.became_master,
            "released_master": inst.released_master,
            "priority_zero_sent": inst.priority_zero_sent,
            "priority_zero_received": inst.priority_zero_received,
            "drops": self.router.drops(slot),
            "peers": [
                {
                    "address": _addr(src) if src else "",
                    "adverts": n,
                    "last_priority": prio,
                    "last_seen": self._wall(seen),
                }
                for src, (n, prio, seen) in sorted(st.peers.items())
            ],
        }
        tracked = tracked_by.get(id(inst), [])
        master = inst.master_src
        return {
            "name": cfg.name,
            "vrid": cfg.virtual_router_id,
            "family": str(cfg.family),
            "version": cfg.version,
            "interface": cfg.interface,
            "state": inst.state.name,
            "wanted_state": str(cfg.state),
            "priority": inst.base_priority,
            "effective_priority": inst.effective_priority,
            "advert_interval": inst.master_adver_int if inst.state == State.BACKUP else inst.adver_int,
            "master_address": _addr(master) if master else None,
            "master_priority": inst.master_priority,
            "virtual_ipaddresses": [str(v.address) for v in cfg.virtual_ipaddress],
            "sync_group": cfg.sync_group,
            "last_transition": self._transition(inst.last_transition),
            "transitions": inst.transitions,
            "stats": stats,
            "tracked": tracked,
            "faults": list(inst.faults.values()),
            "old_unicast_checksum": slot.old_checksum,
        }

    def status(self) -> VrrpSection:
        r = self.router
        if r is None:
            return {"instances": [], "sync_groups": [], "tracked": []}
        tracked_by = self._tracked_by_instance()
        return {
            "instances": [self._instance_status(s, tracked_by) for s in r.slots.values()],
            "sync_groups": [
                {
                    "name": g.name,
                    "state": g.state.name,
                    "instances": [m.name for m in g.members],
                    "last_transition": self._transition(g.last_transition),
                }
                for g in r.groups.values()
            ],
            "tracked": r.trackers.status() if r.trackers is not None else [],
        }

    def checkpoint(self) -> Any:
        r = self.router
        if r is None:
            return None
        return {"states": {s.name: s.inst.state.name for s in r.slots.values()}}

    def dump(self) -> str:
        r = self.router
        if r is None:
            return ""
        lines = ["------< VRRP Topology >------"]
        tracked_by = self._tracked_by_instance()
        for s in r.slots.values():
            d = self._instance_status(s, tracked_by)
            inst = s.inst
            lines += [
                f" VRRP Instance = {d['name']}",
                f"   VRRP Version = {d['version']}",
                f"   State = {d['state']}",
                f"   Wantstate = {inst.wantstate.name}",
                f"   Interface = {d['interface']}",
                f"   Virtual Router ID = {d['vrid']}",
                f"   Priority = {d['priority']}",
                f"   Effective priority = {d['effective_priority']}",
                f"   Advert interval = {inst.adver_int:g} sec",
                f"   Master down interval = {inst.master_down_interval:.6f} sec",
                f"   Source address = {_addr(inst.saddr) if inst.saddr else '(none)'}",
                f"   Master router = {d['master_address']} priority {d['master_priority']}",
                f"   Nopreempt = {inst.nopreempt}",
                f"   Preempt delay = {inst.preempt_delay:g} secs",
                f"   Faults = {', '.join(inst.faults.values()) or 'none'}",
                *(
                    [
                        f"   Unicast checksum = old (Keepalived < 1.3.6){' detected' if s.old_checksum_detected else ''}"
                    ]
                    if s.old_checksum
                    else []
                ),
                *[
                    f"   Peer {p['address'] or '(others)'}: {p['adverts']} adverts, last priority {p['last_priority']}"
                    for p in d["stats"].get("peers", [])
                ],
                f"   Virtual IP ({len(s.cfg.virtual_ipaddress)}):",
                *[f"     {v.address} dev {s.vip_ifname(v)}" for v in s.cfg.virtual_ipaddress],
            ]
            if s.cfg.virtual_ipaddress_excluded:
                lines.append(f"   Virtual IP excluded ({len(s.cfg.virtual_ipaddress_excluded)}):")
                lines += [f"     {v.address} dev {s.vip_ifname(v)}" for v in s.cfg.virtual_ipaddress_excluded]
        for g in r.groups.values():
            lines += [
                f" VRRP Sync Group = {g.name}, {g.state.name}",
                *[f"   monitor = {m.name}" for m in g.members],
            ]
        tracked = r.trackers.status() if r.trackers is not None else []
        if tracked:
            lines.append("------< VRRP Tracked objects >------")
            for t in tracked:
                lines.append(f" {t['type']} {t['name']}: {t['status']} (used by {', '.join(t['users'])})")
        watcher = r.trackers.watcher if r.trackers is not None else None
        if watcher is not None:
            lines.append(
                f" Process events: {watcher.mode}, {watcher.events} events, {watcher.scans} scans of /proc"
            )
        return "\n".join(lines) + "\n"

    def stats(self, clear: bool) -> str:
        r = self.router
        if r is None:
            return ""
        lines: list[str] = []
        for s in r.slots.values():
            st = r.engine.stats(s.sid)
            inst = s.inst
            lines += [
                f"VRRP Instance: {s.name}",
                "  Advertisements:",
                f"    Received: {st.adverts_received}",
                f"    Sent: {st.adverts_sent}",
                f"  Became master: {inst.became_master}",
                f"  Released master: {inst.released_master}",
                "  Packet Errors:",
                *[f"    {REASON_NAMES.get(k, str(k))} ({k}): {v}" for k, v in sorted(st.drops.items())],
                *[f"    {k}: {v}" for k, v in sorted(s.extra_drops.items())],
                "  Peers:",
                *[
                    f"    {_addr(src) if src else '(others)'}: received {n}, last priority {prio}"
                    for src, (n, prio, _seen) in sorted(st.peers.items())
                ],
                "  Priority Zero:",
                f"    Received: {inst.priority_zero_received}",
                f"    Sent: {inst.priority_zero_sent}",
            ]
            if clear:
                r.engine.clear_stats(s.sid)
                s.extra_drops.clear()
                inst.became_master = inst.released_master = 0
                inst.priority_zero_received = inst.priority_zero_sent = 0
        return "\n".join(lines) + "\n"

    def json_dump(self) -> Any:
        r = self.router
        if r is None:
            return []
        out = []
        tracked_by = self._tracked_by_instance()
        for s in r.slots.values():
            d = self._instance_status(s, tracked_by)
            out.append({"data": {k: v for k, v in d.items() if k != "stats"}, "stats": d["stats"]})
        return json.loads(json.dumps(out, default=str))


def _addr(a: bytes) -> str:
    import ipaddress

    return str(ipaddress.IPv4Address(a) if len(a) == 4 else ipaddress.IPv6Address(a))
