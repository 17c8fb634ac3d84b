"""Whatever the bytes, decoding raises nothing but VrrpDecodeError; and the compiled codec
gives exactly the reference's answer (same reason, same fields and flags, same state
left in the Expect) on random and mutated input, one packet at a time and in batches."""

from __future__ import annotations

import socket
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vrrp_strategies import MCAST4, MCAST6, Fields, any_fields, outcome, packet_of

from conftest import implementations, load
from fastka._compat import USE_EXTENSIONS
from fastka.errors import VrrpDecodeError

IMPLS = implementations("fastka._vrrp", "fastka._vrrp_py")
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
needs_both = pytest.mark.skipif(
    not USE_EXTENSIONS, reason="FASTKA_NO_EXTENSIONS=1: no compiled codec to compare"
)


@pytest.fixture(params=IMPLS)
def vrrp(request: pytest.FixtureRequest) -> ModuleType:
    return load(request.param)


@st.composite
def expect_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    """Constructor arguments of a random Expect (built per implementation)."""
    kw: dict[str, Any] = {
        "version": draw(st.sampled_from([0, 2, 3])),
        "auth_type": draw(st.sampled_from([-1, 0, 1, 2])),
        "auth_data": draw(st.sampled_from([b"", b"secret12", b"pw"])),
        "adver_int": draw(st.sampled_from([0, 1, 100, 5])),
        "unicast": draw(st.sampled_from([None, True, False])),
        "v3_checksum_as_v2": draw(st.booleans()),
        "old_unicast_checksum": draw(st.booleans()),
        "strict_addresses": draw(st.booleans()),
    }
    if draw(st.booleans()):
        kw["addresses"] = draw(
            st.sampled_from([b"", bytes([10, 99, 0, 100]), bytes(16), bytes([10, 0, 0, 1]) * 2])
        )
    return kw


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, Fields]:
    """A valid packet (IPv4 with header, or IPv6 payload), then a few random edits."""
    f = draw(any_fields(max_addresses=6))
    if f.auth_type in (1, 2):
        f = Fields(**{**f.__dict__, "auth_data": draw(st.sampled_from([b"secret12", b"pw", b""]))})
    pkt = bytearray(packet_of(load("fastka._vrrp_py"), f, ttl=draw(st.sampled_from([255, 255, 64]))))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.integers(0, 3))
        if op == 0 and pkt:
            i = draw(st.integers(0, len(pkt) - 1))
            pkt[i] = draw(st.integers(0, 255))
        elif op == 1 and pkt:
            del pkt[draw(st.integers(0, len(pkt) - 1)) :]
        elif op == 2:
            pkt += draw(st.binary(max_size=20))
        elif op == 3 and len(pkt) > 1:
            i = draw(st.integers(0, len(pkt) - 1))
            pkt[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(pkt), f


def _decode_all(vrrp: ModuleType, data: bytes, f: Fields, kw: dict[str, Any] | None) -> list[tuple[str, Any]]:
    e = None if kw is None else vrrp.Expect(**kw)
    results = [outcome(vrrp.decode_ipv4, data, e), outcome(vrrp.decode, data, f.src, f.dst, 255, e)]
    results.append(outcome(vrrp.decode, data, f.src, f.dst, 64, e))
    results.append(outcome(vrrp.decode, data, b"", b"", 64, e))
    results.append(outcome(vrrp.decode, data))
    results.append(("seq", None if e is None else e.ah_last_seq))
    return results


# ----------------------------------------------------------------------------- only VrrpDecodeError


@FAST
@given(
    data=st.binary(max_size=120),
    src=st.sampled_from([b"", bytes(4), bytes(16), MCAST4]),
    ttl=st.integers(-1, 255),
)
def test_random_bytes_raise_only_decode_errors(vrrp: ModuleType, data: bytes, src: bytes, ttl: int) -> None:
    dst = {0: b"", 4: MCAST4, 16: MCAST6}[len(src)]
    for call in (
        lambda: vrrp.decode(data, src, dst, ttl),
        lambda: vrrp.decode_ipv4(data),
        lambda: vrrp.decode_ipv4(data, vrrp.Expect(2, auth_type=2, auth_data=b"k")),
        lambda: vrrp.decode(data, src, dst, ttl, vrrp.Expect(3, unicast=True, addresses=bytes(4))),
    ):
        try:
            a = call()
        except VrrpDecodeError:
            continue
        d = a.as_dict()  # every field readable
        assert d["message"] in data and d["vrid"] == d["message"][1]
        assert len(a.addresses) == a.count


@FAST
@given(sample=mutated(), kw=st.one_of(st.none(), expect_kwargs()))
def test_mutated_packets_raise_only_decode_errors(
    vrrp: ModuleType, sample: tuple[bytes, Fields], kw: Any
) -> None:
    data, f = sample
    for kind, value in _decode_all(vrrp, data, f, kw):
        assert kind in ("ok", "decode-error", "seq"), (kind, value)


@FAST
@given(data=st.lists(st.binary(max_size=80), min_size=1, max_size=8), six=st.booleans())
def test_random_batches_classify_every_packet(vrrp: ModuleType, data: list[bytes], six: bool) -> None:
    batch = vrrp.Batch(8, 128, socket.AF_INET6 if six else socket.AF_INET)
    table = vrrp.VridTable()
    for vrid in range(0, 256, 3):
        table[vrid] = vrrp.Expect()
    for i, d in enumerate(data):
        batch.set(i, d, bytes(16), MCAST6, 255)
    accepted = table.validate(batch, len(data))
    assert accepted == sum(s == 0 for s in batch.status[: len(data)])
    for i in range(len(data)):
        try:
            batch.advert(i)
        except VrrpDecodeError as exc:
            assert batch.status[i] in (exc.reason, 4)  # UNKNOWN_VRID is the table's answer
        else:
            assert batch.status[i] in (0, 4)


# ----------------------------------------------------------------------------- compiled == reference


@needs_both
@FAST
@given(sample=mutated(), kw=st.one_of(st.none(), expect_kwargs()))
def test_compiled_equals_reference_on_mutated_packets(sample: tuple[bytes, Fields], kw: Any) -> None:
    data, f = sample
    compiled, reference = load("fastka._vrrp"), load("fastka._vrrp_py")
    assert _decode_all(compiled, data, f, kw) == _decode_all(reference, data, f, kw)


@needs_both
@FAST
@given(data=st.binary(max_size=100), kw=st.one_of(st.none(), expect_kwargs()))
def test_compiled_equals_reference_on_random_bytes(data: bytes, kw: Any) -> None:
    compiled, reference = load("fastka._vrrp"), load("fastka._vrrp_py")
    f = Fields(3, 1, 1, 1, b"", 0, b"", bytes(16), MCAST6, socket.AF_INET6)
    assert _decode_all(compiled, data, f, kw) == _decode_all(reference, data, f, kw)


@needs_both
@settings(FAST, max_examples=80)
@given(
    samples=st.lists(mutated(), min_size=1, max_size=10),
    kws=st.lists(expect_kwargs(), min_size=3, max_size=3),
    six=st.booleans(),
    repeat=st.booleans(),
)
def test_compiled_equals_reference_in_batches(
    samples: list[tuple[bytes, Fields]], kws: Any, six: bool, repeat: bool
) -> None:
    """Same statuses and outputs, including FLAG_UNCHANGED (which the compiled batch path
    takes as a shortcut) and the AH sequence state, over two rounds of the same packets."""
    results = []
    for name in ("fastka._vrrp", "fastka._vrrp_py"):
        mod = load(name)
        table = mod.VridTable()
        expects = [mod.Expect(**kw) for kw in kws]
        for vrid in range(256):
            table[vrid] = expects[vrid % 3]
        batch = mod.Batch(len(samples), 256, socket.AF_INET6 if six else socket.AF_INET)
        for i, (data, f) in enumerate(samples):
            batch.set(i, data[:256], f.src.ljust(16, b"\0"), f.dst.ljust(16, b"\0"), 255)
        rounds = []
        for _ in range(2 if repeat else 1):
            n = table.validate(batch, len(samples))
            rounds.append(
                (
                    n,
                    bytes(batch.status),
                    bytes(batch.vrid),
                    bytes(batch.priority),
                    bytes(batch.flags),
                    list(batch.adver_int),
                    bytes(batch.src),
                    bytes(batch.dst),
                    list(batch.hoplimit),
                    [e.ah_last_seq for e in expects],
                )
            )
        results.append(rounds)
    assert results[0] == results[1]


@needs_both
@FAST
@given(f=any_fields(max_addresses=8), prio=st.integers(0, 255), off=st.integers(0, 5))
def test_compiled_equals_reference_when_encoding(f: Fields, prio: int, off: int) -> None:
    compiled, reference = load("fastka._vrrp"), load("fastka._vrrp_py")
    assert packet_of(compiled, f) == packet_of(reference, f)
    a = bytearray(off) + bytearray(compiled.encode(*f.encode_args()))
    b = bytearray(a)
    assert compiled.update_priority(a, off, prio) == reference.update_priority(b, off, prio)
    assert a == b


@needs_both
@FAST
@given(
    args=st.tuples(
        st.sampled_from([0, 1, 2, 3, 4, -1, 2.0, "2"]),
        st.sampled_from([0, 1, 255, 256, -1]),
        st.sampled_from([0, 100, 255, 256]),
        st.sampled_from([0, 1, 255, 256, 4095, 4096]),
        st.sampled_from([b"", bytes(4), bytes(5), bytes(16), bytes(4 * 256), "x", None]),
        st.sampled_from([0, 1, 2, 3, 256]),
        st.sampled_from([b"", b"pw", b"123456789", None]),
        st.sampled_from([b"", bytes(4), bytes(16), bytes(3)]),
        st.sampled_from([b"", MCAST4, MCAST6]),
    )
)
def test_compiled_equals_reference_on_bad_arguments(args: tuple[Any, ...]) -> None:
    compiled, reference = load("fastka._vrrp"), load("fastka._vrrp_py")
    assert outcome(compiled.encode, *args) == outcome(reference.encode, *args)
    buf_c, buf_r = bytearray(64), bytearray(64)
    assert outcome(compiled.encode_into, buf_c, 3, *args) == outcome(reference.encode_into, buf_r, 3, *args)
    assert buf_c == buf_r
