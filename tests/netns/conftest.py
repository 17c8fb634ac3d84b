"""Fixtures for tests that build network namespaces (see ``rig.py`` for the rig itself).

* ``rig``: a fresh :class:`rig.Rig`, closed (everything removed) after the test.
* ``lan``: a rig with bridge ``lan`` and routers ``r1`` (host 11) and ``r2`` (host 12) --
  the golden captures' topology: MACs 02:99:00:00:00:1x, 10.99.0.1x/24, fd99::1x/64.

Session start removes namespaces (and temp dirs) left behind by killed runs; while a rig
exists, SIGTERM/SIGHUP close every rig before pytest unwinds. ``FASTKA_RIG_KEEP=1`` keeps
the rig's temp dir (daemon logs, configs) for a post-mortem.

Helpers live in ``rig.py`` (``from rig import Lan, Rig, golden ...``); the root
``tests/conftest.py`` keeps the module name ``conftest`` pointing at itself, so
``from conftest import require_root`` means the root's helpers everywhere. The same helpers
are re-exported here too, for runs that collect this directory alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rig import Lan, Rig, _root, install_signal_guard, remove_stale_namespaces, require_netns

# re-exported: see the module docstring
_missing = _root._missing
REQUIRE_ALL = _root.REQUIRE_ALL
implementations = _root.implementations
load = _root.load
require_root = _root.require_root
require_tool = _root.require_tool

__all__ = ["REQUIRE_ALL", "_missing", "implementations", "load", "require_root", "require_tool"]


@pytest.fixture(scope="session", autouse=True)
def _remove_stale_namespaces() -> None:
    import os

    if os.geteuid() == 0:
        remove_stale_namespaces()


@pytest.fixture
def rig() -> Iterator[Rig]:
    require_netns()
    restore = install_signal_guard()  # only while namespaces exist
    r = Rig()
    try:
        yield r
    finally:
        r.close()
        restore()


@pytest.fixture
def lan(rig: Rig) -> Lan:
    br = rig.bridge("lan")
    return Lan(rig, br, rig.router("r1", br, host=11), rig.router("r2", br, host=12))
