"""The hash cache: correct digests, cache hits by file identity, changed files, broken databases."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from modelward.inventory.hashcache import (
    FileChangedError,
    HashCache,
    Hasher,
    cache_dir,
    cached_sha256,
    sha256_file,
    stat_key,
)

OLD = time.time() - 3600


def make(path: Path, data: bytes, mtime: float = OLD) -> os.stat_result:
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path.stat()


def test_sha256_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    data = os.urandom((5 << 20) // 2 + 7)  # 2.5 MiB: several 1 MiB reads
    st = make(tmp_path / "m.bin", data)
    assert sha256_file(tmp_path / "m.bin", st) == hashlib.sha256(data).hexdigest()
    st = make(tmp_path / "empty", b"")
    assert sha256_file(tmp_path / "empty", st) == hashlib.sha256(b"").hexdigest()


def test_cache_round_trip_and_invalidation(tmp_path: Path) -> None:
    db = tmp_path / "c" / "hashes.sqlite"
    f = tmp_path / "m.bin"
    st = make(f, b"model bytes")
    with HashCache(db) as cache:
        assert cache.status is None and cache.enabled
        digest, cached = cached_sha256(cache, str(f), st)
        assert not cached and digest == hashlib.sha256(b"model bytes").hexdigest()
        assert cache.get(st) == digest  # pending, before the commit
    with HashCache(db) as cache:  # persisted
        assert cached_sha256(cache, str(f), st) == (digest, True)
        st2 = make(f, b"model bytez")  # same size, new mtime/ctime: a miss
        assert cache.get(st2) is None
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored: ctime still differs
        assert cache.get(f.stat()) is None
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


def test_racily_fresh_files_are_not_cached(tmp_path: Path) -> None:
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"just written")
    st = f.stat()
    with HashCache(tmp_path / "h.sqlite") as cache:
        cached_sha256(cache, str(f), st)
        assert cache.get(st) is None


def test_put_many_batches(tmp_path: Path) -> None:
    stats = [make(tmp_path / f"f{i}", str(i).encode()) for i in range(1200)]
    with HashCache(tmp_path / "h.sqlite") as cache:
        cache.put_many((st, "ab" * 32) for st in stats)
    with HashCache(tmp_path / "h.sqlite") as cache:
        assert all(cache.get(st) == "ab" * 32 for st in stats)
        cache.put(stats[0], "not a digest")  # ignored
        assert cache.get(stats[0]) == "ab" * 32


def test_file_changed_before_hashing(tmp_path: Path) -> None:
    f = tmp_path / "m.bin"
    st = make(f, b"version 1")
    make(f, b"version 22", mtime=OLD + 5)
    with pytest.raises(FileChangedError, match="before"):
        sha256_file(f, st)


class AppendWhileHashing(Hasher):
    def after_read(self, path: str) -> None:
        with open(path, "ab") as fh:
            fh.write(b"more")


class ReplaceWhileHashing(Hasher):
    def after_read(self, path: str) -> None:
        other = path + ".new"
        make(Path(other), b"other content")
        os.replace(other, path)


class RemoveWhileHashing(Hasher):
    def after_read(self, path: str) -> None:
        os.unlink(path)


@pytest.mark.parametrize("hasher", [AppendWhileHashing, ReplaceWhileHashing, RemoveWhileHashing])
def test_file_changed_while_hashing_is_never_cached(tmp_path: Path, hasher: type[Hasher]) -> None:
    f = tmp_path / "m.bin"
    st = make(f, b"x" * 3_000_000)
    with HashCache(tmp_path / "h.sqlite") as cache:
        with pytest.raises(FileChangedError):
            digest = hasher().sha256(f, st)
            cache.put(st, digest)
        assert cache.get(st) is None
    assert issubclass(FileChangedError, OSError)  # callers record it like any read error


def test_fifo_is_never_read(tmp_path: Path) -> None:
    fifo = tmp_path / "model.pkl"
    os.mkfifo(fifo)
    with pytest.raises(FileChangedError, match="regular"):
        sha256_file(fifo, fifo.stat())  # returns at once: O_NONBLOCK, then a type check


def test_corrupt_database_is_moved_aside(tmp_path: Path) -> None:
    db = tmp_path / "hashes.sqlite"
    garbage = b"this is not sqlite" * 100
    db.write_bytes(garbage)
    f = tmp_path / "m.bin"
    st = make(f, b"abc")
    with HashCache(db) as cache:
        assert cache.enabled
        assert cache.status is not None and "corrupt" in cache.status
        cached_sha256(cache, str(f), st)
    moved = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(moved) == 1 and moved[0].read_bytes() == garbage  # kept, never deleted
    with HashCache(db) as cache:
        assert cache.status is None and cache.get(st) is not None


def test_page_corruption_found_in_use_turns_cache_off(tmp_path: Path) -> None:
    db = tmp_path / "hashes.sqlite"
    stats = [make(tmp_path / f"f{i}", str(i).encode()) for i in range(2000)]
    with HashCache(db) as cache:
        cache.put_many((st, "cd" * 32) for st in stats)
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    raw = bytearray(db.read_bytes())
    for page in range(1, len(raw) // 4096):  # scribble over every page but the header
        raw[page * 4096 + 8 : page * 4096 + 600] = os.urandom(592)
    db.write_bytes(bytes(raw))
    with HashCache(db) as cache:
        results = [cache.get(st) for st in stats]  # never raises
        assert cache.status is not None or all(r in (None, "cd" * 32) for r in results)


def test_locked_database_turns_cache_off_for_the_run(tmp_path: Path) -> None:
    db = tmp_path / "hashes.sqlite"
    st = make(tmp_path / "m.bin", b"abc")
    HashCache(db).close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock past our busy timeout
    try:
        with HashCache(db) as cache:
            cache.put(st, "ef" * 32)
            cache.flush()
            assert cache.status is not None and "locked" in cache.status
            assert not cache.enabled and cache.get(st) is None
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert db.exists()


def test_unwritable_location_means_no_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = HashCache(blocker / "sub" / "hashes.sqlite")  # parent is a file
    assert not cache.enabled and cache.status is not None
    assert cache.get(os.stat(blocker)) is None
    cache.put(os.stat(blocker), "ab" * 32)
    cache.close()


def test_disabled_and_forked_caches_remember_nothing(tmp_path: Path) -> None:
    st = make(tmp_path / "m.bin", b"abc")
    off = HashCache(tmp_path / "h.sqlite", enabled=False)
    off.put(st, "ab" * 32)
    assert off.get(st) is None and off.status is None
    with HashCache(tmp_path / "h.sqlite") as cache:
        cache.put(st, "ab" * 32)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # a forked worker must not touch the parent's connection
            os.write(w, b"1" if cache.get(st) is None and not cache.enabled else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(r, 1) == b"1"
        os.close(r)
        os.close(w)
        assert cache.get(st) == "ab" * 32


def test_cache_dir_from_environment(tmp_path: Path) -> None:
    assert cache_dir({"MODELWARD_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "modelward"
    home = cache_dir({})
    assert home.parts[-2:] == (".cache", "modelward")


def test_big_inode_numbers_fit(tmp_path: Path) -> None:
    st = make(tmp_path / "m.bin", b"abc")
    fake = os.stat_result((st.st_mode, 2**64 - 5, 2**63 + 1, 1, 0, 0, 3, 0, 0, 0))
    key = stat_key(fake)
    assert key[0] == 2**63 + 1 - 2**64 and key[1] == -5
