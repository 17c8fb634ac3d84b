"""Helpers shared by the configuration-compiler tests."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

from conftest import SHARED
from fastka.config import Host, loads
from fastka.config.diagnostics import Diagnostic, Status
from fastka.config.model import Config

SAMPLES = SHARED / "keepalived-samples"

# The interfaces samples.txt's ground truth was taken with (veths eth0..eth3, no eth0.1).
SAMPLE_INTERFACES = frozenset({"lo", "eth0", "eth1", "eth2", "eth3"})


def host(interfaces: frozenset[str] | None = None, *, scripts: bool = False, path: str | None = None) -> Host:
    return Host(
        hostname="lb1.example.com",
        username="root",
        interfaces=(lambda name: name in interfaces) if interfaces is not None else None,
        check_scripts=scripts,
        path=path or "/usr/sbin:/usr/bin:/sbin:/bin",
    )


def compile_text(text: str, **kwargs: object) -> tuple[Config, list[Diagnostic]]:
    """Compile dedented configuration text with no host checks."""
    kwargs.setdefault("host", host())
    return loads(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]


def problems(diagnostics: list[Diagnostic]) -> list[str]:
    """The messages that count against the configuration, without locations."""
    return [d.message for d in diagnostics if d.status is not Status.OK]


def messages(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.message for d in diagnostics]


def located(diagnostics: list[Diagnostic]) -> list[tuple[int | None, str]]:
    return [
        (d.location.line if d.location else None, d.message) for d in diagnostics if d.status is not Status.OK
    ]


def fake_program(directory: Path, name: str, mode: int = 0o755) -> Path:
    """An executable ``name`` in ``directory`` (root-owned when the tests run as root)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(path, mode)
    os.chmod(directory, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return path
