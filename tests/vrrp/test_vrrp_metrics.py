"""The VRRP part of ``/metrics``: the per-peer advert counters and the new drop reasons,
rendered byte-identically by the fast renderer and prometheus_client."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from fastka import metrics


def _instance(name: str, peers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "vrid": 51,
        "interface": "eth0",
        "family": "inet",
        "state": "BACKUP",
        "priority": 100,
        "effective_priority": 100,
        "transitions": 1,
        "last_transition": None,
        "stats": {
            "adverts_sent": 0,
            "adverts_received": 12,
            "became_master": 0,
            "released_master": 0,
            "priority_zero_sent": 0,
            "priority_zero_received": 0,
            "drops": {"owner": 3, "unicast_source": 1},
            "peers": peers,
        },
    }


def test_peer_counters_in_metrics() -> None:
    peers = [
        {"address": "10.0.0.2", "adverts": 10, "last_priority": 150, "last_seen": 1.7e9},
        {"address": "", "adverts": 2, "last_priority": 90, "last_seen": 1.7e9},
    ]
    doc = {"vrrp": {"instances": [_instance("VI_1", peers), _instance("VI_2", [])], "sync_groups": []}}
    fast = metrics.render(doc)
    assert fast == metrics.render_reference(doc)
    samples = {
        (s.name, s.labels.get("instance"), s.labels.get("peer", s.labels.get("reason"))): s.value
        for f in text_string_to_metric_families(fast.decode())
        for s in f.samples
    }
    assert samples[("fastka_vrrp_instance_peer_adverts_received_total", "VI_1", "10.0.0.2")] == 10
    assert samples[("fastka_vrrp_instance_peer_adverts_received_total", "VI_1", "")] == 2
    assert samples[("fastka_vrrp_instance_drops_total", "VI_1", "owner")] == 3
    assert not [k for k in samples if k[0].startswith("fastka_vrrp_instance_peer") and k[1] == "VI_2"]


def test_peers_in_the_status_table() -> None:
    from fastka import status

    peers = [{"address": "10.0.0.2", "adverts": 10, "last_priority": 150, "last_seen": None}]
    text = status.render(
        {"vrrp": {"instances": [_instance("VI_1", peers)], "sync_groups": [], "tracked": []}}
    )
    assert "VRRP peers (accepted adverts)" in text
    row = next(line for line in text.splitlines() if "10.0.0.2" in line)
    assert row.split()[:4] == ["VI_1", "10.0.0.2", "10", "150"]


def test_status_lists_what_each_instance_tracks() -> None:
    """One pass over the trackers serves the whole snapshot, in tracker order."""
    from types import SimpleNamespace as NS

    from fastka.vrrp.subsystem import VrrpSubsystem

    a, b = object(), object()
    trackers = [
        NS(kind="script", name="chk", up=True, users=[NS(instance=a, weight=-20), NS(instance=b, weight=0)]),
        NS(kind="interface", name="eth1", up=False, users=[NS(instance=a, weight=10)]),
    ]
    sub = VrrpSubsystem()
    sub.router = NS(trackers=NS(all=lambda: trackers))  # type: ignore[assignment]
    got = sub._tracked_by_instance()
    assert got[id(a)] == [
        {"type": "script", "name": "chk", "up": True, "weight": -20},
        {"type": "interface", "name": "eth1", "up": False, "weight": 10},
    ]
    assert got[id(b)] == [{"type": "script", "name": "chk", "up": True, "weight": 0}]
