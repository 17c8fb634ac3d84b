"""The keepalived.conf preprocessor and lexer: files in, logical lines of words out.

Keepalived's language is a *line* preprocessor in front of a keyword parser
(catalogue §1). Each physical line goes through, in order:

1. comments removed (``#``/``!`` outside double quotes; ``\\#``/``\\!`` are literal), a
   trailing ``\\`` noted as a continuation (only meaningful in multi-line definitions);
2. ``@ID``/``@^ID`` conditional lines kept or dropped against the config id;
3. ``$NAME=value`` definitions recorded (multi-line ones collect the continuation lines);
4. ``~SEQ(...)``/``~SEQx(...)``/``~LST(...)`` replicate the rest of the line;
5. ``$NAME``/``${NAME}`` substituted (recursively, at use time; multi-line values become
   several lines), after which the line is decommented and re-processed from step 2;
6. ``include`` (and ``includer/m/w/b/a``) splices in files matched by a glob with csh
   brace expansion, relative to the including file;
7. the line is split into words (quotes group and are removed) and at every unquoted
   ``{`` / ``}`` into *logical lines* -- Keepalived's ``read_line()`` does the same, so
   ``a { b }`` is the three lines ``a {``, ``b``, ``}``.

Every :class:`Line` keeps the file and line number of the physical line it came from,
through includes and macro expansion. Nothing here raises: problems are reported to a
:class:`~fastka.config.diagnostics.Diagnostics` and the offending line is skipped.
Runaway input (include loops, self-referential or exponentially growing macros, huge
``~SEQ`` ranges) is detected and reported instead of hanging.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from fastka.config.diagnostics import Diagnostics
from fastka.config.model import Location

# Limits that keep hostile input from hanging the compiler (Keepalived has a fixed line
# buffer; these are far above anything a real configuration needs).
MAX_EXPANSION_DEPTH = 64  # nested substitutions / ~SEQ / multi-line expansions per line
MAX_LINE_LENGTH = 1 << 20  # characters in one line after substitution
MAX_INCLUDE_DEPTH = 32
DEFAULT_MAX_LINES = 5_000_000  # logical lines produced in one load

_DEF_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.S)
_SUBST_RE = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_]*)((?:[ \t][^}]*)?)\}|\$([A-Za-z_][A-Za-z0-9_]*)(?=[ \t\n]|\Z)"
)
_WS = frozenset(" \t\r\n\f\v")
_has_special = re.compile(r"[\"'{}\\]").search
_has_quoting = re.compile(r"[\"'\\]").search
_INCLUDE_WORDS = {
    "include": frozenset(),
    "includer": frozenset({"readable"}),
    "includem": frozenset({"match"}),
    "includew": frozenset({"wildcard_match"}),
    "includeb": frozenset({"brace_match"}),
    "includea": frozenset({"readable", "match", "wildcard_match", "brace_match"}),
}
INCLUDE_CHECKS = ("readable", "match", "wildcard_match", "brace_match")


class Line:
    """One logical line: its words (quotes removed), its raw text and where it came from.

    ``raw`` is the text of this logical line with quotes and escapes intact, for the
    keywords Keepalived parses "quoted" (scripts with arguments). The grammar nests lines
    into blocks in place (``children``, ``end``), so a Line is also a tree node.
    """

    __slots__ = ("children", "end", "location", "raw", "words")

    def __init__(
        self,
        words: list[str],
        raw: str,
        location: Location,
        children: list[Line] | None = None,
        end: Location | None = None,
    ) -> None:
        self.words = words
        self.raw = raw
        self.location = location
        self.children = children
        self.end = end

    def __repr__(self) -> str:
        return f"Line({self.words!r}, {self.location})"

    @property
    def keyword(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def args(self) -> list[str]:
        return self.words[1:]

    @property
    def raw_args(self) -> str:
        """The raw text after the keyword (quotes and escapes intact)."""
        parts = self.raw.split(None, 1)
        text = parts[1] if len(parts) > 1 else ""
        return text[:-1].rstrip() if text.endswith("{") else text


# --------------------------------------------------------------------------- helpers
def decomment(line: str) -> tuple[str, bool]:
    """Strip a comment and a trailing continuation ``\\``; return (text, continued).

    ``#`` and ``!`` start a comment anywhere outside double quotes; single quotes do not
    protect them (as Keepalived). A backslash protects the next character (``\\#``).
    """
    if "#" not in line and "!" not in line and '"' not in line and "\\" not in line:
        return line, False
    in_dquote = False
    i = 0
    n = len(line)
    end = n
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            in_dquote = not in_dquote
        elif (c == "#" or c == "!") and not in_dquote:
            end = i
            break
        i += 1
    text = line[:end].rstrip()
    # A trailing backslash continues the line -- unless it is itself escaped.
    if text.endswith("\\"):
        trailing = len(text) - len(text.rstrip("\\"))
        if trailing % 2 == 1:
            return text[:-1].rstrip(), True
    return text, False


def brace_expand(pattern: str) -> list[str]:
    """csh-style brace expansion (glibc ``GLOB_BRACE``): ``a{b,c{d,e}}`` -> ``abd abe ac...``.

    An unmatched brace, or braces without a comma at their level (``{x}``), are literal.
    """
    start = -1
    depth = 0
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                alternatives = _split_top_level(pattern[start + 1 : i])
                prefix, suffix = pattern[:start], pattern[i + 1 :]
                if len(alternatives) < 2:
                    # ``{x}``: keep the braces literally and expand what follows.
                    return [
                        prefix + "{" + alt + "}" + rest
                        for alt in alternatives
                        for rest in brace_expand(suffix)
                    ]
                out: list[str] = []
                for alt in alternatives:
                    out.extend(brace_expand(prefix + alt + suffix))
                return out
        i += 1
    return [pattern]


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    last = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[last:i])
            last = i + 1
        i += 1
    parts.append(text[last:])
    return parts


def split_words(text: str) -> tuple[list[tuple[list[str], str]], str | None]:
    """Split a line into logical lines of words at unquoted braces.

    Returns ``([(words, raw), ...], error)``; ``error`` names an unterminated quote.
    Quotes (``"`` or ``'``) group words and are removed (``ab" c "d`` is ONE word
    ``ab c d``); ``\\#``, ``\\!`` and an escaped quote are literal; other backslashes stay.
    """
    if _has_special(text) is None:
        simple = text.split()
        return ([(simple, text)] if simple else []), None
    if _has_quoting(text) is None:
        return _split_braces(text), None
    segments: list[tuple[list[str], str]] = []
    words: list[str] = []
    buf: list[str] = []
    in_word = False
    quote = ""
    seg_start = 0
    error: str | None = None
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt in "#!\"'":
                buf.append(nxt)
            else:
                buf.append(c)
                buf.append(nxt)
            in_word = True
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
            else:
                buf.append(c)
            i += 1
            continue
        if c == '"' or c == "'":
            quote = c
            in_word = True
        elif c in _WS:
            if in_word:
                words.append("".join(buf))
                buf.clear()
                in_word = False
        elif c == "{" or c == "}":
            if in_word:
                words.append("".join(buf))
                buf.clear()
                in_word = False
            if c == "{":
                words.append("{")
                segments.append((words, text[seg_start : i + 1].strip()))
            else:
                if words:
                    segments.append((words, text[seg_start:i].strip()))
                segments.append((["}"], "}"))
            words = []
            seg_start = i + 1
        else:
            buf.append(c)
            in_word = True
        i += 1
    if quote:
        error = text
    if in_word:
        words.append("".join(buf))
    if words:
        segments.append((words, text[seg_start:].strip()))
    return segments, error


def _split_braces(text: str) -> list[tuple[list[str], str]]:
    """:func:`split_words` for a line with braces but no quotes or backslashes."""
    segments: list[tuple[list[str], str]] = []
    words: list[str] = []
    for word in text.replace("{", " { ").replace("}", " } ").split():
        if word == "{":
            words.append(word)
            segments.append((words, " ".join(words)))
            words = []
        elif word == "}":
            if words:
                segments.append((words, " ".join(words)))
                words = []
            segments.append((["}"], "}"))
        else:
            words.append(word)
    if words:
        segments.append((words, " ".join(words)))
    return segments


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "E": "\x1b",
    "e": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}


def split_argv(command: str) -> list[str]:
    """Split a script command as Keepalived does (man keepalived.conf "Quoted strings").

    Unquoted blanks separate arguments; single quotes (and double quotes) protect blanks
    and are removed; escapes ``\\a \\b \\E \\f \\n \\r \\t \\v \\nnn \\xXX \\cC`` are
    resolved and ``\\C`` is a literal C.
    """
    argv: list[str] = []
    buf: list[str] = []
    in_word = False
    quote = ""
    i = 0
    n = len(command)
    while i < n:
        c = command[i]
        if c == "\\" and i + 1 < n:
            i += 1
            e = command[i]
            if e in _ESCAPES:
                buf.append(_ESCAPES[e])
            elif e in "01234567":
                j = i
                while j < n and j < i + 3 and command[j] in "01234567":
                    j += 1
                buf.append(chr(int(command[i:j], 8) & 0xFF))
                i = j - 1
            elif e == "x" and i + 1 < n and command[i + 1] in "0123456789abcdefABCDEF":
                j = i + 1
                while j < n and j < i + 3 and command[j] in "0123456789abcdefABCDEF":
                    j += 1
                buf.append(chr(int(command[i + 1 : j], 16)))
                i = j - 1
            elif e == "c" and i + 1 < n:
                i += 1
                buf.append(chr(ord(command[i]) & 0x1F))
            else:
                buf.append(e)
            in_word = True
            i += 1
            continue
        if quote:
            if c == quote:
                quote = ""
            else:
                buf.append(c)
        elif c == "'" or c == '"':
            quote = c
            in_word = True
        elif c in _WS:
            if in_word:
                argv.append("".join(buf))
                buf.clear()
                in_word = False
        else:
            buf.append(c)
            in_word = True
        i += 1
    if in_word:
        argv.append("".join(buf))
    return argv


def split_script(raw_args: str) -> tuple[str, list[str]]:
    """Split ``"COMMAND ARGS" [user [group]]`` (or an unquoted first word) into the command
    text (quotes and escapes intact, for :func:`split_argv`) and the words that follow."""
    text = raw_args.strip()
    if text.startswith('"'):
        i = 1
        n = len(text)
        while i < n:
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                break
            i += 1
        command = text[1:i]
        rest = text[i + 1 :]
    else:
        parts = text.split(None, 1)
        command = parts[0] if parts else ""
        rest = parts[1] if len(parts) > 1 else ""
    segments, _ = split_words(rest)
    extra = [w for words, _raw in segments for w in words]
    return command, extra


# --------------------------------------------------------------------------- preprocessor
@dataclass(slots=True)
class _Definition:
    value: str  # multi-line values are joined with "\n"
    multiline: bool = False


@dataclass(slots=True)
class _Frame:
    """One file being read."""

    display: str  # the name used in messages
    real: str  # realpath, for include-loop detection
    directory: str  # where relative includes are resolved
    include_check: set[str] = field(default_factory=set)


class _Abort(Exception):
    """Internal: stop reading (line budget exhausted)."""


class Preprocessor:
    """Reads a configuration file (and what it includes) into logical :class:`Line` s.

    ``config_id`` selects ``@ID`` lines (``-i``); ``environ`` serves ``${_ENV VAR}``;
    ``all_config`` is ``-e`` (every include check on); ``max_lines`` bounds the output.
    """

    def __init__(
        self,
        diagnostics: Diagnostics,
        *,
        config_id: str,
        instance: str | None = None,
        environ: Mapping[str, str] | None = None,
        random_seed: int | None = None,
        all_config: bool = False,
        max_lines: int = DEFAULT_MAX_LINES,
        opener: Callable[[str], bytes] | None = None,
        include_root: str | None = None,
    ) -> None:
        self.diag = diagnostics
        self.config_id = config_id
        self.instance = instance if instance is not None else config_id
        self.environ = environ if environ is not None else os.environ
        self.random = random.Random(random_seed)
        self.all_config = all_config
        self.max_lines = max_lines
        self.defs: dict[str, _Definition] = {}
        self.files: list[str] = []
        self.lines: list[Line] = []
        self._stack: list[_Frame] = []
        self._read = opener or _read_bytes
        # Only include files below this directory (the fuzz harness; None = anywhere).
        self.include_root = os.path.abspath(include_root) if include_root else None
        self._work = 0

    # -- entry points
    def read_file(self, path: str) -> list[Line]:
        """Read ``path`` (as given by ``-f``); a missing main file is FILE_NOT_FOUND."""
        with contextlib.suppress(_Abort):
            self._include_file(path, path, None, required=True)
        return self.lines

    def read_string(
        self, text: str, filename: str = "keepalived.conf", directory: str | None = None
    ) -> list[Line]:
        """Read configuration text as if it were the file ``filename``."""
        directory = directory if directory is not None else os.getcwd()
        real = os.path.join(os.path.abspath(directory), filename)
        frame = _Frame(display=filename, real=real, directory=directory, include_check=self._initial_checks())
        self.files.append(real)
        self._stack.append(frame)
        try:
            self._read_text(text, frame)
        except _Abort:
            pass
        finally:
            self._stack.pop()
        return self.lines

    def _initial_checks(self) -> set[str]:
        return set(INCLUDE_CHECKS) if self.all_config else set()

    # -- files
    def _include_file(self, display: str, path: str, location: Location | None, *, required: bool) -> None:
        real = os.path.realpath(path)
        if any(f.real == real for f in self._stack):
            chain = " -> ".join(f.display for f in self._stack)
            self.diag.error(f"Include loop: '{display}' is already being read ({chain})", location)
            return
        if len(self._stack) >= MAX_INCLUDE_DEPTH:
            self.diag.error(
                f"Includes nested too deeply (more than {MAX_INCLUDE_DEPTH}) at '{display}'", location
            )
            return
        if os.path.isdir(path):
            self.diag.error(f"Configuration file '{display}' is a directory - skipping", location)
            return
        if os.path.exists(path) and not os.path.isfile(path):
            # a FIFO or device would block or never end
            self.diag.error(f"Configuration file '{display}' is not a regular file - skipping", location)
            return
        try:
            data = self._read(path)
        except FileNotFoundError:
            if required:
                self.diag.not_found(f"Config files missing '{display}'.", location)
            else:
                self.diag.info(f"Config files missing '{display}'.", location)
            return
        except OSError as exc:
            msg = f"Configuration file '{display}' open problem ({exc.strerror or exc}) - skipping"
            if required:
                self.diag.not_found(msg, location)
            else:
                self.diag.info(msg, location)
            return
        text = data.decode("utf-8", "surrogateescape")
        parent_checks = self._stack[-1].include_check if self._stack else self._initial_checks()
        frame = _Frame(
            display=display,
            real=real,
            directory=os.path.dirname(os.path.abspath(path)),
            include_check=set(parent_checks),
        )
        self.files.append(os.path.abspath(path))
        self._stack.append(frame)
        try:
            self._read_text(text, frame)
        finally:
            self._stack.pop()

    def _read_text(self, text: str, frame: _Frame) -> None:
        display = frame.display
        collecting: tuple[str, list[str], Location] | None = None
        out = self.lines
        new_location = tuple.__new__
        for number, physical in enumerate(text.split("\n"), 1):
            if collecting is None:
                # Fast path: a plain ``keyword args`` line, or one that only opens or
                # closes a block -- most of any real configuration.
                if not physical:
                    continue
                if (
                    "#" not in physical
                    and "!" not in physical
                    and '"' not in physical
                    and "'" not in physical
                    and "\\" not in physical
                    and "$" not in physical
                    and "\0" not in physical
                ):
                    stripped = physical.strip()
                    if not stripped:
                        continue
                    first = stripped[0]
                    if first not in "@~" and not (
                        (first == "i" and stripped.startswith("include"))
                        or (first == "r" and stripped.startswith("random_seed"))
                    ):
                        location = new_location(Location, (display, number))
                        if "{" not in stripped and "}" not in stripped:
                            out.append(Line(stripped.split(), stripped, location))
                        elif stripped == "}":
                            out.append(Line(["}"], "}", location))
                        else:
                            for words, raw in _split_braces(stripped):
                                out.append(Line(words, raw, location))
                        continue
            if "\0" in physical:
                continue  # Keepalived ignores lines with NUL bytes
            if collecting is None and not physical:
                continue
            text_, continued = decomment(physical)
            if collecting is not None:
                name, body, _where = collecting
                stripped = text_.strip()
                if stripped:
                    body.append(stripped)
                if not continued:
                    self.defs[name] = _Definition("\n".join(body), multiline=True)
                    collecting = None
                continue
            stripped = text_.strip()
            if not stripped:
                continue
            location = Location(display, number)
            if stripped[0] == "@":
                kept = self._conditional(stripped)
                if kept is None:
                    continue
                stripped = kept
            if stripped[0] == "$":
                m = _DEF_RE.match(stripped)
                if m is not None:
                    name, value = m.group(1), m.group(2).strip()
                    if continued and not value:
                        collecting = (name, [], location)
                    else:
                        self.defs[name] = _Definition(value)
                    continue
            self._process(stripped, location, 0)
        if collecting is not None:
            name, body, _where = collecting
            self.defs[name] = _Definition("\n".join(body), multiline=True)
        if len(out) > self.max_lines:
            self.diag.fatal(f"Configuration too large: more than {self.max_lines} lines after expansion")
            raise _Abort

    # -- one line
    def _conditional(self, text: str) -> str | None:
        """Apply ``@ID``/``@^ID``: the rest of the line if selected, else None."""
        negate = text.startswith("@^")
        body = text[2:] if negate else text[1:]
        parts = body.split(None, 1)
        if not parts:
            return None
        ident = parts[0]
        rest = parts[1].strip() if len(parts) > 1 else ""
        if (ident == self.config_id) == negate or not rest:
            return None
        return rest

    def _process(self, text: str, location: Location, depth: int) -> None:
        self._work += 1
        if self._work > 4 * self.max_lines:
            self.diag.fatal("Runaway macro expansion: too many lines generated", location)
            raise _Abort
        if depth > MAX_EXPANSION_DEPTH:
            self.diag.error(
                f"Runaway macro expansion: more than {MAX_EXPANSION_DEPTH} nested expansions", location
            )
            return
        if text[0] == "@":
            kept = self._conditional(text)
            if kept is None:
                return
            text = kept
        first = text[0]
        if first == "$":
            m = _DEF_RE.match(text)
            if m is not None:
                self.defs[m.group(1)] = _Definition(m.group(2).strip())
                return
        elif first == "~" and (text.startswith("~SEQ") or text.startswith("~LST")):
            self._replicate(text, location, depth)
            return
        if "$" in text:
            expanded = self._substitute(text, location)
            if expanded is None:
                return
            if expanded != text:
                for part in expanded.split("\n"):
                    part_text, _cont = decomment(part)
                    part_text = part_text.strip()
                    if part_text:
                        self._process(part_text, location, depth + 1)
                return
        if first == "i" and text.startswith("include"):
            word = text.split(None, 1)[0]
            if word in _INCLUDE_WORDS:
                self._include(word, text, location)
                return
            if word == "include_check":
                self._set_include_check(text, location)
        elif first == "r" and text.startswith("random_seed"):
            parts = text.split()
            if len(parts) == 2 and parts[1].isdigit():
                self.random.seed(int(parts[1]))
        self._emit(text, location)

    def _emit(self, text: str, location: Location) -> None:
        segments, error = split_words(text)
        if error is not None:
            self.diag.error(f"Unmatched quote: '{error}'", location)
        lines = self.lines
        for words, raw in segments:
            lines.append(Line(words, raw, location))
        if len(lines) > self.max_lines:
            self.diag.fatal(
                f"Configuration too large: more than {self.max_lines} lines after expansion", location
            )
            raise _Abort

    # -- substitution
    def _substitute(self, text: str, location: Location) -> str | None:
        """One pass of ``$NAME``/``${NAME}`` substitution (the caller recurses)."""
        defs = self.defs

        def replace(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(3)
            args = (m.group(2) or "").strip()
            if name in defs and not args:
                return defs[name].value
            if name.startswith("_"):
                value = self._predefined(name, args, m.group(0), location)
                if value is not None:
                    return value
            return m.group(0)

        out = _SUBST_RE.sub(replace, text)
        if len(out) > MAX_LINE_LENGTH:
            self.diag.error(
                f"Parameter substitution on line '{text[:80]}' would exceed maximum line length", location
            )
            return None
        return out

    def _predefined(self, name: str, args: str, original: str, location: Location) -> str | None:
        if name == "_PWD" and not args:
            return self._stack[-1].directory if self._stack else os.getcwd()
        if name == "_INSTANCE" and not args:
            return self.instance
        if name == "_HASH" and not args:
            return "\\#"
        if name == "_BANG" and not args:
            return "\\!"
        if name == "_ENV":
            var = args.split()
            if len(var) != 1:
                self.diag.error(f"Invalid ${{_ENV}} specification '{original}'", location)
                return ""
            return self.environ.get(var[0], "")
        if name == "_RANDOM":
            bounds = args.split()
            if len(bounds) > 2 or not all(b.isdigit() for b in bounds):
                self.diag.error(f"Too many parameters or extra text for ${{_RANDOM {args}}}", location)
                return ""
            lo = int(bounds[0]) if bounds else 0
            hi = int(bounds[1]) if len(bounds) > 1 else 32767
            if hi < lo:
                lo, hi = hi, lo
            return str(self.random.randint(lo, hi))
        return None

    # -- ~SEQ / ~LST
    def _replicate(self, text: str, location: Location, depth: int) -> None:
        kind = "~SEQx" if text.startswith("~SEQx") else text[:4]
        open_at = len(kind)
        if text[open_at : open_at + 1] != "(":
            self.diag.error(f"Invalid {kind[:4]} specification '{text}'", location)
            return
        close_at = _matching_paren(text, open_at)
        if close_at < 0:
            self.diag.error(f"Invalid {kind[:4]} specification '{text}'", location)
            return
        spec = text[open_at + 1 : close_at]
        rest = text[close_at + 1 :].strip()
        bindings = (
            self._seq_bindings(kind, spec, text, location)
            if kind != "~LST"
            else self._lst_bindings(spec, text, location)
        )
        if bindings is None or not rest:
            return
        saved = {name: self.defs.get(name) for name in bindings[0]} if bindings else {}
        try:
            for values in bindings[1]:
                for name, value in zip(bindings[0], values, strict=True):
                    self.defs[name] = _Definition(value)
                self._process(rest, location, depth + 1)
        finally:
            for name, old in saved.items():
                if old is None:
                    self.defs.pop(name, None)
                else:
                    self.defs[name] = old

    def _seq_bindings(
        self, kind: str, spec: str, text: str, location: Location
    ) -> tuple[list[str], Iterator[tuple[str, ...]]] | None:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) < 2 or len(parts) > 4 or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", parts[0]):
            self.diag.error(f"Invalid ~SEQ specification '{text}'", location)
            return None
        try:
            nums = [int(p, 0) for p in parts[1:]]
        except ValueError:
            self.diag.error(f"Invalid ~SEQ values '{text}'", location)
            return None
        if len(nums) == 1:
            end = nums[0]
            start = 1 if end > 0 else -1
            step = 1 if end >= start else -1
        elif len(nums) == 2:
            start, end = nums
            step = 1 if end >= start else -1
        else:
            start, step, end = nums
        if step == 0 or (step > 0 and start > end) or (step < 0 and start < end):
            self.diag.error(f"Invalid ~SEQ values '{text}'", location)
            return None
        hexa = kind == "~SEQx"
        if hexa and (start < 0 or end < 0):
            self.diag.error(f"~SEQx is only valid for positive numbers '{text}'", location)
            return None
        count = (end - start) // step + 1
        if count > self.max_lines:
            self.diag.error(f"~SEQ produces too many lines ({count}) '{text}'", location)
            return None

        def values() -> Iterator[tuple[str, ...]]:
            for v in range(start, end + (1 if step > 0 else -1), step):
                yield (format(v, "x") if hexa else str(v),)

        return [parts[0]], values()

    def _lst_bindings(
        self, spec: str, text: str, location: Location
    ) -> tuple[list[str], Iterator[tuple[str, ...]]] | None:
        items = [p.strip() for p in _split_top_level(spec)]
        if len(items) < 2:
            self.diag.error(f"Invalid ~LST specification '{text}'", location)
            return None

        def unbrace(item: str) -> list[str]:
            if item.startswith("{") and item.endswith("}"):
                return [p.strip() for p in item[1:-1].split(",")]
            return [item]

        names = unbrace(items[0])
        if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names):
            self.diag.error(f"Invalid ~LST specification '{text}'", location)
            return None
        rows: list[tuple[str, ...]] = []
        for item in items[1:]:
            row = unbrace(item)
            if len(row) != len(names):
                self.diag.error(f"Invalid ~LST specification '{text}'", location)
                return None
            rows.append(tuple(row))
        return names, iter(rows)

    # -- include
    def _set_include_check(self, text: str, location: Location) -> None:
        words = text.split()[1:]
        checks = self._stack[-1].include_check if self._stack else set()
        if not words:
            checks.update(INCLUDE_CHECKS)
            return
        for word in words:
            sign = ""
            if word[:1] in "+-":
                sign, word = word[0], word[1:]
            if word not in INCLUDE_CHECKS:
                continue  # reported by the grammar (global_defs include_check)
            if sign == "-":
                checks.discard(word)
            else:
                checks.add(word)

    def _include(self, word: str, text: str, location: Location) -> None:
        # Not split_words(): the pattern's csh braces are not block braces.
        parts = text.split(None, 1)
        pattern = parts[1].strip() if len(parts) > 1 else ""
        if len(pattern) >= 2 and pattern[0] == pattern[-1] and pattern[0] in "\"'":
            pattern = pattern[1:-1]
        if not pattern or (pattern[0] not in "\"'" and len(pattern.split()) != 1):
            self.diag.error(f"{word} needs exactly one file name or pattern", location, word)
            return
        frame = self._stack[-1]
        checks = frame.include_check | _INCLUDE_WORDS[word]
        alternatives = brace_expand(pattern)
        for alt in alternatives:
            full = alt if os.path.isabs(alt) else os.path.join(frame.directory, alt)
            if self.include_root is not None and not os.path.abspath(full).startswith(
                self.include_root + os.sep
            ):
                self.diag.error(f"Include '{alt}' is outside {self.include_root} - skipping", location)
                continue
            wildcard = glob.has_magic(alt)
            matches = sorted(glob.glob(full)) if wildcard else ([full] if os.path.lexists(full) else [])
            if not matches:
                if wildcard:
                    required = "wildcard_match" in checks
                    message = f"No config files matched '{alt}'."
                else:
                    required = bool(checks & {"match", "readable"})
                    message = f"Config files missing '{alt}'."
                if len(alternatives) > 1 and "brace_match" in checks:
                    required = True
                if required:
                    self.diag.not_found(message, location)
                elif not wildcard:
                    # plain ``include`` never fails on a missing file (backward compatibility)
                    self.diag.info(message, location)
                continue
            for match in matches:
                display = match if os.path.isabs(alt) else os.path.relpath(match, frame.directory)
                self._include_file(display, match, location, required="readable" in checks)


def _matching_paren(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
