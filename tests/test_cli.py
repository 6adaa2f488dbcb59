"""The command line: exit codes, formats, atomic output, help that teaches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelward.cli import main

EVIL = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_clean_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.txt").write_text("x")
    code, out, _ = run(["scan", str(tmp_path / "a.txt")], capsys)
    assert code == 0
    assert "no unsafe file" in out


def test_malicious_file_exits_1_with_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "evil.pkl"
    p.write_bytes(EVIL)
    code, out, _ = run(["scan", str(p), "--format", "json"], capsys)
    assert code == 1
    doc = json.loads(out)
    assert doc["schema"] == "modelward.scan/v1"
    assert doc["summary"]["max_severity"] == "critical"
    f = doc["files"][0]
    assert set(f) == {"path", "size", "sha256", "format", "metadata", "findings", "errors"}
    finding = f["findings"][0]
    assert set(finding) == {"rule", "severity", "message", "evidence", "location", "remediation"}
    assert finding["rule"] == "pickle.dangerous-global"


def test_fail_on_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "evil.pkl"
    p.write_bytes(EVIL)
    code, _, _ = run(["scan", str(p), "--fail-on", "critical", "-f", "json"], capsys)
    assert code == 1
    (tmp_path / "ok.txt").write_text("x")
    code, _, _ = run(["scan", str(tmp_path / "ok.txt"), "--fail-on", "info"], capsys)
    assert code == 0


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["scan", str(tmp_path / "missing")], capsys)
    assert code == 2 and "no such file" in err
    code, _, err = run(["scan", str(tmp_path), "--fail-on", "severe"], capsys)
    assert code == 2 and "unknown severity" in err
    code, _, err = run(["scan", str(tmp_path), "--format", "xml"], capsys)
    assert code == 2 and "--format" in err


def test_output_file_is_written_atomically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.txt").write_text("x")
    out = tmp_path / "report.sarif"
    out.write_text("previous")
    code, stdout, _ = run(["scan", str(tmp_path / "m"), "-f", "sarif", "-o", str(out)], capsys)
    assert code == 0 and stdout == ""
    doc = json.loads(out.read_text())
    assert doc["version"] == "2.1.0"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


def test_output_into_missing_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_text("x")
    code, _, err = run(
        ["scan", str(tmp_path / "a.txt"), "-o", str(tmp_path / "no" / "r.json")], capsys
    )
    assert code == 2 and "does not exist" in err


def test_help_teaches_by_example() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "modelward", "scan", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "100", "PATH": ""},
    ).stdout
    assert "Examples:" in out and "modelward scan model.pt" in out
    assert "Exit codes" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == "modelward 0.1.0"


@pytest.mark.parametrize(
    ("module", "args", "extra"),
    [
        ("uvicorn", ["server", "--data", "DATA"], "server"),
        ("httpx", ["hub", "review", "--server", "http://127.0.0.1:9"], "server"),
        (
            "httpx",
            [
                "agent",
                "enroll",
                "--server",
                "http://127.0.0.1:9",
                "--secret-file",
                "SECRET",
                "--state-dir",
                "DATA",
            ],
            "agent",
        ),
    ],
)
def test_a_missing_optional_dependency_says_which_extra_to_install(
    module: str,
    args: list[str],
    extra: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`pip install modelward` alone has no hub server: a command that needs an extra says which
    one, in one line (exit 2), instead of a ModuleNotFoundError traceback."""
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    monkeypatch.setenv("MODELWARD_ADMIN_TOKEN", "mw_" + "x" * 40)
    (tmp_path / "secret").write_text("mwe_" + "s" * 40)
    places = {"DATA": str(tmp_path / "d"), "SECRET": str(tmp_path / "secret")}
    args = [places.get(a, a) for a in args]
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err == (
        f"modelward: error: this command needs {module}, one of modelward's optional "
        f"'{extra}' dependencies: pip install 'modelward[{extra}]'\n"
    )
