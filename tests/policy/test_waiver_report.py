"""Expired waivers, and waivers that match nothing, are reported in every format (as warnings)."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

from modelward.cli import main
from modelward.models import Severity
from modelward.policy.decision import Decision, Subject
from modelward.policy.waivers import apply_waivers, load_waivers, review_waivers
from modelward.report import decisions as report
from tests.policy.test_engine import MALICIOUS, SHA_A, inventory

WAIVERS = f"""\
waivers:
  - sha256: {SHA_A}
    rule: unapproved-pickle
    reason: legacy checkpoint
    approved_by: sec@example.com
    expires: 2020-01-01
  - sha256: {SHA_A}
    rule: code-executoin
    reason: misspelt rule
    approved_by: sec@example.com
    expires: 2099-01-01
  - sha256: {SHA_A}
    rule: code-execution
    reason: a red-team sample
    approved_by: legal@example.com
    expires: 2099-01-01
"""
EXPIRED = {
    "sha256": SHA_A,
    "rule": "unapproved-pickle",
    "reason": "legacy checkpoint",
    "approved_by": "sec@example.com",
    "expires": "2020-01-01",
    "line": 2,
}
UNUSED = {
    "sha256": SHA_A,
    "rule": "code-executoin",
    "reason": "misspelt rule",
    "approved_by": "sec@example.com",
    "expires": "2099-01-01",
    "line": 7,
}


def run(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(inventory([MALICIOUS])))
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(WAIVERS)
    argv = ["policy", "check", "--inventory", str(inv), "--waivers", str(waivers), "-f", fmt]
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_review_sorts_expired_and_unused(tmp_path: Path) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(WAIVERS)
    waivers = load_waivers(p)
    d = Decision("unapproved-pickle", "deny", Severity.HIGH, Subject("artifact", "/m", SHA_A), "m")
    ce = Decision(
        "code-execution", "quarantine", Severity.CRITICAL, Subject("artifact", "/m", SHA_A), ""
    )
    raw = [d, ce]
    out, _ = apply_waivers(raw, waivers, dt.date(2026, 1, 1))
    assert [x.action for x in out] == ["deny", "allow"]
    review = review_waivers(raw, waivers, dt.date(2026, 1, 1), source="w.yaml")
    assert [w.to_dict() for w in review.expired] == [EXPIRED]
    assert [w.to_dict() for w in review.unused] == [UNUSED]
    (k1, _, s1), (k2, _, s2) = review.notes()
    assert k1 == "waiver-expired" and s1 == (
        f"waiver at w.yaml:2 for sha256 {SHA_A} (rule unapproved-pickle, approved by "
        "sec@example.com) expired on 2020-01-01: no longer applies"
    )
    assert k2 == "waiver-unused" and "w.yaml:7" in s2 and "matched no decision" in s2
    # before it expired the first one applied: not unused, not expired
    review = review_waivers(raw, waivers, dt.date(2019, 1, 1))
    assert review.expired == () and [w.line for w in review.unused] == [7]


def test_json_gains_a_waivers_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(tmp_path, "json", capsys)
    doc = json.loads(out)
    assert code == 1  # an expired waiver: the deny stands
    assert list(doc) == ["schema", "decisions", "waivers"]
    assert doc["waivers"] == {"expired": [EXPIRED], "unused": [UNUSED]}
    assert {d["rule"]: d["action"] for d in doc["decisions"]}["unapproved-pickle"] == "deny"
    assert "expired on 2020-01-01" in err and "matched no decision" in err


def test_table_lists_them_after_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, err = run(tmp_path, "table", capsys)
    lines = out.splitlines()
    summary = next(i for i, line in enumerate(lines) if " decisions" in line)
    assert lines[summary + 1] == (
        f"waiver at {tmp_path / 'waivers.yaml'}:2 for sha256 {SHA_A} (rule unapproved-pickle, "
        "approved by sec@example.com) expired on 2020-01-01: no longer applies"
    )
    assert "matched no decision: check its sha256 and rule" in lines[summary + 2]
    assert err == ""  # said once, in the table


def test_sarif_has_tool_execution_notifications(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(tmp_path, "sarif", capsys)
    (run_,) = json.loads(out)["runs"]
    (invocation,) = run_["invocations"]
    assert invocation["executionSuccessful"] is True
    notes: list[dict[str, Any]] = invocation["toolExecutionNotifications"]
    assert [n["level"] for n in notes] == ["warning", "warning"]
    assert [n["descriptor"]["id"] for n in notes] == ["waiver-expired", "waiver-unused"]
    descriptors = run_["tool"]["driver"]["notifications"]
    for n in notes:
        assert descriptors[n["descriptor"]["index"]]["id"] == n["descriptor"]["id"]
        assert set(n) <= {"level", "message", "descriptor", "locations", "properties"}
        assert n["message"]["text"]
    loc = notes[0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("waivers.yaml")
    assert loc["region"] == {"startLine": 2}
    assert notes[0]["properties"]["waiver"] == EXPIRED


def test_without_a_waivers_file_the_outputs_are_unchanged() -> None:
    d = Decision("r", "deny", Severity.HIGH, Subject("runtime", name="ollama"), "m")
    assert set(report.to_json([d])) == {"schema", "decisions"}
    assert "invocations" not in report.to_sarif([d])["runs"][0]
    out = io.StringIO()
    report.write_decisions_table([d], out)
    assert out.getvalue().splitlines()[-1] == "1 decisions: 1 deny"
