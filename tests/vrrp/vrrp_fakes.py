"""Fakes for the VRRP state-machine tests: an InstanceIO that records what it is asked,
and a fake clock with timers the tests fire explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastka.config.model import VrrpInstance as VrrpInstanceConfig
from fastka.vrrp.instance import Instance, State, Transition


def cfg(name: str = "VI_1", **kw: Any) -> VrrpInstanceConfig:
    kw.setdefault("virtual_router_id", 51)
    kw.setdefault("interface", "eth0")
    return VrrpInstanceConfig(name=name, **kw)


class Clock:
    """The loop's clock in a test: it says what ``now`` says."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeIO:
    """Records every request of the state machine as (name, args) tuples."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    down_timer: float | None = None
    adverts_running: bool = False
    followed: tuple[bytes, int, int, float] | None = None
    has_addresses: bool = False
    notified: list[tuple[State, int]] = field(default_factory=list)
    events: list[tuple[str, int]] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    priority: int | None = None

    def _rec(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def clear(self) -> None:
        self.calls.clear()

    def adverts(self) -> list[int]:
        """Priorities of the immediate adverts requested."""
        return [c[1][0] for c in self.calls if c[0] == "send_advert"]

    def send_advert(self, priority: int, *, reset_timer: bool = False) -> None:
        self._rec("send_advert", priority, reset_timer)

    def start_adverts(self) -> None:
        self.adverts_running = True
        self._rec("start_adverts")

    def stop_adverts(self) -> None:
        self.adverts_running = False
        self._rec("stop_adverts")

    def arm_down_timer(self, when: float) -> None:
        self.down_timer = when
        self._rec("arm_down_timer", when)

    def cancel_down_timer(self) -> None:
        self.down_timer = None
        self._rec("cancel_down_timer")

    def follow(self, master: bytes | None, priority: int, adver_int: int, down_interval: float) -> None:
        self.followed = None if master is None else (master, priority, adver_int, down_interval)

    def set_priority(self, priority: int) -> None:
        self.priority = priority
        self._rec("set_priority", priority)

    def add_addresses(self) -> None:
        self.has_addresses = True
        self._rec("add_addresses")

    def remove_addresses(self) -> None:
        self.has_addresses = False
        self._rec("remove_addresses")

    def garp_master(self) -> None:
        self._rec("garp_master")

    def garp_lower_prio(self) -> None:
        self._rec("garp_lower_prio")

    def cancel_garps(self) -> None:
        self._rec("cancel_garps")

    def notify(self, state: State, priority: int) -> None:
        self.notified.append((state, priority))
        self._rec("notify", state, priority)

    def notify_event(self, event: str, priority: int) -> None:
        self.events.append((event, priority))
        self._rec("notify_event", event, priority)

    def transition(self, t: Transition) -> None:
        self.transitions.append(t)


def make(name: str = "VI_1", saddr: bytes = bytes([10, 0, 0, 1]), **kw: Any) -> tuple[Instance, FakeIO]:
    io = FakeIO()
    inst = Instance(cfg(name, **kw), io)
    inst.saddr = saddr
    return inst, io


A_LOW = bytes([10, 0, 0, 0])
A_HIGH = bytes([10, 0, 0, 9])
