"""SHA-256 of model files, cached in SQLite by device, inode, size and times so none is hashed twice.

The cache lives at ``$MODELWARD_CACHE_DIR/hashes.sqlite``, else
``$XDG_CACHE_HOME/modelward/hashes.sqlite``, else ``~/.cache/modelward/hashes.sqlite``; the folder
and the file are created owner-only. A row is keyed by ``(st_dev, st_ino)`` and valid only while
``st_size``, ``st_mtime_ns`` and ``st_ctime_ns`` are unchanged (ctime is not settable by a user,
so restoring an mtime with ``touch -d`` after changing a file does not keep a stale hash).
A file modified less than :data:`RACY_SECONDS` before it was hashed is not cached: a write in the
same timestamp tick would go unnoticed (Git's "racily clean" problem).

The cache never stops an inventory: a corrupt database is moved aside (never deleted) and a new
one started; a locked or unwritable one turns the cache off for the run. Either way
:attr:`HashCache.status` says what happened, for the caller to report. Only one process should
write (the inventory's parent; its forked hashing workers call :func:`sha256_file` only), but
several inventories may share the file: WAL mode and a busy timeout keep them apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from modelward.models import Sha256

SCHEMA_VERSION = 1
CHUNK = 1 << 20
RACY_SECONDS = 2.0
BATCH = 512
BUSY_TIMEOUT_S = 2.0

StatKey = tuple[int, int, int, int, int]


class FileChangedError(OSError):
    """A file changed (or was replaced) while it was being hashed; its digest was discarded."""


def cache_dir(env: dict[str, str] | None = None) -> Path:
    """The folder of modelward's cache for this user (see the module docstring)."""
    e = os.environ if env is None else env
    if e.get("MODELWARD_CACHE_DIR"):
        return Path(os.path.expanduser(e["MODELWARD_CACHE_DIR"]))
    base = e.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "modelward"


def _i64(n: int) -> int:
    """An unsigned 64-bit number (``st_ino``/``st_dev``) as SQLite's signed INTEGER."""
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= 1 << 63 else n


def stat_key(st: os.stat_result) -> StatKey:
    """What identifies one version of a file: device, inode, size, mtime and ctime (ns)."""
    return (_i64(st.st_dev), _i64(st.st_ino), st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return stat_key(a) == stat_key(b)


class Hasher:
    """Hashes files and proves they did not change meanwhile (subclass :meth:`after_read` in tests)."""

    def sha256(self, path: str | os.PathLike[str], st: os.stat_result) -> Sha256:
        """SHA-256 of the regular file at ``path``, which ``st`` describes.

        Raises :class:`FileChangedError` when the file is not the one ``st`` describes, or changed
        while it was read (size, times, or a file renamed over it); other ``OSError`` as ``open``
        and ``read`` raise them. Never opens a FIFO or device (``O_NONBLOCK``, then a type check).
        """
        name = os.fspath(path)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(name, flags | getattr(os, "O_BINARY", 0))
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise FileChangedError(f"{name}: no longer a regular file")
            if not _same_file(before, st):
                raise FileChangedError(f"{name}: changed before it was hashed")
            h = hashlib.sha256()
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            total = 0
            with open(fd, "rb", buffering=0, closefd=False) as fh:
                while n := fh.readinto(buf):
                    h.update(view[:n])
                    total += n
            self.after_read(name)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        try:
            now = os.stat(name)
        except FileNotFoundError:
            raise FileChangedError(f"{name}: removed while it was hashed") from None
        if total != st.st_size or not _same_file(after, st) or not _same_file(now, st):
            raise FileChangedError(f"{name}: changed while it was hashed")
        return Sha256(h.hexdigest())

    def after_read(self, path: str) -> None:
        """Called between reading the file and re-checking its stat; does nothing here."""


def sha256_file(path: str | os.PathLike[str], st: os.stat_result) -> Sha256:
    """SHA-256 of the file ``st`` describes; see :meth:`Hasher.sha256`."""
    return _HASHER.sha256(path, st)


_HASHER = Hasher()


class HashCache:
    """``get``/``put`` SHA-256 digests by file identity, batched into few commits.

    Use as a context manager (or call :meth:`close`): pending digests are committed in batches of
    :data:`BATCH` and at the end. ``path=None`` uses :func:`cache_dir`; ``enabled=False`` makes a
    cache that remembers nothing. Must not be used in a forked child (it then remembers nothing).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, enabled: bool = True) -> None:
        self.path = Path(path) if path is not None else cache_dir() / "hashes.sqlite"
        self.status: str | None = None
        """None when the cache works; otherwise what went wrong, for the caller to report."""
        self._db: sqlite3.Connection | None = None
        self._pending: dict[tuple[int, int], tuple[StatKey, str]] = {}
        self._pid = os.getpid()
        self.hits = 0
        self.misses = 0
        if enabled:
            self._open()

    # ------------------------------------------------------------------ opening
    def _open(self) -> None:
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            if _is_corrupt(exc):
                moved = self._move_aside()
                try:
                    self._db = self._connect()
                    self.status = (
                        f"hash cache {self.path} was corrupt ({exc}); {moved}; started a new one"
                    )
                except (sqlite3.Error, OSError) as exc2:
                    self._fail(f"hash cache {self.path} was corrupt ({exc}); {moved}; {exc2}")
            else:
                self._fail(f"hash cache {self.path} unusable ({exc}); hashing without a cache")
        except OSError as exc:
            self._fail(f"hash cache {self.path} unusable ({exc}); hashing without a cache")

    def _connect(self) -> sqlite3.Connection:
        folder = self.path.parent
        if not folder.is_dir():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():  # owner-only from the start (WAL/SHM files copy this mode)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            os.close(fd)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.OperationalError(
                    f"made by a newer modelward (schema {version} > {SCHEMA_VERSION})"
                )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS hashes (dev INTEGER NOT NULL, ino INTEGER NOT NULL,"
                " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,"
                " sha256 TEXT NOT NULL, hashed_at INTEGER NOT NULL, PRIMARY KEY (dev, ino))"
                " WITHOUT ROWID"
            )
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        try:
            os.replace(self.path, target)
        except OSError as exc:
            return f"could not move it aside ({exc})"
        for suffix in ("-wal", "-shm"):
            side = Path(str(self.path) + suffix)
            if side.exists():
                with contextlib.suppress(OSError):
                    os.replace(side, Path(str(target) + suffix))
        return f"moved to {target}"

    def _fail(self, message: str) -> None:
        self.status = message
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None
        self._pending.clear()

    def _broken(self, exc: sqlite3.Error) -> None:
        """A failure while in use: off for this run; a corrupt file is moved aside for the next."""
        self._fail(f"hash cache {self.path} failed ({exc}); hashing without a cache")
        if isinstance(exc, sqlite3.DatabaseError) and _is_corrupt(exc):
            self.status = f"hash cache {self.path} is corrupt ({exc}); {self._move_aside()}; not used this run"

    @property
    def enabled(self) -> bool:
        return self._db is not None and os.getpid() == self._pid

    # ------------------------------------------------------------------ use
    def get(self, st: os.stat_result) -> Sha256 | None:
        """The cached digest of the file ``st`` describes, or None."""
        if not self.enabled:
            return None
        key = stat_key(st)
        pending = self._pending.get(key[:2])
        if pending is not None and pending[0] == key:
            self.hits += 1
            return Sha256(pending[1])
        assert self._db is not None
        try:
            row = self._db.execute(
                "SELECT size, mtime_ns, ctime_ns, sha256 FROM hashes WHERE dev = ? AND ino = ?",
                key[:2],
            ).fetchone()
        except sqlite3.Error as exc:
            self._broken(exc)
            return None
        if row is not None and tuple(row[:3]) == key[2:] and _is_hex(row[3]):
            self.hits += 1
            return Sha256(row[3])
        self.misses += 1
        return None

    def put(self, st: os.stat_result, digest: str) -> None:
        """Remember ``digest`` for the file ``st`` describes (committed in batches)."""
        if not self.enabled or not _is_hex(digest):
            return
        if st.st_mtime_ns > time.time_ns() - int(RACY_SECONDS * 1e9):
            return  # racily fresh: a same-tick rewrite would keep this mtime
        key = stat_key(st)
        self._pending[key[:2]] = (key, digest.lower())
        if len(self._pending) >= BATCH:
            self.flush()

    def put_many(self, items: Iterable[tuple[os.stat_result, str]]) -> None:
        for st, digest in items:
            self.put(st, digest)
        self.flush()

    def flush(self) -> None:
        """Commit pending digests now."""
        if not self._pending or not self.enabled:
            return
        assert self._db is not None
        now = int(time.time())
        rows = [(*key, digest, now) for key, digest in self._pending.values()]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO hashes VALUES (?,?,?,?,?,?,?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            self._broken(exc)
            return
        self._pending.clear()

    def close(self) -> None:
        if self._db is None:
            return
        if os.getpid() == self._pid:
            self.flush()
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None

    def __enter__(self) -> HashCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def cached_sha256(cache: HashCache, path: str, st: os.stat_result) -> tuple[Sha256, bool]:
    """The file's digest from the cache, else hashed and cached: ``(digest, was_cached)``.

    Raises what :func:`sha256_file` raises (``FileChangedError`` is an ``OSError``).
    """
    digest = cache.get(st)
    if digest is not None:
        return digest, True
    digest = sha256_file(path, st)
    cache.put(st, digest)
    return digest, False


def _is_hex(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 64:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text
