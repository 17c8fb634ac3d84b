"""Where the checker child sends its IPVS commands.

The checker state machines never talk to the kernel themselves: they call an
:class:`IpvsSink`, one method per IPVS command Keepalived issues (behaviour.md §C3). The
real implementation adapts ``fastka.ipvs`` (generic netlink); :class:`MemorySink` keeps
the table in memory and records every command, for tests and for ``--dry-run`` style use.

Errors: a sink raises :class:`fastka.errors.IpvsError` with the errno. The caller ignores
EEXIST on add and ENOENT on delete, and retries a SET_DEST that failed with ENOENT as
NEW_DEST, as Keepalived does.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Protocol

from fastka.check.spec import ServiceSpec
from fastka.errors import IpvsError


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
