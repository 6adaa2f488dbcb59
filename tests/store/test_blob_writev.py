"""``BlobWriter.writev``: many pieces at once (what the HTTP upload path hands over), both stores."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from modelward.errors import TooLarge


@pytest.mark.parametrize("sizes", [[0, 1, 7, 0, 300_000], [262_144] * 17, [1] * 2000 + [5_000_000]])
def test_writev_stores_the_pieces_in_order(blob_store: Any, sizes: list[int]) -> None:
    pieces = [os.urandom(n) for n in sizes]
    data = b"".join(pieces)
    with blob_store.writer() as w:
        w.write(b"head")  # a pending write() before writev keeps its place
        for i in range(0, len(pieces), 1500):
            w.writev(pieces[i : i + 1500])
        info = w.commit(hashlib.sha256(b"head" + data).hexdigest())
    assert info.size == 4 + len(data)
    with blob_store.open(info.sha256) as fh:
        assert fh.read() == b"head" + data


def test_writev_checks_the_limit(blob_store: Any) -> None:
    with blob_store.writer(max_size=10) as w, pytest.raises(TooLarge):
        w.writev([b"123456", b"78901"])
    assert list(blob_store.iter_digests()) == []


@pytest.mark.parametrize("announced", [10, 100_000, 300_000])
def test_the_announced_size_is_only_a_hint(tmp_path: Any, announced: int) -> None:
    """Fewer or more bytes than announced: the blob holds exactly what came (fs preallocates)."""
    from modelward.store.blobs import FsBlobStore

    store = FsBlobStore(tmp_path, fsync="revision")
    data = os.urandom(100_000)
    with store.writer(size_hint=announced) as w:
        w.writev([data[:50_000], data[50_000:]])
        info = w.commit(hashlib.sha256(data).hexdigest())
    assert os.path.getsize(store.path(info.sha256) or "") == len(data)
    store.ensure_intact(info.sha256)


def test_buffers_the_caller_reuses_are_written_before_writev_returns(blob_store: Any) -> None:
    """Only immutable ``bytes`` are written behind; a bytearray the caller refills is not."""
    chunk = 5 << 20  # above the writer's batch size: the write runs in a pool thread
    buf = bytearray(chunk)
    expected = hashlib.sha256()
    with blob_store.writer() as w:
        for i in range(4):
            buf[:] = bytes([i]) * chunk
            expected.update(buf)
            w.writev([buf])
            buf[:] = b"\xff" * chunk  # the caller reuses its buffer at once
        info = w.commit(expected.hexdigest())
    with blob_store.open(info.sha256) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == info.sha256


def test_a_write_behind_that_fails_fails_the_upload(tmp_path: Any, monkeypatch: Any) -> None:
    """A write still running behind the hashing (disk full) fails commit: nothing is published,
    no temporary file is left, and a later upload works."""
    import errno

    from modelward.store import blobs

    store = blobs.FsBlobStore(tmp_path)
    real = os.pwritev
    calls = 0

    def pwritev(fd: int, views: Any, offset: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, views, offset)

    monkeypatch.setattr(blobs.os, "pwritev", pwritev)
    pieces = [os.urandom(5 << 20) for _ in range(3)]
    digest = hashlib.sha256(b"".join(pieces)).hexdigest()
    with pytest.raises(OSError, match="No space"), store.writer() as w:
        for p in pieces:
            w.writev([p])
        w.commit(digest)
    assert list(store.iter_digests()) == []
    assert list(store.tmp_dir.iterdir()) == []
    monkeypatch.setattr(blobs.os, "pwritev", real)
    with store.writer() as w:
        for p in pieces:
            w.writev([p])
        assert w.commit(digest).sha256 == digest
