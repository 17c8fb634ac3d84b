"""The Python IPVS API (``fastka.ipvs.Ipvs``) against the fake kernel, with both codecs:
batches, error reporting, Keepalived's error rules, diffs applied, dumps, timeouts and
the sync daemon. The real kernel is exercised in tests/uml/test_ipvs_kernel.py."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from test_ipvs_model import tables

from conftest import implementations, load
from fastka.errors import IpvsError
from fastka.ipvs import ipvs as ipvs_mod
from fastka.ipvs.fake import FakeKernel
from fastka.ipvs.ipvs import Dest, Ipvs, Op, Service, SyncDaemon, Table, Timeouts, diff
from fastka.ipvs.msg import IP_VS_STATE_BACKUP, IP_VS_STATE_MASTER, IPVS_CMD

SVC = Service(addr="10.0.0.1", port=80, sched_name="rr")
FWM = Service(fwmark=5, sched_name="wlc")


@pytest.fixture(scope="module", params=implementations("fastka.ipvs._cffi", "fastka._ipvs_py"))
def codec_impl(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run the module's tests with each codec behind the API."""
    mp = pytest.MonkeyPatch()
    mp.setattr(ipvs_mod, "codec", load(request.param))
    yield
    mp.undo()


@pytest.fixture
def kernel(codec_impl: None) -> FakeKernel:
    return FakeKernel()


@pytest.fixture
def ipvs(kernel: FakeKernel) -> Ipvs:
    return Ipvs(transport=kernel)


def wanted() -> Table:
    return Table(
        [
            (SVC, [Dest("10.1.0.1", 80), Dest("10.1.0.2", 80, weight=3)]),
            (FWM, [Dest("10.2.0.1", 0, fwd_method=3)]),
            (Service(addr="fd00::1", port=443, timeout=60), [Dest("fd00::5", 443)]),
        ]
    )


def test_family_is_resolved(kernel: FakeKernel) -> None:
    kernel.family_id = 0x2A
    assert Ipvs(transport=kernel).family == 0x2A


def test_missing_ipvs_module(codec_impl: None) -> None:
    k = FakeKernel(ipvs_loaded=False)
    with pytest.raises(IpvsError) as exc:
        Ipvs(transport=k, modprobe=False)
    assert exc.value.errno == errno.ENOENT and k.closed


def test_program_and_dump(ipvs: Ipvs, kernel: FakeKernel) -> None:
    t = wanted()
    assert ipvs.apply(Table(), t) == []
    assert kernel.table == t
    assert kernel.sends == 2  # family lookup + one batch of 7 commands
    assert ipvs.dump() == t
    st = {s.service.key: s for s in ipvs.services()}
    assert set(st) == {s.key for s in t.services()}
    assert [d.dest for d in ipvs.dests(SVC)] == t.dests(SVC)


def test_only_changes_are_sent(ipvs: Ipvs, kernel: FakeKernel) -> None:
    old = wanted()
    ipvs.apply(Table(), old)
    new = old.copy()
    new.add_dest(SVC, Dest("10.1.0.2", 80, weight=9))
    new.remove(FWM)
    kernel.log.clear()
    assert ipvs.apply(old, new) == []
    assert kernel.log == [
        ("SET_DEST", SVC.key, (2, "10.1.0.2", 80)),
        ("DEL_SERVICE", FWM.key, None),
    ]
    assert kernel.table == new


def test_batches_are_chunked(ipvs: Ipvs, kernel: FakeKernel) -> None:
    ipvs.max_batch = 7
    t = Table(
        [
            (Service(addr=f"10.0.{i}.1", port=80), [Dest(f"10.9.{i}.{j}", 80) for j in range(1, 4)])
            for i in range(12)
        ]
    )
    sends = kernel.sends
    assert ipvs.apply(Table(), t) == []
    assert kernel.sends - sends == -(-48 // 7)
    assert kernel.table == t


def test_one_bad_dest_in_a_batch(ipvs: Ipvs, kernel: FakeKernel) -> None:
    bad = Dest("10.1.0.9", 80, l_threshold=5)  # l_threshold > u_threshold: ERANGE
    ops = [Op(IPVS_CMD.NEW_SERVICE, SVC)] + [
        Op(IPVS_CMD.NEW_DEST, SVC, d) for d in (Dest("10.1.0.1", 80), bad, Dest("10.1.0.3", 80))
    ]
    errors = ipvs.execute(ops)
    assert len(errors) == 1
    e = errors[0]
    assert (e.errno, e.op, e.service, e.dest) == (errno.ERANGE, "IPVS_CMD_NEW_DEST", SVC, bad)
    assert "TCP 10.0.0.1:80 -> 10.1.0.9:80" in str(e)
    assert [d.addr for d in kernel.table.dests(SVC)] == ["10.1.0.1", "10.1.0.3"]


def test_keepalived_error_rules(ipvs: Ipvs, kernel: FakeKernel) -> None:
    ipvs.apply(Table(), wanted())
    gone = Dest("10.1.0.77", 80)
    ops = [
        Op(IPVS_CMD.NEW_SERVICE, SVC),  # EEXIST: ignored
        Op(IPVS_CMD.NEW_DEST, SVC, Dest("10.1.0.1", 80)),  # EEXIST: ignored
        Op(IPVS_CMD.DEL_DEST, SVC, gone),  # ENOENT: ignored
        Op(IPVS_CMD.DEL_SERVICE, Service(addr="10.0.0.2", port=80)),  # ESRCH: ignored
        Op(IPVS_CMD.SET_DEST, SVC, Dest("10.1.0.4", 80, weight=0)),  # ENOENT: retried as NEW_DEST
    ]
    assert ipvs.execute(ops) == []
    assert Dest("10.1.0.4", 80, weight=0) in kernel.table.dests(SVC)
    strict = ipvs.execute(ops, keepalived_errors=False)
    assert [(e.errno, e.op) for e in strict] == [
        (errno.EEXIST, "IPVS_CMD_NEW_SERVICE"),
        (errno.EEXIST, "IPVS_CMD_NEW_DEST"),
        (errno.ENOENT, "IPVS_CMD_DEL_DEST"),
        (errno.ESRCH, "IPVS_CMD_DEL_SERVICE"),
    ]


def test_single_commands_raise(ipvs: Ipvs, kernel: FakeKernel) -> None:
    ipvs.new_service(SVC)
    with pytest.raises(IpvsError) as exc:
        ipvs.new_service(SVC)
    assert exc.value.errno == errno.EEXIST and exc.value.service == SVC
    ipvs.new_dest(SVC, Dest("10.1.0.1", 80))
    ipvs.set_dest(SVC, Dest("10.1.0.1", 80, weight=0))  # inhibit_on_failure
    assert kernel.table.dests(SVC)[0].weight == 0
    ipvs.set_service(Service(addr="10.0.0.1", port=80, sched_name="wlc"))
    assert kernel.table.services()[0].sched_name == "wlc"
    with pytest.raises(IpvsError) as exc:
        ipvs.del_dest(SVC, Dest("10.1.0.2", 80))
    assert exc.value.errno == errno.ENOENT and exc.value.dest == Dest("10.1.0.2", 80)
    with pytest.raises(IpvsError) as exc:
        ipvs.new_service(Service(addr="10.0.0.3", port=80, sched_name="nope"))
    assert exc.value.errno == errno.ENOENT
    ipvs.del_dest(SVC, Dest("10.1.0.1", 80))
    ipvs.del_service(SVC)
    assert len(kernel.table) == 0


def test_sync_removes_foreign_entries(ipvs: Ipvs, kernel: FakeKernel) -> None:
    ipvs.new_service(Service(addr="10.9.9.9", port=22))
    assert ipvs.sync(wanted()) == []
    assert kernel.table == wanted()


def test_ack_all_framing_gives_the_same_result(ipvs: Ipvs, kernel: FakeKernel) -> None:
    ipvs.ack_all = True
    assert ipvs.apply(Table(), wanted()) == []
    assert kernel.table == wanted()


def test_flush_zero_info_timeouts_daemons(ipvs: Ipvs, kernel: FakeKernel) -> None:
    ipvs.apply(Table(), wanted())
    assert ipvs.info() == (0x010201, 4096)
    ipvs.zero()
    ipvs.flush()
    assert len(ipvs.dump()) == 0
    assert ipvs.timeouts() == Timeouts(900, 120, 300)
    ipvs.set_timeouts(Timeouts(tcp=7200, udp=60))
    assert ipvs.timeouts() == Timeouts(7200, 120, 60)
    master = SyncDaemon(
        IP_VS_STATE_MASTER, "eth0", syncid=3, mcast_group="224.0.0.81", mcast_port=8848, mcast_ttl=1
    )
    backup = SyncDaemon(IP_VS_STATE_BACKUP, "eth1", syncid=3, sync_maxlen=1472, mcast_group="ff02::81")
    ipvs.start_daemon(master)
    ipvs.start_daemon(backup)
    assert ipvs.daemons() == [master, backup]
    with pytest.raises(IpvsError):
        ipvs.start_daemon(master)
    ipvs.stop_daemon(IP_VS_STATE_MASTER)
    assert ipvs.daemons() == [backup]
    with pytest.raises(ValueError):
        ipvs.stop_daemon(0)


@settings(max_examples=60, deadline=None)
@given(tables, tables)
def test_apply_diff_through_the_socket(codec_impl: None, a: Table, b: Table) -> None:
    """Programming ``a`` and then applying diff(a, b) leaves exactly ``b`` in the kernel,
    and the kernel saw exactly the diff's commands (nothing else touched)."""
    k = FakeKernel()
    ip = Ipvs(transport=k)
    assert ip.apply(Table(), a, keepalived_errors=False) == []
    k.log.clear()
    assert ip.apply(a, b, keepalived_errors=False) == []
    assert k.table == b
    assert k.log == [
        (op.cmd.name, op.service.key, op.dest.key if op.dest is not None else None) for op in diff(a, b)
    ]
