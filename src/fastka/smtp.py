"""SMTP alerts (``notification_email``, ``smtp_server``, ``smtp_alert`` ...), as Keepalived
2.2.7 sends them.

What goes on the wire, observed from Keepalived 2.2.7 against a recording SMTP sink (one
connection per alert)::

    HELO <smtp_helo_name>
    MAIL FROM:<notification_email_from>
    RCPT TO:<address>                      (one per notification_email entry)
    DATA
    Date: Thu, 26 Nov 2026 02:55:36 +0000
    From: <notification_email_from>
    Subject: [<router_id>] VRRP Instance VI_1 - Entering MASTER state
    X-Mailer: Keepalived
    To: admin@example.com, Ops Team <ops@example.com>

    => VRRP Instance is now owning VRRP VIPs <=

    .
    QUIT

Subjects and bodies (the ``[router_id] `` prefix is added to every subject):

* VRRP instance: ``VRRP Instance VI_1 - Entering MASTER state`` /
  ``=> VRRP Instance is now owning VRRP VIPs <=`` (BACKUP and FAULT: ``... is no longer
  owning VRRP VIPs <=``); sync group: ``VRRP Group VG_1 - Entering MASTER state`` /
  ``=> All VRRP group instances are now in MASTER state <=``. FAULT is not mailed with
  ``no_email_faults``.
* Real server: ``Realserver [10.0.0.1]:tcp:80 of virtual server [10.0.0.100]:tcp:80 - DOWN``
  with the checker's own line (``=> TCP CHECK failed on service <=``, ``=> MISC CHECK
  succeeded on service <=``, ``=> CHECK failed on service : <detail> <=`` ...); the state
  in the subject is the real server's after the change (a checker recovering while
  another still fails says ``DOWN``). One mail per checker change, or only when the real
  server itself changes with ``no_checker_emails``. FILE_CHECK changes are not mailed
  (Keepalived 2.2.7 sends none).
* Virtual server: ``Virtualserver [10.0.0.100]:tcp:80 - UP`` (``FWM 7``,
  ``[group]:port``) with ``=> Gained quorum 2+0=2 <= 4 <=``, ``=> Lost quorum 2+0=2 <= 1
  <=`` (Keepalived's mail repeats the gained-quorum arithmetic even when quorum is lost),
  or at start-up ``=> Starting with quorum up 2+0=2 <= 4 <=``.

Alerts are formatted at once (the Date is the event's) and queued; one worker thread
delivers them with :mod:`smtplib`, each attempt bounded by ``smtp_connect_timeout``, so
the event loop never waits for a mail server. A failed delivery is logged
(``Error sending SMTP alert ...``) and not retried, as Keepalived.

Departures from Keepalived 2.2.7: a ``"Name <addr>"`` recipient is sent as ``RCPT
TO:<addr>`` (Keepalived sends the whole string inside the angle brackets, which servers
reject); no alert is attempted on STOP (Keepalived opens the connection at shutdown but
exits before sending anything).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastka.config.model import GlobalDefs

__all__ = [
    "Mailer",
    "SmtpSettings",
    "checker_body",
    "format_message",
    "rs_alert",
    "vrrp_group_alert",
    "vrrp_instance_alert",
    "vs_alert",
]

log = logging.getLogger("fastka.smtp")

QUEUE_MAX = 1000


@dataclass(frozen=True)
class SmtpSettings:
    """The global_defs settings of SMTP alerts."""

    server: str
    port: int = 25
    helo_name: str = "localhost"
    from_addr: str = "keepalived@localhost"
    to: tuple[str, ...] = ()
    router_id: str = ""
    connect_timeout: float = 30.0

    @classmethod
    def from_global_defs(cls, g: GlobalDefs) -> SmtpSettings | None:
        """None when alerts cannot go anywhere (no ``smtp_server`` or no recipient)."""
        if not g.smtp_server or not g.notification_email:
            return None
        return cls(
            server=g.smtp_server,
            port=g.smtp_server_port,
            helo_name=g.smtp_helo_name or "localhost",
            from_addr=g.notification_email_from,
            to=tuple(g.notification_email),
            router_id=g.router_id,
            connect_timeout=g.smtp_connect_timeout,
        )


# --------------------------------------------------------------------------- texts


def vrrp_instance_alert(name: str, state: str) -> tuple[str, str]:
    """(subject, body) of a VRRP instance's transition to ``state``."""
    owning = "now owning" if state == "MASTER" else "no longer owning"
    return f"VRRP Instance {name} - Entering {state} state", f"=> VRRP Instance is {owning} VRRP VIPs <="


def vrrp_group_alert(name: str, state: str) -> tuple[str, str]:
    return (
        f"VRRP Group {name} - Entering {state} state",
        f"=> All VRRP group instances are now in {state} state <=",
    )


def rs_alert(rs: str, vs: str, up: bool, body: str) -> tuple[str, str]:
    """A real server's mail: ``rs``/``vs`` as Keepalived formats them (``[ip]:proto:port``)."""
    return f"Realserver {rs} of virtual server {vs} - {'UP' if up else 'DOWN'}", body


def vs_alert(vs: str, event: str, quorum: int, hysteresis: int, weight_sum: int) -> tuple[str, str]:
    """``event``: ``gained``, ``lost`` or ``start`` (quorum up at start-up)."""
    what = {"gained": "Gained quorum", "lost": "Lost quorum", "start": "Starting with quorum up"}[event]
    arith = f"{quorum}+{hysteresis}={quorum + hysteresis} <= {weight_sum}"
    return f"Virtualserver {vs} - {'DOWN' if event == 'lost' else 'UP'}", f"=> {what} {arith} <="


# Keepalived's line per checker kind: (up, down); None = "CHECK ... : detail" form.
_CHECKER_LINES: dict[str, tuple[str, str] | None] = {
    "TCP_CHECK": ("TCP CHECK succeed on service", "TCP CHECK failed on service"),
    "MISC_CHECK": ("MISC CHECK succeeded on service", "MISC CHECK failed on service"),
    "UDP_CHECK": ("UDP CHECK succeed on service", "UDP CHECK failed on service"),
    "PING_CHECK": ("ICMP CHECK succeed on service", "ICMP CHECK failed on service"),
    "DNS_CHECK": ("DNS_CHECK: succeed on service", "DNS_CHECK: failed on service"),
    "HTTP_GET": None,
    "SSL_GET": None,
    "SMTP_CHECK": None,
}


def checker_body(kind: str, up: bool, detail: str = "", target: str = "") -> str:
    """The body line of a checker's change. ``detail``: fastka's reason for a failure;
    ``target``: the checker's ``[ip]:proto:port``; SMTP_CHECK's wording names ``[ip]:port``.

    Keepalived 2.2.7 says ``HTTP request failed`` for every HTTP_GET/SSL_GET failure
    (refused, timeout, status, digest -- observed); SMTP_CHECK's says ``Could not connect
    to server [ip]:port`` or ``Read timeout from server [ip]:port`` (observed), other
    SMTP failures carry fastka's own reason."""
    lines = _CHECKER_LINES.get(kind)
    if lines is not None:
        return f"=> {lines[0] if up else lines[1]} <="
    if up:
        return "=> CHECK succeed on service <="
    if kind != "SMTP_CHECK":
        detail = "HTTP request failed"
        return f"=> CHECK failed on service : {detail} <="
    host, sep, rest = target.rpartition("]:")
    if sep and ":" in rest:  # fastka's "[ip]:proto:port" -> Keepalived's "[ip]:port"
        target = f"{host}]:{rest.rsplit(':', 1)[1]}"
    if detail.startswith(("connect:", "socket:", "timeout (connection)")) or not detail:
        detail = f"Could not connect to server {target}"
    elif detail.startswith("timeout"):
        detail = f"Read timeout from server {target}"
    return f"=> CHECK failed on service : {detail} <="


def format_message(settings: SmtpSettings, subject: str, body: str, when: float | None = None) -> bytes:
    """The DATA of one alert, with Keepalived's headers and CRLF line ends."""
    date = time.strftime("%a, %d %b %Y %H:%M:%S %z", time.localtime(when))
    prefix = f"[{settings.router_id}] " if settings.router_id else ""
    lines = [
        f"Date: {date}",
        f"From: {settings.from_addr}",
        f"Subject: {prefix}{subject}",
        "X-Mailer: Keepalived",
        f"To: {', '.join(settings.to)}",
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode("utf-8", "replace") + b"\r\n"


def envelope_address(entry: str) -> str:
    """``Name <addr>`` -> ``addr`` (a bare address unchanged)."""
    import email.utils  # only where alerts are sent (start-up cost of the children)

    _name, addr = email.utils.parseaddr(entry)
    return addr or entry


# --------------------------------------------------------------------------- delivery


class Mailer:
    """Queues alerts and delivers them from one worker thread (started on first use)."""

    def __init__(self, settings: SmtpSettings, *, queue_max: int = QUEUE_MAX) -> None:
        self.settings = settings
        self._queue: queue.Queue[bytes | None] = queue.Queue(queue_max)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._closed = False

    def send(self, subject: str, body: str) -> None:
        """Queue one alert (never blocks)."""
        if self._closed:
            return
        data = format_message(self.settings, subject, body)
        with self._lock:
            try:
                self._queue.put_nowait(data)
            except queue.Full:
                self.dropped += 1
                log.warning("SMTP alert queue full: alert '%s' dropped", subject)
                return
            self._busy += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._worker, name="fastka-smtp", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued alert was delivered or failed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, wait: float = 0.0) -> None:
        """Stop the worker after what is queued (waiting at most ``wait`` seconds)."""
        if self._closed:
            return
        self._closed = True
        t = self._thread
        if t is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if wait > 0:
            t.join(wait)

    def _worker(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            try:
                ok = self.deliver(data)
            except Exception:  # never let the worker die: the next alert must still go
                log.exception("SMTP alert delivery failed")
                ok = False
            with self._idle:
                if ok:
                    self.sent += 1
                else:
                    self.failed += 1
                self._busy -= 1
                self._idle.notify_all()

    def deliver(self, data: bytes) -> bool:
        """One SMTP dialogue (HELO, MAIL, RCPT..., DATA, QUIT), as Keepalived's. Blocking."""
        import smtplib  # only in the worker (start-up cost of the children)

        s = self.settings
        where = f"[{s.server}]:{s.port}"
        client = smtplib.SMTP(timeout=s.connect_timeout)
        try:
            code, msg = client.connect(s.server, s.port)
            _expect(code, msg, (220,), "greeting")
            log.info("Remote SMTP server %s connected.", where)
            _expect(*client.docmd("HELO", s.helo_name), (250,), "HELO")
            _expect(*client.docmd("MAIL", f"FROM:<{envelope_address(s.from_addr)}>"), (250,), "MAIL FROM")
            for rcpt in s.to:
                _expect(*client.docmd("RCPT", f"TO:<{envelope_address(rcpt)}>"), (250, 251), "RCPT TO")
            _expect(*client.docmd("DATA"), (354,), "DATA")
            client.send(_dot_stuff(data) + b".\r\n")
            _expect(*client.getreply(), (250,), "end of DATA")
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.docmd("QUIT")
        except (OSError, smtplib.SMTPException, _Refused) as exc:
            log.warning("Error sending SMTP alert to %s: %s", where, exc or type(exc).__name__)
            return False
        finally:
            client.close()
        log.info("SMTP alert successfully sent.")
        return True


class _Refused(Exception):
    pass


def _expect(code: int, msg: bytes, ok: Sequence[int], step: str) -> None:
    if code not in ok:
        raise _Refused(f"{step}: {code} {msg.decode(errors='replace')}")


def _dot_stuff(data: bytes) -> bytes:
    """RFC 5321 §4.5.2: a line starting with a dot gets another one."""
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")
