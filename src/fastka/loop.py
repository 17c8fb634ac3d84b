"""The event loop: the compiled ``fastka._loop`` or, with ``FASTKA_NO_EXTENSIONS=1``, the
pure-Python reference ``fastka._loop_py`` (type checkers always see the reference).

API: docs/loop-api.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastka._compat import USE_EXTENSIONS

if TYPE_CHECKING or not USE_EXTENSIONS:
    from fastka._loop_py import DEVNULL, TICK, ConnectCheck, FileDescriptorLike, Loop, Timer, Waiter
else:
    from fastka._loop import DEVNULL, TICK, ConnectCheck, Loop, Timer, Waiter
    from fastka._loop_py import FileDescriptorLike

__all__ = ["DEVNULL", "TICK", "ConnectCheck", "FileDescriptorLike", "Loop", "Timer", "Waiter"]
