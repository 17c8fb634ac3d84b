"""A stand-in subsystem and configuration for the daemon's tests, and their runner.

``python tests/daemon/dummy_subsystem.py [fastka options]`` runs the real parent
(:func:`fastka.daemon.run`) with real forked children, but the children run
:class:`DummySubsystem` and the configuration is a small JSON file::

    {"vrrp": {"VI_1": {"state": "MASTER", "priority": 100}},      # -> VRRP child
     "checker": {"VS_1": {"up": true}},                         # -> checker child
     "global_defs": {"child_wait_time": 2, "fastka_status_file": "/x/status.json"},
     "behaviour": {"vrrp": {"stop_delay": 0.2, "start_exit": 2, "reload_fail": true,
                            "hang": false}}}

A file that is not valid JSON is a configuration with errors (reload refused). Every
subsystem event is appended to ``$FASTKA_DUMMY_LOG`` as ``EVENT role pid detail`` lines.
Watchdog timings are short (``$FASTKA_TEST_HELLO`` = ``interval,timeout``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastka.child import ChildContext, SubsystemBase, facts_of
from fastka.cli import Options, parse_args
from fastka.daemon import ConfigLoadError, Loaded, Tuning, load_config, run


@dataclass
class DummyGlobals:
    router_id: str = "dummy"
    child_wait_time: int = 5
    state_dump_file: str | None = None
    stats_dump_file: str | None = None
    json_dump_file: str | None = None
    fastka_status_socket: str | None = None
    fastka_status_http: str | None = None
    fastka_status_file: str | None = None
    fastka_status_file_interval: float | None = None


@dataclass
class DummyConfig:
    vrrp: dict[str, dict[str, Any]] = field(default_factory=dict)
    checker: dict[str, dict[str, Any]] = field(default_factory=dict)
    behaviour: dict[str, dict[str, Any]] = field(default_factory=dict)
    global_defs: DummyGlobals = field(default_factory=DummyGlobals)

    @property
    def has_vrrp(self) -> bool:
        return bool(self.vrrp)

    @property
    def has_checker(self) -> bool:
        return bool(self.checker)


def load(opts: Options) -> Loaded:
    try:
        with open(opts.config_file, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigLoadError(f"Configuration file {opts.config_file} does not exist") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        return Loaded(config=None, facts=facts_of(None), errors=[f"({opts.config_file}) {exc}"], fatal=True)
    config = DummyConfig(
        vrrp=raw.get("vrrp", {}),
        checker=raw.get("checker", {}),
        behaviour=raw.get("behaviour", {}),
        global_defs=DummyGlobals(**raw.get("global_defs", {})),
    )
    return Loaded(config=config, facts=facts_of(config))


def _instances(config: Any) -> dict[str, dict[str, Any]]:
    """Instances of a dummy configuration, or of a real one (``fastka.config.model.Config``)."""
    if hasattr(config, "vrrp_instances"):
        return {name: {"state": str(inst.state).upper()} for name, inst in config.vrrp_instances.items()}
    return dict(config.vrrp)


def _servers(config: Any) -> dict[str, dict[str, Any]]:
    if hasattr(config, "virtual_servers"):
        return {vs.describe(): {"up": True} for vs in config.virtual_servers}
    return dict(config.checker)


def _names(config: Any, role: str) -> list[str]:
    return list(_instances(config) if role == "vrrp" else _servers(config))


def _event(*words: object) -> None:
    path = os.environ.get("FASTKA_DUMMY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(" ".join(str(w) for w in words) + "\n")


class DummySubsystem(SubsystemBase):
    def __init__(self, role: str) -> None:
        self.role = role
        self.ctx: ChildContext | None = None
        self.config: DummyConfig | None = None
        self.reloads = 0
        self.adverts = 0
        self.stats_calls = 0  # numbers each stats text, so a test knows which one it reads
        self.resumed: Any = None

    def _behaviour(self) -> Mapping[str, Any]:
        behaviour: Mapping[str, Any] = getattr(self.config, "behaviour", {}).get(self.role, {})
        return behaviour

    def start(self, ctx: ChildContext, config: Any) -> None:
        self.ctx, self.config = ctx, config
        self.resumed = ctx.resume
        b = self._behaviour()
        _event("start", self.role, os.getpid(), ctx.incarnation, json.dumps(ctx.resume))
        if "start_exit" in b:
            ctx.exit(int(b["start_exit"]), "asked to")
            return
        if b.get("start_raise"):
            raise RuntimeError("start failed on purpose")
        ctx.loop.call_periodic(0.05, self._tick)

    def _tick(self) -> None:
        self.adverts += 1  # a counter that changes without a status_changed() call

    def reload(self, config: Any) -> None:
        self.config = config
        self.reloads += 1
        time.sleep(float(os.environ.get("FASTKA_DUMMY_RELOAD_SLEEP", "0")))  # a slow reload
        _event("reload", self.role, os.getpid(), self.reloads, ",".join(self._names()))
        if self._behaviour().get("reload_fail"):
            raise RuntimeError("reload refused on purpose")
        assert self.ctx is not None
        self.ctx.status_changed()

    def stop(self, done: Callable[[], None]) -> None:
        _event("stop", self.role, os.getpid())
        delay = float(self._behaviour().get("stop_delay", 0))
        assert self.ctx is not None
        if self._behaviour().get("stop_never"):
            return
        if delay:
            self.ctx.loop.call_later(delay, done)
        else:
            done()

    def _names(self) -> list[str]:
        return _names(self.config, self.role)

    def status(self) -> Mapping[str, Any]:
        assert self.config is not None
        if self.role == "vrrp":
            instances = []
            for i, (name, inst) in enumerate(_instances(self.config).items()):
                instances.append(
                    {
                        "name": name,
                        "vrid": 50 + i,
                        "family": "inet",
                        "version": 2,
                        "interface": "eth0",
                        "state": inst.get("state", "BACKUP"),
                        "wanted_state": inst.get("state", "BACKUP"),
                        "priority": inst.get("priority", 100),
                        "effective_priority": inst.get("priority", 100) - 10,
                        "advert_interval": 1.0,
                        "master_address": "192.0.2.1",
                        "master_priority": inst.get("priority", 100),
                        "virtual_ipaddresses": ["192.0.2.100/24"],
                        "sync_group": None,
                        "last_transition": {
                            "time": time.time(),
                            "from": "BACKUP",
                            "to": "MASTER",
                            "reason": "test",
                        },
                        "transitions": 1,
                        "stats": {
                            "adverts_sent": self.adverts,
                            "adverts_received": 7,
                            "became_master": 1,
                            "released_master": 0,
                            "priority_zero_sent": 0,
                            "priority_zero_received": 0,
                            "drops": {"ttl": 2, "checksum": 1},
                        },
                        "tracked": [],
                    }
                )
            return {
                "instances": instances,
                "sync_groups": [
                    {
                        "name": "VG_1",
                        "state": "MASTER",
                        "instances": self._names(),
                        "last_transition": None,
                    }
                ],
                "tracked": [
                    {
                        "type": "script",
                        "name": "chk",
                        "up": True,
                        "status": "GOOD",
                        "value": 0,
                        "last_change": time.time(),
                        "users": self._names(),
                    }
                ],
                "pid": os.getpid(),
                "reloads": self.reloads,
                "resumed": self.resumed,
            }
        servers = []
        for name, vs in _servers(self.config).items():
            servers.append(
                {
                    "name": name,
                    "family": "inet",
                    "address": "192.0.2.10",
                    "port": 80,
                    "protocol": "tcp",
                    "fwmark": None,
                    "group": None,
                    "scheduler": "wrr",
                    "forwarding": "NAT",
                    "quorum": 1,
                    "quorum_up": bool(vs.get("up", True)),
                    "alive_weight": 1,
                    "sorry_server": None,
                    "real_servers": [
                        {
                            "name": "[192.0.2.21]:tcp:80",
                            "address": "192.0.2.21",
                            "port": 80,
                            "up": bool(vs.get("up", True)),
                            "weight": 1,
                            "configured_weight": 1,
                            "in_ipvs": True,
                            "checkers": [
                                {
                                    "type": "TCP_CHECK",
                                    "target": "[192.0.2.21]:80",
                                    "up": bool(vs.get("up", True)),
                                    "last_result": "success",
                                    "last_check": time.time(),
                                    "last_change": None,
                                    "failures": 0,
                                    "detail": None,
                                }
                            ],
                        }
                    ],
                }
            )
        return {"virtual_servers": servers, "pid": os.getpid(), "reloads": self.reloads}

    def checkpoint(self) -> Any:
        assert self.ctx is not None
        return {"pid": os.getpid(), "incarnation": self.ctx.incarnation, "reloads": self.reloads}

    def dump(self) -> str:
        # Big enough that a non-atomic writer would be caught half-way by a reader.
        head = f"dummy {self.role} data dump pid {os.getpid()}\n"
        return head + "x" * 2_000_000 + "\nEND\n"

    def stats(self, clear: bool) -> str:
        self.stats_calls += 1
        text = f"dummy {self.role} stats pid {os.getpid()} call {self.stats_calls} adverts {self.adverts}\n"
        if clear:
            self.adverts = 0
        return text

    def json_dump(self) -> Any:
        return [{"data": {"iname": name}, "stats": {"advert_sent": self.adverts}} for name in self._names()]


def main(argv: list[str]) -> int:
    opts = parse_args(argv)
    interval, _, timeout = os.environ.get("FASTKA_TEST_HELLO", "0.2,1.5").partition(",")
    tuning = Tuning(
        hello_interval=float(interval),
        hello_timeout=float(timeout),
        start_timeout=10.0,
        reload_timeout=10.0,
        stable_time=2.0,
        backoff_first=0.3,
        backoff_max=2.0,
    )
    real = os.environ.get("FASTKA_TEST_REAL_CONFIG") == "1"  # keepalived.conf through fastka.config
    return run(
        opts,
        loader=load_config if real else load,
        factories={"vrrp": lambda: DummySubsystem("vrrp"), "checker": lambda: DummySubsystem("checker")},
        tuning=tuning,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
