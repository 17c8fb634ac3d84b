"""Mapping the compiled configuration model onto the checker specs."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address

from fastka.check.from_config import IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED1, check_config
from fastka.check.spec import FileParams, HttpParams, MiscParams, TcpParams, UdpParams
from fastka.config import model as m


def test_virtual_server_real_servers_and_checkers() -> None:
    rs = m.RealServer(
        address=IPv4Address("192.168.1.10"),
        port=8080,
        weight=3,
        inhibit_on_failure=True,
        notify_up=m.Script(argv=("/bin/up", "a"), user="nobody"),
        checkers=[
            m.TcpCheck(connect_port=80, connect_timeout=3.0, delay_loop=6.0, warmup=6.0),
            m.HttpGetCheck(urls=[m.Url(path="/h", digest="a" * 32, status_code=[(200, 204)])]),
            m.MiscCheck(misc_path=m.Script(argv=("/bin/chk",)), misc_timeout=4.0, misc_dynamic=True),
            m.UdpCheck(require_reply=True, reply_data=b"\x12\x30", reply_mask=b"\xff\xf0"),
            m.FileCheck(track_file="tf", weight=-2),
        ],
    )
    vs = m.VirtualServer(
        address=IPv4Address("10.0.0.1"),
        port=80,
        protocol="TCP",
        lb_algo="sh",
        sh_fallback=True,
        persistence_timeout=300,
        quorum=2,
        hysteresis=1,
        sorry_server=m.RealServer(address=IPv4Address("10.9.9.9"), port=80),
        real_servers=[rs],
    )
    config = m.Config(virtual_servers=[vs], track_files={"tf": m.TrackFile(name="tf", file="/run/w")})
    cc = check_config(config)
    (v,) = cc.virtual_servers
    (svc,) = v.services
    assert svc.key == (socket.AF_INET, "tcp", "10.0.0.1", 80)
    assert svc.sched_name == "sh" and svc.timeout == 300
    assert svc.flags == IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_SCHED1
    assert v.quorum == 2 and v.hysteresis == 1 and v.sorry_server is not None
    (r,) = v.real_servers
    assert (r.address, r.port, r.weight, r.inhibit_on_failure) == ("192.168.1.10", 8080, 3, True)
    assert r.notify_up is not None and r.notify_up.argv == ("/bin/up", "a") and r.notify_up.user == "nobody"
    kinds = [type(c.params) for c in r.checkers]
    assert kinds == [TcpParams, HttpParams, MiscParams, UdpParams, FileParams]
    assert r.checkers[0].connect_port == 80 and r.checkers[0].connect_timeout == 3.0
    http = r.checkers[1].params
    assert isinstance(http, HttpParams) and http.urls[0].status_code == ((200, 204),)
    udp = r.checkers[3].params
    assert isinstance(udp, UdpParams) and udp.reply_pattern == ((0x12, 0xFF), (0x30, 0xF0))
    f = r.checkers[4].params
    assert isinstance(f, FileParams) and f.path == "/run/w" and f.weight == -2


def test_group_expands_to_one_service_per_address_and_fwmark() -> None:
    group = m.VirtualServerGroup(
        name="G",
        entries=[
            m.VsgEntry(address=IPv4Address("10.0.0.1"), address_end=IPv4Address("10.0.0.3"), port=80),
            m.VsgEntry(fwmark=7),
        ],
    )
    vs = m.VirtualServer(group="G", real_servers=[m.RealServer(address=IPv4Address("10.1.0.1"), port=80)])
    cc = check_config(m.Config(virtual_servers=[vs], virtual_server_groups={"G": group}))
    (v,) = cc.virtual_servers
    assert [s.describe() for s in v.services] == [
        "[10.0.0.1]:tcp:80",
        "[10.0.0.2]:tcp:80",
        "[10.0.0.3]:tcp:80",
        "FWM 7",
    ]
    assert v.describe() == "[G]:0"
