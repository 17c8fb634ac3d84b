"""Status document costs at scale: JSON, Prometheus rendering, the child->parent snapshot.

    .venv/bin/pytest bench/test_status.py --benchmark-only --benchmark-group-by=group

Cases are the number of VRRP instances plus virtual servers x real servers in one
document (what one `/status` or `/metrics` request costs the parent, and what one status
push costs a child).
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from fastka import metrics, status
from fastka.ipc import Channel, Message, encode
from fastka.loop import Loop

CASES = {"100": (100, 10, 10), "1000": (1000, 100, 10), "10000": (10000, 300, 20)}


def _document(instances: int, vss: int, rss: int) -> dict[str, Any]:
    now = time.time()
    board = status.Board(config_file="/etc/keepalived/keepalived.conf", config_id="lb1")
    board.sections["vrrp"] = {
        "instances": [
            {
                "name": f"VI_{i}",
                "vrid": i % 255 + 1,
                "family": "inet",
                "version": 2,
                "interface": f"eth{i // 255}",
                "state": "MASTER" if i % 2 else "BACKUP",
                "wanted_state": "BACKUP",
                "priority": 100,
                "effective_priority": 100,
                "advert_interval": 1.0,
                "master_address": "192.0.2.1",
                "master_priority": 100,
                "virtual_ipaddresses": [f"10.{i // 250}.{i % 250}.1/24"],
                "sync_group": None,
                "last_transition": {"time": now, "from": "BACKUP", "to": "MASTER", "reason": "startup"},
                "transitions": 1,
                "stats": {
                    "adverts_sent": i * 10,
                    "adverts_received": i,
                    "became_master": 1,
                    "released_master": 0,
                    "priority_zero_sent": 0,
                    "priority_zero_received": 0,
                    "drops": {"ttl": 0, "checksum": 1},
                },
                "tracked": [],
            }
            for i in range(instances)
        ],
        "sync_groups": [],
        "tracked": [],
    }
    board.sections["checker"] = {
        "virtual_servers": [
            {
                "name": f"[192.0.2.{v % 250}]:tcp:{80 + v}",
                "family": "inet",
                "address": f"192.0.2.{v % 250}",
                "port": 80 + v,
                "protocol": "tcp",
                "fwmark": None,
                "group": None,
                "scheduler": "wrr",
                "forwarding": "NAT",
                "quorum": 1,
                "quorum_up": True,
                "alive_weight": rss,
                "sorry_server": None,
                "real_servers": [
                    {
                        "name": f"[198.51.100.{r}]:tcp:{80 + v}",
                        "address": f"198.51.100.{r}",
                        "port": 80 + v,
                        "up": True,
                        "weight": 1,
                        "configured_weight": 1,
                        "in_ipvs": True,
                        "checkers": [
                            {
                                "type": "HTTP_GET",
                                "target": f"[198.51.100.{r}]:{80 + v}",
                                "up": True,
                                "last_result": "success",
                                "last_check": now,
                                "last_change": None,
                                "failures": 0,
                                "detail": None,
                            }
                        ],
                    }
                    for r in range(rss)
                ],
            }
            for v in range(vss)
        ]
    }
    return board.document()


@pytest.mark.parametrize("case", list(CASES))
def test_status_json(benchmark: Any, case: str) -> None:
    benchmark.group = "status_json"
    doc = _document(*CASES[case])
    text = benchmark(status.to_json, doc)
    assert text.startswith("{")


RENDERERS = {"fastka": metrics.render, "prometheus_client": metrics.render_reference}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", list(RENDERERS))
def test_metrics_render(benchmark: Any, impl: str, case: str) -> None:
    """/metrics: fastka's renderer against prometheus_client's generate_latest (the same bytes)."""
    benchmark.group = "metrics_render"
    doc = _document(*CASES[case])
    out = benchmark(RENDERERS[impl], doc)
    assert b"fastka_vrrp_instance_state" in out


@pytest.mark.parametrize("case", list(CASES))
def test_status_push(benchmark: Any, case: str) -> None:
    """One snapshot from a child to the parent: pickle, socket, unpickle, on one loop."""
    benchmark.group = "status_push"
    section = _document(*CASES[case])["vrrp"]
    loop = Loop()
    a, b = socket.socketpair()
    got: list[Message] = []
    sender = Channel(loop, a, lambda m: None, lambda: None)
    receiver = Channel(loop, b, got.append, lambda: None)

    def push() -> None:
        n = len(got)
        sender.send({"op": "status", "status": section})
        while len(got) == n:
            loop.run_once(1.0)

    try:
        benchmark(push)
    finally:
        sender.close()
        receiver.close()
        loop.close()
    assert got[-1]["status"]["instances"][0]["name"] == "VI_0"
    assert len(encode({"status": section})) > 1000
