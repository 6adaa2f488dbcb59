"""Settings files: defaults, validation errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelward.models import Severity
from modelward.policy.settings import Settings, SettingsError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "settings.yaml"
    p.write_text(text)
    return p


def test_defaults() -> None:
    data = Settings().to_data()
    assert data["block_severity"] == "high"
    assert data["commercial"] is False and data["stop_exposed_runtimes"] is False
    assert data["approved_sha256"] == []


def test_a_full_file(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            "approved_sha256: ['sha256:" + "A" * 64 + "']\n"
            "approved_origins: [acme/*]\nallowed_licenses: [Apache-2.0]\ncommercial: true\n"
            "block_severity: medium\nallow_cloud_models: true\nstop_exposed_runtimes: true\n",
        )
    )
    assert s.approved_sha256 == ("a" * 64,)
    assert s.allowed_licenses == ("apache-2.0",)
    assert s.block_severity is Severity.MEDIUM
    assert s.commercial and s.allow_cloud_models and s.stop_exposed_runtimes


def test_an_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "# nothing\n")) == Settings()


def test_a_misspelt_key_names_line_and_suggests(tmp_path: Path) -> None:
    p = write(tmp_path, "commercial: true\n\nallowed_licence: [mit]\n")
    with pytest.raises(SettingsError) as info:
        load_settings(p)
    assert str(info.value) == (
        f"{p}:3: unknown key 'allowed_licence' (did you mean 'allowed_licenses'?)"
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("commercial: maybe\n", ":1: 'commercial' must be true or false"),
        ("commercial: true\nx: 1\n", ":2: unknown key 'x'"),
        ("block_severity: huge\n", ":1: 'block_severity': unknown severity 'huge'"),
        ("approved_sha256: [abc]\n", ":1: 'approved_sha256': 'abc' is not 64 hex digits"),
        ("allowed_formats: {a: 1}\n", ":1: 'allowed_formats' must be a list of strings"),
        ("- a\n- b\n", ":1: settings must be a mapping"),
        ("a: [\n", "not valid YAML"),
        ("commercial: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(SettingsError, match=None) as info:
        load_settings(write(tmp_path, text))
    assert needle in str(info.value)
