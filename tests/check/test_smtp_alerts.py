"""Checker-side SMTP alerts on the fake loop: what is mailed when (Keepalived 2.2.7's
subjects and bodies, fastka.smtp), per checker change or only on real-server changes
(no_checker_emails), virtual-server quorum at start-up, lost and gained."""

from __future__ import annotations

from .conftest import FakeLoop
from .test_fsm import Harness, cfg, chk, rs, vs

VS = "[10.0.0.1]:tcp:80"


def rs_subject(ip: str, state: str) -> str:
    return f"Realserver [{ip}]:tcp:80 of virtual server {VS} - {state}"


def test_quorum_and_real_server_alerts(fake_loop: FakeLoop) -> None:
    h = Harness(
        fake_loop,
        cfg(vs(rs("10.1.0.1", smtp_alert=True), rs("10.1.0.2", smtp_alert=False), quorum=2, smtp_alert=True)),
    )
    h.start()
    assert h.recorder.alerts == [(f"Virtualserver {VS} - UP", "=> Starting with quorum up 2+0=2 <= 2 <=")]
    h.sw("10.1.0.1").ok = False
    fake_loop.advance(1.02)
    # the quorum's mail first, as Keepalived 2.2.7 (the checker's change is mailed after
    # the real server's consequences)
    assert h.recorder.alerts[1:] == [
        (f"Virtualserver {VS} - DOWN", "=> Lost quorum 2+0=2 <= 1 <="),
        (rs_subject("10.1.0.1", "DOWN"), "=> TCP CHECK failed on service <="),
    ]
    h.sw("10.1.0.2").ok = False  # its smtp_alert is off: nothing
    fake_loop.advance(5.0)
    assert len(h.recorder.alerts) == 3
    h.sw("10.1.0.1").ok = True
    h.sw("10.1.0.2").ok = True
    fake_loop.advance(5.0)
    assert h.recorder.alerts[3:] == [
        (f"Virtualserver {VS} - UP", "=> Gained quorum 2+0=2 <= 2 <="),
        (rs_subject("10.1.0.1", "UP"), "=> TCP CHECK succeed on service <="),
    ]


def _two_checkers(fake_loop: FakeLoop, changes_only: bool) -> list[tuple[str, str]]:
    h = Harness(
        fake_loop,
        cfg(vs(rs("10.1.0.1", chk(), chk(), smtp_alert=True), rs_alert_changes_only=changes_only)),
    )
    h.start()
    a, b = h.sw("10.1.0.1", 0), h.sw("10.1.0.1", 1)
    a.ok = b.ok = False
    fake_loop.advance(1.02)
    a.ok = True
    fake_loop.advance(5.0)
    b.ok = True
    fake_loop.advance(5.0)
    return h.recorder.alerts


def test_one_mail_per_checker_change(fake_loop: FakeLoop) -> None:
    # the subject carries the real server's state after the change
    assert _two_checkers(fake_loop, False) == [
        (rs_subject("10.1.0.1", "DOWN"), "=> TCP CHECK failed on service <="),
        (rs_subject("10.1.0.1", "DOWN"), "=> TCP CHECK failed on service <="),
        (rs_subject("10.1.0.1", "DOWN"), "=> TCP CHECK succeed on service <="),
        (rs_subject("10.1.0.1", "UP"), "=> TCP CHECK succeed on service <="),
    ]


def test_no_checker_emails_mails_real_server_changes_only(fake_loop: FakeLoop) -> None:
    assert _two_checkers(fake_loop, True) == [
        (rs_subject("10.1.0.1", "DOWN"), "=> TCP CHECK failed on service <="),
        (rs_subject("10.1.0.1", "UP"), "=> TCP CHECK succeed on service <="),
    ]
