"""The checker state machines (behaviour.md §C1, §C2).

Three levels, as Keepalived:

* :class:`Checker` -- one checker block: runs its probe every ``delay_loop``, counts
  retries (``retry``, ``delay_before_retry``), starts after ``1 s + random(0..warmup)``,
  starts failed with ``alpha``. State ``is_up``/``has_run``/``retry_it`` is what a reload
  migrates.
* :class:`RealServer` -- alive iff all its checkers are up; its effective weight follows
  ``misc_dynamic`` and FILE_CHECK.
* :class:`VirtualServer` -- adds/removes (or, with ``inhibit_on_failure``, re-weights to
  0) real servers in IPVS, keeps the quorum with hysteresis, swaps the sorry server in
  and out, runs ``notify_up/down`` and ``quorum_up/down``, and writes LVS FIFO lines.

Nothing here does I/O except through the :class:`~fastka.check.sink.IpvsSink` and the
:class:`~fastka.check.notify.Notifier` it is given, and time only through the loop, so
the tests drive it with a fake clock.
"""

from __future__ import annotations

import errno
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from fastka.check.base import LoopLike, Probe, Result, next_due
from fastka.check.notify import Notifier
from fastka.check.sink import DestSpec, IpvsSink
from fastka.check.spec import CheckerSpec, RealServerSpec, ServiceSpec, VirtualServerSpec
from fastka.errors import IpvsError
from fastka.log import NOTICE, get_logger
from fastka.smtp import checker_body, rs_alert, vs_alert

log = get_logger("check")

# Keepalived's BOOTSTRAP_DELAY: every checker waits at least this long at start.
BOOTSTRAP_DELAY = 1.0
# Wall clock = loop (monotonic) time + this, for status reports without a clock read.
WALL_OFFSET = time.time() - time.monotonic()
IPVS_WEIGHT_MAX = 2**31 - 1


class CheckerBase:
    """What a real server needs from any checker."""

    spec: CheckerSpec
    rs: RealServer
    is_up: bool
    # MISC_CHECK misc_dynamic: absolute weight; FILE_CHECK: delta added to the weight.
    weight_override: int | None = None
    weight_delta: int = 0
    # For status reports (wall-clock times).
    last_check: float | None = None
    last_change: float | None = None
    last_ok: bool | None = None
    detail: str | None = None
    failures: int = 0
    target: str = ""

    def start(self, delay: float | None = None) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def take_state(self, old: CheckerBase) -> None:
        """Carry the state of an equal checker across a reload (behaviour.md §R)."""
        self.is_up = old.is_up
        self.weight_override = old.weight_override
        self.weight_delta = old.weight_delta
        self.last_check, self.last_change, self.last_ok = old.last_check, old.last_change, old.last_ok
        self.detail, self.failures = old.detail, old.failures

    def set_enabled(self, enabled: bool) -> None:
        """ha_suspend: stop or resume checking without changing the state."""

    def describe(self) -> str:
        return self.spec.kind


class Checker(CheckerBase):
    """A periodic checker around one :class:`~fastka.check.base.Probe`.

    ``n_steps`` > 1 is HTTP_GET/SSL_GET with several URLs: one URL per run, a failed URL
    is retried and then polled alone while down; once it recovers every URL is checked
    again before the checker is up (``recheck_after_recovery``).
    """

    def __init__(
        self,
        spec: CheckerSpec,
        probe: Probe,
        rs: RealServer,
        loop: LoopLike,
        *,
        target: str = "",
        n_steps: int = 1,
        recheck_after_recovery: bool = False,
        rng: random.Random | None = None,
        log_all_failures: bool = False,
    ) -> None:
        self.spec = spec
        self.probe = probe
        self.rs = rs
        self.loop = loop
        self.target = target
        self.n_steps = max(1, n_steps)
        self.recheck = recheck_after_recovery
        self.rng = rng or random
        self.log_all_failures = log_all_failures or spec.log_all_failures
        # Keepalived's checker state.
        self.is_up = not spec.alpha
        self.has_run = False
        self.retry_it = spec.retry  # the first failure at start-up is final
        self.enabled = True
        # Multi-URL state.
        self.step = 0
        self.failed_step: int | None = None
        self.pass_ok = True  # every step of the current pass succeeded
        self.running = False
        self.timer: Any = None
        self.due = 0.0  # loop time the current/next attempt is scheduled for
        self.stopped = False
        self.weight_override = None
        self.weight_delta = 0

    # -- scheduling
    def start(self, delay: float | None = None) -> None:
        """Arm the first run: ``1 s + random(0..warmup)`` unless a delay is given."""
        if delay is None:
            warmup = self.spec.effective_warmup
            delay = BOOTSTRAP_DELAY + (warmup * self.rng.random() if warmup > 0 else 0.0)
        self.stopped = False
        self._schedule(delay)

    def stop(self) -> None:
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.running:
            self.running = False
            self.probe.cancel()

    def next_run(self) -> float | None:
        return self.timer.when if self.timer is not None and self.timer.active else None

    def _schedule(self, delay: float, now: float | None = None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.due = next_due(self.loop.time() if now is None else now, delay)
        self.timer = self.loop.call_at(self.due, self._run)

    def _run(self) -> None:
        self.timer = None
        if self.stopped:
            return
        if not self.enabled:
            self._schedule(self.spec.delay_loop, self.due)
            return
        self.running = True
        self.probe.start(self.step, self._on_result, self.due)

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled

    # -- the state machine
    def _on_result(self, result: Result) -> None:
        self.running = False
        if self.stopped:
            return
        self.last_check = self.due + WALL_OFFSET  # when the attempt started
        self.last_ok = result.ok
        self.detail = result.reason or None
        self.failures = 0 if result.ok else self.failures + 1
        spec = self.spec
        delay = spec.delay_loop
        step = self.step
        if result.ok:
            self.retry_it = 0
            if result.weight is not None and result.weight != self.weight_override:
                self.weight_override = result.weight
                self.rs.weights_changed()
            if self.failed_step is not None:
                # The failed URL answers again: re-check every URL from the first.
                self.failed_step = None
                self.step = 0
                self.pass_ok = True
                if self.recheck:
                    self.has_run = True
                    self._schedule(0.0 if self._fast() else delay)
                    return
                self.step = (step + 1) % self.n_steps
            else:
                self.step = (step + 1) % self.n_steps
            pass_complete = self.step == 0
            if not self.is_up or not self.has_run:
                if pass_complete and self.pass_ok:
                    if not self.is_up:
                        log.log(NOTICE, "%s on service %s success.", self.describe(), self.target)
                    self.has_run = True
                    self._set_up(True)
                elif self._fast():
                    delay = 0.0
            if pass_complete:
                self.pass_ok = True
        else:
            if self.is_up or not self.has_run:
                if self.retry_it < spec.retry:
                    self.retry_it += 1
                    delay = spec.delay_before_retry
                    if self.log_all_failures or log.isEnabledFor(logging.DEBUG):
                        log.info("%s on service %s failed (%s).", self.describe(), self.target, result.reason)
                else:
                    if self.is_up:
                        log.log(
                            NOTICE,
                            "%s on service %s failed after %d retries (%s).",
                            self.describe(),
                            self.target,
                            self.retry_it,
                            result.reason,
                        )
                    self.retry_it = 0
                    self.failed_step = step
                    self.pass_ok = True
                    self.has_run = True
                    self._set_up(False)
                    if self.n_steps > 1 or self.recheck:
                        delay = max(spec.delay_before_retry, spec.delay_loop)
            else:
                # Down already: poll the failed step (or restart the recovery pass).
                self.failed_step = step
                self.pass_ok = True
                if self.log_all_failures:
                    log.info("%s on service %s failed (%s).", self.describe(), self.target, result.reason)
                if self.n_steps > 1 or self.recheck:
                    delay = max(spec.delay_before_retry, spec.delay_loop)
        self.has_run = True
        if not self.stopped:
            # Keepalived's fixed delay: the next attempt is ``delay`` after this one ended.
            self._schedule(delay)

    def _fast(self) -> bool:
        fast = getattr(self.spec.params, "fast_recovery", False)
        return bool(fast)

    def _set_up(self, up: bool) -> None:
        if self.is_up != up:
            self.is_up = up
            self.last_change = self.due + WALL_OFFSET
            was_alive = self.rs.alive
            self.rs.checker_changed()
            self.rs.vs.checker_alert(self.rs, self, was_alive)

    def take_state(self, old: CheckerBase) -> None:
        super().take_state(old)
        if isinstance(old, Checker):
            self.has_run = old.has_run
            self.retry_it = old.retry_it
            self.step = old.step if old.step < self.n_steps else 0
            self.failed_step = old.failed_step
            self.pass_ok = old.pass_ok
            self.enabled = old.enabled

    def describe(self) -> str:
        return self.spec.kind


class SteadyCheck(Probe, Protocol):
    """What :class:`SteadyChecker` needs from its check (``fastka._check.Check``; the
    reference ``fastka._check_py`` documents it)."""

    expect: int

    @property
    def when(self) -> float | None: ...
    @property
    def due(self) -> float: ...
    @property
    def step(self) -> int: ...
    @property
    def ended(self) -> float: ...
    @property
    def absorbed(self) -> int: ...
    @property
    def last_due(self) -> float: ...
    @property
    def last_reason(self) -> str: ...
    def arm(
        self, when: float, step: int, done: Callable[[Result], None], expect: int = -1, delay: float = 0.0
    ) -> None: ...


class SteadyChecker(Checker):
    """A :class:`Checker` whose attempts run on a compiled check (TCP_CHECK, HTTP_GET).

    Whenever the state machine would do nothing on the next verdict but count it and
    re-arm -- up and a success comes (``delay_loop`` later the next URL), or down and the
    polled URL fails again -- the check is armed to absorb that verdict itself, in C,
    for as long as it repeats (``Check.arm(..., expect, delay)``); the first verdict that
    differs comes back here as if every absorbed one had been seen. Counters and times
    for status reports (``failures``, ``last_check``, ``detail``) are read through the
    check, so they are current without waking Python per attempt.
    """

    def __init__(
        self, spec: CheckerSpec, check: SteadyCheck, rs: RealServer, loop: LoopLike, **kw: Any
    ) -> None:
        self.check = check
        self._expect = -1  # the verdict the check absorbs in the current run
        self._seen = 0  # absorbed verdicts already folded into the fields below
        self._failures = 0
        self._last_check: float | None = None
        self._detail: str | None = None
        self._ended: float | None = None  # end of the attempt being reported
        super().__init__(spec, check, rs, loop, **kw)

    # -- status fields: the Python value plus what the check absorbed since
    def _unseen(self) -> int:
        return self.check.absorbed - self._seen if self._expect >= 0 else 0

    @property
    def failures(self) -> int:
        return self._failures + (self._unseen() if self._expect == 0 else 0)

    @failures.setter
    def failures(self, value: int) -> None:
        self._failures = value

    @property
    def last_check(self) -> float | None:
        return self.check.last_due + WALL_OFFSET if self._unseen() else self._last_check

    @last_check.setter
    def last_check(self, value: float | None) -> None:
        self._last_check = value

    @property
    def detail(self) -> str | None:
        return self.check.last_reason if self._expect == 0 and self._unseen() else self._detail

    @detail.setter
    def detail(self, value: str | None) -> None:
        self._detail = value

    def _fold(self) -> None:
        """Take the absorbed verdicts into the Python fields."""
        if self._unseen():
            self._failures, self._last_check, self._detail = self.failures, self.last_check, self.detail
        self._seen = self.check.absorbed

    # -- scheduling
    def _schedule(self, delay: float, now: float | None = None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._fold()
        if now is None:
            now = self._ended if self._ended is not None else self.loop.time()
        self.due = next_due(now, delay)
        if not self.enabled:
            self.check.cancel()
            self._expect = -1
            self.timer = self.loop.call_at(self.due, self._run)  # _run skips the attempt
            return
        self._expect, steady_delay = self._steady()
        self.check.arm(self.due, self.step, self._on_check_result, self._expect, steady_delay)
        self._seen = 0  # arm() restarts the count

    def _steady(self) -> tuple[int, float]:
        """(verdict, delay): the verdict on which _on_result would change nothing but the
        counters and re-arm ``delay`` after the attempt (-1: none)."""
        spec = self.spec
        if not self.has_run or self.stopped:
            return -1, 0.0
        if self.is_up:
            # retry_it 0: not retrying; failed_step None: not re-checking after recovery
            if self.retry_it == 0 and self.failed_step is None and self.pass_ok:
                return 1, spec.delay_loop
            return -1, 0.0
        # Down: polling the failed URL. A failure of it again changes nothing (unless logged).
        if self.failed_step == self.step and self.pass_ok and not self.log_all_failures:
            if self.n_steps > 1 or self.recheck:
                return 0, max(spec.delay_before_retry, spec.delay_loop)
            return 0, spec.delay_loop
        return -1, 0.0

    def _on_check_result(self, result: Result) -> None:
        check = self.check
        self._fold()
        self._expect = -1
        self.due = check.due
        self.step = check.step
        self._ended = check.ended
        try:
            self._on_result(result)
        finally:
            self._ended = None

    def stop(self) -> None:
        super().stop()
        self._fold()
        self._expect = -1
        self.check.cancel()

    def next_run(self) -> float | None:
        when = self.check.when
        return when if when is not None else super().next_run()

    def set_enabled(self, enabled: bool) -> None:
        was = self.enabled
        super().set_enabled(enabled)
        if was and not enabled:
            when = self.check.when
            if when is not None:
                # Waiting for the next attempt: let _run skip it, from the same time.
                self._fold()
                self.check.cancel()
                self._expect = -1
                self.due = when
                self.timer = self.loop.call_at(when, self._run)
            else:
                self.check.expect = -1  # an attempt in flight: report it (it re-arms in Python)


# ---------------------------------------------------------------------- real servers
class RealServer:
    """A real server's runtime state inside one virtual server."""

    def __init__(self, spec: RealServerSpec, vs: VirtualServer) -> None:
        self.spec = spec
        self.vs = vs
        self.checkers: list[CheckerBase] = []
        self.alive = False
        self.in_ipvs = False  # Keepalived's "set": a dest exists in the kernel table
        self.ipvs_weight = 0  # weight last sent to IPVS
        self.weight = spec.weight  # effective weight

    @property
    def key(self) -> tuple[str, int]:
        return self.spec.key

    def describe(self) -> str:
        return f"[{self.spec.address}]:{self.vs.spec.protocol}:{self.spec.port}"

    def all_up(self) -> bool:
        return all(c.is_up for c in self.checkers)

    def compute_weight(self) -> int:
        weight = self.spec.weight
        for c in self.checkers:
            if c.weight_override is not None:
                weight = c.weight_override
        weight += sum(c.weight_delta for c in self.checkers)
        return min(max(weight, 0), IPVS_WEIGHT_MAX)

    def dest(self, weight: int | None = None) -> DestSpec:
        s = self.spec
        return DestSpec(
            s.address,
            s.port,
            self.weight if weight is None else weight,
            s.fwd,
            s.uthreshold,
            s.lthreshold,
            s.tun_type,
            s.tun_port,
            s.tun_flags,
        )

    def checker_changed(self) -> None:
        alive = self.all_up()
        if alive != self.alive:
            self.vs.set_rs_alive(self, alive)

    def weights_changed(self) -> None:
        weight = self.compute_weight()
        if weight != self.weight:
            self.weight = weight
            self.vs.rs_weight_changed(self)


# ---------------------------------------------------------------------- virtual servers
CheckerFactory = Callable[[CheckerSpec, RealServer], CheckerBase]


class VirtualServer:
    """One virtual server (or virtual_server_group use): its IPVS services, real
    servers, quorum and sorry server."""

    def __init__(
        self,
        spec: VirtualServerSpec,
        sink: IpvsSink,
        notifier: Notifier,
        make_checker: CheckerFactory,
        *,
        rs_init_notifies: bool = False,
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.notifier = notifier
        self.make_checker = make_checker
        self.rs_init_notifies = rs_init_notifies
        self.services: list[ServiceSpec] = list(spec.services)
        self.rss: dict[tuple[str, int], RealServer] = {}
        self.quorum_up = True
        self.sorry_active = False  # the sorry server is in IPVS with its weight
        self.sorry_in_ipvs = False
        self.started = False
        # Called after a change worth reporting (real server up/down, weight, quorum).
        self.on_change: Callable[[], None] | None = None

    def describe(self) -> str:
        return self.spec.describe()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- IPVS plumbing (errors as Keepalived: EEXIST on add, ENOENT on delete ignored)
    def _ipvs(self, op: str, dest: DestSpec | None = None, svcs: Iterable[ServiceSpec] | None = None) -> bool:
        ok = True
        for svc in self.services if svcs is None else svcs:
            try:
                if op == "new_service":
                    self.sink.new_service(svc)
                elif op == "set_service":
                    self.sink.set_service(svc)
                elif op == "del_service":
                    self.sink.del_service(svc)
                elif op == "new_dest":
                    assert dest is not None
                    try:
                        self.sink.new_dest(svc, dest)
                    except IpvsError as exc:
                        if exc.errno != errno.EEXIST:
                            raise
                        # Left by an earlier incarnation of this child: make the weight ours.
                        self.sink.set_dest(svc, dest)
                elif op == "set_dest":
                    assert dest is not None
                    try:
                        self.sink.set_dest(svc, dest)
                    except IpvsError as exc:
                        if exc.errno != errno.ENOENT:
                            raise
                        self.sink.new_dest(svc, dest)
                elif op == "del_dest":
                    assert dest is not None
                    self.sink.del_dest(svc, dest)
            except IpvsError as exc:
                if (op.startswith("new") and exc.errno == errno.EEXIST) or (
                    op.startswith("del") and exc.errno in (errno.ENOENT, errno.ESRCH)
                ):
                    continue
                ok = False
                where = f"{svc.describe()} -> [{dest.address}]:{dest.port}" if dest else svc.describe()
                log.error("IPVS cmd %s error: %s (%s)", op.upper(), exc, where)
        return ok

    def _add_rs(self, rs: RealServer) -> None:
        """Put a live real server into IPVS with its weight."""
        op = "set_dest" if rs.in_ipvs else "new_dest"
        self._ipvs(op, rs.dest())
        rs.in_ipvs = True
        rs.ipvs_weight = rs.weight

    def _remove_rs(self, rs: RealServer, stopping: bool = False) -> None:
        """Take a real server out of service: weight 0 with inhibit_on_failure."""
        if not rs.in_ipvs:
            return
        if rs.spec.inhibit_on_failure and not stopping:
            if rs.ipvs_weight != 0:
                self._ipvs("set_dest", rs.dest(0))
                rs.ipvs_weight = 0
        else:
            self._ipvs("del_dest", rs.dest())
            rs.in_ipvs = False
            rs.ipvs_weight = 0

    def _sorry_dest(self, weight: int | None = None) -> DestSpec:
        s = self.spec.sorry_server
        assert s is not None
        return DestSpec(s.address, s.port, s.weight if weight is None else weight, s.fwd)

    def _rs_in_table(self) -> bool:
        """Live real servers are in IPVS unless the sorry server replaced them."""
        return not self.sorry_active

    # -- start-up
    def start(self, *, checkers_start: bool = True) -> None:
        self._ipvs("new_service")
        for rs_spec in self.spec.real_servers:
            self._new_rs(rs_spec)
        self.quorum_up = self.weight_sum() >= self.spec.quorum + self.spec.hysteresis
        if self.quorum_up:
            self._quorum_alert("start", self.weight_sum())
        if not self.quorum_up and self.spec.sorry_server is not None:
            self._sorry_on()
        for rs in self.rss.values():
            self._initial_rs(rs, init=True)
        if self.spec.sorry_server is not None and self.spec.sorry_server_inhibit and not self.sorry_active:
            self._ipvs("new_dest", self._sorry_dest(0))
            self.sorry_in_ipvs = True
        self.started = True
        if checkers_start:
            for rs in self.rss.values():
                for c in rs.checkers:
                    c.start()

    def _new_rs(self, rs_spec: RealServerSpec) -> RealServer:
        rs = RealServer(rs_spec, self)
        rs.checkers = [self.make_checker(cs, rs) for cs in rs_spec.checkers]
        rs.weight = rs.compute_weight()
        rs.alive = rs.all_up()
        self.rss[rs.key] = rs
        return rs

    def _initial_rs(self, rs: RealServer, init: bool) -> None:
        if rs.alive:
            if self._rs_in_table():
                self._add_rs(rs)
            if init and self.rs_init_notifies:
                self._notify_rs(rs, True)
        elif rs.spec.inhibit_on_failure:
            self._ipvs("new_dest", rs.dest(0))
            rs.in_ipvs = True
            rs.ipvs_weight = 0

    def weight_sum(self) -> int:
        return sum(rs.weight for rs in self.rss.values() if rs.alive)

    # -- real server transitions (Keepalived's perform_svr_state)
    def set_rs_alive(self, rs: RealServer, alive: bool) -> None:
        if rs.alive == alive:
            return
        inhibit = rs.spec.inhibit_on_failure
        if alive:
            verb = "Enabling" if inhibit and rs.in_ipvs else "Adding"
            log.log(NOTICE, "%s service %s to VS %s", verb, rs.describe(), self.describe())
            rs.alive = True
            if self._rs_in_table():
                self._add_rs(rs)
        else:
            verb = "Disabling" if inhibit else "Removing"
            log.log(NOTICE, "%s service %s from VS %s", verb, rs.describe(), self.describe())
            rs.alive = False
            if self._rs_in_table():
                self._remove_rs(rs)
        self._notify_rs(rs, alive)
        self.update_quorum()
        self._changed()

    def rs_weight_changed(self, rs: RealServer) -> None:
        if rs.alive and rs.in_ipvs and self._rs_in_table() and rs.ipvs_weight != rs.weight:
            log.info("Changing weight of %s in VS %s to %d", rs.describe(), self.describe(), rs.weight)
            self._ipvs("set_dest", rs.dest())
            rs.ipvs_weight = rs.weight
        self.update_quorum()
        self._changed()

    def _notify_rs(self, rs: RealServer, up: bool) -> None:
        script = rs.spec.notify_up if up else rs.spec.notify_down
        if script is not None:
            self.notifier.run_script(script)
        self.notifier.fifo(f"RS {rs.describe()} {self.describe()} {'UP' if up else 'DOWN'}")

    # -- SMTP alerts (fastka.smtp has Keepalived's texts)
    def checker_alert(self, rs: RealServer, checker: CheckerBase, was_alive: bool) -> None:
        """A checker of ``rs`` changed: mail it (after the real server's own change)."""
        if not rs.spec.smtp_alert or (self.spec.rs_alert_changes_only and rs.alive == was_alive):
            return
        body = checker_body(checker.describe(), checker.is_up, checker.detail or "", checker.target)
        self.notifier.alert(*rs_alert(rs.describe(), self.describe(), rs.alive, body))

    def _quorum_alert(self, event: str, weight_sum: int) -> None:
        if self.spec.smtp_alert:
            self.notifier.alert(
                *vs_alert(self.describe(), event, self.spec.quorum, self.spec.hysteresis, weight_sum)
            )

    # -- quorum (Keepalived's update_quorum_state)
    def update_quorum(self) -> None:
        spec = self.spec
        weight_sum = self.weight_sum()
        if self.quorum_up and (weight_sum == 0 or weight_sum < spec.quorum - spec.hysteresis):
            self.quorum_up = False
            log.log(
                NOTICE,
                "Lost quorum %d-%d=%d > %d for VS %s",
                spec.quorum,
                spec.hysteresis,
                spec.quorum - spec.hysteresis,
                weight_sum,
                self.describe(),
            )
            if spec.sorry_server is not None and not self.sorry_active:
                self._sorry_on()
                for rs in self.rss.values():
                    if rs.alive:
                        self._remove_rs(rs)
            if spec.quorum_down is not None:
                self.notifier.run_script(spec.quorum_down)
            self.notifier.fifo(f"VS {self.describe()} DOWN")
            self._quorum_alert("lost", weight_sum)
        elif not self.quorum_up and weight_sum > 0 and weight_sum >= spec.quorum + spec.hysteresis:
            self.quorum_up = True
            log.log(
                NOTICE,
                "Gained quorum %d+%d=%d <= %d for VS %s",
                spec.quorum,
                spec.hysteresis,
                spec.quorum + spec.hysteresis,
                weight_sum,
                self.describe(),
            )
            if self.sorry_active:
                self._sorry_off()
                for rs in self.rss.values():
                    if rs.alive:
                        self._add_rs(rs)
            if spec.quorum_up is not None:
                self.notifier.run_script(spec.quorum_up)
            self.notifier.fifo(f"VS {self.describe()} UP")
            self._quorum_alert("gained", weight_sum)

    def _sorry_on(self) -> None:
        ss = self.spec.sorry_server
        assert ss is not None
        log.log(NOTICE, "Adding sorry server [%s]:%d to VS %s", ss.address, ss.port, self.describe())
        self._ipvs("set_dest" if self.sorry_in_ipvs else "new_dest", self._sorry_dest())
        self.sorry_in_ipvs = True
        self.sorry_active = True

    def _sorry_off(self) -> None:
        ss = self.spec.sorry_server
        assert ss is not None
        if self.spec.sorry_server_inhibit:
            log.log(NOTICE, "Disabling sorry server [%s]:%d from VS %s", ss.address, ss.port, self.describe())
            self._ipvs("set_dest", self._sorry_dest(0))
        else:
            log.log(NOTICE, "Removing sorry server [%s]:%d from VS %s", ss.address, ss.port, self.describe())
            self._ipvs("del_dest", self._sorry_dest())
            self.sorry_in_ipvs = False
        self.sorry_active = False

    # -- stopping
    def stop_checkers(self) -> None:
        for rs in self.rss.values():
            for c in rs.checkers:
                c.stop()

    def shutdown(self, *, release: bool, notify: bool) -> None:
        """Stop checking; with ``notify`` (omega, or removal on reload) run the down
        notifiers; with ``release`` remove what we put in IPVS."""
        self.stop_checkers()
        if notify:
            for rs in self.rss.values():
                if rs.alive:
                    self._notify_rs(rs, False)
            if self.quorum_up:
                if self.spec.quorum_down is not None:
                    self.notifier.run_script(self.spec.quorum_down)
                self.notifier.fifo(f"VS {self.describe()} DOWN")
        if release:
            for rs in self.rss.values():
                if rs.in_ipvs:
                    self._ipvs("del_dest", rs.dest())
                    rs.in_ipvs = False
            if self.sorry_in_ipvs:
                self._ipvs("del_dest", self._sorry_dest())
                self.sorry_in_ipvs = False
            self._ipvs("del_service")

    def delete_services(self) -> None:
        """DEL_SERVICE for each of our services (the kernel drops their dests with them)."""
        self._ipvs("del_service")

    def set_checkers_enabled(self, enabled: bool) -> None:
        for rs in self.rss.values():
            for c in rs.checkers:
                c.set_enabled(enabled)

    # -- reload (behaviour.md §R: compare and migrate)
    def migrate(self, old: VirtualServer) -> None:
        """Take over ``old`` (same key): keep IPVS entries and checker state that survive."""
        self.quorum_up = old.quorum_up
        self.sorry_active = old.sorry_active
        self.sorry_in_ipvs = old.sorry_in_ipvs
        # When each surviving checker was due, so that a reload does not shift schedules.
        due = {id(c): c.next_run() for r in old.rss.values() for c in r.checkers if isinstance(c, Checker)}
        old.stop_checkers()
        # Services: the same key may carry new attributes; group members may change.
        old_svcs = {s.key: s for s in old.services}
        new_keys = {s.key for s in self.services}
        for svc in old.services:
            if svc.key not in new_keys:
                for rs in old.rss.values():
                    if rs.in_ipvs:
                        self._ipvs("del_dest", rs.dest(), svcs=[svc])
                self._ipvs("del_service", svcs=[svc])
        added_svcs = []
        for svc in self.services:
            prev = old_svcs.get(svc.key)
            if prev is None:
                self._ipvs("new_service", svcs=[svc])
                added_svcs.append(svc)
            elif prev != svc:
                self._ipvs("set_service", svcs=[svc])
        # Sorry server changed: drop the old one; the quorum check below decides again.
        if old.spec.sorry_server != self.spec.sorry_server and old.sorry_in_ipvs:
            kept = [s for s in self.services if s not in added_svcs]
            old._ipvs("del_dest", old._sorry_dest(), svcs=kept)
            self.sorry_in_ipvs = False
            self.sorry_active = False
        # Real servers.
        new_keys_rs = {r.key for r in self.spec.real_servers}
        for key, ors in old.rss.items():
            if key not in new_keys_rs and ors.in_ipvs:
                log.info("service %s no longer exist", ors.describe())
                self._ipvs("del_dest", ors.dest())
        to_start: list[CheckerBase | _Deferred] = []
        fresh: list[RealServer] = []
        for rs_spec in self.spec.real_servers:
            ors_opt = old.rss.get(rs_spec.key)
            rs = RealServer(rs_spec, self)
            self.rss[rs.key] = rs
            rs.checkers = [self.make_checker(cs, rs) for cs in rs_spec.checkers]
            if ors_opt is None:
                rs.weight = rs.compute_weight()
                rs.alive = rs.all_up()
                fresh.append(rs)
                to_start.extend(rs.checkers)
                continue
            ors = ors_opt
            rs.in_ipvs = ors.in_ipvs
            rs.ipvs_weight = ors.ipvs_weight
            rs.alive = ors.alive
            # Pair checkers by identity, first match in order.
            unused = list(ors.checkers)
            for c in rs.checkers:
                match = next((o for o in unused if o.spec.identity() == c.spec.identity()), None)
                if match is not None:
                    unused.remove(match)
                    c.take_state(match)
                    when = due.get(id(match))
                    delay = None if when is None else max(0.0, when - _now(match))
                    if delay is None and isinstance(match, Checker):
                        delay = c.spec.delay_loop
                    to_start.append(_Deferred(c, delay))
                else:
                    to_start.append(c)
            rs.weight = rs.compute_weight()
            for svc in added_svcs:
                if rs.in_ipvs:
                    self._ipvs("new_dest", rs.dest(rs.ipvs_weight), svcs=[svc])
            if rs.in_ipvs and (
                ors.spec.fwd != rs_spec.fwd
                or ors.spec.uthreshold != rs_spec.uthreshold
                or ors.spec.lthreshold != rs_spec.lthreshold
                or (rs.alive and rs.ipvs_weight != rs.weight)
            ):
                weight = rs.weight if rs.alive and self._rs_in_table() else rs.ipvs_weight
                self._ipvs("set_dest", rs.dest(weight))
                rs.ipvs_weight = weight
            # Checkers added or removed may change the verdict.
            alive = rs.all_up()
            if alive != rs.alive:
                rs.alive = not alive
                self.set_rs_alive(rs, alive)
            elif rs.alive and self._rs_in_table() and (not rs.in_ipvs or rs.ipvs_weight != rs.weight):
                self._add_rs(rs)
        for rs in fresh:
            self._initial_rs(rs, init=False)
        if self.spec.sorry_server is not None and self.sorry_in_ipvs:
            for svc in added_svcs:
                self._ipvs("new_dest", self._sorry_dest(None if self.sorry_active else 0), svcs=[svc])
        self.update_quorum()
        if self.spec.sorry_server is not None and not self.quorum_up and not self.sorry_active:
            self._sorry_on()
            for rs in self.rss.values():
                if rs.alive:
                    self._remove_rs(rs)
        self.started = True
        for item in to_start:
            if isinstance(item, _Deferred):
                item.checker.start(item.delay)
            else:
                item.start()


class _Deferred:
    __slots__ = ("checker", "delay")

    def __init__(self, checker: CheckerBase, delay: float | None) -> None:
        self.checker = checker
        self.delay = delay


def _now(checker: CheckerBase) -> float:
    loop = getattr(checker, "loop", None)
    return float(loop.time()) if loop is not None else 0.0
