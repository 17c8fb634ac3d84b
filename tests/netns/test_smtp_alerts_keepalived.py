"""VRRP SMTP alerts next to Keepalived 2.2.7: the same configuration, run by each in the
same namespace against a recording SMTP server on that namespace's loopback, gives the
same mails -- SMTP commands, headers (Date aside), subjects and bodies -- for the
instance and the sync group entering BACKUP at start-up and MASTER, and for FAULT
when the link goes down (none with no_email_faults)."""

from __future__ import annotations

import time

import pytest
from rig import Rig, require_netns
from vrrp_pairs import wait_for

from smtp_sink import Session, SmtpSink

pytestmark = [pytest.mark.root, pytest.mark.netns]

CONF = """\
global_defs {{
    router_id lb-r11
    notification_email {{
        admin@example.com
        ops@example.com
    }}
    notification_email_from ka@example.com
    smtp_server 127.0.0.1 {port}
    smtp_helo_name helo.example.com
    smtp_connect_timeout 5
    {extra}
}}
vrrp_sync_group VG_1 {{
    group {{
        VI_1
    }}
    smtp_alert
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.1
    version 3
    smtp_alert
    virtual_ipaddress {{
        10.99.0.100/24
    }}
}}
"""


def mail_view(m: Session) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], str]:
    headers = {k: v for k, v in m.headers.items() if k != "Date"}
    return tuple(m.commands), tuple(sorted(headers.items())), m.body


def run(kind: str, extra: str) -> list[tuple[tuple[str, ...], tuple[tuple[str, str], ...], str]]:
    with Rig() as rig:
        lan = rig.bridge("lan")
        r1 = rig.router("r1", lan, host=11)
        sink: SmtpSink = r1.call(SmtpSink)
        try:
            conf = CONF.format(port=sink.port, extra=extra)
            d = rig.fastka(r1, conf) if kind == "fastka" else rig.keepalived(r1, conf)
            d.wait_state("MASTER", instance="VI_1", timeout=15)
            sink.wait(4)
            lan.ports[0].down()
            d.wait_state("FAULT", instance="VI_1", timeout=15)
            if "no_email_faults" not in extra:
                sink.wait(6)
            else:
                time.sleep(1.0)
            wait_for(lambda: all(s.done or not s.lines for s in sink.sessions), 5, "sessions complete")
            d.stop()
            return sorted(mail_view(m) for m in sink.mails())
        finally:
            sink.close()


@pytest.mark.parametrize("extra", ["", "no_email_faults"])
def test_vrrp_alerts_as_keepalived(extra: str) -> None:
    require_netns()
    ours = run("fastka", extra)
    theirs = run("keepalived", extra)
    assert ours == theirs
    subjects = sorted(dict(h)["Subject"] for _c, h, _b in ours)
    expected = [
        "[lb-r11] VRRP Group VG_1 - Entering BACKUP state",
        "[lb-r11] VRRP Group VG_1 - Entering MASTER state",
        "[lb-r11] VRRP Instance VI_1 - Entering BACKUP state",
        "[lb-r11] VRRP Instance VI_1 - Entering MASTER state",
    ]
    if not extra:
        expected += [
            "[lb-r11] VRRP Group VG_1 - Entering FAULT state",
            "[lb-r11] VRRP Instance VI_1 - Entering FAULT state",
        ]
    assert subjects == sorted(expected)
