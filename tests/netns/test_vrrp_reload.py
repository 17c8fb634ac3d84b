"""A reload (SIGHUP) applies only the difference (issue 7, behaviour.md §R), with fastka's
parent and VRRP child as in production and Keepalived 2.2.7 as the peer where there is
one. The scenarios run side by side, each in its own namespaces (VRRPv3, 0.1 s):

* VIPs added and removed while MASTER: the kernel reports changes only for those two
  (``ip monitor``), the unchanged VIP is never absent (sampled every 5 ms), GARPs only for
  the added one, the adverts carry the new list, no transition; an eVIP moving from one
  MASTER instance to another is not touched either;
* an instance removed by the reload sends priority 0 (the peer takes over after its skew
  time) and is notified FAULT; another one renamed (same VRID and interface) goes on
  without a transition or a notification on either side;
* a ``vrrp_script`` result survives the reload (its command and user unchanged): the
  priority it lowered stays low, a FAULT it caused stays FAULT.
"""

from __future__ import annotations

import re
import signal
import socket
import time

import pytest
from rig import Rig
from vrrp_pairs import V3, Inst, config, explain, make_pair, parallel, wait_for

pytestmark = [pytest.mark.root, pytest.mark.netns]


def _hup(d: object, text: str) -> int:
    """Write the new configuration, SIGHUP, wait for the parent to say it is done."""
    from rig import VrrpDaemon

    assert isinstance(d, VrrpDaemon)
    mark = d.mark()
    d.config_path.write_text(text)
    d.send_signal(signal.SIGHUP)
    d.wait_log("Reload finished", since=mark, timeout=10)
    return mark


def _mentions(text: str, address: str) -> bool:
    return re.search(re.escape(address) + r"(?![0-9])", text) is not None


def vips_added_and_removed_while_master() -> None:
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        extra = (
            "    virtual_ipaddress_excluded {\n        10.99.0.110/24\n    }\n"
            "    virtual_routes {\n        10.55.0.0/24 dev eth0\n    }"
        )
        before = config(V3, 11, 12, [Inst("VI_1", 51, 150, [100, 101], extra), Inst("VI_2", 52, 150, [120])])
        # 10.99.0.110 moves from VI_1 to VI_2 (both MASTER): it stays where it is
        moved = "    virtual_ipaddress_excluded {\n        10.99.0.110/24\n    }"
        routes = "    virtual_routes {\n        10.55.0.0/24 dev eth0\n    }"
        after = config(
            V3, 11, 12, [Inst("VI_1", 51, 150, [100, 102], routes), Inst("VI_2", 52, 150, [120], moved)]
        )
        da = rig.fastka(r1, before)
        try:
            da.wait_state("MASTER", instance="VI_1", timeout=20)
            da.wait_state("MASTER", instance="VI_2", timeout=20)
            wait_for(lambda: r1.has_address("10.99.0.101") and r1.has_address("10.99.0.110"), 5, "VIPs")
            time.sleep(0.3)  # the GARP bursts of becoming MASTER are over
            sampler = rig.sampler("10.99.0.100", [r1], interval=0.005).start()
            monitor = r1.popen(["ip", "-o", "monitor", "address", "route"], log="ip-monitor.log")
            cap = rig.capture(lan)
            time.sleep(0.3)
            t0 = time.monotonic()
            mark = _hup(da, after)
            wait_for(
                lambda: r1.has_address("10.99.0.102") and not r1.has_address("10.99.0.101"), 5, "the VIP diff"
            )
            time.sleep(0.5)
            frames = cap.stop()
            timeline = sampler.stop()
            monitor.stop()
            events = monitor.log()
            assert _mentions(events, "10.99.0.101") and _mentions(events, "10.99.0.102"), events
            for untouched in ("10.99.0.100", "10.99.0.110", "10.99.0.120", "10.55.0.0"):
                assert not _mentions(events, untouched), f"{untouched} was touched:\n{events}"
            assert timeline.samples and all(s.owners == {"r1"} for s in timeline.samples), str(timeline)
            garps = {socket.inet_ntoa(f.data[28:32]) for f in frames if f.is_garp and f.t > t0}
            assert garps == {"10.99.0.102"}, garps
            # VRRPv3 adverts of VRID 51 (IPv4 header 20 bytes): the new address list
            adverts = [f.data[34:] for f in frames if f.is_vrrp and f.data[35] == 51]
            last = adverts[-1]
            assert last[3] == 2 and {socket.inet_ntoa(last[8 + 4 * i : 12 + 4 * i]) for i in range(2)} == {
                "10.99.0.100",
                "10.99.0.102",
            }
            assert "10.55.0.0/24" in r1.ip("route", "show", "10.55.0.0/24")
            log = da.log()[mark:]
            assert "Entering" not in log, log
            assert "(VI_1) 10.99.0.110/24 now belongs to VI_2" in log
            assert "Traceback" not in da.log()
            assert da.stop() == 0
            assert not r1.has_address("10.99.0.110"), "its new owner released it"
        except BaseException as exc:
            raise AssertionError(f"{exc}\n{da.log()[-4000:]}") from exc


NOTIFY = """#!/bin/sh
echo "$*" >> {log}
"""


def removed_and_renamed() -> None:
    with Rig() as rig:
        log_path = rig.tmp / "notify.log"
        script = rig.tmp / "notify.sh"
        script.write_text(NOTIFY.format(log=log_path))
        script.chmod(0o755)
        notify = f"    notify {script}"
        a = config(V3, 11, 12, [Inst("VI_1", 51, 150, [100], notify), Inst("VI_2", 52, 150, [110], notify)])
        b = config(V3, 12, 11, [Inst("VI_1", 51, 100, [100]), Inst("VI_2", 52, 100, [110])])
        pair = make_pair(rig, "fastka", "keepalived", a, b)
        with explain(pair):
            pair.sample(V3.vip(100), V3.vip(110))
            da = pair.a.start(rig)
            db = pair.b.start(rig)
            pair.wait_owner(V3.vip(100), pair.a, 20)
            pair.wait_owner(V3.vip(110), pair.a, 20)
            wait_for(lambda: log_path.exists() and log_path.read_text().count("MASTER") == 2, 5, "notified")
            time.sleep(5 * V3.advert_int)  # the peer follows both
            notified = len(log_path.read_text())
            mark_b = db.mark()
            t0 = time.monotonic()
            mark_a = _hup(da, config(V3, 11, 12, [Inst("VI_ONE", 51, 150, [100], notify)]))
            pair.owned_after(V3.vip(110), pair.b, t0, 5)
            db.wait_log(r"\(VI_2\) Backup received priority 0 advertisement", since=mark_b)
            # the peer took over Skew_Time (61 ms) after we let go, not Master_Down_Interval
            samples = pair.samplers[V3.vip(110)].timeline.samples
            released = max(s.t for s in samples if "r1" in s.owners)
            taken = min(s.t for s in samples if s.t > released and "r2" in s.owners)
            assert taken - released < 0.2, (
                f"the peer took VI_2 {taken - released:.3f} s after: no priority 0?"
            )
            wait_for(lambda: "VI_2" in log_path.read_text()[notified:], 5, "VI_2 notified")
            time.sleep(10 * V3.advert_int)
            assert log_path.read_text()[notified:].split("\n") == ["INSTANCE VI_2 FAULT 150", ""]
            log_a = da.log()[mark_a:]
            assert "(VI_1) is now called VI_ONE" in log_a
            assert "(VI_2) removed by the reload" in log_a
            assert "Entering" not in log_a, log_a
            assert "(VI_1) Entering MASTER" not in db.log()[mark_b:]
            pair.stop_samplers()
            assert pair.samplers[V3.vip(100)].timeline.final_owners == {"r1"}
            pair.samplers[V3.vip(100)].timeline.assert_one_owner(max_overlap=V3.advert_int)
            pair.samplers[V3.vip(110)].timeline.assert_one_owner(max_overlap=V3.advert_int)


def script_state_kept() -> None:
    with Rig() as rig:
        flag = rig.tmp / "down"
        flag.write_text("")

        def scripts(timeout: int) -> str:
            # run once at start (interval 30): a result lost on reload would not come back
            return "\n".join(
                f'vrrp_script {n} {{\n    script "/usr/bin/test ! -e {flag}"\n    interval 30\n'
                f"    timeout {timeout}\n    weight {w}\n}}"
                for n, w in (("chk", -60), ("chk0", 0))
            )

        insts = [
            Inst("VI_1", 51, 150, [100], "    track_script {\n        chk\n    }"),
            Inst("VI_2", 52, 150, [110], "    track_script {\n        chk0\n    }"),
        ]
        g = "    enable_script_security\n    script_user root"
        a = config(V3, 11, 12, insts, global_extra=g, tail=scripts(5))
        b = config(V3, 12, 11, [Inst("VI_1", 51, 100, [100]), Inst("VI_2", 52, 100, [110])])
        pair = make_pair(rig, "fastka", "keepalived", a, b)
        with explain(pair):
            pair.sample(V3.vip(100), V3.vip(110))
            da = pair.a.start(rig)
            db = pair.b.start(rig)
            da.wait_log(r"\(VI_1\) Changing effective priority from 150 to 90", timeout=20)
            da.wait_state("FAULT", instance="VI_2", timeout=20)
            pair.wait_owner(V3.vip(100), pair.b, 20)
            pair.wait_owner(V3.vip(110), pair.b, 20)
            time.sleep(5 * V3.advert_int)
            mark_b = db.mark()
            # a changed timeout is not part of the identity: the result stays
            mark_a = _hup(da, config(V3, 11, 12, insts, global_extra=g, tail=scripts(6)))
            time.sleep(V3.master_down + 10 * V3.advert_int)
            log_a = da.log()[mark_a:]
            assert "Changing effective priority" not in log_a, log_a
            assert "Entering" not in log_a, log_a
            assert "Entering" not in db.log()[mark_b:]
            pair.stop_samplers()
            assert pair.samplers[V3.vip(100)].timeline.final_owners == {"r2"}
            assert pair.samplers[V3.vip(110)].timeline.final_owners == {"r2"}


def test_reload_applies_the_difference() -> None:
    parallel(vips_added_and_removed_while_master, removed_and_renamed, script_state_kept)
