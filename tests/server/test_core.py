"""The hub's library core on SQLite and PostgreSQL: revisions, workflow, refs, audit, blobs, gc."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

import pytest

from modelward.errors import (
    ApprovalRefused,
    BadRequest,
    BlobNotFound,
    Conflict,
    Corrupt,
    DigestMismatch,
    InvalidName,
    NotApproved,
    RevisionNotFound,
    Revoked,
    TooLarge,
)
from modelward.hub.names import validate_path, validate_repo
from modelward.hub.revision import commit_id, git_oid
from modelward.hub.service import NewFile
from tests.server.conftest import make_model_dir, publish


def test_commit_id_is_deterministic_and_order_free(tmp_path: Path) -> None:
    from modelward.hub.revision import FileEntry

    a = FileEntry("a", 1, "0" * 64, "x")
    b = FileEntry("b", 2, "1" * 64, "y")
    assert commit_id([a, b]) == commit_id([b, a])
    assert len(commit_id([a])) == 40
    assert commit_id([a]) != commit_id([FileEntry("a", 2, "0" * 64, "x")])


def test_git_oid_matches_git_for_an_lfs_pointer() -> None:
    # `git hash-object` of this pointer text, computed once with git 2.39.
    sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    import hashlib

    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize 0\n".encode()
    expected = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
    assert git_oid(sha, 0) == expected


@pytest.mark.parametrize(
    "name", ["acme", "Acme/model", "a.b/model", "acme/model/x", "acme/-x", "acme/x..y", "", "/x"]
)
def test_bad_repo_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_repo(name)


@pytest.mark.parametrize(
    "path", ["../x", "/etc/passwd", "a/../../b", "a\\b", "a//b", ".git/config", "x\x00y", "./a", ""]
)
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidName):
        validate_path(path)


def test_publish_review_approve_flow(hub: Any, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path)
    rev = publish(hub, "acme/tiny", folder, approve=False, tag="v1")
    assert rev.state == "in_review"
    assert rev.license["id"] == "apache-2.0"
    assert {f.path for f in rev.files} >= {"model.safetensors", "sub/notes.txt"}
    assert rev.scan["summary"]["files"] == len(rev.files)
    with pytest.raises(NotApproved, match="blocked by policy"):
        hub.resolve("acme/tiny")
    with pytest.raises(NotApproved):
        hub.resolve("acme/tiny", rev.commit)
    assert [r.commit for r in hub.review_queue()] == [rev.commit]
    approved = hub.approve("acme/tiny", rev.commit, "rita", "vetted")
    assert approved.state == "approved" and approved.is_main
    assert hub.resolve("acme/tiny").commit == rev.commit
    assert hub.resolve("acme/tiny", "v1").commit == rev.commit
    assert hub.review_queue() == []
    actions = [e.action for e in reversed(hub.audit("acme/tiny"))]
    assert actions == ["submit", "scan-start", "scan-done", "tag", "approve"]
    assert hub.audit("acme/tiny")[0].reason == "vetted"
    with pytest.raises(Conflict):
        hub.approve("acme/tiny", rev.commit, "rita", "again")


def test_same_files_same_revision(hub: Any, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path)
    a = publish(hub, "acme/tiny", folder, approve=False)
    b = publish(hub, "acme/tiny", folder, approve=False)
    assert a.commit == b.commit
    assert len(hub.revisions("acme/tiny")) == 1


def test_critical_refuses_and_high_needs_override(hub: Any, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path)
    # A pickle that would call os.system if loaded; it is only ever scanned.
    (folder / "evil.pkl").write_bytes(b"cos\nsystem\n(S'echo harmless'\ntR.")
    rev = publish(hub, "acme/evil", folder, approve=False)
    assert rev.max_severity == "critical"
    with pytest.raises(ApprovalRefused):
        hub.approve("acme/evil", rev.commit, "rita", "please", override=True)
    hub.reject("acme/evil", rev.commit, "rita", "code execution in evil.pkl")
    with pytest.raises(NotApproved, match="code execution"):
        hub.resolve("acme/evil", rev.commit)


def test_high_finding_needs_override(hub: Any, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path)
    # A zip under a safetensors name: a format masquerade, reported high.
    import zipfile

    with zipfile.ZipFile(folder / "extra.safetensors", "w") as z:
        z.writestr("a.txt", "x")
    rev = publish(hub, "acme/masq", folder, approve=False)
    assert rev.max_severity == "high", rev.scan["files"]
    with pytest.raises(ApprovalRefused, match="override"):
        hub.approve("acme/masq", rev.commit, "rita", "ok")
    assert hub.approve("acme/masq", rev.commit, "rita", "known", override=True).state == "approved"


def test_revoke_moves_main_back(hub: Any, tmp_path: Path) -> None:
    one = publish(hub, "acme/m", make_model_dir(tmp_path, "one"))
    two = publish(hub, "acme/m", make_model_dir(tmp_path, "two", weights=b"\x00" * 8))
    assert hub.resolve("acme/m").commit == two.commit
    hub.revoke("acme/m", two.commit, "rita", "bad weights")
    assert hub.resolve("acme/m").commit == one.commit
    with pytest.raises(Revoked):
        hub.resolve("acme/m", two.commit)
    hub.revoke("acme/m", one.commit, "rita", "all bad")
    with pytest.raises((NotApproved, RevisionNotFound)):
        hub.resolve("acme/m")


def test_approved_tags_are_immutable(hub: Any, tmp_path: Path) -> None:
    publish(hub, "acme/t", make_model_dir(tmp_path, "one"), tag="v1")
    with pytest.raises(Conflict, match="immutable"):
        publish(hub, "acme/t", make_model_dir(tmp_path, "two", weights=b"\x01" * 8), tag="v1")


def test_revision_needs_uploaded_blobs_and_valid_paths(hub: Any) -> None:
    with pytest.raises(BlobNotFound):
        hub.create_revision("acme/x", [NewFile("a.bin", "a" * 64, 3)], {}, "t")
    d = hub.put_bytes(b"abc")
    with pytest.raises(InvalidName):
        hub.create_revision("acme/x", [NewFile("../a.bin", d, 3)], {}, "t")
    with pytest.raises(BadRequest, match="declares"):
        hub.create_revision("acme/x", [NewFile("a.bin", d, 4)], {}, "t")
    with pytest.raises(BadRequest, match="folder"):
        hub.create_revision("acme/x", [NewFile("a", d, 3), NewFile("a/b", d, 3)], {}, "t")
    with pytest.raises(BadRequest):
        hub.create_revision("acme/x", [], {}, "t")


def test_blob_writer_verifies_and_limits(hub: Any) -> None:
    blobs = hub.blobs
    with blobs.writer() as w:
        w.write(b"hello")
        with pytest.raises(DigestMismatch):
            w.commit("0" * 64)
    assert list(blobs.iter_digests()) == []
    with blobs.writer(max_size=4) as w, pytest.raises(TooLarge):
        w.write(b"hello")
    assert list(blobs.iter_digests()) == []
    assert not any(blobs.tmp_dir.iterdir())


def test_concurrent_uploads_keep_one_copy(hub: Any) -> None:
    data = pickle.dumps(list(range(10_000)))
    results: list[Any] = []

    def up() -> None:
        with hub.blobs.writer() as w:
            w.write(data)
            results.append(w.commit())

    threads = [threading.Thread(target=up) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.sha256 for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert len(list(hub.blobs.iter_digests())) == 1


def test_changed_blob_is_never_served(hub: Any, tmp_path: Path) -> None:
    d = hub.put_bytes(b"original bytes")
    hub.blobs.ensure_intact(d)
    p = Path(hub.blobs.path(d))
    p.chmod(0o644)
    p.write_bytes(b"tampered bytes")
    with pytest.raises(Corrupt):
        hub.blobs.ensure_intact(d)


def test_gc_removes_only_unreferenced_blobs(hub: Any, tmp_path: Path, monkeypatch: Any) -> None:
    import modelward.hub.service as service

    rev = publish(hub, "acme/g", make_model_dir(tmp_path))
    orphan = hub.put_bytes(b"nobody uses me")
    monkeypatch.setattr(service, "_HOUR", service._HOUR * 0)
    garbage = hub.gc(dry_run=True)
    assert garbage == [orphan]
    assert hub.blobs.exists(orphan)
    hub.gc(dry_run=False)
    assert not hub.blobs.exists(orphan)
    for f in rev.files:
        assert hub.blobs.exists(f.sha256)


def test_a_scan_cut_short_by_a_crash_is_finished_on_resubmit(hub: Any, tmp_path: Path) -> None:
    from modelward.store.db import Revision

    folder = make_model_dir(tmp_path)
    rev = publish(hub, "acme/crash", folder, approve=False)
    with hub.db.session() as s:  # as if the server died between "scanning" and "in_review"
        row = s.query(Revision).filter_by(commit=rev.commit).one()
        row.state = "scanning"
    again = publish(hub, "acme/crash", folder, approve=False)
    assert again.commit == rev.commit and again.state == "in_review"


def test_a_scanner_failure_is_never_a_clean_result(
    hub: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    def broken(_entries: Any) -> Any:
        raise RuntimeError("scanner exploded")

    monkeypatch.setattr(hub, "_scan", broken)
    rev = publish(hub, "acme/broken", make_model_dir(tmp_path), approve=False)
    assert rev.max_severity == "high"
    assert "scanner exploded" in rev.scan["error"]
    with pytest.raises(ApprovalRefused):
        hub.approve("acme/broken", rev.commit, "rita", "fine")
