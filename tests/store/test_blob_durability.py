"""When FsBlobStore forces blobs to disk (``blob_fsync``), and what a power loss can and cannot do.

A power loss is simulated the way it looks to the next process: a fresh store on the same folder
(nothing verified or known durable yet) whose blob file holds other bytes (zeros where the page
cache never reached the disk) with its size and mtime unchanged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelward.errors import BlobNotFound, Corrupt
from modelward.store.blobs import FsBlobStore


def put(store: FsBlobStore, data: bytes) -> Any:
    with store.writer() as w:
        w.write(data)
        return w.commit(hashlib.sha256(data).hexdigest())


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The file descriptors passed to os.fsync (still called through)."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    yield calls


def lose_power(store: FsBlobStore, digest: str) -> FsBlobStore:
    """The blob's bytes never reached the disk: zeros, same size and mtime; then a restart."""
    p = Path(store.root / "sha256" / digest[:2] / digest)
    st = p.stat()
    p.chmod(0o644)
    with p.open("r+b") as fh:
        fh.write(b"\x00" * st.st_size)
    p.chmod(0o444)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    return FsBlobStore(store.root, fsync=store.fsync)


def test_revision_mode_publishes_without_waiting_for_the_disk(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    store = FsBlobStore(tmp_path, fsync="revision")
    data = os.urandom(100_000)
    info = put(store, data)
    assert fsyncs == []  # acknowledged without waiting for the disk
    assert info.created and store.exists(info.sha256)
    assert list(store.tmp_dir.iterdir()) == []  # published by rename: nothing half-visible
    store.ensure_intact(info.sha256)
    with store.open(info.sha256) as fh:
        assert fh.read() == data

    store.make_durable([info.sha256])
    # the file, its folder and the sha256/ folder above it
    assert len(fsyncs) == 3
    store.make_durable([info.sha256, info.sha256])
    assert len(fsyncs) == 3  # already known durable: skipped


def test_upload_mode_waits_for_the_disk_before_acknowledging(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    store = FsBlobStore(tmp_path, fsync="upload")
    info = put(store, b"durable at once")
    assert len(fsyncs) >= 2  # the temporary file before publishing, then the folders
    n = len(fsyncs)
    store.make_durable([info.sha256])
    assert len(fsyncs) == n


def test_default_and_bad_modes(tmp_path: Path) -> None:
    assert FsBlobStore(tmp_path).fsync == "upload"  # the library's conservative default
    with pytest.raises(ValueError, match="fsync"):
        FsBlobStore(tmp_path, fsync="never")  # type: ignore[arg-type]


def test_a_blob_damaged_by_a_power_loss_is_never_served(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path, fsync="revision")
    info = put(store, os.urandom(50_000))
    after = lose_power(store, info.sha256)
    assert after.exists(info.sha256)
    with pytest.raises(Corrupt):
        after.ensure_intact(info.sha256)
    with pytest.raises(Corrupt):  # and again: nothing remembered it as good
        after.ensure_intact(info.sha256)


def test_make_durable_sets_a_damaged_blob_aside(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path, fsync="revision")
    data = os.urandom(50_000)
    info = put(store, data)
    after = lose_power(store, info.sha256)
    with pytest.raises(Corrupt, match="upload it again"):
        after.make_durable([info.sha256])
    assert not after.exists(info.sha256)  # a revision cannot reference it; HEAD says upload it
    aside = [p.name for p in after.tmp_dir.iterdir()]
    assert len(aside) == 1 and aside[0].startswith(f"corrupt-{info.sha256}")
    again = put(after, data)
    assert again.created
    after.make_durable([info.sha256])
    after.ensure_intact(info.sha256)


def test_an_upload_replaces_a_damaged_copy(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path, fsync="revision")
    data = os.urandom(50_000)
    info = put(store, data)
    after = lose_power(store, info.sha256)
    again = put(after, data)  # the client re-sends after the crash
    assert again.created  # the damaged copy did not count as "already stored"
    after.ensure_intact(info.sha256)
    with after.open(info.sha256) as fh:
        assert fh.read() == data


def test_an_intact_copy_is_kept_across_a_restart(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path, fsync="revision")
    data = os.urandom(50_000)
    info = put(store, data)
    store.make_durable([info.sha256])
    ino = os.stat(store.path(info.sha256) or "").st_ino
    restarted = FsBlobStore(tmp_path, fsync="revision")
    assert not put(restarted, data).created
    assert os.stat(restarted.path(info.sha256) or "").st_ino == ino
    restarted.make_durable([info.sha256])  # verified by the upload above: no error


def test_make_durable_of_a_missing_blob(tmp_path: Path) -> None:
    with pytest.raises(BlobNotFound):
        FsBlobStore(tmp_path, fsync="revision").make_durable(["ab" * 32])


@pytest.mark.parametrize("mode", ["upload", "revision"])
def test_a_fresh_upload_is_not_hashed_again(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FsBlobStore(tmp_path, fsync=mode)  # type: ignore[arg-type]
    rehashed: list[str] = []
    monkeypatch.setattr(store, "verify", lambda d: rehashed.append(d) or True)
    info = put(store, os.urandom(100_000))
    store.make_durable([info.sha256])
    store.ensure_intact(info.sha256)
    assert rehashed == []  # hashed once, while it was uploaded
