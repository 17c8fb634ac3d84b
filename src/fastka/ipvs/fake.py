"""A fake kernel for :class:`fastka.ipvs.Ipvs`: an in-memory IPVS table behind the
:class:`~fastka.ipvs.ipvs.Transport` seam, so the Python API can be tested unprivileged.

It answers the requests fastka sends the way Linux 6.1 does (``ip_vs_ctl.c``): family
lookup, NEW/SET/DEL service and dest with the kernel's errnos (EEXIST, ESRCH for a
missing service, ENOENT for a missing dest, ENOENT for an unknown scheduler, ERANGE
for ``l_threshold > u_threshold``), dumps, GET_INFO, timeouts, sync daemons, FLUSH and
ZERO. Every request is decoded with the selected codec and logged in :attr:`log` as
``(command name, service key, dest key or None)``, so tests can check exactly what was
touched. One ACK is returned per ``recv_into`` (as the kernel queues one skb per ACK);
a dump comes back in one read.
"""

from __future__ import annotations

import errno
import struct
from collections import deque

from fastka.ipvs import codec
from fastka.ipvs.ipvs import Dest, Service, SyncDaemon, Table, Timeouts
from fastka.ipvs.msg import (
    CTRL_ATTR_FAMILY_ID,
    CTRL_CMD_GETFAMILY,
    CTRL_CMD_NEWFAMILY,
    GENL_ID_CTRL,
    IPVS_CMD,
    IPVS_CMD_ATTR,
    IPVS_INFO_ATTR,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_MULTI,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGHDR,
    OP,
    SCHEDULERS,
)

_GENL = struct.Struct("=IHHIIBBH")


def _reply(mtype: int, flags: int, seq: int, cmd: int, body: bytes) -> bytes:
    return _GENL.pack(20 + len(body), mtype, flags, seq, 0, cmd, 1, 0) + body


def _u32(t: int, v: int) -> bytes:
    return struct.pack("=HHI", 8, t, v)


class FakeKernel:
    """An IPVS generic-netlink peer in memory (see the module docstring)."""

    def __init__(self, family: int = 0x1C, *, ipvs_loaded: bool = True) -> None:
        self.family_id = family
        self.ipvs_loaded = ipvs_loaded
        self.table = Table()
        self.timeouts = Timeouts(900, 120, 300)
        self.daemons: dict[int, SyncDaemon] = {}
        self.log: list[tuple[str, object, object]] = []
        self.sends = 0
        self.closed = False
        self._out: deque[bytes] = deque()

    # -- Transport
    def send(self, data: memoryview) -> None:
        self.sends += 1
        buf = bytes(data)
        off = 0
        while off + 16 <= len(buf):
            mlen, mtype, mflags, mseq, _pid = NLMSGHDR.unpack_from(buf, off)
            self._handle(buf[off : off + mlen], mtype, mflags, mseq)
            off += (mlen + 3) & ~3

    def recv_into(self, buf: bytearray) -> int:
        if not self._out:
            raise BlockingIOError(errno.EAGAIN, "nothing queued")
        data = self._out.popleft()
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.closed = True

    # -- requests
    def _ack(self, seq: int, err: int, hdr: bytes) -> None:
        self._out.append(NLMSGHDR.pack(36, NLMSG_ERROR, 0x100, seq, 0) + struct.pack("=i", -err) + hdr[:16])

    def _handle(self, m: bytes, mtype: int, mflags: int, seq: int) -> None:
        cmd = m[16]
        if mtype == GENL_ID_CTRL:
            if cmd != CTRL_CMD_GETFAMILY or not self.ipvs_loaded:
                self._ack(seq, errno.ENOENT, m)
                return
            attr = struct.pack("=HHHxx", 6, CTRL_ATTR_FAMILY_ID, self.family_id)
            self._out.append(_reply(GENL_ID_CTRL, 0, seq, CTRL_CMD_NEWFAMILY, attr))
            self._ack(seq, 0, m)
            return
        if mtype != self.family_id:
            self._ack(seq, errno.EOPNOTSUPP, m)
            return
        if mflags & NLM_F_DUMP:
            self._dump(m, cmd, seq)
            return
        try:
            reply = self._command(m, cmd)
        except OSError as exc:
            self._ack(seq, exc.errno or errno.EINVAL, m)
            return
        if reply is not None:
            self._out.append(_reply(self.family_id, 0, seq, reply[0], reply[1]))
        if mflags & NLM_F_ACK:
            self._ack(seq, 0, m)

    def _command(self, m: bytes, cmd: int) -> tuple[int, bytes] | None:
        name = IPVS_CMD(cmd).name if cmd in IPVS_CMD._value2member_map_ else str(cmd)
        if cmd in (IPVS_CMD.NEW_SERVICE, IPVS_CMD.SET_SERVICE, IPVS_CMD.DEL_SERVICE) or cmd in (
            IPVS_CMD.NEW_DEST,
            IPVS_CMD.SET_DEST,
            IPVS_CMD.DEL_DEST,
        ):
            self._table_command(m, cmd, name)
            return None
        self.log.append((name, None, None))
        if cmd == IPVS_CMD.FLUSH:
            self.table = Table()
        elif cmd == IPVS_CMD.ZERO:
            pass
        elif cmd == IPVS_CMD.GET_INFO:
            body = _u32(IPVS_INFO_ATTR.VERSION, 0x010201) + _u32(IPVS_INFO_ATTR.CONN_TAB_SIZE, 4096)
            return IPVS_CMD.SET_INFO, body
        elif cmd == IPVS_CMD.GET_CONFIG:
            t = self.timeouts
            body = (
                _u32(IPVS_CMD_ATTR.TIMEOUT_TCP, t.tcp)
                + _u32(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN, t.tcp_fin)
                + _u32(IPVS_CMD_ATTR.TIMEOUT_UDP, t.udp)
            )
            return IPVS_CMD.SET_CONFIG, body
        elif cmd == IPVS_CMD.SET_CONFIG:
            tcp, fin, udp = codec.parse_config(m)
            old = self.timeouts
            self.timeouts = Timeouts(tcp or old.tcp, fin or old.tcp_fin, udp or old.udp)
        elif cmd == IPVS_CMD.NEW_DAEMON:
            d = SyncDaemon.from_record(codec.parse_daemon(m))
            if d.state in self.daemons:
                raise OSError(errno.EEXIST, "daemon running")
            self.daemons[d.state] = d
        elif cmd == IPVS_CMD.DEL_DAEMON:
            state = SyncDaemon.from_record(codec.parse_daemon(m)).state
            if self.daemons.pop(state, None) is None:
                raise OSError(errno.ESRCH, "no daemon")
        else:
            raise OSError(errno.EOPNOTSUPP, name)
        return None

    def _table_command(self, m: bytes, cmd: int, name: str) -> None:
        svc = Service.from_record(codec.parse_service(m)[0])
        dest = Dest.from_record(codec.parse_dest(m)[0], svc.af) if cmd >= IPVS_CMD.NEW_DEST else None
        self.log.append((name, svc.key, dest.key if dest else None))
        current = self.table.service(svc.key)
        if cmd == IPVS_CMD.NEW_SERVICE:
            if current is not None:
                raise OSError(errno.EEXIST, name)
            if svc.sched_name not in SCHEDULERS:
                raise OSError(errno.ENOENT, "scheduler not found")
            self.table.add(svc, [])
            return
        if current is None:
            raise OSError(errno.ESRCH, name)
        if cmd == IPVS_CMD.SET_SERVICE:
            if svc.sched_name not in SCHEDULERS:
                raise OSError(errno.ENOENT, "scheduler not found")
            self.table._svcs[svc.key] = svc
        elif cmd == IPVS_CMD.DEL_SERVICE:
            self.table.remove(svc)
        else:
            assert dest is not None
            dests = self.table._dests[svc.key]
            if cmd != IPVS_CMD.DEL_DEST and dest.l_threshold > dest.u_threshold:
                raise OSError(errno.ERANGE, "l_threshold > u_threshold")
            if cmd == IPVS_CMD.NEW_DEST:
                if dest.key in dests:
                    raise OSError(errno.EEXIST, name)
                dests[dest.key] = dest
            elif dest.key not in dests:
                raise OSError(errno.ENOENT, name)
            elif cmd == IPVS_CMD.SET_DEST:
                dests[dest.key] = dest
            else:
                del dests[dest.key]

    def _dump(self, m: bytes, cmd: int, seq: int) -> None:
        buf = bytearray(4096)
        one_op = OP.pack(IPVS_CMD.NEW_SERVICE if cmd == IPVS_CMD.GET_SERVICE else IPVS_CMD.NEW_DEST, 0, 0)
        parts: list[bytes] = []

        def part(n: int) -> None:
            # Dump replies are the command's own message with NLM_F_MULTI and the dump's seq.
            one = bytearray(buf[:n])
            struct.pack_into("=HI", one, 6, NLM_F_MULTI, seq)
            parts.append(bytes(one))

        if cmd == IPVS_CMD.GET_SERVICE:
            self.log.append(("GET_SERVICE", None, None))
            for s in self.table.services():
                part(codec.build_batch(buf, self.family_id, seq, 0, one_op, s.record, b"")[0])
        elif cmd == IPVS_CMD.GET_DEST:
            svc = Service.from_record(codec.parse_service(m)[0])
            self.log.append(("GET_DEST", svc.key, None))
            current = self.table.service(svc.key)
            if current is not None:
                for d in self.table.dests(current):
                    part(codec.build_batch(buf, self.family_id, seq, 0, one_op, current.record, d.record)[0])
        elif cmd == IPVS_CMD.GET_DAEMON:
            self.log.append(("GET_DAEMON", None, None))
            for dm in self.daemons.values():
                part(codec.build_daemon(buf, self.family_id, seq, 0, IPVS_CMD.NEW_DAEMON, dm.record()))
        else:
            self._ack(seq, errno.EOPNOTSUPP, m)
            return
        parts.append(NLMSGHDR.pack(20, NLMSG_DONE, NLM_F_MULTI, seq, 0) + bytes(4))
        self._out.append(b"".join(parts))
