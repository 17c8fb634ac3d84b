"""IPVS netlink message construction: fastka's C codec, its Python reference, pyroute2.

    .venv/bin/pytest bench/test_ipvs_msgs.py bench/test_harness_floor.py --benchmark-only

Group ``ipvs-build`` (per call: N messages; the comparison table shows the time per
message). Cases: ``new_service`` (N services, each ``IPVS_CMD_NEW_SERVICE``) and
``new_dest`` (N dests over N/4 services, each ``IPVS_CMD_NEW_DEST`` with its service nest,
as Keepalived sends it).

* ``fastka``: ``fastka.ipvs._cffi.build_batch`` -- the batch API: one call turns arrays of
  packed records (what :class:`fastka.ipvs.Service`/``Dest`` carry, built once) into N
  messages in a caller's buffer. Target: <= 50 ns per message.
* ``python``: the same call on the reference ``fastka._ipvs_py`` (struct-based).
* ``pyroute2``: what ``IPVS().service("add", ...)``/``.dest("add", ...)`` build for one
  request: an ``ipvsmsg`` with ``IPVSService.dump_nla()`` (``dump_key()`` + ``IPVSDest``
  for dests), encoded; the ``IPVSService``/``IPVSDest`` objects are made beforehand, like
  fastka's records. It builds one message per call, so it gets fewer (N = 100).

Group ``ipvs-execute``: :meth:`fastka.ipvs.Ipvs.execute` of 1000 services x 4 dests
(5000 commands) against a transport that only answers the final ACK -- everything fastka
does in Python and C for a batch except the kernel's work (the in-guest total is
``bench/compare/ipvs_apply.py``). ``fastka`` uses the C codec, ``python`` the reference.
"""

from __future__ import annotations

import struct
from types import ModuleType
from typing import Any

import pytest

from fastka import _ipvs_py
from fastka._compat import USE_EXTENSIONS
from fastka.ipvs import ipvs as ipvs_mod
from fastka.ipvs import msg
from fastka.ipvs.ipvs import Dest, Ipvs, Op, Service
from fastka.ipvs.msg import IPVS_CMD, NLMSG_ERROR, NLMSGHDR

IMPLS = (["fastka"] if USE_EXTENSIONS else []) + ["python", "pyroute2"]
N = 1000
N_PYROUTE2 = 100
FAMILY = 0x1C


def _codec(impl: str) -> ModuleType:
    if impl == "fastka":
        from fastka.ipvs import _cffi

        return _cffi
    return _ipvs_py


def _services(n: int) -> list[Service]:
    return [Service(addr=f"10.{i // 250}.{i % 250}.1", port=80, sched_name="wlc") for i in range(n)]


def _dests(n: int) -> list[Dest]:
    return [Dest(f"10.200.{i // 250}.{i % 250 + 1}", 8080, weight=1 + i % 3) for i in range(n)]


@pytest.mark.parametrize("case", ["new_service", "new_dest"])
@pytest.mark.parametrize("impl", IMPLS)
def test_ipvs_build(benchmark: Any, impl: str, case: str) -> None:
    benchmark.group = "ipvs-build"
    benchmark.extra_info["unit"] = "msg"
    if impl == "pyroute2":
        _pyroute2(benchmark, case)
        return
    codec = _codec(impl)
    svcs = _services(N if case == "new_service" else N // 4)
    recs = b"".join(s.record for s in svcs)
    if case == "new_service":
        ops = b"".join(msg.OP.pack(IPVS_CMD.NEW_SERVICE, i, 0) for i in range(N))
        dests = b""
    else:
        ops = b"".join(msg.OP.pack(IPVS_CMD.NEW_DEST, i // 4, i) for i in range(N))
        dests = b"".join(d.record for d in _dests(N))
    buf = bytearray(N * msg.MSG_MAX)
    benchmark.extra_info["per"] = N
    nbytes, done = benchmark(codec.build_batch, buf, FAMILY, 1, 0, ops, recs, dests)
    assert done == N
    # every message is there: walk the lengths
    off = count = 0
    while off < nbytes:
        off += struct.unpack_from("=I", buf, off)[0]
        count += 1
    assert count == N


def _pyroute2(benchmark: Any, case: str) -> None:
    from pyroute2.ipvs import IPVSDest, IPVSService
    from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.generic.ipvs import ipvsmsg

    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    n = N_PYROUTE2
    svcs = [
        IPVSService(addr=f"10.{i // 250}.{i % 250}.1", port=80, protocol=6, sched_name="wlc")
        for i in range(n)
    ]
    dests = [
        IPVSDest(addr=f"10.200.{i // 250}.{i % 250 + 1}", port=8080, fwd_method=0, weight=1) for i in range(n)
    ]

    def build() -> int:
        total = 0
        for i in range(n):
            m = ipvsmsg()
            m["version"] = 1
            if case == "new_service":
                m["cmd"] = IPVS_CMD.NEW_SERVICE
                m["attrs"] = [("IPVS_CMD_ATTR_SERVICE", svcs[i].dump_nla())]
            else:
                m["cmd"] = IPVS_CMD.NEW_DEST
                m["attrs"] = [
                    ("IPVS_CMD_ATTR_SERVICE", svcs[i // 4].dump_key()),
                    ("IPVS_CMD_ATTR_DEST", dests[i].dump_nla()),
                ]
            m["header"]["type"] = FAMILY
            m["header"]["flags"] = flags
            m["header"]["sequence_number"] = i + 1
            m.encode()
            total += len(m.data)
        return total

    benchmark.extra_info["per"] = n
    total = benchmark.pedantic(build, rounds=3, iterations=1, warmup_rounds=1)
    assert total > n * 50


class _LastAckTransport:
    """Answers only the ACK of each batch's last command (what the kernel sends when every
    command succeeds): the cost of the kernel's own work is left out."""

    max_batch = 1024

    def __init__(self) -> None:
        self._reply = b""

    def send(self, data: memoryview) -> None:
        off = last = 0
        n = len(data)
        while off + 16 <= n:
            last = off
            off += (struct.unpack_from("=I", data, off)[0] + 3) & ~3
        _l, mtype, _f, seq, _p = NLMSGHDR.unpack_from(data, last)
        if mtype == 0x10:  # family lookup
            body = struct.pack("=BBH", 1, 2, 0) + struct.pack("=HHHxx", 6, 1, FAMILY)
            fam = NLMSGHDR.pack(20 + len(body) - 4, 0x10, 0, seq, 0) + body
            ack = NLMSGHDR.pack(36, NLMSG_ERROR, 0, seq, 0) + bytes(20)
            self._reply = fam + ack
            return
        self._reply = NLMSGHDR.pack(36, NLMSG_ERROR, 0, seq, 0) + bytes(20)

    def recv_into(self, buf: bytearray) -> int:
        r, self._reply = self._reply, b""
        buf[: len(r)] = r
        return len(r)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("impl", [i for i in IMPLS if i != "pyroute2"])
def test_ipvs_execute(benchmark: Any, impl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    benchmark.group = "ipvs-execute"
    monkeypatch.setattr(ipvs_mod, "codec", _codec(impl))
    ipvs = Ipvs(transport=_LastAckTransport())
    svcs = _services(1000)
    dests = _dests(4000)
    ops: list[Op] = []
    for i, s in enumerate(svcs):
        ops.append(Op(IPVS_CMD.NEW_SERVICE, s))
        ops.extend(Op(IPVS_CMD.NEW_DEST, s, d) for d in dests[4 * i : 4 * i + 4])
    benchmark.extra_info["per"] = len(ops)
    benchmark.extra_info["unit"] = "cmd"
    errors = benchmark.pedantic(ipvs.execute, (ops,), rounds=5, iterations=1, warmup_rounds=1)
    assert errors == []
