"""The vault never loses a file and trusts nothing it reads: recovery decides by identity, runs
serialise on the vault's lock, and planted records or an open vault folder are refused."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from modelward.cli import main
from modelward.policy import journal
from modelward.policy.enforce import model_group
from modelward.policy.vault import NOTE_SUFFIX, Vault, VaultError

EVIL = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."


def cli(args: list[str], fault: str | None = None, cwd: Path | None = None) -> tuple[int, str, str]:
    """``modelward ARGS`` in a process of its own (so a fault can kill it)."""
    env = {k: v for k, v in os.environ.items() if k != journal.FAULT_ENV}
    if fault:
        env[journal.FAULT_ENV] = fault
    proc = subprocess.run(
        [sys.executable, "-m", "modelward", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    return proc.returncode, proc.stdout, proc.stderr


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def _stored_bytes(root: Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in (root / "entries").rglob("files/*") if p.is_file())


def _inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str], n: int) -> list[Path]:
    models = tmp_path / "models"
    models.mkdir()
    files = []
    for i in range(n):
        p = models / f"evil{i:02d}.pkl"
        p.write_bytes(EVIL + bytes([i]))
        files.append(p)
    inv = tmp_path / "inv.json"
    run(["inventory", str(models), "-f", "json", "-o", str(inv), "--no-processes"], capsys)
    return files


# --------------------------------------------------------------------------- 1: identity
def test_interrupted_restore_then_a_new_file_at_the_path_keeps_both(tmp_path: Path) -> None:
    model = tmp_path / "m" / "model.bin"
    model.parent.mkdir()
    original = os.urandom(50_000)
    model.write_bytes(original)
    os.chmod(model, 0o640)
    entry = Vault.open(tmp_path / "vault").quarantine([model], "r", "rule")
    root = str(tmp_path / "vault")
    code, _, _ = cli(["quarantine", "restore", entry.id, "--vault", root], fault="journal")
    assert code == journal.FAULT_EXIT
    os.unlink(str(model) + NOTE_SUFFIX)
    mine = b"the user's new file"
    model.write_bytes(mine)
    os.chmod(model, 0o600)
    before = os.stat(model)
    code, out, err = cli(["quarantine", "list", "--vault", root, "-f", "json"])
    assert code == 0
    assert "restore of" in err and "is another file now" in err
    assert [r["id"] for r in json.loads(out)] == [entry.id]  # the entry is kept
    assert model.read_bytes() == mine  # every byte of the user's file
    after = os.stat(model)
    assert stat.S_IMODE(after.st_mode) == 0o600 and after.st_mtime_ns == before.st_mtime_ns
    assert _stored_bytes(tmp_path / "vault") == [original]  # every byte of the vault's copy
    assert not list((tmp_path / "vault" / "journal").iterdir())
    os.unlink(model)
    assert cli(["quarantine", "restore", entry.id, "--vault", root])[0] == 0
    assert model.read_bytes() == original and stat.S_IMODE(os.stat(model).st_mode) == 0o640


def test_interrupted_quarantine_then_a_new_file_at_the_path_keeps_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (evil,) = _inventory(tmp_path, capsys, 1)
    original = evil.read_bytes()
    root = str(tmp_path / "vault")
    args = ["policy", "enforce", "--inventory", str(tmp_path / "inv.json"), "--vault", root]
    code, _, _ = cli([*args, "--apply"], fault="detach")
    assert code == journal.FAULT_EXIT and not evil.exists()
    mine = b"a new file the user put there"
    evil.write_bytes(mine)
    code, out, err = cli(["quarantine", "list", "--vault", root, "-f", "json"])
    assert code == 0 and "is another file now" in err
    (row,) = json.loads(out)
    assert row["sha256"] == hashlib.sha256(original).hexdigest()
    assert evil.read_bytes() == mine
    assert _stored_bytes(tmp_path / "vault") == [original]
    assert not list((tmp_path / "vault" / "journal").iterdir())


# --------------------------------------------------------------------------- 2: concurrency
def test_two_enforce_runs_at_once_quarantine_each_file_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _inventory(tmp_path, capsys, 30)
    data = {p: p.read_bytes() for p in files}
    root = tmp_path / "vault"
    Vault.open(root)
    args = [
        sys.executable, "-m", "modelward", "policy", "enforce", "--apply",
        "--inventory", str(tmp_path / "inv.json"), "--vault", str(root),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != journal.FAULT_ENV}
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "gone" not in "".join(outs)
    entries = Vault.open(root).list()
    assert sorted(e.original_path for e in entries) == sorted(map(str, files))
    assert _stored_bytes(root) == sorted(data.values())
    assert not list((root / "journal").iterdir())
    assert sorted(p.name for p in (root / "entries").iterdir()) == sorted(e.id for e in entries)
    # a restore followed by a plain list never moves the file back
    first = entries[0]
    assert cli(["quarantine", "restore", first.id, "--vault", str(root)])[0] == 0
    assert cli(["quarantine", "list", "--vault", str(root)])[0] == 0
    assert Path(first.original_path).read_bytes() == data[Path(first.original_path)]
    assert first.id not in [e.id for e in Vault.open(root).list()]


# --------------------------------------------------------------------------- 3: trust
def _entry(tmp_path: Path) -> tuple[Vault, str, Path]:
    model = tmp_path / "m.bin"
    model.write_bytes(b"model bytes")
    vault = Vault.open(tmp_path / "vault")
    return vault, vault.quarantine([model], "r", "rule").id, model


@pytest.mark.parametrize("folder", ["", "journal", "entries"])
def test_a_vault_writable_by_others_is_refused(
    tmp_path: Path, folder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    vault, _, _ = _entry(tmp_path)
    os.chmod(vault.root / folder, 0o777)
    code, _out, err = run(["quarantine", "list", "--vault", str(vault.root)], capsys)
    assert code == 2 and "writable by group or others" in err and "Traceback" not in err
    with pytest.raises(VaultError, match="writable by group or others"):
        Vault.open(vault.root)


def test_a_vault_that_is_a_link_is_refused(tmp_path: Path) -> None:
    vault, _, _ = _entry(tmp_path)
    (tmp_path / "link").symlink_to(vault.root)
    with pytest.raises(VaultError, match="not a folder"):
        Vault.open(tmp_path / "link")
    os.rename(vault.root / "journal", vault.root / "j2")
    (vault.root / "journal").symlink_to(vault.root / "j2")
    with pytest.raises(VaultError, match="not a folder"):
        Vault.open(vault.root)


@pytest.mark.parametrize(
    "stored",
    [
        "../victim.txt",
        "entries/{id}/files/../../../victim.txt",
        "/tmp/victim.txt",
        "entries/{id}/files/1",
    ],
)
def test_a_planted_journal_record_cannot_touch_a_file_outside_the_vault(
    tmp_path: Path, stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    vault, entry_id, _ = _entry(tmp_path)
    victim = tmp_path / "vault" / ".." / "victim.txt"
    victim.write_bytes(b"victim")
    record = json.loads((vault.root / "entries" / entry_id / "entry.json").read_text())
    record["files"][0]["stored"] = stored.format(id=entry_id)
    op = {"op": "purge", "phase": "forward", "entry": record}
    (vault.root / "journal" / f"{entry_id}.json").write_text(json.dumps(op))
    code, _, err = run(["quarantine", "list", "--vault", str(vault.root)], capsys)
    assert code == 0 and "could not finish" in err
    assert victim.read_bytes() == b"victim"
    assert len(_stored_bytes(vault.root)) == 1


@pytest.mark.parametrize(
    ("key", "value"),
    [("id", "../../x"), ("id", "ABCDEF123456"), ("sha256", "zz"), ("original_path", "rel/x"),
     ("original_path", "/a/../etc/passwd"), ("size", -1)],
)  # fmt: skip
def test_planted_entries_are_refused(tmp_path: Path, key: str, value: object) -> None:
    vault, entry_id, _ = _entry(tmp_path)
    path = vault.root / "entries" / entry_id / "entry.json"
    record = json.loads(path.read_text())
    (record if key == "id" else record["files"][0])[key] = value
    path.write_text(json.dumps(record))
    with pytest.raises(VaultError):
        vault.show(entry_id)


def test_a_planted_setuid_mode_is_never_restored(tmp_path: Path) -> None:
    vault, entry_id, model = _entry(tmp_path)
    path = vault.root / "entries" / entry_id / "entry.json"
    record = json.loads(path.read_text())
    record["files"][0]["mode"] = 0o6755
    path.write_text(json.dumps(record))
    vault.restore(entry_id)
    assert stat.S_IMODE(os.stat(model).st_mode) == 0o755
    assert model.read_bytes() == b"model bytes"


# --------------------------------------------------------------------------- 4, 5: errors
def test_restore_into_a_folder_that_is_now_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "a" / "b" / "m.bin"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"x")
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine([model], "r", "rule")
    subprocess.run(["rm", "-rf", str(tmp_path / "a")], check=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").write_text("now a file")
    code, _out, err = run(["quarantine", "restore", entry.id, "--vault", str(vault.root)], capsys)
    assert code == 2 and "is not a folder" in err and len(err.strip().splitlines()) == 1
    assert vault.show(entry.id)


def test_a_failed_restore_removes_the_folders_it_made(tmp_path: Path) -> None:
    a, b = tmp_path / "gone" / "x" / "a.bin", tmp_path / "other" / "b.bin"
    for p in (a, b):
        p.parent.mkdir(parents=True)
        p.write_bytes(p.name.encode())
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine([a, b], "r", "rule")
    subprocess.run(["rm", "-rf", str(tmp_path / "gone")], check=True)
    os.unlink(str(b) + NOTE_SUFFIX)
    b.write_bytes(b"in the way")
    with pytest.raises(VaultError, match="exists again"):
        vault.restore(entry.id)
    assert not (tmp_path / "gone").exists()
    subprocess.run(["rm", "-f", str(b)], check=True)
    vault.restore(entry.id)
    assert a.read_bytes() == b"a.bin" and stat.S_IMODE(os.stat(a.parent).st_mode) == 0o755


def test_a_vault_that_cannot_be_made_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(VaultError, match="cannot use it as a quarantine vault"):
        Vault.open(Path("/proc/modelward-vault"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(VaultError):
        Vault.open(tmp_path / "file" / "vault")


def test_listing_an_empty_folder_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code, out, _ = run(["quarantine", "list", "--vault", str(tmp_path / "empty")], capsys)
    assert code == 0 and "empty" in out and list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(VaultError, match="no quarantine vault"):
        Vault.open(tmp_path / "empty", create=False)
    assert list((tmp_path / "empty").iterdir()) == []


# --------------------------------------------------------------------------- 6: ollama
def test_ollama_grouping_moves_only_files_of_the_store(tmp_path: Path) -> None:
    models = tmp_path / "ollama" / "models"
    digest = hashlib.sha256(b"weights").hexdigest()
    blob = models / "blobs" / f"sha256-{digest}"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"weights")
    manifest = models / "manifests" / "registry.ollama.ai" / "library" / "m" / "latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [{"digest": f"sha256:{digest}"}]}))
    secret = tmp_path / "x" / "unrelated_secret.txt"
    secret.parent.mkdir()
    secret.write_text("secret")
    other = tmp_path / "elsewhere" / "manifests" / "r" / "n" / "m" / "t"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    art = {
        "path": str(blob),
        "source": {"kind": "ollama"},
        "metadata": {"ollama": {"manifests": [str(manifest), str(secret), str(other)]}},
    }
    assert model_group(art, [art]) == sorted([blob, manifest])
    outside = {**art, "path": str(secret)}
    assert model_group(outside, [outside]) == [secret]


# --------------------------------------------------------------------------- 7: help
@pytest.mark.parametrize("command", ["list", "show", "restore", "purge"])
def test_help_says_exit_codes_and_what_id_is(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["quarantine", command, "--help"], capsys)
    assert code == 0 and "Exit codes: 0 done; 2 error" in out and "--verbose" in out
    if command != "list":
        assert "12 hex digits" in out
