"""VRRP raw sockets between namespaces: Keepalived's golden adverts, sent by hand, arrive
byte-identical on the wire, with TTL/hop limit and addresses visible on receive; no loopback
to ourselves; a socket bound to one interface hears only that interface; unicast and AH."""

from __future__ import annotations

import socket
import time

import pytest
from rig import Lan, Netns, Rig, golden

from fastka.vrrp.sockets import (
    IPPROTO_AH,
    Received,
    RecvSocket4,
    RecvSocket6,
    SendSocket4,
    SendSocket6,
    build_ipv4_header,
)

pytestmark = [pytest.mark.root, pytest.mark.netns]

A4 = socket.inet_aton
R1_LL = "fe80::99:ff:fe00:11"


def a6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def first_frame(name: str) -> tuple[bytes, bytes]:
    """(VRRP message, whole Ethernet frame) of the first advert of a golden capture."""
    f = golden(name)["distinct_vrrp_frames"][0]
    return bytes.fromhex(f["vrrp_hex"]), bytes.fromhex(f["frame_hex"])


def recv_wait(sock: RecvSocket4 | RecvSocket6, timeout: float = 2.0) -> Received:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sock.recv()
        if got is not None:
            return got
        time.sleep(0.002)
    raise TimeoutError("nothing received")


def nothing_for(sock: RecvSocket4 | RecvSocket6, seconds: float = 0.1) -> bool:
    time.sleep(seconds)
    return sock.recv() is None


def open_in(ns: Netns, cls: type, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    """Create a socket inside ``ns`` (interface names resolve there), closed with the rig."""
    return ns.rig.own(ns.call(cls, *args, **kwargs))


def test_ipv4_multicast_advert_is_byte_exact_and_received(lan: Lan) -> None:
    vrrp, golden_frame = first_frame("vrrpv2-noauth")
    cap = lan.rig.capture(lan.lan)
    tx: SendSocket4 = open_in(lan.r1, SendSocket4, "eth0")
    rx2: RecvSocket4 = open_in(lan.r2, RecvSocket4, "eth0")
    rx1: RecvSocket4 = open_in(lan.r1, RecvSocket4, "eth0")  # the sender's own receive socket
    packet = build_ipv4_header(A4("10.99.0.11"), A4("224.0.0.18"), len(vrrp), ident=1) + vrrp
    assert tx.send(packet, "224.0.0.18", multicast=True) == len(packet)

    got = recv_wait(rx2)
    assert got.data[got.offset :] == vrrp
    assert (got.src, got.dst, got.ttl) == (A4("10.99.0.11"), A4("224.0.0.18"), 255)
    assert got.ifindex == lan.r2.ifindex("eth0") and not got.truncated
    (frame,) = cap.wait(lambda f: f.is_vrrp)
    assert frame.data == golden_frame  # MAC, IP header (TOS, ID 1, TTL, checksum) and VRRP
    assert nothing_for(rx1)  # multicast not looped back to the sender


def test_multicast_loopback_control(lan: Lan) -> None:
    """The no-loopback test above would pass vacuously if rx1 could never hear r1: it can."""
    vrrp, _ = first_frame("vrrpv2-noauth")
    tx: SendSocket4 = open_in(lan.r1, SendSocket4, "eth0")
    tx.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    rx1: RecvSocket4 = open_in(lan.r1, RecvSocket4, "eth0")
    tx.send(
        build_ipv4_header(A4("10.99.0.11"), A4("224.0.0.18"), len(vrrp), ident=2) + vrrp,
        "224.0.0.18",
        multicast=True,
    )
    assert recv_wait(rx1).data[20:] == vrrp


def test_received_ttl_is_the_senders(lan: Lan) -> None:
    vrrp, _ = first_frame("vrrpv3-ipv4")
    tx: SendSocket4 = open_in(lan.r1, SendSocket4, "eth0")
    rx: RecvSocket4 = open_in(lan.r2, RecvSocket4, "eth0")
    tx.send(
        build_ipv4_header(A4("10.99.0.11"), A4("224.0.0.18"), len(vrrp), ident=9, ttl=7) + vrrp,
        "224.0.0.18",
        multicast=True,
    )
    got = recv_wait(rx)
    assert got.ttl == 7 and got.data[got.offset :] == vrrp


def test_socket_bound_to_one_interface_hears_only_it(rig: Rig) -> None:
    lan_a = rig.bridge("lana", net=99)
    lan_b = rig.bridge("lanb", net=98)
    r1 = rig.router("r1", lan_a, host=11)
    r3 = rig.router("r3", lan_b, host=13)
    r2 = rig.router("r2", lan_a, host=12)
    rig.connect(r2, lan_b, ifname="eth1", mac=lan_b.mac(12), ipv4=lan_b.ipv4(12))
    rx_a: RecvSocket4 = open_in(r2, RecvSocket4, "eth0")
    rx_b: RecvSocket4 = open_in(r2, RecvSocket4, "eth1")
    vrrp, _ = first_frame("vrrpv3-ipv4")

    tx1: SendSocket4 = open_in(r1, SendSocket4, "eth0")
    tx1.send(
        build_ipv4_header(A4("10.99.0.11"), A4("224.0.0.18"), len(vrrp), ident=1) + vrrp,
        "224.0.0.18",
        multicast=True,
    )
    got = recv_wait(rx_a)
    assert got.src == A4("10.99.0.11") and got.ifindex == r2.ifindex("eth0")
    assert nothing_for(rx_b)

    tx3: SendSocket4 = open_in(r3, SendSocket4, "eth0")
    tx3.send(
        build_ipv4_header(A4("10.98.0.13"), A4("224.0.0.18"), len(vrrp), ident=1) + vrrp,
        "224.0.0.18",
        multicast=True,
    )
    got = recv_wait(rx_b)
    assert got.src == A4("10.98.0.13") and got.ifindex == r2.ifindex("eth1")
    assert nothing_for(rx_a)


def test_ipv6_multicast_advert_checksum_by_kernel(lan: Lan) -> None:
    vrrp, golden_frame = first_frame("vrrpv3-ipv6")
    cap = lan.rig.capture(lan.lan)
    tx: SendSocket6 = open_in(lan.r1, SendSocket6, "eth0")
    rx2: RecvSocket6 = open_in(lan.r2, RecvSocket6, "eth0")
    rx1: RecvSocket6 = open_in(lan.r1, RecvSocket6, "eth0")
    unsummed = vrrp[:6] + b"\0\0" + vrrp[8:]  # the kernel fills the checksum (IPV6_CHECKSUM 6)
    assert tx.send(unsummed, a6(R1_LL), "ff02::12") == len(vrrp)

    got = recv_wait(rx2)
    assert got.data == vrrp and got.offset == 0  # same checksum as Keepalived's
    assert (got.src, got.dst, got.ttl) == (a6(R1_LL), a6("ff02::12"), 255)
    assert got.ifindex == lan.r2.ifindex("eth0")
    (frame,) = cap.wait(lambda f: f.is_vrrp)
    # identical but for the flow label, which the kernel picks per socket (auto_flowlabels)
    mask = lambda b: b[:15] + bytes([b[15] & 0xF0]) + b"\0\0" + b[18:]  # noqa: E731
    assert mask(frame.data) == mask(golden_frame)
    assert ((frame.data[14] & 0x0F) << 4 | frame.data[15] >> 4) == 0xC0  # traffic class
    assert nothing_for(rx1)


def test_ipv6_bad_checksum_never_reaches_us(lan: Lan) -> None:
    vrrp, _ = first_frame("vrrpv3-ipv6")

    def plain_sender() -> socket.socket:  # no IPV6_CHECKSUM: the bytes go out as given
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        s.bind((R1_LL, 0, 0, socket.if_nametoindex("eth0")))
        return s

    tx = lan.rig.own(lan.r1.call(plain_sender))
    rx: RecvSocket6 = open_in(lan.r2, RecvSocket6, "eth0")
    dst = ("ff02::12", 0, 0, lan.r1.ifindex("eth0"))
    tx.sendto(vrrp[:6] + b"\x12\x34" + vrrp[8:], dst)
    assert nothing_for(rx)
    tx.sendto(vrrp, dst)  # Keepalived's own, correct checksum
    assert recv_wait(rx).data == vrrp


@pytest.mark.parametrize("scenario", ["vrrpv2-unicast", "vrrpv3-unicast"])
def test_ipv4_unicast(lan: Lan, scenario: str) -> None:
    vrrp, golden_frame = first_frame(scenario)
    cap = lan.rig.capture(lan.lan)
    tx: SendSocket4 = open_in(lan.r1, SendSocket4, "eth0")
    rx_uni: RecvSocket4 = open_in(lan.r2, RecvSocket4, "eth0", unicast_src="10.99.0.12")
    rx_mc: RecvSocket4 = open_in(lan.r2, RecvSocket4, "eth0")
    packet = build_ipv4_header(A4("10.99.0.11"), A4("10.99.0.12"), len(vrrp), ident=1) + vrrp
    tx.send(packet, "10.99.0.12", multicast=False)
    got = recv_wait(rx_uni)
    assert (got.data[got.offset :], got.src, got.dst, got.ttl) == (
        vrrp,
        A4("10.99.0.11"),
        A4("10.99.0.12"),
        255,
    )
    assert nothing_for(rx_mc)  # bound to 224.0.0.18: unicast is not its business
    frame = cap.wait(lambda f: f.is_vrrp)[0]
    assert frame.data == golden_frame  # to r2's MAC, header as Keepalived's


def test_unicast_bind_to_an_address_not_yet_configured(lan: Lan) -> None:
    # IP_FREEBIND: an instance can open its socket before its unicast_src_ip exists
    rx: RecvSocket4 = open_in(lan.r2, RecvSocket4, "eth0", unicast_src="10.99.0.200")
    lan.r2.ip("addr", "add", "10.99.0.200/24", "dev", "eth0")
    vrrp, _ = first_frame("vrrpv3-unicast")
    tx: SendSocket4 = open_in(lan.r1, SendSocket4, "eth0")
    tx.send(
        build_ipv4_header(A4("10.99.0.11"), A4("10.99.0.200"), len(vrrp), ident=1) + vrrp,
        "10.99.0.200",
        multicast=False,
    )
    assert recv_wait(rx).dst == A4("10.99.0.200")


def test_ipv6_unicast(lan: Lan) -> None:
    vrrp, _ = first_frame("vrrpv3-ipv6")
    tx: SendSocket6 = open_in(lan.r1, SendSocket6, "eth0")
    rx: RecvSocket6 = open_in(lan.r2, RecvSocket6, "eth0", unicast_src="fd99::12")
    rx_mc: RecvSocket6 = open_in(lan.r2, RecvSocket6, "eth0")
    tx.send(vrrp, a6("fd99::11"), "fd99::12")
    got = recv_wait(rx)
    assert (got.src, got.dst) == (a6("fd99::11"), a6("fd99::12"))
    assert got.ttl == 64  # unicast: the kernel's default hop limit unless unicast_ttl
    assert nothing_for(rx_mc)
    tx6: SendSocket6 = open_in(lan.r1, SendSocket6, "eth0", unicast_hops=255)
    tx6.send(vrrp, a6("fd99::11"), "fd99::12")
    assert recv_wait(rx).ttl == 255


def test_ah_socket_receives_protocol_51(lan: Lan) -> None:
    f = golden("vrrpv2-auth-ah")["distinct_vrrp_frames"][0]
    frame = bytes.fromhex(f["frame_hex"])
    ip_packet = frame[14:]
    rx_ah: RecvSocket4 = open_in(lan.r2, RecvSocket4, "eth0", protocol=IPPROTO_AH)
    rx_vrrp: RecvSocket4 = open_in(lan.r2, RecvSocket4, "eth0")
    tx: SendSocket4 = open_in(lan.r1, SendSocket4, "eth0")
    cap = lan.rig.capture(lan.lan)
    tx.send(ip_packet, "224.0.0.18", multicast=True)
    got = recv_wait(rx_ah)
    assert got.data == ip_packet and got.data[got.offset] == 112  # AH: next header VRRP
    assert nothing_for(rx_vrrp)
    assert cap.wait(lambda fr: fr.is_vrrp)[0].data == frame


def test_send_socket_receives_nothing(lan: Lan) -> None:
    """The IPv6 send socket (protocol 112) drops everything: it never fills with adverts."""
    vrrp, _ = first_frame("vrrpv3-ipv6")
    tx1: SendSocket6 = open_in(lan.r1, SendSocket6, "eth0")
    tx2: SendSocket6 = open_in(lan.r2, SendSocket6, "eth0")
    rx2: RecvSocket6 = open_in(lan.r2, RecvSocket6, "eth0")
    tx1.send(vrrp, a6(R1_LL), "ff02::12")
    recv_wait(rx2)
    with pytest.raises(BlockingIOError):
        tx2.sock.recv(100)
