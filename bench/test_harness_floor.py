"""The floor under every per-call benchmark: calling a trivial C function (``len``).

* ``builtin-len``: ``len(b"")`` 1000 times per round in the inner loop of
  ``bench/_percall.py`` -- the loop every per-call row runs in; no Python-level call can
  measure below it. ``bench/conftest.py`` shows each fastka row net of it.
* ``builtin-len-single``: one call per round through pytest-benchmark's own loop (which
  calls ``fn(*args, **kwargs)``), the floor of benchmarks that make one call per round.
"""

from __future__ import annotations

from typing import Any

import pytest

from _percall import bench_calls


@pytest.mark.parametrize("impl", ["builtin-len", "builtin-len-single"])
def test_harness_floor(benchmark: Any, impl: str) -> None:
    benchmark.group = "harness-floor"
    if impl == "builtin-len":
        bench_calls(benchmark, len, b"")
    else:
        assert benchmark(len, b"") == 0
