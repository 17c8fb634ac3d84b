"""The compiled IPVS codec (``fastka._ipvs``, C via cffi) behind the API of ``fastka._ipvs_py``.

cffi's API mode gives a module of C functions (``lib``) and an ``ffi``; this thin layer
turns Python buffers into pointers and C results into the same return values and
exceptions as the reference. See ``fastka._ipvs_py`` for the API.
"""

from __future__ import annotations

from array import array
from typing import Any

from fastka._ipvs import ffi, lib  # type: ignore[import-not-found,unused-ignore]
from fastka.ipvs.msg import DEST, OP, SERVICE, Buffer

_from_buffer = ffi.from_buffer
_build_batch = lib.fk_ipvs_build_batch
_parse_acks = lib.fk_ipvs_parse_acks


def sizes() -> tuple[int, int, int, int, int]:
    out = ffi.new("size_t[5]")
    lib.fk_ipvs_sizes(out)
    return int(out[0]), int(out[1]), int(out[2]), int(out[3]), int(out[4])


def build_batch(
    buf: Buffer,
    family: int,
    seq: int,
    pid: int,
    ops: bytes,
    svcs: bytes,
    dests: bytes,
    start: int = 0,
    stop: int | None = None,
    ack_all: bool = False,
) -> tuple[int, int]:
    nops = len(ops) // OP.size
    end = nops if stop is None else min(stop, nops)
    if start >= end:
        return 0, start
    done = ffi.new("size_t *")
    cbuf = _from_buffer(buf, require_writable=True)
    n = _build_batch(
        cbuf,
        len(cbuf),
        family,
        (seq + start) & 0xFFFFFFFF,
        pid,
        _from_buffer("fk_ipvs_op[]", ops) + start,
        end - start,
        _from_buffer("fk_ipvs_service[]", svcs),
        len(svcs) // SERVICE.size,
        _from_buffer("fk_ipvs_dest[]", dests),
        len(dests) // DEST.size,
        1 if ack_all else 0,
        done,
    )
    if n < 0:
        i = start + int(done[0])
        cmd, si, di = OP.unpack_from(ops, i * OP.size)
        raise ValueError(f"op {i}: bad command {cmd} or record index (service {si}, dest {di})")
    return int(n), start + int(done[0])


def parse_acks(buf: Buffer, nbytes: int, seq: int, nops: int, errors: array[int]) -> tuple[int, int, int]:
    nerr = ffi.new("size_t *")
    last = ffi.new("long *")
    n = _parse_acks(
        _from_buffer(buf), nbytes, seq & 0xFFFFFFFF, nops, _from_buffer("int32_t[]", errors), nerr, last
    )
    if n < 0:
        raise ValueError("truncated netlink message")
    return int(n), int(nerr[0]), int(last[0])


def _checked(n: int) -> int:
    if n == 0:
        raise ValueError("buffer too small")
    return int(n)


def build_getfamily(buf: Buffer, seq: int, pid: int, name: bytes) -> int:
    cbuf = _from_buffer(buf, require_writable=True)
    return _checked(lib.fk_genl_build_getfamily(cbuf, len(cbuf), seq, pid, name))


def build_simple(buf: Buffer, family: int, seq: int, pid: int, cmd: int, flags: int) -> int:
    cbuf = _from_buffer(buf, require_writable=True)
    return _checked(lib.fk_ipvs_build_simple(cbuf, len(cbuf), family, seq, pid, cmd, flags))


def build_get_dests(buf: Buffer, family: int, seq: int, pid: int, svc: bytes) -> int:
    cbuf = _from_buffer(buf, require_writable=True)
    rec = _from_buffer("fk_ipvs_service[]", svc)
    return _checked(lib.fk_ipvs_build_get_dests(cbuf, len(cbuf), family, seq, pid, rec))


def build_set_config(buf: Buffer, family: int, seq: int, pid: int, tcp: int, tcp_fin: int, udp: int) -> int:
    cbuf = _from_buffer(buf, require_writable=True)
    return _checked(lib.fk_ipvs_build_set_config(cbuf, len(cbuf), family, seq, pid, tcp, tcp_fin, udp))


def build_daemon(buf: Buffer, family: int, seq: int, pid: int, cmd: int, daemon: bytes) -> int:
    cbuf = _from_buffer(buf, require_writable=True)
    rec = _from_buffer("fk_ipvs_daemon[]", daemon)
    return _checked(lib.fk_ipvs_build_daemon(cbuf, len(cbuf), family, seq, pid, cmd, rec))


def _msg(msg: Buffer) -> tuple[Any, int]:
    c = _from_buffer(msg)
    return c, len(c)


def parse_family(msg: Buffer) -> int:
    out = ffi.new("uint16_t *")
    if lib.fk_genl_parse_family(*_msg(msg), out) < 0:
        raise ValueError("CTRL_ATTR_FAMILY_ID missing")
    return int(out[0])


def _stats(st: Any) -> tuple[int, ...]:
    return (
        st.conns,
        st.inpkts,
        st.outpkts,
        st.inbytes,
        st.outbytes,
        st.cps,
        st.inpps,
        st.outpps,
        st.inbps,
        st.outbps,
        st.active_conns,
        st.inact_conns,
        st.persist_conns,
    )


def parse_service(msg: Buffer) -> tuple[bytes, tuple[int, ...]]:
    rec = ffi.new("fk_ipvs_service *")
    st = ffi.new("fk_ipvs_stats *")
    if lib.fk_ipvs_parse_service(*_msg(msg), rec, st) < 0:
        raise ValueError("attribute 1 missing")
    return bytes(ffi.buffer(rec)), _stats(st)


def parse_dest(msg: Buffer) -> tuple[bytes, tuple[int, ...]]:
    rec = ffi.new("fk_ipvs_dest *")
    st = ffi.new("fk_ipvs_stats *")
    if lib.fk_ipvs_parse_dest(*_msg(msg), rec, st) < 0:
        raise ValueError("attribute 2 missing")
    return bytes(ffi.buffer(rec)), _stats(st)


def parse_daemon(msg: Buffer) -> bytes:
    rec = ffi.new("fk_ipvs_daemon *")
    if lib.fk_ipvs_parse_daemon(*_msg(msg), rec) < 0:
        raise ValueError("attribute 3 missing")
    return bytes(ffi.buffer(rec))


def parse_config(msg: Buffer) -> tuple[int, int, int]:
    out = ffi.new("uint32_t[3]")
    if lib.fk_ipvs_parse_config(*_msg(msg), out) < 0:
        raise ValueError("bad nlmsg_len")
    return int(out[0]), int(out[1]), int(out[2])


def parse_info(msg: Buffer) -> tuple[int, int]:
    out = ffi.new("uint32_t[2]")
    if lib.fk_ipvs_parse_info(*_msg(msg), out) < 0:
        raise ValueError("bad nlmsg_len")
    return int(out[0]), int(out[1])
