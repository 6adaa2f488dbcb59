"""The vault's checks: the expected digest of a decision, a cross-filesystem copy read back before
the original goes, and the owner put back on restore."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from modelward.policy import journal
from modelward.policy.vault import NOTE_SUFFIX, StaleContent, Vault


def _files(folder: Path, n: int = 2) -> dict[Path, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(n):
        p = folder / f"f{i}.bin"
        p.write_bytes(os.urandom(5000 + i))
        out[p] = p.read_bytes()
    return out


def _simulate_exdev(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rename into a move's temp file fails with EXDEV (what a move to another filesystem
    meets, both ways), so the copy path runs on any machine."""
    real = os.rename

    def rename(src: str | Path, dst: str | Path) -> None:
        if str(dst).endswith(".modelward-part"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst)

    monkeypatch.setattr(journal.os, "rename", rename)


@pytest.fixture(params=["same-fs", "cross-fs"])
def cross(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run a test as it is, and as a move across filesystems."""
    if request.param == "cross-fs":
        _simulate_exdev(monkeypatch)
    return request.param == "cross-fs"


def test_the_expected_digest_is_checked_on_the_moved_bytes(tmp_path: Path, cross: bool) -> None:
    files = _files(tmp_path / "m")
    _first, second = files
    vault = Vault.open(tmp_path / "vault")
    wrong = "0" * 64
    with pytest.raises(StaleContent) as exc:
        vault.quarantine(list(files), "r", "rule", expected={str(second): wrong})
    found = hashlib.sha256(files[second]).hexdigest()
    assert exc.value.diagnostics() == (
        f"{second} changed since the inventory: expected sha256 {wrong}, found {found}; "
        "not quarantined; run the inventory again"
    )
    assert all(p.read_bytes() == data for p, data in files.items())  # both put back
    assert vault.list() == [] and not list((tmp_path / "m").glob(f"*{NOTE_SUFFIX}"))
    assert sorted(os.listdir(tmp_path / "m")) == ["f0.bin", "f1.bin"]


def test_a_file_with_its_expected_digest_is_hashed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _files(tmp_path / "m", n=1)
    (path,) = files
    hashed: list[str] = []
    real = journal.sha256_file

    def counting(p: Path) -> str:
        hashed.append(str(p))
        return real(p)

    monkeypatch.setattr("modelward.policy.vault.sha256_file", counting)
    monkeypatch.setattr(journal, "sha256_file", counting)
    vault = Vault.open(tmp_path / "vault")
    sha = hashlib.sha256(files[path]).hexdigest()
    entry = vault.quarantine([path], "r", "rule", expected={str(path): sha.upper()})
    assert entry.files[0].sha256 == sha
    assert len(hashed) == 1 and hashed[0].endswith(".modelward-part")  # the moved bytes only
    vault.restore(entry.id)
    assert path.read_bytes() == files[path]


def _corrupt_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every copy across filesystems gets one bit flipped on its way to the disk (after the copy
    hashed what it read from the source)."""
    real = journal._copy

    def corrupting(src: Path, temp: Path) -> str:
        digest = real(src, temp)
        with open(temp, "r+b") as fh:
            byte = fh.read(1)
            fh.seek(0)
            fh.write(bytes([byte[0] ^ 1]))
        return digest

    monkeypatch.setattr(journal, "_copy", corrupting)


def test_a_copy_that_does_not_read_back_is_removed_and_the_original_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _simulate_exdev(monkeypatch)
    files = _files(tmp_path / "m", n=3)
    vault = Vault.open(tmp_path / "vault")
    _corrupt_copies(monkeypatch)
    with pytest.raises(journal.VaultError) as exc:
        vault.quarantine(list(files), "r", "rule")
    msg = exc.value.diagnostics()
    assert "does not read back as written" in msg and "every file was put back" in msg
    assert all(p.read_bytes() == data for p, data in files.items())
    assert sorted(os.listdir(tmp_path / "m")) == ["f0.bin", "f1.bin", "f2.bin"]
    assert vault.list() == [] and not list((vault.root / "journal").iterdir())
    assert not [p for p in (vault.root / "entries").rglob("*") if p.is_file()]


def test_a_restore_whose_copy_does_not_read_back_keeps_the_vault_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _simulate_exdev(monkeypatch)
    files = _files(tmp_path / "m", n=2)
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine(list(files), "r", "rule")
    with monkeypatch.context() as m:
        _corrupt_copies(m)
        with pytest.raises(journal.CopyCorrupt, match="does not read back as written"):
            vault.restore(entry.id)
    for p in files:  # nothing half-restored; the vault copy is whole
        assert not os.path.lexists(p)
    assert not [n for n in os.listdir(tmp_path / "m") if n.endswith(".modelward-part")]
    Vault.open(vault.root)  # the journal finishes the restore once copies read back
    assert all(p.read_bytes() == data for p, data in files.items())


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_restore_brings_back_the_owner(tmp_path: Path, cross: bool) -> None:
    files = _files(tmp_path / "m", n=2)
    for p in files:
        os.chown(p, 1234, 5678)
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine(list(files), "r", "rule")
    assert {(f.uid, f.gid) for f in entry.files} == {(1234, 5678)}
    for f in entry.files:  # the vault's copy is whatever the move made it; restore must fix it
        os.chown(vault.root / f.stored, 0, 0)
    vault.restore(entry.id)
    for p, data in files.items():
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (1234, 5678) and p.read_bytes() == data
