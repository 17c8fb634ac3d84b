"""Per-call benchmarks with an inner loop, as yarl's benchmarks do.

One benchmark round calls the function ``n`` times from a plain ``for`` loop whose
arguments are local variables -- what a caller's own loop costs -- and the row reports
the time per call (``benchmark.extra_info["calls"] = n``). pytest-benchmark's own
per-round overhead (~60 ns here: it calls ``fn(*args, **kwargs)``) is then amortised
over ``n`` calls, the same way for every implementation; what is left is the loop's
floor, which ``bench/test_harness_floor.py`` measures with ``len(b"")`` in the same loop.

The loop drops each result before the next call (an expression statement, as
``timeit`` and pytest-benchmark's own loop do).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Any

# calls per round: about 20-100 µs per round for the compiled rows
INNER = {"fastka": 1000, "python": 100, "scapy": 10}

_CACHE: dict[tuple[int, str], Callable[..., None]] = {}


def _runner(nargs: int, method: str = "") -> Callable[..., None]:
    """``run(n, fn, a0, a1, ...)`` calling ``fn(a0, a1, ...)`` -- or, with ``method``,
    ``fn.<method>(a0, ...)`` as a caller writes a method call -- ``n`` times."""
    key = (nargs, method)
    if key not in _CACHE:
        if method and not method.isidentifier():
            raise ValueError(method)
        names = ", ".join(f"a{i}" for i in range(nargs))
        call = f"fn.{method}({names})" if method else f"fn({names})"
        src = (
            f"def run(n, fn{', ' if nargs else ''}{names}):\n    for _ in repeat(None, n):\n        {call}\n"
        )
        ns: dict[str, Any] = {"repeat": repeat}
        exec(compile(src, f"<percall {nargs}>", "exec"), ns)  # a fixed template, arguments as locals
        _CACHE[key] = ns["run"]
    return _CACHE[key]


def bench_calls(benchmark: Any, fn: Callable[..., Any], *args: Any, n: int = 1000) -> None:
    """Benchmark ``n`` calls of ``fn(*args)`` per round, reported per call."""
    _bench(benchmark, n, _runner(len(args)), (n, fn, *args))


def bench_method(benchmark: Any, obj: Any, method: str, *args: Any, n: int = 1000) -> None:
    """Benchmark ``n`` method calls ``obj.<method>(*args)`` per round, reported per call."""
    _bench(benchmark, n, _runner(len(args), method), (n, obj, *args))


def _bench(benchmark: Any, n: int, run: Callable[..., None], run_args: tuple[Any, ...]) -> None:
    benchmark.extra_info["calls"] = n
    benchmark.extra_info.setdefault("per", n)
    benchmark.extra_info.setdefault("unit", "call")
    benchmark(run, *run_args)
