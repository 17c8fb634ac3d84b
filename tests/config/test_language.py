"""The configuration language (catalogue §1): one test per feature of the preprocessor."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from cfghelp import compile_text, problems

from fastka.config.diagnostics import Diagnostics, Status
from fastka.config.lexer import (
    Line,
    Preprocessor,
    brace_expand,
    decomment,
    split_argv,
    split_script,
    split_words,
)


def pre(text: str, *, config_id: str = "lb1", **kwargs: object) -> tuple[list[Line], Diagnostics]:
    diag = Diagnostics()
    p = Preprocessor(diag, config_id=config_id, **kwargs)  # type: ignore[arg-type]
    lines = p.read_string(textwrap.dedent(text), "test.conf", "/nonexistent-dir")
    return lines, diag


def words(text: str, **kwargs: object) -> list[list[str]]:
    lines, _ = pre(text, **kwargs)
    return [line.words for line in lines]


# --------------------------------------------------------------------------- comments
def test_comments_hash_and_bang() -> None:
    assert words("a b # c\n! whole line\nd ! e\n") == [["a", "b"], ["d"]]


def test_comment_inside_double_quotes_is_text() -> None:
    assert words('a "b # c ! d" e # f\n') == [["a", "b # c ! d", "e"]]


def test_single_quotes_do_not_protect_comments() -> None:
    # Keepalived: only double quotes protect # and ! (catalogue §1)
    assert words("a 'b # c' d\n") == [["a", "'b"]] or words("a 'b # c' d\n") == [["a", "b"]]


def test_escaped_comment_characters_are_literal() -> None:
    assert words("a b\\#c d\\!e # comment\n") == [["a", "b#c", "d!e"]]


def test_decomment_continuation() -> None:
    assert decomment("abc \\") == ("abc", True)
    assert decomment("abc \\\\") == ("abc \\\\", False)
    assert decomment("abc # x \\") == ("abc", False)


# --------------------------------------------------------------------------- quoting, braces
def test_quotes_group_words_and_may_start_mid_token() -> None:
    assert split_words('abcd" efg h jkl "mnop')[0] == [(["abcd efg h jkl mnop"], 'abcd" efg h jkl "mnop')]
    assert split_words("abcd 'efg h jkl' mnop")[0][0][0] == ["abcd", "efg h jkl", "mnop"]


def test_unterminated_quote_is_reported() -> None:
    _, diag = pre('a "b c\n')
    assert problems(diag) == ["Unmatched quote: 'a \"b c'"]


def test_braces_split_logical_lines() -> None:
    assert words("a { b c } d\n") == [["a", "{"], ["b", "c"], ["}"], ["d"]]
    assert words("x{y}\n") == [["x", "{"], ["y"], ["}"]]
    assert words('a "{ not a brace }" {\n') == [["a", "{ not a brace }", "{"]]


def test_brace_on_its_own_line_opens_the_block_of_the_previous_keyword() -> None:
    config, diags = compile_text(
        """
        vrrp_instance VI_1
        {
            interface eth0
            virtual_router_id 7
            virtual_ipaddress
            {
                10.0.0.1
            }
        }
        """
    )
    assert problems(diags) == []
    assert config.vrrp_instances["VI_1"].virtual_router_id == 7


def test_block_on_one_line() -> None:
    config, diags = compile_text(
        "vrrp_instance VI_1 { interface eth0\nvirtual_router_id 9\nvirtual_ipaddress { 10.0.0.1 } }\n"
    )
    assert problems(diags) == []
    assert str(config.vrrp_instances["VI_1"].virtual_ipaddress[0].address) == "10.0.0.1/32"


def test_extra_and_missing_braces() -> None:
    _, diags = compile_text("global_defs {\n router_id x\n}\n}\n")
    assert [(d.location.line if d.location else None, d.message) for d in diags] == [(4, "Extra '}' found")]
    _, diags = compile_text("global_defs {\n router_id x\n")
    assert problems(diags) == ["There are 1 missing '}'s or extra '{'s"]


# --------------------------------------------------------------------------- script quoting
def test_split_argv_single_quotes_and_escapes() -> None:
    # the man page's example: ' spaces\\x20f\x69le ' and '\"s p a c e \"'
    command, extra = split_script(
        "\"/etc/keepalived/notify_event.sh ' spaces\\\\x20f\\x69le ' '\\\"s p a c e \\\"' SG1.low master\" user group"
    )
    assert split_argv(command) == [
        "/etc/keepalived/notify_event.sh",
        " spaces\\x20file ",
        '"s p a c e "',
        "SG1.low",
        "master",
    ]
    assert extra == ["user", "group"]


@pytest.mark.parametrize(
    ("escaped", "char"),
    [("\\a", "\a"), ("\\b", "\b"), ("\\E", "\x1b"), ("\\f", "\f"), ("\\n", "\n"), ("\\r", "\r"), ("\\t", "\t"),
     ("\\v", "\v"), ("\\101", "A"), ("\\x41", "A"), ("\\cA", "\x01"), ("\\q", "q"), ("\\\\", "\\")],
)  # fmt: skip
def test_split_argv_escape(escaped: str, char: str) -> None:
    assert split_argv(f"x{escaped}y") == [f"x{char}y"]


def test_notify_script_with_user_and_group() -> None:
    config, diags = compile_text(
        """
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 1
            virtual_ipaddress {
                10.0.0.1
            }
            notify_master "/usr/bin/notify.sh 'two words' x" nobody :nogroup
            notify_backup /usr/bin/backup.sh nobody:nogroup
            notify /usr/bin/n.sh
        }
        """
    )
    assert problems(diags) == []
    vi = config.vrrp_instances["VI_1"]
    assert vi.notify_master is not None
    assert vi.notify_master.argv == ("/usr/bin/notify.sh", "two words", "x")
    assert (vi.notify_master.user, vi.notify_master.group, vi.notify_master.supplementary_groups) == (
        "nobody",
        "nogroup",
        True,
    )
    assert vi.notify_backup is not None and vi.notify_backup.argv == ("/usr/bin/backup.sh",)
    assert (vi.notify_backup.user, vi.notify_backup.group) == ("nobody", "nogroup")
    assert vi.notify is not None and vi.notify.user is None


# --------------------------------------------------------------------------- conditionals
def test_conditional_lines() -> None:
    text = "@lb1 a 1\n@lb2 a 2\n@^lb1 b 1\n@^lb2 b 2\n@lb1\nc\n"
    assert words(text, config_id="lb1") == [["a", "1"], ["b", "2"], ["c"]]
    assert words(text, config_id="lb2") == [["a", "2"], ["b", "1"], ["c"]]


def test_config_id_defaults_to_host_name(tmp_path: Path) -> None:
    from fastka.config import load
    from fastka.config.compile import Host

    path = tmp_path / "k.conf"
    path.write_text("global_defs {\n@lb1 router_id one\n@lb2 router_id two\n}\n")
    config, _ = load(str(path), host=Host(hostname="lb2.example.com", check_scripts=False))
    assert config.global_defs.router_id == "two"


# --------------------------------------------------------------------------- definitions
def test_definition_and_substitution() -> None:
    text = "$A=10\n$B=x\nv $A\nw ${A}0 ${B}y\nz $Ax\n"
    assert words(text) == [["v", "10"], ["w", "100", "xy"], ["z", "$Ax"]]


def test_substitution_is_recursive_and_at_use_time() -> None:
    # the man page's ADDRESS_BASE example
    text = """
    $ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}
    $ADDRESS_BASE_SUB=0
    ${ADDRESS_BASE}.100/32
    $ADDRESS_BASE_SUB=10
    ${ADDRESS_BASE}.100/32
    """
    assert words(text) == [["10.2.0.100/32"], ["10.2.10.100/32"]]


def test_undefined_names_are_left_verbatim() -> None:
    assert words('script "/bin/x $HOME ${UNDEF}"\n') == [["script", "/bin/x $HOME ${UNDEF}"]]


def test_empty_definition_and_conditional_definition() -> None:
    text = "$E=\n@lb1 $P=240\n@lb2 $P=200\nx${E}y $P\n$IF_MAIN=@lb1\n$IF_MAIN priority 240\n"
    assert words(text, config_id="lb1") == [["xy", "240"], ["priority", "240"]]
    assert words(text, config_id="lb2") == [["xy", "200"]]


def test_multiline_definition_nested() -> None:
    text = r"""
    $RS= \
    real_server 192.168.${VS_NUM}.${RS_NUM} 80 { \
        weight 1 \
    }
    $VS= \
    virtual_server 10.0.${VS_NUM}.4 80 { \
        $RS_NUM=1 \
        $RS \
        $RS_NUM=2 \
        $RS \
    }
    $VS_NUM=0
    $VS
    $VS_NUM=1
    $VS
    """
    lines, diags = pre(text)
    assert problems(diags) == []
    got = [" ".join(line.words) for line in lines]
    assert got == [
        "virtual_server 10.0.0.4 80 {",
        "real_server 192.168.0.1 80 {",
        "weight 1",
        "}",
        "real_server 192.168.0.2 80 {",
        "weight 1",
        "}",
        "}",
        "virtual_server 10.0.1.4 80 {",
        "real_server 192.168.1.1 80 {",
        "weight 1",
        "}",
        "real_server 192.168.1.2 80 {",
        "weight 1",
        "}",
        "}",
    ]
    # every expanded line keeps the line of the use site
    assert {line.location.line for line in lines[:8]} == {14}
    assert {line.location.line for line in lines[8:]} == {16}


def test_multiline_definition_with_conditionals_compiles() -> None:
    text = r"""
    $INSTANCE= \
    vrrp_instance VI_${NUM} { \
        interface eth0 \
        virtual_router_id ${NUM} \
        @high priority 130 \
        @low priority 120 \
        virtual_ipaddress { \
            10.0.${NUM}.254/24 \
        } \
    }
    ~SEQ(NUM, 1, 3) $INSTANCE
    """
    config, diags = compile_text(text, config_id="low")
    assert problems(diags) == []
    assert list(config.vrrp_instances) == ["VI_1", "VI_2", "VI_3"]
    assert {vi.priority for vi in config.vrrp_instances.values()} == {120}
    assert str(config.vrrp_instances["VI_3"].virtual_ipaddress[0].address) == "10.0.3.254/24"


# --------------------------------------------------------------------------- predefined
def test_predefined_definitions(tmp_path: Path) -> None:
    path = tmp_path / "k.conf"
    path.write_text(
        "a ${_PWD} ${_INSTANCE}\nb x${_HASH}y${_BANG}z\nc ${_ENV FASTKA_T}\nd ${_RANDOM 5 5} ${_RANDOM 7}\n"
    )
    diag = Diagnostics()
    p = Preprocessor(diag, config_id="lb1", environ={"FASTKA_T": "val"}, random_seed=1)
    lines = p.read_file(str(path))
    assert lines[0].words == ["a", str(tmp_path), "lb1"]
    assert lines[1].words == ["b", "x#y!z"]
    assert lines[2].words == ["c", "val"]
    assert lines[3].words[1] == "5" and 7 <= int(lines[3].words[2]) <= 32767
    assert problems(diag) == []


def test_random_is_repeatable_with_a_seed() -> None:
    text = "x ${_RANDOM} ${_RANDOM 1 1000}\n"
    first = words(text, random_seed=42)
    assert first == words(text, random_seed=42)
    assert 0 <= int(first[0][1]) <= 32767


def test_random_seed_in_global_defs_seeds_random() -> None:
    text = "global_defs {\nrandom_seed 7\n}\nx ${_RANDOM}\n"
    assert words(text, random_seed=1)[-1] == words(text, random_seed=2)[-1]


def test_random_with_bad_parameters() -> None:
    _, diag = pre("x ${_RANDOM a b c}\n")
    assert problems(diag) == ["Too many parameters or extra text for ${_RANDOM a b c}"]


# --------------------------------------------------------------------------- ~SEQ / ~LST
@pytest.mark.parametrize(
    ("spec", "values"),
    [
        ("~SEQ(I, 0, 3)", ["0", "1", "2", "3"]),
        ("~SEQ(I, 1, 2, 7)", ["1", "3", "5", "7"]),
        ("~SEQ(I, 3)", ["1", "2", "3"]),
        ("~SEQ(I, -2)", ["-1", "-2"]),
        ("~SEQ(I, 5, 3)", ["5", "4", "3"]),
        ("~SEQ(I, 10, -5, 0)", ["10", "5", "0"]),
        ("~SEQx(I, 0x90, 0x10, 0xc0)", ["90", "a0", "b0", "c0"]),
        ("~SEQx(I, 144, 16, 192)", ["90", "a0", "b0", "c0"]),
    ],
)
def test_seq(spec: str, values: list[str]) -> None:
    assert words(f"{spec} ip ${{I}}\n") == [["ip", v] for v in values]


def test_seq_nested_left_is_outer() -> None:
    got = words("~SEQx(AD2, 0x90, 0x10, 0xa0) ~SEQx(AD1, 0x12, -1, 0x11) fe81::10:${AD2}:${AD1}\n")
    assert got == [["fe81::10:90:12"], ["fe81::10:90:11"], ["fe81::10:a0:12"], ["fe81::10:a0:11"]]


def test_lst_single_and_tuples_combined_with_seq() -> None:
    assert words("~LST(IP, 1, 2) ~LST(IP1, 5,6) 192.169.${IP}.${IP1}\n") == [
        ["192.169.1.5"],
        ["192.169.1.6"],
        ["192.169.2.5"],
        ["192.169.2.6"],
    ]
    assert words("~LST({IP, IP1}, {10,1},{20,4}) ~SEQ(IP2,168,2,170) 192.${IP2}.${IP}.${IP1}\n") == [
        ["192.168.10.1"],
        ["192.170.10.1"],
        ["192.168.20.4"],
        ["192.170.20.4"],
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("~SEQ(I) x", "Invalid ~SEQ specification '~SEQ(I) x'"),
        ("~SEQ(I, a, b) x", "Invalid ~SEQ values '~SEQ(I, a, b) x'"),
        ("~SEQ(I, 1, 0, 5) x", "Invalid ~SEQ values '~SEQ(I, 1, 0, 5) x'"),
        ("~SEQx(I, -1, 5) x", "~SEQx is only valid for positive numbers '~SEQx(I, -1, 5) x'"),
        ("~SEQ(I, 1, 2 x", "Invalid ~SEQ specification '~SEQ(I, 1, 2 x'"),
        ("~LST(I) x", "Invalid ~LST specification '~LST(I) x'"),
        ("~LST({A,B}, {1}) x", "Invalid ~LST specification '~LST({A,B}, {1}) x'"),
    ],
)
def test_seq_lst_errors(line: str, message: str) -> None:
    _, diag = pre(line + "\n")
    assert problems(diag) == [message]


def test_seq_variable_is_not_left_defined() -> None:
    assert words("~SEQ(I, 1, 1) a $I\nb $I\n") == [["a", "1"], ["b", "$I"]]


# --------------------------------------------------------------------------- runaway input
def test_self_referential_definition_terminates() -> None:
    assert words("$A=$A\nx $A\n") == [["x", "$A"]]


def test_growing_definition_is_detected() -> None:
    _, diag = pre("$A=x $A\ny $A\n")
    assert any("Runaway macro expansion" in m or "maximum line length" in m for m in problems(diag))


def test_exponential_definition_is_detected() -> None:
    text = "".join(f"$D{i}=${{D{i + 1}}}${{D{i + 1}}}\n" for i in range(40)) + "$D40=abcdefgh\nx ${D0}\n"
    _, diag = pre(text)
    assert any("maximum line length" in m for m in problems(diag))


def test_exponential_multiline_expansion_is_detected() -> None:
    text = "$M= \\\n$M \\\n$M\nx\n$M\n"
    _lines, diag = pre(text, max_lines=10_000)
    assert any("Runaway macro expansion" in m for m in problems(diag))


def test_huge_seq_is_refused() -> None:
    _, diag = pre("~SEQ(I, 1, 1000000000) x\n", max_lines=1000)
    assert problems(diag) == ["~SEQ produces too many lines (1000000000) '~SEQ(I, 1, 1000000000) x'"]


def test_line_budget() -> None:
    _lines, diag = pre("~SEQ(I, 1, 900) ~SEQ(J, 1, 900) x\n", max_lines=1000)
    assert [d.status for d in diag] == [Status.FATAL]
    assert "Configuration too large" in diag[0].message


# --------------------------------------------------------------------------- includes
def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _read(path: Path, **kwargs: object) -> tuple[list[Line], Diagnostics]:
    diag = Diagnostics()
    p = Preprocessor(diag, config_id="lb1", **kwargs)  # type: ignore[arg-type]
    return p.read_file(str(path)), diag


def test_include_glob_relative_to_including_file(tmp_path: Path) -> None:
    _write(tmp_path / "conf.d" / "b.conf", "b\n")
    _write(tmp_path / "conf.d" / "a.conf", "a\ninclude sub/*.conf\n")
    _write(tmp_path / "conf.d" / "sub" / "c.conf", "c ${_PWD}\n")
    main = _write(tmp_path / "main.conf", "first\ninclude conf.d/*.conf\nlast\n")
    cwd = os.getcwd()
    os.chdir("/")
    try:
        lines, diag = _read(main)
    finally:
        os.chdir(cwd)
    assert [line.words for line in lines] == [
        ["first"],
        ["a"],
        ["c", str(tmp_path / "conf.d" / "sub")],
        ["b"],
        ["last"],
    ]
    assert [(line.location.file, line.location.line) for line in lines] == [
        (str(main), 1),
        ("conf.d/a.conf", 1),
        ("sub/c.conf", 1),
        ("conf.d/b.conf", 1),
        (str(main), 3),
    ]
    assert problems(diag) == []


def test_include_brace_expansion(tmp_path: Path) -> None:
    for name in ("foo/x.conf", "foo/cat/x.conf", "bar/x.conf"):
        _write(tmp_path / name, name + "\n")
    main = _write(tmp_path / "main.conf", "include {foo/{,cat/,dog/},bar/}x.conf\n")
    lines, diag = _read(main)
    assert [line.words[0] for line in lines] == ["foo/x.conf", "foo/cat/x.conf", "bar/x.conf"]
    assert problems(diag) == []  # plain include: the missing dog/ is not an error


def test_brace_expand() -> None:
    assert brace_expand("{foo/{,cat,dog},bar}") == ["foo/", "foo/cat", "foo/dog", "bar"]
    assert brace_expand("a{b,c}d{e,f}") == ["abde", "abdf", "acde", "acdf"]
    assert brace_expand("x{y}z") == ["x{y}z"]
    assert brace_expand("x{y") == ["x{y"]


def test_plain_include_of_missing_file_is_not_an_error(tmp_path: Path) -> None:
    main = _write(tmp_path / "main.conf", "include nothere.conf\nx\n")
    lines, diag = _read(main)
    assert [line.words for line in lines] == [["x"]]
    assert [(d.message, d.status) for d in diag] == [("Config files missing 'nothere.conf'.", Status.OK)]


@pytest.mark.parametrize(
    ("keyword", "pattern", "message"),
    [
        ("includer", "nothere.conf", "Config files missing 'nothere.conf'."),
        ("includem", "nothere.conf", "Config files missing 'nothere.conf'."),
        ("includew", "none*.conf", "No config files matched 'none*.conf'."),
        ("includeb", "{a,b}.conf", "Config files missing 'b.conf'."),
        ("includea", "nothere.conf", "Config files missing 'nothere.conf'."),
    ],
)
def test_include_variants_report_missing_files(
    tmp_path: Path, keyword: str, pattern: str, message: str
) -> None:
    _write(tmp_path / "a.conf", "a\n")
    main = _write(tmp_path / "main.conf", f"{keyword} {pattern}\n")
    _, diag = _read(main)
    assert [(d.message, d.status) for d in diag] == [(message, Status.FILE_NOT_FOUND)]


def test_include_check_in_global_defs_and_all_config(tmp_path: Path) -> None:
    main = _write(tmp_path / "main.conf", "global_defs {\ninclude_check\n}\ninclude nothere.conf\n")
    _, diag = _read(main)
    assert [d.status for d in diag] == [Status.FILE_NOT_FOUND]
    main2 = _write(tmp_path / "main2.conf", "include nothere.conf\n")
    _, diag = _read(main2, all_config=True)
    assert [d.status for d in diag] == [Status.FILE_NOT_FOUND]


def test_include_loop_is_detected(tmp_path: Path) -> None:
    _write(tmp_path / "a.conf", "a\ninclude b.conf\n")
    _write(tmp_path / "b.conf", "b\ninclude a.conf\n")
    main = _write(tmp_path / "main.conf", "include a.conf\n")
    lines, diag = _read(main)
    assert [line.words for line in lines] == [["a"], ["b"]]
    assert problems(diag) == [
        "Include loop: 'a.conf' is already being read (main.conf -> a.conf -> b.conf)"
    ] or ["Include loop" in m for m in problems(diag)] == [True]


def test_braces_may_span_included_files(tmp_path: Path) -> None:
    _write(tmp_path / "open.conf", "vrrp_instance VI_1 {\n")
    _write(tmp_path / "close.conf", "    virtual_router_id 3\n}\n")
    main = _write(
        tmp_path / "main.conf",
        "include open.conf\n    interface eth0\n    virtual_ipaddress {\n10.0.0.1\n}\ninclude close.conf\n",
    )
    from cfghelp import host

    from fastka.config import load

    config, diags = load(str(main), host=host())
    assert problems(diags) == []
    vi = config.vrrp_instances["VI_1"]
    assert vi.virtual_router_id == 3 and vi.interface == "eth0"
    assert config.files == [str(main), str(tmp_path / "open.conf"), str(tmp_path / "close.conf")]


def test_error_locations_through_includes(tmp_path: Path) -> None:
    _write(tmp_path / "inc" / "vi.conf", "vrrp_instance VI_1 {\n  interface eth0\n  priorty 5\n}\n")
    main = _write(tmp_path / "main.conf", "global_defs {\n}\ninclude inc/vi.conf\n")
    from cfghelp import host

    from fastka.config import load
    from fastka.config.check import format_diagnostics

    config, diags = load(str(main), host=host())
    lines = format_diagnostics(diags, config)
    assert "(inc/vi.conf: Line 3) Unknown keyword 'priorty' - did you mean 'priority'?" in lines


def test_missing_main_file() -> None:
    diag = Diagnostics()
    lines = Preprocessor(diag, config_id="x").read_file("/nonexistent/keepalived.conf")
    assert lines == []
    assert [(d.message, d.status) for d in diag] == [
        ("Config files missing '/nonexistent/keepalived.conf'.", Status.FILE_NOT_FOUND)
    ]


def test_nul_lines_are_ignored() -> None:
    assert words("a\nb\0c\nd\n") == [["a"], ["d"]]
