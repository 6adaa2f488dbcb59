"""Review findings on the quarantine vault: each a way a user's file could have been lost or a
vault left stuck, proven fixed here."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from modelward.cli import main
from modelward.policy import journal
from modelward.policy import vault as vault_mod
from modelward.policy.vault import StaleContent, Vault, VaultError


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


# --------------------------------------------------------------------------- crash + edit
QUARANTINE = """
import sys
from pathlib import Path
from modelward.policy.vault import Vault
v = Vault.open(Path(sys.argv[1]))
v.quarantine([Path(p) for p in sys.argv[2:]], "test", "rule")
"""


def _other_fs(tmp_path: Path) -> Path:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no /dev/shm")
    if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is on tmp_path's filesystem")
    return Path(tempfile.mkdtemp(prefix="modelward-test-", dir=shm))


def _run(script: str, args: list[str], fault: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != journal.FAULT_ENV}
    if fault:
        env[journal.FAULT_ENV] = fault
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, timeout=60
    )
    return proc.returncode


@pytest.mark.parametrize("fault", ["verify@2", "rename@1", "rename@2"])
def test_an_edit_after_a_crash_in_a_cross_filesystem_move_is_kept(
    tmp_path: Path, fault: str
) -> None:
    """Across filesystems the original stays until the copy is in place: edited in place after
    a crash (same file, same size), it is not deleted on the next run, and the quarantine is
    rolled back."""
    other = _other_fs(tmp_path)
    try:
        vault_root = other / "vault"
        models = tmp_path / "m"
        models.mkdir()
        files = [models / f"p{i}.bin" for i in range(2)]
        for p in files:
            p.write_bytes(b"original " + p.name.encode() * 5000)
        code = _run(QUARANTINE, [str(vault_root), *map(str, files)], fault)
        assert code == journal.FAULT_EXIT
        target = files[int(fault[-1]) - 1]
        with open(target, "r+b") as fh:  # an in-place edit: same inode, same size
            fh.write(b"EDITED!!")
        edited = target.read_bytes()
        vault = Vault.open(vault_root)
        assert any("changed" in line for line in vault.recovered), vault.recovered
        assert target.read_bytes() == edited
        for p in files:
            if p != target:
                assert p.read_bytes() == b"original " + p.name.encode() * 5000
            assert not vault_mod.note_path(p).exists()
        assert vault.list() == [] and not list((vault_root / "journal").iterdir())
    finally:
        shutil.rmtree(other, ignore_errors=True)


# --------------------------------------------------------------------------- full disk
def test_a_full_disk_mid_copy_rolls_back_and_does_not_wedge_the_vault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy across filesystems meets a full disk: the partial copy is removed first (space
    back), the quarantine is reported failed and rolled back, and the next run finds nothing to
    finish (it never completes a quarantine the user was told had failed)."""
    model = tmp_path / "m" / "big.bin"
    model.parent.mkdir()
    data = os.urandom(3 * journal.CHUNK)
    model.write_bytes(data)
    vault = Vault.open(tmp_path / "vault")
    real_rename, real_write = os.rename, os.write

    def rename(src: str | Path, dst: str | Path) -> None:
        if str(dst).endswith(".modelward-part"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(src, dst)

    def disk_full_while_a_part_exists() -> bool:
        return any(vault.root.rglob("*.modelward-part"))

    def write(fd: int, buf: bytes | memoryview) -> int:
        path = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else ""
        part = path.endswith(".modelward-part") and os.fstat(fd).st_size >= journal.CHUNK
        if part or (not path.endswith(".modelward-part") and disk_full_while_a_part_exists()):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, buf)

    monkeypatch.setattr(journal.os, "rename", rename)
    monkeypatch.setattr(journal.os, "write", write)
    with pytest.raises(VaultError, match="every file was put back"):
        vault.quarantine([model], "r", "rule")
    monkeypatch.undo()
    assert model.read_bytes() == data
    assert not any(vault.root.rglob("*.modelward-part"))
    assert not list((vault.root / "journal").iterdir())
    again = Vault.open(vault.root)
    assert again.list() == [] and model.read_bytes() == data
    assert not vault_mod.note_path(model).exists()


def test_recovery_rolls_back_a_quarantine_whose_copy_never_completed(tmp_path: Path) -> None:
    """A forward journal with a partial copy (a kill mid-copy, or a failure whose rollback could
    not be journaled) is rolled back, not finished."""
    model = tmp_path / "m" / "big.bin"
    model.parent.mkdir()
    data = os.urandom(100_000)
    model.write_bytes(data)
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine([model], "r", "rule")
    vault.restore(entry.id)
    # replay a journal of a quarantine stopped mid-copy
    st = os.stat(model)
    op = {
        "op": "quarantine",
        "phase": "forward",
        "pid": 1,
        "started": "x",
        "ids": [[st.st_dev, st.st_ino]],
        "entry": {
            **entry.to_dict(),
            "id": "0123456789ab",
            "files": [{**entry.files[0].to_dict(), "stored": "entries/0123456789ab/files/0"}],
        },
    }
    files = vault.root / "entries" / "0123456789ab" / "files"
    files.mkdir(parents=True)
    journal.temp_for(files / "0").write_bytes(data[:5000])
    journal.write_json(vault.root / "journal" / "0123456789ab.json", op)
    again = Vault.open(vault.root)
    assert any("never completed" in line for line in again.recovered), again.recovered
    assert model.read_bytes() == data and again.list() == []
    assert not any(vault.root.rglob("*.modelward-part"))


# --------------------------------------------------------------------------- mode and times
def _deny_stat_changes(monkeypatch: pytest.MonkeyPatch, under: Path) -> None:
    """chmod and utime of a file under ``under`` fail as on a file of another user."""
    real_chmod, real_utime = os.chmod, os.utime

    def chmod(path: Any, mode: int, **kw: Any) -> None:
        if str(path).startswith(str(under)):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        real_chmod(path, mode, **kw)

    def utime(path: Any, *a: Any, **kw: Any) -> None:
        if str(path).startswith(str(under)):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        real_utime(path, *a, **kw)

    monkeypatch.setattr(vault_mod.os, "chmod", chmod)
    monkeypatch.setattr(vault_mod.os, "utime", utime)


def test_a_restore_whose_mode_and_times_cannot_be_set_still_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "m"
    models.mkdir()
    model = models / "model.bin"
    model.write_bytes(b"weights" * 100)
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine([model], "r", "rule")
    _deny_stat_changes(monkeypatch, models)
    with pytest.raises(SystemExit) as exc:
        main(["quarantine", "restore", entry.id, "--vault", str(vault.root)])
    out = capsys.readouterr().out
    assert exc.value.code in (0, None)
    assert "restored" in out and "its mode/times could not be set" in out
    assert model.read_bytes() == b"weights" * 100
    assert not vault_mod.note_path(model).exists()
    assert vault.list() == [] and not list((vault.root / "journal").iterdir())


def test_a_rollback_whose_mode_and_times_cannot_be_set_still_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "m"
    models.mkdir()
    files = {models / f"p{i}.bin": os.urandom(1000 + i) for i in range(3)}
    for p, data in files.items():
        p.write_bytes(data)
    vault = Vault.open(tmp_path / "vault")
    real = vault_mod.write_durably

    def failing(path: Path, data: bytes, mode: int = 0o600) -> None:
        if path.name.endswith(vault_mod.NOTE_SUFFIX):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, mode)

    monkeypatch.setattr(vault_mod, "write_durably", failing)
    _deny_stat_changes(monkeypatch, models)
    with pytest.raises(VaultError, match=r"every file was put back.*mode/times could not be set"):
        vault.quarantine(list(files), "r", "rule")
    assert all(p.read_bytes() == data for p, data in files.items())
    assert vault.list() == [] and not list((vault.root / "journal").iterdir())


# --------------------------------------------------------------------------- after a purge
def test_a_path_can_be_quarantined_again_after_a_purge(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"first")
    vault = Vault.open(tmp_path / "vault")
    first = vault.quarantine([model], "r", "rule")
    vault.purge(first.id, confirm=True)
    model.write_bytes(b"second")
    second = vault.quarantine([model], "r", "rule")
    note = vault_mod.note_path(model)
    aside = tmp_path / f"model.bin.modelward-quarantine.{first.id}.txt"
    assert f"Entry id:   {second.id}" in note.read_text()
    assert "purged" in aside.read_text() and first.id in aside.read_text()
    vault.restore(second.id)
    assert model.read_bytes() == b"second" and aside.is_file() and not note.exists()


def test_another_file_at_the_note_path_still_refuses(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"data")
    vault_mod.note_path(model).write_text("my own notes\\n")
    vault = Vault.open(tmp_path / "vault")
    with pytest.raises(VaultError, match="already exists"):
        vault.quarantine([model], "r", "rule")
    assert model.read_bytes() == b"data"


# --------------------------------------------------------------------------- a new vault, twice
OPEN = """
import sys
from pathlib import Path
from modelward.policy.vault import Vault
Vault.open(Path(sys.argv[1]))
"""


def test_two_processes_opening_a_new_vault_at_once_both_succeed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != journal.FAULT_ENV}
    for trial in range(10):
        root = tmp_path / f"v{trial}" / "vault"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN, str(root)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else b"") for p in procs]
        for p in procs:
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
        assert [code for code, _ in results] == [0, 0], results
        assert Vault.open(root, create=False).list() == []
        assert sorted(p.name for p in root.iterdir()) == [
            "entries",
            "journal",
            "lock",
            vault_mod.MARKER,
        ]


# --------------------------------------------------------------------------- restore recovery
def test_recovery_of_a_restore_makes_the_folders_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "gone" / "deep"
    folder.mkdir(parents=True)
    model = folder / "model.bin"
    model.write_bytes(b"weights")
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine([model], "r", "rule")
    shutil.rmtree(tmp_path / "gone")

    def broken(*a: Any, **kw: Any) -> str:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(vault_mod, "resume_move", broken)
    with pytest.raises(VaultError, match="journal keeps it"):
        vault.restore(entry.id)
    monkeypatch.undo()
    assert not (tmp_path / "gone").exists()  # the failed restore removed the folders it made
    assert list((vault.root / "journal").iterdir())
    again = Vault.open(vault.root)
    assert any(line.startswith(f"restored {entry.id}") for line in again.recovered), again.recovered
    assert model.read_bytes() == b"weights" and again.list() == []
    assert os.stat(folder).st_mode & 0o777 == 0o755
