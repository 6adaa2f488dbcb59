"""Bounded reads of small files that may be hostile: never block on a FIFO, never read a device,
never read more than asked. Shared by the stores, the license finder and the runtime detectors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def read_head(path: Path | str, limit: int) -> bytes | None:
    """The first ``limit`` bytes of a regular file, or None (FIFOs and devices are never read)."""
    try:
        fd = os.open(path, READ_FLAGS)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        left = limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_bounded(path: str, limit: int) -> bytes | str:
    """The bytes of the regular file at ``path`` (at most ``limit``), or an error message.

    Opens non-blocking so that a FIFO planted in a store never hangs the run.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_size > limit:
            return f"larger than {limit} bytes ({st.st_size}); not read"
        chunks: list[bytes] = []
        total = 0
        want = st.st_size + 1  # a file that grows while read is still bounded by ``limit``
        while total <= limit:
            chunk = os.read(fd, min(want, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            return f"larger than {limit} bytes; not read"
        return b"".join(chunks)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    finally:
        os.close(fd)
