"""The pieces of fastka.vrrp.sockets that need no privileges: the (temporary) IPv4 header
builder against Keepalived's golden headers, and the ancillary-data parsers."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from conftest import SHARED, shared_path
from fastka.vrrp.sockets import IPPROTO_AH, build_ipv4_header, parse_cmsg4, parse_cmsg6

GOLDEN = SHARED / "vrrp-golden"


def golden_ipv4_frames() -> list[dict[str, object]]:
    shared_path("vrrp-golden")
    frames = []
    for path in sorted(GOLDEN.glob("*.expected.json")):
        frames += [f for f in json.loads(path.read_text())["distinct_vrrp_frames"] if "ip" in f]
    return frames


def test_ipv4_header_is_keepalived_s() -> None:
    frames = golden_ipv4_frames()
    assert len(frames) > 20
    for f in frames:
        raw = bytes.fromhex(str(f["frame_hex"]))[14:]
        ip = f["ip"]
        assert isinstance(ip, dict)
        header = build_ipv4_header(
            raw[12:16],
            raw[16:20],
            len(raw) - 20,
            ident=int(ip["id"]),
            ttl=int(ip["ttl"]),
            protocol=int(ip["proto"]),
        )
        assert header == raw[:20], f["frame_hex"]


def test_ah_protocol_and_defaults() -> None:
    h = build_ipv4_header(
        socket.inet_aton("10.0.0.1"), socket.inet_aton("224.0.0.18"), 20, ident=7, protocol=IPPROTO_AH
    )
    assert (h[0], h[1], struct.unpack("!H", h[2:4])[0], h[8], h[9]) == (0x45, 0xC0, 40, 255, 51)
    assert h[6:8] == b"\0\0"  # DF clear, as Keepalived


def test_parse_cmsg4() -> None:
    pktinfo = struct.pack("=i4s4s", 7, socket.inet_aton("10.0.0.1"), socket.inet_aton("224.0.0.18"))
    assert parse_cmsg4([(socket.IPPROTO_IP, 8, pktinfo)]) == 7
    assert parse_cmsg4([]) == 0
    assert parse_cmsg4([(socket.IPPROTO_IP, 8, b"\1")]) == 0  # truncated control message: ignored


def test_parse_cmsg6() -> None:
    dst = socket.inet_pton(socket.AF_INET6, "ff02::12")
    anc = [
        (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("=i", 255)),
        (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("=16sI", dst, 3)),
    ]
    assert parse_cmsg6(anc) == (dst, 3, 255)
    assert parse_cmsg6([]) == (bytes(16), 0, -1)


def test_recv4_reports_header_fields_and_truncation() -> None:
    from fastka.vrrp.sockets import RECV_BUFSIZE, RecvSocket4

    kernel, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx = RecvSocket4.from_socket(ours, ifname="eth0", ifindex=4)
    try:
        assert rx.recv() is None
        vrrp = bytes.fromhex("313796010064429f0a630064")
        packet = (
            build_ipv4_header(
                socket.inet_aton("10.99.0.11"), socket.inet_aton("224.0.0.18"), 12, ident=1, ttl=9
            )
            + vrrp
        )
        kernel.send(packet)
        got = rx.recv()
        assert got is not None
        assert (got.data[got.offset :], got.src, got.dst, got.ttl, got.ifindex, got.truncated) == (
            vrrp, socket.inet_aton("10.99.0.11"), socket.inet_aton("224.0.0.18"), 9, 4, False
        )  # fmt: skip
        kernel.send(packet + bytes(RECV_BUFSIZE))  # a huge datagram
        got = rx.recv()
        assert got is not None and got.truncated and len(got.data) == RECV_BUFSIZE
    finally:
        rx.close()
        kernel.close()


def test_recv6_reads_hop_limit_and_pktinfo_over_loopback_udp() -> None:
    """The IPv6 receive path on a UDP socket over ::1 (same ancillary data as raw VRRP)."""
    from fastka.vrrp.sockets import RecvSocket6

    try:
        udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        pytest.skip("no IPv6 on loopback")
    udp.bind(("::1", 0))
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    rx = RecvSocket6.from_socket(udp, ifindex=1)
    tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 17)
        tx.sendto(b"advert", udp.getsockname())
        got = None
        for _ in range(100):
            got = rx.recv()
            if got is not None:
                break
        assert got is not None
        loop6 = socket.inet_pton(socket.AF_INET6, "::1")
        assert (got.data, got.offset, got.src, got.dst, got.ttl) == (b"advert", 0, loop6, loop6, 17)
        assert got.ifindex == socket.if_nametoindex("lo")
    finally:
        rx.close()
        tx.close()
