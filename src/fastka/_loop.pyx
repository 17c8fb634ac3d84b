# cython: language_level=3
"""Compiled event loop -- TEMPORARY shim re-exporting the reference until the compiled
loop lands (same API, so callers can code against ``fastka.loop`` already)."""

from fastka._loop_py import DEVNULL, TICK, Loop, Timer, Waiter  # noqa: F401
