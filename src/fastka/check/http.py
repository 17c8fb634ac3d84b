"""HTTP_GET and SSL_GET (behaviour.md §C1).

The request is Keepalived's, byte for byte::

    GET <path> HTTP/1.<0|1>\\r\\n
    User-Agent: KeepAliveClient\\r\\n
    [Connection: close\\r\\n]              (http_protocol 1.0C and 1.1)
    Host: <virtualhost | ip:port>\\r\\n      (IPv6 literal in [])
    \\r\\n

The response head is parsed by h11 (malformed heads fail the check); ordinary heads go
through :func:`quick_parse_head`, the same grammar for the common case at a fraction of
the cost. Success = status
in ``status_code`` (default 200-299), and if ``digest`` is set the MD5 of the body equals
it, and if ``regex`` is set it matches (or does not, with ``regex_no_match``).

The body, as Keepalived, is the raw bytes after the head up to ``Content-Length`` or the
server's close (chunked framing is not undone, so a digest matches ``keepalived -T``).
Reading stops as soon as the verdict is known: right after the status line when there is
neither a digest nor a regex. A body is hashed as it streams and never kept, except up to
:data:`MAX_REGEX_WINDOW` bytes for a regex; more than :data:`MAX_BODY` bytes fails the
check, so a 1 GB answer costs a bounded amount of reading.
"""

from __future__ import annotations

import contextlib
import re
import socket
from typing import TYPE_CHECKING, Any

from fastka.check.base import LoopLike, StreamProbe, Target
from fastka.check.spec import HttpParams, UrlSpec

if TYPE_CHECKING:
    import ssl

    import h11

# h11 (only for heads the quick parser leaves) and ssl (only for SSL_GET) are imported when
# first needed: a checker child without them starts faster and smaller.

MAX_HEAD = 65536
MAX_BODY = 64 * 1024 * 1024
MAX_REGEX_WINDOW = 1024 * 1024


def host_header(target: Target, virtualhost: str | None) -> str:
    if virtualhost:
        return virtualhost
    if target.family == socket.AF_INET6:
        return f"[{target.address}]:{target.port}"
    return f"{target.address}:{target.port}"


def build_request(path: str, host: str, http_protocol: str = "1.0") -> bytes:
    """The exact request bytes Keepalived sends."""
    version = "1.1" if http_protocol == "1.1" else "1.0"
    close = "Connection: close\r\n" if http_protocol in ("1.0C", "1.0c", "1.1") else ""
    return (
        f"GET {path} HTTP/{version}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n"
    ).encode()


def client_ssl_context(
    ca: str | None = None, certificate: str | None = None, key: str | None = None, password: str | None = None
) -> ssl.SSLContext:
    """TLS client context for SSL_GET. The server certificate is not verified: the check
    is about health, as Keepalived's (which verifies nothing either)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if ca:
        ctx.load_verify_locations(ca)
    if certificate:
        ctx.load_cert_chain(certificate, key, password)
    return ctx


def parse_head(head: bytes, host: str) -> h11.Response:
    """Parse a response head with h11; raises ``h11.RemoteProtocolError`` if malformed."""
    import h11

    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", host), ("Connection", "close")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(head)
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            return event
        if isinstance(event, h11.InformationalResponse):
            continue
        raise h11.RemoteProtocolError("incomplete response head")


# RFC 9112 §4 status-line and §5 field-line, as h11 checks them, for the common case.
_VCHARS = rb"[\x21-\x7e\x80-\xff]"
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9]{2})(?: [\t \x21-\x7e\x80-\xff]*)?\r\n")
_FIELD_LINE = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*((?:" + _VCHARS + rb"(?:[ \t]*" + _VCHARS + rb")*)?)[ \t]*\r\n"
)


def quick_parse_head(head: bytes) -> tuple[int, int | None] | None:
    """(status, Content-Length) of an ordinary response head, or None when anything is
    unusual (bare LF, obs-fold, a 1xx, repeated Content-Length ...): then h11 decides.

    h11 costs ~100 µs per response; this path is what keeps HTTP_GET cheap per check.
    """
    m = _STATUS_LINE.match(head)
    if m is None:
        return None
    status = int(m.group(1))
    if status < 200:
        return None
    pos = m.end()
    end = len(head) - 2  # the blank line
    length: int | None = None
    match = _FIELD_LINE.match
    while pos < end:
        f = match(head, pos)
        if f is None:
            return None
        if len(f.group(1)) == 14 and f.group(1).lower() == b"content-length":
            value = f.group(2)
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        pos = f.end()
    if pos != end or head[end:] != b"\r\n":
        return None
    return status, length


def find_head_end(buf: bytes) -> int:
    """Index just past the blank line ending the head, or -1."""
    i = buf.find(b"\r\n\r\n")
    j = buf.find(b"\n\n")
    if i >= 0 and (j < 0 or i + 2 <= j):
        return i + 4
    if j >= 0:
        return j + 2
    return -1


class HttpProbe(StreamProbe):
    """One URL fetch; ``step`` selects the URL."""

    __slots__ = (
        "_regexes",
        "body_len",
        "content_length",
        "head",
        "host",
        "keep_body",
        "kept",
        "md5",
        "need_body",
        "params",
        "regex",
        "regex_window",
        "status",
        "url",
    )

    def __init__(
        self,
        loop: LoopLike,
        target: Target,
        timeout: float,
        params: HttpParams,
        ssl_context: ssl.SSLContext | None = None,
        *,
        keep_body: bool = False,
    ) -> None:
        super().__init__(loop, target, timeout, ssl_context if params.ssl else None)
        self.params = params
        self.keep_body = keep_body
        self.url: UrlSpec = params.urls[0]
        self.head = b""
        self.status = 0
        self.md5: Any = None
        self.body_len = 0
        self.content_length: int | None = None
        self.need_body = False
        self.regex: re.Pattern[bytes] | None = None
        self.regex_window = b""
        self.kept = bytearray()
        self.host = ""
        self.close_notify = params.ssl and params.tls_compliant
        self._compile()

    def _compile(self) -> None:
        self._regexes: list[re.Pattern[bytes] | None]
        self._regexes = [
            re.compile(u.regex.encode(), re.DOTALL) if u.regex else None for u in self.params.urls
        ]

    def begin(self, step: int) -> None:
        self.url = self.params.urls[step % len(self.params.urls)]
        self.regex = self._regexes[step % len(self.params.urls)]
        self.host = host_header(self.target, self.url.virtualhost or self.params.virtualhost)
        if self.params.ssl and self.params.enable_sni:
            self.server_hostname = self.params.sni_name or self.url.virtualhost or self.params.virtualhost
        else:
            self.server_hostname = None
        self.head = b""
        self.status = 0
        import hashlib  # here, not at import: _hashlib maps OpenSSL's libcrypto

        self.md5 = hashlib.md5(usedforsecurity=False)
        self.body_len = 0
        self.content_length = None
        self.need_body = self.keep_body or bool(self.url.digest) or self.regex is not None
        self.regex_window = b""
        self.kept = bytearray()

    def connected(self) -> None:
        self.send(build_request(self.url.path, self.host, self.params.http_protocol))

    def data_received(self, data: bytes) -> None:
        if not self.status:
            self.head += data
            end = find_head_end(self.head)
            if end < 0:
                if len(self.head) > MAX_HEAD:
                    self.finish(False, "HTTP response head too long")
                return
            head, rest = self.head[:end], self.head[end:]
            self.head = head
            quick = quick_parse_head(head)
            if quick is not None:
                self.status, self.content_length = quick
            else:
                import h11

                try:
                    response = parse_head(head, self.host)
                except h11.RemoteProtocolError as exc:
                    self.finish(False, f"bad HTTP response: {exc}")
                    return
                self.status = response.status_code
                for name, value in response.headers:
                    if name == b"content-length":
                        with contextlib.suppress(ValueError):
                            self.content_length = int(value)
            if not self.url.status_ok(self.status):
                if not self.keep_body:
                    self.finish(False, f"HTTP status code {self.status}")
                    return
            elif not self.need_body:
                self.finish(True)
                return
            data = rest
        if data:
            self._body(data)

    def _body(self, data: bytes) -> None:
        if self.content_length is not None:
            data = data[: max(0, self.content_length - self.body_len)]
        self.body_len += len(data)
        if self.body_len > MAX_BODY:
            self.finish(False, "HTTP body too large")
            return
        self.md5.update(data)
        if self.keep_body:
            self.kept += data
        if self.regex is not None and len(self.regex_window) < MAX_REGEX_WINDOW:
            self.regex_window += data[: MAX_REGEX_WINDOW - len(self.regex_window)]
        if self.content_length is not None and self.body_len >= self.content_length:
            self._complete()

    def eof_received(self) -> None:
        if not self.status:
            self.finish(False, "connection closed before the HTTP response")
            return
        self._complete()

    def _complete(self) -> None:
        if not self.url.status_ok(self.status):
            self.finish(False, f"HTTP status code {self.status}")
            return
        digest = self.md5.hexdigest()
        if self.url.digest and digest != self.url.digest.lower():
            self.finish(False, f"MD5 digest error: got {digest}")
            return
        if self.regex is not None:
            url = self.url
            window = self.regex_window[url.regex_min_offset : url.regex_max_offset]
            matched = self.regex.search(window) is not None
            if matched == url.regex_no_match:
                self.finish(False, "regex " + ("matched" if matched else "did not match"))
                return
        self.finish(True)
