"""The IPVS table model and its diff: applying diff(a, b) to a gives b, and nothing that
is unchanged ever appears in a diff (so its connections and counters survive)."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastka.ipvs.ipvs import Dest, Op, Service, Table, apply_ops, diff, parse_netmask
from fastka.ipvs.msg import IP_VS_CONN_F_DROUTE, IP_VS_CONN_F_MASQ, IP_VS_CONN_F_TUNNEL, IP_VS_SVC_F, IPVS_CMD

# Small pools of keys so that random tables overlap; attributes vary freely.
SVC_KEYS = [
    {"addr": "10.0.0.1", "port": 80},
    {"addr": "10.0.0.1", "port": 443},
    {"addr": "10.0.0.1", "port": 53, "protocol": socket.IPPROTO_UDP},
    {"addr": "fd00::1", "port": 80},
    {"fwmark": 7},
    {"fwmark": 7, "af": socket.AF_INET6},
]
DEST_ADDRS = ["10.1.0.1", "10.1.0.2", "10.1.0.3", "fd00::11"]

services = st.builds(
    lambda key, sched, timeout, flags: Service(**key, sched_name=sched, timeout=timeout, flags=flags),
    st.sampled_from(SVC_KEYS),
    st.sampled_from(["rr", "wlc", "sh"]),
    st.sampled_from([0, 300]),
    st.sampled_from([0, int(IP_VS_SVC_F.ONEPACKET)]),
)
dests = st.builds(
    Dest,
    addr=st.sampled_from(DEST_ADDRS),
    port=st.sampled_from([80, 8080]),
    weight=st.integers(0, 3),
    fwd_method=st.sampled_from([IP_VS_CONN_F_MASQ, IP_VS_CONN_F_DROUTE, IP_VS_CONN_F_TUNNEL]),
    u_threshold=st.sampled_from([0, 100]),
)
tables = st.lists(st.tuples(services, st.lists(dests, max_size=4)), max_size=6).map(Table)


@settings(max_examples=200, deadline=None)
@given(tables, tables)
def test_applying_the_diff_gives_the_new_table(a: Table, b: Table) -> None:
    assert apply_ops(a, diff(a, b)) == b


@settings(max_examples=200, deadline=None)
@given(tables, tables)
def test_unchanged_entries_never_appear(a: Table, b: Table) -> None:
    ops = diff(a, b)
    touched_svcs = {op.service.key for op in ops if op.dest is None}
    touched_dests = {(op.service.key, op.dest.key) for op in ops if op.dest is not None}
    for svc, ds in a.items():
        if b.service(svc.key) == svc:
            assert svc.key not in touched_svcs
            kept = {d.key: d for d in b.dests(svc)}
            for d in ds:
                if kept.get(d.key) == d:
                    assert (svc.key, d.key) not in touched_dests
    for op in ops:
        if op.cmd == IPVS_CMD.SET_SERVICE:
            assert a.service(op.service.key) not in (None, op.service)
        if op.cmd == IPVS_CMD.SET_DEST:
            assert op.dest is not None
            old = {d.key: d for d in a.dests(op.service)}
            assert old[op.dest.key] != op.dest
        # never delete-and-re-add: no key is both removed and added
    removed = {
        (op.service.key, op.dest.key if op.dest else None) for op in ops if op.cmd.name.startswith("DEL")
    }
    added = {
        (op.service.key, op.dest.key if op.dest else None) for op in ops if op.cmd.name.startswith("NEW")
    }
    assert not removed & added


@given(tables)
def test_diff_of_a_table_with_itself_is_empty(a: Table) -> None:
    assert diff(a, a) == []
    assert diff(a, a.copy()) == []


def test_diff_uses_set_for_attribute_changes() -> None:
    svc = Service(addr="10.0.0.1", port=80, sched_name="rr")
    a = Table([(svc, [Dest("10.1.0.1", 80), Dest("10.1.0.2", 80)])])
    svc2 = Service(addr="10.0.0.1", port=80, sched_name="wlc", timeout=60)
    b = Table([(svc2, [Dest("10.1.0.1", 80, weight=5), Dest("10.1.0.3", 80)])])
    assert diff(a, b) == [
        Op(IPVS_CMD.SET_SERVICE, svc2),
        Op(IPVS_CMD.SET_DEST, svc2, Dest("10.1.0.1", 80, weight=5)),
        Op(IPVS_CMD.NEW_DEST, svc2, Dest("10.1.0.3", 80)),
        Op(IPVS_CMD.DEL_DEST, svc2, Dest("10.1.0.2", 80)),
    ]
    assert diff(b, Table()) == [Op(IPVS_CMD.DEL_SERVICE, svc2)]


def test_service_normalisation() -> None:
    s = Service(addr="FD00:0::1", port=80, timeout=30)
    assert s.addr == "fd00::1" and s.af == socket.AF_INET6 and s.netmask == 128
    assert s.flags == IP_VS_SVC_F.PERSISTENT  # implied by the persistence timeout
    assert Service(addr="10.0.0.1", port=1).netmask == 0xFFFFFFFF
    assert Service(addr="10.0.0.1", port=1, flags=IP_VS_SVC_F.HASHED) == Service(addr="10.0.0.1", port=1)
    f = Service(fwmark=9, addr="10.0.0.1", port=80)
    assert (f.addr, f.port, f.protocol, f.key) == ("", 0, 0, (socket.AF_INET, 9))
    assert str(f) == "FWM 9" and str(s) == "TCP [fd00::1]:80"
    assert Service(addr="10.0.0.1", port=80).key != Service(addr="10.0.0.1", port=80, protocol=17).key
    for bad in (
        {"addr": "10.0.0.1", "port": 70000},
        {"addr": "10.0.0.300", "port": 1},
        {"addr": "10.0.0.1", "port": 1, "sched_name": "x" * 16},
        {"port": 80},
    ):
        with pytest.raises((ValueError, OSError)):
            Service(**bad)  # type: ignore[arg-type]


def test_dest_port_follows_keepalived() -> None:
    """DR/TUN dests take the service's port; non-NAT dests of a fwmark service port 0."""
    svc = Service(addr="10.0.0.1", port=80)
    assert Dest("10.1.0.1", 8080, fwd_method=IP_VS_CONN_F_DROUTE).for_service(svc).port == 80
    assert Dest("10.1.0.1", 8080, fwd_method=IP_VS_CONN_F_TUNNEL).for_service(svc).port == 80
    assert Dest("10.1.0.1", 8080).for_service(svc).port == 8080
    fw = Service(fwmark=3)
    assert Dest("10.1.0.1", 8080, fwd_method=IP_VS_CONN_F_DROUTE).for_service(fw).port == 0
    assert Dest("10.1.0.1", 8080).for_service(fw).port == 8080
    t = Table([(svc, [Dest("10.1.0.1", 8080, fwd_method=IP_VS_CONN_F_DROUTE)])])
    assert t.dests(svc) == [Dest("10.1.0.1", 80, fwd_method=IP_VS_CONN_F_DROUTE)]


def test_records_round_trip() -> None:
    s = Service(
        addr="fd00::1",
        port=443,
        protocol=132,
        sched_name="mh",
        flags=0x18,
        timeout=9,
        netmask=64,
        pe_name="sip",
    )
    assert Service.from_record(s.record) == s
    d = Dest(
        "10.1.2.3",
        80,
        weight=4,
        fwd_method=2,
        tun_type=1,
        tun_port=6080,
        tun_flags=1,
        l_threshold=1,
        u_threshold=9,
    )
    assert Dest.from_record(d.record) == d


def test_parse_netmask() -> None:
    assert parse_netmask(socket.AF_INET, "255.255.255.0") == 0xFFFFFF00
    assert parse_netmask(socket.AF_INET, "24") == 0xFFFFFF00
    assert parse_netmask(socket.AF_INET6, "64") == 64


def test_table_ipvsadm_rendering() -> None:
    t = Table(
        [
            (
                Service(addr="10.0.0.1", port=80, sched_name="rr", timeout=50),
                [Dest("10.1.0.2", 80, weight=2)],
            ),
            (Service(fwmark=4, sched_name="wrr"), [Dest("10.1.0.3", 0, fwd_method=IP_VS_CONN_F_DROUTE)]),
        ]
    )
    assert t.ipvsadm() == (
        "TCP 10.0.0.1:80 rr persistent 50\n  -> 10.1.0.2:80 Masq 2\nFWM 4 wrr\n  -> 10.1.0.3:0 Route 1"
    )


def test_tunnel_fields_that_are_not_sent_are_zero() -> None:
    assert Dest("10.1.0.1", 80, tun_type=1, tun_port=5, tun_flags=1) == Dest("10.1.0.1", 80)  # NAT
    gre = Dest("10.1.0.1", 80, fwd_method=IP_VS_CONN_F_TUNNEL, tun_type=2, tun_port=5, tun_flags=1)
    assert (gre.tun_port, gre.tun_flags) == (0, 1)
    ipip = Dest("10.1.0.1", 80, fwd_method=IP_VS_CONN_F_TUNNEL, tun_port=5, tun_flags=1)
    assert (ipip.tun_port, ipip.tun_flags) == (0, 0)
    gue = Dest("10.1.0.1", 80, fwd_method=IP_VS_CONN_F_TUNNEL, tun_type=1, tun_port=5, tun_flags=2)
    assert (gue.tun_port, gue.tun_flags) == (5, 2)
