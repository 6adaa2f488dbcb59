"""The scan engine: walking, identification fallbacks, hashing, errors, parallel runs."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest

from modelward.errors import UsageError
from modelward.models import Severity
from modelward.scan import ScanOptions, scan, scan_file


def test_unknown_file_is_reported_clean_with_hash(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    rep = scan([p]).files[0]
    assert rep.format == "unknown"
    assert rep.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert rep.findings == ()
    assert rep.path == str(p)


def test_no_hash_gives_null(tmp_path: Path) -> None:
    p = tmp_path / "a.bin"
    p.write_bytes(b"x" * 10)
    assert scan([p], ScanOptions(hash=False)).files[0].sha256 is None


def test_large_file_hash_matches_hashlib(tmp_path: Path) -> None:
    p = tmp_path / "big.dat"
    data = os.urandom(6 << 20)  # above SMALL_FILE: streamed, not read whole
    p.write_bytes(data)
    assert scan([p]).files[0].sha256 == hashlib.sha256(data).hexdigest()


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        scan([tmp_path / "nope"])


def test_folder_walk_is_sorted_and_relative_to_given_root(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("z")
    (tmp_path / "a.txt").write_text("a")
    paths = [f.path for f in scan([tmp_path]).files]
    assert paths == [str(tmp_path / "a.txt"), str(tmp_path / "b" / "z.txt")]


def test_symlinked_folder_loop_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("m")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert [f.path for f in scan([tmp_path]).files] == [str(tmp_path / "m.txt")]


def test_same_blob_through_two_paths_is_scanned_once_reported_twice(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"data")
    (tmp_path / "link").symlink_to(blob)
    files = scan([tmp_path]).files
    assert [f.path for f in files] == [str(blob), str(tmp_path / "link")]
    assert files[0].sha256 == files[1].sha256


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file_is_an_error_entry_and_scan_goes_on(tmp_path: Path) -> None:
    bad = tmp_path / "secret.pkl"
    bad.write_bytes(b"\x80\x04N.")
    bad.chmod(0)
    ok = tmp_path / "ok.txt"
    ok.write_text("x")
    files = {f.path: f for f in scan([tmp_path]).files}
    assert files[str(bad)].errors
    assert not files[str(ok)].errors


def test_a_folder_of_links_to_blobs_is_scanned_through_the_links(tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir()
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "blobs" / "abc").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    (tmp_path / "snapshots" / "model.pkl").symlink_to(tmp_path / "blobs" / "abc")
    (rep,) = scan([tmp_path / "snapshots"]).files
    assert rep.format == "pickle" and rep.errors == () and rep.sha256 is not None


def test_fifo_is_skipped_not_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    rep = scan([tmp_path]).files[0]
    assert rep.errors == ("not a regular file: skipped",)


def test_dangling_symlink_is_an_error_entry(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    files = scan([tmp_path]).files
    assert len(files) == 1 and files[0].errors


def test_many_files_use_the_process_pool_and_match_serial(tmp_path: Path) -> None:
    for i in range(60):
        (tmp_path / f"f{i:03}.pkl").write_bytes(pickle.dumps({"w": [float(i)] * 50}, protocol=4))
    parallel = scan([tmp_path], ScanOptions(jobs=2))
    serial = scan([tmp_path], ScanOptions(jobs=1))
    assert parallel == serial
    assert len(parallel.files) == 60
    assert all(f.format == "pickle" for f in parallel.files)


def test_malicious_pickle_fails_the_report(tmp_path: Path) -> None:
    p = tmp_path / "evil.pkl"
    p.write_bytes(b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    report = scan([p])
    assert report.fails(Severity.HIGH)
    assert report.files[0].unsafe
    assert report.summary()["unsafe_files"] == 1


def test_scan_file_never_raises_on_directory(tmp_path: Path) -> None:
    rep = scan_file(str(tmp_path), "d", ScanOptions())
    assert rep.errors


@pytest.mark.parametrize("ext", [".pkl", ".safetensors", ".gguf", ".onnx", ".keras", ".pt", ".npy"])
def test_an_empty_model_file_is_a_low_finding(tmp_path: Path, ext: str) -> None:
    p = tmp_path / f"model{ext}"
    p.write_bytes(b"")
    rep = scan([p]).files[0]
    assert [(f.rule, f.severity) for f in rep.findings] == [("format.empty", Severity.LOW)]
    assert not rep.unsafe


def test_an_empty_file_without_a_model_name_says_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_bytes(b"")
    (tmp_path / "weights.bin").write_bytes(b"")  # .bin promises nothing in particular
    assert all(f.findings == () for f in scan([tmp_path]).files)


def test_unrecognised_content_under_a_model_name_is_a_low_finding(tmp_path: Path) -> None:
    p = tmp_path / "model.pt"
    p.write_bytes(bytes(range(7, 107)))
    (f,) = scan([p]).files[0].findings
    assert f.rule == "format.unrecognized" and f.severity == Severity.LOW
