"""Hypothesis properties: whatever the input, the preprocessor and compiler return tokens /
a model plus diagnostics -- never another exception -- and the JSON dump round-trips."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastka.config import Host, jsonio, loads
from fastka.config import grammar as g
from fastka.config.compile import INTERNAL_ERROR
from fastka.config.diagnostics import Diagnostics, Status
from fastka.config.lexer import Preprocessor, brace_expand, decomment, split_argv, split_words

HOST = Host(hostname="prop.example", interfaces=lambda name: name == "eth0", check_scripts=False)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that is mostly the language's own punctuation, so the interesting paths are hit.
_PIECES = [
    *" \t\n{}\"'\\#!$@^~(),=_-./:0123456789abcxyzSEQLSTx",
    *("$A", "${A}", "$A=", "${_RANDOM 1 9}", "${_HASH}", "${_PWD}", "~SEQ(", "~LST(", "@lb1 ", "@^lb1 "),
    *("include ", " \\\n", "vrrp_instance ", "virtual_server ", "real_server ", "{\n", "}\n"),
]
SYNTAX = st.lists(st.sampled_from(_PIECES), max_size=120).map("".join)

KEYWORDS = sorted({k.name for k in g.all_keywords()})
VALUES = st.sampled_from(
    ["1", "0", "-1", "255", "256", "1.5", "0.000001", "abc", "10.0.0.1", "10.0.0.1/24", "fe80::1", "eth0", "yes",
     "off", "MASTER", "NAT", "TCP", "200-299", '"/bin/true arg"', "'x y'", "{", "}", "weight", "reverse"]
)  # fmt: skip


@st.composite
def structured(draw: st.DrawFn) -> str:
    """Random nesting of real keywords with plausible and implausible values."""
    lines: list[str] = []
    depth = 0
    for _ in range(draw(st.integers(0, 40))):
        choice = draw(st.integers(0, 9))
        if choice == 0 and depth:
            lines.append("}")
            depth -= 1
            continue
        words = [draw(st.sampled_from(KEYWORDS))]
        words += draw(st.lists(VALUES, max_size=3))
        if choice in (1, 2):
            words.append("{")
            depth += 1
        lines.append(" ".join(words))
    lines.extend("}" * depth)
    return "\n".join(lines) + "\n"


def _check(text: str) -> None:
    config, diags = loads(
        text, host=HOST, config_id="lb1", random_seed=0, max_lines=5000, include_root="/nonexistent"
    )
    for d in diags:
        assert isinstance(d.status, Status) and d.message
        assert not d.message.startswith(INTERNAL_ERROR), d.message
        assert str(d)
    assert jsonio.loads(jsonio.dumps(config)) == config


@SETTINGS
@given(SYNTAX)
def test_preprocessor_never_raises(text: str) -> None:
    diag = Diagnostics()
    lines = Preprocessor(diag, config_id="lb1", random_seed=0, max_lines=5000).read_string(
        text, "p.conf", "/nonexistent"
    )
    for line in lines:
        assert line.words, line
        assert all(isinstance(w, str) for w in line.words)
        assert line.location.file == "p.conf" and line.location.line >= 1
    assert all(d.message for d in diag)


@SETTINGS
@given(SYNTAX)
def test_compiler_never_raises_on_syntax_soup(text: str) -> None:
    _check(text)


@SETTINGS
@given(structured())
def test_compiler_never_raises_on_keyword_soup(text: str) -> None:
    _check(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_token_helpers_never_raise(text: str) -> None:
    decomment(text)
    segments, _error = split_words(text)
    for words, raw in segments:
        assert words and isinstance(raw, str)
        # unquoted braces are always their own words and end a logical line (a quoted
        # "{" is an ordinary word that happens to read "{")
        assert all(w not in ("{", "}") for w in words[:-1]) or "'" in raw or '"' in raw
    split_argv(text)
    assert brace_expand(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="abc ", min_size=1, max_size=6), min_size=1, max_size=6))
def test_plain_words_survive_tokenising(words: list[str]) -> None:
    """Words without special characters come out as ``str.split`` would give them."""
    text = " ".join(words)
    segments, error = split_words(text)
    assert error is None
    assert [w for seg, _ in segments for w in seg] == text.split()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=5))
def test_quoted_arguments_round_trip(args: list[str]) -> None:
    """``split_argv`` undoes single-quoting of arbitrary words."""
    quoted = " ".join("'" + a.replace("'", "\\'") + " x'" for a in args)
    assert split_argv(quoted) == [a + " x" for a in args]
