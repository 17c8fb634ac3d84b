"""Guest side of the checker SMTP alert comparison (tests/uml/test_smtp_alerts_uml.py):
run a daemon (Keepalived or fastka, ``-C``) on a configuration whose real servers are
on the guest's loopback, with a recording SMTP server there too, drive the real servers
down and up, and return the mails it sent."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from smtp_sink import SmtpSink

CONF = """\
global_defs {{
    router_id lb-uml
    notification_email {{
        admin@example.com
    }}
    notification_email_from ka@example.com
    smtp_server 127.0.0.1 {port}
    smtp_helo_name helo.example.com
    smtp_alert_checker
}}
virtual_server 10.99.0.100 80 {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    quorum 2
    real_server 127.0.0.1 18080 {{
        TCP_CHECK {{
            connect_timeout 1
            retry 0
        }}
    }}
    real_server 127.0.0.1 18081 {{
        MISC_CHECK {{
            misc_path "/bin/sh -c 'test -e {flag}'"
        }}
    }}
    real_server 127.0.0.1 18082 {{
        HTTP_GET {{
            url {{
                path /
            }}
            connect_timeout 1
            retry 0
        }}
    }}
}}
"""


def _listener(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    return s


def alerts(argv: list[str], workdir: str) -> dict[str, object]:
    """Start ``argv + [-f CONF]``; expected: quorum up at start, the three real servers
    DOWN and quorum lost; then the TCP and MISC servers come back: UP twice and quorum
    gained. Returns ``mails`` [(commands, subject, body)] and the daemon's ``output``."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    w = Path(workdir)
    flag = w / f"misc-ok-{os.getpid()}"
    flag.unlink(missing_ok=True)
    sink = SmtpSink()
    conf = w / f"smtp-{os.getpid()}.conf"
    conf.write_text(CONF.format(port=sink.port, flag=flag))
    log_path = w / f"smtp-daemon-{os.getpid()}.log"
    tcp: socket.socket | None = None
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*argv, "-f", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        sink.wait(5, timeout=30)  # start + 3 DOWN + lost
        time.sleep(1.5)  # nothing more comes
        flag.touch()
        tcp = _listener(18080)
        sink.wait(8, timeout=30)  # + 2 UP + gained
        time.sleep(1.5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if tcp is not None:
            tcp.close()
        flag.unlink(missing_ok=True)
        sink.close()
    mails = [(tuple(m.commands), m.subject, m.body) for m in sink.mails()]
    return {"mails": mails, "output": log_path.read_text(errors="replace")}
