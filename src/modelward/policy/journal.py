"""Durable file primitives for the quarantine vault: fsynced writes, resumable verified moves, faults.

Every step here is safe to repeat after a crash: :func:`resume_move` looks at what is on disk and
carries on from there, so the vault's recovery only has to call it again.

A move from ``src`` to ``dst`` always goes through ``temp`` (``dst``'s folder, hidden name):

- within a filesystem ``src`` is renamed to ``temp`` (atomic: the bytes are in exactly one place);
- across filesystems ``src`` is copied to ``temp`` (hashing what is read) and fsynced, then the
  copy is read back from the disk (its cached pages dropped first) and hashed again, and ``src``
  stays where it is; a copy that does not read back as written is removed (:class:`CopyCorrupt`);

then ``temp`` is hashed (a file changed since it was hashed is caught here and the move is undone),
renamed to ``dst``, the folder fsynced, and only then is ``src`` deleted (across filesystems).
Hence the invariant recovery relies on: ``dst`` exists only with verified content, and ``src`` is
deleted only once ``dst`` exists.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from modelward.errors import Error

CHUNK = 1 << 20
FAULT_ENV = "MODELWARD_FAULT"
FAULT_EXIT = 86
"""The exit status of a process killed by :func:`crash_point` (tests look for it)."""

_hits: dict[str, int] = {}


class VaultError(Error):
    """The quarantine vault could not do what was asked; nothing was lost."""


class ContentChanged(VaultError):
    """A file no longer has the SHA-256 it had when the operation began (or was expected to have)."""

    def __init__(
        self,
        message: str,
        path: str | None = None,
        expected: str | None = None,
        found: str = "",
        kept: str = "",
    ) -> None:
        super().__init__(message)
        self.kept = kept
        """Where the file was kept when it could not go back to its path ("" when it did)."""
        self.path = path
        self.expected = expected
        self.found = found


class CopyCorrupt(VaultError):
    """A cross-filesystem copy did not read back as written; it was removed, the original kept."""


def crash_point(name: str) -> None:
    """Fault injection for tests: exit at once (no cleanup) at the step named by ``MODELWARD_FAULT``.

    ``MODELWARD_FAULT=rename`` stops at the first ``rename`` step, ``rename@2`` at the second.
    """
    want = os.environ.get(FAULT_ENV)
    if not want:
        return
    step, _, nth = want.partition("@")
    if step != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or "1"):
        os._exit(FAULT_EXIT)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: write a temp file, fsync, rename, fsync the folder.

    The temp file has a name of its own (two writers never meet on it), is created new (never
    opened through a link someone put there) and is removed when the write fails (a full disk)."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temp, flags, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_durably(path, json.dumps(data, indent=1, sort_keys=True).encode() + b"\n")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise VaultError(f"{path}: unreadable vault record: {exc}") from None
    if not isinstance(data, dict):
        raise VaultError(f"{path}: a vault record must be a JSON object")
    return data


def remove_durably(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def exists(path: Path) -> bool:
    return os.path.lexists(path)


def temp_for(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.modelward-part")


def _copy(src: Path, temp: Path) -> str:
    """Copy ``src`` to a new ``temp`` (fsynced); returns the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    with open(src, "rb", buffering=0) as fin:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            while chunk := fin.read(CHUNK):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            crash_point("copy")
            os.fsync(fd)
        except BaseException:
            _discard(temp)  # first of all: a full disk gets its space back
            raise
        finally:
            os.close(fd)
    fsync_dir(temp.parent)
    crash_point("fsync")
    return digest.hexdigest()


def _discard(path: Path) -> None:
    """Remove a partial file we wrote (``src`` is untouched), as far as the system lets us."""
    with contextlib.suppress(OSError):
        os.unlink(path)
        fsync_dir(path.parent)


def _read_back(path: Path) -> str:
    """The SHA-256 of ``path`` as stored: its cached pages are dropped first (where the system
    allows, after the fsync that made them clean) so the bytes come from the disk."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _verify_copy(src: Path, temp: Path, sha256: str) -> None:
    """Read the fsynced copy back; remove it (``src`` untouched) when it is not ``sha256``."""
    back = _read_back(temp)
    crash_point("verify")
    if back == sha256:
        return
    os.unlink(temp)
    fsync_dir(temp.parent)
    raise CopyCorrupt(
        f"the copy of {src} in {temp.parent} does not read back as written (SHA-256 {back}, "
        f"expected {sha256}): the copy was removed and {src} was left where it was; "
        f"check the disk that holds {temp.parent}"
    )


Ident = tuple[int, int]


class Occupied(VaultError):
    """A path the move needs holds another file (not the one being moved): it was left alone,
    and the file being moved was left whole where it was."""


def ident(path: Path) -> Ident | None:
    """``(st_dev, st_ino)`` of a regular file at ``path`` (links not followed), else ``None``."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def is_file(path: Path, sha256: str, size: int | None, src_id: Ident | None) -> bool:
    """Whether ``path`` holds the file being moved: the very file recorded (device and inode),
    or a regular file with its recorded size and SHA-256 (a copy of it is as good as it)."""
    got = ident(path)
    if got is None:
        return False
    if src_id is not None and got == tuple(src_id):
        return True
    if size is not None and os.lstat(path).st_size != size:
        return False
    return sha256_file(path) == sha256


def _by_ident(path: Path, src_id: Ident | None) -> bool:
    return src_id is not None and ident(path) == tuple(src_id)


def _unlink(path: Path) -> None:
    os.unlink(path)
    fsync_dir(path.parent)


Stat = tuple[int, int, int]
"""``(st_size, st_mtime_ns, st_ctime_ns)`` of a file before it was moved."""


def stat_of(path: Path) -> Stat:
    st = os.lstat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _finish(
    src: Path,
    dst: Path,
    sha256: str,
    size: int | None,
    src_id: Ident | None,
    src_stat: Stat | None = None,
) -> str:
    """``dst`` holds the file: drop a leftover temp and the original (only when it is the one
    recorded). Returns a warning when ``src`` holds another file, which is left alone.

    The original (same file, still there: a copy across filesystems) is deleted only when it
    still holds what was copied: when its size, modification or change time is not ``src_stat``
    any more it is hashed again, and when it was edited the copy ``dst`` is removed instead and
    :class:`ContentChanged` raised (the user's edit is kept)."""
    temp = temp_for(dst)
    if exists(temp):
        if ident(temp) == ident(dst) or is_file(temp, sha256, size, None):
            _unlink(temp)  # a second name of dst, or a byte-identical copy
        else:
            raise VaultError(f"{temp} is left over from an interrupted move; it was kept")
    if not exists(src):
        return ""
    if src_id is not None:
        original = _by_ident(src, src_id) and (size is None or os.lstat(src).st_size == size)
    else:
        original = is_file(src, sha256, size, None)
    if not original:
        return f"{src} is another file now (not the one moved to {dst}); it was left alone"
    if src_stat is not None and stat_of(src) != tuple(src_stat):
        got = sha256_file(src)
        if got != sha256:
            _unlink(dst)  # the copy of what it was; the user's file, as edited, stays
            raise ContentChanged(
                f"{src} changed while it was being quarantined (SHA-256 {got} instead of "
                f"{sha256}); it was left in place, as changed",
                path=str(src),
                expected=sha256,
                found=got,
            )
    _unlink(src)
    crash_point("delete")
    return ""


def link_new(temp: Path, dst: Path) -> bool:
    """Give ``temp`` the name ``dst`` unless ``dst`` exists (then ``False``, ``temp`` kept).

    A hard link never replaces a file; where links are not supported the check before the
    rename leaves a window (another program creating ``dst`` in between) that cannot be closed."""
    try:
        os.link(temp, dst)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if exists(dst):
            return False
        os.rename(temp, dst)
    else:
        os.unlink(temp)
    fsync_dir(dst.parent)
    return True


def _put_back(temp: Path, src: Path) -> str:
    """Put ``temp`` (the user's file itself, renamed) back at ``src``; when another file is at
    ``src`` now, keep it beside it as ``<name>.modelward-kept-<id>``. Returns what was done
    when it was not put back ("" when it was)."""
    if link_new(temp, src):
        return ""
    while True:
        kept = src.with_name(f"{src.name}.modelward-kept-{secrets.token_hex(4)}")
        if link_new(temp, kept):
            return f"{src} is another file now, so the file that was there was kept as {kept}"


def _place(temp: Path, dst: Path) -> None:
    """Give ``temp`` the name ``dst`` without ever replacing a file at ``dst``."""
    try:
        os.link(temp, dst)
    except FileExistsError:
        raise Occupied(f"{dst} appeared while it was being written; it was left alone") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if exists(dst):
            raise Occupied(
                f"{dst} appeared while it was being written; it was left alone"
            ) from None
        os.rename(temp, dst)
    else:
        os.unlink(temp)
    fsync_dir(dst.parent)


def resume_move(
    src: Path,
    dst: Path,
    sha256: str,
    *,
    size: int | None = None,
    src_id: Ident | None = None,
    src_stat: Stat | None = None,
) -> str:
    """Move ``src`` to ``dst`` (both regular files), verifying ``sha256``; resumable at any step.

    Recovery decides by identity, never by the mere presence of a name: the file being moved is
    the one recorded before the move (``src_id``: device and inode) or a file with its recorded
    ``size`` and ``sha256``. A file at ``src`` or ``dst`` that is neither is the user's: it is
    never deleted, replaced, or given the recorded mode and times.

    Returns a warning (empty when none) when ``src`` now holds another file, left alone. Raises
    :class:`Occupied` (the file being moved left whole at ``src``) when ``dst`` holds another
    file, :class:`ContentChanged` (with ``src`` back in place) when the content is not the one
    expected, :class:`CopyCorrupt` (``src`` in place, the copy removed) when a copy across
    filesystems does not read back as written, and :class:`VaultError` when no end holds it.
    """
    temp = temp_for(dst)
    if exists(dst):
        if is_file(dst, sha256, size, src_id):
            return _finish(src, dst, sha256, size, src_id, src_stat)
        if exists(temp) and not exists(src) and is_file(temp, sha256, size, src_id):
            os.rename(temp, src)  # undo the detach: the file goes back where it was
            fsync_dir(src.parent)
            fsync_dir(temp.parent)
        elif (
            exists(temp)
            and exists(src)
            and not _by_ident(temp, src_id)
            and is_file(src, sha256, size, src_id)
        ):
            _unlink(temp)  # an unfinished copy; src holds the file
        raise Occupied(
            f"{dst} is another file (not the one being moved from {src}); it was left alone"
        )
    warning = ""
    if exists(temp) and exists(src):
        if _by_ident(temp, src_id):
            warning = f"{src} is another file now (the one recorded was moved); it was left alone"
        elif is_file(src, sha256, size, src_id):
            _unlink(temp)  # an unfinished copy (src is never removed before dst exists)
        elif is_file(temp, sha256, size, None):
            warning = f"{src} is another file now (its copy is complete); it was left alone"
        else:
            raise VaultError(
                f"{src} is another file now and the copy {temp} is incomplete; both were kept"
            )
    # (temp without src: src was renamed whole to temp; verified below)
    only_copy = exists(temp) and (not exists(src) or _by_ident(temp, src_id))
    if not exists(temp):
        if not exists(src):
            raise VaultError(f"{src} is gone and {dst} was never completed")
        try:
            os.rename(src, temp)
            only_copy = True  # temp is the user's file itself now, never to be deleted
            fsync_dir(temp.parent)
            fsync_dir(src.parent)
            crash_point("detach")
            got = sha256_file(temp)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            got = _copy(src, temp)
            if got == sha256:
                _verify_copy(src, temp, sha256)  # before anything can delete src
    else:
        got = sha256_file(temp)
    if got != sha256:
        kept = ""
        if only_copy:  # temp is the user's only copy: put it back, never over another file
            kept = _put_back(temp, src)
        elif warning:  # temp is the only copy of what was there: keep it, say so
            raise VaultError(
                f"{temp} does not hold the recorded content and {src} is another file; "
                "both were kept"
            )
        else:  # a copy: src holds the file
            os.unlink(temp)
        fsync_dir(temp.parent)
        raise ContentChanged(
            f"{src} changed while it was being moved (SHA-256 {got} instead of {sha256}); "
            + (kept or "it was left in place"),
            path=str(src),
            expected=sha256,
            found=got,
            kept=kept,
        )
    _place(temp, dst)
    crash_point("rename")
    if warning:
        return warning
    return _finish(src, dst, sha256, size, src_id, src_stat)
