"""The floor under every per-call benchmark: calling a trivial C function (``len``).

* ``builtin-len``: ``len(b"")`` 1000 times per round in the inner loop of
  ``bench/_percall.py`` -- the loop every per-call row runs in; no Python-level call can
  measure below it. ``bench/conftest.py`` shows each fastka row net of it.
* ``builtin-len-single``: one call per round through pytest-benchmark's own loop (which
  calls ``fn(*args, **kwargs)``), the floor of benchmarks that make one call per round.
* ``null-<n>args``: ``fastka._vrrp._null``, a ``METH_FASTCALL`` builtin like the codec's
  entry points that does nothing, called with n positional arguments in the inner loop:
  what the call alone costs the interpreter (every argument is loaded, referenced and
  released by the caller), e.g. 7 for ``encode_into(buf, 0, 2, vrid, prio, 1, vips)``.
"""

from __future__ import annotations

from typing import Any

import pytest

from _percall import bench_calls
from fastka._compat import USE_EXTENSIONS

NULL = [
    pytest.param(f"null-{n}args", marks=pytest.mark.skipif(not USE_EXTENSIONS, reason="no extensions"))
    for n in (1, 3, 7, 11)
]


@pytest.mark.parametrize("impl", ["builtin-len", "builtin-len-single", *NULL])
def test_harness_floor(benchmark: Any, impl: str) -> None:
    benchmark.group = "harness-floor"
    if impl == "builtin-len":
        bench_calls(benchmark, len, b"")
    elif impl == "builtin-len-single":
        assert benchmark(len, b"") == 0
    else:
        from fastka import _vrrp

        n = int(impl.split("-")[1].removesuffix("args"))
        bench_calls(benchmark, _vrrp._null, *range(n))
