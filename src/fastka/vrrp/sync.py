"""``vrrp_sync_group``: instances that change state together (behaviour.md §V5).

* BACKUP -> MASTER: a member whose master-down timer expires becomes MASTER only when
  every other member wants MASTER too (its own timer expired, or it is MASTER already);
  then all go MASTER together. Until then it stays BACKUP wanting MASTER and listens
  again (Keepalived: "prefer backup state to avoid thrashing").
* MASTER -> BACKUP: when one member yields to a better master, the others leave MASTER
  too (without a priority-0 advert).
* FAULT: one member's own fault puts every member in FAULT (masters send priority 0 and
  release their addresses); the group leaves FAULT only when no member has a fault of its
  own, and then all go BACKUP.

The group's own state (for group notifications) follows its members: MASTER when all
are MASTER, FAULT when any is FAULT, INIT while any is INIT, else BACKUP.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from fastka.log import NOTICE
from fastka.vrrp.instance import Instance, State, Transition

if TYPE_CHECKING:
    from fastka.config.model import SyncGroup as SyncGroupConfig

__all__ = ["GroupIO", "SyncGroup"]

log = logging.getLogger("fastka.vrrp")


class GroupIO(Protocol):
    def notify_group(self, state: State) -> None:
        """Group notifications (scripts with ``GROUP name STATE 0``, FIFO)."""

    def group_transition(self, t: Transition) -> None: ...


class SyncGroup:
    def __init__(self, config: SyncGroupConfig, members: list[Instance], io: GroupIO) -> None:
        self.config = config
        self.name = config.name
        self.members = members
        self.io = io
        self.state = State.INIT
        self.last_transition: Transition | None = None
        self._sweeping = False
        for m in members:
            m.sync = self

    def __repr__(self) -> str:
        return f"<SyncGroup {self.name} {self.state.name} {[m.name for m in self.members]}>"

    @property
    def fault_key(self) -> str:
        return f"sync:{self.name}"

    def _others(self, member: Instance) -> list[Instance]:
        return [m for m in self.members if m is not member]

    # -- called by members ------------------------------------------------------------------

    def can_start_master(self) -> bool:
        """Start-up fast path of an owner: only if every member is an owner wanting MASTER."""
        return all(m.owner and m.wantstate == State.MASTER for m in self.members)

    def member_wants_master(self, member: Instance, now: float, reason: str) -> None:
        if any(m.state in (State.FAULT, State.INIT) for m in self.members):
            member.sync_wait_master(now)
            return
        if not all(m.wantstate == State.MASTER or m.state == State.MASTER for m in self._others(member)):
            member.sync_wait_master(now)
            return
        if self.state != State.MASTER:
            log.log(NOTICE, "VRRP_Group(%s) Syncing instances to MASTER state", self.name)
        self._sweeping = True
        try:
            member.sync_become_master(now, reason)
            for m in self._others(member):
                m.sync_become_master(now, f"sync group {self.name}")
        finally:
            self._sweeping = False
        self.update(now, reason)

    def member_left_master(self, member: Instance, now: float, reason: str) -> None:
        others = [m for m in self._others(member) if m.state == State.MASTER or m.wantstate == State.MASTER]
        if others:
            log.log(NOTICE, "VRRP_Group(%s) Syncing instances to BACKUP state", self.name)
        self._sweeping = True
        try:
            for m in others:
                m.sync_become_backup(now, reason)
        finally:
            self._sweeping = False
        self.update(now, reason)

    def member_fault(self, member: Instance, now: float, reason: str) -> None:
        log.log(NOTICE, "VRRP_Group(%s) Syncing instances to FAULT state", self.name)
        self._sweeping = True
        try:
            for m in self._others(member):
                m.set_fault(now, self.fault_key, f"sync group {self.name}: {member.name} {reason}")
        finally:
            self._sweeping = False
        self.update(now, f"{member.name}: {reason}")

    def member_recovered(self, member: Instance, now: float) -> None:
        if any(m.own_faults for m in self.members):
            return
        log.log(NOTICE, "VRRP_Group(%s) Leaving FAULT state", self.name)
        self._sweeping = True
        try:
            for m in self.members:  # the caller too: it may carry the group's fault
                m.clear_fault(now, self.fault_key)
        finally:
            self._sweeping = False
        self.update(now, "fault cleared")

    def member_heard_lower(self, member: Instance) -> None:
        """Keepalived re-GARPs every master member that has garp_lower_prio_repeat set."""
        for m in self._others(member):
            if m.state == State.MASTER and m.config.garp_lower_prio_repeat:
                m.io.garp_lower_prio()

    # -- the group's own state --------------------------------------------------------------

    def computed_state(self) -> State:
        states = [m.state for m in self.members]
        if any(s == State.FAULT for s in states):
            return State.FAULT
        if any(s == State.INIT for s in states):
            return State.INIT
        if all(s == State.MASTER for s in states):
            return State.MASTER
        if any(s in (State.STOP, State.DELETED) for s in states):
            return State.STOP
        return State.BACKUP

    def update(self, now: float, reason: str = "") -> None:
        """Recompute the group state after a member changed; notify on a change."""
        if self._sweeping:
            return
        new = self.computed_state()
        if new == self.state:
            return
        old = self.state
        self.state = new
        t = Transition(now, old, new, reason)
        self.last_transition = t
        self.io.group_transition(t)
        if new != State.INIT:
            self.io.notify_group(new)
