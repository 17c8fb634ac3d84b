"""Guest-side halves of tests/uml/test_ipvs_kernel.py (they run inside user-mode-linux
through ``Guest.call``; results are plain data checked on the host)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from fastka.ipvs.ipvs import Dest, Ipvs, Op, Service, SyncDaemon, Table, Timeouts
from fastka.ipvs.msg import (
    IP_VS_CONN_F_DROUTE,
    IP_VS_CONN_F_MASQ,
    IP_VS_CONN_F_TUNNEL,
    IP_VS_CONN_F_TUNNEL_TYPE_GRE,
    IP_VS_CONN_F_TUNNEL_TYPE_GUE,
    IP_VS_STATE_BACKUP,
    IP_VS_STATE_MASTER,
    IP_VS_SVC_F,
    IP_VS_TUNNEL_ENCAP_FLAG_CSUM,
    IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM,
    IPVS_CMD,
    SCHEDULERS,
)
from uml import netlab, nlmon

NAT, DR, TUN = IP_VS_CONN_F_MASQ, IP_VS_CONN_F_DROUTE, IP_VS_CONN_F_TUNNEL


def every_kind() -> Table:
    """A table with every kind of service and dest fastka can program."""
    t = Table()
    sched_flags = {
        "sh": IP_VS_SVC_F.SCHED_SH_FALLBACK | IP_VS_SVC_F.SCHED_SH_PORT,
        "mh": IP_VS_SVC_F.SCHED_MH_FALLBACK | IP_VS_SVC_F.SCHED_MH_PORT,
    }
    for i, sched in enumerate(SCHEDULERS):
        t.add(
            Service(addr="10.50.0.1", port=1000 + i, sched_name=sched, flags=sched_flags.get(sched, 0)),
            [
                Dest("10.60.0.1", 8080, weight=3, u_threshold=100, l_threshold=10),
                Dest("10.60.0.2", 80, fwd_method=DR, weight=0),
            ],
        )
    t.add(
        Service(
            addr="10.50.0.2",
            port=53,
            protocol=socket.IPPROTO_UDP,
            sched_name="rr",
            flags=IP_VS_SVC_F.ONEPACKET,
        ),
        [Dest("10.60.0.1", 53)],
    )
    t.add(
        Service(addr="10.50.0.3", port=3868, protocol=socket.IPPROTO_SCTP, sched_name="rr"),
        [Dest("10.60.0.1", 3868)],
    )
    t.add(
        Service(addr="10.50.0.4", port=443, timeout=300, netmask=0xFFFFFF00, sched_name="wlc"),
        [
            Dest("10.60.0.3", 443, fwd_method=TUN),
            Dest(
                "10.60.0.4",
                443,
                fwd_method=TUN,
                tun_type=IP_VS_CONN_F_TUNNEL_TYPE_GUE,
                tun_port=6080,
                tun_flags=IP_VS_TUNNEL_ENCAP_FLAG_CSUM,
            ),
            Dest(
                "10.60.0.5",
                443,
                fwd_method=TUN,
                tun_type=IP_VS_CONN_F_TUNNEL_TYPE_GRE,
                tun_flags=IP_VS_TUNNEL_ENCAP_FLAG_CSUM,
            ),
            Dest(
                "10.60.0.6",
                443,
                fwd_method=TUN,
                tun_type=IP_VS_CONN_F_TUNNEL_TYPE_GUE,
                tun_port=7000,
                tun_flags=IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM,
            ),
        ],
    )
    t.add(
        Service(
            addr="10.50.0.5",
            port=5060,
            protocol=socket.IPPROTO_UDP,
            timeout=60,
            pe_name="sip",
            sched_name="rr",
        ),
        [Dest("10.60.0.1", 5060)],
    )
    t.add(
        Service(addr="fd00:50::1", port=80, sched_name="wrr", timeout=120, netmask=64),
        [
            Dest("fd00:60::1", 80, weight=5),
            Dest("fd00:60::2", 80, fwd_method=DR),
            Dest("10.60.0.9", 80, fwd_method=TUN),
        ],
    )
    t.add(
        Service(fwmark=42, sched_name="wlc"), [Dest("10.60.0.7", 0, fwd_method=DR), Dest("10.60.0.8", 8080)]
    )
    t.add(Service(fwmark=43, af=socket.AF_INET6, sched_name="lc"), [Dest("fd00:60::3", 0, fwd_method=DR)])
    return t


def _ipvsadm(*args: str, input: str | None = None) -> str:
    return subprocess.run(["ipvsadm", *args], input=input, capture_output=True, text=True, check=True).stdout


def program_every_kind() -> dict[str, object]:
    """Program :func:`every_kind`; return what the kernel, ipvsadm and /proc show, and
    the table after an ``ipvsadm -S | ipvsadm -R`` round trip."""
    t = every_kind()
    with Ipvs() as ipvs:
        errors = [str(e) for e in ipvs.sync(t, keepalived_errors=False)]
        dumped = ipvs.dump()
        out: dict[str, object] = {
            "errors": errors,
            "dump_equal": dumped == t,
            "dump": dumped.ipvsadm(),
            "save": _ipvsadm("-Sn"),
            "list": _ipvsadm("-Ln"),
            "thresholds": _ipvsadm("-Ln", "--thresholds"),
            "tun_info": _ipvsadm("-Ln", "--tun-info"),
            "proc": Path("/proc/net/ip_vs").read_text(),
            "n_services": len(t),
            "n_dests": sum(len(t.dests(s)) for s in t.services()),
        }
        # ipvsadm's own reading of the same table, fed back: equal but for the thresholds,
        # which ipvsadm -S does not save.
        save = out["save"]
        assert isinstance(save, str)
        _ipvsadm("-C")
        _ipvsadm("-R", input=save)
        restored = ipvs.dump()
        unthresholded = Table(
            (s, [Dest(**{**_fields(d), "u_threshold": 0, "l_threshold": 0}) for d in ds])
            for s, ds in t.items()
        )
        out["restore_equal"] = restored == unthresholded
        out["restore_diff"] = "" if restored == unthresholded else restored.ipvsadm()
        ipvs.flush()
        out["after_flush"] = len(ipvs.dump())
    return out


def _fields(d: Dest) -> dict[str, object]:
    return {
        "addr": d.addr,
        "port": d.port,
        "weight": d.weight,
        "fwd_method": d.fwd_method,
        "u_threshold": d.u_threshold,
        "l_threshold": d.l_threshold,
        "tun_type": d.tun_type,
        "tun_port": d.tun_port,
        "tun_flags": d.tun_flags,
        "af": d.af,
    }


def lab_table(lab: netlab.Lab, fwd: int, sched: str = "rr", **svc: object) -> Table:
    return Table(
        [
            (
                Service(addr=lab.vip, port=lab.port, sched_name=sched, **svc),  # type: ignore[arg-type]
                [Dest(rs.addr, rs.port, fwd_method=fwd) for rs in lab.real_servers],
            )
        ]
    )


def data_path(kind: str, count: int) -> dict[str, object]:
    """A lab of 3 real servers, programmed by fastka (rr); ``count`` connections from
    the client. Returns who answered and the kernel's per-dest connection counts."""
    lab = netlab.build(kind, 3, name=f"dp{kind}", net=2 if kind == "nat" else 3)
    try:
        with Ipvs() as ipvs:
            t = lab_table(lab, DR if kind == "dr" else NAT)
            errors = [str(e) for e in ipvs.sync(t)]
            answers = netlab.fetch(lab, count)
            conns = {str(d.dest): d.active_conns + d.inact_conns for d in ipvs.dests(t.services()[0])}
            ipvs.flush()
        return {"errors": errors, "answers": answers, "conns": conns}
    finally:
        netlab.teardown(lab)


def apply_only_changes(workdir: str) -> dict[str, object]:
    """Program a table, send traffic, apply a diff; report the commands the kernel got
    (nlmon capture) and whether the counters of untouched entries survived."""
    lab = netlab.build("nat", 3, name="chg", net=1)
    try:
        with Ipvs() as ipvs:
            old = lab_table(lab, NAT)
            svc = old.services()[0]
            assert ipvs.apply(Table(), old) == []
            answers = netlab.fetch(lab, 9)
            time.sleep(2.5)  # the kernel's estimator folds per-CPU counters every 2 s
            before = {s.service.key: s.stats.conns for s in ipvs.services()}
            before_dests = {str(d.dest): d.stats.conns for d in ipvs.dests(svc)}

            rs1, rs2, _rs3 = old.dests(svc)  # rs3 is dropped by the new table
            new = Table()
            svc2 = Service(addr=lab.vip, port=lab.port, sched_name="wrr")  # SET_SERVICE
            new.add(
                svc2, [Dest(rs1.addr, rs1.port, weight=2), rs2, Dest("10.1.1.99", 80)]
            )  # SET, keep, NEW (rs3: DEL)
            extra = Service(addr=lab.vip, port=8080, sched_name="rr")
            new.add(extra, [Dest(rs1.addr, 8080)])
            pcap = f"{workdir}/apply-{time.monotonic_ns()}.pcap"
            pid = nlmon.start(pcap)
            try:
                errors = [str(e) for e in ipvs.apply(old, new, keepalived_errors=False)]
            finally:
                nlmon.stop(pid, pcap)
            commands = nlmon.ipvs_requests(pcap, ipvs.family)
            after = {s.service.key: s.stats.conns for s in ipvs.services()}
            after_dests = {str(d.dest): (d.stats.conns, d.dest.weight) for d in ipvs.dests(svc2)}
            sched_now = {s.service.key: s.service.sched_name for s in ipvs.services()}
            # Control: deleting and re-adding the service really loses its counters.
            ipvs.execute([Op(IPVS_CMD.DEL_SERVICE, svc2), Op(IPVS_CMD.NEW_SERVICE, svc2)])
            recreated = {s.service.key: s.stats.conns for s in ipvs.services()}[svc2.key]
            ipvs.flush()
        return {
            "answers": answers,
            "before": before,
            "before_dests": before_dests,
            "after": after,
            "after_dests": after_dests,
            "sched": sched_now,
            "errors": errors,
            "commands": commands,
            "recreated_conns": recreated,
            "svc_key": svc.key,
            "extra_key": extra.key,
        }
    finally:
        netlab.teardown(lab)


def batch_errors() -> dict[str, object]:
    """A batch with bad commands in the middle: the rest is applied, each error names
    its command, service and dest."""
    svc = Service(addr="10.70.0.1", port=80, sched_name="rr")
    missing = Service(addr="10.70.0.2", port=80)
    bad_sched = Service(addr="10.70.0.3", port=80, sched_name="nosuch")
    ops = [
        Op(IPVS_CMD.NEW_SERVICE, svc),
        Op(IPVS_CMD.NEW_DEST, svc, Dest("10.71.0.1", 80)),
        Op(IPVS_CMD.NEW_DEST, svc, Dest("10.71.0.2", 80, u_threshold=5, l_threshold=9)),  # ERANGE
        Op(IPVS_CMD.NEW_DEST, svc, Dest("10.71.0.3", 80)),
        Op(IPVS_CMD.NEW_DEST, missing, Dest("10.71.0.4", 80)),  # ESRCH: no such service
        Op(IPVS_CMD.NEW_SERVICE, bad_sched),  # ENOENT: no such scheduler
        Op(IPVS_CMD.NEW_DEST, svc, Dest("10.71.0.5", 80)),
        Op(IPVS_CMD.NEW_DEST, svc, Dest("10.71.0.1", 80)),  # EEXIST: ignored as Keepalived does
    ]
    with Ipvs() as ipvs:
        ipvs.flush()
        errors = ipvs.execute(ops)
        table = ipvs.dump()
        strict = ipvs.execute(ops[-1:], keepalived_errors=False)
        ipvs.flush()
    return {
        "errors": [(e.errno, e.op, str(e.service), str(e.dest) if e.dest else None, str(e)) for e in errors],
        "strict": [(e.errno, e.op) for e in strict],
        "dests": sorted(str(d) for d in table.dests(svc)),
        "services": sorted(str(s) for s in table.services()),
    }


def config_and_daemon() -> dict[str, object]:
    """Timeouts, info, zero, and the sync daemon against ipvsadm's view."""
    subprocess.run(["ip", "link", "add", "sync0", "type", "veth", "peer", "name", "sync1"], check=True)
    subprocess.run(["ip", "link", "set", "sync0", "up"], check=True)
    subprocess.run(["ip", "link", "set", "sync1", "up"], check=True)
    try:
        with Ipvs() as ipvs:
            original = ipvs.timeouts()
            ipvs.set_timeouts(Timeouts(tcp=7200, tcp_fin=60, udp=200))
            shown = _ipvsadm("-Ln", "--timeout")
            read = ipvs.timeouts()
            ipvs.set_timeouts(original)
            master = SyncDaemon(
                IP_VS_STATE_MASTER, "sync0", syncid=9, mcast_group="224.0.0.81", mcast_port=8848, mcast_ttl=1
            )
            backup = SyncDaemon(IP_VS_STATE_BACKUP, "sync1", syncid=9)
            ipvs.start_daemon(master)
            ipvs.start_daemon(backup)
            daemons = ipvs.daemons()
            daemon_text = _ipvsadm("-Ln", "--daemon")
            ipvs.stop_daemon(IP_VS_STATE_MASTER)
            ipvs.stop_daemon(IP_VS_STATE_BACKUP)
            left = ipvs.daemons()
            info = ipvs.info()
            ipvs.zero()
        return {
            "original": original,
            "read": read,
            "shown": shown,
            "daemons": daemons,
            "daemon_text": daemon_text,
            "left": left,
            "info": info,
            "restored": _ipvsadm("-Ln", "--timeout"),
        }
    finally:
        subprocess.run(["ip", "link", "del", "sync0"], check=False)
