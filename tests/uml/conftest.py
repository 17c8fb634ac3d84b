"""pytest fixtures for real-kernel tests in user-mode-linux (see ``uml/rig.py``).

``uml_guest``: one booted guest per test module (a boot costs ~4 s), halted and removed
afterwards. A module can set ``UML_PRELOAD = [...]`` (modules the guest agent imports once,
so calls start warm; default ``fastka.ipvs.ipvs``) and ``UML_MODULES`` (kernel modules).
Tests that use it should carry ``pytest.mark.uml`` (and ``slow``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import _missing, require_tool
from uml.rig import DEFAULT_MODULES, UML_MODULES, Guest


@pytest.fixture(scope="module")
def uml_guest(request: pytest.FixtureRequest) -> Iterator[Guest]:
    require_tool("linux.uml")
    if not UML_MODULES.is_dir():
        _missing(f"needs the UML kernel modules in {UML_MODULES} (package user-mode-linux)")
    preload = getattr(request.module, "UML_PRELOAD", ("fastka.ipvs.ipvs",))
    modules = getattr(request.module, "UML_MODULES", DEFAULT_MODULES)
    guest = Guest(preload=preload, modules=modules)
    guest.start()
    try:
        yield guest
    finally:
        guest.close()
