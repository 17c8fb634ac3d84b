"""File descriptors: readers/writers, reentrancy, closed fds, many fds, wait with timeout."""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Iterator
from typing import Any

import loop_fixtures
import pytest
from loop_fixtures import FakeClock

impl, loop, clock, floop = loop_fixtures.fixtures()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_reader_called_while_readable(loop: Any, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[bytes] = []
    loop.add_reader(a.fileno(), lambda: got.append(a.recv(100)))
    loop.run_once(0)
    assert got == []
    b.send(b"x")
    loop.run_once(1)
    assert got == [b"x"]
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False
    b.send(b"y")
    loop.run_once(0)
    assert got == [b"x"]


def test_socket_objects_accepted_and_args_passed(
    loop: Any, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    got: list[Any] = []
    loop.add_reader(a, lambda s, tag: got.append((tag, s.recv(10))), a, "t")
    b.send(b"1")
    loop.run_once(1)
    assert got == [("t", b"1")]
    assert loop.remove_reader(a)


def test_add_reader_again_replaces(loop: Any, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[str] = []
    loop.add_reader(a, got.append, "old")
    loop.add_reader(a, lambda: got.append("new") or a.recv(10))
    b.send(b"x")
    loop.run_once(1)
    assert got == ["new"]


def test_same_fd_reader_and_writer(loop: Any, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[str] = []
    loop.add_writer(a, got.append, "w")
    loop.add_reader(a, lambda: got.append("r") or a.recv(10))
    loop.run_once(1)
    assert got == ["w"]
    b.send(b"x")
    loop.run_once(1)
    assert got == ["w", "r", "w"]
    assert loop.remove_writer(a)
    b.send(b"x")
    loop.run_once(1)
    assert got == ["w", "r", "w", "r"]
    assert loop.remove_reader(a)
    assert not loop.remove_writer(a)


def test_callback_removes_itself(loop: Any, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    n = [0]

    def cb() -> None:
        n[0] += 1
        loop.remove_reader(a)

    loop.add_reader(a, cb)
    b.send(b"x")  # never read: level-triggered would call again if still registered
    loop.run_once(1)
    loop.run_once(0)
    assert n[0] == 1


def test_callback_removes_another_ready_fd(loop: Any) -> None:
    """Both fds are ready in the same epoll batch; whichever runs first removes the other."""
    p1, p2 = socket.socketpair(), socket.socketpair()
    try:
        called: list[int] = []

        def cb(me: int, other: socket.socket) -> None:
            called.append(me)
            loop.remove_reader(other)

        loop.add_reader(p1[0], cb, 1, p2[0])
        loop.add_reader(p2[0], cb, 2, p1[0])
        p1[1].send(b"x")
        p2[1].send(b"x")
        loop.run_once(1)
        assert len(called) == 1
        loop.run_once(0)
        loop.run_once(0)
        assert called == [called[0]] * 3  # the survivor (data unread) fires again, the other never
    finally:
        for s in (*p1, *p2):
            s.close()


def test_callback_removes_writer_of_its_fd(loop: Any, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[str] = []

    def rd() -> None:
        got.append("r")
        a.recv(10)
        loop.remove_writer(a)

    loop.add_reader(a, rd)
    loop.add_writer(a, got.append, "w")
    b.send(b"x")
    loop.run_once(1)
    assert got == ["r"]  # same event had EPOLLOUT, but the writer was removed first


def test_fd_closed_while_registered(loop: Any) -> None:
    a, b = socket.socketpair()
    got: list[str] = []
    fd = a.fileno()
    loop.add_reader(fd, got.append, "old")
    a.close()  # epoll forgets it; the loop's table still has it
    loop.run_once(0)
    assert got == []
    # the number comes back with another socket: registering it must work
    c, d = socket.socketpair()
    try:
        assert fd in (c.fileno(), d.fileno())
        mine = c if c.fileno() == fd else d
        other = d if mine is c else c
        loop.add_reader(fd, lambda: got.append("new") or mine.recv(10))
        other.send(b"y")
        loop.run_once(1)
        assert got == ["new"]
        assert loop.remove_reader(fd)
    finally:
        b.close()
        c.close()
        d.close()


def test_remove_after_close_does_not_raise(loop: Any) -> None:
    a, b = socket.socketpair()
    loop.add_reader(a.fileno(), lambda: None)
    loop.add_writer(a.fileno(), lambda: None)
    fd = a.fileno()
    a.close()
    b.close()
    assert loop.remove_writer(fd)
    assert loop.remove_reader(fd)
    loop.run_once(0)


def test_add_reader_on_bad_fd_raises(loop: Any) -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError):
        loop.add_reader(r, lambda: None)
    assert not loop.remove_reader(r)
    with pytest.raises(ValueError):
        loop.add_reader(-1, lambda: None)


def test_many_fds(loop: Any) -> None:
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * n + 200), hard))
    pairs = [socket.socketpair() for _ in range(n)]
    try:
        seen: list[int] = []

        def cb(i: int, s: socket.socket) -> None:
            seen.append(i)
            s.recv(10)
            loop.remove_reader(s)

        for i, (a, _) in enumerate(pairs):
            loop.add_reader(a, cb, i, a)
        for i in range(0, n, 2):  # half of them active
            pairs[i][1].send(b"x")
        for _ in range(10):
            loop.run_once(0.1)
            if len(seen) == n // 2:
                break
        assert sorted(seen) == list(range(0, n, 2))
        for i in range(1, n, 2):
            assert loop.remove_reader(pairs[i][0])
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_wait_readable_ready(floop: Any, clock: FakeClock, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[bool] = []
    w = floop.wait_readable(a, 1.0, got.append)
    assert w.active
    b.send(b"x")
    floop.run_once(1)
    assert got == [True]
    assert not w.active
    clock.advance(2)
    floop.run_once(0)
    assert got == [True]  # the timeout was cancelled, the fd unregistered
    assert not floop.remove_reader(a)


def test_wait_readable_timeout(
    floop: Any, clock: FakeClock, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    got: list[bool] = []
    floop.wait_readable(a, 0.5, got.append)
    clock.advance(0.499)
    floop.run_once(0)
    assert got == []
    clock.advance(0.001)
    floop.run_once(0)
    assert got == [False]
    b.send(b"x")
    floop.run_once(0)
    assert got == [False]  # one-shot
    assert not floop.remove_reader(a)


def test_wait_cancel_and_replace(
    floop: Any, clock: FakeClock, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    got: list[Any] = []
    w = floop.wait_readable(a, 0.1, got.append)
    w.cancel()
    w.cancel()
    assert not w.active
    w2 = floop.wait_readable(a, 0.1, got.append)
    floop.add_reader(a, got.append, "reader")  # replaces the waiter: it is never called
    assert not w2.active
    b.send(b"x")
    clock.advance(1)
    floop.run_once(1)
    assert got == ["reader"]
    w3 = floop.wait_writable(a, None, got.append)  # no timeout
    floop.run_once(1)
    assert got == ["reader", "reader", True]
    assert not w3.active


def test_wait_writable_connect(loop: Any) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect_ex(srv.getsockname())
        got: list[bool] = []
        loop.wait_writable(c, 5.0, got.append)
        for _ in range(50):
            loop.run_once(0.1)
            if got:
                break
        assert got == [True]
        assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    finally:
        c.close()
        srv.close()


def test_wait_callback_removes_other_waiter(loop: Any) -> None:
    p1, p2 = socket.socketpair(), socket.socketpair()
    try:
        got: list[str] = []
        waiters: dict[str, Any] = {}

        def cb(name: str, other: str, ok: bool) -> None:
            got.append(name)
            waiters[other].cancel()

        waiters["a"] = loop.wait_readable(p1[0], 5, lambda ok: cb("a", "b", ok))
        waiters["b"] = loop.wait_readable(p2[0], 5, lambda ok: cb("b", "a", ok))
        p1[1].send(b"x")
        p2[1].send(b"x")
        loop.run_once(1)
        loop.run_once(0)
        assert len(got) == 1
        assert not waiters["a"].active and not waiters["b"].active
    finally:
        for s in (*p1, *p2):
            s.close()


def test_exception_in_fd_callback(loop: Any, pair: tuple[socket.socket, socket.socket], caplog: Any) -> None:
    a, b = pair

    def boom() -> None:
        a.recv(10)
        raise ValueError("bad packet")

    loop.add_reader(a, boom)
    b.send(b"x")
    loop.run_once(1)
    b.send(b"x")
    loop.run_once(1)
    recs = [r for r in caplog.records if r.name == "fastka.loop"]
    assert len(recs) == 2
    assert "bad packet" in caplog.text
