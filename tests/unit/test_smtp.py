"""SMTP alerts against a recording SMTP server on loopback: Keepalived's dialogue,
headers, subjects and bodies; failures and timeouts logged, never raised; the VRRP
notifier's choice of what to mail (smtp_alert, no_email_faults, groups, no STOP)."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from fastka.config.model import Config, GlobalDefs, SyncGroup, VrrpInstance
from fastka.loop import Loop
from fastka.notify import VrrpNotifier
from fastka.smtp import (
    Mailer,
    SmtpSettings,
    checker_body,
    format_message,
    rs_alert,
    vrrp_group_alert,
    vrrp_instance_alert,
    vs_alert,
)
from fastka.vrrp.instance import State
from smtp_sink import SmtpSink


def settings(port: int, **kw: object) -> SmtpSettings:
    base: dict[str, object] = {
        "server": "127.0.0.1",
        "port": port,
        "helo_name": "helo.example.com",
        "from_addr": "ka@example.com",
        "to": ("admin@example.com", "Ops Team <ops@example.com>"),
        "router_id": "lb1",
        "connect_timeout": 2.0,
    }
    base.update(kw)
    return SmtpSettings(**base)  # type: ignore[arg-type]


def test_dialogue_and_message_as_keepalived() -> None:
    with SmtpSink() as sink:
        m = Mailer(settings(sink.port))
        m.send(*vrrp_instance_alert("VI_1", "MASTER"))
        assert m.wait_idle(10)
        m.close()
        (mail,) = sink.wait(1)
    assert m.sent == 1 and m.failed == 0
    # the command sequence Keepalived 2.2.7 sends (the RCPT of "Name <addr>" is the address)
    assert mail.commands == [
        "HELO helo.example.com",
        "MAIL FROM:<ka@example.com>",
        "RCPT TO:<admin@example.com>",
        "RCPT TO:<ops@example.com>",
        "DATA",
        "QUIT",
    ]
    lines = mail.data.split(b"\r\n")
    assert lines[0].startswith(b"Date: ")
    assert lines[1:] == [
        b"From: ka@example.com",
        b"Subject: [lb1] VRRP Instance VI_1 - Entering MASTER state",
        b"X-Mailer: Keepalived",
        b"To: admin@example.com, Ops Team <ops@example.com>",
        b"",
        b"=> VRRP Instance is now owning VRRP VIPs <=",
        b"",
        b"",
    ]
    # the Date header is RFC 5322 with a numeric zone, as Keepalived's strftime
    assert time.strptime(lines[0][6:].decode(), "%a, %d %b %Y %H:%M:%S %z")


def test_texts() -> None:
    assert vrrp_instance_alert("VI_1", "BACKUP") == (
        "VRRP Instance VI_1 - Entering BACKUP state",
        "=> VRRP Instance is no longer owning VRRP VIPs <=",
    )
    assert vrrp_instance_alert("VI_1", "FAULT")[1] == "=> VRRP Instance is no longer owning VRRP VIPs <="
    assert vrrp_group_alert("VG_1", "FAULT") == (
        "VRRP Group VG_1 - Entering FAULT state",
        "=> All VRRP group instances are now in FAULT state <=",
    )
    assert rs_alert("[127.0.0.1]:tcp:8080", "[VSG]:0", False, checker_body("TCP_CHECK", False)) == (
        "Realserver [127.0.0.1]:tcp:8080 of virtual server [VSG]:0 - DOWN",
        "=> TCP CHECK failed on service <=",
    )
    assert vs_alert("[10.99.0.100]:tcp:80", "start", 2, 0, 4) == (
        "Virtualserver [10.99.0.100]:tcp:80 - UP",
        "=> Starting with quorum up 2+0=2 <= 4 <=",
    )
    assert vs_alert("FWM 7", "lost", 1, 0, 0) == (
        "Virtualserver FWM 7 - DOWN",
        "=> Lost quorum 1+0=1 <= 0 <=",
    )
    assert vs_alert("FWM 7", "gained", 1, 0, 1)[1] == "=> Gained quorum 1+0=1 <= 1 <="
    assert checker_body("MISC_CHECK", True) == "=> MISC CHECK succeeded on service <="
    assert checker_body("PING_CHECK", False) == "=> ICMP CHECK failed on service <="
    assert checker_body("UDP_CHECK", True) == "=> UDP CHECK succeed on service <="
    assert checker_body("DNS_CHECK", False) == "=> DNS_CHECK: failed on service <="
    assert checker_body("HTTP_GET", True) == "=> CHECK succeed on service <="
    assert checker_body("HTTP_GET", False, "connect: Connection refused") == (
        "=> CHECK failed on service : HTTP request failed <="
    )
    assert checker_body("SMTP_CHECK", False, "connect: Connection refused", "[127.0.0.1]:8083") == (
        "=> CHECK failed on service : Could not connect to server [127.0.0.1]:8083 <="
    )
    # every HTTP failure is "HTTP request failed" in Keepalived 2.2.7 (status, digest, timeout)
    assert checker_body("HTTP_GET", False, "HTTP status code 500") == (
        "=> CHECK failed on service : HTTP request failed <="
    )
    assert checker_body("SSL_GET", False, "MD5 digest error: got 00") == (
        "=> CHECK failed on service : HTTP request failed <="
    )
    assert checker_body("SMTP_CHECK", False, "timeout (exchange)", "[127.0.0.1]:tcp:8084") == (
        "=> CHECK failed on service : Read timeout from server [127.0.0.1]:8084 <="
    )
    assert checker_body("DNS_CHECK", True) == "=> DNS_CHECK: succeed on service <="


def test_dot_stuffing() -> None:
    with SmtpSink() as sink:
        m = Mailer(settings(sink.port, router_id=""))
        m.send("s", "line\r\n.hidden\r\n.")
        assert m.wait_idle(10)
        (mail,) = sink.wait(1)
    assert mail.headers["Subject"] == "s"  # no router_id: no prefix
    assert mail.body == "line\r\n.hidden\r\n."
    assert format_message(settings(1), "s", "b").endswith(b"\r\n\r\nb\r\n\r\n")


def test_refused_connection_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there
    m = Mailer(settings(port))
    with caplog.at_level(logging.WARNING, logger="fastka.smtp"):
        m.send("a", "b")
        m.send("c", "d")
        assert m.wait_idle(10)
    m.close()
    assert (m.sent, m.failed) == (0, 2)
    assert "Error sending SMTP alert to [127.0.0.1]" in caplog.text


def test_silent_server_times_out_and_next_alert_still_goes() -> None:
    with SmtpSink(mode="silent") as silent, SmtpSink() as good:
        m = Mailer(settings(silent.port, connect_timeout=0.3))
        t = time.monotonic()
        m.send("a", "b")  # returns at once: the loop never waits
        assert time.monotonic() - t < 0.1
        assert m.wait_idle(5)
        assert time.monotonic() - t < 3
        assert m.failed == 1
        m.close()
        m2 = Mailer(settings(good.port))
        m2.send("x", "y")
        assert m2.wait_idle(5) and m2.sent == 1


def test_rejected_recipient_fails_the_alert() -> None:
    with SmtpSink(reject_rcpt=True) as sink:
        m = Mailer(settings(sink.port))
        m.send("a", "b")
        assert m.wait_idle(5)
        assert (m.sent, m.failed) == (0, 1)
        assert sink.mails() == []


def test_settings_from_global_defs() -> None:
    assert SmtpSettings.from_global_defs(GlobalDefs(notification_email=["a@b"])) is None
    assert SmtpSettings.from_global_defs(GlobalDefs(smtp_server="127.0.0.1")) is None
    s = SmtpSettings.from_global_defs(
        GlobalDefs(
            smtp_server="mail.example.com",
            smtp_server_port=2525,
            notification_email=["a@b"],
            router_id="r1",
            smtp_helo_name="h",
            notification_email_from="f@x",
            smtp_connect_timeout=5,
        )
    )
    assert s == SmtpSettings("mail.example.com", 2525, "h", "f@x", ("a@b",), "r1", 5)


def test_vrrp_notifier_mails() -> None:
    with SmtpSink() as sink:
        g = GlobalDefs(
            smtp_server="127.0.0.1",
            smtp_server_port=sink.port,
            notification_email=["admin@example.com"],
            notification_email_from="ka@example.com",
            router_id="lb1",
            smtp_helo_name="h",
        )
        loop = Loop()
        inst = VrrpInstance(name="VI_1", virtual_router_id=1, smtp_alert=True)
        quiet = VrrpInstance(name="VI_2", virtual_router_id=2, smtp_alert=False)
        grp = SyncGroup(name="VG_1", group=["VI_1"], smtp_alert=True)
        n = VrrpNotifier(loop, Config(global_defs=g))
        assert n.mailer is not None
        for st in (State.BACKUP, State.MASTER, State.FAULT, State.STOP):
            n.instance(inst, st, 100)
            n.instance(quiet, st, 100)
        n.group(grp, State.MASTER)
        assert n.mailer.wait_idle(10)
        subjects = sorted(m.subject for m in sink.wait(4))
        assert subjects == sorted(
            [
                "[lb1] VRRP Instance VI_1 - Entering BACKUP state",
                "[lb1] VRRP Instance VI_1 - Entering MASTER state",
                "[lb1] VRRP Instance VI_1 - Entering FAULT state",
                "[lb1] VRRP Group VG_1 - Entering MASTER state",
            ]
        )
        n.close()
        # no_email_faults: FAULT is not mailed
        g.no_email_faults = True
        n = VrrpNotifier(loop, Config(global_defs=g))
        n.instance(inst, State.FAULT, 100)
        n.group(grp, State.FAULT)
        n.instance(inst, State.MASTER, 100)
        assert n.mailer is not None and n.mailer.wait_idle(10)
        time.sleep(0.1)
        assert [m.subject for m in sink.mails()[4:]] == ["[lb1] VRRP Instance VI_1 - Entering MASTER state"]
        n.close()
        loop.close()
