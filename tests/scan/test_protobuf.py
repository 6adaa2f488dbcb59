"""The hand-written protobuf wire reader: decoding, bounds, and a tiny encoder other tests share."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelward.scan import protobuf as pb
from modelward.scan.source import BytesSource


# ---------------------------------------------------------------------- encoder for fixtures
def varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def vint(number: int, value: int) -> bytes:
    """A VARINT field."""
    return varint(number << 3) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field (bytes, string or sub-message)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def f32(number: int, value: float) -> bytes:
    return varint(number << 3 | 5) + struct.pack("<f", value)


# ---------------------------------------------------------------------- decoding
def test_varint_round_trip() -> None:
    for n in (0, 1, 127, 128, 300, 2**32, 2**63 - 1):
        data = varint(n)
        assert pb.read_varint(data, 0, len(data)) == (n, len(data))


def test_fields_of_a_message() -> None:
    msg = vint(1, 7) + ld(2, "hello") + f32(3, 1.5) + ld(4, ld(1, "inner"))
    fields = list(pb.iter_fields(msg))
    assert [(f.number, f.wire) for f in fields] == [(1, 0), (2, 2), (3, 5), (4, 2)]
    assert fields[0].value == 7
    assert pb.text(msg, fields[1]) == "hello"
    inner = fields[3]
    assert pb.strings(msg, inner.offset, inner.end, frozenset({1})) == {1: "inner"}
    assert pb.first(msg, 0, len(msg), 2) == fields[1]


def test_text_is_bounded() -> None:
    msg = ld(1, "x" * 10_000)
    f = next(pb.iter_fields(msg))
    assert len(pb.text(msg, f, limit=16)) == 16
    assert len(pb.raw(msg, f, 5)) == 5


@pytest.mark.parametrize(
    "bad",
    [
        b"\x0a\x05abc",  # length past the end
        b"\x08",  # varint missing
        b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # over-long varint
        b"\x0b",  # group wire type
        b"\x00\x01",  # field number 0
        b"\x0d\x01\x02",  # truncated fixed32
    ],
)
def test_malformed_raises_protobuf_error(bad: bytes) -> None:
    with pytest.raises(pb.ProtobufError):
        list(pb.iter_fields(bad))


def test_huge_declared_length_is_not_allocated() -> None:
    bad = b"\x0a" + varint(1 << 60)
    with pytest.raises(pb.ProtobufError):
        list(pb.iter_fields(bad))


def test_headers_walk_skips_big_fields_without_reading_them() -> None:
    big = b"\0" * 100_000
    msg = vint(1, 3) + ld(7, big) + ld(8, "after")

    class Counting(BytesSource):
        read_bytes = 0

        def read(self, offset: int, n: int) -> bytes:
            Counting.read_bytes += n
            return super().read(offset, n)

    src = Counting(msg)
    head = msg[:64]
    fields = list(pb.iter_headers(src, head, 10))
    assert [f.number for f in fields] == [1, 7, 8]
    assert Counting.read_bytes < 100  # the 100 kB payload was skipped, not read


def test_headers_walk_rejects_length_past_file() -> None:
    msg = vint(1, 3) + varint(7 << 3 | 2) + varint(1 << 40)
    with pytest.raises(pb.ProtobufError):
        list(pb.iter_headers(BytesSource(msg), msg, 10))


@given(st.binary(max_size=512))
def test_random_bytes_never_escape(data: bytes) -> None:
    try:
        for f in pb.iter_fields(data):
            assert f.end <= len(data)
    except pb.ProtobufError:
        pass
    try:
        for f in pb.iter_headers(BytesSource(data), data[:32], 100):
            assert f.end <= len(data)
    except pb.ProtobufError:
        pass
