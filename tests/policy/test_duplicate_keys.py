"""A key given twice in the settings or waivers YAML is an error naming it and its line, not
"the last one wins" (which silently changes what was approved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelward.cli import main
from modelward.policy.settings import SettingsError, load_settings
from modelward.policy.waivers import WaiverError, load_waivers

SHA = "ab" * 32


def test_settings_refuse_a_duplicate_key(tmp_path: Path) -> None:
    p = tmp_path / "settings.yaml"
    p.write_text("commercial: true\nblock_severity: high\ncommercial: false\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(p)
    assert exc.value.diagnostics() == (
        f"{p}:3: duplicate key 'commercial' (first set on line 1); keep only one"
    )


def test_settings_and_waivers_refuse_aliases_alike(tmp_path: Path) -> None:
    """Aliases (and so merge keys) are refused in both files, with the alias's line: no
    expansion bombs, and one rule instead of "settings accept `<<: *d`, waivers do not"."""
    p = tmp_path / "settings.yaml"
    p.write_text("commercial: true\nallowed_licenses: &l [mit]\ndenied_licenses: *l\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(p)
    assert exc.value.diagnostics() == (
        f"{p}:3: YAML aliases (*l) are not supported: write the values out in full"
    )
    w = tmp_path / "waivers.yaml"
    w.write_text(
        "d: &d {approved_by: a, expires: 2099-01-01}\n"
        f"waivers:\n  - <<: *d\n    sha256: {SHA}\n    reason: r\n"
    )
    with pytest.raises(WaiverError) as wexc:
        load_waivers(w)
    assert wexc.value.diagnostics() == (
        f"{w}:3: YAML aliases (*d) are not supported: write the values out in full"
    )


def test_settings_a_bad_date_is_an_error_not_a_crash(tmp_path: Path) -> None:
    p = tmp_path / "settings.yaml"
    p.write_text("allowed_licenses: [2020-13-01]\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(p)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            f"waivers:\n  - sha256: {SHA}\n    reason: a\n    approved_by: b\n"
            "    expires: 2099-01-01\n    expires: 2000-01-01\n",
            ":6: duplicate key 'expires' (first set on line 5)",
        ),
        (
            f"waivers:\n  - sha256: {SHA}\n    reason: a\n    approved_by: b\n"
            "    expires: 2099-01-01\nwaivers: []\n",
            ":6: duplicate key 'waivers' (first set on line 1)",
        ),
    ],
)
def test_waivers_refuse_a_duplicate_key(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "waivers.yaml"
    p.write_text(text)
    with pytest.raises(WaiverError) as exc:
        load_waivers(p)
    assert f"{p}{needle}" in exc.value.diagnostics()


def test_the_cli_exits_2_naming_file_key_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps({"schema": "modelward.inventory/v1", "artifacts": []}))
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(
        "waivers:\n  - runtime: ollama\n    runtime: llama.cpp\n    reason: a\n"
        "    approved_by: b\n    expires: 2099-01-01\n"
    )
    settings = tmp_path / "settings.yaml"
    settings.write_text("block_severity: high\nblock_severity: low\n")
    for option, path, needle in (
        ("--waivers", waivers, ":3: duplicate key 'runtime'"),
        ("--settings", settings, ":2: duplicate key 'block_severity'"),
    ):
        with pytest.raises(SystemExit) as info:
            main(["policy", "check", "--inventory", str(inv), option, str(path)])
        _, err = capsys.readouterr()
        assert info.value.code == 2
        assert f"{path}{needle}" in err and "Traceback" not in err
