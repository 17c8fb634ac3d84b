"""The datagram API: add_datagram_reader (recvmmsg in the loop), send_datagram(s)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import loop_fixtures
import pytest

impl, loop, clock, floop = loop_fixtures.fixtures()


@pytest.fixture
def udp() -> Iterator[tuple[socket.socket, socket.socket]]:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a.connect(b.getsockname())
        b.connect(a.getsockname())
        a.setblocking(False)
        b.setblocking(False)
        yield a, b
    finally:
        a.close()
        b.close()


def _run_until(loop: Any, cond: Any, limit: float = 5.0) -> None:
    end = time.monotonic() + limit
    while not cond() and time.monotonic() < end:
        loop.run_once(0.1)


def test_reader_gets_every_datagram_in_order(loop: Any, udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    got: list[tuple[str, bytes]] = []
    loop.add_datagram_reader(a, lambda tag, data: got.append((tag, data)), "a", batch=4)
    for i in range(10):
        b.send(b"m%d" % i)
    _run_until(loop, lambda: len(got) == 10)
    assert got == [("a", b"m%d" % i) for i in range(10)]
    assert loop.remove_reader(a)
    b.send(b"late")
    loop.run_once(0.05)
    assert len(got) == 10


def test_truncation_and_no_args(loop: Any, udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    got: list[bytes] = []
    loop.add_datagram_reader(a.fileno(), got.append, bufsize=4)
    b.send(b"0123456789")
    _run_until(loop, lambda: got)
    assert got == [b"0123"]


def test_send_datagram_and_datagrams(loop: Any, udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    got: list[bytes] = []
    loop.add_datagram_reader(b, got.append)
    assert loop.send_datagram(a, b"one") == 3
    assert loop.send_datagram(a.fileno(), bytearray(b"two")) == 3
    assert loop.send_datagrams(a, [b"x", memoryview(b"yy"), b"zzz"]) == 3
    assert loop.send_datagrams(a, []) == 0
    _run_until(loop, lambda: len(got) == 5)
    assert got == [b"one", b"two", b"x", b"yy", b"zzz"]


def test_errors_go_to_error_callback(loop: Any) -> None:
    """A connected UDP socket to a closed port: the ICMP error shows up as ECONNREFUSED."""
    port_holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port_holder.bind(("127.0.0.1", 0))
    dead = port_holder.getsockname()
    port_holder.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        s.connect(dead)
        errors: list[OSError] = []
        loop.add_datagram_reader(s, lambda data: None, error_callback=errors.append)
        s.send(b"ping")
        _run_until(loop, lambda: errors)
        assert isinstance(errors[0], ConnectionRefusedError)
        with pytest.raises(ConnectionRefusedError):
            for _ in range(3):  # the next send reports the pending error or a new one
                loop.send_datagram(s, b"ping")
                time.sleep(0.01)
    finally:
        s.close()


def test_callback_exception_logged_and_removal_stops(
    loop: Any, udp: tuple[socket.socket, socket.socket], caplog: Any
) -> None:
    a, b = udp
    got: list[bytes] = []

    def cb(data: bytes) -> None:
        got.append(data)
        if data == b"bad":
            raise ValueError("bad datagram")
        if data == b"stop":
            loop.remove_reader(a)

    loop.add_datagram_reader(a, cb)
    for d in (b"ok", b"bad", b"ok2", b"stop", b"after"):
        b.send(d)
    _run_until(loop, lambda: b"stop" in got)
    for _ in range(3):
        loop.run_once(0.02)
    assert got == [b"ok", b"bad", b"ok2", b"stop"]
    assert "bad datagram" in caplog.text


def test_validation(loop: Any, udp: tuple[socket.socket, socket.socket]) -> None:
    with pytest.raises(ValueError):
        loop.add_datagram_reader(udp[0], print, batch=0)
    with pytest.raises(ValueError):
        loop.add_datagram_reader(udp[0], print, bufsize=0)


def test_batch_reader_one_call_per_iteration_and_replies(loop: Any) -> None:
    socks = []
    try:
        for _ in range(3):
            a, b = (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            )
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
            a.connect(b.getsockname())
            b.connect(a.getsockname())
            a.setblocking(False)
            b.setblocking(False)
            socks.append((a, b))
        calls: list[list[tuple[int, bytes]]] = []

        def on_batch(items: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
            calls.append(items)
            return [(fd, data.upper()) for fd, data in items]

        for a, _ in socks:
            loop.add_datagram_batch_reader(a, on_batch)
        for i, (_, b) in enumerate(socks):
            b.send(b"hello%d" % i)
        time.sleep(0.05)
        _run_until(loop, lambda: sum(len(c) for c in calls) == 3)
        assert sorted(d for c in calls for _, d in c) == [b"hello0", b"hello1", b"hello2"]
        assert {fd for c in calls for fd, _ in c} == {a.fileno() for a, _ in socks}
        assert len(calls) <= 3  # (the reference reads one datagram per wake-up)
        replies = []
        for _, b in socks:
            _run_until(loop, lambda b=b: _readable(b))
            replies.append(b.recv(100))
        assert replies == [b"HELLO0", b"HELLO1", b"HELLO2"]
    finally:
        for a, b in socks:
            a.close()
            b.close()


def test_batch_reader_callback_errors_logged(
    loop: Any, udp: tuple[socket.socket, socket.socket], caplog: Any
) -> None:
    a, b = udp

    def boom(items: list[tuple[int, bytes]]) -> None:
        raise RuntimeError("batch failed")

    loop.add_datagram_batch_reader(a, boom)
    b.send(b"x")
    _run_until(loop, lambda: "batch failed" in caplog.text)
    assert "batch failed" in caplog.text
    with pytest.raises(ValueError):
        loop.add_datagram_batch_reader(a, boom, batch=0)


def _readable(s: socket.socket) -> bool:
    import select

    return bool(select.select([s], [], [], 0)[0])
