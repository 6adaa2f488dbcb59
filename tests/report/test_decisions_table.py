"""The decisions table: a rich table for a few decisions, aligned lines for many; control
characters in file names or messages never reach the output as themselves."""

from __future__ import annotations

import io
from typing import Any

import pytest

from modelward.models import Severity
from modelward.policy.decision import Decision, Subject
from modelward.report import decisions as report


def decision(i: int, path: str | None = None, message: str | None = None) -> Decision:
    p = path or f"/m/model-{i}.bin"
    return Decision(
        rule="license-unknown" if i % 2 else "unapproved-pickle",
        action="warn" if i % 2 else "deny",
        severity=Severity.MEDIUM if i % 2 else Severity.HIGH,
        subject=Subject(kind="artifact", path=p, sha256=f"{i:064x}"),
        message=message or f"{p}: message {i}",
    )


@pytest.mark.parametrize("n", [3, report._TABLE_ROWS + 1, 5000])
def test_every_decision_has_its_row_and_the_summary_counts(n: int) -> None:
    ds = [decision(i) for i in range(n)]
    out = io.StringIO()
    report.write_decisions_table(ds, out)
    text = out.getvalue()
    for i in range(n):
        assert f"/m/model-{i}.bin: message {i}" in text
    assert text.rstrip().endswith(f"{n} decisions: {(n + 1) // 2} deny, {n // 2} warn")


def test_many_decisions_are_aligned_lines() -> None:
    ds = [decision(i) for i in range(report._TABLE_ROWS + 5)]
    out = io.StringIO()
    report.write_decisions_table(ds, out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["action", "severity", "rule", "subject", "message"]
    assert len(lines) == len(ds) + 2  # header, one line each, summary
    starts = {line.index("/m/") for line in lines[1:-1]}
    assert len(starts) == 1  # the subject column starts at the same place on every line
    assert lines[1].split()[:3] == ["deny", "high", "unapproved-pickle"]


@pytest.mark.parametrize("n", [1, report._TABLE_ROWS + 1])
@pytest.mark.parametrize("terminal", [False, True])
def test_control_characters_are_shown_escaped(n: int, terminal: bool, monkeypatch: Any) -> None:
    hostile = "/m/\x1b]0;owned\x07\x1b[2J.bin"
    ds = [decision(0, path=hostile, message=f"{hostile}: \x1b[31mred")]
    ds += [decision(i) for i in range(1, n)]
    out = io.StringIO()
    if terminal:
        monkeypatch.setattr(out, "isatty", lambda: True, raising=False)
        monkeypatch.setenv("FORCE_COLOR", "1")
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setenv("COLUMNS", "400")  # one line per row: the assertions read whole names
    report.write_decisions_table(ds, out)
    text = out.getvalue()
    assert "/m/\\x1b]0;owned\\x07\\x1b[2J.bin" in text
    assert "\x07" not in text
    assert "\x1b]" not in text and "\x1b[2J" not in text and "\x1b[31mred" not in text
