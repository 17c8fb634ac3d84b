"""Keyword tables: for every block, which keywords exist and how each is read.

The tables are declarative: one :class:`Keyword` per keyword with its handler (built by
small factories such as ``uint("priority", 1, 255)``), its priority in the catalogue
(P0/P1/P2), whether fastka acts on it (``supported``), and deprecation/alias notes. Block
keywords carry the :class:`Block` of their sub-keywords. :func:`walk` applies a table to
the nodes of a block; unknown keywords are reported with a suggestion and skipped
(with their sub-block), exactly as Keepalived skips them.

Values are parsed as Keepalived parses them (catalogue "Parameter conventions"):
``<BOOL>`` is ``on|off|true|false|yes|no`` (no argument = true), ``<TIMER>`` is seconds
with up to 6 decimals, integers are decimal unless stated. A bad value is reported with
the keyword, the value and what was expected, and the keyword is ignored (the default
stays), so the rest of the file is still checked.

Handlers only record what the file says; defaults that depend on other keywords, and
all cross-references, are resolved afterwards in :mod:`fastka.config.compile`.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastka.config import model as m
from fastka.config.diagnostics import Diagnostics
from fastka.config.ipsyntax import EntryParser, parse_ip
from fastka.config.lexer import Line, split_argv, split_script
from fastka.config.model import Location

BOOL_WORDS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
TIMER_MAX = 4294.967295  # UINT32_MAX microseconds: Keepalived's default timer limit
UINT_MAX = 0xFFFFFFFF
INT_MAX = 0x7FFFFFFF


# --------------------------------------------------------------------------- tree
# The tree node is the preprocessor's Line: ``children`` is its block (None if it has none).
Node = Line


def build_tree(lines: Iterable[Line], diag: Diagnostics) -> list[Node]:
    """Nest logical lines into blocks at ``{``/``}``; report unbalanced braces."""
    root: list[Node] = []
    stack: list[tuple[list[Node], Node | None]] = [(root, None)]
    for line in lines:
        words = line.words
        loc = line.location
        if len(words) == 1 and words[0] == "}":
            if len(stack) == 1:
                diag.error("Extra '}' found", loc)
                continue
            _children, owner = stack.pop()
            if owner is not None:
                owner.end = loc
            continue
        if words[-1] == "{":
            words.pop()
            if not words:
                current = stack[-1][0]
                prev = current[-1] if current else None
                if prev is not None and prev.children is None:
                    prev.children = []
                    stack.append((prev.children, prev))
                    continue
                diag.warning("Unexpected '{' - ignoring", loc)
            children: list[Node] = []
            line.children = children
            stack[-1][0].append(line)
            stack.append((children, line))
        else:
            stack[-1][0].append(line)
    if len(stack) > 1:
        diag.error(f"There are {len(stack) - 1} missing '}}'s or extra '{{'s")
    return root


# --------------------------------------------------------------------------- context
class Ctx:
    """State shared by the handlers while one configuration is compiled."""

    def __init__(self, diag: Diagnostics, config: m.Config, entries: EntryParser) -> None:
        self.diag = diag
        self.config = config
        self.entries = entries
        self.stack: list[Any] = []
        # id(obj) -> {field: location of the keyword that set it}
        self._seen: dict[int, dict[str, Location]] = {}
        self._keep: list[object] = []  # keeps ids unique while we hold them
        # {field: location} of the objects on ``stack``
        self.frames: list[dict[str, Location]] = []
        self.ends: dict[int, Location] = {}
        self.rule_preference = 16384  # Keepalived numbers rules without one downwards
        self._extra: dict[int, dict[str, Any]] = {}

    def put(self, obj: object, key: str, value: Any) -> None:
        """Keep a value about ``obj`` that has no model field (resolved in compile)."""
        self._keep.append(obj)
        self._extra.setdefault(id(obj), {})[key] = value

    def get(self, obj: object, key: str, default: Any = None) -> Any:
        return self._extra.get(id(obj), {}).get(key, default)

    @property
    def obj(self) -> Any:
        return self.stack[-1]

    def seen(self, obj: object) -> dict[str, Location]:
        """{field: location} of what the configuration set on ``obj`` (live dict)."""
        key = id(obj)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = {}
            self._keep.append(obj)
        return seen

    def mark(self, obj: object, name: str, loc: Location) -> None:
        self.seen(obj)[name] = loc

    def was_set(self, obj: object, name: str) -> bool:
        seen = self._seen.get(id(obj))
        return seen is not None and name in seen

    def where(self, obj: object, name: str) -> Location | None:
        seen = self._seen.get(id(obj))
        return seen.get(name) if seen else None

    def set(self, name: str, value: object, node: Node) -> None:
        """Set a field of the current object and remember where the config set it."""
        setattr(self.stack[-1], name, value)
        self.frames[-1][name] = node.location

    def push(self, obj: object) -> None:
        self.stack.append(obj)
        self.frames.append(self.seen(obj))

    def pop(self) -> None:
        self.stack.pop()
        self.frames.pop()

    def child(self, obj: object, node: Node, block: Block) -> None:
        """Walk ``node``'s block with ``obj`` as the current object."""
        if node.end is not None:
            self.ends[id(obj)] = node.end
        self.push(obj)
        try:
            walk(self, node.children or [], block)
        finally:
            self.pop()

    def end_of(self, obj: object) -> Location | None:
        return self.ends.get(id(obj))


Handler = Callable[[Ctx, Node], None]


@dataclass(frozen=True, slots=True)
class Keyword:
    """One keyword of a block.

    ``block`` is ``"none"`` (a plain keyword), ``"keywords"`` (its ``{}`` holds keywords of
    ``sub``) or ``"list"`` (its ``{}`` holds entries the handler reads itself).
    """

    name: str
    handler: Handler
    prio: str = "P1"
    block: str = "none"
    sub: Block | None = None
    supported: bool = True
    deprecated: str | None = None  # the message to print when it is used
    since: str | None = None  # first Keepalived release that has it (if after 2.2.7)

    @property
    def simple(self) -> bool:
        """A plain, supported, current keyword: :func:`walk` just calls the handler."""
        return self.block == "none" and self.supported and self.deprecated is None


class Block:
    def __init__(self, name: str) -> None:
        self.name = name
        self.keywords: dict[str, Keyword] = {}
        self.simple: set[str] = set()  # names of the keywords that are Keyword.simple

    def add(self, *keywords: Keyword) -> Block:
        for kw in keywords:
            self.keywords[kw.name] = kw
            if kw.simple:
                self.simple.add(kw.name)
            else:
                self.simple.discard(kw.name)
        return self

    def suggest(self, word: str) -> str | None:
        matches = difflib.get_close_matches(word, self.keywords, n=1, cutoff=0.75)
        return matches[0] if matches else None


def walk(ctx: Ctx, nodes: list[Node], block: Block) -> None:
    table = block.keywords
    simple = block.simple
    for node in nodes:
        words = node.words
        if not words:
            continue
        name = words[0]
        if name in simple and node.children is None:
            table[name].handler(ctx, node)
            continue
        kw = table.get(name)
        diag = ctx.diag
        loc = node.location
        if kw is None:
            diag.warning(_unknown(block, name), loc, name)
            continue
        if kw.deprecated is not None:
            diag.warning(kw.deprecated, loc, name)
        if not kw.supported:
            diag.info(f"'{name}' is recognised but not supported yet by fastka - ignored", loc, name)
        if kw.block == "none":
            if node.children is not None:
                diag.warning(f"Unexpected '{{' after {name} - ignoring the block", loc, name)
        elif node.children is None:
            diag.error(f"'{{' missing from beginning of block {name}", loc, name)
            continue
        kw.handler(ctx, node)


def _unknown(block: Block, name: str) -> str:
    """``Unknown keyword 'x'``, with the nearest keyword of this block for a misspelling,
    or the blocks where ``x`` does belong."""
    message = f"Unknown keyword '{name}'"
    hint = block.suggest(name)
    if hint is not None:
        return f"{message} - did you mean '{hint}'?"
    homes = list(dict.fromkeys(b for b, kw in _keyword_homes() if kw == name))
    if len(homes) > 3:
        return f"{message} - it belongs in {', '.join(homes[:3])} ..."
    if homes:
        return f"{message} - it belongs in {' or '.join(homes)}"
    return message


_HOMES: list[tuple[str, str]] = []


def _keyword_homes() -> list[tuple[str, str]]:
    if not _HOMES:
        _HOMES.extend((k.block, k.name) for k in all_keywords())
    return _HOMES


# --------------------------------------------------------------------------- values
def _bad_number(ctx: Ctx, node: Node, value: str, why: str) -> None:
    ctx.diag.error(why, node.location, node.keyword)
    ctx.diag.error(f"{node.keyword} '{value}' is invalid", node.location, node.keyword)


def arg(ctx: Ctx, node: Node, index: int, expected: str) -> str | None:
    """Word ``index`` of the line (1 = first argument), or report it missing."""
    if index < len(node.words):
        return node.words[index]
    ctx.diag.error(
        f"{node.keyword} is missing a parameter - expected {expected}", node.location, node.keyword
    )
    return None


def read_uint(
    ctx: Ctx, node: Node, value: str, lo: int = 0, hi: int = UINT_MAX, base: int = 10
) -> int | None:
    if base == 10 and value.isascii() and value.isdigit():
        number = int(value)
        if lo <= number <= hi:
            return number
    try:
        if not re.fullmatch(r"[+]?[0-9A-Fa-fxXoO_]+" if base == 0 else r"[+]?[0-9]+", value):
            raise ValueError
        number = int(value, base)
    except ValueError:
        _bad_number(ctx, node, value, f"invalid number '{value}'")
        return None
    if not lo <= number <= hi:
        _bad_number(ctx, node, value, f"number '{value}' outside range [{lo}, {hi}]")
        return None
    return number


def read_int(ctx: Ctx, node: Node, value: str, lo: int, hi: int) -> int | None:
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        _bad_number(ctx, node, value, f"invalid number '{value}'")
        return None
    number = int(value)
    if not lo <= number <= hi:
        _bad_number(ctx, node, value, f"number '{value}' outside range [{lo}, {hi}]")
        return None
    return number


def _fmt_timer(value: float) -> str:
    return f"{value:.6f}"


def read_timer(ctx: Ctx, node: Node, value: str, lo: float = 0.000001, hi: float = TIMER_MAX) -> float | None:
    """Seconds with up to 6 decimals (Keepalived keeps µs)."""
    if value.isascii() and value.isdigit():
        number = float(value)
        if lo <= number <= hi:
            return number
    if not re.fullmatch(r"[+]?([0-9]+\.?[0-9]*|\.[0-9]+)", value):
        _bad_number(ctx, node, value, f"invalid number '{value}'")
        return None
    if "." in value and len(value.split(".", 1)[1]) > 6:
        _bad_number(ctx, node, value, f"number '{value}' has too many decimal places")
        return None
    number = round(float(value), 6)
    if not lo <= number <= hi:
        _bad_number(ctx, node, value, f"number '{value}' outside range [{_fmt_timer(lo)}, {_fmt_timer(hi)}]")
        return None
    return number


def read_bool(ctx: Ctx, node: Node, index: int = 1) -> bool | None:
    """``[<BOOL>]``: missing = true; anything else than on/off/true/false/yes/no = error."""
    if index >= len(node.words):
        return True
    value = node.words[index]
    if value in BOOL_WORDS:
        return BOOL_WORDS[value]
    ctx.diag.error(
        f"{node.keyword} '{value}' is invalid - expected on|off|true|false|yes|no",
        node.location,
        node.keyword,
    )
    return None


def read_ip(ctx: Ctx, node: Node, value: str, what: str = "IP address") -> m.IPAddress | None:
    address = parse_ip(value)
    if address is None:
        ctx.diag.error(
            f"{node.keyword} '{value}' is invalid - expected an {what}", node.location, node.keyword
        )
    return address


def read_choice(
    ctx: Ctx, node: Node, value: str, choices: Iterable[str], *, fold: bool = False
) -> str | None:
    options = list(choices)
    key = value.upper() if fold else value
    for choice in options:
        if (choice.upper() if fold else choice) == key:
            return choice
    ctx.diag.error(
        f"{node.keyword} '{value}' is invalid - expected one of {', '.join(options)}",
        node.location,
        node.keyword,
    )
    return None


def read_weight(ctx: Ctx, node: Node, start: int, lo: int, hi: int) -> tuple[int, bool] | None:
    """``weight N [reverse|noreverse]`` starting at word ``start`` (the number)."""
    value = arg(ctx, node, start, f"a weight {lo}..{hi}")
    if value is None:
        return None
    weight = read_int(ctx, node, value, lo, hi)
    if weight is None:
        return None
    reverse = False
    if start + 1 < len(node.words):
        flag = node.words[start + 1]
        if flag in ("reverse", "noreverse"):
            reverse = flag == "reverse"
        else:
            ctx.diag.error(f"{node.keyword}: unknown weight option '{flag}' - ignoring", node.location)
    return weight, reverse


def extra_args(ctx: Ctx, node: Node, allowed: int) -> None:
    """Note (without failing the config) words beyond what the keyword takes."""
    if len(node.words) > allowed + 1:
        extra = " ".join(node.words[allowed + 1 :])
        ctx.diag.info(f"{node.keyword}: ignoring extra parameter(s) '{extra}'", node.location, node.keyword)


def read_script(
    ctx: Ctx, node: Node, *, user_allowed: bool = True, whole_line: bool = False
) -> m.Script | None:
    """``"CMD ARGS" [user [:][group]]`` (or ``CMD`` unquoted). ``whole_line``: every word
    is part of the command (``vrrp_script script``, ``misc_path``)."""
    raw = node.raw_args
    if not raw.strip():
        ctx.diag.error(
            f"{node.keyword} is missing a parameter - expected a script", node.location, node.keyword
        )
        return None
    extra: list[str] = []
    if whole_line and not raw.lstrip().startswith('"'):
        command = raw.strip()
    else:
        command, extra = split_script(raw)
    argv = split_argv(command)
    if not argv:
        ctx.diag.error(f"{node.keyword}: empty script", node.location, node.keyword)
        return None
    script = m.Script(argv=tuple(argv), text=command, location=node.location)
    if extra:
        if not user_allowed:
            ctx.diag.info(f"{node.keyword}: ignoring extra parameter(s) '{' '.join(extra)}'", node.location)
        else:
            _read_user(ctx, node, script, extra)
    return script


def _read_user(ctx: Ctx, node: Node, script: m.Script, words: list[str]) -> None:
    user = words[0]
    group: str | None = None
    if ":" in user:
        user, _, group = user.partition(":")
        script.supplementary_groups = True
    if len(words) > 1:
        g = words[1]
        if g.startswith(":"):
            script.supplementary_groups = True
            g = g[1:]
        group = g or group
    if len(words) > 2:
        ctx.diag.info(f"{node.keyword}: ignoring extra parameter(s) '{' '.join(words[2:])}'", node.location)
    script.user = user or None
    script.group = group or None


# --------------------------------------------------------------------------- factories
def set_str(name: str, expected: str = "a string") -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        words = node.words
        if len(words) == 2:  # fast path: exactly one value
            setattr(ctx.stack[-1], name, words[1])
            ctx.frames[-1][name] = node.location
            return
        value = arg(ctx, node, 1, expected)
        if value is not None:
            ctx.set(name, value, node)
            extra_args(ctx, node, 1)

    return handler


def set_opt_str(name: str, default: str = "") -> Handler:
    """``keyword [VALUE]``: the value, or ``default`` when absent."""

    def handler(ctx: Ctx, node: Node) -> None:
        ctx.set(name, node.words[1] if len(node.words) > 1 else default, node)
        extra_args(ctx, node, 1)

    return handler


def set_flag(name: str, value: bool = True) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        setattr(ctx.stack[-1], name, value)
        ctx.frames[-1][name] = node.location
        if len(node.words) > 1:
            extra_args(ctx, node, 0)

    return handler


def set_bool(name: str) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        value = read_bool(ctx, node)
        if value is not None:
            ctx.set(name, value, node)
            extra_args(ctx, node, 1)

    return handler


def set_uint(name: str, lo: int = 0, hi: int = UINT_MAX, base: int = 10) -> Handler:
    expected = f"a number {lo}..{hi}"

    def handler(ctx: Ctx, node: Node) -> None:
        words = node.words
        if len(words) == 2 and base == 10:  # fast path: one plain decimal in range
            word = words[1]
            if word.isascii() and word.isdigit() and lo <= (quick := int(word)) <= hi:
                setattr(ctx.stack[-1], name, quick)
                ctx.frames[-1][name] = node.location
                return
        value = arg(ctx, node, 1, expected)
        if value is not None:
            number = read_uint(ctx, node, value, lo, hi, base)
            if number is not None:
                ctx.set(name, number, node)
                extra_args(ctx, node, 1)

    return handler


def set_int(name: str, lo: int, hi: int) -> Handler:
    expected = f"a number {lo}..{hi}"

    def handler(ctx: Ctx, node: Node) -> None:
        value = arg(ctx, node, 1, expected)
        if value is not None:
            number = read_int(ctx, node, value, lo, hi)
            if number is not None:
                ctx.set(name, number, node)
                extra_args(ctx, node, 1)

    return handler


def set_timer(name: str, lo: float = 0.000001, hi: float = TIMER_MAX) -> Handler:
    expected = f"a time in seconds {_fmt_timer(lo)}..{_fmt_timer(hi)}"

    def handler(ctx: Ctx, node: Node) -> None:
        words = node.words
        if len(words) == 2:  # fast path: whole seconds in range
            word = words[1]
            if word.isascii() and word.isdigit() and lo <= (seconds := float(word)) <= hi:
                setattr(ctx.stack[-1], name, seconds)
                ctx.frames[-1][name] = node.location
                return
        value = arg(ctx, node, 1, expected)
        if value is not None:
            number = read_timer(ctx, node, value, lo, hi)
            if number is not None:
                ctx.set(name, number, node)
                extra_args(ctx, node, 1)

    return handler


def set_ip(name: str, version: int | None = None) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        value = arg(ctx, node, 1, "an IP address")
        if value is None:
            return
        address = read_ip(
            ctx, node, value, {4: "IPv4 address", 6: "IPv6 address"}.get(version or 0, "IP address")
        )
        if address is None:
            return
        if version is not None and address.version != version:
            ctx.diag.error(
                f"{node.keyword} '{value}' is invalid - expected an IPv{version} address", node.location
            )
            return
        ctx.set(name, address, node)
        extra_args(ctx, node, 1)

    return handler


def set_choice(name: str, choices: Iterable[str], *, fold: bool = False) -> Handler:
    options = list(choices)

    def handler(ctx: Ctx, node: Node) -> None:
        value = arg(ctx, node, 1, "one of " + ", ".join(options))
        if value is not None:
            choice = read_choice(ctx, node, value, options, fold=fold)
            if choice is not None:
                ctx.set(name, choice, node)
                extra_args(ctx, node, 1)

    return handler


def set_script(name: str, *, whole_line: bool = False, user_allowed: bool = True) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        script = read_script(ctx, node, whole_line=whole_line, user_allowed=user_allowed)
        if script is not None:
            ctx.set(name, script, node)

    return handler


def ignore(ctx: Ctx, node: Node) -> None:
    """Accepted and ignored (documented no-ops such as ``hashed``)."""


def K(
    name: str,
    handler: Handler,
    prio: str = "P1",
    *,
    supported: bool = True,
    deprecated: str | None = None,
    since: str | None = None,
) -> Keyword:
    return Keyword(name, handler, prio, "none", None, supported, deprecated, since)


def KB(name: str, handler: Handler, sub: Block, prio: str = "P1", *, supported: bool = True) -> Keyword:
    """A keyword whose block holds keywords."""
    return Keyword(name, handler, prio, "keywords", sub, supported)


def KL(name: str, handler: Handler, prio: str = "P1", *, supported: bool = True) -> Keyword:
    """A keyword whose block holds entries (one per line)."""
    return Keyword(name, handler, prio, "list", None, supported)


def alias(kw: Keyword, name: str, *, deprecated: str | None = None) -> Keyword:
    return Keyword(name, kw.handler, kw.prio, kw.block, kw.sub, kw.supported, deprecated, kw.since)


def entries(node: Node) -> list[Node]:
    """The entries of a list block (nested blocks inside are not entries)."""
    return node.children or []


def entry_words(ctx: Ctx, node: Node) -> Iterable[Node]:
    for child in entries(node):
        if child.children is not None:
            ctx.diag.warning(f"Unexpected '{{' in {node.keyword} - ignoring", child.location)
            continue
        if child.words:
            yield child


# --------------------------------------------------------------------------- shared handlers
def notify_fifo(name: str) -> Handler:
    """``notify_fifo FIFO [user [group]]``."""

    def handler(ctx: Ctx, node: Node) -> None:
        path = arg(ctx, node, 1, "a FIFO path")
        if path is None:
            return
        fifo = getattr(ctx.obj, name) or m.NotifyFifo(path=path, location=node.location)
        fifo.path = path
        fifo.user = node.words[2] if len(node.words) > 2 else None
        fifo.group = node.words[3] if len(node.words) > 3 else None
        ctx.set(name, fifo, node)

    return handler


def notify_fifo_script(name: str) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        script = read_script(ctx, node)
        if script is None:
            return
        fifo = getattr(ctx.obj, name)
        if fifo is None:
            fifo = m.NotifyFifo(path="", location=node.location)
            setattr(ctx.obj, name, fifo)
        fifo.script = script
        ctx.mark(ctx.obj, name + "_script", node.location)

    return handler


def track_interface_block(ctx: Ctx, node: Node) -> None:
    out: list[m.TrackInterface] = ctx.obj.track_interface
    for entry in entry_words(ctx, node):
        item = m.TrackInterface(name=entry.words[0], location=entry.location)
        if len(entry.words) > 1:
            if entry.words[1] != "weight":
                ctx.diag.error(
                    f"Unknown track_interface option '{entry.words[1]}' - ignoring", entry.location
                )
                continue
            parsed = read_weight(ctx, entry, 2, -253, 253)
            if parsed is None:
                continue
            item.weight, item.weight_reverse = parsed
        out.append(item)
    ctx.mark(ctx.obj, "track_interface", node.location)


def track_ref_block(name: str, lo: int, hi: int) -> Handler:
    """``track_script``/``track_file``/``track_process``/``track_bfd`` entries:
    ``NAME [weight W [reverse|noreverse]]`` (weight resolved in compile)."""

    def handler(ctx: Ctx, node: Node) -> None:
        out: list[m.TrackRef] = getattr(ctx.obj, name)
        for entry in entry_words(ctx, node):
            ref = m.TrackRef(name=entry.words[0], location=entry.location)
            if len(entry.words) > 1:
                if entry.words[1] != "weight":
                    ctx.diag.error(f"Unknown {name} option '{entry.words[1]}' - ignoring", entry.location)
                    continue
                value = arg(ctx, entry, 2, f"a weight {lo}..{hi}")
                if value is None:
                    continue
                # track_script accepts +-254 with a warning (coerced to +-253).
                weight = read_int(
                    ctx,
                    entry,
                    value,
                    lo - 1 if name == "track_script" else lo,
                    hi + 1 if name == "track_script" else hi,
                )
                if weight is None:
                    continue
                if name == "track_script" and abs(weight) > hi:
                    ctx.diag.warning(
                        f"{name} {ref.name} weight {weight} out of range - setting {hi if weight > 0 else lo}",
                        entry.location,
                    )
                    weight = hi if weight > 0 else lo
                ref.weight = weight
                ctx.mark(ref, "weight", entry.location)
                if len(entry.words) > 3:
                    flag = entry.words[3]
                    if flag in ("reverse", "noreverse"):
                        ref.weight_reverse = flag == "reverse"
                        ctx.mark(ref, "weight_reverse", entry.location)
                    else:
                        ctx.diag.error(f"Unknown {name} weight option '{flag}' - ignoring", entry.location)
            out.append(ref)
        ctx.mark(ctx.obj, name, node.location)

    return handler


def name_list_block(name: str) -> Handler:
    """A block of words (``group { VI_1 VI_2 }``, ``notification_email``, ``interfaces``)."""

    def handler(ctx: Ctx, node: Node) -> None:
        out: list[str] = getattr(ctx.obj, name)
        for entry in entry_words(ctx, node):
            out.extend(entry.words)
        ctx.mark(ctx.obj, name, node.location)

    return handler


def address_block(name: str) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        out: list[m.IpAddress] = getattr(ctx.obj, name)
        for entry in entry_words(ctx, node):
            address = ctx.entries.address(entry.words, entry.location)
            if address is not None:
                out.append(address)
        ctx.mark(ctx.obj, name, node.location)

    return handler


def route_block(name: str) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        out: list[m.Route] = getattr(ctx.obj, name)
        for entry in entry_words(ctx, node):
            route = ctx.entries.route(entry.words, entry.location)
            if route is None:
                continue
            if route.dev is None and not route.no_track and not any(h.dev for h in route.nexthops):
                # Keepalived 2.2.7 cannot track a route without an interface (fixed in 2.3.2).
                ctx.diag.warning(
                    f"Warning - cannot track route {route.dst} with no interface specified, not tracking",
                    entry.location,
                )
            out.append(route)
        ctx.mark(ctx.obj, name, node.location)

    return handler


def rule_block(name: str) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        out: list[m.Rule] = getattr(ctx.obj, name)
        for entry in entry_words(ctx, node):
            rule = ctx.entries.rule(entry.words, entry.location)
            if rule is None:
                continue
            if rule.preference is None:
                rule.preference = ctx.rule_preference
                ctx.diag.warning(
                    f"Rule has no preference specified - setting to {ctx.rule_preference}. "
                    "This is probably not what you want.",
                    entry.location,
                )
                ctx.rule_preference -= 1
            out.append(rule)
        ctx.mark(ctx.obj, name, node.location)

    return handler


# --------------------------------------------------------------------------- blocks
# Created empty first so that tables can refer to each other; filled below.
ROOT = Block("root")
GLOBAL_DEFS = Block("global_defs")
VRRP_SCRIPT = Block("vrrp_script")
TRACK_FILE = Block("track_file")
TRACK_PROCESS = Block("vrrp_track_process")
SYNC_GROUP = Block("vrrp_sync_group")
GARP_GROUP = Block("garp_group")
VRRP_INSTANCE = Block("vrrp_instance")
AUTHENTICATION = Block("authentication")
AUTH_HMAC = Block("auth_hmac")
TRACK_GROUP = Block("track_group")
BFD_INSTANCE = Block("bfd_instance")
SSL = Block("SSL")
VIRTUAL_SERVER = Block("virtual_server")
REAL_SERVER = Block("real_server")
SORRY_SERVER = Block("sorry_server")
URL = Block("url")
SMTP_HOST = Block("host")
CHECKERS: dict[str, Block] = {name: Block(name) for name in m.CHECKER_TYPES}


# --------------------------------------------------------------------------- block handlers
def _named(ctx: Ctx, node: Node, what: str) -> str | None:
    name = arg(ctx, node, 1, f"a {what} name")
    if name is not None:
        extra_args(ctx, node, 1)
    return name


def on_global(handler: Handler) -> Handler:
    """A root-level keyword stored in GlobalDefs (as Keepalived keeps it in global_data)."""

    def wrapped(ctx: Ctx, node: Node) -> None:
        ctx.push(ctx.config.global_defs)
        try:
            handler(ctx, node)
        finally:
            ctx.pop()

    return wrapped


def h_global_defs(ctx: Ctx, node: Node) -> None:
    ctx.child(ctx.config.global_defs, node, GLOBAL_DEFS)


def h_vrrp_instance(ctx: Ctx, node: Node) -> None:
    name = _named(ctx, node, "vrrp_instance")
    if name is None:
        return
    inst = m.VrrpInstance(name=name, virtual_router_id=0, location=node.location)
    ctx.child(inst, node, VRRP_INSTANCE)
    if name in ctx.config.vrrp_instances:
        ctx.diag.error(
            f"vrrp_instance {name} is defined more than once - ignoring this definition", node.location
        )
        return
    ctx.config.vrrp_instances[name] = inst


def h_vrrp_script(ctx: Ctx, node: Node) -> None:
    name = _named(ctx, node, "vrrp_script")
    if name is None:
        return
    script = m.VrrpScript(name=name, script=m.Script(argv=()), location=node.location)
    ctx.child(script, node, VRRP_SCRIPT)
    if name in ctx.config.vrrp_scripts:
        ctx.diag.error(
            f"vrrp_script {name} is defined more than once - ignoring this definition", node.location
        )
        return
    ctx.config.vrrp_scripts[name] = script


def h_track_file(ctx: Ctx, node: Node) -> None:
    name = _named(ctx, node, "track_file")
    if name is None:
        return
    tf = m.TrackFile(name=name, file="", location=node.location)
    ctx.child(tf, node, TRACK_FILE)
    if name in ctx.config.track_files:
        ctx.diag.error(
            f"track_file {name} is defined more than once - ignoring this definition", node.location
        )
        return
    ctx.config.track_files[name] = tf


def h_track_process(ctx: Ctx, node: Node) -> None:
    name = _named(ctx, node, "vrrp_track_process")
    if name is None:
        return
    tp = m.TrackProcess(name=name, process="", location=node.location)
    ctx.child(tp, node, TRACK_PROCESS)
    if name in ctx.config.track_processes:
        ctx.diag.error(
            f"vrrp_track_process {name} is defined more than once - ignoring this definition", node.location
        )
        return
    ctx.config.track_processes[name] = tp


def h_sync_group(ctx: Ctx, node: Node) -> None:
    name = _named(ctx, node, "vrrp_sync_group")
    if name is None:
        return
    group = m.SyncGroup(name=name, location=node.location)
    ctx.child(group, node, SYNC_GROUP)
    if name in ctx.config.vrrp_sync_groups:
        ctx.diag.error(
            f"vrrp_sync_group {name} is defined more than once - ignoring this definition", node.location
        )
        return
    ctx.config.vrrp_sync_groups[name] = group


def h_garp_group(ctx: Ctx, node: Node) -> None:
    group = m.GarpGroup(location=node.location)
    ctx.child(group, node, GARP_GROUP)
    ctx.config.garp_groups.append(group)


def h_track_group(ctx: Ctx, node: Node) -> None:
    name = _named(ctx, node, "track_group")
    if name is None:
        return
    group = m.TrackGroup(name=name, location=node.location)
    ctx.child(group, node, TRACK_GROUP)
    ctx.config.track_groups[name] = group


def h_bfd_instance(ctx: Ctx, node: Node) -> None:
    name = _named(ctx, node, "bfd_instance")
    if name is None:
        return
    bfd = m.BfdInstance(name=name, location=node.location)
    ctx.child(bfd, node, BFD_INSTANCE)
    ctx.config.bfd_instances[name] = bfd


def h_ssl(ctx: Ctx, node: Node) -> None:
    ssl = ctx.config.ssl or m.SslConfig(location=node.location)
    ctx.child(ssl, node, SSL)
    ctx.config.ssl = ssl


def h_linkbeat_interfaces(ctx: Ctx, node: Node) -> None:
    for entry in entry_words(ctx, node):
        kind = entry.words[1] if len(entry.words) > 1 else "MII"
        if kind not in ("MII", "ETHTOOL", "IOCTL"):
            ctx.diag.error(f"Unknown linkbeat type '{kind}' for {entry.words[0]} - using MII", entry.location)
            kind = "MII"
        ctx.config.linkbeat_interfaces.append(m.LinkbeatInterface(name=entry.words[0], type=kind))


def h_up_down_delays(ctx: Ctx, node: Node) -> None:
    for entry in entry_words(ctx, node):
        if len(entry.words) < 2 or len(entry.words) > 3:
            ctx.diag.error(f"Too many parameters for {entry.words[0]} up/down delays", entry.location)
            continue
        down = read_timer(ctx, entry, entry.words[1], 0, 255)
        up = read_timer(ctx, entry, entry.words[2], 0, 255) if len(entry.words) > 2 else 0.0
        if down is not None and up is not None:
            ctx.config.interface_up_down_delays.append(
                m.InterfaceUpDownDelay(name=entry.words[0], down_delay=down, up_delay=up)
            )


def h_static(name: str, kind: str) -> Handler:
    inner = {"address": address_block, "route": route_block, "rule": rule_block}[kind](name)

    def handler(ctx: Ctx, node: Node) -> None:
        ctx.push(ctx.config)
        try:
            inner(ctx, node)
        finally:
            ctx.pop()

    return handler


def h_net_namespace_ipvs(ctx: Ctx, node: Node) -> None:
    ctx.set("net_namespace_ipvs", node.words[1] if len(node.words) > 1 else "", node)


# -- global_defs specifics
def h_smtp_server(ctx: Ctx, node: Node) -> None:
    host = arg(ctx, node, 1, "an IP address or host name")
    if host is None:
        return
    ctx.set("smtp_server", host, node)
    if len(node.words) > 2:
        port = read_uint(ctx, node, node.words[2], 1, 65535)
        if port is not None:
            ctx.set("smtp_server_port", port, node)
    extra_args(ctx, node, 2)


def h_script_user(ctx: Ctx, node: Node) -> None:
    user = arg(ctx, node, 1, "a user name")
    if user is None:
        return
    group: str | None = None
    if ":" in user:
        user, _, group = user.partition(":")
    if len(node.words) > 2:
        group = node.words[2].lstrip(":") or group
    ctx.set("script_user", user, node)
    ctx.set("script_group", group, node)


def h_cpu_affinity(name: str) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        cpus: list[int] = []
        for word in node.args:
            for part in word.split(","):
                lo, _, hi = part.partition("-")
                a = read_uint(ctx, node, lo, 0, 4095)
                b = read_uint(ctx, node, hi, 0, 4095) if hi else a
                if a is None or b is None:
                    return
                cpus.extend(range(a, b + 1))
        ctx.set(name, cpus, node)

    return handler


def h_max_auto_priority(ctx: Ctx, node: Node) -> None:
    if len(node.words) < 2:
        ctx.set("max_auto_priority", 99, node)
        return
    value = read_int(ctx, node, node.words[1], -1, 99)
    if value is not None:
        ctx.set("max_auto_priority", value, node)


def h_umask(ctx: Ctx, node: Node) -> None:
    bits = {
        "IRUSR": 0o400,
        "IWUSR": 0o200,
        "IXUSR": 0o100,
        "IRGRP": 0o40,
        "IWGRP": 0o20,
        "IXGRP": 0o10,
        "IROTH": 0o4,
        "IWOTH": 0o2,
        "IXOTH": 0o1,
        "IRWXU": 0o700,
        "IRWXG": 0o70,
        "IRWXO": 0o7,
    }
    text = "".join(node.args)
    if not text:
        arg(ctx, node, 1, "a number or IRUSR|IWGRP...")
        return
    if text[0].isdigit():
        value = read_uint(ctx, node, text, 0, 0o777, base=0 if not text.isdigit() else 8)
    else:
        value = 0
        for part in text.split("|"):
            if part not in bits:
                ctx.diag.error(
                    f"umask '{text}' is invalid - expected a number or {'|'.join(bits)}", node.location
                )
                return
            value |= bits[part]
    if value is not None:
        ctx.set("umask", value, node)


def h_include_check(ctx: Ctx, node: Node) -> None:
    from fastka.config.lexer import INCLUDE_CHECKS

    checks: list[str] = list(INCLUDE_CHECKS) if not node.args else []
    for word in node.args:
        bare = word.lstrip("+-")
        if bare not in INCLUDE_CHECKS:
            ctx.diag.error(f"Unknown include_check type '{word}' - ignoring", node.location)
            continue
        if not word.startswith("-"):
            checks.append(bare)
    ctx.set("include_check", checks, node)


def h_lvs_sync_daemon(ctx: Ctx, node: Node) -> None:
    interface = arg(ctx, node, 1, "an interface name")
    if interface is None:
        return
    sd = m.LvsSyncDaemon(interface=interface, location=node.location)
    words = node.words[2:]
    i = 0
    while i < len(words):
        w = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if w in ("id", "maxlen", "port", "ttl", "group", "inst") and value is None:
            ctx.diag.error(f"lvs_sync_daemon {w} is missing its value", node.location)
            return
        if w == "id" and value is not None:
            sd.syncid = read_uint(ctx, node, value, 0, 255)
        elif w == "maxlen" and value is not None:
            sd.maxlen = read_uint(ctx, node, value, 1, 65507)
        elif w == "port" and value is not None:
            sd.port = read_uint(ctx, node, value, 1, 65535) or 8848
        elif w == "ttl" and value is not None:
            sd.ttl = read_uint(ctx, node, value, 1, 255)
        elif w == "group" and value is not None:
            sd.group = read_ip(ctx, node, value)
        elif w == "inst" and value is not None:
            sd.vrrp_instance = value
        elif sd.vrrp_instance is None and i == 0:
            sd.vrrp_instance = w  # "inst" may be omitted (backward compatibility)
            i += 1
            continue
        else:
            ctx.diag.error(f"Unknown lvs_sync_daemon option '{w}' - ignoring", node.location)
            i += 1
            continue
        i += 2
    ctx.set("lvs_sync_daemon", sd, node)


def h_lvs_timeouts(ctx: Ctx, node: Node) -> None:
    timeouts = m.LvsTimeouts()
    words = node.args
    if not words:
        arg(ctx, node, 1, "tcp|tcpfin|udp SECS")
        return
    for i in range(0, len(words), 2):
        key = words[i]
        if key not in ("tcp", "tcpfin", "udp") or i + 1 >= len(words):
            ctx.diag.error(f"lvs_timeouts '{key}' is invalid - expected tcp|tcpfin|udp SECS", node.location)
            return
        value = read_uint(ctx, node, words[i + 1], 1, 86400 * 31)
        if value is None:
            return
        setattr(timeouts, key, value)
    ctx.set("lvs_timeouts", timeouts, node)


def h_lvs_flush_on_stop(ctx: Ctx, node: Node) -> None:
    mode = "all"
    if len(node.words) > 1:
        if node.words[1] != "VS":
            ctx.diag.error(
                f"lvs_flush_on_stop '{node.words[1]}' is invalid - expected VS or nothing", node.location
            )
            return
        mode = "vs"
    ctx.set("lvs_flush_on_stop", mode, node)


def h_garp_extra_if(prefix: str) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        words = node.args
        is_all = bool(words) and words[0] == "all"
        if is_all:
            words = words[1:]
        delay = 0.0
        if words:
            value = read_timer(ctx, node, words[0], 0, 86400)
            if value is None:
                return
            delay = value
        ctx.set(prefix + "garp_extra_if", delay, node)
        ctx.set(prefix + "garp_extra_if_all", is_all, node)

    return handler


def h_dynamic_interfaces(ctx: Ctx, node: Node) -> None:
    ctx.set("dynamic_interfaces", True, node)
    if len(node.words) > 1:
        if node.words[1] == "allow_if_changes":
            ctx.set("dynamic_interfaces_allow_if_changes", True, node)
        else:
            ctx.diag.error(
                f"dynamic_interfaces '{node.words[1]}' is invalid - expected allow_if_changes", node.location
            )


def h_word_list(name: str) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        ctx.set(name, list(node.args), node)

    return handler


def h_reload_check_config(ctx: Ctx, node: Node) -> None:
    ctx.set("reload_check_config", node.words[1] if len(node.words) > 1 else "", node)


def h_rcv_bufs(name: str) -> Handler:
    return set_uint(name, 0, UINT_MAX)


# -- vrrp_script / track_file / track_process
def h_weight(lo: int, hi: int) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        parsed = read_weight(ctx, node, 1, lo, hi)
        if parsed is not None:
            ctx.set("weight", parsed[0], node)
            ctx.set("weight_reverse", parsed[1], node)

    return handler


def h_script_user_of(field_name: str) -> Handler:
    """``user USER [[:]GROUP]`` inside vrrp_script / MISC_CHECK: sets the script's user."""

    def handler(ctx: Ctx, node: Node) -> None:
        words = node.args
        if not words:
            arg(ctx, node, 1, "a user name")
            return
        pending = m.Script(argv=())
        _read_user(ctx, node, pending, words)
        ctx.put(ctx.obj, "user", (pending.user, pending.group, pending.supplementary_groups))
        ctx.mark(ctx.obj, "user", node.location)

    return handler


def h_file_name(ctx: Ctx, node: Node) -> None:
    raw = node.raw_args.strip()
    if not raw:
        arg(ctx, node, 1, "a file name")
        return
    argv = split_argv(raw)
    if not argv:
        arg(ctx, node, 1, "a file name")
        return
    ctx.set("file", argv[0], node)


def h_init_file(ctx: Ctx, node: Node) -> None:
    ctx.set("init_file", True, node)
    for word in node.args:
        if word == "overwrite":
            ctx.set("init_overwrite", True, node)
        else:
            value = read_int(ctx, node, word, -INT_MAX, INT_MAX)
            if value is None:
                return
            ctx.set("init_value", value, node)


def h_process(ctx: Ctx, node: Node) -> None:
    raw = node.raw_args.strip()
    argv = split_argv(raw) if raw else []
    if not argv:
        arg(ctx, node, 1, "a process name")
        return
    ctx.set("process", argv[0], node)
    ctx.set("params", tuple(argv[1:]) if len(argv) > 1 else None, node)


def h_param_match(ctx: Ctx, node: Node) -> None:
    mode = "exact"
    if len(node.words) > 1:
        choice = read_choice(ctx, node, node.words[1], ("initial", "partial"))
        if choice is None:
            return
        mode = choice
    ctx.set("param_match", mode, node)
    if ctx.obj.params is None:
        ctx.obj.params = ()


# -- sync group / garp group / track group
def h_sync_group_members(ctx: Ctx, node: Node) -> None:
    name_list_block("group")(ctx, node)


def h_global_tracking(ctx: Ctx, node: Node) -> None:
    ctx.set("sync_group_tracking_weight", True, node)


def h_garp_interface(ctx: Ctx, node: Node) -> None:
    name = arg(ctx, node, 1, "an interface name")
    if name is not None:
        ctx.obj.interfaces.append(name)
        ctx.mark(ctx.obj, "interfaces", node.location)


# -- vrrp_instance
def h_state(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "MASTER or BACKUP")
    if value is None:
        return
    if value in ("MASTER", "BACKUP"):
        ctx.set("state", m.VrrpState(value), node)
    else:
        ctx.diag.error(
            f"({ctx.obj.name}) unknown state '{value}', defaulting to BACKUP", node.location, "state"
        )
        ctx.set("state", m.VrrpState.BACKUP, node)
    ctx.set("state_configured", True, node)


def h_advert_int(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "an interval in seconds")
    if value is None:
        return
    number = read_timer(ctx, node, value, 0, TIMER_MAX)
    if number is None or number <= 0:
        if number is not None:
            ctx.diag.error(
                f"({ctx.obj.name}) Advert interval ({value}) not valid! Must be > 0 - ignoring", node.location
            )
        return
    ctx.set("advert_int", number, node)


def h_priority(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "a priority 1..255")
    if value is None:
        return
    number = read_uint(ctx, node, value, 1, 255)
    if number is not None:
        ctx.set("priority", number, node)
        extra_args(ctx, node, 1)


def h_version(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "2 or 3")
    if value is None:
        return
    number = read_uint(ctx, node, value, 2, 3)
    if number is not None:
        ctx.set("version", number, node)


def h_strict_mode(ctx: Ctx, node: Node) -> None:
    value = read_bool(ctx, node)
    if value is not None:
        ctx.set("strict_mode", value, node)


def h_accept(value: bool) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        ctx.set("accept", value, node)

    return handler


def h_preempt(ctx: Ctx, node: Node) -> None:
    ctx.set("nopreempt", False, node)


def h_skip_check_adv_addr(ctx: Ctx, node: Node) -> None:
    value = read_bool(ctx, node)
    if value is not None:
        ctx.set("skip_check_adv_addr", value, node)


def h_authentication(ctx: Ctx, node: Node) -> None:
    holder = _AuthHolder()
    ctx.child(holder, node, AUTHENTICATION)
    if holder.auth_type is None:
        ctx.diag.error(f"({ctx.obj.name}) authentication has no auth_type - ignoring", node.location)
        return
    auth = m.Authentication(auth_type=holder.auth_type, auth_pass=holder.auth_pass or b"")
    ctx.set("authentication", auth, node)
    if holder.auth_pass is None and holder.auth_type == "PASS":
        ctx.mark(ctx.obj, "auth_pass_missing", node.location)


@dataclass
class _AuthHolder:
    auth_type: str | None = None
    auth_pass: bytes | None = None


def h_auth_type(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "PASS or AH")
    if value is None:
        return
    if value not in ("PASS", "AH"):
        ctx.diag.error(f"Unknown authentication type '{value}'", node.location, "auth_type")
        return
    ctx.set("auth_type", value, node)


def h_auth_pass(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "a password (at most 8 characters)")
    if value is None:
        return
    data = value.encode("utf-8", "surrogateescape")
    if len(data) > 8:
        ctx.diag.error("Truncating auth_pass to 8 characters", node.location, "auth_pass")
        data = data[:8]
    ctx.set("auth_pass", data, node)


def h_unicast_peer(ctx: Ctx, node: Node) -> None:
    out: list[m.UnicastPeer] = ctx.obj.unicast_peer
    for entry in entry_words(ctx, node):
        address = parse_ip(entry.words[0])
        if address is None:
            ctx.diag.error(
                f"({ctx.obj.name}) VRRP parsed invalid IP {entry.words[0]}. skipping IP...", entry.location
            )
            continue
        peer = m.UnicastPeer(address=address, location=entry.location)
        words = entry.words[1:]
        ok = True
        for i in range(0, len(words), 2):
            key = words[i]
            if key not in ("min_ttl", "max_ttl") or i + 1 >= len(words):
                ctx.diag.error(
                    f"({ctx.obj.name}) Unknown unicast_peer option '{key}' - ignoring", entry.location
                )
                ok = False
                break
            ttl = read_uint(ctx, entry, words[i + 1], 0, 255)
            if ttl is None:
                ok = False
                break
            setattr(peer, key, ttl)
        if ok:
            out.append(peer)
    ctx.mark(ctx.obj, "unicast_peer", node.location)


def h_use_vmac(ctx: Ctx, node: Node) -> None:
    vmac = m.Vmac(ifname="", mac="", location=node.location)
    words = node.args
    i = 0
    while i < len(words):
        w = words[i]
        if w == "netlink_notify_msg":
            vmac.netlink_notify_msg = True
        elif w == "group" and i + 1 < len(words):
            vmac.group = read_uint(ctx, node, words[i + 1], 0, UINT_MAX)
            i += 1
        elif w == "name" and i + 1 < len(words):
            vmac.ifname = words[i + 1]
            i += 1
        elif re.fullmatch(r"([0-9A-Fa-f]{1,2}:){4,5}[0-9A-Fa-f]{1,2}", w):
            vmac.mac = w.lower()
        elif not vmac.ifname:
            vmac.ifname = w
        else:
            ctx.diag.error(f"({ctx.obj.name}) Unknown use_vmac option '{w}' - ignoring", node.location)
        i += 1
    xmit = ctx.obj.use_vmac.xmit_base if ctx.obj.use_vmac else False
    vmac.xmit_base = xmit
    ctx.set("use_vmac", vmac, node)


def h_vmac_xmit_base(ctx: Ctx, node: Node) -> None:
    ctx.mark(ctx.obj, "vmac_xmit_base", node.location)
    if ctx.obj.use_vmac is not None:
        ctx.obj.use_vmac.xmit_base = True


def h_use_ipvlan(ctx: Ctx, node: Node) -> None:
    ipvlan = m.Ipvlan(location=node.location)
    for w in node.args:
        if w in ("bridge", "private", "vepa"):
            ipvlan.mode = w
        elif "/" in w or parse_ip(w) is not None:
            try:
                ipvlan.address = ipaddress.ip_interface(w)
            except ValueError:
                ctx.diag.error(f"({ctx.obj.name}) invalid use_ipvlan address '{w}'", node.location)
        elif ipvlan.ifname is None:
            ipvlan.ifname = w
    ctx.set("use_ipvlan", ipvlan, node)


def h_mcast_dst_ip(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "a multicast address")
    if value is None:
        return
    address = read_ip(ctx, node, value, "multicast IP address")
    if address is None:
        return
    if not address.is_multicast:
        ctx.diag.error(
            f"({ctx.obj.name}) mcast_dst_ip {value} is not a multicast address - ignoring", node.location
        )
        return
    ctx.set("mcast_dst_ip", address, node)


def h_old_unicast_checksum(ctx: Ctx, node: Node) -> None:
    if len(node.words) > 1 and node.words[1] != "never":
        ctx.diag.error(
            f"old_unicast_checksum '{node.words[1]}' is invalid - expected never or nothing", node.location
        )
        return
    ctx.set("old_unicast_checksum", "never" if len(node.words) > 1 else "auto", node)


def h_notify_deleted(ctx: Ctx, node: Node) -> None:
    ctx.set("notify_deleted", True, node)
    if len(node.words) > 1:
        script = read_script(ctx, node)
        if script is not None:
            ctx.set("notify_deleted_script", script, node)


def h_lvs_sync_daemon_interface(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "an interface name")
    if value is None:
        return
    ctx.diag.warning(
        f"({ctx.obj.name}) Specifying lvs_sync_daemon_interface against a vrrp is deprecated.", node.location
    )
    ctx.diag.warning("        Please use global lvs_sync_daemon", node.location)
    ctx.set("lvs_sync_daemon_interface", value, node)


def h_timer_expired_backup(ctx: Ctx, node: Node) -> None:
    prio = 254
    if len(node.words) > 1:
        value = read_uint(ctx, node, node.words[1], 1, 254)
        if value is None:
            return
        prio = value
    ctx.set("timer_expired_backup", prio, node)


def h_auth_hmac(ctx: Ctx, node: Node) -> None:
    ctx.child(_Ignored(), node, AUTH_HMAC)


class _Ignored:
    """Receives the keywords of a recognised-but-unsupported block."""

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)


# -- virtual_server_group
def h_vsg(ctx: Ctx, node: Node) -> None:
    name = _named(ctx, node, "virtual_server_group")
    if name is None:
        return
    group = m.VirtualServerGroup(name=name, location=node.location)
    ctx.mark(group, "name", node.location)
    if node.end is not None:
        ctx.ends[id(group)] = node.end
    for entry in entry_words(ctx, node):
        item = _vsg_entry(ctx, entry)
        if item is not None:
            group.entries.append(item)
    if name in ctx.config.virtual_server_groups:
        ctx.diag.error(
            f"virtual_server_group {name} is defined more than once - ignoring this definition", node.location
        )
        return
    ctx.config.virtual_server_groups[name] = group


def _vsg_entry(ctx: Ctx, entry: Node) -> m.VsgEntry | None:
    words = entry.words
    if words[0] == "fwmark":
        if len(words) < 2:
            ctx.diag.error("fwmark is missing its value", entry.location)
            return None
        mark = read_uint(ctx, entry, words[1], 1, UINT_MAX)
        if mark is None:
            return None
        family = None
        if len(words) > 2:
            fam = read_choice(ctx, entry, words[2], ("inet", "inet6"))
            if fam is None:
                return None
            family = m.Family(fam)
        return m.VsgEntry(fwmark=mark, family=family, location=entry.location)
    text = words[0]
    port = 0
    if len(words) > 1:
        p = read_uint(ctx, entry, words[1], 0, 65535)
        if p is None:
            return None
        port = p
    start, end = _address_range(ctx, entry, text)
    if start is None or end is None:
        return None
    return m.VsgEntry(address=start, address_end=end, port=port, location=entry.location)


def _address_range(ctx: Ctx, entry: Node, text: str) -> tuple[m.IPAddress | None, m.IPAddress | None]:
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                ctx.diag.error(f"Invalid virtual server group address '{text}' - skipping", entry.location)
                return None, None
            ctx.diag.error(f"Address mask bits not empty - {text} - skipping", entry.location)
            return None, None
        return net.network_address, net.broadcast_address
    if "-" in text:
        first, _, last = text.partition("-")
        start = parse_ip(first)
        if start is None:
            ctx.diag.error(f"Invalid virtual server group address '{text}' - skipping", entry.location)
            return None, None
        end = parse_ip(last)
        if end is None:
            # A.B.C.D-E: the last group of the address
            sep = "." if start.version == 4 else ":"
            head = first.rsplit(sep, 1)[0]
            end = parse_ip(f"{head}{sep}{last}")
        if end is None or end.version != start.version or int(end) < int(start):
            ctx.diag.error(f"Invalid virtual server group address range '{text}' - skipping", entry.location)
            return None, None
        return start, end
    address = parse_ip(text)
    if address is None:
        ctx.diag.error(f"Invalid virtual server group address '{text}' - skipping", entry.location)
        return None, None
    return address, address


# -- virtual_server / real_server
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos")


def h_virtual_server(ctx: Ctx, node: Node) -> None:
    words = node.args
    vs = m.VirtualServer(location=node.location)
    if not words:
        arg(ctx, node, 1, "IP [PORT], fwmark N or group NAME")
        return
    if words[0] == "fwmark":
        if len(words) < 2:
            arg(ctx, node, 2, "a firewall mark")
            return
        mark = read_uint(ctx, node, words[1], 1, UINT_MAX)
        if mark is None:
            return
        vs.fwmark = mark
    elif words[0] == "group":
        if len(words) < 2:
            arg(ctx, node, 2, "a virtual_server_group name")
            return
        vs.group = words[1]
    else:
        address = parse_ip(words[0])
        if address is None:
            ctx.diag.error(
                f"virtual_server '{words[0]}' is invalid - expected an IP address, fwmark or group",
                node.location,
            )
            return
        vs.address = address
        vs.family = m.Family.of(address)
        if len(words) > 1:
            port = read_uint(ctx, node, words[1], 0, 65535)
            if port is None:
                return
            vs.port = port
    ctx.child(vs, node, VIRTUAL_SERVER)
    ctx.config.virtual_servers.append(vs)


def h_real_server(ctx: Ctx, node: Node) -> None:
    rs = _server(ctx, node)
    if rs is None:
        return
    ctx.child(rs, node, REAL_SERVER)
    ctx.obj.real_servers.append(rs)


def _server(ctx: Ctx, node: Node) -> m.RealServer | None:
    value = arg(ctx, node, 1, "an IP address")
    if value is None:
        return None
    address = parse_ip(value)
    if address is None:
        ctx.diag.error(f"{node.keyword} '{value}' is invalid - expected an IP address", node.location)
        return None
    rs = m.RealServer(address=address, location=node.location)
    if len(node.words) > 2:
        port = read_uint(ctx, node, node.words[2], 0, 65535)
        if port is None:
            return None
        rs.port = port
        ctx.mark(rs, "port", node.location)
    return rs


def h_sorry_server(ctx: Ctx, node: Node) -> None:
    rs = _server(ctx, node)
    if rs is None:
        return
    ctx.set("sorry_server", rs, node)


def h_sorry_server_lvs_method(ctx: Ctx, node: Node) -> None:
    fwd = _forwarding(ctx, node)
    if fwd is None:
        return
    ctx.set("sorry_server_lvs_method", fwd, node)


def _forwarding(ctx: Ctx, node: Node) -> m.Forwarding | None:
    words = node.args
    if not words:
        arg(ctx, node, 1, "NAT, DR or TUN")
        return None
    method = read_choice(ctx, node, words[0], ("NAT", "DR", "TUN"), fold=True)
    if method is None:
        return None
    fwd = m.Forwarding(method=method)
    i = 1
    while i < len(words):
        w = words[i]
        if method != "TUN":
            ctx.diag.error(f"{node.keyword}: '{w}' is only valid for TUN - ignoring", node.location)
            break
        if w == "type" and i + 1 < len(words):
            kind = read_choice(ctx, node, words[i + 1], ("ipip", "gue", "gre"))
            if kind is None:
                return None
            fwd.tunnel_type = kind
            i += 2
            if kind == "gue":
                if i + 1 < len(words) and words[i] == "port":
                    fwd.tunnel_port = read_uint(ctx, node, words[i + 1], 1, 65535)
                    i += 2
                else:
                    ctx.diag.error(f"Missing port for {node.keyword} gue tunnel.", node.location)
                    return None
            continue
        if w in ("nocsum", "csum", "remcsum"):
            fwd.tunnel_csum = w
        else:
            ctx.diag.error(f"{node.keyword}: unknown TUN option '{w}' - ignoring", node.location)
        i += 1
    return fwd


def h_lb_kind(ctx: Ctx, node: Node) -> None:
    fwd = _forwarding(ctx, node)
    if fwd is not None:
        ctx.set("forwarding", fwd, node)


def h_protocol(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "TCP, UDP or SCTP")
    if value is None:
        return
    choice = read_choice(ctx, node, value, ("TCP", "UDP", "SCTP"), fold=True)
    if choice is not None:
        ctx.set("protocol", choice, node)
        ctx.set("protocol_configured", True, node)


def h_lb_algo(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "a scheduler")
    if value is None:
        return
    if value not in SCHEDULERS:
        ctx.diag.error(f"Invalid lvs_scheduler '{value}' - ignoring", node.location, node.keyword)
        ctx.diag.info(f"  expected one of {', '.join(SCHEDULERS)}", node.location)
        return
    ctx.set("lb_algo", value, node)


def h_persistence_timeout(ctx: Ctx, node: Node) -> None:
    if len(node.words) < 2:
        ctx.set("persistence_timeout", 360, node)
        return
    value = read_uint(ctx, node, node.words[1], 1, 2678400)
    if value is not None:
        ctx.set("persistence_timeout", value, node)


def h_persistence_granularity(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "a netmask or IPv6 prefix length")
    if value is None:
        return
    ok = value.isdigit() and 1 <= int(value) <= 128
    if not ok:
        mask = parse_ip(value)
        ok = mask is not None and mask.version == 4 and _is_netmask(int(mask))
    if not ok:
        ctx.diag.error(
            f"persistence_granularity '{value}' is invalid - expected a netmask or prefix length",
            node.location,
        )
        return
    ctx.set("persistence_granularity", value, node)


def _is_netmask(value: int) -> bool:
    inverted = ~value & 0xFFFFFFFF
    return (inverted & (inverted + 1)) == 0


def h_sched_flag(name: str) -> Handler:
    def handler(ctx: Ctx, node: Node) -> None:
        if name.startswith(("sh_", "mh_")) and ctx.obj.lb_algo != name[:2]:
            ctx.diag.error(f"{node.keyword} is only valid for lb_algo {name[:2]} - ignoring", node.location)
            return
        ctx.set(name, True, node)

    return handler


def h_ip_family(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "inet or inet6")
    if value is None:
        return
    choice = read_choice(ctx, node, value, ("inet", "inet6"))
    if choice is not None:
        ctx.set("ip_family", m.Family(choice), node)


def h_virtualhost(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "a host name")
    if value is None:
        ctx.diag.error("Missing HTTP_GET virtualhost name", node.location)
        return
    ctx.set("virtualhost", value, node)


def h_checker(kind: str) -> Handler:
    cls = m.CHECKER_TYPES[kind]

    def handler(ctx: Ctx, node: Node) -> None:
        checker = cls(location=node.location)
        ctx.child(checker, node, CHECKERS[kind])
        ctx.obj.checkers.append(checker)

    return handler


# -- checkers
def h_url(ctx: Ctx, node: Node) -> None:
    url = m.Url(location=node.location)
    url.status_code = []
    ctx.child(url, node, URL)
    if not url.status_code:
        url.status_code = [(200, 299)]
    ctx.obj.urls.append(url)


def h_status_code(ctx: Ctx, node: Node) -> None:
    ranges: list[tuple[int, int]] = ctx.obj.status_code
    if not node.args:
        arg(ctx, node, 1, "status codes N or A-B (100..599)")
        return
    for word in node.args:
        lo, sep, hi = word.partition("-")
        a = read_uint(ctx, node, lo, 100, 599)
        b = read_uint(ctx, node, hi, 100, 599) if sep else a
        if a is None or b is None:
            continue
        if b < a:
            ctx.diag.error(f"status_code range '{word}' is invalid - expected A-B with A <= B", node.location)
            continue
        ranges.append((a, b))
    ctx.mark(ctx.obj, "status_code", node.location)


def h_digest(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "32 hex digits (MD5)")
    if value is None:
        return
    if not re.fullmatch(r"[0-9A-Fa-f]{32}", value):
        ctx.diag.error(f"digest '{value}' is invalid - expected 32 hex digits (an MD5 sum)", node.location)
        return
    ctx.set("digest", value.lower(), node)


def h_path(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "a URL path")
    if value is not None:
        ctx.set("path", value, node)


def h_regex(ctx: Ctx, node: Node) -> None:
    raw = node.raw_args.strip()
    if not raw:
        arg(ctx, node, 1, "a regular expression")
        return
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        raw = raw[1:-1]
    ctx.set("regex", raw, node)


def h_regex_stack(ctx: Ctx, node: Node) -> None:
    if len(node.words) != 3:
        ctx.diag.error("regex_stack needs START and MAX", node.location)
        return
    a = read_uint(ctx, node, node.words[1])
    b = read_uint(ctx, node, node.words[2])
    if a is not None and b is not None:
        ctx.set("regex_stack", (a, b), node)


def h_http_protocol(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "1.0, 1.0C or 1.1")
    if value is None:
        ctx.diag.error("Missing http_protocol version", node.location)
        return
    choice = read_choice(ctx, node, value, ("1.0", "1.0C", "1.1"), fold=True)
    if choice is not None:
        ctx.set("http_protocol", choice, node)


def h_misc_user(ctx: Ctx, node: Node) -> None:
    h_script_user_of("misc_path")(ctx, node)


def h_dns_type(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "a DNS query type")
    if value is None:
        return
    types = ("A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY")
    if value.upper() not in types:
        ctx.diag.error(f"Unknown DNS check type {value} - ignoring", node.location, "type")
        return
    ctx.set("query_type", value.upper(), node)


def h_dns_name(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "a domain name")
    if value is None:
        return
    labels = value.rstrip(".").split(".") if value != "." else []
    if any(not label for label in labels):
        ctx.diag.error(f"DNS_CHECK name '{value}' has empty label - ignoring", node.location, "name")
        return
    ctx.set("name", value, node)


def _hex(text: str) -> bytes | None:
    if len(text) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", text):
        return None
    return bytes.fromhex(text)


def h_payload(ctx: Ctx, node: Node) -> None:
    value = arg(ctx, node, 1, "a hex string")
    if value is None:
        return
    data = _hex(value)
    if data is None:
        ctx.diag.error("Invalid hex string for UDP_CHECK payload", node.location, "payload")
        return
    ctx.set("payload", data, node)


def h_require_reply(ctx: Ctx, node: Node) -> None:
    ctx.set("require_reply", True, node)
    if len(node.words) < 2:
        return
    text = node.words[1]
    if len(text) % 2 or not re.fullmatch(r"[0-9A-Fa-fxX]*", text):
        ctx.diag.error("Invalid hex string for UDP_CHECK require_reply", node.location, "require_reply")
        return
    data = bytes.fromhex("".join("0" if c in "xX" else c for c in text))
    mask = bytes.fromhex("".join("0" if c in "xX" else "f" for c in text))
    ctx.set("reply_data", data, node)
    ctx.set("reply_mask", mask, node)


def h_file_check_weight(ctx: Ctx, node: Node) -> None:
    parsed = read_weight(ctx, node, 1, -INT_MAX, INT_MAX)
    if parsed is not None:
        ctx.set("weight", parsed[0], node)
        ctx.set("weight_reverse", parsed[1], node)


def h_smtp_host(ctx: Ctx, node: Node) -> None:
    host = m.SmtpHost()
    ctx.child(host, node, SMTP_HOST)
    ctx.obj.hosts.append(host)


def h_nb_get_retry(ctx: Ctx, node: Node) -> None:
    set_uint("retry", 0, UINT_MAX)(ctx, node)


# --------------------------------------------------------------------------- the tables
def _timer_kw(name: str, prio: str = "P1", lo: float = 0.000001, hi: float = TIMER_MAX, **kw: Any) -> Keyword:
    return K(name, set_timer(name, lo, hi), prio, **kw)


def _fill_tables() -> None:
    NS = False  # "not supported yet" marker for readability

    # ---------------------------------------------------------------- root
    ROOT.add(
        KB("global_defs", h_global_defs, GLOBAL_DEFS, "P0"),
        KB("vrrp_instance", h_vrrp_instance, VRRP_INSTANCE, "P0"),
        KB("vrrp_script", h_vrrp_script, VRRP_SCRIPT, "P0"),
        KB("virtual_server", h_virtual_server, VIRTUAL_SERVER, "P0"),
        KB("vrrp_sync_group", h_sync_group, SYNC_GROUP, "P1"),
        KL("virtual_server_group", h_vsg, "P1"),
        KL("static_ipaddress", h_static("static_ipaddress", "address"), "P2"),
        KL("static_routes", h_static("static_routes", "route"), "P2"),
        KL("static_rules", h_static("static_rules", "rule"), "P2"),
        KB("track_file", h_track_file, TRACK_FILE, "P1"),
        KB("vrrp_track_process", h_track_process, TRACK_PROCESS, "P1"),
        KB("garp_group", h_garp_group, GARP_GROUP, "P2"),
        KL("linkbeat_interfaces", h_linkbeat_interfaces, "P2", supported=NS),
        KL("interface_up_down_delays", h_up_down_delays, "P2", supported=NS),
        KB("track_group", h_track_group, TRACK_GROUP, "P2", supported=NS),
        KB("bfd_instance", h_bfd_instance, BFD_INSTANCE, "P2", supported=NS),
        KB("SSL", h_ssl, SSL, "P1"),
        K("net_namespace", on_global(set_str("net_namespace")), "P2", supported=NS),
        K("net_namespace_ipvs", on_global(h_net_namespace_ipvs), "P2", supported=NS),
        K("namespace_with_ipsets", on_global(set_flag("namespace_with_ipsets")), "P2", supported=NS),
        K("instance", on_global(set_str("instance")), "P2"),
        K("use_pid_dir", on_global(set_flag("use_pid_dir")), "P2"),
        K("child_wait_time", on_global(set_uint("child_wait_time", 0, UINT_MAX)), "P2"),
        K("linkbeat_use_polling", on_global(set_flag("linkbeat_use_polling")), "P2", supported=NS),
    )
    ROOT.add(
        alias(
            ROOT.keywords["track_file"],
            "vrrp_track_file",
            deprecated="vrrp_track_file is deprecated, please use track_file",
        )
    )

    # ---------------------------------------------------------------- global_defs
    G = GLOBAL_DEFS
    G.add(
        K("router_id", set_str("router_id"), "P0"),
        KL("notification_email", name_list_block("notification_email"), "P1"),
        K("notification_email_from", set_str("notification_email_from"), "P1"),
        K("smtp_server", h_smtp_server, "P1"),
        K("smtp_helo_name", set_str("smtp_helo_name"), "P2"),
        _timer_kw("smtp_connect_timeout", "P1", 0.000001, TIMER_MAX),
        K("smtp_alert", set_bool("smtp_alert"), "P1"),
        K("smtp_alert_vrrp", set_bool("smtp_alert_vrrp"), "P2"),
        K("smtp_alert_checker", set_bool("smtp_alert_checker"), "P2"),
        K("no_email_faults", set_flag("no_email_faults"), "P2"),
        K("checker_log_all_failures", set_bool("checker_log_all_failures"), "P1"),
        K("no_checker_emails", set_bool("no_checker_emails"), "P2"),
        K("rs_init_notifies", set_bool("rs_init_notifies"), "P2"),
        K("script_user", h_script_user, "P1"),
        K("enable_script_security", set_flag("enable_script_security"), "P1"),
        K("use_symlink_paths", set_bool("use_symlink_paths"), "P2", since="2.3.0"),
        K("set_supplementary_groups", set_flag("set_supplementary_groups"), "P2", since="master"),
        K("startup_script", set_script("startup_script"), "P2"),
        K("shutdown_script", set_script("shutdown_script"), "P2"),
        _timer_kw("startup_script_timeout", "P2", 1, 1000),
        _timer_kw("shutdown_script_timeout", "P2", 1, 1000),
        K("process_names", set_flag("process_names"), "P2"),
        K("process_name", set_str("process_name"), "P2"),
        K("vrrp_process_name", set_str("vrrp_process_name"), "P2"),
        K("checker_process_name", set_str("checker_process_name"), "P2"),
        K("bfd_process_name", set_str("bfd_process_name"), "P2", supported=NS),
        K("vrrp_priority", set_int("vrrp_priority", -20, 19), "P2", supported=NS),
        K("checker_priority", set_int("checker_priority", -20, 19), "P2", supported=NS),
        K("bfd_priority", set_int("bfd_priority", -20, 19), "P2", supported=NS),
        K("vrrp_no_swap", set_flag("vrrp_no_swap"), "P2", supported=NS),
        K("checker_no_swap", set_flag("checker_no_swap"), "P2", supported=NS),
        K("bfd_no_swap", set_flag("bfd_no_swap"), "P2", supported=NS),
        K("vrrp_rt_priority", set_uint("vrrp_rt_priority", 1, 99), "P2", supported=NS),
        K("checker_rt_priority", set_uint("checker_rt_priority", 1, 99), "P2", supported=NS),
        K("bfd_rt_priority", set_uint("bfd_rt_priority", 1, 99), "P2", supported=NS),
        K("vrrp_cpu_affinity", h_cpu_affinity("vrrp_cpu_affinity"), "P2", supported=NS),
        K("checker_cpu_affinity", h_cpu_affinity("checker_cpu_affinity"), "P2", supported=NS),
        K("bfd_cpu_affinity", h_cpu_affinity("bfd_cpu_affinity"), "P2", supported=NS),
        K("max_auto_priority", h_max_auto_priority, "P2", supported=NS),
        K("min_auto_priority_delay", set_uint("min_auto_priority_delay", 1), "P2", supported=NS),
        K("umask", h_umask, "P2"),
        K("random_seed", set_uint("random_seed"), "P2"),
        K("tmp_config_directory", set_str("tmp_config_directory"), "P2", supported=NS),
        K("config_save_dir", set_str("config_save_dir"), "P2", supported=NS),
        K("reload_check_config", h_reload_check_config, "P1"),
        K("reload_time_file", set_str("reload_time_file"), "P2", supported=NS),
        K("reload_repeat", set_flag("reload_repeat"), "P2", supported=NS),
        K("reload_file", set_opt_str("reload_file", "/run/keepalived/keepalived.reload"), "P2"),
        K("include_check", h_include_check, "P2"),
        K("data_use_instance", set_bool("data_use_instance"), "P2"),
        K("state_dump_file", set_str("state_dump_file"), "P2", since="2.3.3"),
        K("stats_dump_file", set_str("stats_dump_file"), "P2", since="2.3.3"),
        K("json_dump_file", set_str("json_dump_file"), "P2", since="2.3.3"),
        K("json_version", set_uint("json_version", 1, 2), "P2", since="2.2.8"),
        # fastka extensions: the status service (docs/status.md).
        K("fastka_status_socket", set_str("fastka_status_socket"), "P1", since="fastka"),
        K("fastka_status_http", set_str("fastka_status_http"), "P1", since="fastka"),
        K("fastka_status_file", set_str("fastka_status_file"), "P1", since="fastka"),
        K(
            "fastka_status_file_interval",
            set_timer("fastka_status_file_interval", 0, 86400),
            "P1",
            since="fastka",
        ),
        K("iproute_usr_dir", set_str("iproute_usr_dir"), "P2", since="2.3.2"),
        K("iproute_etc_dir", set_str("iproute_etc_dir"), "P2", since="2.3.2"),
        K("snmp_socket", set_str("snmp_socket"), "P2", supported=NS),
        K("enable_snmp_vrrp", set_flag("enable_snmp_vrrp"), "P2", supported=NS),
        K("enable_snmp_checker", set_flag("enable_snmp_checker"), "P2", supported=NS),
        K("enable_snmp_rfc", set_flag("enable_snmp_rfc"), "P2", supported=NS),
        K("enable_snmp_rfcv2", set_flag("enable_snmp_rfcv2"), "P2", supported=NS),
        K("enable_snmp_rfcv3", set_flag("enable_snmp_rfcv3"), "P2", supported=NS),
        K("enable_traps", set_flag("enable_traps"), "P2", supported=NS),
        _timer_kw("snmp_vs_stats_update_interval", "P2", 0.001, 30, supported=NS),
        _timer_kw("snmp_rs_stats_update_interval", "P2", 0.001, 30, supported=NS),
        K("enable_dbus", set_flag("enable_dbus"), "P2", supported=NS),
        K("dbus_service_name", set_str("dbus_service_name"), "P2", supported=NS),
        K("dbus_no_interface_name", set_str("dbus_no_interface_name"), "P2", supported=NS),
        K("notify_fifo", notify_fifo("notify_fifo"), "P1"),
        K("notify_fifo_script", notify_fifo_script("notify_fifo"), "P1"),
        K("vrrp_notify_fifo", notify_fifo("vrrp_notify_fifo"), "P1"),
        K("vrrp_notify_fifo_script", notify_fifo_script("vrrp_notify_fifo"), "P1"),
        K("lvs_notify_fifo", notify_fifo("lvs_notify_fifo"), "P2"),
        K("lvs_notify_fifo_script", notify_fifo_script("lvs_notify_fifo"), "P2"),
        K("vrrp_notify_priority_changes", set_bool("vrrp_notify_priority_changes"), "P2"),
        K("fifo_write_vrrp_states_on_reload", set_flag("fifo_write_vrrp_states_on_reload"), "P2"),
        K("vrrp_version", set_uint("vrrp_version", 2, 3), "P1"),
        K("vrrp_mcast_group4", set_ip("vrrp_mcast_group4", 4), "P2"),
        K("vrrp_mcast_group6", set_ip("vrrp_mcast_group6", 6), "P2"),
        K("default_interface", set_str("default_interface"), "P2"),
        _timer_kw("vrrp_garp_master_delay", "P1", 0, TIMER_MAX),
        K("vrrp_garp_master_repeat", set_uint("vrrp_garp_master_repeat", 0, INT_MAX), "P1"),
        _timer_kw("vrrp_garp_master_refresh", "P1", 0, TIMER_MAX),
        K("vrrp_garp_master_refresh_repeat", set_uint("vrrp_garp_master_refresh_repeat", 0, INT_MAX), "P2"),
        _timer_kw("vrrp_garp_lower_prio_delay", "P2", 0, TIMER_MAX),
        K("vrrp_garp_lower_prio_repeat", set_uint("vrrp_garp_lower_prio_repeat", 0, INT_MAX), "P2"),
        _timer_kw("vrrp_garp_interval", "P2"),
        _timer_kw("vrrp_gna_interval", "P2"),
        K("vrrp_min_garp", set_bool("vrrp_min_garp"), "P1"),
        K("vrrp_garp_extra_if", h_garp_extra_if("vrrp_"), "P2"),
        K("vrrp_down_timer_adverts", set_uint("vrrp_down_timer_adverts", 1, 100), "P2"),
        K("vrrp_lower_prio_no_advert", set_bool("vrrp_lower_prio_no_advert"), "P2"),
        K("vrrp_higher_prio_send_advert", set_bool("vrrp_higher_prio_send_advert"), "P2"),
        K("vrrp_owner_ignore_adverts", set_bool("vrrp_owner_ignore_adverts"), "P2", since="2.3.3"),
        K("vrrp_check_unicast_src", set_flag("vrrp_check_unicast_src"), "P1"),
        K("vrrp_skip_check_adv_addr", set_bool("vrrp_skip_check_adv_addr"), "P2"),
        K("vrrp_strict", set_bool("vrrp_strict"), "P1"),
        K("v3_checksum_as_v2", set_bool("v3_checksum_as_v2"), "P2", since="2.2.8"),
        K("vrrp_iptables", h_word_list("vrrp_iptables"), "P2", supported=NS),
        K("vrrp_ipsets", h_word_list("vrrp_ipsets"), "P2", supported=NS),
        K("nftables", set_opt_str("nftables", "keepalived"), "P2"),
        K("nftables_priority", set_int("nftables_priority", -INT_MAX, INT_MAX), "P2"),
        K("nftables_counters", set_flag("nftables_counters"), "P2"),
        K("nftables_ifindex", set_flag("nftables_ifindex"), "P2"),
        K("disable_local_igmp", set_flag("disable_local_igmp"), "P2", supported=NS),
        K("dynamic_interfaces", h_dynamic_interfaces, "P1"),
        K("vrrp_netlink_cmd_rcv_bufs", h_rcv_bufs("vrrp_netlink_cmd_rcv_bufs"), "P2"),
        K("vrrp_netlink_cmd_rcv_bufs_force", set_bool("vrrp_netlink_cmd_rcv_bufs_force"), "P2"),
        K("vrrp_netlink_monitor_rcv_bufs", h_rcv_bufs("vrrp_netlink_monitor_rcv_bufs"), "P2"),
        K("vrrp_netlink_monitor_rcv_bufs_force", set_bool("vrrp_netlink_monitor_rcv_bufs_force"), "P2"),
        K("process_monitor_rcv_bufs", h_rcv_bufs("process_monitor_rcv_bufs"), "P2"),
        K("process_monitor_rcv_bufs_force", set_bool("process_monitor_rcv_bufs_force"), "P2"),
        K("vrrp_rx_bufs_policy", set_str("vrrp_rx_bufs_policy"), "P2"),
        K("vrrp_rx_bufs_multiplier", set_uint("vrrp_rx_bufs_multiplier", 1), "P2"),
        _timer_kw("vrrp_startup_delay", "P1", 0, TIMER_MAX),
        _timer_kw("vrrp_delay_after_boot", "P2", 0, TIMER_MAX, since="2.4.0"),
        K("log_unknown_vrids", set_flag("log_unknown_vrids"), "P2"),
        K("vmac_prefix", set_str("vmac_prefix"), "P2"),
        K("vmac_addr_prefix", set_str("vmac_addr_prefix"), "P2"),
        K("lvs_sync_daemon", h_lvs_sync_daemon, "P2"),
        K("lvs_timeouts", h_lvs_timeouts, "P2"),
        K("lvs_flush", set_flag("lvs_flush"), "P1"),
        K("lvs_flush_on_stop", h_lvs_flush_on_stop, "P2"),
        K("lvs_netlink_cmd_rcv_bufs", h_rcv_bufs("lvs_netlink_cmd_rcv_bufs"), "P2"),
        K("lvs_netlink_cmd_rcv_bufs_force", set_bool("lvs_netlink_cmd_rcv_bufs_force"), "P2"),
        K("lvs_netlink_monitor_rcv_bufs", h_rcv_bufs("lvs_netlink_monitor_rcv_bufs"), "P2"),
        K("lvs_netlink_monitor_rcv_bufs_force", set_bool("lvs_netlink_monitor_rcv_bufs_force"), "P2"),
        K("nftables_ipvs", set_opt_str("nftables_ipvs", "keepalived"), "P2", supported=NS),
        K("nftables_ipvs_priority", set_int("nftables_ipvs_priority", -INT_MAX, INT_MAX), "P2", supported=NS),
        K("nftables_ipvs_start_fwmark", set_uint("nftables_ipvs_start_fwmark", 1), "P2", supported=NS),
        K("linkbeat_use_polling", set_flag("linkbeat_use_polling"), "P2", supported=NS),
    )
    for old, new in (
        ("enable_snmp_keepalived", "enable_snmp_vrrp"),
        ("vrrp_rlimit_rtime", "vrrp_rlimit_rttime"),
        ("checker_rlimit_rtime", "checker_rlimit_rttime"),
        ("bfd_rlimit_rtime", "bfd_rlimit_rttime"),
        ("vrrp_vmac_garp_intvl", "vrrp_garp_extra_if"),
        ("lvs_flush_onstop", "lvs_flush_on_stop"),
        ("lvs_process_name", "checker_process_name"),
    ):
        if new.endswith("rttime"):
            G.add(K(new, set_uint(new, 2), "P2", supported=NS))
        G.add(alias(G.keywords[new], old))

    # ---------------------------------------------------------------- vrrp_script
    VRRP_SCRIPT.add(
        K("script", set_script("script", whole_line=True, user_allowed=False), "P0"),
        _timer_kw("interval", "P0", 0, TIMER_MAX),
        _timer_kw("timeout", "P1", 0, TIMER_MAX),
        K("weight", h_weight(-254, 254), "P0"),
        K("rise", set_uint("rise", 1, INT_MAX), "P0"),
        K("fall", set_uint("fall", 1, INT_MAX), "P0"),
        K("user", h_script_user_of("script"), "P1"),
        K("init_fail", set_flag("init_fail"), "P2"),
    )

    # ---------------------------------------------------------------- track_file
    TRACK_FILE.add(
        K("file", h_file_name, "P1"),
        K("weight", h_weight(-INT_MAX, INT_MAX), "P1"),
        K("init_file", h_init_file, "P2"),
    )

    # ---------------------------------------------------------------- vrrp_track_process
    TRACK_PROCESS.add(
        K("process", h_process, "P1"),
        K("param_match", h_param_match, "P2"),
        K("weight", h_weight(-254, 254), "P1"),
        K("quorum", set_uint("quorum", 1, 65535), "P1"),
        K("quorum_max", set_uint("quorum_max", 0, 65535), "P2"),
        _timer_kw("delay", "P2", 0.000001, 3600),
        _timer_kw("fork_delay", "P2", 0.000001, 3600),
        _timer_kw("terminate_delay", "P2", 0.000001, 3600),
        K("full_command", set_flag("full_command"), "P2"),
    )

    # ---------------------------------------------------------------- tracking blocks (shared)
    def tracking(block: Block) -> None:
        block.add(
            KL("track_interface", track_interface_block, "P1"),
            KL("track_script", track_ref_block("track_script", -253, 253), "P0"),
            KL("track_file", track_ref_block("track_file", -254, 254), "P1"),
            KL("track_process", track_ref_block("track_process", -254, 254), "P1"),
            KL("track_bfd", track_ref_block("track_bfd", -253, 253), "P2", supported=NS),
        )

    # ---------------------------------------------------------------- vrrp_sync_group
    tracking(SYNC_GROUP)
    SYNC_GROUP.add(
        KL("group", h_sync_group_members, "P1"),
        K("notify_master", set_script("notify_master"), "P1"),
        K("notify_backup", set_script("notify_backup"), "P1"),
        K("notify_fault", set_script("notify_fault"), "P1"),
        K("notify_stop", set_script("notify_stop"), "P1"),
        K("notify", set_script("notify"), "P1"),
        K("smtp_alert", set_bool("smtp_alert"), "P2"),
        K("notify_priority_changes", set_bool("notify_priority_changes"), "P2"),
        K("sync_group_tracking_weight", set_flag("sync_group_tracking_weight"), "P2"),
        K(
            "global_tracking",
            h_global_tracking,
            "P2",
            deprecated="global_tracking is deprecated. Use track_interface/script/file on the sync group",
        ),
    )

    # ---------------------------------------------------------------- garp_group / track_group
    GARP_GROUP.add(
        _timer_kw("garp_interval", "P2"),
        _timer_kw("gna_interval", "P2"),
        K("interface", h_garp_interface, "P2"),
        KL("interfaces", name_list_block("interfaces"), "P2"),
    )
    TRACK_GROUP.add(KL("group", name_list_block("group"), "P2"))

    # ---------------------------------------------------------------- vrrp_instance
    V = VRRP_INSTANCE
    tracking(V)
    V.add(
        K("state", h_state, "P0"),
        K("interface", set_str("interface", "an interface name"), "P0"),
        K("virtual_router_id", set_uint("virtual_router_id", 1, 255), "P0"),
        K("priority", h_priority, "P0"),
        K("advert_int", h_advert_int, "P0"),
        KL("virtual_ipaddress", address_block("virtual_ipaddress"), "P0"),
        KL("virtual_ipaddress_excluded", address_block("virtual_ipaddress_excluded"), "P1"),
        K("no_virtual_ipaddress", set_flag("no_virtual_ipaddress"), "P2", since="2.2.8"),
        K("version", h_version, "P1"),
        K("nopreempt", set_flag("nopreempt"), "P0"),
        K("preempt", h_preempt, "P2"),
        _timer_kw("preempt_delay", "P1", 0, 1000),
        KB("authentication", h_authentication, AUTHENTICATION, "P0"),
        KB("auth_hmac", h_auth_hmac, AUTH_HMAC, "P2", supported=NS),
        K("strict_mode", h_strict_mode, "P1"),
        K("accept", h_accept(True), "P1"),
        K("no_accept", h_accept(False), "P1"),
        K("skip_check_adv_addr", h_skip_check_adv_addr, "P2"),
        K("debug", set_uint("debug", 0, 4), "P2"),
        KL("unicast_peer", h_unicast_peer, "P0"),
        K("unicast_src_ip", set_ip("unicast_src_ip"), "P0"),
        K("mcast_src_ip", set_ip("mcast_src_ip"), "P1"),
        K("mcast_dst_ip", h_mcast_dst_ip, "P2"),
        K("check_unicast_src", set_flag("check_unicast_src"), "P1"),
        K("unicast_fault_no_peer", set_flag("unicast_fault_no_peer"), "P2"),
        K("unicast_ttl", set_uint("unicast_ttl", 0, 255), "P2"),
        K("old_unicast_checksum", h_old_unicast_checksum, "P2"),
        K("v3_checksum_as_v2", set_bool("v3_checksum_as_v2"), "P2", since="2.2.8"),
        K("track_src_ip", set_flag("track_src_ip"), "P2"),
        K("vrf", set_str("vrf"), "P2", supported=NS),
        K("native_ipv6", set_flag("native_ipv6"), "P2", deprecated="native_ipv6 is deprecated"),
        K("kernel_rx_buf_size", set_uint("kernel_rx_buf_size", 1), "P2"),
        K("use_vmac", h_use_vmac, "P1"),
        K("use_vmac_addr", set_flag("use_vmac_addr"), "P2"),
        K("vmac_xmit_base", h_vmac_xmit_base, "P2"),
        K("use_ipvlan", h_use_ipvlan, "P2", supported=NS),
        K("dont_track_primary", set_flag("dont_track_primary"), "P1"),
        K("linkbeat_use_polling", set_flag("linkbeat_use_polling"), "P2", supported=NS),
        K("promote_secondaries", set_flag("promote_secondaries"), "P2"),
        KL("virtual_routes", route_block("virtual_routes"), "P1"),
        KL("virtual_rules", rule_block("virtual_rules"), "P2"),
        _timer_kw("garp_master_delay", "P1", 0, TIMER_MAX),
        K("garp_master_repeat", set_uint("garp_master_repeat", 0, INT_MAX), "P1"),
        _timer_kw("garp_master_refresh", "P1", 0, TIMER_MAX),
        K("garp_master_refresh_repeat", set_uint("garp_master_refresh_repeat", 0, INT_MAX), "P2"),
        _timer_kw("garp_lower_prio_delay", "P2", 0, TIMER_MAX),
        K("garp_lower_prio_repeat", set_uint("garp_lower_prio_repeat", 0, INT_MAX), "P2"),
        K("garp_extra_if", h_garp_extra_if(""), "P2"),
        K("down_timer_adverts", set_uint("down_timer_adverts", 1, 100), "P2"),
        K("lower_prio_no_advert", set_bool("lower_prio_no_advert"), "P2"),
        K("higher_prio_send_advert", set_bool("higher_prio_send_advert"), "P2"),
        K("owner_ignore_adverts", set_bool("owner_ignore_adverts"), "P2", since="2.3.3"),
        K("timer_expired_backup", h_timer_expired_backup, "P2", since="2.2.8"),
        K("notify_master", set_script("notify_master"), "P0"),
        K("notify_backup", set_script("notify_backup"), "P0"),
        K("notify_fault", set_script("notify_fault"), "P0"),
        K("notify_stop", set_script("notify_stop"), "P1"),
        K("notify_deleted", h_notify_deleted, "P2"),
        K("notify", set_script("notify"), "P0"),
        K("notify_master_rx_lower_pri", set_script("notify_master_rx_lower_pri"), "P2"),
        K("notify_priority_changes", set_bool("notify_priority_changes"), "P2"),
        K("smtp_alert", set_bool("smtp_alert"), "P1"),
        K("lvs_sync_daemon_interface", h_lvs_sync_daemon_interface, "P2"),
    )
    V.add(
        alias(V.keywords["garp_extra_if"], "vmac_garp_intvl"),
        alias(V.keywords["timer_expired_backup"], "thread_timer_expired"),
    )
    AUTHENTICATION.add(K("auth_type", h_auth_type, "P0"), K("auth_pass", h_auth_pass, "P0"))
    AUTH_HMAC.add(
        *(
            K(name, ignore, "P2", supported=NS, since="2.4.0")
            for name in ("key", "active_key", "anti_replay", "time_window", "mode")
        )
    )

    # ---------------------------------------------------------------- bfd_instance / SSL
    BFD_INSTANCE.add(
        K("neighbor_ip", set_ip("neighbor_ip"), "P2"),
        K("source_ip", set_ip("source_ip"), "P2"),
        _timer_kw("min_rx", "P2", 0.001, TIMER_MAX),
        _timer_kw("min_tx", "P2", 0.001, TIMER_MAX),
        _timer_kw("idle_tx", "P2", 1000, TIMER_MAX * 1000),
        K("multiplier", set_uint("multiplier", 1, 255), "P2"),
        K("passive", set_flag("passive"), "P2"),
        K("ttl", set_uint("ttl", 1, 255), "P2"),
        K("hoplimit", set_uint("hoplimit", 1, 255), "P2"),
        K("max_hops", set_int("max_hops", -1, 255), "P2"),
        K("multihop", set_bool("multihop"), "P2", since="2.2.8"),
        K("weight", h_weight(-253, 253), "P2"),
        K("vrrp", set_flag("vrrp"), "P2"),
        K("checker", set_flag("checker"), "P2"),
    )
    BFD_INSTANCE.add(alias(BFD_INSTANCE.keywords["neighbor_ip"], "neighbour_ip"))
    SSL.add(
        K("password", set_str("password"), "P2"),
        K("ca", set_str("ca"), "P2"),
        K("certificate", set_str("certificate"), "P2"),
        K("key", set_str("key"), "P2"),
    )

    # ---------------------------------------------------------------- virtual_server
    VS = VIRTUAL_SERVER
    VS.add(
        K("lb_algo", h_lb_algo, "P0"),
        K("lb_kind", h_lb_kind, "P0"),
        K("protocol", h_protocol, "P0"),
        K("persistence_timeout", h_persistence_timeout, "P0"),
        K("persistence_granularity", h_persistence_granularity, "P1"),
        K("persistence_engine", set_str("persistence_engine"), "P2"),
        K("ops", set_flag("ops"), "P2"),
        K("hashed", set_flag("hashed"), "P2"),
        K("flag-1", h_sched_flag("flag_1"), "P2"),
        K("flag-2", h_sched_flag("flag_2"), "P2"),
        K("flag-3", h_sched_flag("flag_3"), "P2"),
        K("sh-port", h_sched_flag("sh_port"), "P2"),
        K("sh-fallback", h_sched_flag("sh_fallback"), "P2"),
        K("mh-port", h_sched_flag("mh_port"), "P2"),
        K("mh-fallback", h_sched_flag("mh_fallback"), "P2"),
        _timer_kw("delay_loop", "P0"),
        _timer_kw("connect_timeout", "P0"),
        K("retry", set_uint("retry", 1, UINT_MAX), "P0"),
        _timer_kw("delay_before_retry", "P0", 0, TIMER_MAX),
        _timer_kw("warmup", "P1", 0, TIMER_MAX),
        K("inhibit_on_failure", set_bool("inhibit_on_failure"), "P1"),
        K("alpha", set_bool("alpha"), "P1"),
        K("omega", set_bool("omega"), "P2"),
        K("quorum", set_uint("quorum", 1, UINT_MAX), "P1"),
        K("hysteresis", set_uint("hysteresis", 0, UINT_MAX), "P2"),
        K("quorum_up", set_script("quorum_up"), "P1"),
        K("quorum_down", set_script("quorum_down"), "P1"),
        K("sorry_server", h_sorry_server, "P1"),
        K("sorry_server_inhibit", set_bool("sorry_server_inhibit"), "P2"),
        K("sorry_server_lvs_method", h_sorry_server_lvs_method, "P2"),
        K("ha_suspend", set_flag("ha_suspend"), "P1"),
        K("virtualhost", h_virtualhost, "P1"),
        K("smtp_alert", set_bool("smtp_alert"), "P2"),
        K("weight", set_uint("weight", 0, INT_MAX), "P2"),
        K("ip_family", h_ip_family, "P2"),
        K("snmp_name", set_str("snmp_name"), "P2", supported=NS),
        KB("real_server", h_real_server, REAL_SERVER, "P0"),
    )
    VS.add(
        alias(VS.keywords["lb_algo"], "lvs_sched"),
        alias(VS.keywords["lb_kind"], "lvs_method"),
    )

    # ---------------------------------------------------------------- real_server
    RS = REAL_SERVER
    RS.add(
        K("weight", set_uint("weight", 0, INT_MAX), "P0"),
        K("lvs_method", h_lb_kind, "P1"),
        K("inhibit_on_failure", set_bool("inhibit_on_failure"), "P1"),
        K("notify_up", set_script("notify_up"), "P1"),
        K("notify_down", set_script("notify_down"), "P1"),
        K("uthreshold", set_uint("uthreshold", 0, UINT_MAX), "P2"),
        K("lthreshold", set_uint("lthreshold", 0, UINT_MAX), "P2"),
        K("alpha", set_bool("alpha"), "P1"),
        _timer_kw("connect_timeout", "P0"),
        K("retry", set_uint("retry", 0, UINT_MAX), "P0"),
        _timer_kw("delay_before_retry", "P0", 0, TIMER_MAX),
        _timer_kw("warmup", "P0", 0, TIMER_MAX),
        _timer_kw("delay_loop", "P0"),
        K("smtp_alert", set_bool("smtp_alert"), "P2"),
        K("virtualhost", h_virtualhost, "P1"),
        K("snmp_name", set_str("snmp_name"), "P2", supported=NS),
    )
    for kind in m.CHECKER_TYPES:
        RS.add(
            KB(
                kind,
                h_checker(kind),
                CHECKERS[kind],
                "P0" if kind in ("TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK") else "P2",
                supported=kind != "BFD_CHECK",
            )
        )

    # ---------------------------------------------------------------- checkers
    common = [
        K("connect_ip", set_ip("connect_ip"), "P1"),
        K("connect_port", set_uint("connect_port", 1, 65535), "P0"),
        K("bindto", set_ip("bindto"), "P2"),
        K("bind_port", set_uint("bind_port", 1, 65535), "P2"),
        K("bind_if", set_str("bind_if"), "P2"),
        _timer_kw("connect_timeout", "P0"),
        K("fwmark", set_uint("fwmark", 0, UINT_MAX), "P2"),
    ]
    timing = [
        K("retry", set_uint("retry", 0, UINT_MAX), "P0"),
        _timer_kw("delay_before_retry", "P0", 0, TIMER_MAX),
        _timer_kw("warmup", "P1", 0, TIMER_MAX),
        _timer_kw("delay_loop", "P0"),
        K("alpha", set_bool("alpha"), "P1"),
        K("log_all_failures", set_bool("log_all_failures"), "P2"),
    ]
    for kind in ("TCP_CHECK", "HTTP_GET", "SSL_GET", "SMTP_CHECK", "DNS_CHECK", "UDP_CHECK", "PING_CHECK"):
        CHECKERS[kind].add(*common, *timing)
    for kind in ("HTTP_GET", "SSL_GET"):
        CHECKERS[kind].add(
            alias(
                CHECKERS[kind].keywords["retry"],
                "nb_get_retry",
                deprecated="nb_get_retry is deprecated - please use 'retry'",
            ),
            KB("url", h_url, URL, "P0"),
            K("virtualhost", h_virtualhost, "P1"),
            K("http_protocol", h_http_protocol, "P1"),
            K("fast_recovery", set_bool("fast_recovery"), "P2"),
        )
    CHECKERS["SSL_GET"].add(
        K("enable_sni", set_bool("enable_sni"), "P1"),
        K("sni_name", set_str("sni_name"), "P2", since="master"),
        K("tls_compliant", set_bool("tls_compliant"), "P2", since="2.2.8"),
    )
    URL.add(
        K("path", h_path, "P0"),
        K("digest", h_digest, "P1"),
        K("status_code", h_status_code, "P0"),
        K("virtualhost", h_virtualhost, "P1"),
        K("regex", h_regex, "P2"),
        K("regex_no_match", set_flag("regex_no_match"), "P2"),
        K("regex_options", h_word_list("regex_options"), "P2"),
        K("regex_stack", h_regex_stack, "P2"),
        K("regex_min_offset", set_uint("regex_min_offset"), "P2"),
        K("regex_max_offset", set_uint("regex_max_offset"), "P2"),
        K("tls_compliant", set_flag("tls_compliant"), "P2", since="2.2.8"),
    )
    CHECKERS["MISC_CHECK"].add(
        K("misc_path", set_script("misc_path", whole_line=True, user_allowed=False), "P0"),
        _timer_kw("misc_timeout", "P0"),
        K("misc_dynamic", set_flag("misc_dynamic"), "P1"),
        K("user", h_misc_user, "P1"),
        *timing,
    )
    CHECKERS["SMTP_CHECK"].add(
        K("helo_name", set_str("helo_name"), "P2"),
        KB("host", h_smtp_host, SMTP_HOST, "P2"),
    )
    SMTP_HOST.add(*common)
    CHECKERS["DNS_CHECK"].add(K("type", h_dns_type, "P2"), K("name", h_dns_name, "P2"))
    CHECKERS["UDP_CHECK"].add(
        K("payload", h_payload, "P2"),
        K("require_reply", h_require_reply, "P2"),
        K("min_reply_length", set_uint("min_reply_length", 0, 65535), "P2"),
        K("max_reply_length", set_uint("max_reply_length", 0, 65535), "P2"),
    )
    CHECKERS["FILE_CHECK"].add(
        K("track_file", set_str("track_file"), "P2"),
        K("weight", h_file_check_weight, "P2"),
    )
    CHECKERS["BFD_CHECK"].add(
        K("name", set_str("name"), "P2", supported=NS),
        K("alpha", set_bool("alpha"), "P2", supported=NS),
    )


_fill_tables()


@dataclass(frozen=True, slots=True)
class KeywordInfo:
    block: str
    name: str
    prio: str
    supported: bool
    deprecated: bool


def all_keywords() -> list[KeywordInfo]:
    """Every keyword fastka knows, per block (for docs and tests)."""
    blocks = [
        ROOT,
        GLOBAL_DEFS,
        VRRP_SCRIPT,
        TRACK_FILE,
        TRACK_PROCESS,
        SYNC_GROUP,
        GARP_GROUP,
        VRRP_INSTANCE,
        AUTHENTICATION,
        AUTH_HMAC,
        TRACK_GROUP,
        BFD_INSTANCE,
        SSL,
        VIRTUAL_SERVER,
        REAL_SERVER,
        URL,
        SMTP_HOST,
        *CHECKERS.values(),
    ]
    return [
        KeywordInfo(b.name, kw.name, kw.prio, kw.supported, kw.deprecated is not None)
        for b in blocks
        for kw in b.keywords.values()
    ]
