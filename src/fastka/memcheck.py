"""``--mem-check`` / ``FASTKA_MEMCHECK=1``: what was allocated and not freed.

Keepalived's mem-check builds log every malloc/free and list what is left at exit. fastka
uses ``tracemalloc``: each process takes a baseline snapshot when it starts (a child
after fork) and reports, on SIGUSR1 and at exit, the allocations made since then that
are still alive, grouped by the line that made them, plus the counters a compiled module
exposes through a ``mem_stats() -> dict[str, int]`` function, if it has one. The report
goes to the log and, at exit, to ``$TMPDIR/fastka_mem.<role>.<pid>.log``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING

from fastka.status import atomic_write, dump_dir

if TYPE_CHECKING:
    import tracemalloc

    from fastka.cli import Options

log = logging.getLogger("fastka.memcheck")

# One frame per allocation keeps tracing cheap enough to leave on for a while; deeper
# tracebacks (FASTKA_MEMCHECK_FRAMES=N) show who called the allocating line.
FRAMES = int(os.environ.get("FASTKA_MEMCHECK_FRAMES", "1") or 1)
TOP = 25
COMPILED_MODULES = ("fastka._loop", "fastka._vrrp", "fastka._ipvs")

_baseline: tracemalloc.Snapshot | None = None


def wanted(opts: Options) -> bool:
    return opts.mem_check or os.environ.get("FASTKA_MEMCHECK", "") not in ("", "0")


def start() -> None:
    """Start tracing (if not yet) and take this process's baseline."""
    global _baseline
    import tracemalloc  # only with --mem-check: not a cost every process pays

    if not tracemalloc.is_tracing():
        tracemalloc.start(FRAMES)
    _baseline = tracemalloc.take_snapshot()


def active() -> bool:
    return _baseline is not None and sys.modules["tracemalloc"].is_tracing()


def _compiled_counters() -> list[str]:
    lines = []
    for name in COMPILED_MODULES:
        mod = sys.modules.get(name)
        stats = getattr(mod, "mem_stats", None)
        if callable(stats):
            try:
                counters = stats()
            except Exception as exc:
                lines.append(f"  {name}: mem_stats() failed: {exc}")
                continue
            for key, value in sorted(dict(counters).items()):
                lines.append(f"  {name}.{key} = {value}")
    return lines


def report(role: str) -> str:
    """Allocations alive now that were made after the baseline, largest first."""
    if not active() or _baseline is None:
        return "mem-check: not active\n"
    import tracemalloc

    snap = tracemalloc.take_snapshot()
    diff = [
        d
        for d in snap.compare_to(_baseline, "traceback" if FRAMES > 1 else "lineno")
        if d.size_diff > 0 and d.traceback[0].filename != tracemalloc.__file__
    ]
    current, peak = tracemalloc.get_traced_memory()
    lines = [
        f"mem-check report, {role} process {os.getpid()}, {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"  traced now {current} bytes, peak {peak} bytes",
        f"  not freed since start: {sum(d.size_diff for d in diff)} bytes in "
        f"{sum(max(d.count_diff, 0) for d in diff)} blocks from {len(diff)} places",
    ]
    for d in diff[:TOP]:
        frame = d.traceback[0]
        lines.append(f"  {d.size_diff:>10} B {d.count_diff:>6} blocks  {frame.filename}:{frame.lineno}")
    counters = _compiled_counters()
    if counters:
        lines.append("  compiled modules:")
        lines += counters
    return "\n".join(lines) + "\n"


def log_report(role: str, *, final: bool = False, text: str | None = None) -> None:
    """Log ``text`` (default: a new report); at exit also write it to a file."""
    if not active():
        return
    text = report(role) if text is None else text
    for line in text.splitlines():
        log.info("%s", line)
    if final:
        path = os.path.join(dump_dir(), f"fastka_mem.{role}.{os.getpid()}.log")
        try:
            atomic_write(path, text)
        except OSError as exc:
            log.warning("mem-check: cannot write %s: %s", path, exc)
