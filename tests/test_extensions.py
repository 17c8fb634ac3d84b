"""The compiled modules really loaded (a broken build must not pass as the reference)."""

import importlib

import pytest

from fastka._compat import USE_EXTENSIONS

COMPILED = ["fastka._vrrp", "fastka._loop", "fastka._ipvs", "fastka._vrrp_engine"]


@pytest.mark.skipif(not USE_EXTENSIONS, reason="FASTKA_NO_EXTENSIONS=1: references only")
@pytest.mark.parametrize("name", COMPILED)
def test_compiled_module_loaded(name: str) -> None:
    mod = importlib.import_module(name)
    assert mod.__file__ is not None
    assert mod.__file__.endswith(".so"), mod.__file__


def test_version_command() -> None:
    import subprocess
    import sys

    from fastka import __version__

    out = subprocess.run(
        [sys.executable, "-m", "fastka", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in out.stderr
