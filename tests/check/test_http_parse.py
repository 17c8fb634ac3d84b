"""The quick response-head parser never accepts what h11 rejects, and agrees with it."""

from __future__ import annotations

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from fastka.check.http import find_head_end, parse_head, quick_parse_head

line_bytes = st.binary(max_size=30).filter(lambda b: b"\n" not in b)
names = st.sampled_from([b"Content-Length", b"content-length", b"Server", b"X-A", b"Bad Name", b""])
values = st.one_of(st.sampled_from([b"12", b"0", b" 7 ", b"x", b"1,2", b"ok fine"]), line_bytes)
headers = st.lists(st.tuples(names, values, st.sampled_from([b": ", b":", b" : "])), max_size=4)


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([b"HTTP/1.0 200 OK", b"HTTP/1.1 503 x", b"HTTP/1.0 200", b"HTTP/2 200 OK"]))
    status = draw(st.one_of(st.just(status), line_bytes))
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    out = status + eol
    for name, value, sep in draw(headers):
        out += name + sep + value + eol
    return out + eol


@settings(max_examples=400, deadline=None)
@given(heads())
def test_quick_parser_agrees_with_h11(head: bytes) -> None:
    if find_head_end(head) != len(head):
        return
    quick = quick_parse_head(head)
    if quick is None:
        return
    response = parse_head(head, "h")  # must not raise: quick never accepts what h11 refuses
    assert response.status_code == quick[0]
    lengths = [int(v) for n, v in response.headers if n == b"content-length"]
    assert (lengths[0] if lengths else None) == quick[1]


def test_quick_parser_examples() -> None:
    assert quick_parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n") == (200, 3)
    assert quick_parse_head(b"HTTP/1.1 404 Not Found\r\nServer: a b\r\n\r\n") == (404, None)
    assert quick_parse_head(b"HTTP/1.0 200 OK\nA: b\n\n") is None  # bare LF: h11 decides
    assert parse_head(b"HTTP/1.0 200 OK\nA: b\n\n", "h").status_code == 200
    assert quick_parse_head(b"HTTP/1.0 200 OK\r\nA: \x00\r\n\r\n") is None
    try:
        parse_head(b"HTTP/1.0 200 OK\r\nA: \x00\r\n\r\n", "h")
    except h11.RemoteProtocolError:
        pass
    else:
        raise AssertionError("h11 accepted a NUL in a header value")
