"""The checker engine on the real event loop: real probes against loopback servers, the
in-memory IPVS table, notify scripts, the LVS FIFO, FILE_CHECK, genhash."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fastka.check import genhash
from fastka.check.manager import CheckerManager
from fastka.check.notify import fifo_bytes, script_is_secure
from fastka.check.sink import MemorySink
from fastka.check.spec import (
    CheckConfig,
    CheckerSpec,
    CheckGlobals,
    FileParams,
    HttpParams,
    RealServerSpec,
    Script,
    ServiceSpec,
    TcpParams,
    UrlSpec,
    VirtualServerSpec,
)
from fastka.loop import Loop

from . import servers as srv

SVC = ServiceSpec(socket.AF_INET, "tcp", "10.0.0.1", 80)


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


def run_until(loop: Loop, cond: Callable[[], bool], limit: float = 8.0) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < limit, "condition not reached"
        loop.run_once(0.05)
    return time.monotonic() - t0


def fast(params: object = TcpParams(), **kw: object) -> CheckerSpec:
    base: dict[str, object] = dict(
        params=params, delay_loop=0.3, connect_timeout=0.5, retry=1, delay_before_retry=0.2, warmup=0.0
    )
    base.update(kw)
    return CheckerSpec(**base)  # type: ignore[arg-type]


def test_tcp_server_down_and_back_with_scripts_and_fifo(loop: Loop, tmp_path: Path) -> None:
    marker = tmp_path / "events"
    up = tmp_path / "up.sh"
    up.write_text(f"#!/bin/sh\necho up >> {marker}\n")
    down = tmp_path / "down.sh"
    down.write_text(f"#!/bin/sh\necho down >> {marker}\n")
    for p in (up, down):
        p.chmod(stat.S_IRWXU)
    fifo = str(tmp_path / "lvs.fifo")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)

    server = srv.TcpServer(srv.silent)
    port = server.port
    rs = RealServerSpec(
        "127.0.0.1",
        port,
        checkers=(fast(),),
        notify_up=Script((str(up),)),
        notify_down=Script((str(down),)),
    )
    spare = RealServerSpec("127.0.0.2", 9, checkers=())  # no checkers: always alive
    config = CheckConfig(
        virtual_servers=(VirtualServerSpec(services=(SVC,), real_servers=(rs, spare)),),
        globals=CheckGlobals(lvs_notify_fifos=(fifo,)),
    )
    sink = MemorySink()
    mgr = CheckerManager(loop, config, sink)
    mgr.start()
    try:
        assert sink.weights(SVC.key) == {("127.0.0.1", port): 1, ("127.0.0.2", 9): 1}
        server.close()
        took = run_until(loop, lambda: ("127.0.0.1", port) not in sink.weights(SVC.key))
        assert took < 1.0 + 0.3 + 0.5 + 1 * 0.2 + 1.0
        run_until(loop, lambda: marker.exists() and marker.read_text() == "down\n")
        # Listen again on the same port: back in the pool.
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", port))
        lsock.listen(8)
        try:
            run_until(loop, lambda: ("127.0.0.1", port) in sink.weights(SVC.key))
            run_until(loop, lambda: marker.read_text() == "down\nup\n")
        finally:
            lsock.close()
    finally:
        mgr.shutdown()
        data = os.read(reader, 4096)
        os.close(reader)
    assert sink.services == {}
    assert data == fifo_bytes(f"RS [127.0.0.1]:tcp:{port} [10.0.0.1]:tcp:80 DOWN") + fifo_bytes(
        f"RS [127.0.0.1]:tcp:{port} [10.0.0.1]:tcp:80 UP"
    )
    assert data.count(b"\0") == 2


def test_http_checker_through_the_engine(loop: Loop) -> None:
    body = b"ok\n"
    good = srv.TcpServer(srv.http_reply(200, body))
    bad = srv.TcpServer(srv.http_reply(200, b"changed\n"))
    url = UrlSpec(path="/", digest=hashlib.md5(body).hexdigest())
    rss = tuple(
        RealServerSpec("127.0.0.1", s.port, checkers=(fast(HttpParams(urls=(url,))),)) for s in (good, bad)
    )
    sink = MemorySink()
    mgr = CheckerManager(
        loop, CheckConfig(virtual_servers=(VirtualServerSpec(services=(SVC,), real_servers=rss),)), sink
    )
    mgr.start()
    try:
        run_until(loop, lambda: len(sink.weights(SVC.key)) == 1)
        assert sink.weights(SVC.key) == {("127.0.0.1", good.port): 1}
    finally:
        mgr.shutdown()
        good.close()
        bad.close()


def test_file_check(loop: Loop, tmp_path: Path) -> None:
    path = tmp_path / "weight"
    path.write_text("0\n")
    down_on_nonzero = CheckerSpec(params=FileParams(str(path), weight=0, name="tf"))
    scaled = CheckerSpec(params=FileParams(str(path), weight=3, name="tf"))
    rs1 = RealServerSpec("10.1.0.1", 80, weight=10, checkers=(down_on_nonzero,))
    rs2 = RealServerSpec("10.1.0.2", 80, weight=10, checkers=(scaled,))
    sink = MemorySink()
    mgr = CheckerManager(
        loop,
        CheckConfig(virtual_servers=(VirtualServerSpec(services=(SVC,), real_servers=(rs1, rs2)),)),
        sink,
    )
    mgr.start()
    try:
        assert sink.weights(SVC.key) == {("10.1.0.1", 80): 10, ("10.1.0.2", 80): 10}
        tmp = tmp_path / "weight.new"
        tmp.write_text("2\n")
        tmp.rename(path)  # replaced by rename, as tools do
        run_until(loop, lambda: sink.weights(SVC.key) == {("10.1.0.2", 80): 16})
        path.write_text("-4\n")
        run_until(loop, lambda: sink.weights(SVC.key) == {("10.1.0.2", 80): 0})
        path.write_text("0\n")
        run_until(loop, lambda: sink.weights(SVC.key) == {("10.1.0.1", 80): 10, ("10.1.0.2", 80): 10})
    finally:
        mgr.shutdown()


def test_script_security(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("the rule only applies to scripts run by root")
    safe_dir = tmp_path / "safe"
    safe_dir.mkdir(mode=0o755)
    safe = safe_dir / "s.sh"
    safe.write_text("#!/bin/sh\n")
    safe.chmod(0o755)
    os.chmod(tmp_path, 0o755)
    assert script_is_secure(str(safe), 0)
    safe.chmod(0o757)  # world-writable script
    assert not script_is_secure(str(safe), 0)
    safe.chmod(0o755)
    os.chown(safe, 1, 1)  # owned by another user
    assert not script_is_secure(str(safe), 0)
    assert script_is_secure(str(safe), 1)  # ... unless it runs as that user


# ---------------------------------------------------------------------- genhash
FIXED = b"HTTP/1.0 200 OK\r\nServer: test\r\nContent-Length: 21\r\n\r\n<html>genhash</html>\n"


def fixed_reply(conn: socket.socket) -> None:
    srv.read_request(conn)
    conn.sendall(FIXED)


def test_genhash_prints_md5_of_body() -> None:
    server = srv.TcpServer(fixed_reply)
    try:
        out = io.StringIO()
        assert genhash.main(["-s", "127.0.0.1", "-p", str(server.port), "-u", "/x"], out) == 0
    finally:
        server.close()
    assert out.getvalue() == hashlib.md5(b"<html>genhash</html>\n").hexdigest() + "\n"
    out = io.StringIO()
    assert genhash.main(["-s", "127.0.0.1", "-p", str(srv.closed_port()), "-u", "/"], out) == 0
    assert out.getvalue() == "Connection failed\n"


def test_genhash_md5sum_of_body_over_tls(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    body = os.urandom(100_000)

    def reply(conn: socket.socket) -> None:
        srv.read_request(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + body)

    server = srv.TcpServer(reply, tls=ctx)
    try:
        out = io.StringIO()
        genhash.main(["-S", "-s", "127.0.0.1", "-p", str(server.port), "-u", "/big"], out)
    finally:
        server.close()
    (tmp_path / "body").write_bytes(body)
    md5sum = subprocess.run(["md5sum", str(tmp_path / "body")], capture_output=True, text=True, check=True)
    assert out.getvalue().strip() == md5sum.stdout.split()[0]


def test_genhash_same_output_as_keepalived() -> None:
    keepalived = shutil.which("keepalived") or "/usr/sbin/keepalived"
    if not os.access(keepalived, os.X_OK):
        pytest.skip("keepalived not installed")
    server = srv.TcpServer(fixed_reply)
    try:
        args = ["-s", "127.0.0.1", "-p", str(server.port), "-u", "/page", "-v"]
        ka = subprocess.run([keepalived, "-T", *args], capture_output=True, text=True, timeout=20)
        out = io.StringIO()
        genhash.main(args, out)
    finally:
        server.close()
    ours = out.getvalue().splitlines()
    theirs = ka.stdout.splitlines()
    # Everything but the measured response time is identical.
    assert ours[:-1] == theirs[:-1]
    assert ours[-1].startswith("Global response time for [/page] = ")
