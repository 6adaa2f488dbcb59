"""Bounded sequential reader for GGUF headers: a buffered window over a source, bounds-checked."""

from __future__ import annotations

import struct
from typing import Any

from modelward.scan.source import Source

WINDOW = 1 << 20


class Malformed(Exception):
    """The header cannot be parsed further; ``args[0]`` says why, ``offset`` where."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class Stop(Malformed):
    """Stop parsing without another finding (a bound was reported already)."""

    def __init__(self) -> None:
        super().__init__("scan limit", 0)


class Cursor:
    """Sequential reads over a buffered window of a source, with bounds checks."""

    def __init__(self, src: Source, big_endian: bool, version: int) -> None:
        self.src = src
        self.size = src.size
        self.buf = b""
        self.base = 0  # file offset of buf[0]
        self.pos = 0  # index into buf
        e = ">" if big_endian else "<"
        self.u32 = struct.Struct(e + "I")
        self.u64 = struct.Struct(e + "Q")
        self.i64 = struct.Struct(e + "q")
        self.count = self.u32 if version == 1 else self.u64  # v1: 32-bit counts and lengths
        self.endian = e

    def tell(self) -> int:
        return self.base + self.pos

    def left(self) -> int:
        return self.size - self.tell()

    def need(self, n: int) -> None:
        """Make ``n`` bytes available at ``pos`` (``n`` is small or already bounds-checked)."""
        if self.pos + n <= len(self.buf):
            return
        if n > self.left():
            raise Malformed(f"truncated: {n} bytes needed, {self.left()} left", self.tell())
        rest = self.buf[self.pos :]
        more = self.src.read(self.base + len(self.buf), max(n - len(rest), WINDOW))
        self.base += self.pos
        self.buf = rest + more
        self.pos = 0
        if len(self.buf) < n:
            raise Malformed("truncated: read returned fewer bytes", self.tell())

    def skip(self, n: int) -> None:
        if n > self.left():
            raise Malformed(f"length {n} runs past the end of the file", self.tell())
        if self.pos + n <= len(self.buf):
            self.pos += n
        else:
            self.base = self.tell() + n
            self.buf = b""
            self.pos = 0

    def unpack(self, st: struct.Struct) -> Any:
        self.need(st.size)
        value = st.unpack_from(self.buf, self.pos)[0]
        self.pos += st.size
        return value

    def read_count(self) -> int:
        return int(self.unpack(self.count))

    def take(self, n: int) -> bytes:
        self.need(n)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def string(self, cap: int) -> tuple[bytes, int]:
        """A length-prefixed string: its first ``cap`` bytes and its full length."""
        n = self.read_count()
        if n > self.left():
            raise Malformed(f"string length {n} runs past the end of the file", self.tell())
        if n <= cap:
            return self.take(n), n
        head = self.take(cap)
        self.skip(n - cap)
        return head, n

    def skip_strings(self, count: int) -> None:
        """Skip ``count`` length-prefixed strings without building them."""
        hdr = self.count.size
        if count * hdr > self.left():
            raise Malformed(f"array of {count} strings cannot fit in the file", self.tell())
        unpack = self.count.unpack_from
        remaining = count
        while remaining:
            buf, p = self.buf, self.pos
            end = len(buf) - hdr
            done = 0
            for done in range(remaining):  # noqa: B007 (done is used after the loop)
                if p > end:
                    break
                q = p + hdr + unpack(buf, p)[0]
                if q > len(buf):
                    break
                p = q
            else:
                done = remaining
            self.pos = p
            remaining -= done
            if remaining:  # the next string crosses the window: handle it on its own
                n = self.read_count()
                self.skip(n)
                remaining -= 1
