"""``modelward policy check`` and ``policy test``: formats, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelward.cli import main
from tests.policy.test_engine import MALICIOUS, artifact, inventory


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def saved(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "inventory.json"
    p.write_text(json.dumps(doc))
    return p


def test_json_shape_is_pinned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(
        [
            "policy",
            "check",
            "--inventory",
            str(saved(tmp_path, inventory([MALICIOUS]))),
            "-f",
            "json",
        ],
        capsys,
    )
    assert rc == 1
    doc = json.loads(out)
    assert set(doc) == {"schema", "decisions"}
    assert doc["schema"] == "modelward.decisions/v1"
    first = doc["decisions"][0]
    assert first == {
        "rule": "code-execution",
        "action": "quarantine",
        "severity": "critical",
        "subject": {"kind": "artifact", "path": "/m/evil.pkl", "sha256": "a" * 64},
        "message": first["message"],
        "waived_by": None,
    }


def test_exit_zero_on_warnings_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nc = artifact(license={"id": "cc-by-nc-4.0", "name": "", "evidence": ""})
    rc, out, _ = run(
        ["policy", "check", "--inventory", str(saved(tmp_path, inventory([nc])))], capsys
    )
    assert rc == 0
    assert "license-noncommercial" in out and "1 decisions: 1 warn" in out


def test_fail_on_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nc = artifact(license={"id": "cc-by-nc-4.0", "name": "", "evidence": ""})
    inv = str(saved(tmp_path, inventory([nc])))
    settings = tmp_path / "s.yaml"
    settings.write_text("commercial: true\n")
    rc, _, _ = run(["policy", "check", "--inventory", inv, "--settings", str(settings)], capsys)
    assert rc == 1  # deny at high
    rc, _, _ = run(
        [
            "policy",
            "check",
            "--inventory",
            inv,
            "--settings",
            str(settings),
            "--fail-on",
            "critical",
        ],
        capsys,
    )
    assert rc == 0


def test_sarif_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "d.sarif"
    rc, _, _ = run(
        [
            "policy",
            "check",
            "--inventory",
            str(saved(tmp_path, inventory([MALICIOUS]))),
            "-f",
            "sarif",
            "-o",
            str(out_file),
        ],
        capsys,
    )
    assert rc == 1
    sarif = json.loads(out_file.read_text())
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"code-execution", "unapproved-pickle"}
    assert all(r["level"] in ("error", "warning", "note") for r in results)


def test_a_foreign_json_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(
        ["policy", "check", "--inventory", str(saved(tmp_path, {"schema": "other"}))], capsys
    )
    assert rc == 2
    assert "not a modelward inventory" in err


def test_settings_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("allowed_licence: [mit]\n")
    inv = str(saved(tmp_path, inventory([])))
    rc, _, err = run(["policy", "check", "--inventory", inv, "--settings", str(settings)], capsys)
    assert rc == 2
    assert (
        "settings.yaml:1: unknown key 'allowed_licence' (did you mean 'allowed_licenses'?)" in err
    )


def test_a_broken_policy_exits_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "x.rego").write_text("package modelward\n\ndeny contains 1 if {\n")
    inv = str(saved(tmp_path, inventory([])))
    rc, out, err = run(["policy", "check", "--inventory", inv, "--policy", str(pol)], capsys)
    assert rc == 2 and out == ""
    assert f"{pol / 'x.rego'}:" in err and "Traceback" not in err


def test_policy_test_on_the_bundled_pack(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["policy", "test"], capsys)
    assert rc == 0
    assert "PASS" in out and "FAIL" not in out and " 0 failed" in out


def test_policy_test_reports_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.rego").write_text("package a\n\nx := 1\n")
    (tmp_path / "a_test.rego").write_text(
        "package a_test\n\nimport data.a\nimport rego.v1\n\ntest_x if a.x == 2\n"
    )
    rc, out, _ = run(["policy", "test", str(tmp_path)], capsys)
    assert rc == 1
    assert "FAIL" in out and "test_x" in out


def test_policy_test_without_tests_prints_only_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No "0 passed, 0 failed" first: that line reads as a success."""
    (tmp_path / "a.rego").write_text("package a\n\nx := 1\n")
    rc, out, err = run(["policy", "test", str(tmp_path)], capsys)
    assert rc == 2 and out == ""
    assert err == f"modelward: error: {tmp_path}: no test_* rules in *_test.rego files\n"
