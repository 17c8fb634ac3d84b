"""The consolidated configuration: what the parent read, as one document (``--config-fd``).

Keepalived's parent writes the configuration it read -- every include spliced in -- to a
memfd, and whoever must see exactly that text reads it from the descriptor
(``--config-fd=FD``): the children, and the ``--config-test`` run that
``reload_check_config`` makes before a reload. fastka's children get the compiled model
from their parent (inherited at fork, sent over their channel on a reload), so they never
parse anything; the consolidated copy is what the validating process reads, so that the
configuration that was checked is the one that is then applied, even if the files change
meanwhile, and it makes ``fastka -t --config-fd=N`` and ``fastka --config-fd=N`` work as
Keepalived's do.

The document is the preprocessor's output -- logical lines with their words, raw text
and origin, after includes, ``@`` conditionals, ``$`` macros and ``~SEQ`` -- plus the
preprocessing's diagnostics and the list of files read. Compiling it again
(:func:`fastka.config.compile.load_preprocessed`) gives the same model and diagnostics as
the files gave; no file is opened. Format: JSON lines, a header object then one
``[name, line, raw, words]`` array per logical line (``name`` indexes the header's
``names``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastka.config.compile import Host, ReadHook
    from fastka.config.diagnostics import Diagnostic, Diagnostics
    from fastka.config.lexer import Line
    from fastka.config.model import Config

FORMAT = "fastka-consolidated-config 1"


class Capture:
    """``load(on_read=capture.hook)`` keeps what the preprocessor produced, encoded."""

    def __init__(self) -> None:
        self.data: bytes | None = None

    @property
    def hook(self) -> ReadHook:
        def on_read(lines: Sequence[Line], diagnostics: Sequence[Diagnostic], files: Sequence[str]) -> None:
            self.data = encode(lines, diagnostics, files)

        return on_read


def encode(lines: Sequence[Line], diagnostics: Sequence[Diagnostic], files: Sequence[str]) -> bytes:
    names: dict[str, int] = {}

    def name(file: str) -> int:
        n = names.get(file)
        if n is None:
            n = names[file] = len(names)
        return n

    body = [
        json.dumps([name(ln.location.file), ln.location.line, ln.raw, ln.words], separators=(",", ":"))
        for ln in lines
    ]
    diags = []
    for d in diagnostics:
        loc = d.location
        diags.append(
            [
                d.level,
                d.message,
                loc.file if loc else None,
                loc.line if loc else None,
                int(d.status),
                d.keyword,
            ]
        )
    header = {"format": FORMAT, "files": list(files), "names": list(names), "diagnostics": diags}
    return ("\n".join([json.dumps(header, separators=(",", ":")), *body]) + "\n").encode()


def decode(data: bytes) -> tuple[list[Line], list[Diagnostic], list[str]]:
    """The lines, diagnostics and files of an encoded document; ValueError if it is not one."""
    from fastka.config.diagnostics import Diagnostic, Status
    from fastka.config.lexer import Line
    from fastka.config.model import Location

    text = data.decode()
    first, _, rest = text.partition("\n")
    try:
        header: dict[str, Any] = json.loads(first)
    except ValueError:
        header = {}
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError("not a consolidated fastka configuration")
    names = [str(n) for n in header["names"]]
    lines = []
    for row in rest.splitlines():
        if row:
            n, number, raw, words = json.loads(row)
            lines.append(Line([str(w) for w in words], str(raw), Location(names[n], int(number))))
    diagnostics = [
        Diagnostic(
            int(level),
            str(message),
            Location(file, int(line)) if file is not None and line is not None else None,
            Status(int(status)),
            keyword,
        )
        for level, message, file, line, status, keyword in header["diagnostics"]
    ]
    return lines, diagnostics, [str(f) for f in header["files"]]


def to_memfd(data: bytes, name: str = "fastka_config") -> int:
    """A sealed, close-on-exec memfd holding ``data`` (offset at 0)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        # Whoever reads it sees exactly this: no write, no resize.
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int) -> bytes:
    """Everything in ``fd`` from its start (memfd, file), or from where it is (pipe)."""
    chunks: list[bytes] = []
    offset = 0
    positional = True
    while True:
        try:
            chunk = os.pread(fd, 1 << 20, offset) if positional else os.read(fd, 1 << 20)
        except OSError as exc:
            if exc.errno != errno.ESPIPE or not positional:
                raise
            positional = False
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def load_fd(fd: int, *, host: Host | None = None) -> tuple[Config, Diagnostics]:
    """Compile the consolidated configuration in ``fd`` (``--config-fd``); an unreadable
    or foreign document is one FATAL diagnostic."""
    from fastka.config import model as m
    from fastka.config.compile import load_preprocessed
    from fastka.config.diagnostics import Diagnostics

    try:
        lines, diagnostics, files = decode(read_fd(fd))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        diag = Diagnostics()
        diag.fatal(f"Cannot read the configuration from file descriptor {fd}: {exc}")
        return m.Config(), diag
    return load_preprocessed(lines, diagnostics, files, host=host)


def close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
