"""The discovery walk: candidates by name and header, links, hostile trees, limits."""

from __future__ import annotations

import os
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from modelward.inventory.walk import (
    _Walker,
    find_model_files,
    looks_like_model,
    model_extension,
)

FLOOR = 4096  # a small size floor keeps the fixtures small


def walk(*roots: Path, **kw: object) -> tuple[dict[str, os.stat_result], list[tuple[str, str]]]:
    errors: list[tuple[str, str]] = []
    kw.setdefault("size_floor", FLOOR)
    found = dict(find_model_files(list(roots), on_error=lambda p, m: errors.append((p, m)), **kw))  # type: ignore[arg-type]
    return found, errors


def real(p: Path) -> str:
    return os.path.realpath(p)


def padded(magic: bytes, size: int = FLOOR + 100) -> bytes:
    return magic + b"\0" * (size - len(magic))


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    (h / "models").mkdir(parents=True)
    (h / "docs").mkdir()
    return h


def test_candidates_by_extension_and_by_magic(home: Path) -> None:
    from gguf import GGUFWriter
    from safetensors.numpy import save_file

    tiny = home / "models" / "tiny.pkl"
    tiny.write_bytes(pickle.dumps({"a": 1}, protocol=4))  # a few bytes: yielded by name
    save_file({"w": np.zeros((64, 64), dtype=np.float32)}, str(home / "models" / "renamed"))
    writer = GGUFWriter(str(home / "models" / "llm.dat"), "llama")
    writer.add_tensor("t", np.zeros((64, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    np.save(home / "models" / "arr.npy", np.arange(3))
    (home / "models" / "w.pkl.gz").write_bytes(b"\x1f\x8b" + b"x" * 10)
    (home / "models" / "UPPER.PT").write_bytes(b"PK\x03\x04")
    (home / "models" / "empty.safetensors").write_bytes(b"")
    (home / "docs" / "notes.txt").write_text("hello")
    (home / "docs" / "big.txt").write_bytes(b"text " * 2000)  # above the floor, no magic
    (home / "docs" / "small-renamed").write_bytes(pickle.dumps([1], protocol=4))  # below floor
    (home / "docs" / "backup.tgz").write_bytes(padded(b"\x1f\x8b\x08"))  # archive magic

    found, errors = walk(home)
    assert errors == []
    names = {os.path.basename(p) for p in found}
    assert names == {
        "tiny.pkl",
        "renamed",
        "llm.dat",
        "arr.npy",
        "w.pkl.gz",
        "UPPER.PT",
        "empty.safetensors",
        "backup.tgz",
    }
    st = found[real(tiny)]
    assert st.st_size == tiny.stat().st_size and st.st_ino == tiny.stat().st_ino


def test_magic_sniffer() -> None:
    size = 1 << 30
    for head in (
        b"GGUF\x03\x00\x00\x00",
        b"tjgg\x01\x00\x00\x00",
        b"\x80\x02\x8a\x0alz",
        b"\x80\x05\x95",
        b"PK\x03\x04\x14\x00",
        b"\x89HDF\r\n\x1a\n",
        b"\x93NUMPY\x01\x00",
        b"\x1c\x00\x00\x00TFL3",
        b"7z\xbc\xaf\x27\x1c\x00\x04",
        b"\xfd7zXZ\x00\x00",
        b"BZh91AY",
        b"MZqFpD='\n",
        struct.pack("<Q", 100) + b'{"w":',
        bytes(512) + b"\x89HDF\r\n\x1a\n",
        bytes(257) + b"ustar\x0000",
    ):
        assert looks_like_model(head + bytes(16), size), head
    for head in (
        b"\x80\x01abc",  # not a pickle protocol 2-5
        b"\x80\x06abc",
        b"(dp0\nS'a'",  # protocol 0: by name only
        b"MZ\x90\x00\x03\x00",  # an ordinary Windows executable
        b"\x7fELF\x02\x01",
        b"BZhx",
        b"abc",
        struct.pack("<Q", 1 << 40) + b"{",  # safetensors header longer than the file
        b"hello world, this is text",
    ):
        assert not looks_like_model(head + bytes(16), size), head


def test_model_extension() -> None:
    assert model_extension("a.safetensors") and model_extension("A.GGUF")
    assert model_extension("x.pkl.gz") and model_extension("x.joblib.xz")
    assert not model_extension("x.tar.gz") and not model_extension("x.gz")
    assert not model_extension("README") and not model_extension(".pkl")
    assert not model_extension("x.txt")


def test_symlinks_followed_to_files_only(home: Path, tmp_path: Path) -> None:
    # a Hugging Face-like snapshot: relative links to blobs named by digest (no extension)
    repo = home / "hub" / "models--org--m"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / "abc").mkdir(parents=True)
    blob = repo / "blobs" / ("a" * 64)
    blob.write_bytes(struct.pack("<Q", 2) + b"{}")
    (repo / "snapshots" / "abc" / "model.safetensors").symlink_to("../../blobs/" + "a" * 64)
    (repo / "snapshots" / "abc" / "again.safetensors").symlink_to("../../blobs/" + "a" * 64)
    # a link to a folder outside the root holding a model: never followed
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.pkl").write_bytes(b"\x80\x04N.")
    (home / "linked-dir").symlink_to(outside, target_is_directory=True)
    # hard links: one file
    (home / "models" / "a.pt").write_bytes(b"PK\x03\x04")
    os.link(home / "models" / "a.pt", home / "models" / "b.pt")

    found, errors = walk(home)
    assert errors == []
    assert real(blob) in found
    assert not any("secret" in p for p in found)
    assert sum(1 for p in found if p.endswith((".pt",))) == 1
    assert len(found) == 2


def test_hostile_links_fifos_and_sockets(home: Path) -> None:
    m = home / "models"
    (m / "loop.pkl").symlink_to("loop.pkl")
    (m / "ping").symlink_to("pong")
    (m / "pong").symlink_to("ping")
    (m / "gone.pt").symlink_to("does-not-exist.pt")
    (m / "gone-noext").symlink_to("does-not-exist")
    os.mkfifo(m / "fifo.pkl")  # opening it would block: it must never be opened
    os.mkfifo(m / "fifo-noext")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(m / "sock.bin"))
        found, errors = walk(home)
    finally:
        sock.close()
    assert found == {}
    by_path = {os.path.basename(p): msg for p, msg in errors}
    assert by_path == {
        "loop.pkl": "symbolic link loop",
        "ping": "symbolic link loop",
        "pong": "symbolic link loop",
        "gone.pt": "broken symbolic link",
    }


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_folder(home: Path) -> None:
    locked = home / "locked"
    locked.mkdir()
    (locked / "m.pkl").write_bytes(b"\x80\x04N.")
    (home / "models" / "ok.pkl").write_bytes(b"\x80\x04N.")
    locked.chmod(0)
    try:
        found, errors = walk(home)
    finally:
        locked.chmod(0o700)
    assert [os.path.basename(p) for p in found] == ["ok.pkl"]
    assert errors == [(real(locked), "permission denied")]


def test_depth_limit(tmp_path: Path) -> None:
    d = tmp_path / "deep"
    for i in range(10):
        d = d / f"{i}"
    d.mkdir(parents=True)
    (d / "bottom.pkl").write_bytes(b"\x80\x04N.")
    (tmp_path / "deep" / "0" / "top.pkl").write_bytes(b"\x80\x04N.")
    found, errors = walk(tmp_path / "deep", max_depth=5)
    assert [os.path.basename(p) for p in found] == ["top.pkl"]
    assert len(errors) == 1 and errors[0][1] == "deeper than 5 folders; not walked"
    found, errors = walk(tmp_path / "deep")
    assert len(found) == 2 and errors == []


def test_very_deep_tree_does_not_crash(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    try:  # 300 levels, built relative to descriptors (the full path exceeds PATH_MAX)
        for _ in range(300):
            os.mkdir("d" * 60, dir_fd=fd)
            new = os.open("d" * 60, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
    finally:
        os.close(fd)
    found, errors = walk(tmp_path)
    assert found == {}
    assert len(errors) == 1 and "deeper than 64" in errors[0][1]


def test_vcs_internals_skipped_but_git_lfs_objects_walked(home: Path) -> None:
    repo = home / "repo"
    (repo / ".git" / "objects" / "aa").mkdir(parents=True)
    (repo / ".git" / "objects" / "aa" / "old.pkl").write_bytes(b"\x80\x04N.")
    lfs = repo / ".git" / "lfs" / "objects" / "ab" / "cd"
    lfs.mkdir(parents=True)
    (lfs / ("ab" * 32)).write_bytes(padded(b"GGUF\x03\x00\x00\x00"))
    (repo / ".hg").mkdir()
    (repo / ".hg" / "x.pkl").write_bytes(b"\x80\x04N.")
    (repo / "model.gguf").write_bytes(b"GGUF")
    found, errors = walk(home)
    assert errors == []
    assert sorted(os.path.basename(p) for p in found) == sorted(["ab" * 32, "model.gguf"])


def test_skip_folders_roots_and_files(home: Path, tmp_path: Path) -> None:
    store = home / ".ollama" / "models"
    store.mkdir(parents=True)
    (store / "x.gguf").write_bytes(b"GGUF")
    (home / "models" / "y.gguf").write_bytes(b"GGUF")
    found, errors = walk(home, skip=[str(home / ".ollama")])
    assert [os.path.basename(p) for p in found] == ["y.gguf"]
    found, errors = walk(store, skip=[str(home / ".ollama")])  # a root inside a skipped folder
    assert found == {} and errors == []
    f = tmp_path / "plain.txt"
    f.write_text("x")
    found, errors = walk(f, tmp_path / "missing", home / "models")
    assert set(found) == {real(f), real(home / "models" / "y.gguf")}
    assert errors == [(str(tmp_path / "missing"), "does not exist")]


def test_pseudo_filesystems_not_walked() -> None:
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    found, errors = walk(Path("/proc/self"))
    assert found == {}
    assert errors == [("/proc/" + str(os.getpid()), "pseudo-filesystem; not walked")]


def test_vanished_files_are_errors(home: Path) -> None:
    seen: list[tuple[str, str]] = []
    w = _Walker((), lambda p, m: seen.append((p, m)), FLOOR, 64, False, True)
    (home / "here").write_bytes(b"x")
    prefix = str(home) + os.sep
    got = w._sizes(prefix, -1, ["here", "gone"])
    assert [n for n, _ in got] == ["here"]
    assert seen == [(prefix + "gone", "vanished while walking")]


def test_one_fs_stays_on_the_root_filesystem(home: Path) -> None:
    (home / "models" / "m.pkl").write_bytes(b"\x80\x04N.")
    found, _ = walk(home, one_fs=True)
    assert len(found) == 1
