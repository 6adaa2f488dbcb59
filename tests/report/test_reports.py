"""Report formats: JSON per the interfaces contract, SARIF 2.1.0, and the table."""

from __future__ import annotations

import io
import json

from modelward.models import FileReport, Finding, ScanReport, Severity, Sha256
from modelward.report import renderer

REPORT = ScanReport(
    files=(
        FileReport(
            "models/evil.pkl",
            40,
            Sha256("ab" * 32),
            "pickle",
            {"globals": ["os.system"]},
            (
                Finding(
                    "pickle.dangerous-global",
                    Severity.CRITICAL,
                    "Imports os.system.",
                    "os.system",
                    "opcode at byte 2",
                    "Do not load it.",
                ),
            ),
        ),
        FileReport("models/ok.safetensors", 10, None, "safetensors", errors=("cannot hash",)),
    )
)


def render(fmt: str) -> str:
    buf = io.StringIO()
    renderer(fmt)(REPORT, buf)
    return buf.getvalue()


def test_json_matches_interfaces_contract() -> None:
    doc = json.loads(render("json"))
    assert doc["schema"] == "modelward.scan/v1"
    assert doc["tool"] == {"name": "modelward", "version": "0.1.0"}
    assert doc["summary"] == {
        "files": 2,
        "unsafe_files": 1,
        "max_severity": "critical",
        "findings": {"critical": 1, "high": 0, "medium": 0, "low": 0, "info": 0},
        "errors": 1,
    }
    assert doc["files"][1]["sha256"] is None


def test_sarif_has_rules_results_and_levels() -> None:
    doc = json.loads(render("sarif"))
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    assert run["tool"]["driver"]["name"] == "modelward"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["pickle.dangerous-global"]
    (result,) = run["results"]
    assert result["ruleId"] == "pickle.dangerous-global"
    assert result["ruleIndex"] == 0
    assert result["level"] == "error"
    assert (
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "models/evil.pkl"
    )


def test_table_mentions_every_file_and_summary() -> None:
    out = render("table")
    assert "evil.pkl" in out and "ok.safetensors" in out
    assert "1 unsafe" in out and "1 critical" in out


def test_table_of_a_large_folder_lists_only_files_with_findings() -> None:
    clean = tuple(FileReport(f"m/{i:03}.bin", 1, None, "unknown") for i in range(60))
    big = ScanReport(files=(*clean, REPORT.files[0]))
    buf = io.StringIO()
    renderer("table")(big, buf)
    out = buf.getvalue()
    assert "evil.pkl" in out and "m/000.bin" not in out
    assert "60 file(s) with no finding not listed" in out
