"""KernelSink's batch: commands queued inside ``batch()`` go to the kernel in one
``Ipvs.execute`` call, with the checker's error rules (EEXIST on add and ENOENT on delete
ignored, NEW_DEST that exists becomes SET_DEST, SET_DEST of a missing dest becomes
NEW_DEST, anything else logged); outside a batch each command is sent and raises."""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

import pytest

from fastka.check.sink import DestSpec, KernelSink
from fastka.check.spec import ServiceSpec
from fastka.errors import IpvsError
from fastka.ipvs.ipvs import Op

SVC = ServiceSpec(af=socket.AF_INET, address="10.0.0.10", port=80)
RS1 = DestSpec("10.1.0.11", 80, 1, "NAT")
RS2 = DestSpec("10.1.0.12", 80, 2, "NAT")


class FakeIpvs:
    """Records every execute() and answers with the errno ``fail`` gives a command."""

    def __init__(self, fail: dict[tuple[str, str | None], int] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail or {}
        self.flushed = 0

    @staticmethod
    def _name(op: Op) -> tuple[str, str | None]:
        return op.cmd.name, (op.dest.addr if op.dest is not None else None)

    def execute(self, ops: list[Op], *, keepalived_errors: bool = True) -> list[IpvsError]:
        assert not keepalived_errors, "the sink applies the checker's rules itself"
        self.calls.append([" ".join(str(x) for x in self._name(op) if x) for op in ops])
        out = []
        for op in ops:
            err = self.fail.get(self._name(op))
            if err:
                out.append(IpvsError(err, f"IPVS_CMD_{op.cmd.name}", service=op.service, dest=op.dest))
        return out

    def new_dest(self, svc: Any, dest: Any) -> None:
        self.execute_one("NEW_DEST", dest)

    def execute_one(self, name: str, dest: Any) -> None:
        self.calls.append([f"{name} {dest.addr}"])
        err = self.fail.get((name, dest.addr))
        if err:
            raise IpvsError(err, f"IPVS_CMD_{name}")

    def flush(self) -> None:
        self.calls.append(["FLUSH"])


def test_batch_sends_once_in_order() -> None:
    ipvs = FakeIpvs()
    sink = KernelSink(ipvs)
    with sink.batch():
        sink.new_service(SVC)
        sink.new_dest(SVC, RS1)
        sink.new_dest(SVC, RS2)
        sink.set_dest(SVC, RS2)
        assert ipvs.calls == [], "nothing sent inside the block"
    assert ipvs.calls == [["NEW_SERVICE", "NEW_DEST 10.1.0.11", "NEW_DEST 10.1.0.12", "SET_DEST 10.1.0.12"]]


def test_batch_error_rules(caplog: pytest.LogCaptureFixture) -> None:
    ipvs = FakeIpvs(
        {
            ("NEW_SERVICE", None): errno.EEXIST,  # left by an earlier child: fine
            ("NEW_DEST", "10.1.0.11"): errno.EEXIST,  # -> SET_DEST (our weight)
            ("SET_DEST", "10.1.0.12"): errno.ENOENT,  # -> NEW_DEST
            ("DEL_DEST", "10.1.0.13"): errno.ENOENT,  # already gone: fine
            ("NEW_DEST", "10.1.0.14"): errno.EINVAL,  # a real error: logged
        }
    )
    sink = KernelSink(ipvs)
    with caplog.at_level(logging.ERROR, "fastka.check"), sink.batch():
        sink.new_service(SVC)
        sink.new_dest(SVC, RS1)
        sink.set_dest(SVC, RS2)
        sink.del_dest(SVC, DestSpec("10.1.0.13", 80, 1, "NAT"))
        sink.new_dest(SVC, DestSpec("10.1.0.14", 80, 1, "NAT"))
    assert len(ipvs.calls) == 2
    assert ipvs.calls[1] == ["SET_DEST 10.1.0.11", "NEW_DEST 10.1.0.12"]
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1 and "NEW_DEST" in errors[0] and "Invalid argument" in errors[0]


def test_flush_in_a_batch_keeps_the_order() -> None:
    ipvs = FakeIpvs()
    sink = KernelSink(ipvs)
    with sink.batch():
        sink.new_service(SVC)
        sink.flush()
        sink.new_service(SVC)
    assert ipvs.calls == [["NEW_SERVICE"], ["FLUSH"], ["NEW_SERVICE"]]


def test_outside_a_batch_each_command_raises() -> None:
    ipvs = FakeIpvs({("NEW_DEST", "10.1.0.11"): errno.EEXIST})
    sink = KernelSink(ipvs)
    with pytest.raises(IpvsError) as info:
        sink.new_dest(SVC, RS1)
    assert info.value.errno == errno.EEXIST
    assert ipvs.calls == [["NEW_DEST 10.1.0.11"]]
