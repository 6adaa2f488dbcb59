"""`modelward policy enforce` and `policy check --waivers` end to end on a real folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from modelward.cli import main

EVIL = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def inventory_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    models = tmp_path / "models"
    models.mkdir()
    evil = models / "evil.pkl"
    evil.write_bytes(EVIL)
    inv = tmp_path / "inv.json"
    run(["inventory", str(models), "-f", "json", "-o", str(inv), "--no-processes"], capsys)
    return evil, inv


def test_enforce_is_a_dry_run_until_apply_then_restore_brings_it_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELWARD_CACHE_DIR", str(tmp_path / "cache"))
    evil, inv = inventory_file(tmp_path, capsys)
    vault = tmp_path / "vault"
    code, out, _ = run(
        ["policy", "enforce", "--inventory", str(inv), "--vault", str(vault)], capsys
    )
    assert code == 0 and "would quarantine" in out and evil.exists()
    code, out, _ = run(
        ["policy", "enforce", "--inventory", str(inv), "--vault", str(vault), "--apply"], capsys
    )
    assert code == 0 and not evil.exists()
    code, out, _ = run(["quarantine", "list", "--vault", str(vault), "--format", "json"], capsys)
    entries = json.loads(out)
    (entry,) = entries if isinstance(entries, list) else entries["entries"]
    run(["quarantine", "restore", entry["id"], "--vault", str(vault)], capsys)
    assert hashlib.sha256(evil.read_bytes()).hexdigest() == hashlib.sha256(EVIL).hexdigest()


def test_check_applies_waivers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELWARD_CACHE_DIR", str(tmp_path / "cache"))
    _evil, inv = inventory_file(tmp_path, capsys)
    code, _, _ = run(["policy", "check", "--inventory", str(inv), "-f", "json"], capsys)
    assert code == 1
    waivers = tmp_path / "waivers.yaml"
    sha = hashlib.sha256(EVIL).hexdigest()
    waivers.write_text(
        f"waivers:\n  - sha256: {sha}\n    reason: test fixture\n    approved_by: sec\n"
        "    expires: 2099-01-01\n"
    )
    code, out, _ = run(
        ["policy", "check", "--inventory", str(inv), "-f", "json", "--waivers", str(waivers)],
        capsys,
    )
    doc = json.loads(out)
    assert code == 0
    assert all(
        d["action"] == "allow" and d["waived_by"]
        for d in doc["decisions"]
        if d["subject"].get("sha256") == sha
    )


def test_a_file_replaced_since_the_inventory_is_not_quarantined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELWARD_CACHE_DIR", str(tmp_path / "cache"))
    evil, inv = inventory_file(tmp_path, capsys)
    other = b"a harmless file that took the old one's place"
    evil.write_bytes(other)
    vault = tmp_path / "vault"
    code, out, err = run(
        ["policy", "enforce", "--inventory", str(inv), "--vault", str(vault), "--apply"], capsys
    )
    old, new = hashlib.sha256(EVIL).hexdigest(), hashlib.sha256(other).hexdigest()
    assert code == 1
    assert (
        f"could not quarantine {evil}: {evil} changed since the inventory: expected sha256 {old}, "
        f"found {new}; not quarantined; run the inventory again"
    ) in out
    assert "1 action(s) could not be carried out" in err
    assert evil.read_bytes() == other  # left where it was, untouched
    assert not Path(str(evil) + ".modelward-quarantine.txt").exists()
    code, out, _ = run(["quarantine", "list", "--vault", str(vault), "-f", "json"], capsys)
    assert json.loads(out) == []


def test_enforce_exits_1_when_a_quarantine_fails_and_0_on_a_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELWARD_CACHE_DIR", str(tmp_path / "cache"))
    evil, inv = inventory_file(tmp_path, capsys)
    evil.unlink()
    vault = tmp_path / "vault"
    code, out, _ = run(
        ["policy", "enforce", "--inventory", str(inv), "--vault", str(vault)], capsys
    )
    assert code == 0 and "would quarantine" in out
    code, out, _ = run(
        ["policy", "enforce", "--inventory", str(inv), "--vault", str(vault), "--apply"], capsys
    )
    assert code == 1 and f"could not quarantine {evil}: {evil}: no such file" in out


def test_enforce_help_states_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["policy", "enforce", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    assert (
        "Exit codes: 0 everything to be done was done (or a dry run, or nothing to do); "
        "1 a quarantine or stop could not be done" in text
    )


@pytest.mark.parametrize(
    ("line", "failed"),
    [
        ("stopped ollama (pid 1, listening on 0.0.0.0:11434) [r] m", False),
        ("could not stop ollama (pid 1): not allowed to signal the process", True),
        ("ollama (pid 1) still runs 5 s after SIGTERM: not killed; stop it yourself", True),
        ("left ollama (pid 1) alone: the process belongs to another user", True),
        ("left ollama (pid 1) alone: it listens on no network address", False),
        ("left ollama (pid 1) alone: the process is gone", False),
        ("no process of ollama to stop [r] m", False),
    ],
)
def test_which_stop_lines_are_failures(line: str, failed: bool) -> None:
    from modelward.cli.policy import stop_failed

    assert stop_failed(line) is failed
