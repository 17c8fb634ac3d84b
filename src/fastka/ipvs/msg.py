"""IPVS generic-netlink constants and the record layouts shared by both codecs.

Names are those of the kernel's ``include/uapi/linux/ip_vs.h`` (and ``linux/netlink.h``,
``linux/genetlink.h`` for the framing). The *records* are the fixed-size structs that
``fastka._ipvs`` (C) and ``fastka._ipvs_py`` (reference) take and return; their C
declarations are in ``src/fastka/_ipvs.h`` and are repeated in the docstrings below.
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag
from typing import Final, TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview
"""What the codecs accept as a buffer (``array.array`` works as well)."""

# -- netlink framing (linux/netlink.h, linux/genetlink.h) ---------------------------------
NLMSG_NOOP: Final = 1
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
NLMSG_OVERRUN: Final = 4
NLM_F_REQUEST: Final = 0x001
NLM_F_MULTI: Final = 0x002
NLM_F_ACK: Final = 0x004
NLM_F_ROOT: Final = 0x100
NLM_F_MATCH: Final = 0x200
NLM_F_DUMP: Final = NLM_F_ROOT | NLM_F_MATCH
NLA_F_NESTED: Final = 0x8000
SOL_NETLINK: Final = 270
NETLINK_CAP_ACK: Final = 10
NETLINK_EXT_ACK: Final = 11
GENL_ID_CTRL: Final = 0x10
CTRL_CMD_NEWFAMILY: Final = 1
CTRL_CMD_GETFAMILY: Final = 3
CTRL_ATTR_FAMILY_ID: Final = 1
CTRL_ATTR_FAMILY_NAME: Final = 2

NLMSGHDR: Final = struct.Struct("=IHHII")
"""struct nlmsghdr { __u32 nlmsg_len; __u16 nlmsg_type, nlmsg_flags; __u32 nlmsg_seq, nlmsg_pid; }"""

# -- linux/ip_vs.h ------------------------------------------------------------------------
IPVS_GENL_NAME: Final = "IPVS"
IPVS_GENL_VERSION: Final = 0x1
IP_VS_SCHEDNAME_MAXLEN: Final = 16
IP_VS_PENAME_MAXLEN: Final = 16
IP_VS_IFNAME_MAXLEN: Final = 16


class IPVS_CMD(IntEnum):
    """Generic netlink commands (``enum { IPVS_CMD_* }``)."""

    NEW_SERVICE = 1
    SET_SERVICE = 2
    DEL_SERVICE = 3
    GET_SERVICE = 4
    NEW_DEST = 5
    SET_DEST = 6
    DEL_DEST = 7
    GET_DEST = 8
    NEW_DAEMON = 9
    DEL_DAEMON = 10
    GET_DAEMON = 11
    SET_CONFIG = 12
    GET_CONFIG = 13
    SET_INFO = 14
    GET_INFO = 15
    ZERO = 16
    FLUSH = 17


class IPVS_CMD_ATTR(IntEnum):
    """First-level attributes."""

    SERVICE = 1
    DEST = 2
    DAEMON = 3
    TIMEOUT_TCP = 4
    TIMEOUT_TCP_FIN = 5
    TIMEOUT_UDP = 6


class IPVS_SVC_ATTR(IntEnum):
    """Attributes inside ``IPVS_CMD_ATTR_SERVICE``."""

    AF = 1
    PROTOCOL = 2
    ADDR = 3
    PORT = 4
    FWMARK = 5
    SCHED_NAME = 6
    FLAGS = 7
    TIMEOUT = 8
    NETMASK = 9
    STATS = 10
    PE_NAME = 11
    STATS64 = 12


class IPVS_DEST_ATTR(IntEnum):
    """Attributes inside ``IPVS_CMD_ATTR_DEST``."""

    ADDR = 1
    PORT = 2
    FWD_METHOD = 3
    WEIGHT = 4
    U_THRESH = 5
    L_THRESH = 6
    ACTIVE_CONNS = 7
    INACT_CONNS = 8
    PERSIST_CONNS = 9
    STATS = 10
    ADDR_FAMILY = 11
    STATS64 = 12
    TUN_TYPE = 13
    TUN_PORT = 14
    TUN_FLAGS = 15


class IPVS_DAEMON_ATTR(IntEnum):
    """Attributes inside ``IPVS_CMD_ATTR_DAEMON``."""

    STATE = 1
    MCAST_IFN = 2
    SYNC_ID = 3
    SYNC_MAXLEN = 4
    MCAST_GROUP = 5
    MCAST_GROUP6 = 6
    MCAST_PORT = 7
    MCAST_TTL = 8


class IPVS_STATS_ATTR(IntEnum):
    """Attributes inside ``*_ATTR_STATS`` / ``*_ATTR_STATS64``."""

    CONNS = 1
    INPKTS = 2
    OUTPKTS = 3
    INBYTES = 4
    OUTBYTES = 5
    CPS = 6
    INPPS = 7
    OUTPPS = 8
    INBPS = 9
    OUTBPS = 10
    PAD = 11


class IPVS_INFO_ATTR(IntEnum):
    """Attributes of the ``IPVS_CMD_SET_INFO`` reply to ``GET_INFO``."""

    VERSION = 1
    CONN_TAB_SIZE = 2


class IP_VS_SVC_F(IntFlag):
    """Virtual service flags. SCHED1/2/3 mean per-scheduler things: for ``sh`` and ``mh``
    SCHED1 is *fallback* and SCHED2 *port* (``sh-fallback``, ``sh-port``)."""

    PERSISTENT = 0x0001
    HASHED = 0x0002  # set by the kernel in dumps, never sent
    ONEPACKET = 0x0004
    SCHED1 = 0x0008
    SCHED2 = 0x0010
    SCHED3 = 0x0020
    SCHED_SH_FALLBACK = SCHED1
    SCHED_SH_PORT = SCHED2
    SCHED_MH_FALLBACK = SCHED1
    SCHED_MH_PORT = SCHED2


# Forwarding methods (IP_VS_CONN_F_* & IP_VS_CONN_F_FWD_MASK).
IP_VS_CONN_F_FWD_MASK: Final = 0x0007
IP_VS_CONN_F_MASQ: Final = 0x0000
IP_VS_CONN_F_LOCALNODE: Final = 0x0001
IP_VS_CONN_F_TUNNEL: Final = 0x0002
IP_VS_CONN_F_DROUTE: Final = 0x0003
IP_VS_CONN_F_BYPASS: Final = 0x0004

# Tunnel types and encapsulation flags.
IP_VS_CONN_F_TUNNEL_TYPE_IPIP: Final = 0
IP_VS_CONN_F_TUNNEL_TYPE_GUE: Final = 1
IP_VS_CONN_F_TUNNEL_TYPE_GRE: Final = 2
IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM: Final = 0
IP_VS_TUNNEL_ENCAP_FLAG_CSUM: Final = 1 << 0
IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM: Final = 1 << 1

# Sync daemon states.
IP_VS_STATE_NONE: Final = 0
IP_VS_STATE_MASTER: Final = 1
IP_VS_STATE_BACKUP: Final = 2

# Every scheduler the 6.1 kernel ships (ip_vs_<name>.ko).
SCHEDULERS: Final = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh")

SERVICE_COMMANDS: Final = frozenset({IPVS_CMD.NEW_SERVICE, IPVS_CMD.SET_SERVICE, IPVS_CMD.DEL_SERVICE})
DEST_COMMANDS: Final = frozenset({IPVS_CMD.NEW_DEST, IPVS_CMD.SET_DEST, IPVS_CMD.DEL_DEST})

# -- records (see _ipvs.h) ----------------------------------------------------------------
SERVICE: Final = struct.Struct("=16sHHHHIIII16s16s")
"""``fk_ipvs_service`` (72 bytes)::

    uint8_t addr[16];  uint16_t af, protocol, port, reserved;
    uint32_t fwmark, flags, timeout, netmask;   (netmask: v4 mask as integer, v6 prefix length)
    char sched_name[16], pe_name[16];
"""

DEST: Final = struct.Struct("=16sHHIIIIHHB3x")
"""``fk_ipvs_dest`` (44 bytes)::

    uint8_t addr[16];  uint16_t af, port;
    uint32_t fwd_method, weight, u_threshold, l_threshold;
    uint16_t tun_port, tun_flags;  uint8_t tun_type, reserved[3];
"""

OP: Final = struct.Struct("=III")
"""``fk_ipvs_op`` (12 bytes): ``uint32_t cmd, svc, dest`` (indexes into the record arrays)."""

DAEMON: Final = struct.Struct("=II16sHHHBx16s")
"""``fk_ipvs_daemon`` (48 bytes)::

    uint32_t state, syncid;  char mcast_ifn[16];
    uint16_t sync_maxlen, mcast_port, mcast_af;  uint8_t mcast_ttl, reserved;
    uint8_t mcast_group[16];
"""

STATS: Final = struct.Struct("=10Q4I")
"""``fk_ipvs_stats`` (96 bytes): ``uint64_t conns, inpkts, outpkts, inbytes, outbytes, cps,
inpps, outpps, inbps, outbps; uint32_t active_conns, inact_conns, persist_conns, reserved``."""

MSG_MAX: Final = 256
"""Upper bound of one service/dest command; the batch builder stops when less is left."""

EMPTY_STATS: Final = (0,) * 13
