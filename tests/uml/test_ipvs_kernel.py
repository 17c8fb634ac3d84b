"""fastka's IPVS API against the real kernel (Linux 6.1 in user-mode-linux, one boot).

Every kind of service and dest is programmed and checked with ``ipvsadm`` and
``/proc/net/ip_vs``; a diff is applied and the kernel is watched (nlmon capture and
counters) to see that only the changed entries were touched; a batch with bad commands
reports exactly those; timeouts and the sync daemon; real connections through NAT and DR.
The guest halves are in ``ipvs_guest.py``; the rig's own behaviour is checked at the end.
"""

from __future__ import annotations

import errno
import re
import signal
import socket
import time
from typing import Any

import pytest

from fastka.ipvs.ipvs import PROTOCOL_NAMES, Service, Table
from fastka.ipvs.msg import (
    IP_VS_CONN_F_DROUTE,
    IP_VS_CONN_F_MASQ,
    IP_VS_STATE_BACKUP,
    IP_VS_STATE_MASTER,
    IP_VS_SVC_F,
    IP_VS_TUNNEL_ENCAP_FLAG_CSUM,
    IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM,
)
from uml import ipvs_guest, netlab
from uml.rig import Guest, GuestCallError

pytestmark = [pytest.mark.uml, pytest.mark.slow]

UML_PRELOAD = ("fastka.ipvs.ipvs", "uml.ipvs_guest")


# -- what ipvsadm -Sn should print for a table (written from ipvsadm's man page) --------


def _host(af: int, addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if af == socket.AF_INET6 else f"{addr}:{port}"


def _svc_arg(s: Service) -> str:
    if s.fwmark:
        return f"-f {s.fwmark}" + (" -6" if s.af == socket.AF_INET6 else "")
    flag = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}[PROTOCOL_NAMES[s.protocol]]
    return f"{flag} {_host(s.af, s.addr, s.port)}"


def save_lines(t: Table) -> list[str]:
    lines = []
    for s, dests in t.items():
        line = f"-A {_svc_arg(s)} -s {s.sched_name}"
        if s.sched_name in ("sh", "mh") and s.flags & (IP_VS_SVC_F.SCHED1 | IP_VS_SVC_F.SCHED2):
            names = [
                n
                for bit, n in ((IP_VS_SVC_F.SCHED1, "fallback"), (IP_VS_SVC_F.SCHED2, "port"))
                if s.flags & bit
            ]
            line += " -b " + ",".join(f"{s.sched_name}-{n}" for n in names)
        if s.flags & IP_VS_SVC_F.ONEPACKET:
            line += " -o"
        if s.flags & IP_VS_SVC_F.PERSISTENT:
            line += f" -p {s.timeout}"
            default = 128 if s.af == socket.AF_INET6 else 0xFFFFFFFF
            if s.netmask != default:
                mask = (
                    str(s.netmask)
                    if s.af == socket.AF_INET6
                    else socket.inet_ntoa(s.netmask.to_bytes(4, "big"))
                )
                line += f" -M {mask}"
        if s.pe_name:
            line += f" --pe {s.pe_name}"
        lines.append(line)
        for d in dests:
            fwd = {IP_VS_CONN_F_MASQ: "-m", IP_VS_CONN_F_DROUTE: "-g"}.get(d.fwd_method, "-i")
            line = f"-a {_svc_arg(s)} -r {_host(d.af, d.addr, d.port)} {fwd} -w {d.weight}"
            if fwd == "-i":
                line += " --tun-type " + ("ipip", "gue", "gre")[d.tun_type]
                if d.tun_port:
                    line += f" --tun-port {d.tun_port}"
                if d.tun_flags & IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM:
                    line += " --tun-remcsum"
                elif d.tun_flags & IP_VS_TUNNEL_ENCAP_FLAG_CSUM:
                    line += " --tun-csum"
            lines.append(line)
    return sorted(lines)


@pytest.fixture(scope="module")
def every_kind(uml_guest: Guest) -> dict[str, Any]:
    return uml_guest.call(ipvs_guest.program_every_kind)  # type: ignore[no-any-return]


def test_every_kind_is_programmed(every_kind: dict[str, Any]) -> None:
    """All 13 schedulers with flags, TCP/UDP/SCTP, IPv6, fwmark (v4 and v6), persistence
    with granularity, a persistence engine, NAT/DR/TUN (ipip, gue, gre, checksums),
    mixed-family tunnel dests, weights and thresholds: ipvsadm shows them all."""
    r = every_kind
    assert r["errors"] == []
    assert r["dump_equal"], r["dump"]
    assert sorted(line.strip() for line in r["save"].splitlines() if line.strip()) == save_lines(
        ipvs_guest.every_kind()
    )
    assert re.search(r"10\.60\.0\.1:8080\s+100\s+10\s", r["thresholds"]), r["thresholds"]
    assert "TCP  10.50.0.1:1007 sh (sh-fallback,sh-port)" in r["list"]
    assert "TCP  10.50.0.1:1012 mh (mh-fallback,mh-port)" in r["list"]
    assert "UDP  10.50.0.5:5060 rr persistent 60 pe sip" in r["list"]
    assert "TCP  [fd00:50::1]:80 wrr persistent 120 mask 64" in r["list"]
    assert re.search(r"10\.60\.0\.4:443\s+Tunnel\s+gue:6080:\+c", r["tun_info"]), r["tun_info"]
    assert re.search(r"10\.60\.0\.9:80\s+Tunnel\s+ipip", r["tun_info"])  # IPv4 dest of an IPv6 service


def test_proc_net_ip_vs(every_kind: dict[str, Any]) -> None:
    lines = every_kind["proc"].splitlines()[3:]
    services = [line for line in lines if not line.startswith("  ->")]
    dests = [line for line in lines if line.startswith("  ->")]
    assert (len(services), len(dests)) == (every_kind["n_services"], every_kind["n_dests"])
    assert any(line.split()[:3] == ["TCP", "0A320001:03E8", "rr"] for line in services)  # 10.50.0.1:1000
    assert any(line.split()[:3] == ["FWM", "0000002A", "wlc"] for line in services)


def test_ipvsadm_restores_the_same_table(every_kind: dict[str, Any]) -> None:
    """``ipvsadm -S`` of fastka's table, restored with ``ipvsadm -R`` and dumped by fastka,
    is the same table (thresholds aside: ipvsadm does not save them)."""
    assert every_kind["restore_equal"], every_kind["restore_diff"]
    assert every_kind["after_flush"] == 0


def test_apply_touches_only_changes(uml_guest: Guest) -> None:
    r = uml_guest.call(ipvs_guest.apply_only_changes, str(uml_guest.workdir), timeout=120)
    assert r["errors"] == []
    assert sorted(r["answers"]) == ["rs1"] * 3 + ["rs2"] * 3 + ["rs3"] * 3
    svc, extra = r["svc_key"], r["extra_key"]
    # Exactly the diff reached the kernel: nothing deleted and re-added.
    assert [c[0] for c in r["commands"]] == [
        "NEW_SERVICE",
        "SET_SERVICE",
        "SET_DEST",
        "NEW_DEST",
        "NEW_DEST",
        "DEL_DEST",
    ]
    assert r["commands"][0][1] == extra and r["commands"][1][1] == svc
    assert r["commands"][2][2] == (2, "10.1.1.11", 80) and r["commands"][5][2] == (2, "10.1.1.13", 80)
    # ... so the service's and the kept dests' counters survived the change.
    assert r["before"][svc] == 9 and r["after"][svc] == 9
    assert r["after_dests"]["10.1.1.11:80"] == (3, 2)  # weight changed in place
    assert r["after_dests"]["10.1.1.12:80"] == (3, 1)
    assert r["after_dests"]["10.1.1.99:80"] == (0, 1)
    assert "10.1.1.13:80" not in r["after_dests"]
    assert r["sched"][svc] == "wrr" and r["after"][extra] == 0
    assert r["recreated_conns"] == 0  # control: delete + add really loses them


def test_batch_error_reporting(uml_guest: Guest) -> None:
    r = uml_guest.call(ipvs_guest.batch_errors)
    assert [e[:4] for e in r["errors"]] == [
        (errno.ERANGE, "IPVS_CMD_NEW_DEST", "TCP 10.70.0.1:80", "10.71.0.2:80"),
        (errno.ESRCH, "IPVS_CMD_NEW_DEST", "TCP 10.70.0.2:80", "10.71.0.4:80"),
        (errno.ENOENT, "IPVS_CMD_NEW_SERVICE", "TCP 10.70.0.3:80", None),
    ]
    assert "Numerical result out of range" in r["errors"][0][4]
    assert r["services"] == ["TCP 10.70.0.1:80"]
    assert r["dests"] == ["10.71.0.1:80", "10.71.0.3:80", "10.71.0.5:80"]
    assert r["strict"] == [(errno.EEXIST, "IPVS_CMD_NEW_DEST")]


def test_timeouts_and_sync_daemon(uml_guest: Guest) -> None:
    r = uml_guest.call(ipvs_guest.config_and_daemon)
    assert "Timeout (tcp tcpfin udp): 7200 60 200" in r["shown"]
    assert (r["read"].tcp, r["read"].tcp_fin, r["read"].udp) == (7200, 60, 200)
    assert r["restored"] != r["shown"]  # the originals were put back
    states = {d.state: d for d in r["daemons"]}
    assert set(states) == {IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP}
    m = states[IP_VS_STATE_MASTER]
    assert (m.mcast_ifn, m.syncid, m.mcast_group, m.mcast_port, m.mcast_ttl) == (
        "sync0",
        9,
        "224.0.0.81",
        8848,
        1,
    )
    assert "master sync daemon (mcast=sync0, syncid=9" in r["daemon_text"]
    assert "backup sync daemon (mcast=sync1, syncid=9" in r["daemon_text"]
    assert r["left"] == []
    assert r["info"][0] == 0x010201


@pytest.mark.parametrize("kind", ["nat", "dr"])
def test_data_path(uml_guest: Guest, kind: str) -> None:
    """30 connections through the VIP, round robin over 3 real servers: 10 each."""
    r = uml_guest.call(ipvs_guest.data_path, kind, 30, timeout=120)
    assert r["errors"] == []
    assert sorted(r["answers"]) == ["rs1"] * 10 + ["rs2"] * 10 + ["rs3"] * 10
    assert sorted(r["conns"].values()) == [10, 10, 10]


# -- the rig itself ------------------------------------------------------------------------


def test_rig_run_call_spawn(uml_guest: Guest) -> None:
    r = uml_guest.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert uml_guest.run("uname -r").check().stdout.startswith("6.1.")
    assert "nameserver 127.0.0.1" in uml_guest.run(["cat", "/etc/resolv.conf"]).stdout
    slow = uml_guest.run(["sleep", "30"], timeout=1)
    assert slow.timed_out
    with pytest.raises(GuestCallError) as exc:
        uml_guest.call(netlab.setns, "no-such-namespace")
    assert "FileNotFoundError" in exc.value.remote_traceback
    with pytest.raises(GuestCallError, match="timeout"):
        uml_guest.call(time.sleep, 30, timeout=1)
    assert uml_guest.call(len, [1, 2, 3]) == 3  # the guest still answers after a timeout


def test_rig_netns_and_spawn(uml_guest: Guest) -> None:
    lab = uml_guest.call(netlab.build, "nat", 1, name="rig", net=7)
    try:
        r = uml_guest.run(["ip", "-br", "addr", "show", "dev", "eth0"], netns=lab.client_netns)
        assert "10.0.7.2/24" in r.stdout
        pid = uml_guest.spawn(["sleep", "60"], netns=lab.client_netns)
        assert uml_guest.run(["kill", "-0", str(pid)]).returncode == 0
        assert uml_guest.kill(pid, signal.SIGKILL)
        assert uml_guest.call(netlab.http_get, lab.real_servers[0].addr, 80) == "rs1"
        lab = uml_guest.call(netlab.stop_server, lab, 1)
        assert uml_guest.call(netlab.http_get, lab.real_servers[0].addr, 80, 1.0).startswith("ERR:")
    finally:
        uml_guest.call(netlab.teardown, lab)
    assert "rig-c" not in uml_guest.run(["ip", "netns"]).stdout
