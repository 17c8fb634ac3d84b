"""fastka features beyond the basic election, each next to a peer where it matters
(VRRPv3 at 0.1 s; scenarios side by side in their own namespaces):

* ``owner_ignore_adverts``: the address owner drops adverts (counted as ``owner``); the
  per-peer advert counters of a BACKUP in its JSON dump, stats dump and data dump;
* the old unicast checksum (Keepalived < 1.3.6): detected in a peer's adverts, our own
  then use it; ``old_unicast_checksum never`` refuses them;
* ``vrrp_track_process`` in a network namespace (``/proc`` polled): the priority follows
  the process, a reload keeps what was counted, the JSON dump shows the count;
* ``timer_expired_backup``: a MASTER that was stopped long enough for the backup to take
  over reverts to BACKUP instead of fighting it;
* ``use_vmac`` + ``vmac_xmit_base`` with ``garp_extra_if``: adverts from the base
  interface's MAC, periodic GARPs from the VMAC;
* ``-X``/``--release-vips``: an address that was there before (an owner's own) stays at
  stop, unless ``-X``;
* a reload with ``fifo_write_vrrp_states_on_reload`` re-emits the states on the FIFO and
  re-forms the sync groups.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rig import Rig, VrrpDaemon
from vrrp_pairs import V3, Inst, Variant, config, explain, make_pair, parallel, wait_for

from fastka.vrrp.codec import FLAG_OLD_UNICAST_CHECKSUM, Expect, decode_ipv4, encode_ipv4, inet_checksum
from fastka.vrrp.sockets import SendSocket4

pytestmark = [pytest.mark.root, pytest.mark.netns]

V3U = Variant("v3-unicast", unicast=True)


def _dump(d: VrrpDaemon, signum: int, path: Path) -> str:
    path.unlink(missing_ok=True)
    d.send_signal(signum)
    wait_for(path.exists, 5, f"dump {path.name}")
    time.sleep(0.1)
    return path.read_text()


def _json(d: VrrpDaemon, path: Path) -> dict[str, Any]:
    return {i["data"]["name"]: i for i in json.loads(_dump(d, signal.SIGRTMIN + 2, path))}


def _dumps(rig: Rig, name: str) -> tuple[str, dict[str, Path]]:
    paths = {k: rig.tmp / f"{name}.{k}" for k in ("json", "stats", "data")}
    text = (
        f"    json_dump_file {paths['json']}\n    stats_dump_file {paths['stats']}\n"
        f"    state_dump_file {paths['data']}"
    )
    return text, paths


def owner_ignore_adverts_and_peer_counters() -> None:
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1, r2, r3 = (rig.router(n, lan, host=h) for n, h in (("r1", 11), ("r2", 12), ("r3", 13)))
        g1, p1 = _dumps(rig, "r1")
        g2, p2 = _dumps(rig, "r2")
        a = config(V3, 11, 12, [Inst("VI_1", 51, 255, [100], "    owner_ignore_adverts")], global_extra=g1)
        b = config(V3, 12, 11, [Inst("VI_1", 51, 100, [100])], global_extra=g2)
        da = rig.fastka(r1, a)
        db = rig.fastka(r2, b)
        try:
            da.wait_state("MASTER", instance="VI_1", timeout=20)
            db.wait_state("BACKUP", instance="VI_1", timeout=20)
            sender = rig.own(r3.call(SendSocket4, "eth0"))
            advert = encode_ipv4(3, 51, 254, 10, socket.inet_aton("10.99.0.100"), 0, b"",
                                 socket.inet_aton("10.99.0.13"), socket.inet_aton("224.0.0.18"))  # fmt: skip
            mark = da.mark()
            for _ in range(5):
                sender.send(advert, "224.0.0.18", multicast=True)
                time.sleep(0.03)
            time.sleep(1.0)
            log_a = da.log()[mark:]
            assert "(VI_1) Dropping packet(s) from 10.99.0.13 since we are address owner" in log_a
            assert "Entering" not in log_a and "lower priority" not in log_a
            assert _json(da, p1["json"])["VI_1"]["stats"]["drops"].get("owner") == 5
            peers = {p["address"]: p for p in _json(db, p2["json"])["VI_1"]["stats"]["peers"]}
            assert set(peers) == {"10.99.0.11", "10.99.0.13"}, peers
            assert peers["10.99.0.13"]["adverts"] == 5 and peers["10.99.0.13"]["last_priority"] == 254
            assert peers["10.99.0.11"]["adverts"] > 5 and peers["10.99.0.11"]["last_priority"] == 255
            assert abs(peers["10.99.0.11"]["last_seen"] - time.time()) < 5
            stats = _dump(db, signal.SIGUSR2, p2["stats"])
            assert "10.99.0.13: received 5, last priority 254" in stats, stats
            data = _dump(db, signal.SIGUSR1, p2["data"])
            assert re.search(r"Peer 10\.99\.0\.11: \d+ adverts, last priority 255", data), data
        except BaseException as exc:
            raise AssertionError(f"{exc}\n{da.log()[-3000:]}\n{db.log()[-3000:]}") from exc


def _old_checksum_advert(vrid: int, prio: int) -> bytes:
    """A unicast VRRPv3 advert 10.99.0.12 -> 10.99.0.11 as Keepalived < 1.3.6 sent it: the
    checksum made with 224.0.0.18 as the pseudo-header destination."""
    src, group = socket.inet_aton("10.99.0.12"), socket.inet_aton("224.0.0.18")
    p = bytearray(encode_ipv4(3, vrid, prio, 10, socket.inet_aton("10.99.0.100"), 0, b"", src, group))
    p[16:20] = socket.inet_aton("10.99.0.11")
    p[10:12] = b"\0\0"
    p[10:12] = inet_checksum(bytes(p[:20])).to_bytes(2, "big")
    return bytes(p)


def old_unicast_checksum() -> None:
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1, r2 = rig.router("r1", lan, host=11), rig.router("r2", lan, host=12)
        g1, p1 = _dumps(rig, "r1")
        a = config(V3U, 11, 12, [Inst("VI_1", 51, 100, [100]),
                                 Inst("VI_2", 52, 100, [100], "    old_unicast_checksum never")],
                   global_extra=g1)  # fmt: skip
        da = rig.fastka(r1, a)
        try:
            da.wait_state("MASTER", instance="VI_1", timeout=20)
            da.wait_state("MASTER", instance="VI_2", timeout=20)
            sender = rig.own(r2.call(SendSocket4, "eth0"))
            old = {vrid: _old_checksum_advert(vrid, 200) for vrid in (51, 52)}
            mark = da.mark()
            for _ in range(15):
                for p in old.values():
                    sender.send(p, "10.99.0.11", multicast=False)
                time.sleep(0.05)
            log_a = da.log()[mark:]
            assert "(VI_1) Setting unicast VRRPv3 checksum to old version (peer 10.99.0.12 uses it)" in log_a
            assert "(VI_1) Entering BACKUP STATE" in log_a
            assert "(VI_2) Entering" not in log_a, "never: the old checksum is refused"
            cap = rig.capture(lan)
            da.wait_state("MASTER", instance="VI_1", since=mark, timeout=5)
            time.sleep(0.5)
            frames = [f for f in cap.stop() if f.is_vrrp and f.data[30:34] == socket.inet_aton("10.99.0.12")]
            by_vrid: dict[int, list[bytes]] = {51: [], 52: []}
            for f in frames:
                by_vrid[f.data[35]].append(f.data[14:])
            assert by_vrid[51] and by_vrid[52]
            expect = Expect(3, unicast=True, old_unicast_checksum=True)
            assert all(decode_ipv4(p, expect).flags & FLAG_OLD_UNICAST_CHECKSUM for p in by_vrid[51])
            assert not any(decode_ipv4(p, expect).flags & FLAG_OLD_UNICAST_CHECKSUM for p in by_vrid[52])
            doc = _json(da, p1["json"])
            assert doc["VI_1"]["data"]["old_unicast_checksum"] is True
            assert doc["VI_2"]["data"]["old_unicast_checksum"] is False
            assert doc["VI_2"]["stats"]["drops"].get("checksum", 0) >= 10
        except BaseException as exc:
            raise AssertionError(f"{exc}\n{da.log()[-3000:]}") from exc


def track_process() -> None:
    with Rig() as rig:
        name = f"fkp{os.getpid() % 100000}"
        prog = rig.tmp / name
        shutil.copy("/bin/sleep", prog)
        g1, p1 = _dumps(rig, "r1")
        tail = f"vrrp_track_process proc {{\n    process {name}\n    weight -60\n    delay 0.3\n}}"
        a = config(V3, 11, 12, [Inst("VI_1", 51, 150, [100], "    track_process {\n        proc\n    }")],
                   global_extra=g1, tail=tail)  # fmt: skip
        b = config(V3, 12, 11, [Inst("VI_1", 51, 100, [100])])
        pair = make_pair(rig, "fastka", "keepalived", a, b)
        with explain(pair):
            vip = V3.vip(100)
            pair.sample(vip)
            da = pair.a.start(rig)
            pair.b.start(rig)
            da.wait_log(r"looking at /proc every 1 s instead", timeout=20)
            pair.wait_owner(vip, pair.b, 20)  # no such process: 150 - 60 < 100
            proc = pair.a.ns.popen([str(prog), "120"], log="tracked-process.log")
            da.wait_log(r"\(VI_1\) Changing effective priority from 90 to 150", timeout=5)
            pair.wait_owner(vip, pair.a, 5)
            doc = _json(da, p1["json"])
            assert doc["VI_1"]["data"]["effective_priority"] == 150
            mark = _hup(da, a)
            time.sleep(1.5)  # more than a /proc poll
            assert "Changing effective priority" not in da.log()[mark:]
            assert "Entering" not in da.log()[mark:]
            proc.stop()
            da.wait_log(r"\(VI_1\) Changing effective priority from 150 to 90", since=mark, timeout=5)
            pair.wait_owner(vip, pair.b, 5)
            pair.stop_samplers()
            pair.samplers[vip].timeline.assert_one_owner(max_overlap=V3.advert_int)


def _hup(d: VrrpDaemon, text: str) -> int:
    mark = d.mark()
    d.config_path.write_text(text)
    d.send_signal(signal.SIGHUP)
    d.wait_log("Reload finished", since=mark, timeout=10)
    return mark


def timer_expired_backup() -> None:
    with Rig() as rig:
        extra = "    nopreempt\n    timer_expired_backup"
        a = config(V3, 11, 12, [Inst("VI_1", 51, 200, [100], extra)])
        b = config(V3, 12, 11, [Inst("VI_1", 51, 100, [100])])
        pair = make_pair(rig, "fastka", "keepalived", a, b)
        with explain(pair):
            vip = V3.vip(100)
            pair.sample(vip)
            da = pair.a.start(rig)
            pair.wait_owner(vip, pair.a, 20)
            db = pair.b.start(rig)
            db.wait_state("BACKUP", instance="VI_1", timeout=20)
            time.sleep(5 * V3.advert_int)
            child = da.vrrp_pid()
            mark_a = da.mark()
            os.kill(child, signal.SIGSTOP)
            try:
                db.wait_state("MASTER", instance="VI_1", timeout=5)
                mark_b = db.mark()
                time.sleep(0.5)
            finally:
                os.kill(child, signal.SIGCONT)
            da.wait_log(
                r"\(VI_1\) we were not running for [0-9.]+ s: a backup may be master now", since=mark_a
            )
            da.wait_state("BACKUP", instance="VI_1", since=mark_a, timeout=5)
            time.sleep(10 * V3.advert_int)
            assert "Entering BACKUP" not in db.log()[mark_b:], "the backup that took over stays MASTER"
            pair.stop_samplers()
            assert pair.samplers[vip].timeline.final_owners == {"r2"}


def vmac_xmit_base_and_garp_extra_if() -> None:
    with Rig() as rig:
        extra = "    use_vmac\n    vmac_xmit_base\n    garp_extra_if 0.5"
        a = config(V3, 11, 12, [Inst("VI_1", 51, 150, [100], extra)])
        b = config(V3, 12, 11, [Inst("VI_1", 51, 100, [100])])
        pair = make_pair(rig, "fastka", "keepalived", a, b)
        with explain(pair):
            vip = V3.vip(100)
            pair.sample(vip)
            cap = rig.capture(pair.lan)
            da = pair.a.start(rig)
            db = pair.b.start(rig)
            pair.wait_owner(vip, pair.a, 20)
            da.wait_state("MASTER", instance="VI_1")
            mark_b = db.mark()
            wait_for(lambda: vip in {str(x.ip) for x in pair.a.ns.addresses("vrrp.51")}, 5, "VIP on the VMAC")
            time.sleep(2.6)
            frames = cap.stop()
            adverts = [f for f in frames if f.is_vrrp and f.data[26:30] == socket.inet_aton("10.99.0.11")]
            assert adverts and {f.src_mac for f in adverts} == {"02:99:00:00:00:11"}, (
                "sent on the base interface"
            )
            garps = [f.t for f in frames if f.is_garp and f.src_mac == "00:00:5e:00:01:33"]
            assert len(garps) >= 5 + 3, garps  # the burst of becoming MASTER, then every 0.5 s
            later = [t for t in garps if t - garps[0] > 0.2]
            gaps = [b - a for a, b in itertools.pairwise(later)]
            assert gaps and all(0.35 < g < 0.75 for g in gaps), gaps
            assert "Entering MASTER" not in db.log()[mark_b:], "Keepalived accepts adverts from the base MAC"


def release_vips() -> None:
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        r1.ip("addr", "add", "10.99.0.50/24", "dev", "eth0")  # there before: the owner's own
        conf = config(V3, 11, 12, [Inst("VI_1", 51, 255, [50, 51])])
        for extra, kept in (((), True), (("-X",), False)):
            d = rig.fastka(r1, conf, extra=extra)
            try:
                d.wait_state("MASTER", instance="VI_1", timeout=20)
                wait_for(lambda: r1.has_address("10.99.0.51"), 5, "VIPs")
                assert d.stop() == 0
                assert not r1.has_address("10.99.0.51"), "what we added goes"
                assert r1.has_address("10.99.0.50") is kept, f"-X: {extra}"
            except BaseException as exc:
                raise AssertionError(f"{exc}\n{d.log()[-3000:]}") from exc


def fifo_states_and_sync_group_on_reload() -> None:
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        fifo = rig.tmp / "notify.fifo"
        os.mkfifo(fifo)
        g = f"    notify_fifo {fifo}\n    fifo_write_vrrp_states_on_reload"
        insts = [Inst("VI_1", 51, 150, [100]), Inst("VI_2", 52, 150, [101])]
        group = "vrrp_sync_group {} {{\n    group {{\n        VI_1\n        VI_2\n    }}\n}}"
        lines: list[str] = []
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        stop = threading.Event()

        def reader() -> None:
            buf = b""
            while not stop.is_set():
                with contextlib.suppress(BlockingIOError):
                    buf += os.read(fd, 4096)
                *done, buf = buf.split(b"\n")
                lines.extend(x.decode() for x in done)
                time.sleep(0.01)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        d = rig.fastka(r1, config(V3, 11, 12, insts, global_extra=g, tail=group.format("G")))
        try:
            d.wait_state("MASTER", instance="VI_1", timeout=20)
            d.wait_state("MASTER", instance="VI_2", timeout=20)
            wait_for(lambda: 'GROUP "G" MASTER 0' in lines, 5, "group MASTER on the FIFO")
            seen = len(lines)
            new = [*insts, Inst("VI_3", 53, 150, [102])]
            mark = _hup(d, config(V3, 11, 12, new, global_extra=g, tail=group.format("G2")))
            d.wait_state("MASTER", instance="VI_3", since=mark, timeout=5)
            time.sleep(0.3)
            after = lines[seen:]
            for line in ('INSTANCE "VI_1" MASTER 150', 'INSTANCE "VI_2" MASTER 150', 'GROUP "G2" MASTER 0'):
                assert line in after, after
            assert not [x for x in after if re.match(r'INSTANCE "VI_[12]" (BACKUP|FAULT|STOP)', x)], after
            assert 'INSTANCE "VI_3" MASTER 150' in after
            log = d.log()[mark:]
            assert "(VI_1) Entering" not in log and "(VI_2) Entering" not in log
            # the re-formed group works: one member's fault takes the other down too
            mark = d.mark()
            r1.ip("link", "set", "eth0", "down")
            d.wait_log(r"VRRP_Group\(G2\) Syncing instances to FAULT state", since=mark, timeout=5)
        except BaseException as exc:
            raise AssertionError(f"{exc}\n{lines}\n{d.log()[-3000:]}") from exc
        finally:
            stop.set()
            t.join()
            os.close(fd)


def test_owner_checksum_process_timer() -> None:
    parallel(
        owner_ignore_adverts_and_peer_counters, old_unicast_checksum, track_process, timer_expired_backup
    )


def test_vmac_release_vips_fifo() -> None:
    parallel(vmac_xmit_base_and_garp_extra_if, release_vips, fifo_states_and_sync_group_on_reload)
