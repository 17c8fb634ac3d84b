"""TCP_CHECK and plain HTTP_GET in compiled code: the compiled ``fastka._check`` or, with
``FASTKA_NO_EXTENSIONS=1``, the pure-Python reference ``fastka._check_py`` (type checkers
always see the reference, which documents the API).

The manager gives such checkers a :class:`~fastka.check.fsm.SteadyChecker`, which hands
the steady state (the same verdict again and again) to the check, so that Python runs
only when something changes. SSL_GET, HTTP_GET with a ``regex`` and genhash keep the
Python probes of :mod:`fastka.check.http`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastka._check_py import HttpUrl
from fastka._compat import USE_EXTENSIONS
from fastka.check.base import LoopLike, Target
from fastka.check.http import build_request, host_header
from fastka.check.spec import HttpParams

if TYPE_CHECKING or not USE_EXTENSIONS:
    from fastka._check_py import Check
else:
    from fastka._check import Check

IMPLEMENTATION = "fastka._check" if USE_EXTENSIONS else "fastka._check_py"

__all__ = ["IMPLEMENTATION", "Check", "HttpUrl", "http_urls", "new_check"]


def new_check(loop: LoopLike, target: Target, timeout: float, urls: tuple[HttpUrl, ...] = ()) -> Check:
    """A check on ``loop``: the compiled one needs the compiled loop (its C level); on any
    other loop (the reference, a test double) the reference runs."""
    if USE_EXTENSIONS:
        from fastka._loop import Loop as CLoop

        if isinstance(loop, CLoop):
            return Check(loop, target, timeout, urls)
    from fastka._check_py import Check as PyCheck

    return PyCheck(loop, target, timeout, urls)


def http_urls(target: Target, params: HttpParams) -> tuple[HttpUrl, ...] | None:
    """The URLs of an HTTP_GET ready for a :class:`Check`, or None when the Python probe
    has to run it (SSL_GET, a ``regex``, a digest that is not 32 hex digits)."""
    if params.ssl or any(u.regex for u in params.urls):
        return None
    out = []
    for u in params.urls:
        host = host_header(target, u.virtualhost or params.virtualhost)
        try:
            digest = bytes.fromhex(u.digest) if u.digest else None
        except ValueError:
            return None
        if digest is not None and len(digest) != 16:
            return None
        out.append(HttpUrl(build_request(u.path, host, params.http_protocol), u.status_code, digest, host))
    return tuple(out)
