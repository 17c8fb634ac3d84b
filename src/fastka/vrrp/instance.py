"""The VRRP state machine of one instance, as Keepalived runs it (behaviour.md §V3-V5).

A sans-I/O core: :class:`Instance` takes events with the time they happened
(``on_advert``, ``on_down_timer``, ``set_fault``, ``set_total_priority``, ``stop`` ...)
and asks its :class:`InstanceIO` -- the router, or a recording fake in the tests -- to act:
send an advert, start or stop the periodic adverts, arm the master-down timer, add or
remove the VIPs, send gratuitous ARPs, run notifications. It never reads a clock, opens
a socket or sleeps, so the whole of RFC 5798's behaviour runs on a fake clock in tests.

States (Keepalived's numbers): INIT 0, BACKUP 1, MASTER 2, FAULT 3; DELETED 97 and STOP 98
exist only for notifications.

Timers (§V3.1): ``Master_Down_Interval = down_timer_adverts (3) x Master_Adver_Interval +
Skew_Time`` with ``Skew_Time = (256 - P) / 256`` s for VRRPv2 and ``(256 - P) x
Master_Adver_Interval / 256`` for VRRPv3, P the effective priority. VRRPv3 learns
Master_Adver_Interval from the master's adverts and goes back to its own interval when it
becomes master or leaves FAULT.

The steady state is *not* here: a MASTER's periodic adverts and a BACKUP re-arming its
master-down timer on each advert of the master it follows run in the engine (compiled).
The core tells the engine whom it follows (:meth:`InstanceIO.follow`) after it accepted
an advert whose acceptance cannot change until something else changes (same master, same
priority, same interval, preemption not pending); any other advert comes here.

Departures from Keepalived, on purpose:

* A BACKUP whose master-down timer expires after it had followed a master logs a WARNING
  that names that master and suggests checking IP protocol 112 / multicast (USERS.md
  §1.2), and a MASTER that keeps hearing a lower-priority master (the other side does not
  hear us: a one-way block) warns after a few intervals.
* Refused adverts that betray a configuration mismatch (authentication, version,
  interval, address list ...) are logged as warnings, once per reason until the next
  transition (the router does this).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from fastka.log import NOTICE

if TYPE_CHECKING:
    from fastka.config.model import VrrpInstance as VrrpInstanceConfig
    from fastka.vrrp.sync import SyncGroup

__all__ = [
    "Instance",
    "InstanceIO",
    "State",
    "Transition",
    "master_down_interval",
    "skew_time",
]

log = logging.getLogger("fastka.vrrp")

VRRP_PRIO_OWNER = 255
VRRP_PRIO_STOP = 0

# A MASTER hearing a lower-priority master this many intervals in a row warns that the
# other side does not hear our adverts.
LOWER_PRIO_WARN_COUNT = 3


class State(enum.IntEnum):
    INIT = 0
    BACKUP = 1
    MASTER = 2
    FAULT = 3
    DELETED = 97
    STOP = 98


@dataclass(frozen=True, slots=True)
class Transition:
    time: float
    old: State
    new: State
    reason: str


def skew_time(version: int, priority: int, master_adver_int: float) -> float:
    """RFC 3768 / RFC 5798 Skew_Time in seconds (behaviour.md §V3.1)."""
    if version == 3:
        return (256 - priority) * master_adver_int / 256
    return (256 - priority) / 256


def master_down_interval(version: int, priority: int, master_adver_int: float, adverts: int = 3) -> float:
    """``adverts`` x Master_Adver_Interval + Skew_Time, in seconds."""
    return adverts * master_adver_int + skew_time(version, priority, master_adver_int)


def _fmt_addr(addr: bytes | None) -> str:
    if not addr:
        return "?"
    import ipaddress

    if len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    return str(ipaddress.IPv6Address(addr))


class InstanceIO(Protocol):
    """What the state machine asks of the outside world (one object per instance)."""

    def send_advert(self, priority: int, *, reset_timer: bool = False) -> None:
        """Send one advert now (to every peer); ``reset_timer``: the next periodic one is
        one interval from now."""

    def start_adverts(self) -> None:
        """Send adverts every ``advert_int`` from one interval from now (MASTER)."""

    def stop_adverts(self) -> None: ...

    def arm_down_timer(self, when: float) -> None:
        """(Re-)arm the master-down timer; ``Instance.on_down_timer`` when it fires."""

    def cancel_down_timer(self) -> None: ...

    def follow(self, master: bytes | None, priority: int, adver_int: int, down_interval: float) -> None:
        """The steady state (engine): until told otherwise, an advert from ``master`` with
        exactly ``priority`` and ``adver_int`` (the wire field) re-arms the master-down timer
        to its arrival + ``down_interval`` without calling the core. ``None``: forget."""

    def set_priority(self, priority: int) -> None:
        """The priority our adverts carry from now on (rebuild the packet)."""

    def add_addresses(self) -> None:
        """VIPs, eVIPs, virtual routes and rules (becoming MASTER)."""

    def remove_addresses(self) -> None: ...

    def garp_master(self) -> None:
        """The gratuitous ARP / NA bursts of a new MASTER (repeat, delayed, refresh)."""

    def garp_lower_prio(self) -> None:
        """The GARP bursts after hearing a lower-priority advert (garp_lower_prio_*)."""

    def cancel_garps(self) -> None: ...

    def notify(self, state: State, priority: int) -> None:
        """Notifications of a state change (scripts, FIFO, status)."""

    def notify_event(self, event: str, priority: int) -> None:
        """Other FIFO events: MASTER_RX_LOWER_PRI, MASTER_PRIORITY, BACKUP_PRIORITY."""

    def transition(self, t: Transition) -> None:
        """Every state change, after it is complete (status, engine state)."""


class Instance:
    """One ``vrrp_instance``: the state machine and the priority arithmetic."""

    def __init__(self, config: VrrpInstanceConfig, io: InstanceIO) -> None:
        self.config = config
        self.io = io
        self.name = config.name
        self.vrid = config.virtual_router_id
        self.version = config.version
        self.adver_int = config.advert_int
        self.master_adver_int = config.advert_int
        self.base_priority = config.priority
        self.total_priority = config.priority
        self.effective_priority = config.priority
        self.owner = config.priority == VRRP_PRIO_OWNER
        # Keepalived clears nopreempt for an owner or ``state MASTER``.
        self.nopreempt = config.nopreempt and not self.owner
        self.preempt_delay = config.preempt_delay
        self.preempt_time: float | None = None
        self.down_adverts = config.down_timer_adverts
        self.state = State.INIT
        self.wantstate = State.MASTER if self.owner else State.BACKUP
        self.sync: SyncGroup | None = None
        # fault causes (interface down, script failed, no source address, sync group ...)
        self.faults: dict[str, str] = {}
        # weight-0 scripts that have not reported yet keep the instance in INIT
        self.init_pending: set[str] = set()
        self.saddr: bytes | None = None  # our source address (tie-break)
        self.master_src: bytes | None = None
        self.master_priority: int | None = None
        self.down_deadline: float | None = None
        self.started = False
        self._resume_master = False
        self.last_transition: Transition | None = None
        self.transitions = 0
        # statistics (the engine counts adverts and drops)
        self.became_master = 0
        self.released_master = 0
        self.priority_zero_sent = 0
        self.priority_zero_received = 0
        self.lower_prio_received = 0
        self._lower_prio_run = 0
        self._warned_lower_prio = False
        self._logged: set[str] = set()  # rate-limited log keys, cleared on transitions

    def __repr__(self) -> str:
        return f"<Instance {self.name} vrid={self.vrid} {self.state.name} prio={self.effective_priority}>"

    # -- timers ----------------------------------------------------------------------------

    @property
    def skew_time(self) -> float:
        return skew_time(self.version, self.effective_priority, self.master_adver_int)

    @property
    def master_down_interval(self) -> float:
        return master_down_interval(
            self.version, self.effective_priority, self.master_adver_int, self.down_adverts
        )

    def _arm_down(self, when: float) -> None:
        self.down_deadline = when
        self.io.arm_down_timer(when)

    def _cancel_down(self) -> None:
        self.down_deadline = None
        self.io.cancel_down_timer()
        self.io.follow(None, 0, 0, 0.0)

    def _wire_interval(self, seconds: float) -> int:
        return round(seconds * 100) if self.version == 3 else round(seconds)

    # -- logging ---------------------------------------------------------------------------

    def _notice(self, msg: str, *args: object) -> None:
        log.log(NOTICE, "(%s) " + msg, self.name, *args)

    def _once(self, key: str, level: int, msg: str, *args: object) -> None:
        """Log ``msg`` once per ``key`` until the next transition (Keepalived's rate limit)."""
        if key in self._logged:
            return
        self._logged.add(key)
        log.log(level, "(%s) " + msg, self.name, *args)

    # -- state changes -----------------------------------------------------------------------

    def _set_state(self, now: float, new: State, reason: str) -> None:
        old = self.state
        self.state = new
        self._logged.clear()
        self._lower_prio_run = 0
        t = Transition(now, old, new, reason)
        self.last_transition = t
        self.transitions += 1
        self.io.transition(t)
        if self.sync is not None:
            self.sync.update(now, reason)

    def start(self, now: float, *, resume_master: bool = False, advert_sent: bool = False) -> None:
        """Leave INIT after the trackers have been evaluated (``vrrp_init_state()``).

        ``resume_master``: this instance was MASTER in the previous incarnation of the
        process (a restarted child, a reload): become MASTER at once, first advert now,
        instead of listening for a master-down interval (a fastka extension).
        ``advert_sent``: the caller has just sent that first advert (see
        :meth:`resumes_at_once`); it counts only if this start makes the instance MASTER at
        once -- a MASTER it becomes later sends its own."""
        self.started = True
        self._resume_master = resume_master
        if self.faults:
            self._enter_fault(now, self._fault_reason() + " (init)", init=True)
            return
        if self.init_pending:
            log.info(
                "(%s) waiting for the first result of %s", self.name, ", ".join(sorted(self.init_pending))
            )
            return
        self._leave_init(now, advert_sent=advert_sent)

    def resumes_at_once(self) -> bool:
        """Would ``start(now, resume_master=True)`` make this instance MASTER at once? A
        restarted child with many MASTERs sends every one's advert before any of them
        re-adds addresses and sends GARPs, so that no peer's master-down timer runs out."""
        return not self.started and not self.faults and not self.init_pending and self.sync is None

    def _leave_init(self, now: float, *, advert_sent: bool = False) -> None:
        if self._resume_master and (self.sync is None or all(m._resume_master for m in self.sync.members)):
            self._become_master(now, "resumed as MASTER", advert_sent=advert_sent)
            return
        if (
            self.owner
            and self.wantstate == State.MASTER
            and (self.sync is None or self.sync.can_start_master())
        ):
            self._become_master(now, "address owner (priority 255)")
            return
        self._enter_backup(now, "startup", init=True)

    def _enter_backup(self, now: float, reason: str, *, init: bool = False) -> None:
        self.master_adver_int = self.adver_int
        self.master_src = None
        self.master_priority = None
        self.preempt_time = None
        self._set_state(now, State.BACKUP, reason)
        self._notice("Entering BACKUP STATE%s", " (init)" if init else f" ({reason})")
        self._arm_down(now + self.master_down_interval)
        self.io.notify(State.BACKUP, self.effective_priority)

    def _become_master(self, now: float, reason: str, *, advert_sent: bool = False) -> None:
        """``vrrp_state_goto_master()`` + ``become_master()``: the advert first (the old
        master releases the VIPs before our GARPs), the VIPs, the GARPs -- the failover
        itself, before any bookkeeping or logging -- then the rest."""
        if not advert_sent:
            self.io.send_advert(self.effective_priority)
        self.io.add_addresses()
        self.io.garp_master()
        self.io.start_adverts()
        self._cancel_down()
        self.master_adver_int = self.adver_int
        self.wantstate = State.MASTER
        self._set_state(now, State.MASTER, reason)
        self._notice("Entering MASTER STATE (%s)", reason)
        self.became_master += 1
        self.master_src = self.saddr
        self.master_priority = self.effective_priority
        self.io.notify(State.MASTER, self.effective_priority)

    def _leave_master(self, now: float, new: State, reason: str, *, priority_zero: bool) -> None:
        """``vrrp_state_leave_master()``: stop advertising (a last priority-0 advert when
        going to FAULT or stopping), remove the addresses."""
        self.io.stop_adverts()
        self.io.cancel_garps()
        if priority_zero:
            self.io.send_advert(VRRP_PRIO_STOP)
            self.priority_zero_sent += 1
        self.io.remove_addresses()
        self.released_master += 1

    def goto_master(self, now: float, reason: str) -> None:
        """BACKUP -> MASTER, if the sync group agrees (else wait wanting MASTER)."""
        if self.state != State.BACKUP:
            return
        self.wantstate = State.MASTER
        if self.sync is not None:
            self.sync.member_wants_master(self, now, reason)
            return
        self._become_master(now, reason)

    def sync_become_master(self, now: float, reason: str) -> None:
        """Called by the sync group when every member may go MASTER."""
        if self.state == State.BACKUP:
            self._become_master(now, reason)

    def sync_wait_master(self, now: float) -> None:
        """The sync group does not agree yet: stay BACKUP wanting MASTER, listen again."""
        self._once(
            "sync-wait",
            logging.INFO,
            "waiting for the other members of sync group %s to want MASTER",
            self.sync.name if self.sync else "?",
        )
        self._arm_down(now + self.master_down_interval)

    def sync_become_backup(self, now: float, reason: str) -> None:
        """A sync group member left MASTER: follow it (no priority-0 advert)."""
        if self.state != State.MASTER:
            self.wantstate = State.BACKUP
            return
        self.wantstate = State.BACKUP
        self._leave_master(now, State.BACKUP, reason, priority_zero=False)
        self._enter_backup(now, reason)

    # -- adverts -----------------------------------------------------------------------------

    def on_advert(
        self, now: float, src: bytes, priority: int, adver_int: int, *, address_mismatch: bool = False
    ) -> None:
        """A received advert that passed validation. ``adver_int``: the wire field
        (seconds for v2, centiseconds for v3)."""
        if self.state in (State.INIT, State.FAULT):
            return
        if address_mismatch:
            self._once(
                "addr",
                logging.WARNING,
                "advert from %s has a different list of virtual addresses than ours: check both configurations",
                _fmt_addr(src),
            )
        if priority == VRRP_PRIO_STOP:
            self.priority_zero_received += 1
        if self.state == State.BACKUP:
            self._backup_rx(now, src, priority, adver_int)
        elif self.state == State.MASTER:
            self._master_rx(now, src, priority, adver_int)

    def _learn_interval(self, adver_int: int) -> None:
        if self.version == 3 and adver_int:
            self.master_adver_int = adver_int / 100

    def _backup_rx(self, now: float, src: bytes, priority: int, adver_int: int) -> None:
        eff = self.effective_priority
        if priority == VRRP_PRIO_STOP:
            # the master is going away: take over after Skew_Time only
            log.info("(%s) Backup received priority 0 advertisement from %s", self.name, _fmt_addr(src))
            self.master_src = src
            self.master_priority = 0
            self.io.follow(None, 0, 0, 0.0)
            self._arm_down(now + self.skew_time)
            return
        delay_running = self.preempt_delay > 0 and (self.preempt_time is None or self.preempt_time > now)
        if self.nopreempt or priority >= eff or delay_running:
            if self.preempt_delay > 0:
                if priority >= eff:
                    self.preempt_time = None
                elif self.preempt_time is None:
                    self.preempt_time = now + self.preempt_delay
                    log.info(
                        "(%s) lower priority master %s: preempting in %.3g s unless it improves",
                        self.name,
                        _fmt_addr(src),
                        self.preempt_delay,
                    )
            self._learn_interval(adver_int)
            self.wantstate = State.BACKUP
            if self.master_src != src and self.master_src is not None:
                log.info(
                    "(%s) new master %s (priority %d), was %s",
                    self.name,
                    _fmt_addr(src),
                    priority,
                    _fmt_addr(self.master_src),
                )
            self.master_src = src
            self.master_priority = priority
            self._lower_prio_run = 0
            down = self.master_down_interval
            self._arm_down(now + down)
            # accepting this advert again gives the same answer until something changes
            if self.nopreempt or priority >= eff:
                self.io.follow(src, priority, adver_int, down)
            else:
                self.io.follow(None, 0, 0, 0.0)
        else:
            self.lower_prio_received += 1
            self.io.follow(None, 0, 0, 0.0)
            self._once(
                "lower",
                logging.INFO,
                "received lower priority (%d) advert from %s - discarding",
                priority,
                _fmt_addr(src),
            )

    def _master_rx(self, now: float, src: bytes, priority: int, adver_int: int) -> None:
        eff = self.effective_priority
        cfg = self.config
        if priority == VRRP_PRIO_STOP:
            # RFC 5798 6.4.3: answer a priority-0 advert at once
            self.io.send_advert(eff, reset_timer=True)
            return
        saddr = self.saddr or b""
        if priority == eff and src == saddr:
            self._once(
                "ourip",
                logging.WARNING,
                "WARNING - equal priority advert received from remote host with our IP address %s",
                _fmt_addr(src),
            )
            return
        higher = priority > eff or (priority == eff and src > saddr)
        if not higher:
            self.lower_prio_received += 1
            self._lower_prio_run += 1
            log.info(
                "(%s) Received advert from %s with lower priority %d, ours %d, forcing new election",
                self.name,
                _fmt_addr(src),
                priority,
                eff,
            )
            if self._lower_prio_run >= LOWER_PRIO_WARN_COUNT and not self._warned_lower_prio:
                self._warned_lower_prio = True
                log.warning(
                    "(%s) %s keeps advertising as MASTER with lower priority %d although we answer: it does not "
                    "receive our adverts. Check that IP protocol 112 (VRRP) is allowed and that multicast %s "
                    "reaches it (or configure unicast_peer)",
                    self.name,
                    _fmt_addr(src),
                    priority,
                    "224.0.0.18" if len(src) == 4 else "ff02::12",
                )
            if not cfg.lower_prio_no_advert:
                self.io.send_advert(eff, reset_timer=True)
            self.io.garp_lower_prio()
            if self.sync is not None:
                self.sync.member_heard_lower(self)
            self.io.notify_event("MASTER_RX_LOWER_PRI", eff)
            return
        # a better master: yield (no priority-0 advert)
        if cfg.higher_prio_send_advert:
            self.io.send_advert(eff)
        if priority == eff:
            reason = f"advert from {_fmt_addr(src)} with same priority {priority} but higher IP address"
        else:
            reason = f"higher priority advert from {_fmt_addr(src)} ({priority} > {eff})"
        log.info(
            "(%s) Master received advert from %s with %s priority %d, ours %d",
            self.name,
            _fmt_addr(src),
            "same" if priority == eff else "higher",
            priority,
            eff,
        )
        self._learn_interval(adver_int)
        self.wantstate = State.BACKUP
        self._leave_master(now, State.BACKUP, reason, priority_zero=False)
        self._set_state(now, State.BACKUP, reason)
        self._notice("Entering BACKUP STATE (%s)", reason)
        self.master_src = src
        self.master_priority = priority
        self.preempt_time = None
        down = self.master_down_interval
        self._arm_down(now + down)
        if self.nopreempt or priority >= eff:
            self.io.follow(src, priority, adver_int, down)
        self.io.notify(State.BACKUP, eff)
        if self.sync is not None:
            self.sync.member_left_master(self, now, f"sync group {self.sync.name}")

    def on_down_timer(self, now: float) -> None:
        """The master-down timer fired (BACKUP). The takeover comes first -- every
        microsecond here adds to the failover time -- and the words about it after."""
        self.down_deadline = None
        if self.state != State.BACKUP:
            return
        self.io.follow(None, 0, 0, 0.0)
        lost = self.master_src
        gone = self.master_down_interval
        if lost is not None and self.master_priority:
            reason = f"no advert from master {_fmt_addr(lost)} for {gone:.3f} s"
        elif lost is not None:
            reason = f"priority 0 advert from {_fmt_addr(lost)}"
        else:
            reason = "master down timer expired"
        silent_master = lost is not None and bool(self.master_priority)
        before = self.became_master
        self.goto_master(now, reason)
        log.info("(%s) Receive advertisement timeout", self.name)
        if silent_master and lost is not None and self.became_master > before:
            log.warning(
                "(%s) no advert from master %s for %.3f s (%d intervals + skew): taking over. If %s is still up, "
                "its adverts do not reach us: check that IP protocol 112 (VRRP) and multicast %s are allowed",
                self.name,
                _fmt_addr(lost),
                gone,
                self.down_adverts,
                _fmt_addr(lost),
                "224.0.0.18" if len(lost) == 4 else "ff02::12",
            )

    # -- priority ----------------------------------------------------------------------------

    def adjust_priority(self, now: float, delta: int) -> None:
        """Add a tracker's contribution change to the total priority."""
        if self.owner or not delta:
            return
        self.set_total_priority(now, self.total_priority + delta)

    def set_total_priority(self, now: float, total: int) -> None:
        """``vrrp_set_effective_priority()``: clamp to 1..254, shift a running down timer."""
        if self.owner:
            return
        self.total_priority = total
        self._set_effective(now, min(max(total, 1), VRRP_PRIO_OWNER - 1))

    def _set_effective(self, now: float, new: int) -> None:
        old = self.effective_priority
        if new == old:
            return
        old_down = self.master_down_interval
        self.effective_priority = new
        log.info("(%s) Changing effective priority from %d to %d", self.name, old, new)
        self.io.set_priority(new)
        if self.state == State.BACKUP:
            # acceptance of the master's adverts may change: decide again on the next one
            self.io.follow(None, 0, 0, 0.0)
            if self.down_deadline is not None:
                self._arm_down(self.down_deadline + self.master_down_interval - old_down)
        if self.config.notify_priority_changes:
            event = "MASTER_PRIORITY" if self.state == State.MASTER else "BACKUP_PRIORITY"
            self.io.notify_event(event, new)

    # -- faults ------------------------------------------------------------------------------

    def _fault_reason(self) -> str:
        return "; ".join(self.faults.values()) if self.faults else ""

    @property
    def own_faults(self) -> dict[str, str]:
        """Faults of this instance itself (not those imposed by its sync group)."""
        return {k: v for k, v in self.faults.items() if not k.startswith("sync:")}

    def set_fault(self, now: float, key: str, reason: str) -> None:
        """A fault cause appeared (``down_instance()``)."""
        first_own = not self.own_faults and not key.startswith("sync:")
        was_empty = not self.faults
        self.faults[key] = reason
        if not self.started:
            return
        if was_empty or self.state == State.INIT:
            self._enter_fault(now, reason)
        if first_own and self.sync is not None:
            self.sync.member_fault(self, now, reason)

    def clear_fault(self, now: float, key: str) -> None:
        """A fault cause went away (``try_up_instance()``)."""
        if key not in self.faults:
            return
        del self.faults[key]
        was_own = not key.startswith("sync:")
        if not self.started:
            return
        if was_own and not self.own_faults and self.sync is not None:
            self.sync.member_recovered(self, now)
        if not self.faults and self.state in (State.FAULT, State.INIT) and not self.init_pending:
            self.wantstate = State.BACKUP
            self._enter_backup(
                now,
                "fault cleared" if self.state == State.FAULT else "startup",
                init=self.state == State.INIT,
            )

    def _enter_fault(self, now: float, reason: str, *, init: bool = False) -> None:
        if self.state == State.FAULT:
            return
        was = self.state
        self.wantstate = State.FAULT
        if was == State.MASTER:
            self._leave_master(now, State.FAULT, reason, priority_zero=True)
        elif was == State.BACKUP:
            self._cancel_down()
        self.master_src = None
        self.master_priority = None
        self._set_state(now, State.FAULT, reason)
        self._notice("Entering FAULT STATE (%s)", reason)
        self.io.notify(State.FAULT, self.effective_priority)

    def script_init_done(self, now: float, name: str) -> None:
        """A weight-0 script gave its first result (it set or cleared its fault already)."""
        if name not in self.init_pending:
            return
        self.init_pending.discard(name)
        if self.started and not self.init_pending and self.state == State.INIT:
            if self.faults:
                self._enter_fault(now, self._fault_reason())
            else:
                self._leave_init(now)

    # -- external events ---------------------------------------------------------------------

    def address_removed(self, now: float, what: str) -> None:
        """One of our VIPs was deleted behind our back while MASTER (``set_vrrp_backup()``):
        give up mastership with a priority-0 advert so that a backup takes over at once."""
        if self.state != State.MASTER:
            return
        reason = f"{what} removed externally"
        self.wantstate = State.BACKUP
        self._leave_master(now, State.BACKUP, reason, priority_zero=True)
        self._enter_backup(now, reason)
        if self.sync is not None:
            self.sync.member_left_master(self, now, f"sync group {self.sync.name}")

    def stop(self, now: float, *, deleted: bool = False) -> None:
        """Shutdown (or removal by a reload): a MASTER sends priority 0 and removes its
        addresses; then STOP (or DELETED) notifications."""
        was = self.state
        if was == State.MASTER:
            self._leave_master(now, State.STOP, "stop", priority_zero=True)
        else:
            self._cancel_down()
        new = State.DELETED if deleted else State.STOP
        self._set_state(now, new, "stop" if not deleted else "removed by reload")
        if deleted and was == State.FAULT and not self.config.notify_deleted:
            return  # Keepalived says FAULT for a removed instance: it said so already
        self.io.notify(new, self.effective_priority)

    def on_late(self, now: float, gap: float) -> None:
        """``timer_expired_backup``: our periodic advert fell due ``gap`` s after the
        previous one -- the process was stopped or starved long enough for a backup to
        have taken over. Go back to BACKUP (no priority-0 advert) rather than fight it."""
        if self.state != State.MASTER:
            return
        reason = f"no advert sent for {gap:.3f} s (timer_expired_backup)"
        log.warning("(%s) we were not running for %.3f s: a backup may be master now - reverting to BACKUP",
                    self.name, gap)  # fmt: skip
        self.wantstate = State.BACKUP
        self._leave_master(now, State.BACKUP, reason, priority_zero=False)
        self._enter_backup(now, reason)
        if self.sync is not None:
            self.sync.member_left_master(self, now, f"sync group {self.sync.name}")

    def late_limit(self) -> float:
        """How long after the previous advert a MASTER with ``timer_expired_backup`` gives
        up: down_timer_adverts x advert_int + the skew of the highest other priority."""
        other = self.config.timer_expired_backup
        if other is None:
            return 0.0
        return self.down_adverts * self.adver_int + skew_time(self.version, other, self.adver_int)

    # -- reload ------------------------------------------------------------------------------

    def reconfigure(self, now: float, config: VrrpInstanceConfig) -> None:
        """A reload matched this instance (same VRID, family, interface ...) with ``config``:
        take its settings, keep the state. The caller then applies the trackers' priority
        (``set_total_priority``) and calls :meth:`reload_done`."""
        self.config = config
        self.name = config.name
        self.version = config.version
        self.adver_int = config.advert_int
        self.base_priority = config.priority
        was_owner, self.owner = self.owner, config.priority == VRRP_PRIO_OWNER
        self.nopreempt = config.nopreempt and not self.owner
        self.preempt_delay = config.preempt_delay
        if not self.preempt_delay:
            self.preempt_time = None
        self.down_adverts = config.down_timer_adverts
        if self.state != State.BACKUP or self.version == 2:
            # VRRPv3 BACKUPs keep what they learned from the master; the rest use their own
            self.master_adver_int = self.adver_int
        if self.owner and not was_owner:
            self.total_priority = VRRP_PRIO_OWNER
            self._set_effective(now, VRRP_PRIO_OWNER)
            if self.state != State.MASTER:
                self.wantstate = State.MASTER
        elif was_owner and not self.owner and self.wantstate == State.MASTER and self.state != State.MASTER:
            self.wantstate = State.BACKUP

    def reload_done(self, now: float) -> None:
        """After a reload: a MASTER advertises at once (the first advert of the new
        configuration, no new election); a BACKUP listens again with a fresh master-down
        timer. No transition, no notification."""
        if self.state == State.MASTER:
            self.io.send_advert(self.effective_priority, reset_timer=True)
        elif self.state == State.BACKUP:
            self.io.follow(None, 0, 0, 0.0)
            self._arm_down(now + self.master_down_interval)

    # -- status helpers ----------------------------------------------------------------------

    def snapshot_timers(self, now: float) -> dict[str, float | None]:
        return {
            "master_down_interval": self.master_down_interval,
            "down_timer_in": None if self.down_deadline is None else self.down_deadline - now,
        }


# re-exported for sync.py's type hints without an import cycle
InstanceCallback = Callable[[Instance], None]
