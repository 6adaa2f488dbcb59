"""Byte sources the detectors read from: a file on disk, a slice of one, or bytes in memory.

Detectors never load a whole large file: they ``read(offset, n)`` what they need (``os.pread``), or
ask for ``buffer()``, which is the bytes for small content and a read-only ``mmap`` for large files,
so that only the pages actually looked at are ever brought in.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import stat
from abc import ABC, abstractmethod
from typing import Any, TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview | mmap.mmap

SMALL_FILE = 4 << 20
"""Files up to this size are read whole into memory; larger ones are memory-mapped."""
EAGER_FILE = 256 << 10
"""Files up to this size are read whole on the first read (sniffing then costs no extra I/O)."""


class Source(ABC):
    """Random-access, read-only bytes of known size."""

    size: int

    @abstractmethod
    def read(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``offset`` (fewer at the end, none past it)."""

    @abstractmethod
    def buffer(self) -> Buffer:
        """All of the content as a bytes-like object (possibly memory-mapped)."""

    def head(self, n: int = 4096) -> bytes:
        return self.read(0, n)

    def tail(self, n: int) -> bytes:
        start = max(0, self.size - n)
        return self.read(start, self.size - start)

    def slice(self, offset: int, size: int) -> Source:
        """A view of ``size`` bytes from ``offset``, clamped to this source."""
        offset = max(0, min(offset, self.size))
        size = max(0, min(size, self.size - offset))
        return SliceSource(self, offset, size)


class BytesSource(Source):
    """Content already in memory."""

    def __init__(self, data: Buffer) -> None:
        self._data = data
        self.size = len(data)

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        return bytes(self._data[offset : offset + n])

    def buffer(self) -> Buffer:
        return self._data


class SliceSource(Source):
    """A window on another source (a stored archive member, a tensor region ...)."""

    def __init__(self, parent: Source, offset: int, size: int) -> None:
        self._parent = parent
        self._offset = offset
        self.size = size

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        n = min(n, self.size - offset)
        return self._parent.read(self._offset + offset, n)

    def buffer(self) -> Buffer:
        whole = self._parent.buffer()
        return memoryview(whole)[self._offset : self._offset + self.size]


class NotRegularFile(OSError):
    """The path is a folder, a FIFO, a device or a socket: nothing to scan."""


class FileSource(Source):
    """A regular file, opened read-only (links followed). Use as a context manager.

    Raises :class:`NotRegularFile` for anything else; ``O_NONBLOCK`` keeps opening a FIFO from
    waiting for a writer.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
        self._fd = os.open(self.path, flags)
        try:
            st = os.fstat(self._fd)
            if not stat.S_ISREG(st.st_mode):
                kind = "folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
                raise NotRegularFile(kind)
        except OSError:
            os.close(self._fd)
            raise
        self.stat = st
        self.size = st.st_size
        self._buf: Buffer | None = None

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        if self.size <= EAGER_FILE:  # one read serves sniffing, analysis and the hash
            whole = self.buffer()
            return bytes(whole[offset : offset + n]) if offset or n < self.size else bytes(whole)
        n = min(n, self.size - offset)
        out = os.pread(self._fd, n, offset)
        if len(out) < n:  # pread may return short reads; loop until EOF
            parts = [out]
            got = len(out)
            while got < n:
                chunk = os.pread(self._fd, n - got, offset + got)
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
            out = b"".join(parts)
        return out

    def buffer(self) -> Buffer:
        if self._buf is None:
            if self.size == 0:
                self._buf = b""
            elif self.size <= SMALL_FILE:
                self._buf = self._read_all()
            else:
                self._buf = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        return self._buf

    def _read_all(self) -> bytes:
        parts = []
        got = 0
        while got < self.size:
            chunk = os.pread(self._fd, self.size - got, got)
            if not chunk:
                break  # the file shrank while being read: analyse what is there
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def cached_bytes(self) -> bytes | None:
        """The whole content when it has already been read into memory, else ``None``."""
        return self._buf if isinstance(self._buf, bytes) else None

    def readinto(self, view: memoryview, offset: int) -> int:
        """Fill ``view`` from ``offset``; the number of bytes read (0 at the end)."""
        return os.preadv(self._fd, [view], offset)

    def close(self) -> None:
        buf, self._buf = self._buf, None
        if isinstance(buf, mmap.mmap):
            # A detector may still hold a view; the GC unmaps it then.
            with contextlib.suppress(BufferError):
                buf.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SourceIO(io.RawIOBase):
    """A read-only, seekable file object over a :class:`Source`, for libraries that want one
    (py7zr, h5py's file-object driver)."""

    def __init__(self, src: Source) -> None:
        super().__init__()
        self._src = src
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._src.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self._src.read(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)
