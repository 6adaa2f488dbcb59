"""The blob-store contract, run on the filesystem store and on the S3 store (moto's S3 server)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from modelward.errors import BlobNotFound, Corrupt, DigestMismatch, TooLarge


def put(store: Any, data: bytes, expected: str | None = None) -> Any:
    with store.writer() as w:
        for i in range(0, len(data), 1 << 16):
            w.write(data[i : i + (1 << 16)])
        return w.commit(expected)


def tamper(store: Any, digest: str, data: bytes) -> None:
    """Change a stored blob's bytes behind the store's back (disk rot, an operator's mistake)."""
    p = store.path(digest)
    if p is not None:
        os.chmod(p, 0o644)
        Path(p).write_bytes(data)
        return
    head = store.client.head_object(Bucket=store.bucket, Key=store._key(digest))
    store.client.put_object(
        Bucket=store.bucket, Key=store._key(digest), Body=data, Metadata=head["Metadata"]
    )


def test_put_read_seek_and_copy(blob_store: Any) -> None:
    data = os.urandom(300_000)
    info = put(blob_store, data, hashlib.sha256(data).hexdigest())
    d = info.sha256
    assert (d, info.size, info.created) == (hashlib.sha256(data).hexdigest(), len(data), True)
    assert blob_store.exists(d) and blob_store.size(d) == len(data)
    with blob_store.open(d) as fh:
        assert fh.read() == data
    with blob_store.open(d) as fh:
        fh.seek(123_456)
        assert fh.read(10) == data[123_456:123_466]
        fh.seek(5)
        assert fh.read(3) == data[5:8]
    with blob_store.local_copy(d) as local:
        assert Path(local).read_bytes() == data
    blob_store.ensure_intact(d)
    assert blob_store.verify(d)
    assert put(blob_store, data).created is False  # same bytes again: one copy
    assert list(blob_store.iter_digests()) == [d]


def test_path_is_a_file_only_on_the_filesystem(blob_store: Any) -> None:
    d = put(blob_store, b"abc").sha256
    p = blob_store.path(d)
    assert p is None or Path(p).read_bytes() == b"abc"


def test_mismatch_and_oversize_store_nothing(blob_store: Any) -> None:
    with blob_store.writer() as w:
        w.write(b"hello")
        with pytest.raises(DigestMismatch):
            w.commit("0" * 64)
    with blob_store.writer(max_size=4) as w, pytest.raises(TooLarge):
        w.write(b"hello")
    with pytest.raises(DigestMismatch):
        put(blob_store, b"x", "not-a-digest")
    assert list(blob_store.iter_digests()) == []
    assert not any(blob_store.tmp_dir.iterdir())


def test_missing_blobs_are_not_found(blob_store: Any) -> None:
    d = "ab" * 32
    assert not blob_store.exists(d)
    for call in (blob_store.size, blob_store.open, blob_store.ensure_intact, blob_store.verify):
        with pytest.raises(BlobNotFound):
            call(d)
    with pytest.raises(BlobNotFound), blob_store.local_copy(d):
        pass
    with pytest.raises(DigestMismatch):
        blob_store.exists("../../etc/passwd")


def test_concurrent_uploads_keep_one_copy(blob_store: Any) -> None:
    data = os.urandom(200_000)
    results: list[Any] = []
    barrier = threading.Barrier(6)

    def up() -> None:
        with blob_store.writer() as w:
            w.write(data)
            barrier.wait()
            results.append(w.commit())

    threads = [threading.Thread(target=up) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 6 and len({r.sha256 for r in results}) == 1
    assert sum(r.created for r in results) >= 1
    assert list(blob_store.iter_digests()) == [results[0].sha256]
    with blob_store.open(results[0].sha256) as fh:
        assert fh.read() == data


def test_changed_bytes_are_never_served(blob_store: Any) -> None:
    d = put(blob_store, b"original bytes").sha256
    blob_store.ensure_intact(d)
    tamper(blob_store, d, b"tampered bytes")
    with pytest.raises(Corrupt):
        blob_store.ensure_intact(d)
    assert blob_store.verify(d) is False


def test_delete_and_listing(blob_store: Any) -> None:
    digests = sorted(put(blob_store, bytes([i]) * 10).sha256 for i in range(5))
    assert list(blob_store.iter_digests()) == digests
    blob_store.delete(digests[0])
    blob_store.delete(digests[0])  # twice: no error
    assert list(blob_store.iter_digests()) == digests[1:]
    assert not blob_store.exists(digests[0])


def test_purge_temp_removes_only_old_leftovers(blob_store: Any) -> None:
    old = blob_store.tmp_dir / "upload-killed"
    old.write_bytes(b"half an upload")
    day_ago = time.time() - 2 * 86_400
    os.utime(old, (day_ago, day_ago))
    fresh = blob_store.tmp_dir / "upload-running"
    fresh.write_bytes(b"in progress")
    assert blob_store.purge_temp(timedelta(days=1)) >= 1
    assert not old.exists() and fresh.exists()
