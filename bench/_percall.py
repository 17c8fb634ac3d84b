"""Per-call benchmarks with an inner loop, as yarl's benchmarks do.

One benchmark round calls the function ``n`` times from a plain ``for`` loop whose
arguments are local variables -- what a caller's own loop costs -- and the row reports
the time per call (``benchmark.extra_info["calls"] = n``). pytest-benchmark's own
per-round overhead (~60 ns here: it calls ``fn(*args, **kwargs)``) is then amortised
over ``n`` calls, the same way for every implementation; what is left is the loop's
floor, which ``bench/test_harness_floor.py`` measures with ``len(b"")`` in the same loop.

The loop drops each result before the next call (an expression statement, as
``timeit`` and pytest-benchmark's own loop do); ``calls_keeping`` keeps each result in a
variable until the next call has returned, for functions whose speed depends on that.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Any

# calls per round: about 20-100 µs per round for the compiled rows
INNER = {"fastka": 1000, "python": 100, "scapy": 10}

_CACHE: dict[tuple[int, bool, str], Callable[..., None]] = {}


def _runner(nargs: int, keep: bool, method: str = "") -> Callable[..., None]:
    """``run(n, fn, a0, a1, ...)`` calling ``fn(a0, a1, ...)`` -- or, with ``method``,
    ``fn.<method>(a0, ...)`` as a caller writes a method call -- ``n`` times."""
    key = (nargs, keep, method)
    if key not in _CACHE:
        if method and not method.isidentifier():
            raise ValueError(method)
        names = ", ".join(f"a{i}" for i in range(nargs))
        call = f"fn.{method}({names})" if method else f"fn({names})"
        body = f"r = {call}" if keep else call
        src = (
            f"def run(n, fn{', ' if nargs else ''}{names}):\n    for _ in repeat(None, n):\n        {body}\n"
        )
        ns: dict[str, Any] = {"repeat": repeat}
        exec(compile(src, f"<percall {nargs}>", "exec"), ns)  # a fixed template, arguments as locals
        _CACHE[key] = ns["run"]
    return _CACHE[key]


def calls(fn: Callable[..., Any], *args: Any, n: int = 1000) -> tuple[Callable[..., None], tuple[Any, ...]]:
    """``(run, run_args)`` for ``benchmark(run, *run_args)``: ``n`` calls of ``fn(*args)``."""
    return _runner(len(args), False), (n, fn, *args)


def calls_keeping(
    fn: Callable[..., Any], *args: Any, n: int = 1000
) -> tuple[Callable[..., None], tuple[Any, ...]]:
    """As ``calls``, but ``r = fn(*args)``: the previous result lives through each call."""
    return _runner(len(args), True), (n, fn, *args)


def bench_calls(
    benchmark: Any, fn: Callable[..., Any], *args: Any, n: int = 1000, keep: bool = False
) -> None:
    """Benchmark ``n`` calls of ``fn(*args)`` per round, reported per call."""
    run, run_args = (calls_keeping if keep else calls)(fn, *args, n=n)
    _bench(benchmark, n, run, run_args)


def bench_method(benchmark: Any, obj: Any, method: str, *args: Any, n: int = 1000) -> None:
    """Benchmark ``n`` method calls ``obj.<method>(*args)`` per round, reported per call."""
    _bench(benchmark, n, _runner(len(args), False, method), (n, obj, *args))


def _bench(benchmark: Any, n: int, run: Callable[..., None], run_args: tuple[Any, ...]) -> None:
    benchmark.extra_info["calls"] = n
    benchmark.extra_info.setdefault("per", n)
    benchmark.extra_info.setdefault("unit", "call")
    benchmark(run, *run_args)
