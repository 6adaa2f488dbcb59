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
