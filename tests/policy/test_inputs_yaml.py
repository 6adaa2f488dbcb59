"""Hostile settings and waivers files, and an --output that cannot be written: one error line
naming the file (and the line when known), exit 2, never a traceback, never minutes or gigabytes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TextIO

import pytest

from modelward.cli import main
from modelward.cli.common import write_atomically
from modelward.errors import UsageError
from modelward.policy.settings import MAX_FILE_BYTES, SettingsError, load_settings
from modelward.policy.waivers import WaiverError, load_waivers

SHA = "ab" * 32
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["policy", "check", *args])
    out, err = capsys.readouterr()
    code = info.value.code
    assert isinstance(code, int)
    return code, out, err


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    p = tmp_path / "inventory.json"
    p.write_text(json.dumps({"schema": "modelward.inventory/v1", "artifacts": []}))
    return p


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("deep-list", "allowed_licenses: " + "[" * 50_000 + "]" * 50_000 + "\n", ":1: nested more"),
        ("deep-map", "a: " + "{a: " * 50_000 + "b" + "}" * 50_000 + "\n", ":1: nested more"),
        ("nul", "commercial: \0true\n", ":1: not valid YAML (character #x0000 is not allowed)"),
        ("nul-line-3", "commercial: true\n\n# \0\n", ":3: not valid YAML (character #x0000"),
        ("bomb", BOMB, ":2: YAML aliases (*a) are not supported"),
        ("alias", "allowed_licenses: &l [mit]\ndenied_licenses: *l\n", ":2: YAML aliases (*l)"),
        ("merge", "<<: {commercial: true}\n", ":1: YAML merge keys ('<<') are not supported"),
        ("not-utf8", "commercial: true\n# \xff\n", ":2: cannot read the settings file: not UTF-8"),
    ],
)
def test_hostile_settings_are_one_error_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    inventory: Path,
    name: str,
    text: str,
    needle: str,
) -> None:
    p = tmp_path / f"{name}.yaml"
    p.write_bytes(text.encode("latin-1" if name == "not-utf8" else "utf-8"))
    with pytest.raises(SettingsError) as exc:
        load_settings(p)
    assert f"{p}{needle}" in exc.value.diagnostics()
    code, _, err = _run(capsys, "--inventory", str(inventory), "--settings", str(p))
    assert code == 2
    assert err.startswith(f"modelward: error: {p}{needle}")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("deep", "waivers: " + "[" * 50_000 + "]" * 50_000 + "\n", ":1: nested more"),
        ("nul", "waivers: []\0\n", ":1: not valid YAML (character #x0000"),
        ("bomb", "waivers: []\n" + BOMB, ":3: YAML aliases (*a) are not supported"),
        (
            "merge-alias",
            "defaults: &d\n  approved_by: sec@example.com\n  expires: 2099-01-01\n"
            f"waivers:\n  - <<: *d\n    sha256: {SHA}\n    reason: x\n",
            ":5: YAML aliases (*d) are not supported",
        ),
        (
            "merge-inline",
            f"waivers:\n  - sha256: {SHA}\n    <<: {{reason: x}}\n",
            ":3: YAML merge keys ('<<') are not supported",
        ),
        ("complex-key", "waivers:\n  - ? [a]\n    : b\n", ":2: a key must be a plain name"),
    ],
)
def test_hostile_waivers_are_one_error_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    inventory: Path,
    name: str,
    text: str,
    needle: str,
) -> None:
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    with pytest.raises(WaiverError) as exc:
        load_waivers(p)
    assert f"{p}{needle}" in exc.value.diagnostics()
    code, _, err = _run(capsys, "--inventory", str(inventory), "--waivers", str(p))
    assert code == 2
    assert err.startswith(f"modelward: error: {p}{needle}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_settings_and_waivers_larger_than_the_cap_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write("# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    with pytest.raises(SettingsError, match=r"larger than 10 MiB"):
        load_settings(big)
    with pytest.raises(WaiverError, match=r"larger than 10 MiB"):
        load_waivers(big)


def test_a_file_just_under_the_cap_still_loads(tmp_path: Path) -> None:
    p = tmp_path / "settings.yaml"
    p.write_text("commercial: true\n" + "#" * (MAX_FILE_BYTES - 100) + "\n")
    assert load_settings(p).commercial is True


def test_output_to_a_full_device_is_one_error_line(
    capsys: pytest.CaptureFixture[str], inventory: Path
) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    code, _, err = _run(capsys, "--inventory", str(inventory), "-o", "/dev/full")
    assert code == 2
    assert err == "modelward: error: --output: cannot write /dev/full: No space left on device\n"


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old report")

    def write(f: TextIO) -> None:
        f.write("half a rep")
        raise OSError(28, "No space left on device")

    with pytest.raises(UsageError) as exc:
        write_atomically(target, write)
    assert str(exc.value) == f"--output: cannot write {target}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    assert target.read_text() == "old report"  # the previous report is untouched


def test_an_unwritable_folder_is_one_error_line(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: permissions do not apply")
        with pytest.raises(UsageError, match=r"--output: cannot write .*: Permission denied"):
            write_atomically(folder / "out.json", lambda f: f.write("x"))
    finally:
        folder.chmod(0o755)
