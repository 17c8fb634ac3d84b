"""Hypothesis strategies and helpers shared by the VRRP codec tests (not a test module)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

MCAST4 = bytes([224, 0, 0, 18])
MCAST6 = socket.inet_pton(socket.AF_INET6, "ff02::12")
CODEC_IMPLS = ("fastka._vrrp", "fastka._vrrp_py")


@dataclass(frozen=True)
class Fields:
    """Everything needed to build one advert (and what decoding must give back)."""

    version: int
    vrid: int
    priority: int
    adver_int: int
    addresses: bytes
    auth_type: int
    auth_data: bytes
    src: bytes
    dst: bytes
    family: int
    pseudo_header: bool = True

    @property
    def alen(self) -> int:
        return 4 if self.family == socket.AF_INET else 16

    @property
    def count(self) -> int:
        return len(self.addresses) // self.alen

    def encode_args(self) -> tuple[Any, ...]:
        return (
            self.version,
            self.vrid,
            self.priority,
            self.adver_int,
            self.addresses,
            self.auth_type,
            self.auth_data,
            self.src,
            self.dst,
            self.pseudo_header,
        )


def _addr(alen: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=alen, max_size=alen)


@st.composite
def v2_fields(draw: st.DrawFn, max_addresses: int = 40, min_addresses: int = 0) -> Fields:
    n = draw(st.integers(min_addresses, max_addresses))
    auth_type = draw(st.sampled_from([0, 1, 2]))
    auth = draw(st.binary(min_size=0, max_size=8)) if auth_type else b""
    multicast = draw(st.booleans())
    return Fields(
        version=2,
        vrid=draw(st.integers(1, 255)),
        priority=draw(st.integers(0, 255)),
        adver_int=draw(st.integers(1, 255)),
        addresses=b"".join(draw(_addr(4)) for _ in range(n)),
        auth_type=auth_type,
        auth_data=auth,
        src=draw(_addr(4)),
        dst=MCAST4 if multicast else draw(_addr(4).filter(lambda a: a[0] & 0xF0 != 0xE0)),
        family=socket.AF_INET,
    )


@st.composite
def v3_fields(
    draw: st.DrawFn, family: int | None = None, max_addresses: int = 20, min_addresses: int = 0
) -> Fields:
    fam = draw(st.sampled_from([socket.AF_INET, socket.AF_INET6])) if family is None else family
    alen = 4 if fam == socket.AF_INET else 16
    n = draw(st.integers(min_addresses, max_addresses))
    multicast = draw(st.booleans())
    if fam == socket.AF_INET:
        dst = MCAST4 if multicast else draw(_addr(4).filter(lambda a: a[0] & 0xF0 != 0xE0))
    else:
        dst = MCAST6 if multicast else draw(_addr(16).filter(lambda a: a[0] != 0xFF))
    return Fields(
        version=3,
        vrid=draw(st.integers(1, 255)),
        priority=draw(st.integers(0, 255)),
        adver_int=draw(st.integers(1, 0xFFF)),
        addresses=b"".join(draw(_addr(alen)) for _ in range(n)),
        auth_type=0,
        auth_data=b"",
        src=draw(_addr(alen)),
        dst=dst,
        family=fam,
        pseudo_header=True if fam == socket.AF_INET6 else draw(st.booleans()),
    )


def any_fields(max_addresses: int = 20) -> st.SearchStrategy[Fields]:
    return st.one_of(v2_fields(max_addresses=max_addresses), v3_fields(max_addresses=max_addresses))


def packet_of(mod: Any, f: Fields, ttl: int = 255, ident: int = 1, ah_seq: int = 1) -> bytes:
    """The bytes a raw socket returns: whole IPv4 packet, or the IPv6 payload."""
    if f.family == socket.AF_INET:
        return bytes(
            mod.encode_ipv4(
                f.version,
                f.vrid,
                f.priority,
                f.adver_int,
                f.addresses,
                f.auth_type,
                f.auth_data,
                f.src,
                f.dst,
                ttl,
                ident,
                ah_seq,
                f.pseudo_header,
            )
        )
    return bytes(mod.encode(*f.encode_args()))


def expect_for(mod: Any, f: Fields, **kw: Any) -> Any:
    """The Expect of an instance configured like the sender of ``f``."""
    args: dict[str, Any] = {
        "auth_type": f.auth_type if f.version == 2 else -1,
        "auth_data": f.auth_data,
        "adver_int": f.adver_int,
        "unicast": f.dst not in (MCAST4, MCAST6),
        "v3_checksum_as_v2": not f.pseudo_header,
    }
    args.update(kw)
    return mod.Expect(f.version, **args)


def outcome(fn: Any, *args: Any, **kw: Any) -> tuple[str, Any]:
    """("ok", advert fields) or ("error", exception type and reason) -- comparable across
    implementations."""
    from fastka.errors import VrrpDecodeError

    try:
        a = fn(*args, **kw)
    except VrrpDecodeError as exc:
        return "decode-error", exc.reason
    except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
        return "error", type(exc).__name__
    return "ok", a.as_dict() if hasattr(a, "as_dict") else a
