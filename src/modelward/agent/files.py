"""Crash-safe small files for the agent's state: atomic, fsynced, owner-only JSON."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from modelward.errors import Error


class StateError(Error):
    """The agent's state folder cannot be read or written."""


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (owner-only) when missing; refuse a symlink or a non-folder."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(
            f"{path}: cannot create the agent's state folder: {exc.strerror}"
        ) from None
    if path.is_symlink() or not path.is_dir():
        raise StateError(f"{path}: not a folder")
    return path


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable (best effort where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a mix.

    A temporary file in the same folder (created with ``mode``) is written, fsynced and renamed
    over ``path``; the folder is fsynced so the rename survives a power loss.
    """
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def write_json(path: Path, doc: Any, mode: int = 0o600) -> None:
    """:func:`write_bytes_atomic` of ``doc`` as compact JSON."""
    try:
        write_bytes_atomic(path, dumps(doc), mode)
    except OSError as exc:
        raise StateError(f"{path}: cannot write: {exc.strerror or exc}") from None


def read_json(path: Path) -> Any:
    """The JSON document at ``path``, or ``None`` when there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return json.loads(data)
    except ValueError as exc:
        raise StateError(f"{path}: not valid JSON ({exc}); move it aside to start over") from None
