"""The notes left where quarantined files were: rewritten (never deleted) on purge, and left beside
the snapshot link of a Hugging Face model too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modelward.policy import journal
from modelward.policy.vault import NOTE_SUFFIX, Vault


def _note(p: Path) -> Path:
    return Path(str(p) + NOTE_SUFFIX)


def _model(folder: Path, n: int = 2) -> list[Path]:
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        p = folder / f"part-{i}.bin"
        p.write_bytes(os.urandom(1000))
        out.append(p)
    return out


def test_purge_rewrites_the_note_to_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_USER", raising=False)
    files = _model(tmp_path / "m")
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine(files, "runs code", "code-execution")
    assert f"restore {entry.id}" in _note(files[0]).read_text()
    vault.purge(entry.id, confirm=True)
    for p in files:
        text = _note(p).read_text()  # kept, not deleted
        assert re.match(
            r"This file was quarantined by modelward, then purged on "
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ by \S+:\n"
            "it was deleted for good and can no longer be restored.\n",
            text,
        )
        assert f"File:       {p}" in text and "Reason:     runs code" in text
        assert "restore" not in text.replace("restored", "")
        assert oct(os.stat(_note(p)).st_mode & 0o777) == oct(0o644)
    assert not [n for n in os.listdir(tmp_path / "m") if n.endswith(".tmp")]


def test_a_purge_killed_while_rewriting_notes_is_finished(tmp_path: Path) -> None:
    files = _model(tmp_path / "m", n=3)
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine(files, "r", "rule")
    script = (
        "import sys\nfrom pathlib import Path\nfrom modelward.policy.vault import Vault\n"
        "Vault.open(Path(sys.argv[1])).purge(sys.argv[2], confirm=True)\n"
    )
    env = {**os.environ, journal.FAULT_ENV: "note@2"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(vault.root), entry.id], env=env, timeout=60
    )
    assert proc.returncode == journal.FAULT_EXIT
    texts = [_note(p).read_text() for p in files]
    assert [t.startswith("This file was quarantined by modelward, then purged") for t in texts] == [
        True,
        True,
        False,
    ]
    vault = Vault.open(vault.root)  # recovery finishes the purge, with the same date
    texts = [_note(p).read_text() for p in files]
    assert all("can no longer be restored" in t for t in texts)
    assert len({t.splitlines()[0] for t in texts}) == 1
    assert vault.list() == []


def _hf_cache(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A Hugging Face cache: a blob and the snapshot link to it (what the user's code opens)."""
    repo = tmp_path / "hub" / "models--org--m"
    data = b"\x80\x02cos\nsystem\n."
    blob = repo / "blobs" / ("b" * 64)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    snap = repo / "snapshots" / ("0" * 40) / "pytorch_model.bin"
    snap.parent.mkdir(parents=True)
    snap.symlink_to(Path("../../blobs") / blob.name)
    return blob, snap, data


def test_a_snapshot_link_gets_a_note_too(tmp_path: Path) -> None:
    blob, snap, data = _hf_cache(tmp_path)
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine(
        [blob], "runs code", "code-execution", aliases={str(blob): [str(snap)]}
    )
    assert entry.files[0].aliases == (str(snap),)
    assert vault.show(entry.id).files[0].aliases == (str(snap),)
    assert snap.is_symlink() and not snap.exists()  # dangling while quarantined
    text = _note(snap).read_text()
    assert f"Link:       {snap} (pointed at the file)" in text
    assert f"File:       {blob}" in text and f"restore {entry.id}" in text
    assert _note(blob).is_file()

    vault.restore(entry.id)
    assert snap.read_bytes() == data
    assert not _note(snap).exists() and not _note(blob).exists()

    entry = vault.quarantine([blob], "again", "rule", aliases={str(blob): [str(snap)]})
    vault.purge(entry.id, confirm=True)
    assert "can no longer be restored" in _note(snap).read_text()
    assert "can no longer be restored" in _note(blob).read_text()


def test_an_alias_that_does_not_lead_to_the_file_gets_no_note(tmp_path: Path) -> None:
    blob, snap, _ = _hf_cache(tmp_path)
    elsewhere = tmp_path / "other.bin"
    elsewhere.write_bytes(b"x")
    stray = tmp_path / "stray-link"
    stray.symlink_to(elsewhere)
    vault = Vault.open(tmp_path / "vault")
    aliases = {str(blob): [str(stray), str(tmp_path / "missing"), str(snap)]}
    entry = vault.quarantine([blob], "r", "rule", aliases=aliases)
    assert entry.files[0].aliases == (str(snap),)
    assert not _note(stray).exists() and not _note(tmp_path / "missing").exists()


@pytest.mark.parametrize("nth", [1, 2])
def test_a_crash_while_writing_the_notes_of_a_snapshot(tmp_path: Path, nth: int) -> None:
    blob, snap, data = _hf_cache(tmp_path)
    script = (
        "import sys\nfrom pathlib import Path\nfrom modelward.policy.vault import Vault\n"
        "v = Vault.open(Path(sys.argv[1]))\n"
        "v.quarantine([Path(sys.argv[2])], 'r', 'rule', aliases={sys.argv[2]: [sys.argv[3]]})\n"
    )
    env = {**os.environ, journal.FAULT_ENV: f"note@{nth}"}
    root = tmp_path / "vault"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(root), str(blob), str(snap)], env=env, timeout=60
    )
    assert proc.returncode == journal.FAULT_EXIT
    vault = Vault.open(root)  # finishes the quarantine: both notes written
    (entry,) = vault.list()
    assert _note(blob).is_file() and _note(snap).is_file()
    vault.restore(entry.id)
    assert snap.read_bytes() == data and not _note(snap).exists()
