"""The VRRP steady state: the compiled ``fastka._vrrp_engine`` or, with
``FASTKA_NO_EXTENSIONS=1``, the pure-Python reference ``fastka._vrrp_engine_py`` (type
checkers always see the reference, which documents the API).

The engine sends every MASTER's adverts and re-arms every BACKUP's master-down timer on
an advert from the master it follows, without entering Python; the router
(:mod:`fastka.vrrp.router`) drives it and hears from it only when something changes.
The compiled engine needs the compiled loop (``fastka._loop``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastka._compat import USE_EXTENSIONS
from fastka._vrrp_engine_py import EngineHandler, SlotStats

if TYPE_CHECKING or not USE_EXTENSIONS:
    from fastka._vrrp_engine_py import Engine
else:
    from fastka._vrrp_engine import Engine

IMPLEMENTATION = "fastka._vrrp_engine" if USE_EXTENSIONS else "fastka._vrrp_engine_py"

__all__ = ["IMPLEMENTATION", "Engine", "EngineHandler", "SlotStats"]
