"""Review findings on the quarantine vault: each a way a user's file could have been lost or a
vault left stuck, proven fixed here."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelward.policy import journal
from modelward.policy import vault as vault_mod
from modelward.policy.vault import StaleContent, Vault


def test_a_moved_file_whose_path_is_recreated_is_kept_not_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same filesystem, wrong expected digest, and the path re-created while the moved file is
    hashed: the moved file is the user's only copy; it is kept beside the new one."""
    model = tmp_path / "model.bin"
    precious = b"PRECIOUS VERSION 2" * 1000
    model.write_bytes(precious)
    real = journal.sha256_file

    def racing(p: Path) -> str:
        digest = real(p)
        if ".modelward-part" in str(p) and not model.exists():
            model.write_bytes(b"new file by another program")
        return digest

    monkeypatch.setattr(journal, "sha256_file", racing)
    vault = Vault.open(tmp_path / "vault")
    with pytest.raises(StaleContent, match="modelward-kept-"):
        vault.quarantine([model], "r", "rule", expected={str(model): "0" * 64})
    assert model.read_bytes() == b"new file by another program"
    (kept,) = tmp_path.glob("model.bin.modelward-kept-*")
    assert kept.read_bytes() == precious
    assert vault.list() == [] and not list((vault.root / "journal").iterdir())


def test_a_moved_file_with_a_wrong_digest_goes_back_to_its_free_path(
    tmp_path: Path,
) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"data")
    vault = Vault.open(tmp_path / "vault")
    with pytest.raises(StaleContent):
        vault.quarantine([model], "r", "rule", expected={str(model): "0" * 64})
    assert model.read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "vault"]
    assert vault_mod.note_path(model).exists() is False
