"""Content-addressed blob storage keyed by SHA-256: the interface and the filesystem store.

Every upload streams into a temporary object while it is hashed, is checked against the digest the
client declared, then published atomically (rename). A mismatch or an interrupted upload leaves
nothing visible; two concurrent uploads of one blob keep one copy. Stored bytes are re-verified before
they are served whenever the file changed since it was last verified.

Durability (the ``blob_fsync`` server setting): with ``"upload"`` each upload is written to disk
(fsync of the file and its folder) before it is acknowledged. With ``"revision"`` an upload is only
published atomically and the disk catches up in the background; :meth:`FsBlobStore.make_durable`,
which the hub calls before it records a revision, waits for the blobs the revision references. A
power loss may then damage a blob no revision references yet: such a blob is refused when served
(it is re-hashed after a restart), set aside by ``make_durable``, and replaced by the next upload of
the same bytes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, TypeAlias

from modelward.errors import BadRequest, BlobNotFound, Corrupt, DigestMismatch, TooLarge

CHUNK = 1 << 20
Fsync: TypeAlias = Literal["upload", "revision"]
"""When blob bytes are forced to disk: before an upload is acknowledged, or before a revision
that references them is recorded (see the module docstring)."""
Bytes: TypeAlias = bytes | bytearray | memoryview
_HEX = re.compile(r"[0-9a-f]{64}\Z")


def check_digest(digest: str) -> str:
    """Return a lowercase SHA-256 hex digest (``sha256:`` prefix allowed) or raise BadRequest."""
    d = digest.removeprefix("sha256:").lower()
    if not _HEX.match(d):
        raise DigestMismatch(f"{digest!r} is not a SHA-256 digest (64 hex digits)", digest=digest)
    return d


@dataclass(frozen=True, slots=True)
class BlobInfo:
    sha256: str
    size: int
    created: bool  # False when the store already held these bytes


class BlobWriter(Protocol):
    """An upload in progress: ``write`` chunks, then ``commit`` (or leave the ``with`` to discard)."""

    size: int

    def write(self, data: Bytes) -> None:
        """Hash and store ``data``; the caller may reuse its buffer once this returns."""

    def writev(self, pieces: Sequence[Bytes]) -> None:
        """``write`` each of ``pieces`` in turn (one system call where the store allows)."""

    def commit(self, expected_sha256: str | None = None) -> BlobInfo: ...

    def __enter__(self) -> BlobWriter: ...

    def __exit__(self, *exc: object) -> None: ...


class BlobStore(Protocol):
    """Where blob bytes live. Implementations: :class:`FsBlobStore`, ``store.s3.S3BlobStore``."""

    def writer(self, max_size: int | None = None, size_hint: int | None = None) -> BlobWriter:
        """Start an upload of at most ``max_size`` bytes; ``size_hint``: the size announced."""

    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int: ...

    def open(self, digest: str) -> BinaryIO: ...

    def path(self, digest: str) -> str | None: ...

    def local_copy(self, digest: str) -> contextlib.AbstractContextManager[str]: ...

    def delete(self, digest: str) -> None: ...

    def iter_digests(self) -> Iterator[str]: ...

    def verify(self, digest: str) -> bool: ...

    def ensure_intact(self, digest: str) -> None: ...

    def purge_temp(self, older_than: timedelta) -> int: ...

    def make_durable(self, digests: Iterable[str]) -> None:
        """Return once the blobs would survive a power loss (before a revision references them)."""


# Ingest speed (issue 5: hash + store >= 70% of ``openssl dgst -sha256``). Writes are batched to
# _BATCH bytes; each batch is written to the temporary file (at its offset) by a pool thread while
# the calling thread hashes it (hashlib and the writes release the GIL), and the kernel is asked to
# start writing the batch to disk at once, so the fsync before publishing finds little left to do.
# ``writev`` of immutable bytes does not wait for its write: up to _WRITES_AHEAD writes run behind.
_BATCH = 4 << 20
_IOV_MAX = 1024  # buffers per os.pwritev (Linux's IOV_MAX)
_WRITES_AHEAD = 2  # batches an upload may still have being written while it hashes the next
_io_pool: concurrent.futures.ThreadPoolExecutor | None = None
_io_pool_lock = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _io_pool
    with _io_pool_lock:
        if _io_pool is None:
            _io_pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="blob-write")
        return _io_pool


def _start_writeback() -> Callable[[int, int, int], None]:
    """``sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE)``: start writing a range to disk.

    Hand-written (ctypes) because the standard library does not expose it; Linux only, a no-op
    elsewhere. Without it a large upload sits in the page cache until the final fsync, which then
    waits for the whole file instead of overlapping the disk with hashing.
    """
    try:
        import ctypes
        import ctypes.util

        fn = ctypes.CDLL(
            ctypes.util.find_library("c") or "libc.so.6", use_errno=True
        ).sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, n: None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def start(fd: int, offset: int, n: int) -> None:
        fn(fd, offset, n, 2)  # SYNC_FILE_RANGE_WRITE; a failure only loses the head start

    return start


_writeback = _start_writeback() if sys.platform.startswith("linux") else (lambda fd, o, n: None)


def _preallocate(fd: int, size: int) -> int:
    """Reserve ``size`` bytes of disk for an upload; the bytes reserved (0 where unsupported).

    With the blocks reserved up front, neither the writes nor the disk's writeback allocate them
    piece by piece (ext4's delayed allocation): on this project's VM, half the kernel CPU time of
    an upload and a faster fsync, and the file is not fragmented. The caller has checked
    ``size`` against the upload limit; the reservation ends with the upload if it fails.
    """
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError:  # unsupported, or no room for all of it now: only a head start lost
        return 0
    return size


class _FsWriter:
    def __init__(self, store: FsBlobStore, max_size: int | None, size_hint: int | None) -> None:
        self._store = store
        self._max = max_size
        fd, self._tmp = tempfile.mkstemp(dir=store.tmp_dir, prefix="upload-")
        self._fh = os.fdopen(fd, "wb", buffering=0)
        self._allocated = 0
        if size_hint and (max_size is None or size_hint <= max_size):
            self._allocated = _preallocate(fd, size_hint)
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False
        self._pending = bytearray()
        self._queued = 0  # bytes given their place in the file (written, or being written behind)
        self._behind: collections.deque[concurrent.futures.Future[None]] = collections.deque()
        self._busy = threading.Lock()  # held by a write in progress: __exit__ waits for it

    def write(self, data: Bytes) -> None:
        with self._busy:
            self._write(data)

    def _write(self, data: Bytes) -> None:
        self.size += len(data)
        if self._max is not None and self.size > self._max:
            raise TooLarge(
                f"upload is larger than the server's limit of {self._max} bytes", limit=self._max
            )
        if len(data) >= _BATCH and not self._pending:
            self._store_batch(data)
            return
        self._pending += data
        if len(self._pending) >= _BATCH:
            self._flush_pending()

    def writev(self, pieces: Sequence[Bytes]) -> None:
        with self._busy:
            self._writev(pieces)

    def _writev(self, pieces: Sequence[Bytes]) -> None:
        """Hash the pieces here while pool threads write them behind (``os.pwritev``): no copy.

        When the pieces are all ``bytes`` (immutable) their write may still run when this returns
        (at most :data:`_WRITES_AHEAD` batches behind): a write that stalls in the kernel then does
        not hold up the hashing of the next batch. Other buffers may be reused by the caller once
        this returns, so they are written first.
        """
        total = sum(len(p) for p in pieces)
        self.size += total
        if self._max is not None and self.size > self._max:
            raise TooLarge(
                f"upload is larger than the server's limit of {self._max} bytes", limit=self._max
            )
        self._flush_pending()
        views = [memoryview(p).cast("B") for p in pieces if len(p)]
        offset = self._claim(total)
        if total < _BATCH:
            for p in pieces:
                self._hash.update(p)
            self._write_at(views, offset)
            return
        self._behind.append(_pool().submit(self._write_at, views, offset))
        for p in pieces:
            self._hash.update(p)
        immutable = all(type(p) is bytes for p in pieces)
        self._wait_writes(_WRITES_AHEAD if immutable else 0)

    def _claim(self, n: int) -> int:
        """The file offset for the next ``n`` bytes (writes go to explicit offsets, in any order)."""
        offset = self._queued
        self._queued += n
        return offset

    def _wait_writes(self, ahead: int) -> None:
        """Wait until at most ``ahead`` writes are still running (raising a write's error)."""
        while len(self._behind) > ahead:
            self._behind.popleft().result()

    def _write_at(self, views: list[memoryview], offset: int) -> None:
        """Write the buffers at ``offset`` (``os.pwritev``, IOV_MAX at a time), then ask the kernel
        to start writing them to disk."""
        fd = self._fh.fileno()
        start = offset
        while views:
            n = os.pwritev(fd, views[:_IOV_MAX], offset)
            offset += n
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if n:
                views[0] = views[0][n:]
        _writeback(fd, start, offset - start)

    def _flush_pending(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, bytearray()
            self._store_batch(batch)

    def _store_batch(self, data: Bytes) -> None:
        """Hash ``data`` here while a pool thread writes it; returns when both are done."""
        self._wait_writes(0)
        views = [memoryview(data).cast("B")] if len(data) else []
        offset = self._claim(len(data))
        if len(data) < _BATCH:
            self._hash.update(data)
            self._write_at(views, offset)
            return
        written = _pool().submit(self._write_at, views, offset)
        try:
            self._hash.update(data)
        finally:
            written.result()  # the caller may reuse its buffer once write() returns

    def commit(self, expected_sha256: str | None = None) -> BlobInfo:
        self._flush_pending()
        self._wait_writes(0)
        if self._allocated > self._queued:  # fewer bytes came than announced
            os.ftruncate(self._fh.fileno(), self._queued)
        digest = self._hash.hexdigest()
        if expected_sha256 is not None and check_digest(expected_sha256) != digest:
            raise DigestMismatch(
                f"uploaded bytes hash to sha256:{digest}, not the declared {expected_sha256}",
                declared=expected_sha256,
                actual=digest,
            )
        durable_now = self._store.fsync == "upload"
        if durable_now:
            os.fsync(self._fh.fileno())
        self._fh.close()
        os.chmod(self._tmp, 0o444)
        try:
            created = self._store._publish(self._tmp, digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
        self._done = True
        if durable_now:
            self._store.make_durable([digest])
        return BlobInfo(digest, self.size, created)

    def __enter__(self) -> _FsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            with self._busy:  # a write() or writev() still running in another thread ends first
                concurrent.futures.wait(self._behind)  # and no write behind may use the file
            self._fh.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FsBlobStore:
    """Blobs as read-only files under ``root/sha256/<aa>/<hex>`` (local disk or shared storage)."""

    def __init__(self, root: str | os.PathLike[str], fsync: Fsync = "upload") -> None:
        if fsync not in ("upload", "revision"):
            raise ValueError(f"fsync must be 'upload' or 'revision', not {fsync!r}")
        self.root = Path(root)
        self.fsync: Fsync = fsync
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        (self.root / "sha256").mkdir(exist_ok=True)
        # inode, size, mtime and ctime when last verified: ctime too, because ``cp -p``, ``touch -r``
        # or ``rsync --inplace -t`` can write other bytes and put the old mtime back; nobody sets ctime.
        self._verified: dict[str, tuple[int, int, int, int]] = {}
        self._durable: set[str] = set()  # fsynced (file and folder) by this process
        self._lock = threading.Lock()

    def _blob_path(self, digest: str) -> Path:
        d = check_digest(digest)
        return self.root / "sha256" / d[:2] / d

    def _remember(self, digest: str, path: Path) -> None:
        st = path.stat()
        with self._lock:
            self._verified[digest] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _publish(self, tmp: str, digest: str) -> bool:
        """Give the verified temporary file ``tmp`` its final name; False when already stored."""
        final = self._blob_path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            # link() never replaces: a concurrent upload of the same bytes that won keeps its copy.
            os.link(tmp, final)
            created = True
            os.unlink(tmp)  # before _remember: dropping a link changes the file's ctime
        except FileExistsError:
            if self._intact(digest, final):
                return False
            # The stored copy is damaged (bytes lost to a crash before they reached the disk):
            # the new, verified copy takes its place.
            os.replace(tmp, final)
            created = True
        with self._lock:
            self._durable.discard(digest)
        self._remember(digest, final)
        return created

    def _intact(self, digest: str, path: Path) -> bool:
        """Whether ``path`` still holds ``digest``'s bytes (re-hashed unless known unchanged)."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        with self._lock:
            known = self._verified.get(digest)
        if known == (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):
            return True
        return self.verify(digest)

    def writer(self, max_size: int | None = None, size_hint: int | None = None) -> _FsWriter:
        return _FsWriter(self, max_size, size_hint)

    def make_durable(self, digests: Iterable[str]) -> None:
        """fsync each blob and its folder, skipping blobs this process already made durable.

        A blob this process never verified (stored before a restart, perhaps before a power loss)
        is re-hashed first; a damaged one is set aside in the temporary folder (gc removes it a day
        later) and :class:`Corrupt` is raised, so no revision records it and its next upload
        stores it afresh.
        """
        wanted = list(dict.fromkeys(check_digest(d) for d in digests))
        with self._lock:
            todo = [d for d in wanted if d not in self._durable]
        if not todo:
            return
        folders = {self.root / "sha256"}
        for d in todo:
            p = self._blob_path(d)
            if not self._intact(d, p):
                if not p.exists():
                    raise BlobNotFound(f"blob sha256:{d} is not stored", digest=d)
                self._set_aside(d, p)
                raise Corrupt(
                    f"stored blob sha256:{d} does not match its digest (its bytes may not have "
                    "reached the disk before a crash); it was set aside: upload it again",
                    digest=d,
                )
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            folders.add(p.parent)
        for folder in sorted(folders):
            _fsync_dir(folder)
        with self._lock:
            self._durable.update(todo)

    def _set_aside(self, digest: str, path: Path) -> None:
        aside = self.tmp_dir / f"corrupt-{digest}-{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, aside)
        with self._lock:
            self._verified.pop(digest, None)
            self._durable.discard(digest)

    def exists(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self._blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob sha256:{digest} is not stored", digest=digest) from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return self._blob_path(digest).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob sha256:{digest} is not stored", digest=digest) from None

    def path(self, digest: str) -> str | None:
        p = self._blob_path(digest)
        return str(p) if p.is_file() else None

    @contextlib.contextmanager
    def local_copy(self, digest: str) -> Iterator[str]:
        p = self.path(digest)
        if p is None:
            raise BlobNotFound(f"blob sha256:{digest} is not stored", digest=digest)
        yield p

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._blob_path(digest).unlink()
        with self._lock:
            self._verified.pop(digest, None)
            self._durable.discard(digest)

    def iter_digests(self) -> Iterator[str]:
        for sub in sorted((self.root / "sha256").iterdir()):
            if sub.is_dir():
                for f in sorted(sub.iterdir()):
                    if _HEX.match(f.name):
                        yield f.name

    def verify(self, digest: str) -> bool:
        """Re-hash the stored bytes; True when they still match their digest."""
        p = self._blob_path(digest)
        h = hashlib.sha256()
        try:
            with p.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            raise BlobNotFound(f"blob sha256:{digest} is not stored", digest=digest) from None
        ok = h.hexdigest() == digest
        if ok:
            self._remember(digest, p)
        return ok

    def ensure_intact(self, digest: str) -> None:
        """Raise :class:`Corrupt` unless the blob is unchanged since verified (re-hash if unsure)."""
        p = self._blob_path(digest)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise BlobNotFound(f"blob sha256:{digest} is not stored", digest=digest) from None
        with self._lock:
            known = self._verified.get(digest)
        if known == (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):
            return
        if not self.verify(digest):
            raise Corrupt(
                f"stored blob sha256:{digest} no longer matches its digest; it will not be served",
                digest=digest,
            )

    def purge_temp(self, older_than: timedelta) -> int:
        """Remove temporary uploads older than ``older_than`` (left by killed uploads)."""
        removed = 0
        cutoff = time.time() - older_than.total_seconds()
        for p in self.tmp_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
        return removed


def new_upload_id() -> str:
    """An opaque id for an upload session."""
    return uuid.uuid4().hex


__all__ = [
    "CHUNK",
    "BadRequest",
    "BlobInfo",
    "BlobStore",
    "BlobWriter",
    "FsBlobStore",
    "Fsync",
    "check_digest",
    "new_upload_id",
]
