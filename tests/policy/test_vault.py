"""The quarantine vault: moves, restores, hostile cases, and crash safety proven by killing a process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from modelward.policy import journal
from modelward.policy.vault import NOTE_SUFFIX, ContentChanged, Vault, VaultError, default_root


def _model(folder: Path, n: int = 3, size: int = 300_000) -> dict[Path, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(n):
        p = folder / f"part-{i}.bin"
        data = os.urandom(size + i)
        p.write_bytes(data)
        os.chmod(p, 0o640)
        os.utime(p, ns=(1_600_000_000_123_456_789 + i, 1_500_000_000_987_654_321 + i))
        out[p] = data
    return out


def _all_bytes(root: Path) -> list[bytes]:
    """The content of every regular file under ``root`` (notes and records excluded)."""
    out = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith((NOTE_SUFFIX, ".json")) or name == "lock":
                continue
            out.append((Path(dirpath) / name).read_bytes())
    return out


def test_default_root(tmp_path: Path) -> None:
    assert default_root({"MODELWARD_DATA_DIR": str(tmp_path)}) == tmp_path / "quarantine"
    assert default_root({"XDG_DATA_HOME": "/x"}) == Path("/x/modelward/quarantine")
    assert default_root({}).parts[-4:] == (".local", "share", "modelward", "quarantine")


def test_quarantine_and_restore_whole_model(tmp_path: Path) -> None:
    files = _model(tmp_path / "models")
    before = {p: os.stat(p) for p in files}
    vault = Vault.open(tmp_path / "vault")
    assert os.stat(vault.root).st_mode & 0o777 == 0o700
    entry = vault.quarantine(list(files), "pickle runs code", "unsafe-pickle")
    assert len(entry.files) == 3 and len(entry.id) == 12
    for p in files:
        assert not os.path.lexists(p)
        note = p.with_name(p.name + NOTE_SUFFIX).read_text()
        assert "pickle runs code" in note and f"restore {entry.id}" in note
    for f in entry.files:
        assert f.sha256 == hashlib.sha256(files[Path(f.original_path)]).hexdigest()
    assert [e.id for e in vault.list()] == [entry.id]
    assert vault.show(entry.id) == entry
    assert not list((vault.root / "journal").iterdir())

    vault.restore(entry.id)
    for p, data in files.items():
        st = os.stat(p)  # before reading, which moves atime
        assert p.read_bytes() == data
        assert st.st_mode == before[p].st_mode
        assert st.st_mtime_ns == before[p].st_mtime_ns
        assert st.st_atime_ns == before[p].st_atime_ns
        assert not os.path.lexists(p.with_name(p.name + NOTE_SUFFIX))
    assert vault.list() == []
    with pytest.raises(VaultError, match="no quarantine entry"):
        vault.show(entry.id)


def test_restore_refuses_to_overwrite(tmp_path: Path) -> None:
    files = _model(tmp_path / "m", n=1)
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine(list(files), "r", "rule")
    (path,) = files
    path.write_bytes(b"a new file")
    with pytest.raises(VaultError, match="exists again"):
        vault.restore(entry.id)
    assert path.read_bytes() == b"a new file"
    assert vault.show(entry.id) == entry


def test_purge(tmp_path: Path) -> None:
    files = _model(tmp_path / "m", n=1)
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine(list(files), "r", "rule")
    with pytest.raises(VaultError, match="confirm"):
        vault.purge(entry.id)
    assert vault.show(entry.id)
    vault.purge(entry.id, confirm=True)
    assert vault.list() == [] and _all_bytes(vault.root) == []


def test_symlink_refused(tmp_path: Path) -> None:
    files = _model(tmp_path / "m", n=1)
    (target,) = files
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    vault = Vault.open(tmp_path / "vault")
    with pytest.raises(VaultError, match="symbolic link"):
        vault.quarantine([link], "r", "rule")
    assert link.is_symlink() and target.read_bytes() == files[target]


def test_not_a_vault(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "x").write_text("x")
    with pytest.raises(VaultError, match="not a quarantine vault"):
        Vault.open(tmp_path / "stuff")
    with pytest.raises(VaultError, match="no quarantine vault"):
        Vault.open(tmp_path / "none", create=False)
    with pytest.raises(VaultError, match="not a quarantine entry id"):
        Vault.open(tmp_path / "v").show("../x")


def test_file_changed_between_hash_and_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _model(tmp_path / "m", n=3)
    paths = list(files)
    vault = Vault.open(tmp_path / "vault")
    real = journal.sha256_file
    calls = {"n": 0}

    def hashing(path: Path) -> str:
        calls["n"] += 1
        if calls["n"] == 3:  # the third file, hashed for the entry: then changed before its move
            digest = real(path)
            path.write_bytes(b"changed behind our back")
            return digest
        return real(path)

    monkeypatch.setattr("modelward.policy.vault.sha256_file", hashing)
    with pytest.raises(ContentChanged, match="changed while it was being moved"):
        vault.quarantine(paths, "r", "rule")
    assert paths[0].read_bytes() == files[paths[0]]
    assert paths[1].read_bytes() == files[paths[1]]
    assert paths[2].read_bytes() == b"changed behind our back"
    assert vault.list() == [] and _all_bytes(vault.root) == []
    assert not list(tmp_path.glob(f"m/*{NOTE_SUFFIX}"))


# --------------------------------------------------------------------------- crash safety
QUARANTINE = """
import sys
from pathlib import Path
from modelward.policy.vault import Vault
v = Vault.open(Path(sys.argv[1]))
v.quarantine([Path(p) for p in sys.argv[2:]], "test", "rule")
"""
RESTORE = """
import sys
from pathlib import Path
from modelward.policy.vault import Vault
v = Vault.open(Path(sys.argv[1]))
v.restore(v.list()[0].id)
"""

# (step, occurrence): every injection point, at the first and at the last file of a 3-file model.
POINTS = [
    ("journal", 1),
    ("detach", 1),
    ("detach", 3),
    ("copy", 1),
    ("copy", 3),
    ("fsync", 2),
    ("verify", 1),
    ("verify", 3),
    ("rename", 1),
    ("rename", 3),
    ("delete", 1),
    ("delete", 3),
    ("note", 1),
    ("note", 3),
    ("entry", 1),
]


def _other_fs(tmp_path: Path) -> Path | None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        return None
    if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        return None
    return Path(tempfile.mkdtemp(prefix="modelward-test-", dir=shm))


@pytest.fixture(params=["same-fs", "cross-fs"])
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    """(folder of the model files, vault root)."""
    if request.param == "same-fs":
        return tmp_path / "models", tmp_path / "vault"
    other = _other_fs(tmp_path)
    if other is None:
        pytest.skip("no second filesystem: /dev/shm is missing, read-only or on tmp_path's device")
    request.addfinalizer(lambda: subprocess.run(["rm", "-rf", str(other)], check=False))
    return other / "models", tmp_path / "vault"


def _run(script: str, args: list[str], fault: str | None) -> int:
    env = dict(os.environ)
    env.pop(journal.FAULT_ENV, None)
    if fault:
        env[journal.FAULT_ENV] = fault
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, timeout=60
    )
    return proc.returncode


def _check_one_place(files: dict[Path, bytes], vault_root: Path) -> str:
    """After recovery: every file whole, exactly once, either at its path or in the vault."""
    vault = Vault.open(vault_root)
    assert not list((vault_root / "journal").iterdir())
    in_vault = sorted(_all_bytes(vault_root))
    at_home = {p: p.read_bytes() for p in files if os.path.lexists(p)}
    everything = sorted(in_vault + list(at_home.values()))
    assert everything == sorted(files.values())
    for p, data in at_home.items():
        assert data == files[p]
    leftovers = [
        n for p in files for n in os.listdir(p.parent) if n.startswith(".") or "part" in n[-5:]
    ]
    assert leftovers == []
    entries = vault.list()
    if at_home:
        assert len(at_home) == len(files) and entries == [] and in_vault == []
        assert not any(os.path.lexists(str(p) + NOTE_SUFFIX) for p in files)
        return "home"
    assert len(entries) == 1 and len(in_vault) == len(files)
    assert all(os.path.isfile(str(p) + NOTE_SUFFIX) for p in files)
    return "vault"


@pytest.mark.parametrize(("step", "nth"), POINTS, ids=[f"{s}@{n}" for s, n in POINTS])
def test_crash_during_quarantine(layout: tuple[Path, Path], step: str, nth: int) -> None:
    models, vault_root = layout
    files = _model(models, n=3, size=200_000)
    code = _run(QUARANTINE, [str(vault_root), *map(str, files)], f"{step}@{nth}")
    cross = os.stat(models).st_dev != os.stat(vault_root.parent).st_dev
    reachable = not (
        (step == "detach" and cross)
        or (step in ("copy", "fsync", "verify", "delete") and not cross)
    )
    assert code == (journal.FAULT_EXIT if reachable else 0)
    where = _check_one_place(files, vault_root)
    assert where == "vault"  # an interrupted quarantine is finished on the next start

    # then restore, killed at the same step, recovers to the files at home with their stat
    code = _run(RESTORE, [str(vault_root)], f"{step}@{nth}")
    assert _check_one_place(files, vault_root) in ("home", "vault")
    if _check_one_place(files, vault_root) == "vault":
        assert _run(RESTORE, [str(vault_root)], None) == 0
    assert _check_one_place(files, vault_root) == "home"
    for p in files:
        assert os.stat(p).st_mtime_ns % 1_000_000_000 in (987_654_321, 987_654_322, 987_654_323)
        assert os.stat(p).st_mode & 0o777 == 0o640


def test_crash_during_purge(tmp_path: Path) -> None:
    files = _model(tmp_path / "m", n=3, size=1000)
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine(list(files), "r", "rule")
    script = (
        "import sys\nfrom pathlib import Path\nfrom modelward.policy.vault import Vault\n"
        "Vault.open(Path(sys.argv[1])).purge(sys.argv[2], confirm=True)\n"
    )
    assert _run(script, [str(vault.root), entry.id], "delete@2") == journal.FAULT_EXIT
    vault = Vault.open(vault.root)
    assert vault.list() == [] and _all_bytes(vault.root) == []


def test_journal_is_written_before_anything_moves(tmp_path: Path) -> None:
    files = _model(tmp_path / "m", n=2, size=1000)
    root = tmp_path / "vault"
    assert _run(QUARANTINE, [str(root), *map(str, files)], "journal") == journal.FAULT_EXIT
    (record,) = (root / "journal").iterdir()
    op = json.loads(record.read_text())
    assert op["op"] == "quarantine" and len(op["entry"]["files"]) == 2
    assert all(p.read_bytes() == data for p, data in files.items())


def test_restore_recreates_a_removed_folder(tmp_path: Path) -> None:
    files = _model(tmp_path / "gone" / "deep", n=2, size=100)
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine(list(files), "r", "rule")
    subprocess.run(["rm", "-rf", str(tmp_path / "gone")], check=True)
    vault.restore(entry.id)
    assert all(p.read_bytes() == data for p, data in files.items())


def test_io_error_mid_quarantine_puts_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _model(tmp_path / "m", n=3, size=1000)
    vault = Vault.open(tmp_path / "vault")
    real = journal.write_durably
    notes = {"n": 0}

    def failing(path: Path, data: bytes, mode: int = 0o600) -> None:
        if path.name.endswith(NOTE_SUFFIX):
            notes["n"] += 1
            if notes["n"] == 2:
                raise OSError(28, "No space left on device")
        real(path, data, mode)

    monkeypatch.setattr("modelward.policy.vault.write_durably", failing)
    with pytest.raises(VaultError, match="every file was put back"):
        vault.quarantine(list(files), "r", "rule")
    assert all(p.read_bytes() == data for p, data in files.items())
    assert not list((tmp_path / "m").glob(f"*{NOTE_SUFFIX}"))
    assert vault.list() == [] and not list((vault.root / "journal").iterdir())
