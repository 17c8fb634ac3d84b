"""Selects the IPVS netlink codec: compiled (``fastka._ipvs`` through ``fastka.ipvs._cffi``)
or the pure-Python reference ``fastka._ipvs_py`` (``FASTKA_NO_EXTENSIONS=1``).

The API is documented in ``fastka._ipvs_py``; both modules implement it identically.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastka._compat import USE_EXTENSIONS

if TYPE_CHECKING or not USE_EXTENSIONS:
    from fastka import _ipvs_py as impl
else:
    from fastka.ipvs import _cffi as impl

build_batch = impl.build_batch
parse_acks = impl.parse_acks
build_getfamily = impl.build_getfamily
build_simple = impl.build_simple
build_get_dests = impl.build_get_dests
build_set_config = impl.build_set_config
build_daemon = impl.build_daemon
parse_family = impl.parse_family
parse_service = impl.parse_service
parse_dest = impl.parse_dest
parse_daemon = impl.parse_daemon
parse_config = impl.parse_config
parse_info = impl.parse_info
sizes = impl.sizes

__all__ = [
    "build_batch",
    "build_daemon",
    "build_get_dests",
    "build_getfamily",
    "build_set_config",
    "build_simple",
    "impl",
    "parse_acks",
    "parse_config",
    "parse_daemon",
    "parse_dest",
    "parse_family",
    "parse_info",
    "parse_service",
    "sizes",
]
