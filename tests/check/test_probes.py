"""Every checker type against good, failing and hostile targets on loopback."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import pytest

from fastka.check.base import Probe, Result, Target
from fastka.check.dns import DnsProbe
from fastka.check.http import HttpProbe, build_request, client_ssl_context
from fastka.check.misc import MiscProbe
from fastka.check.ping import PingProbe
from fastka.check.smtp import SmtpProbe
from fastka.check.spec import DnsParams, HttpParams, MiscParams, Script, UdpParams, UrlSpec
from fastka.check.tcp import TcpProbe
from fastka.check.udp import UdpProbe, parse_reply_pattern
from fastka.loop import Loop

from . import servers as srv

T = 1.0  # connect_timeout used throughout (the verdict must come within ~2*T)


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


def run(loop: Loop, probe: Probe, step: int = 0, limit: float = 5.0) -> tuple[Result, float]:
    """Run one attempt; returns its result and how long it took."""
    results: list[Result] = []
    t0 = time.monotonic()
    probe.start(step, results.append)
    while not results and time.monotonic() - t0 < limit:
        loop.run_once(0.05)
    assert results, "probe gave no verdict"
    return results[0], time.monotonic() - t0


def target(port: int, host: str = "127.0.0.1") -> Target:
    return Target(host, port, socket.AF_INET6 if ":" in host else socket.AF_INET)


# ---------------------------------------------------------------------- TCP_CHECK
def test_tcp_good_refused_and_unanswered(loop: Loop) -> None:
    server = srv.TcpServer(srv.silent)
    try:
        ok, _ = run(loop, TcpProbe(loop, target(server.port), T))
        assert ok.ok
    finally:
        server.close()
    bad, _ = run(loop, TcpProbe(loop, target(srv.closed_port()), T))
    assert not bad.ok and "refused" in bad.reason.lower()
    with srv.full_backlog() as port:
        res, took = run(loop, TcpProbe(loop, target(port), 0.5))
    assert not res.ok and "timeout" in res.reason
    assert 0.45 < took < 1.5


def test_tcp_ipv6(loop: Loop) -> None:
    server = srv.TcpServer(srv.silent, host="::1")
    try:
        res, _ = run(loop, TcpProbe(loop, target(server.port, "::1"), T))
        assert res.ok
    finally:
        server.close()


# ---------------------------------------------------------------------- HTTP_GET
def http(port: int, *urls: UrlSpec, host: str = "127.0.0.1", **kw: Any) -> tuple[Target, HttpParams]:
    return target(port, host), HttpParams(urls=urls or (UrlSpec(),), **kw)


def test_http_request_bytes_are_keepalived_s(loop: Loop) -> None:
    seen: list[bytes] = []
    server = srv.TcpServer(srv.http_reply(requests=seen))
    try:
        tgt, params = http(server.port, UrlSpec(path="/a/b?c=1"))
        assert run(loop, HttpProbe(loop, tgt, T, params))[0].ok
        tgt, params = http(server.port, UrlSpec(path="/v", virtualhost="www.example"), http_protocol="1.1")
        assert run(loop, HttpProbe(loop, tgt, T, params))[0].ok
    finally:
        server.close()
    assert seen[0] == (
        b"GET /a/b?c=1 HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1:%d\r\n\r\n" % server.port
    )
    assert seen[1] == (
        b"GET /v HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example\r\n\r\n"
    )
    assert build_request("/", "[::1]:80", "1.0C") == (
        b"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: [::1]:80\r\n\r\n"
    )


def test_http_status_digest_regex(loop: Loop) -> None:
    body = b"<html>all systems nominal</html>\n"
    md5 = hashlib.md5(body).hexdigest()
    server = srv.TcpServer(srv.http_reply(200, body))
    err = srv.TcpServer(srv.http_reply(503, b"busy"))
    try:
        cases = [
            (server, UrlSpec(), True),
            (server, UrlSpec(digest=md5), True),
            (server, UrlSpec(digest="0" * 32), False),
            (server, UrlSpec(status_code=((300, 399),)), False),
            (server, UrlSpec(regex="systems nom"), True),
            (server, UrlSpec(regex="outage"), False),
            (server, UrlSpec(regex="outage", regex_no_match=True), True),
            (err, UrlSpec(), False),
            (err, UrlSpec(status_code=((200, 299), (500, 503))), True),
        ]
        for s, url, want in cases:
            tgt, params = http(s.port, url)
            res, _ = run(loop, HttpProbe(loop, tgt, T, params))
            assert res.ok is want, (url, res)
    finally:
        server.close()
        err.close()


def test_http_multiple_urls_by_step(loop: Loop) -> None:
    server = srv.TcpServer(srv.http_reply(200, b"x"))
    try:
        tgt, params = http(server.port, UrlSpec(path="/1"), UrlSpec(path="/2", status_code=((404, 404),)))
        probe = HttpProbe(loop, tgt, T, params)
        assert run(loop, probe, 0)[0].ok
        assert not run(loop, probe, 1)[0].ok
    finally:
        server.close()


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (srv.silent, "timeout"),
        (srv.reset, "reset"),
        (srv.garbage, "bad HTTP"),
        (srv.slow_drip, "timeout"),
    ],
    ids=["silent", "rst", "garbage", "slow-drip"],
)
def test_http_hostile_targets(loop: Loop, handler: srv.Handler, reason: str) -> None:
    server = srv.TcpServer(handler)
    try:
        tgt, params = http(server.port, UrlSpec(digest="0" * 32))
        res, took = run(loop, HttpProbe(loop, tgt, 0.5, params))
    finally:
        server.close()
    assert not res.ok
    assert reason.lower() in res.reason.lower()
    assert took < 1.2  # connect + exchange budgets


def test_http_huge_body_is_bounded(loop: Loop) -> None:
    server = srv.TcpServer(srv.huge_body)
    try:
        # No digest: verdict at the status line, body never read.
        tgt, params = http(server.port)
        res, took = run(loop, HttpProbe(loop, tgt, 2.0, params))
        assert res.ok and took < 0.5
        # With a digest the body must be hashed, but only up to the cap or the budget.
        tgt, params = http(server.port, UrlSpec(digest="0" * 32))
        res, took = run(loop, HttpProbe(loop, tgt, 2.0, params))
        assert not res.ok and took < 4.5
    finally:
        server.close()


def test_hostile_target_does_not_stall_other_checks(loop: Loop) -> None:
    hostile = srv.TcpServer(srv.slow_drip)
    good = srv.TcpServer(srv.http_reply(200, b"ok"))
    try:
        results: list[tuple[str, Result, float]] = []
        t0 = time.monotonic()
        tgt, params = http(hostile.port, UrlSpec(digest="0" * 32))
        HttpProbe(loop, tgt, 1.0, params).start(0, lambda r: results.append(("hostile", r, time.monotonic())))
        time.sleep(0.05)
        tgt, params = http(good.port)
        HttpProbe(loop, tgt, 1.0, params).start(0, lambda r: results.append(("good", r, time.monotonic())))
        while len(results) < 2 and time.monotonic() - t0 < 5:
            loop.run_once(0.05)
    finally:
        hostile.close()
        good.close()
    assert [name for name, *_ in results] == ["good", "hostile"]
    assert results[0][1].ok and results[0][2] - t0 < 0.5


def test_http_chunked_and_content_length(loop: Loop) -> None:
    body = b"0123456789"

    def keep_open(conn: socket.socket) -> None:
        srv.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + body)
        time.sleep(3)  # keep-alive server: the check must stop at Content-Length

    server = srv.TcpServer(keep_open)
    try:
        tgt, params = http(server.port, UrlSpec(digest=hashlib.md5(body).hexdigest()))
        res, took = run(loop, HttpProbe(loop, tgt, 2.0, params))
        assert res.ok and took < 1.0
    finally:
        server.close()


# ---------------------------------------------------------------------- SSL_GET
@pytest.fixture(scope="module")
def tls_server_ctx() -> ssl.SSLContext:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("www.example", "127.0.0.1")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    return ctx


def test_ssl_get_good_digest_and_sni(loop: Loop, tls_server_ctx: ssl.SSLContext) -> None:
    names: list[str | None] = []

    def sni_cb(sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        names.append(name)

    tls_server_ctx.sni_callback = sni_cb  # type: ignore[assignment]
    body = b"secure hello\n"
    server = srv.TcpServer(srv.http_reply(200, body), tls=tls_server_ctx)
    client = client_ssl_context()
    try:
        tgt, params = http(server.port, UrlSpec(digest=hashlib.md5(body).hexdigest()), ssl=True)
        assert run(loop, HttpProbe(loop, tgt, T, params, client))[0].ok
        tgt, params = http(server.port, UrlSpec(digest="1" * 32), ssl=True)
        assert not run(loop, HttpProbe(loop, tgt, T, params, client))[0].ok
        tgt, params = http(server.port, ssl=True, enable_sni=True, virtualhost="www.example")
        assert run(loop, HttpProbe(loop, tgt, T, params, client))[0].ok
    finally:
        server.close()
        tls_server_ctx.sni_callback = None
    assert names == [None, None, "www.example"]


def test_ssl_get_against_plain_http_fails(loop: Loop) -> None:
    server = srv.TcpServer(srv.http_reply(200, b"plain"))
    try:
        tgt, params = http(server.port, ssl=True)
        res, took = run(loop, HttpProbe(loop, tgt, T, params, client_ssl_context()))
        assert not res.ok and took < 2.5
    finally:
        server.close()


# ---------------------------------------------------------------------- SMTP_CHECK
def test_smtp(loop: Loop) -> None:
    good = srv.TcpServer(srv.smtp_good)
    bad = srv.TcpServer(srv.smtp_bad_banner)
    silent = srv.TcpServer(srv.silent)
    try:
        assert run(loop, SmtpProbe(loop, target(good.port), T, "checker.example"))[0].ok
        res = run(loop, SmtpProbe(loop, target(bad.port), T, "x"))[0]
        assert not res.ok and "554" in res.reason
        res, took = run(loop, SmtpProbe(loop, target(silent.port), 0.5, "x"))
        assert not res.ok and took < 1.2
    finally:
        good.close()
        bad.close()
        silent.close()


# ---------------------------------------------------------------------- DNS_CHECK
def dns_answer(rcode: int = dns.rcode.NOERROR, wrong_id: bool = False) -> Any:
    def reply(data: bytes) -> bytes:
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        r.set_rcode(rcode)
        if wrong_id:
            r.id = (q.id + 1) & 0xFFFF
        wire: bytes = r.to_wire()
        return wire

    return reply


def test_dns(loop: Loop) -> None:
    good = srv.UdpServer(dns_answer())
    servfail = srv.UdpServer(dns_answer(dns.rcode.SERVFAIL))
    wrong = srv.UdpServer(dns_answer(wrong_id=True))
    junk = srv.UdpServer(lambda d: d[:2] + b"\xff" * 3)
    try:
        p = DnsParams(type="A", name="www.example.")
        assert run(loop, DnsProbe(loop, target(good.port), T, p))[0].ok
        q = dns.message.from_wire(good.received[0])
        assert q.question[0].name.to_text() == "www.example." and q.flags & dns.flags.RD
        assert not run(loop, DnsProbe(loop, target(servfail.port), T, p))[0].ok
        res, took = run(loop, DnsProbe(loop, target(wrong.port), 0.5, p))
        assert not res.ok and "timeout" in res.reason
        assert not run(loop, DnsProbe(loop, target(junk.port), T, p))[0].ok
        res, took = run(loop, DnsProbe(loop, target(srv.closed_port(kind=socket.SOCK_DGRAM)), T, p))
        assert not res.ok and took < 0.5  # ICMP port unreachable
    finally:
        for s in (good, servfail, wrong, junk):
            s.close()


# ---------------------------------------------------------------------- UDP_CHECK
def test_udp(loop: Loop) -> None:
    echo = srv.UdpServer(lambda d: b"\x12\x34" + d)
    mute = srv.UdpServer(lambda d: None)
    try:
        # No require_reply: a reply or silence passes; an ICMP error fails at once.
        assert run(loop, UdpProbe(loop, target(echo.port), T, UdpParams(payload=b"ab")))[0].ok
        assert echo.received[-1] == b"ab"
        res, took = run(loop, UdpProbe(loop, target(mute.port), 0.3, UdpParams()))
        assert res.ok and took >= 0.29
        res, took = run(loop, UdpProbe(loop, target(srv.closed_port(kind=socket.SOCK_DGRAM)), T, UdpParams()))
        assert not res.ok and took < 0.5
        # require_reply with a pattern (x = any nibble) and length limits.
        p = UdpParams(payload=b"q", require_reply=True, reply_pattern=parse_reply_pattern("12x4"))
        assert run(loop, UdpProbe(loop, target(echo.port), T, p))[0].ok
        p = UdpParams(payload=b"q", require_reply=True, reply_pattern=parse_reply_pattern("1235"))
        assert not run(loop, UdpProbe(loop, target(echo.port), T, p))[0].ok
        p = UdpParams(payload=b"q", require_reply=True, max_reply_length=2)
        assert not run(loop, UdpProbe(loop, target(echo.port), T, p))[0].ok
        p = UdpParams(payload=b"q", require_reply=True)
        res, _ = run(loop, UdpProbe(loop, target(mute.port), 0.3, p))
        assert not res.ok
    finally:
        echo.close()
        mute.close()


# ---------------------------------------------------------------------- PING_CHECK
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_ping_loopback(loop: Loop, host: str) -> None:
    try:
        res, _ = run(loop, PingProbe(loop, target(0, host), T))
    except PermissionError:
        pytest.skip("neither ping sockets nor raw sockets allowed")
    assert res.ok, res


# ---------------------------------------------------------------------- MISC_CHECK
def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(stat.S_IRWXU)
    return str(path)


def test_misc_exit_codes_dynamic_and_timeout(loop: Loop, tmp_path: Path) -> None:
    ok = script(tmp_path, "ok", "exit 0")
    fail = script(tmp_path, "fail", "exit 1")
    seven = script(tmp_path, "seven", "exit 7")
    hang = script(tmp_path, "hang", f"echo $$ > {tmp_path}/pid; exec sleep 30")

    def probe(path: str, dynamic: bool = False, timeout: float = 2.0) -> MiscProbe:
        return MiscProbe(loop, MiscParams(script=Script((path,)), dynamic=dynamic), timeout)

    assert run(loop, probe(ok))[0].ok
    assert not run(loop, probe(fail))[0].ok
    assert not run(loop, probe(seven))[0].ok
    res = run(loop, probe(seven, dynamic=True))[0]
    assert res.ok and res.weight == 5
    assert not run(loop, probe(fail, dynamic=True))[0].ok
    res, took = run(loop, probe(hang, timeout=0.3))
    assert not res.ok and "timeout" in res.reason and took < 1.0
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        loop.run_once(0.05)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
    else:
        pytest.fail("timed-out script was not killed")


def test_ssl_get_tls_compliant_sends_close_notify(loop: Loop, tls_server_ctx: ssl.SSLContext) -> None:
    endings: list[str] = []

    def handler(raw: socket.socket) -> None:
        conn = tls_server_ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
        try:
            srv.read_request(conn)
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nok")
            endings.append("close_notify" if conn.recv(10) == b"" else "data")
        except OSError as exc:  # ssl.SSLEOFError for a close without the alert
            endings.append(type(exc).__name__)
        finally:
            conn.close()

    server = srv.TcpServer(handler)
    client = client_ssl_context()
    try:
        for compliant in (True, False):
            tgt, params = http(server.port, ssl=True, tls_compliant=compliant)
            assert run(loop, HttpProbe(loop, tgt, T, params, client))[0].ok
            deadline = time.monotonic() + 3
            while len(endings) < (1 if compliant else 2) and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        server.close()
    assert endings[0] == "close_notify"
    assert endings[1] != "close_notify"
