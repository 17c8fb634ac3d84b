"""The floor under every per-call benchmark: calling a trivial C function (``len``)
through pytest-benchmark's loop on this machine. No Python-level call can measure below
it; ``bench/conftest.py`` shows each fastka row net of it."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("impl", ["builtin-len"])
def test_harness_floor(benchmark: Any, impl: str) -> None:
    benchmark.group = "harness-floor"
    assert benchmark(len, b"") == 0
