"""Linux constants that Python's ``socket`` module lacks, named as in the kernel headers."""

IPPROTO_VRRP = 112  # RFC 5798 §5.1.1.4 (IANA protocol number)
IPPROTO_AH = 51  # RFC 2402
IP_PKTINFO = 8  # linux/in.h
IP_RECVTTL = 12
IP_FREEBIND = 15
IP_MULTICAST_ALL = 49
IPV6_FREEBIND = 78  # linux/in6.h
IPV6_MULTICAST_ALL = 29
ETH_P_ALL = 0x0003  # linux/if_ether.h
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
NETLINK_ROUTE = 0  # linux/netlink.h
NETLINK_GENERIC = 16
ICMP6_FILTER = 1  # linux/icmpv6.h
SO_ATTACH_FILTER = 26  # asm-generic/socket.h

VRRP_MCAST_GROUP4 = "224.0.0.18"  # RFC 5798 §5.1.1.2
VRRP_MCAST_GROUP6 = "ff02::12"  # RFC 5798 §5.1.2.2

CLONE_NEWNET = 0x40000000  # linux/sched.h


def enter_netns(name: str) -> None:
    """Move the calling thread (a single-threaded process: the process, and the children
    it forks) into network namespace ``name``: an ``ip netns`` name or a path such as
    ``/proc/PID/ns/net``. Keepalived's ``-s``/``net_namespace``; the netns rigs."""
    import ctypes
    import os

    path = name if name.startswith("/") else f"/run/netns/{name}"
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)
