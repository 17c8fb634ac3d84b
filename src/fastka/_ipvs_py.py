"""Pure-Python reference of ``fastka._ipvs`` (the C IPVS netlink codec), same API.

Both implementations take and return *records* (``fastka.ipvs.msg.SERVICE``, ``DEST``,
``OP``, ``DAEMON`` structs) and write netlink messages into a caller's buffer. The
compiled one is reached through ``fastka.ipvs._cffi``; ``fastka.ipvs.codec`` selects.

API (buffers are writable bytes-like objects, records are ``bytes``):

* ``build_batch(buf, family, seq, pid, ops, svcs, dests, start=0, stop=None,
  ack_all=False) -> (nbytes, next)``: encode the operations ``ops[start:stop]``
  (concatenated OP records) into ``buf`` until the next one might not fit; operation
  ``i`` gets ``nlmsg_seq = seq + i``. NLM_F_ACK on every message with ``ack_all``
  (Keepalived's framing), else only on the last one written (errors are always sent).
* ``parse_acks(buf, nbytes, seq, nops, errors) -> (replies, failed, last)``: store the
  errno of each reply with ``seq <= nlmsg_seq < seq + nops`` in ``errors`` (an
  ``array('i')``); ``last`` is the highest op index answered (-1: none).
* ``build_getfamily``, ``build_simple``, ``build_get_dests``, ``build_set_config``,
  ``build_daemon``: one request each; they return its length.
* ``parse_family``, ``parse_service``, ``parse_dest``, ``parse_daemon``, ``parse_config``,
  ``parse_info``: decode one reply message (starting at its ``nlmsghdr``).

Malformed input raises ``ValueError``.
"""

from __future__ import annotations

import socket
import struct
from array import array

from fastka.ipvs.msg import (
    CTRL_ATTR_FAMILY_ID,
    CTRL_ATTR_FAMILY_NAME,
    CTRL_CMD_GETFAMILY,
    DAEMON,
    DEST,
    GENL_ID_CTRL,
    IP_VS_CONN_F_FWD_MASK,
    IP_VS_CONN_F_TUNNEL,
    IP_VS_CONN_F_TUNNEL_TYPE_GUE,
    IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
    IPVS_CMD,
    IPVS_CMD_ATTR,
    IPVS_DAEMON_ATTR,
    IPVS_DEST_ATTR,
    IPVS_GENL_VERSION,
    IPVS_INFO_ATTR,
    IPVS_STATS_ATTR,
    IPVS_SVC_ATTR,
    MSG_MAX,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    OP,
    SERVICE,
    STATS,
    Buffer,
)

_HDR = struct.Struct("=IHHIIBBH")  # nlmsghdr + genlmsghdr
_NLA = struct.Struct("=HH")
_U16 = struct.Struct("=HHHxx")
_U32 = struct.Struct("=HHI")
_FLAGS = struct.Struct("=HHII")
_ERR = struct.Struct("=IHHIIi")  # nlmsghdr + nlmsgerr.error

_SVC_CMDS = frozenset(int(c) for c in (IPVS_CMD.NEW_SERVICE, IPVS_CMD.SET_SERVICE, IPVS_CMD.DEL_SERVICE))
_DEST_CMDS = frozenset(int(c) for c in (IPVS_CMD.NEW_DEST, IPVS_CMD.SET_DEST, IPVS_CMD.DEL_DEST))
_REQ_ACK = NLM_F_REQUEST | NLM_F_ACK


def sizes() -> tuple[int, int, int, int, int]:
    """Record sizes: service, dest, op, daemon, stats."""
    return SERVICE.size, DEST.size, OP.size, DAEMON.size, STATS.size


# -- attribute writers -------------------------------------------------------------------


def _u8(t: int, v: int) -> bytes:
    return _NLA.pack(5, t) + bytes((v, 0, 0, 0))


def _u16(t: int, v: int) -> bytes:
    return _U16.pack(6, t, v)


def _be16(t: int, v: int) -> bytes:
    return _NLA.pack(6, t) + v.to_bytes(2, "big") + b"\0\0"


def _u32(t: int, v: int) -> bytes:
    return _U32.pack(8, t, v)


def _bin(t: int, v: bytes) -> bytes:
    return _NLA.pack(4 + len(v), t) + v + b"\0" * (-len(v) % 4)


def _str(t: int, raw: bytes, maxlen: int) -> bytes:
    s = raw.split(b"\0", 1)[0][: maxlen - 1] + b"\0"
    return _NLA.pack(4 + len(s), t) + s + b"\0" * (-len(s) % 4)


def _nest(t: int, body: bytes) -> bytes:
    return _NLA.pack(4 + len(body), t | NLA_F_NESTED) + body


def _msg(family: int, flags: int, seq: int, pid: int, cmd: int, body: bytes, version: int = 1) -> bytes:
    return _HDR.pack(20 + len(body), family, flags, seq & 0xFFFFFFFF, pid, cmd, version, 0) + body


# Attribute runs packed in one go (each "HH" is an nlattr header). Ports and IPv4 masks
# go through socket.htons/htonl: the kernel reads them as be16/be32.
_SVC_KEY = struct.Struct("=HHHxxHHHxxHH16sHHHxx")  # AF, PROTOCOL, ADDR, PORT
_SVC_KEY_FWMARK = struct.Struct("=HHHxxHHI")  # AF, FWMARK
_SVC_TAIL = struct.Struct("=HHIIHHIHHI")  # FLAGS, TIMEOUT, NETMASK
_DEST_AF = struct.Struct("=HHHxx")  # ADDR_FAMILY
_DEST_MAIN = struct.Struct("=HH16sHHHxxHHIHHI")  # ADDR, PORT, FWD_METHOD, WEIGHT
_BE16_ATTR = struct.Struct("=HHHxx")  # a u16 attribute (ports pass through htons first)
_DEST_TAIL = struct.Struct("=HHIHHI")  # U_THRESH, L_THRESH

_SVC_AF, _SVC_PROTOCOL, _SVC_ADDR, _SVC_PORT, _SVC_FWMARK = 1, 2, 3, 4, 5
_SVC_SCHED_NAME, _SVC_FLAGS, _SVC_TIMEOUT, _SVC_NETMASK, _SVC_PE_NAME = 6, 7, 8, 9, 11
_D_ADDR, _D_PORT, _D_FWD, _D_WEIGHT, _D_U, _D_L, _D_AF = 1, 2, 3, 4, 5, 6, 11
_D_TUN_TYPE, _D_TUN_PORT, _D_TUN_FLAGS = 13, 14, 15
_NEST_SERVICE = IPVS_CMD_ATTR.SERVICE | NLA_F_NESTED
_NEST_DEST = IPVS_CMD_ATTR.DEST | NLA_F_NESTED
_AF_INET6 = socket.AF_INET6
_htons = socket.htons
_htonl = socket.htonl


def _svc_key(rec: bytes) -> bytes:
    addr, af, proto, port, _r, fwmark, _f, _t, _n, _s, _p = SERVICE.unpack(rec)
    if fwmark:
        return _SVC_KEY_FWMARK.pack(6, _SVC_AF, af, 8, _SVC_FWMARK, fwmark)
    return _SVC_KEY.pack(
        6, _SVC_AF, af, 6, _SVC_PROTOCOL, proto, 20, _SVC_ADDR, addr, 6, _SVC_PORT, _htons(port)
    )


def _svc_nest(rec: bytes) -> bytes:
    _a, af, _pr, _po, _r, _fw, flags, timeout, netmask, sched, pe = SERVICE.unpack(rec)
    body = _svc_key(rec) + _str(_SVC_SCHED_NAME, sched, 16)
    if pe[0]:
        body += _str(_SVC_PE_NAME, pe, 16)
    # IPv4: a be32 mask; IPv6: the prefix length as a raw u32 (how the kernel reads it).
    body += _SVC_TAIL.pack(
        12, _SVC_FLAGS, flags, 0xFFFFFFFF, 8, _SVC_TIMEOUT, timeout,
        8, _SVC_NETMASK, netmask if af == _AF_INET6 else _htonl(netmask),
    )  # fmt: skip
    return _NLA.pack(4 + len(body), _NEST_SERVICE) + body


def _dest_nest(rec: bytes) -> bytes:
    addr, af, port, fwd, weight, uth, lth, tun_port, tun_flags, tun_type = DEST.unpack(rec)
    body = _DEST_AF.pack(6, _D_AF, af) if af else b""
    body += _DEST_MAIN.pack(20, _D_ADDR, addr, 6, _D_PORT, _htons(port), 8, _D_FWD, fwd, 8, _D_WEIGHT, weight)
    if fwd & IP_VS_CONN_F_FWD_MASK == IP_VS_CONN_F_TUNNEL:
        # As Keepalived: the type always, the port for GUE only, checksum flags unless IPIP.
        body += _NLA.pack(5, _D_TUN_TYPE) + bytes((tun_type, 0, 0, 0))
        if tun_type == IP_VS_CONN_F_TUNNEL_TYPE_GUE:
            body += _BE16_ATTR.pack(6, _D_TUN_PORT, _htons(tun_port))
        if tun_type != IP_VS_CONN_F_TUNNEL_TYPE_IPIP:
            body += _BE16_ATTR.pack(6, _D_TUN_FLAGS, tun_flags)
    body += _DEST_TAIL.pack(8, _D_U, uth, 8, _D_L, lth)
    return _NLA.pack(4 + len(body), _NEST_DEST) + body


def _put(buf: Buffer, data: bytes, off: int = 0) -> int:
    mv = memoryview(buf).cast("B")
    if len(mv) - off < len(data):
        raise ValueError("buffer too small")
    mv[off : off + len(data)] = data
    return len(data)


# -- batch -------------------------------------------------------------------------------


def build_batch(
    buf: Buffer,
    family: int,
    seq: int,
    pid: int,
    ops: bytes,
    svcs: bytes,
    dests: bytes,
    start: int = 0,
    stop: int | None = None,
    ack_all: bool = False,
) -> tuple[int, int]:
    """Encode ``ops[start:stop]`` into ``buf``; returns (bytes written, index of the next op).

    ``ack_all``: NLM_F_ACK on every message (Keepalived's framing); otherwise only on the
    last one written, as the kernel reports errors regardless.
    """
    mv = memoryview(buf).cast("B")
    cap = len(mv)
    nops = len(ops) // OP.size
    end = nops if stop is None else min(stop, nops)
    nsvcs = len(svcs) // SERVICE.size
    ndests = len(dests) // DEST.size
    flags = _REQ_ACK if ack_all else NLM_F_REQUEST
    nests: dict[int, bytes] = {}  # service nests already encoded in this call
    off = last = 0
    i = start
    while i < end:
        if cap - off < MSG_MAX:
            break
        cmd, si, di = OP.unpack_from(ops, i * OP.size)
        if si >= nsvcs:
            raise ValueError(f"op {i}: no service record {si}")
        body = nests.get(si)
        if body is None:
            body = nests[si] = _svc_nest(svcs[si * SERVICE.size : (si + 1) * SERVICE.size])
        if cmd in _DEST_CMDS:
            if di >= ndests:
                raise ValueError(f"op {i}: no dest record {di}")
            body += _dest_nest(dests[di * DEST.size : (di + 1) * DEST.size])
        elif cmd not in _SVC_CMDS:
            raise ValueError(f"op {i}: not a service or dest command: {cmd}")
        m = _HDR.pack(20 + len(body), family, flags, (seq + i) & 0xFFFFFFFF, pid, cmd, 1, 0) + body
        mv[off : off + len(m)] = m
        last = off
        off += len(m)
        i += 1
    if i > start:
        struct.pack_into("=H", mv, last + 6, _REQ_ACK)
    return off, i


def parse_acks(buf: Buffer, nbytes: int, seq: int, nops: int, errors: array[int]) -> tuple[int, int, int]:
    """Record the replies in ``buf[:nbytes]``; returns (replies matched, how many were
    errors, highest op index answered or -1)."""
    mv = memoryview(buf).cast("B")[:nbytes]
    off = acks = failed = 0
    last = -1
    while off + 16 <= nbytes:
        mlen, mtype = struct.unpack_from("=IH", mv, off)
        if mlen < 16 or mlen > nbytes - off:
            raise ValueError("truncated netlink message")
        if mtype == NLMSG_ERROR and mlen >= 20:
            _l, _t, _f, mseq, _p, err = _ERR.unpack_from(mv, off)
            idx = (mseq - seq) & 0xFFFFFFFF
            if idx < nops:
                errors[idx] = -err
                acks += 1
                failed += err != 0
                last = max(last, idx)
        off += (mlen + 3) & ~3
    return acks, failed, last


# -- single requests ---------------------------------------------------------------------


def build_getfamily(buf: Buffer, seq: int, pid: int, name: bytes) -> int:
    body = _str(CTRL_ATTR_FAMILY_NAME, name, 16)
    return _put(buf, _msg(GENL_ID_CTRL, _REQ_ACK, seq, pid, CTRL_CMD_GETFAMILY, body, version=1))


def build_simple(buf: Buffer, family: int, seq: int, pid: int, cmd: int, flags: int) -> int:
    return _put(buf, _msg(family, flags, seq, pid, cmd, b"", IPVS_GENL_VERSION))


def build_get_dests(buf: Buffer, family: int, seq: int, pid: int, svc: bytes) -> int:
    if len(memoryview(buf).cast("B")) < MSG_MAX:
        raise ValueError("buffer too small")
    body = _nest(IPVS_CMD_ATTR.SERVICE, _svc_key(svc))
    return _put(buf, _msg(family, _REQ_ACK | NLM_F_DUMP, seq, pid, IPVS_CMD.GET_DEST, body))


def build_set_config(buf: Buffer, family: int, seq: int, pid: int, tcp: int, tcp_fin: int, udp: int) -> int:
    body = b""
    for attr, value in (
        (IPVS_CMD_ATTR.TIMEOUT_TCP, tcp),
        (IPVS_CMD_ATTR.TIMEOUT_TCP_FIN, tcp_fin),
        (IPVS_CMD_ATTR.TIMEOUT_UDP, udp),
    ):
        if value:
            body += _u32(attr, value)
    return _put(buf, _msg(family, _REQ_ACK, seq, pid, IPVS_CMD.SET_CONFIG, body))


def build_daemon(buf: Buffer, family: int, seq: int, pid: int, cmd: int, daemon: bytes) -> int:
    if len(memoryview(buf).cast("B")) < MSG_MAX:
        raise ValueError("buffer too small")
    state, syncid, ifn, maxlen, port, maf, ttl, group = DAEMON.unpack(daemon)
    body = _u32(IPVS_DAEMON_ATTR.STATE, state)
    if cmd != IPVS_CMD.DEL_DAEMON:
        body += _str(IPVS_DAEMON_ATTR.MCAST_IFN, ifn, 16) + _u32(IPVS_DAEMON_ATTR.SYNC_ID, syncid)
        if maxlen:
            body += _u16(IPVS_DAEMON_ATTR.SYNC_MAXLEN, maxlen)
        if maf == socket.AF_INET:
            body += _bin(IPVS_DAEMON_ATTR.MCAST_GROUP, group[:4])
        elif maf == socket.AF_INET6:
            body += _bin(IPVS_DAEMON_ATTR.MCAST_GROUP6, group)
        if port:
            body += _be16(IPVS_DAEMON_ATTR.MCAST_PORT, port)
        if ttl:
            body += _u8(IPVS_DAEMON_ATTR.MCAST_TTL, ttl)
    return _put(buf, _msg(family, _REQ_ACK, seq, pid, cmd, _nest(IPVS_CMD_ATTR.DAEMON, body)))


# -- replies -----------------------------------------------------------------------------


def _attrs(data: memoryview) -> list[tuple[int, memoryview]]:
    out = []
    off = 0
    n = len(data)
    while off + 4 <= n:
        alen, atype = _NLA.unpack_from(data, off)
        if alen < 4 or off + alen > n:
            break
        out.append((atype & 0x3FFF, data[off + 4 : off + alen]))
        off += (alen + 3) & ~3
    return out


def _top(msg: Buffer) -> list[tuple[int, memoryview]]:
    mv = memoryview(msg).cast("B")
    if len(mv) < 20:
        raise ValueError("short netlink message")
    mlen = struct.unpack_from("=I", mv)[0]
    if mlen < 20 or mlen > len(mv):
        raise ValueError("bad nlmsg_len")
    return _attrs(mv[20:mlen])


def _nested(msg: Buffer, want: int) -> list[tuple[int, memoryview]]:
    for t, v in _top(msg):
        if t == want:
            return _attrs(v)
    raise ValueError(f"attribute {want} missing")


def _cstr(v: memoryview, cap: int) -> bytes:
    return bytes(v[: cap - 1]).split(b"\0", 1)[0]


def _addr16(v: memoryview) -> bytes:
    return bytes(v[:16]).ljust(16, b"\0")


def _uint(v: memoryview) -> int:
    return int.from_bytes(v[:8], "little") if len(v) >= 8 else int.from_bytes(v[:4], "little")


def _stats(v: memoryview | None) -> list[int]:
    out = [0] * 10
    if v is not None:
        for t, val in _attrs(v):
            if 1 <= t <= IPVS_STATS_ATTR.OUTBPS and len(val) >= 4:
                out[t - 1] = _uint(val)
    return out


def parse_family(msg: Buffer) -> int:
    for t, v in _top(msg):
        if t == CTRL_ATTR_FAMILY_ID and len(v) >= 2:
            return int.from_bytes(v[:2], "little")
    raise ValueError("CTRL_ATTR_FAMILY_ID missing")


def parse_service(msg: Buffer) -> tuple[bytes, tuple[int, ...]]:
    """One service of a GET_SERVICE dump: (SERVICE record, 13 counters as STATS)."""
    f: dict[int, memoryview] = dict(_nested(msg, IPVS_CMD_ATTR.SERVICE))

    def u(t: int, size: int = 4) -> int:
        v = f.get(t)
        return int.from_bytes(v[:size], "little") if v is not None and len(v) >= size else 0

    af = u(IPVS_SVC_ATTR.AF, 2)
    port = f.get(IPVS_SVC_ATTR.PORT)
    raw_mask = u(IPVS_SVC_ATTR.NETMASK)
    rec = SERVICE.pack(
        _addr16(f[IPVS_SVC_ATTR.ADDR]) if IPVS_SVC_ATTR.ADDR in f else b"",
        af,
        u(IPVS_SVC_ATTR.PROTOCOL, 2),
        int.from_bytes(port[:2], "big") if port is not None and len(port) >= 2 else 0,
        0,
        u(IPVS_SVC_ATTR.FWMARK),
        u(IPVS_SVC_ATTR.FLAGS),
        u(IPVS_SVC_ATTR.TIMEOUT),
        raw_mask if af == socket.AF_INET6 else socket.ntohl(raw_mask),
        _cstr(f[IPVS_SVC_ATTR.SCHED_NAME], 16) if IPVS_SVC_ATTR.SCHED_NAME in f else b"",
        _cstr(f[IPVS_SVC_ATTR.PE_NAME], 16) if IPVS_SVC_ATTR.PE_NAME in f else b"",
    )
    st = _stats(f.get(IPVS_SVC_ATTR.STATS64, f.get(IPVS_SVC_ATTR.STATS)))
    return rec, (*st, 0, 0, 0)


def parse_dest(msg: Buffer) -> tuple[bytes, tuple[int, ...]]:
    """One dest of a GET_DEST dump: (DEST record, 13 counters incl. active/inact/persist)."""
    f: dict[int, memoryview] = dict(_nested(msg, IPVS_CMD_ATTR.DEST))

    def u(t: int, size: int = 4) -> int:
        v = f.get(t)
        return int.from_bytes(v[:size], "little") if v is not None and len(v) >= size else 0

    def be(t: int) -> int:
        v = f.get(t)
        return int.from_bytes(v[:2], "big") if v is not None and len(v) >= 2 else 0

    rec = DEST.pack(
        _addr16(f[IPVS_DEST_ATTR.ADDR]) if IPVS_DEST_ATTR.ADDR in f else b"",
        u(IPVS_DEST_ATTR.ADDR_FAMILY, 2),
        be(IPVS_DEST_ATTR.PORT),
        u(IPVS_DEST_ATTR.FWD_METHOD),
        u(IPVS_DEST_ATTR.WEIGHT),
        u(IPVS_DEST_ATTR.U_THRESH),
        u(IPVS_DEST_ATTR.L_THRESH),
        be(IPVS_DEST_ATTR.TUN_PORT),
        u(IPVS_DEST_ATTR.TUN_FLAGS, 2),
        u(IPVS_DEST_ATTR.TUN_TYPE, 1),
    )
    st = _stats(f.get(IPVS_DEST_ATTR.STATS64, f.get(IPVS_DEST_ATTR.STATS)))
    conns = (u(IPVS_DEST_ATTR.ACTIVE_CONNS), u(IPVS_DEST_ATTR.INACT_CONNS), u(IPVS_DEST_ATTR.PERSIST_CONNS))
    return rec, (*st, *conns)


def parse_daemon(msg: Buffer) -> bytes:
    """One sync daemon of a GET_DAEMON dump: a DAEMON record."""
    f: dict[int, memoryview] = dict(_nested(msg, IPVS_CMD_ATTR.DAEMON))

    def u(t: int, size: int = 4) -> int:
        v = f.get(t)
        return int.from_bytes(v[:size], "little") if v is not None and len(v) >= size else 0

    af, group = 0, b""
    if IPVS_DAEMON_ATTR.MCAST_GROUP in f and len(f[IPVS_DAEMON_ATTR.MCAST_GROUP]) >= 4:
        af, group = socket.AF_INET, bytes(f[IPVS_DAEMON_ATTR.MCAST_GROUP][:4])
    if IPVS_DAEMON_ATTR.MCAST_GROUP6 in f and len(f[IPVS_DAEMON_ATTR.MCAST_GROUP6]) >= 16:
        af, group = socket.AF_INET6, bytes(f[IPVS_DAEMON_ATTR.MCAST_GROUP6][:16])
    port = f.get(IPVS_DAEMON_ATTR.MCAST_PORT)
    return DAEMON.pack(
        u(IPVS_DAEMON_ATTR.STATE),
        u(IPVS_DAEMON_ATTR.SYNC_ID),
        _cstr(f[IPVS_DAEMON_ATTR.MCAST_IFN], 16) if IPVS_DAEMON_ATTR.MCAST_IFN in f else b"",
        u(IPVS_DAEMON_ATTR.SYNC_MAXLEN, 2),
        int.from_bytes(port[:2], "big") if port is not None and len(port) >= 2 else 0,
        af,
        u(IPVS_DAEMON_ATTR.MCAST_TTL, 1),
        group,
    )


def _u32_attrs(msg: Buffer, first: int, count: int) -> tuple[int, ...]:
    out = [0] * count
    for t, v in _top(msg):
        if first <= t < first + count and len(v) >= 4:
            out[t - first] = int.from_bytes(v[:4], "little")
    return tuple(out)


def parse_config(msg: Buffer) -> tuple[int, int, int]:
    """GET_CONFIG reply: (tcp, tcp_fin, udp) timeouts in seconds."""
    tcp, fin, udp = _u32_attrs(msg, IPVS_CMD_ATTR.TIMEOUT_TCP, 3)
    return tcp, fin, udp


def parse_info(msg: Buffer) -> tuple[int, int]:
    """GET_INFO reply: (version, connection table size)."""
    version, size = _u32_attrs(msg, IPVS_INFO_ATTR.VERSION, 2)
    return version, size


__all__ = [
    "build_batch",
    "build_daemon",
    "build_get_dests",
    "build_getfamily",
    "build_set_config",
    "build_simple",
    "parse_acks",
    "parse_config",
    "parse_daemon",
    "parse_dest",
    "parse_family",
    "parse_info",
    "parse_service",
    "sizes",
]
