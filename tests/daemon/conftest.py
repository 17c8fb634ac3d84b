"""Fixtures for the daemon tests: ``fastka(config=None, args=None)`` makes a
:class:`fkproc.Fastka` in the test's temp dir; every one made is stopped (and its
children killed) at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fkproc import Fastka


@pytest.fixture
def fastka(tmp_path: Path) -> Iterator[Callable[..., Fastka]]:
    made: list[Fastka] = []

    def make(config: dict[str, Any] | None = None, args: list[str] | None = None, name: str = "") -> Fastka:
        d = tmp_path / (name or f"fk{len(made)}")
        d.mkdir()
        fk = Fastka(d, config, args)
        made.append(fk)
        return fk

    try:
        yield make
    finally:
        for fk in made:
            fk.stop()
