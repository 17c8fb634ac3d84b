"""connect_check: Keepalived's TCP_CHECK primitive (connect, wait writable with timeout, close)."""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import loop_fixtures
import pytest
from loop_fixtures import require_root

impl, loop, clock, floop = loop_fixtures.fixtures()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _run_until(loop: Any, cond: Any, limit: float = 5.0) -> None:
    end = time.monotonic() + limit
    while not cond() and time.monotonic() < end:
        loop.run_once(0.05)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield s
    finally:
        s.close()


def test_connected(loop: Any, listener: socket.socket, impl: Any) -> None:
    got: list[int] = []
    before = _fds()
    c = loop.connect_check("127.0.0.1", listener.getsockname()[1], 1.0, got.append)
    assert isinstance(c, impl.ConnectCheck)
    assert c.active
    assert got == []  # never from inside connect_check
    _run_until(loop, lambda: got)
    assert got == [0]
    assert not c.active
    assert _fds() == before  # the check's socket is closed
    conn, _ = listener.accept()  # the connection really happened
    conn.close()


def test_refused(loop: Any) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    got: list[int] = []
    loop.connect_check("127.0.0.1", port, 1.0, got.append)
    _run_until(loop, lambda: got)
    assert got == [errno.ECONNREFUSED]


def test_timeout(loop: Any) -> None:
    """The listener's accept queue is full, so the SYN goes unanswered (all on loopback)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the queue (backlog 0 still takes one or two)
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
        time.sleep(0.05)
        got: list[int] = []
        t0 = time.monotonic()
        loop.connect_check("127.0.0.1", port, 0.2, got.append)
        _run_until(loop, lambda: got)
        assert got == [errno.ETIMEDOUT]
        assert time.monotonic() - t0 >= 0.19
    finally:
        for f in fillers:
            f.close()
        srv.close()


def test_cancel_and_close_release_sockets(impl: Any, listener: socket.socket) -> None:
    before = _fds()
    lp = impl.Loop()
    got: list[int] = []
    c = lp.connect_check("127.0.0.1", listener.getsockname()[1], 1.0, got.append)
    c.cancel()
    c.cancel()
    assert not c.active
    lp.run_once(0.05)
    assert got == []
    lp.connect_check("127.0.0.1", listener.getsockname()[1], 1.0, got.append)
    lp.close()  # pending: its socket is closed too
    lp2 = impl.Loop()
    lp2.close()
    assert _fds() == before
    assert got == []


def test_source_ipv6_and_validation(loop: Any, listener: socket.socket) -> None:
    got: list[int] = []
    loop.connect_check("127.0.0.1", listener.getsockname()[1], 1.0, got.append, source=("127.0.0.1", 0))
    _run_until(loop, lambda: got)
    assert got == [0]
    with socket.socket(socket.AF_INET6) as s6:
        try:
            s6.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback")
        s6.listen(4)
        got.clear()
        loop.connect_check("::1", s6.getsockname()[1], 1.0, got.append)
        _run_until(loop, lambda: got)
        assert got == [0]
    with pytest.raises(ValueError):
        loop.connect_check("localhost", 80, 1.0, got.append)  # no name lookups
    with pytest.raises(ValueError):
        loop.connect_check("127.0.0.1", 70000, 1.0, got.append)
    with pytest.raises(OSError):
        loop.connect_check("127.0.0.1", 80, 1.0, got.append, source=("192.0.2.1", 0))  # not ours


def test_mark(loop: Any, listener: socket.socket) -> None:
    require_root()  # SO_MARK needs CAP_NET_ADMIN
    got: list[int] = []
    loop.connect_check("127.0.0.1", listener.getsockname()[1], 1.0, got.append, mark=7)
    _run_until(loop, lambda: got)
    assert got == [0]


def test_callback_exception_logged(loop: Any, listener: socket.socket, caplog: Any) -> None:
    def boom(err: int) -> None:
        raise RuntimeError("checker bug")

    loop.connect_check("127.0.0.1", listener.getsockname()[1], 1.0, boom)
    _run_until(loop, lambda: "checker bug" in caplog.text)
    assert "checker bug" in caplog.text
