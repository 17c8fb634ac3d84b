"""TCP_CHECK and HTTP_GET attempts and their steady state, compiled (``fastka._check``) and
reference (``fastka._check_py``), against the same good, failing and hostile loopback
targets: same verdicts, same reasons, bounded time."""

from __future__ import annotations

import errno
import gc
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import implementations, load
from fastka._compat import USE_EXTENSIONS
from fastka.check.base import Result, Target
from fastka.check.http import build_request, find_head_end, quick_parse_head
from fastka.check.spec import HttpParams, UrlSpec
from fastka.check.steady import HttpUrl, http_urls
from fastka.loop import Loop

from . import servers as srv
from .test_http_parse import heads

T = 1.0  # connect_timeout (the verdict must come within ~2*T)


@pytest.fixture(params=implementations("fastka._check", "fastka._check_py"))
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return load(request.param)


@pytest.fixture(params=[True, False], ids=["at-once", "epoll"])
def at_once(request: pytest.FixtureRequest) -> bool:
    """Ask whether the connection is up right after connect() (the default), or always
    wait for epoll: both paths must give the same verdicts."""
    return bool(request.param)


def mk(
    impl: ModuleType,
    loop: Loop,
    tgt: Target,
    timeout: float,
    u: tuple[HttpUrl, ...] = (),
    *,
    at_once: bool = True,
) -> Any:
    check = impl.Check(loop, tgt, timeout, u)
    check.at_once = at_once
    return check


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


def target(port: int, host: str = "127.0.0.1", **kw: Any) -> Target:
    return Target(host, port, socket.AF_INET6 if ":" in host else socket.AF_INET, **kw)


def urls(tgt: Target, *specs: UrlSpec, **kw: Any) -> tuple[HttpUrl, ...]:
    out = http_urls(tgt, HttpParams(urls=specs or (UrlSpec(),), **kw))
    assert out is not None
    return out


def run(loop: Loop, check: Any, step: int = 0, limit: float = 5.0) -> tuple[Result, float]:
    results: list[Result] = []
    t0 = time.monotonic()
    check.start(step, results.append)
    while not results and time.monotonic() - t0 < limit:
        loop.run_once(0.05)
    assert results, "no verdict"
    assert not check.active
    return results[0], time.monotonic() - t0


def run_until(loop: Loop, cond: Callable[[], bool], limit: float = 5.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < limit, "condition not reached"
        loop.run_once(0.02)


# ---------------------------------------------------------------------- TCP_CHECK
def test_tcp_good_refused_unanswered(impl: ModuleType, loop: Loop, at_once: bool) -> None:
    server = srv.TcpServer(srv.silent)
    try:
        ok, _ = run(loop, mk(impl, loop, target(server.port), T, at_once=at_once))
        assert ok == Result(True)
    finally:
        server.close()
    bad, _ = run(loop, mk(impl, loop, target(srv.closed_port()), T, at_once=at_once))
    assert bad == Result(False, "connect: Connection refused")
    with srv.full_backlog() as port:
        res, took = run(loop, mk(impl, loop, target(port), 0.5, at_once=at_once))
    assert res == Result(False, "timeout (connection)")
    assert 0.45 < took < 1.5


def test_tcp_ipv6_and_source_options(impl: ModuleType, loop: Loop) -> None:
    peers: list[Any] = []

    def record(conn: socket.socket) -> None:
        peers.append(conn.getpeername())

    server = srv.TcpServer(record, host="::1")
    v4 = srv.TcpServer(record)
    try:
        assert run(loop, impl.Check(loop, target(server.port, "::1"), T))[0].ok
        port = srv.closed_port()
        assert run(loop, impl.Check(loop, target(v4.port, bindto="127.0.0.1", bind_port=port), T))[0].ok
        run_until(loop, lambda: len(peers) == 2)
    finally:
        server.close()
        v4.close()
    assert ("127.0.0.1", port) in peers
    # Setting the socket up fails: the reason says where, as the Python probes do.
    res, _ = run(loop, impl.Check(loop, target(v4.port, bindto="192.0.2.77"), T))
    assert res == Result(False, "socket: " + os.strerror(errno.EADDRNOTAVAIL))


# ---------------------------------------------------------------------- HTTP_GET
def test_http_request_bytes(impl: ModuleType, loop: Loop, at_once: bool) -> None:
    seen: list[bytes] = []
    server = srv.TcpServer(srv.http_reply(requests=seen))
    six = srv.TcpServer(srv.http_reply(requests=seen), host="::1")
    try:
        tgt = target(server.port)
        assert run(loop, mk(impl, loop, tgt, T, urls(tgt, UrlSpec(path="/a/b?c=1")), at_once=at_once))[0].ok
        u = urls(tgt, UrlSpec(path="/v", virtualhost="www.example"), http_protocol="1.1")
        assert run(loop, mk(impl, loop, tgt, T, u, at_once=at_once))[0].ok
        tgt6 = target(six.port, "::1")
        assert run(loop, mk(impl, loop, tgt6, T, urls(tgt6, http_protocol="1.0C"), at_once=at_once))[0].ok
    finally:
        server.close()
        six.close()
    assert seen == [
        b"GET /a/b?c=1 HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1:%d\r\n\r\n" % server.port,
        b"GET /v HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example\r\n\r\n",
        b"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: [::1]:%d\r\n\r\n"
        % six.port,
    ]


def test_http_status_and_digest(impl: ModuleType, loop: Loop, at_once: bool) -> None:
    body = b"<html>all systems nominal</html>\n"
    md5 = hashlib.md5(body).hexdigest()
    server = srv.TcpServer(srv.http_reply(200, body, extra=b"Content-Length: %d\r\n" % len(body)))
    close_delimited = srv.TcpServer(srv.http_reply(200, body))
    err = srv.TcpServer(srv.http_reply(503, b"busy"))
    try:
        cases = [
            (server, UrlSpec(), ""),
            (server, UrlSpec(digest=md5), ""),
            (close_delimited, UrlSpec(digest=md5.upper()), ""),
            (server, UrlSpec(digest="0" * 32), "MD5 digest error: got " + md5),
            (close_delimited, UrlSpec(digest="0" * 32), "MD5 digest error: got " + md5),
            (server, UrlSpec(status_code=((300, 399),)), "HTTP status code 200"),
            (err, UrlSpec(), "HTTP status code 503"),
            (err, UrlSpec(status_code=((200, 299), (500, 503))), ""),
        ]
        for s, url, reason in cases:
            tgt = target(s.port)
            res, _ = run(loop, mk(impl, loop, tgt, T, urls(tgt, url), at_once=at_once))
            assert res == Result(not reason, reason), url
    finally:
        server.close()
        close_delimited.close()
        err.close()


def test_http_urls_by_step(impl: ModuleType, loop: Loop) -> None:
    seen: list[bytes] = []
    server = srv.TcpServer(srv.http_reply(200, b"x", requests=seen))
    try:
        tgt = target(server.port)
        check = impl.Check(
            loop, tgt, T, urls(tgt, UrlSpec(path="/1"), UrlSpec(path="/2", status_code=((404, 404),)))
        )
        assert run(loop, check, 0)[0].ok
        assert run(loop, check, 1)[0] == Result(False, "HTTP status code 200")
        assert run(loop, check, 2)[0].ok  # step modulo the URLs
    finally:
        server.close()
    assert [r.split(b" ")[1] for r in seen] == [b"/1", b"/2", b"/1"]


def reply_raw(data: bytes, pause: float = 0.0, hold: float = 0.0) -> srv.Handler:
    """Read the request, then send ``data`` (byte by byte if ``pause``), then wait ``hold``."""

    def handler(conn: socket.socket) -> None:
        srv.read_request(conn)
        if pause:
            for i in range(len(data)):
                conn.sendall(data[i : i + 1])
                time.sleep(pause)
        else:
            conn.sendall(data)
        time.sleep(hold)

    return handler


@pytest.mark.parametrize(
    ("handler", "digest", "reason"),
    [
        (srv.silent, True, "timeout (exchange)"),
        (srv.reset, True, "recv: Connection reset by peer"),
        (srv.garbage, False, "bad HTTP response: "),
        (srv.slow_drip, True, "timeout (exchange)"),
        (reply_raw(b"HTTP/1.0 200 OK\r\nServer: x"), True, "connection closed before the HTTP response"),
        (reply_raw(b"HTTP/1.0 200 OK\r\n" + b"X-Pad: " + b"p" * 70000), False, "HTTP response head too long"),
    ],
    ids=["silent", "rst", "garbage", "slow-drip", "closed-in-head", "head-too-long"],
)
def test_http_hostile_targets(
    impl: ModuleType, loop: Loop, handler: srv.Handler, digest: bool, reason: str, at_once: bool
) -> None:
    server = srv.TcpServer(handler)
    try:
        tgt = target(server.port)
        u = urls(tgt, UrlSpec(digest="0" * 32 if digest else None))
        res, took = run(loop, mk(impl, loop, tgt, 0.5, u, at_once=at_once))
    finally:
        server.close()
    assert not res.ok and res.reason.startswith(reason), res
    assert took < 1.3  # connect + exchange budgets


def test_http_huge_body_is_bounded(impl: ModuleType, loop: Loop) -> None:
    server = srv.TcpServer(srv.huge_body)
    try:
        tgt = target(server.port)
        res, took = run(loop, impl.Check(loop, tgt, 2.0, urls(tgt)))  # verdict at the status line
        assert res.ok and took < 0.5
        res, took = run(loop, impl.Check(loop, tgt, 2.0, urls(tgt, UrlSpec(digest="0" * 32))))
        assert not res.ok and res.reason in ("HTTP body too large", "timeout (exchange)") and took < 4.5
    finally:
        server.close()


def test_http_head_split_odd_heads_and_empty_body(impl: ModuleType, loop: Loop) -> None:
    empty = hashlib.md5(b"").hexdigest()
    body = b"0123456789"
    cases = [
        # a head and body dribbled a byte at a time
        (reply_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + body, pause=0.002), body, ""),
        # bare LF: h11 decides (and accepts)
        (reply_raw(b"HTTP/1.0 201 Created\nContent-Length: 10\n\n" + body), body, ""),
        # h11 refuses a NUL in a field value
        (reply_raw(b"HTTP/1.0 200 OK\r\nA: \x00\r\n\r\n"), body, "bad HTTP response: "),
        # keep-alive with Content-Length 0: done at the head, no waiting for the close
        (reply_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", hold=3), b"", ""),
        # keep-alive: stop at Content-Length, ignore what follows
        (reply_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + body + b"trailing", hold=3), body, ""),
    ]
    for handler, want, reason in cases:
        server = srv.TcpServer(handler)
        try:
            tgt = target(server.port)
            digest = hashlib.md5(want).hexdigest() if want else empty
            res, took = run(loop, impl.Check(loop, tgt, 2.0, urls(tgt, UrlSpec(digest=digest))))
        finally:
            server.close()
        assert res.ok is (not reason) and res.reason.startswith(reason), (res, want)
        assert took < 1.0


def test_hostile_target_does_not_stall_other_checks(impl: ModuleType, loop: Loop) -> None:
    hostile = srv.TcpServer(srv.slow_drip)
    good = srv.TcpServer(srv.http_reply(200, b"ok"))
    results: list[tuple[str, Result, float]] = []
    t0 = time.monotonic()
    try:
        h = target(hostile.port)
        impl.Check(loop, h, 1.0, urls(h, UrlSpec(digest="0" * 32))).start(
            0, lambda r: results.append(("hostile", r, time.monotonic()))
        )
        gc.collect()  # nobody holds the checks but themselves while they run
        time.sleep(0.05)
        g = target(good.port)
        impl.Check(loop, g, 1.0, urls(g)).start(0, lambda r: results.append(("good", r, time.monotonic())))
        run_until(loop, lambda: len(results) == 2)
    finally:
        hostile.close()
        good.close()
    assert [name for name, *_ in results] == ["good", "hostile"]
    assert results[0][1].ok and results[0][2] - t0 < 0.5


def test_same_results_from_both_implementations(loop: Loop) -> None:
    """Every case of this file's targets gives the compiled and the reference check the
    same Result (a cross-check within one run)."""
    if not USE_EXTENSIONS:
        pytest.skip("FASTKA_NO_EXTENSIONS=1: only the reference")
    mods = [load("fastka._check"), load("fastka._check_py")]
    body = b"same"
    servers = [
        srv.TcpServer(srv.http_reply(200, body)),
        srv.TcpServer(srv.http_reply(404, body)),
        srv.TcpServer(srv.garbage),
        srv.TcpServer(reply_raw(b"HTTP/1.0 200 OK\nContent-Length: 4\n\n" + body)),
    ]
    try:
        for s in servers:
            tgt = target(s.port)
            for u in (UrlSpec(), UrlSpec(digest=hashlib.md5(body).hexdigest()), UrlSpec(digest="1" * 32)):
                got = [run(loop, m.Check(loop, tgt, T, urls(tgt, u)))[0] for m in mods]
                assert got[0] == got[1], (s.handler, u, got)
        closed = target(srv.closed_port())
        got = [run(loop, m.Check(loop, closed, T, urls(closed)))[0] for m in mods]
        assert got[0] == got[1] == Result(False, "connect: Connection refused")
    finally:
        for s in servers:
            s.close()


# ---------------------------------------------------------------------- steady state
class Switchable:
    """A listener on a fixed port that can be turned off (refused) and on again; answers
    HTTP requests with 200 and records the paths."""

    def __init__(self) -> None:
        self.port = srv.closed_port()
        self.paths: list[bytes] = []
        self.accepted = 0
        self.sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.on()

    def on(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.sock = s
        self._thread = threading.Thread(target=self._serve, args=(s,), daemon=True)
        self._thread.start()

    def _serve(self, s: socket.socket) -> None:
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                req = srv.read_request(conn)
                if req:
                    self.paths.append(req.split(b" ")[1])
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def off(self) -> None:
        if self.sock is not None:
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.sock = None
        if self._thread is not None:
            self._thread.join(2)


def test_arm_absorbs_repeated_verdicts(impl: ModuleType, loop: Loop) -> None:
    server = Switchable()
    reports: list[Result] = []
    try:
        tgt = target(server.port)
        check = impl.Check(loop, tgt, T, urls(tgt, UrlSpec(path="/a"), UrlSpec(path="/b")))
        check.arm(loop.time() + 0.01, 1, reports.append, 1, 0.02)
        assert check.active and check.when is not None
        run_until(loop, lambda: check.absorbed >= 6)
        assert reports == []  # every success absorbed
        assert server.paths[:6] == [b"/b", b"/a", b"/b", b"/a", b"/b", b"/a"]  # URLs advance
        assert check.last_reason == ""
        assert loop.time() - 0.5 < check.last_due <= loop.time()
        server.off()
        run_until(loop, lambda: bool(reports))
        assert not reports[0].ok and reports[0].reason.startswith("connect: Connection re")
        assert not check.active and check.when is None
        assert check.ended >= check.due
        n = check.absorbed
        # Now down: failures are absorbed, a success is reported.
        reports.clear()
        check.arm(loop.time(), check.step, reports.append, 0, 0.02)
        run_until(loop, lambda: check.absorbed >= 3)
        assert reports == [] and check.last_reason == "connect: Connection refused"
        assert check.absorbed < 20  # re-armed delay after each attempt, not at once
        server.on()
        run_until(loop, lambda: bool(reports))
        assert reports == [Result(True)]
        assert n >= 6
        # expect -1: the first verdict is reported, whatever it is.
        reports.clear()
        check.arm(loop.time(), 0, reports.append)
        run_until(loop, lambda: bool(reports))
        assert reports == [Result(True)] and check.absorbed == 0
    finally:
        server.off()


def test_cancel_stops_a_run(impl: ModuleType, loop: Loop) -> None:
    server = Switchable()
    reports: list[Result] = []
    try:
        check = impl.Check(loop, target(server.port), T)
        check.arm(loop.time(), 0, reports.append, 1, 0.01)
        run_until(loop, lambda: check.absorbed >= 2)
        check.cancel()
        check.cancel()
        n = check.absorbed
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            loop.run_once(0.02)
        assert check.absorbed == n and reports == [] and not check.active
    finally:
        server.off()


def test_dropped_armed_check_keeps_running_until_cancelled(impl: ModuleType, loop: Loop) -> None:
    server = Switchable()
    reports: list[Result] = []
    try:
        impl.Check(loop, target(server.port), T).arm(loop.time(), 0, reports.append, 1, 0.01)
        gc.collect()
        run_until(loop, lambda: server.accepted >= 3)  # held by the loop, as a Python callback would be
        server.off()
        run_until(loop, lambda: bool(reports))
        # refused, or reset if the listener closed with our connection in its queue
        assert not reports[0].ok and reports[0].reason.startswith("connect: Connection re")
    finally:
        server.off()


# ---------------------------------------------------------------------- the C pieces
needs_c = pytest.mark.skipif(not USE_EXTENSIONS, reason="FASTKA_NO_EXTENSIONS=1: no C")


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_c_md5_is_md5(data: bytes) -> None:
    assert load("fastka._check").md5(data) == hashlib.md5(data).digest()


@needs_c
def test_c_md5_block_boundaries() -> None:
    md5 = load("fastka._check").md5
    for n in (55, 56, 57, 63, 64, 65, 119, 120, 128, 1 << 20):
        data = os.urandom(n)
        assert md5(data) == hashlib.md5(data).digest(), n


@needs_c
@settings(max_examples=500, deadline=None)
@given(st.one_of(heads(), st.binary(max_size=80)))
def test_c_head_parser_is_the_quick_parser(head: bytes) -> None:
    c = load("fastka._check")
    assert c.find_head_end(head) == find_head_end(head)
    assert c.parse_head(head) == quick_parse_head(head)


@needs_c
def test_c_head_parser_examples() -> None:
    c = load("fastka._check")
    for head in (
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nServer: a b\r\n\r\n",
        b"HTTP/1.1 200\r\n\r\n",
        b"HTTP/1.1 204 \r\ncontent-LENGTH:  0 \r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.0 200 OK\nA: b\n\n",
        b"HTTP/1.0 200 OK\r\nA: \x00\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.0 2000 OK\r\n\r\n",
    ):
        want = quick_parse_head(head)
        got = c.parse_head(head)
        if want is not None and want[1] is not None and want[1] >= 1 << 62:
            assert got == (want[0], 1 << 62)  # clamped: far beyond MAX_BODY anyway
        else:
            assert got == want, head


def test_http_urls_mapping() -> None:
    tgt = target(8080)
    (u,) = urls(tgt, UrlSpec(path="/x", digest="AB" * 16, status_code=((200, 200),)), virtualhost="vh")
    assert u == HttpUrl(build_request("/x", "vh"), ((200, 200),), b"\xab" * 16, "vh")
    # What only the Python probe does: TLS, regex; a digest that cannot match anything.
    assert http_urls(tgt, HttpParams(ssl=True)) is None
    assert http_urls(tgt, HttpParams(urls=(UrlSpec(regex="ok"),))) is None
    assert http_urls(tgt, HttpParams(urls=(UrlSpec(digest="xyz"),))) is None


def test_absorbed_attempts_rearm_on_the_shared_grid(impl: ModuleType, loop: Loop) -> None:
    """After an absorbed verdict the next attempt is at next_due(end, delay): on the grid
    of delay/64 that lets checks due together share one loop wake-up."""
    from fastka.check.base import next_due

    server = Switchable()
    try:
        check = impl.Check(loop, target(server.port), T)
        check.arm(loop.time(), 0, lambda r: None, 1, 1.0)
        run_until(loop, lambda: check.absorbed >= 1)
        assert check.active and check.when == next_due(check.ended, 1.0)
        assert (check.when * 64).is_integer()  # grid 1/64 s
        assert abs(check.when - (check.ended + 1.0)) <= 1 / 128
        check.cancel()
    finally:
        server.off()


@given(
    start=st.floats(0, 1e7, allow_nan=False),
    delay=st.one_of(st.floats(0, 3600, allow_nan=False), st.integers(0, 3600).map(float)),
)
def test_next_due(start: float, delay: float) -> None:
    from fastka.check.base import GRID_MAX, next_due

    due = next_due(start, delay)
    grid = min(delay / 64, GRID_MAX)
    if grid < 0.001:
        assert due == start + delay
    else:
        assert abs(due - (start + delay)) <= grid / 2 + 1e-6
        assert abs(due / grid - round(due / grid)) < 1e-6
    if start * 64 == int(start * 64) and delay == int(delay):
        assert due == start + delay  # on the grid already: exactly delay later
