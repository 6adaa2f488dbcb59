"""``modelward quarantine``: list (table and JSON), show, restore, purge, and its clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelward.cli import main
from modelward.policy.vault import Vault


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 0), out, err


@pytest.fixture
def vault_with_entry(tmp_path: Path) -> tuple[Path, str, Path]:
    model = tmp_path / "evil.pkl"
    model.write_bytes(b"not really a pickle")
    vault = Vault.open(tmp_path / "vault")
    entry = vault.quarantine([model], "pickle calls os.system", "unsafe-pickle")
    return vault.root, entry.id, model


def test_list_json_and_table(
    vault_with_entry: tuple[Path, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, entry_id, model = vault_with_entry
    code, out, _ = run(["quarantine", "list", "--format", "json", "--vault", str(root)], capsys)
    assert code == 0
    (row,) = json.loads(out)
    assert row["id"] == entry_id and row["original_path"] == str(model)
    assert row["reason"] == "pickle calls os.system" and len(row["sha256"]) == 64
    assert row["quarantined_at"].endswith("Z")
    code, out, _ = run(["quarantine", "list", "--vault", str(root)], capsys)
    assert code == 0 and entry_id in out and "unsafe-pickle" in out


def test_show_restore_purge(
    vault_with_entry: tuple[Path, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, entry_id, model = vault_with_entry
    code, out, _ = run(["quarantine", "show", entry_id, "--vault", str(root)], capsys)
    assert code == 0 and json.loads(out)["files"][0]["original_path"] == str(model)
    code, out, _ = run(["quarantine", "restore", entry_id, "--vault", str(root)], capsys)
    assert code == 0 and model.read_bytes() == b"not really a pickle"
    code, _, err = run(["quarantine", "restore", entry_id, "--vault", str(root)], capsys)
    assert code == 2 and "no quarantine entry" in err

    entry = Vault.open(root).quarantine([model], "again", "rule")
    code, _, err = run(["quarantine", "purge", entry.id, "--vault", str(root)], capsys)
    assert code == 2 and "--yes" in err
    assert Vault.open(root).list()
    code, out, _ = run(["quarantine", "purge", entry.id, "--yes", "--vault", str(root)], capsys)
    assert code == 0 and "purged" in out and Vault.open(root).list() == []


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("x")
    code, _, err = run(["quarantine", "list", "--vault", str(tmp_path)], capsys)
    assert code == 2 and "not a quarantine vault" in err
    code, _, err = run(
        ["quarantine", "show", "abc123abc123", "--vault", str(tmp_path / "v")], capsys
    )
    assert code == 2 and "no quarantine vault" in err
    Vault.open(tmp_path / "v")
    code, _, err = run(
        ["quarantine", "show", "abc123abc123", "--vault", str(tmp_path / "v")], capsys
    )
    assert code == 2 and "no quarantine entry 'abc123abc123'" in err
    code, _, err = run(["quarantine", "list", "-f", "xml", "--vault", str(tmp_path / "v")], capsys)
    assert code == 2 and "--format" in err


def test_default_vault_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELWARD_DATA_DIR", str(tmp_path / "data"))
    code, out, _ = run(["quarantine", "list", "--format", "json"], capsys)
    assert code == 0 and json.loads(out) == []
    model = tmp_path / "m.bin"
    model.write_bytes(b"x")
    Vault.open().quarantine([model], "r", "rule")
    code, out, _ = run(["quarantine", "list", "--format", "json"], capsys)
    assert [r["original_path"] for r in json.loads(out)] == [str(model)]


@pytest.mark.parametrize(
    "command", [["show", "abc123"], ["restore", "abc123"], ["purge", "abc123", "--yes"]]
)
def test_a_missing_default_vault_is_a_clear_error(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODELWARD_DATA_DIR", str(tmp_path / "data"))
    code, out, err = run(["quarantine", *command], capsys)
    root = tmp_path / "data" / "quarantine"
    assert code == 2 and out == ""
    assert f"no quarantine vault at {root}: nothing was quarantined there" in err
    assert "Traceback" not in err and "AttributeError" not in err
    assert not root.exists()  # asking about a vault does not create one


def test_list_of_a_missing_vault_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELWARD_DATA_DIR", str(tmp_path / "data"))
    code, out, _ = run(["quarantine", "list", "--format", "json"], capsys)
    assert code == 0 and json.loads(out) == []
    code, out, _ = run(["quarantine", "list"], capsys)
    assert code == 0 and "empty" in out
    code, out, _ = run(["quarantine", "list", "-f", "json", "--vault", str(tmp_path / "v")], capsys)
    assert code == 0 and json.loads(out) == []
    assert not (tmp_path / "data").exists() and not (tmp_path / "v").exists()
