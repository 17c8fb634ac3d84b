"""Where the checker child sends its IPVS commands.

The checker state machines never talk to the kernel themselves: they call an
:class:`IpvsSink`, one method per IPVS command Keepalived issues (behaviour.md §C3). The
real implementation adapts ``fastka.ipvs`` (generic netlink); :class:`MemorySink` keeps
the table in memory and records every command, for tests and for ``--dry-run`` style use.

Errors: a sink raises :class:`fastka.errors.IpvsError` with the errno. The caller ignores
EEXIST on add and ENOENT on delete, and retries a SET_DEST that failed with ENOENT as
NEW_DEST, as Keepalived does.

Batches: inside ``with sink.batch():`` :class:`KernelSink` only queues the commands and
sends them together when the block ends (``Ipvs.execute``: many per ``sendmsg``, one ACK
per batch), applying the same error rules itself and logging what still failed. The
checker child starts (and stops) its virtual servers inside one: a thousand services and
their real servers then cost a few system calls instead of two per entry (in
user-mode-linux, seconds).
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from fastka.check.spec import ServiceSpec
from fastka.errors import IpvsError

_log = logging.getLogger("fastka.check")


@dataclass(frozen=True)
class DestSpec:
    """One IPVS destination (a real server or the sorry server) as sent to the kernel."""

    address: str
    port: int
    weight: int
    fwd: str  # NAT | DR | TUN
    uthreshold: int = 0
    lthreshold: int = 0
    tun_type: int = 0
    tun_port: int = 0
    tun_flags: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.address, self.port)


class IpvsSink(Protocol):
    """The IPVS commands the checker child issues (names as the kernel's IPVS_CMD_*)."""

    def new_service(self, svc: ServiceSpec) -> None: ...
    def set_service(self, svc: ServiceSpec) -> None: ...
    def del_service(self, svc: ServiceSpec) -> None: ...
    def new_dest(self, svc: ServiceSpec, dest: DestSpec) -> None: ...
    def set_dest(self, svc: ServiceSpec, dest: DestSpec) -> None: ...
    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None: ...
    def flush(self) -> None: ...


class MemorySink:
    """An in-memory IPVS table that behaves like the kernel's (EEXIST/ENOENT), with a log
    of every command as ``(cmd, service key, dest key or None, weight or None)``."""

    def __init__(self) -> None:
        self.services: dict[tuple[object, ...], ServiceSpec] = {}
        self.dests: dict[tuple[object, ...], dict[tuple[str, int], DestSpec]] = {}
        self.log: list[tuple[str, tuple[object, ...], tuple[str, int] | None, int | None]] = []

    def _svc(self, svc: ServiceSpec) -> dict[tuple[str, int], DestSpec]:
        if svc.key not in self.dests:
            raise IpvsError(errno.ESRCH, f"no service {svc.describe()}")
        return self.dests[svc.key]

    def new_service(self, svc: ServiceSpec) -> None:
        self.log.append(("NEW_SERVICE", svc.key, None, None))
        if svc.key in self.services:
            raise IpvsError(errno.EEXIST, "NEW_SERVICE")
        self.services[svc.key] = svc
        self.dests[svc.key] = {}

    def set_service(self, svc: ServiceSpec) -> None:
        self.log.append(("SET_SERVICE", svc.key, None, None))
        self._svc(svc)
        self.services[svc.key] = svc

    def del_service(self, svc: ServiceSpec) -> None:
        self.log.append(("DEL_SERVICE", svc.key, None, None))
        if svc.key not in self.services:
            raise IpvsError(errno.ESRCH, "DEL_SERVICE")
        del self.services[svc.key]
        del self.dests[svc.key]

    def new_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.log.append(("NEW_DEST", svc.key, dest.key, dest.weight))
        table = self._svc(svc)
        if dest.key in table:
            raise IpvsError(errno.EEXIST, "NEW_DEST")
        table[dest.key] = dest

    def set_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.log.append(("SET_DEST", svc.key, dest.key, dest.weight))
        table = self._svc(svc)
        if dest.key not in table:
            raise IpvsError(errno.ENOENT, "SET_DEST")
        table[dest.key] = dest

    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.log.append(("DEL_DEST", svc.key, dest.key, None))
        table = self._svc(svc)
        if dest.key not in table:
            raise IpvsError(errno.ENOENT, "DEL_DEST")
        del table[dest.key]

    def flush(self) -> None:
        self.log.append(("FLUSH", (), None, None))
        self.services.clear()
        self.dests.clear()

    # -- test helpers
    def weights(self, svc_key: tuple[object, ...]) -> dict[tuple[str, int], int]:
        """``{(address, port): weight}`` of one service."""
        return {k: d.weight for k, d in self.dests.get(svc_key, {}).items()}


class KernelSink:
    """The real thing: :class:`fastka.ipvs.ipvs.Ipvs` (generic netlink), one command per
    call so that each failure is reported with its errno and entry -- or, inside
    :meth:`batch`, queued and sent together."""

    def __init__(self, ipvs: object | None = None) -> None:
        from fastka.ipvs import ipvs as ipvs_mod
        from fastka.ipvs.msg import IPVS_CMD

        self._mod = ipvs_mod
        self._cmd = IPVS_CMD
        self.ipvs: Any = ipvs if ipvs is not None else ipvs_mod.Ipvs()
        self._services: dict[tuple[object, ...], Any] = {}
        self._queue: list[Any] | None = None

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Queue the commands issued inside the block; send them when it ends."""
        if self._queue is not None:  # nested: the outer block sends
            yield
            return
        self._queue = []
        try:
            yield
        finally:
            self._send_queue()

    def _queued(self, cmd: str, svc: Any, dest: Any = None) -> bool:
        """Inside :meth:`batch`: queue the command and return True."""
        if self._queue is None:
            return False
        self._queue.append(self._mod.Op(self._cmd[cmd], svc, dest))
        return True

    def _send_queue(self) -> None:
        """Send the queued commands, with the error rules of the module docstring."""
        ops, self._queue = self._queue or [], None
        if not ops:
            return
        cmd = self._cmd
        retry = []
        for exc in self.ipvs.execute(ops, keepalived_errors=False):
            name = exc.op.removeprefix("IPVS_CMD_")
            if name == "NEW_SERVICE" and exc.errno == errno.EEXIST:
                continue
            if name.startswith("DEL_") and exc.errno in (errno.ENOENT, errno.ESRCH):
                continue
            if name == "NEW_DEST" and exc.errno == errno.EEXIST:
                # Left by an earlier incarnation of this child: make the weight ours.
                retry.append(self._mod.Op(cmd.SET_DEST, exc.service, exc.dest))
            elif name == "SET_DEST" and exc.errno == errno.ENOENT:
                retry.append(self._mod.Op(cmd.NEW_DEST, exc.service, exc.dest))
            else:
                _log.error("IPVS cmd %s error: %s", name, exc)
        for exc in self.ipvs.execute(retry, keepalived_errors=False) if retry else ():
            _log.error("IPVS cmd %s error: %s", exc.op.removeprefix("IPVS_CMD_"), exc)

    def service(self, svc: ServiceSpec) -> Any:
        cached = self._services.get(svc.key)
        if cached is not None and cached[0] == svc:
            return cached[1]
        mod = self._mod
        s = mod.Service(
            addr=svc.address or "",
            port=svc.port,
            protocol=mod.PROTOCOLS.get(svc.protocol, 0),
            fwmark=svc.fwmark,
            af=svc.af,
            sched_name=svc.sched_name,
            flags=svc.flags,
            timeout=svc.timeout,
            netmask=svc.netmask,
            pe_name=svc.pe_name or "",
        )
        self._services[svc.key] = (svc, s)
        return s

    def dest(self, svc: Any, d: DestSpec) -> Any:
        mod = self._mod
        return mod.Dest(
            addr=d.address,
            port=d.port,
            weight=d.weight,
            fwd_method=mod.FWD_METHODS[d.fwd],
            u_threshold=d.uthreshold,
            l_threshold=d.lthreshold,
            tun_type=d.tun_type,
            tun_port=d.tun_port,
            tun_flags=d.tun_flags,
        ).for_service(svc)

    def new_service(self, svc: ServiceSpec) -> None:
        s = self.service(svc)
        if not self._queued("NEW_SERVICE", s):
            self.ipvs.new_service(s)

    def set_service(self, svc: ServiceSpec) -> None:
        s = self.service(svc)
        if not self._queued("SET_SERVICE", s):
            self.ipvs.set_service(s)

    def del_service(self, svc: ServiceSpec) -> None:
        s = self.service(svc)
        self._services.pop(svc.key, None)
        if not self._queued("DEL_SERVICE", s):
            self.ipvs.del_service(s)

    def new_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        s = self.service(svc)
        d = self.dest(s, dest)
        if not self._queued("NEW_DEST", s, d):
            self.ipvs.new_dest(s, d)

    def set_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        s = self.service(svc)
        d = self.dest(s, dest)
        if not self._queued("SET_DEST", s, d):
            self.ipvs.set_dest(s, d)

    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        s = self.service(svc)
        d = self.dest(s, dest)
        if not self._queued("DEL_DEST", s, d):
            self.ipvs.del_dest(s, d)

    def flush(self) -> None:
        batching = self._queue is not None
        if batching:  # what was queued first goes first
            self._send_queue()
        self.ipvs.flush()
        if batching:
            self._queue = []


class LoggingSink(MemorySink):
    """A dry run: keeps the table in memory and logs each command."""

    def __init__(self, logger: Any) -> None:
        super().__init__()
        self._logger = logger

    def _record(self, svc: ServiceSpec, dest: DestSpec | None = None) -> None:
        op = self.log[-1][0]
        where = f" -> [{dest.address}]:{dest.port} weight {dest.weight}" if dest is not None else ""
        self._logger.info("IPVS %s %s%s", op, svc.describe(), where)

    def new_service(self, svc: ServiceSpec) -> None:
        try:
            super().new_service(svc)
        finally:
            self._record(svc)

    def del_service(self, svc: ServiceSpec) -> None:
        try:
            super().del_service(svc)
        finally:
            self._record(svc)

    def new_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        try:
            super().new_dest(svc, dest)
        finally:
            self._record(svc, dest)

    def set_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        try:
            super().set_dest(svc, dest)
        finally:
            self._record(svc, dest)

    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        try:
            super().del_dest(svc, dest)
        finally:
            self._record(svc, dest)
