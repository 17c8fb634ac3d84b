"""fastka.ipvs: the kernel's IPVS table from Python (see :mod:`fastka.ipvs.ipvs`).

``from fastka.ipvs import Ipvs, Service, Dest, Table, diff`` -- the names are loaded on
first use, so that the codec modules can import :mod:`fastka.ipvs.msg` without a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastka.ipvs.ipvs import (
        Dest,
        DestStatus,
        Ipvs,
        Op,
        Service,
        ServiceStatus,
        Stats,
        SyncDaemon,
        Table,
        Timeouts,
        apply_ops,
        diff,
        parse_netmask,
    )

__all__ = [
    "Dest",
    "DestStatus",
    "Ipvs",
    "Op",
    "Service",
    "ServiceStatus",
    "Stats",
    "SyncDaemon",
    "Table",
    "Timeouts",
    "apply_ops",
    "diff",
    "parse_netmask",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fastka.ipvs import ipvs

        return getattr(ipvs, name)
    raise AttributeError(f"module 'fastka.ipvs' has no attribute {name!r}")
