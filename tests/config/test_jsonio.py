"""The JSON dump: a documented, stable document that parses back to the same model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from cfghelp import compile_text

from fastka.config import jsonio
from fastka.config import model as m
from fastka.errors import ConfigError

DOC = Path(__file__).resolve().parents[2] / "docs" / "config-json.md"

RICH = r"""
global_defs {
    router_id lb1
    notification_email {
        ops@example.com
    }
    smtp_server 10.0.0.25 2525
    vrrp_garp_master_refresh 60
    lvs_sync_daemon eth1 VI_1 id 5
    notify_fifo /run/fastka.fifo
    notify_fifo_script "/usr/bin/fifo.sh -v"
}
vrrp_script chk {
    script "/usr/bin/check 'a b'"
    interval 2.5
    weight -10 reverse
}
track_file tf {
    file "/run/tf"
    init_file 5 overwrite
}
vrrp_track_process haproxy {
    process haproxy -f /etc/haproxy.cfg
    param_match initial
    quorum 2
}
vrrp_sync_group G {
    group {
        VI_1
        VI_6
    }
    notify "/usr/bin/notify.sh" nobody
}
garp_group {
    garp_interval 0.01
    interfaces {
        eth0 eth1
    }
}
static_ipaddress {
    192.168.1.1/24 dev eth1 scope link
}
static_routes {
    10.5.0.0/16 via 192.168.1.254 dev eth1 table 100 mtu 1400
}
static_rules {
    from 10.5.0.0/16 table 100 priority 50
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 2
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    use_vmac
    unicast_src_ip 10.0.0.2
    unicast_peer {
        10.0.0.3 min_ttl 254
    }
    track_script {
        chk
    }
    track_file {
        tf weight 2
    }
    track_process {
        haproxy
    }
    track_interface {
        eth1 weight -20 reverse
    }
    virtual_ipaddress {
        10.0.0.100/24 dev eth0 label eth0:vip brd +
    }
    virtual_ipaddress_excluded {
        2001:db8::100/64
    }
    virtual_routes {
        10.9.0.0/16 via 10.0.0.1 dev eth0 nexthop via 10.0.0.7 weight 3
    }
    virtual_rules {
        to 10.9.0.0/16 lookup 200 pref 100
    }
    notify_master "/usr/bin/master.sh x" root :wheel
}
vrrp_instance VI_6 {
    interface eth0
    virtual_router_id 52
    virtual_ipaddress {
        2001:db8::1
    }
}
virtual_server_group VSG {
    10.1.0.1-4 80
    fwmark 9
}
virtual_server group VSG {
    lb_algo wrr
    lb_kind TUN type gue port 5555
    protocol TCP
    real_server 10.2.0.1 80 {
        weight 4
        HTTP_GET {
            url {
                path /health
                digest 0123456789abcdef0123456789ABCDEF
                status_code 200 300-302
            }
        }
    }
}
virtual_server 10.3.0.1 53 {
    lb_algo rr
    lb_kind NAT
    protocol UDP
    quorum_up "/usr/bin/up.sh"
    sorry_server 10.3.0.99 53
    real_server 10.3.0.2 53 {
        DNS_CHECK {
            type A
            name example.com
        }
        UDP_CHECK {
            payload deadbeef
            require_reply dexx
        }
        MISC_CHECK {
            misc_path "/usr/bin/misc.sh --flag"
            misc_dynamic
            user nobody
        }
        SMTP_CHECK {
            helo_name me
            host {
                connect_ip 10.3.0.3
            }
        }
        PING_CHECK {
        }
        SSL_GET {
            enable_sni
            url {
                path /
            }
        }
        TCP_CHECK {
            connect_port 25
        }
    }
}
SSL {
    ca /etc/ssl/ca.pem
}
"""


@pytest.fixture(scope="module")
def rich() -> m.Config:
    config, _ = compile_text(RICH)
    return config


def test_round_trip(rich: m.Config) -> None:
    text = jsonio.dumps(rich)
    back = jsonio.loads(text)
    assert back == rich
    assert jsonio.dumps(back) == text


def test_round_trip_keeps_locations(rich: m.Config) -> None:
    back = jsonio.loads(jsonio.dumps(rich))
    assert back.vrrp_instances["VI_1"].location == rich.vrrp_instances["VI_1"].location
    assert back.vrrp_instances["VI_1"].location is not None


def test_document_shape(rich: m.Config) -> None:
    doc = json.loads(jsonio.dumps(rich))
    assert doc["schema"] == 1
    vi = doc["vrrp_instances"]["VI_1"]
    assert vi["virtual_router_id"] == 51 and vi["priority"] == 150 and vi["advert_int"] == 2.0
    assert vi["state"] == "MASTER" and vi["family"] == "inet"
    assert vi["authentication"] == {"auth_type": "PASS", "auth_pass": b"s3cret".hex()}
    assert vi["virtual_ipaddress"][0]["address"] == "10.0.0.100/24"
    assert vi["unicast_src_ip"] == "10.0.0.2"
    assert vi["location"] == {"file": "keepalived.conf", "line": 49}
    assert vi["notify_master"]["argv"] == ["/usr/bin/master.sh", "x"]
    checkers = doc["virtual_servers"][1]["real_servers"][0]["checkers"]
    assert [c["type"] for c in checkers] == [
        "DNS_CHECK", "UDP_CHECK", "MISC_CHECK", "SMTP_CHECK", "PING_CHECK", "SSL_GET", "TCP_CHECK",
    ]  # fmt: skip
    assert checkers[0]["query_type"] == "A"
    url = doc["virtual_servers"][0]["real_servers"][0]["checkers"][0]["urls"][0]
    assert url["status_code"] == [[200, 200], [300, 302]]
    assert url["digest"] == "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "doc",
    [
        "[]",
        "not json",
        '{"schema": 2}',
        '{"vrrp_instances": {"x": {"name": "x"}}}',
        '{"vrrp_instances": {"x": {"name": "x", "virtual_router_id": "one"}}}',
        '{"virtual_servers": [{"real_servers": [{"address": "10.0.0.1", "checkers": [{"type": "NOPE"}]}]}]}',
        '{"virtual_servers": [{"address": "not an address"}]}',
    ],
)
def test_invalid_documents_raise_config_error(doc: str) -> None:
    with pytest.raises(ConfigError):
        jsonio.loads(doc)


def _all_model_classes() -> list[type]:
    return [
        obj
        for obj in vars(m).values()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == m.__name__
        and obj is not m.Matched  # a reload helper, not part of the document
    ]


def test_schema_document_lists_every_key() -> None:
    """docs/config-json.md documents every object and key the dump can contain."""
    text = DOC.read_text()
    for cls in _all_model_classes():
        assert f"### {cls.__name__}" in text, cls.__name__
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in text, f"{cls.__name__}.{f.name}"
