"""A minimal, bounded reader of the protobuf wire format (TF SavedModel, ONNX, Core ML, Keras metadata).

Written by hand on purpose: the scanner must never import tensorflow, onnx or coremltools (heavy,
and their parsers were not built for hostile input), and it needs only a handful of fields from
each message. So there are no schemas here, only the wire format: a message is a run of
``(field number, wire type, value)`` records, and a length-delimited value is returned as a
*span* (offset, length) into the buffer, so a multi-gigabyte tensor is skipped by its length and
never read. Every length is checked against the end of its enclosing message before it is used;
anything inconsistent raises :class:`ProtobufError`, which callers turn into a ``*.malformed``
finding. Nothing recurses: callers descend into the few sub-messages they need, each a bounded
number of levels deep.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from modelward.scan.source import Buffer, Source

VARINT = 0
I64 = 1
LEN = 2
SGROUP = 3
EGROUP = 4
I32 = 5

MAX_FIELD_NUMBER = (1 << 29) - 1


class ProtobufError(ValueError):
    """The bytes are not a well-formed protobuf message."""


class Field(NamedTuple):
    """One record of a message.

    ``value`` is the integer for VARINT/I64/I32 fields and the payload length for LEN fields;
    ``offset`` is where the payload starts (LEN) or where the next record starts (others).
    """

    number: int
    wire: int
    value: int
    offset: int

    @property
    def end(self) -> int:
        """Where this record ends."""
        return self.offset + self.value if self.wire == LEN else self.offset


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it; at most 10 bytes, never past ``end``."""
    result = 0
    shift = 0
    limit = min(end, pos + 10)
    while pos < limit:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
    raise ProtobufError("truncated or over-long varint")


def _field_at(buf: Buffer, pos: int, end: int, payload_end: int | None = None) -> Field:
    """The record at ``pos``; its header lies before ``end``, its payload before ``payload_end``."""
    if payload_end is None:
        payload_end = end
    key, pos = read_varint(buf, pos, end)
    number = key >> 3
    wire = key & 7
    if number == 0 or number > MAX_FIELD_NUMBER:
        raise ProtobufError(f"invalid field number {number}")
    if wire == VARINT:
        value, pos = read_varint(buf, pos, end)
        return Field(number, wire, value, pos)
    if wire == LEN:
        length, pos = read_varint(buf, pos, end)
        if length > payload_end - pos:
            raise ProtobufError(f"field {number} length {length} runs past its message")
        return Field(number, wire, length, pos)
    if wire in (I64, I32):
        size = 8 if wire == I64 else 4
        if pos + size > min(end, payload_end):
            raise ProtobufError(f"field {number} truncated")
        value = int.from_bytes(bytes(buf[pos : pos + size]), "little")
        return Field(number, wire, value, pos + size)
    raise ProtobufError(f"unsupported wire type {wire} (field {number})")


def iter_fields(buf: Buffer, start: int = 0, end: int | None = None) -> Iterator[Field]:
    """The records of the message in ``buf[start:end]``, in order. Raises ProtobufError."""
    if end is None:
        end = len(buf)
    end = min(end, len(buf))
    pos = start
    while pos < end:
        f = _field_at(buf, pos, end)
        pos = f.end
        yield f


def iter_headers(src: Source, head: bytes, max_fields: int) -> Iterator[Field]:
    """Top-level records of the message filling ``src``, reading only the record headers.

    Headers beyond ``head`` are read a few bytes at a time, so a file of many gigabytes made of
    a few huge records is walked with a handful of reads (for ``Detector.matches``). Stops after
    ``max_fields`` records. Raises ProtobufError.
    """
    size = src.size
    pos = 0
    for _ in range(max_fields):
        if pos >= size:
            return
        if pos + 21 <= len(head) or len(head) >= size:
            f = _field_at(head, pos, min(len(head), size), size)
        else:
            chunk = src.read(pos, 21)
            g = _field_at(chunk, 0, len(chunk), size - pos)
            f = Field(g.number, g.wire, g.value, pos + g.offset)
        pos = f.end
        yield f


def text(buf: Buffer, f: Field, limit: int = 4096) -> str:
    """A LEN field as text (UTF-8, undecodable bytes replaced), at most ``limit`` bytes."""
    if f.wire != LEN:
        raise ProtobufError(f"field {f.number} is not a string")
    n = min(f.value, limit)
    return bytes(buf[f.offset : f.offset + n]).decode("utf-8", "replace")


def raw(buf: Buffer, f: Field, limit: int) -> bytes:
    """A LEN field's bytes, at most ``limit`` of them."""
    if f.wire != LEN:
        raise ProtobufError(f"field {f.number} is not length-delimited")
    return bytes(buf[f.offset : f.offset + min(f.value, limit)])


def first(buf: Buffer, start: int, end: int, number: int) -> Field | None:
    """The first record numbered ``number`` in the message ``buf[start:end]``."""
    for f in iter_fields(buf, start, end):
        if f.number == number:
            return f
    return None


def strings(
    buf: Buffer, start: int, end: int, wanted: frozenset[int], limit: int = 4096
) -> dict[int, str]:
    """The last value of each string field numbered in ``wanted`` (protobuf's merge rule)."""
    out: dict[int, str] = {}
    for f in iter_fields(buf, start, end):
        if f.number in wanted and f.wire == LEN:
            out[f.number] = text(buf, f, limit)
    return out
