"""The checker child's subsystem: compiled configuration in, IPVS and status out."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from fastka.check.sink import MemorySink
from fastka.check.subsystem import CheckerSubsystem
from fastka.config import loads
from fastka.loop import Loop

CONF = """
virtual_server 10.0.0.1 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    sorry_server 10.9.9.9 80
    real_server 10.1.0.1 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
"""


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


def test_start_status_reload_stop(loop: Loop) -> None:
    sink = MemorySink()
    changes: list[int] = []
    ctx: Any = SimpleNamespace(
        loop=loop,
        options=SimpleNamespace(dont_release_ipvs=False),
        status_changed=lambda: changes.append(1),
        exit=lambda code, reason: pytest.fail(reason),
    )
    sub = CheckerSubsystem(sink_factory=lambda: sink)
    config, _ = loads(CONF)
    sub.start(ctx, config)
    key = next(iter(sink.services))
    assert sink.weights(key) == {("10.1.0.1", 80): 2}
    (vs,) = sub.status()["virtual_servers"]
    assert vs["name"] == "[10.0.0.1]:tcp:80" and vs["quorum_up"] and vs["alive_weight"] == 2
    assert vs["sorry_server"] == {"name": "[10.9.9.9]:tcp:80", "active": False}
    (rs,) = vs["real_servers"]
    assert rs["name"] == "[10.1.0.1]:tcp:80" and rs["weight"] == 2 and rs["in_ipvs"]
    assert rs["checkers"][0]["type"] == "TCP_CHECK" and rs["checkers"][0]["target"] == "[10.1.0.1]:tcp:80"
    assert "RS [10.1.0.1]:tcp:80 UP weight 2" in sub.dump()
    new, _ = loads(CONF.replace("weight 2", "weight 5"))
    sub.reload(new)
    assert sink.weights(key) == {("10.1.0.1", 80): 5}
    assert changes
    done: list[bool] = []
    sub.stop(lambda: done.append(True))
    assert done == [True] and sink.services == {}
