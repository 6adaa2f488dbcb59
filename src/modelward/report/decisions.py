"""Output formats for policy decisions: a table, ``modelward.decisions/v1`` JSON, and SARIF 2.1.0."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, TextIO

from modelward.policy.decision import Decision
from modelward.report.sarif import SCORE, sarif_log, uri
from modelward.report.style import SEVERITY_STYLE

SCHEMA = "modelward.decisions/v1"
FORMATS = ("table", "json", "sarif")

_ACTION_STYLE = {
    "quarantine": "bold red",
    "stop": "bold red",
    "deny": "red",
    "warn": "yellow",
    "allow": "green",
}
_LEVEL = {
    "quarantine": "error",
    "stop": "error",
    "deny": "error",
    "warn": "warning",
    "allow": "note",
}


def to_json(decisions: list[Decision]) -> dict[str, Any]:
    return {"schema": SCHEMA, "decisions": [d.to_dict() for d in decisions]}


def write_decisions_json(decisions: list[Decision], out: TextIO) -> None:
    json.dump(to_json(decisions), out, indent=2, ensure_ascii=False)
    out.write("\n")


def _subject(d: Decision) -> str:
    s = d.subject
    if s.kind == "artifact":
        return s.path or s.sha256 or "?"
    return f"{s.kind} {s.name}" if s.name else s.kind


def write_decisions_table(decisions: list[Decision], out: TextIO) -> None:
    """One row per decision (strongest first), then a summary line."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(
        file=out, highlight=False, soft_wrap=False, width=None if out.isatty() else 180
    )
    if decisions:
        table = Table(header_style="bold")
        for col in ("action", "severity", "rule", "subject", "message"):
            table.add_column(col, overflow="fold")
        for d in decisions:
            sev_style = SEVERITY_STYLE.get(d.severity, "")
            action = d.action + (" (waived)" if d.waived_by else "")
            table.add_row(
                f"[{_ACTION_STYLE[d.action]}]{action}[/]",
                f"[{sev_style}]{d.severity.label}[/]" if sev_style else d.severity.label,
                d.rule,
                escape(_subject(d)),
                escape(d.message),
            )
        console.print(table)
    counts = Counter(d.action for d in decisions)
    parts = [
        f"{counts[a]} {a}" for a in ("quarantine", "stop", "deny", "warn", "allow") if counts[a]
    ]
    console.print(f"{len(decisions)} decisions" + (f": {', '.join(parts)}" if parts else ""))


def to_sarif(decisions: list[Decision]) -> dict[str, Any]:
    used = sorted({d.rule for d in decisions})
    index = {rid: i for i, rid in enumerate(used)}
    rules = [
        {
            "id": rid,
            "name": rid,
            "shortDescription": {"text": f"modelward policy rule {rid}"},
            "properties": {"tags": ["security", "policy"]},
        }
        for rid in used
    ]
    results = []
    for d in decisions:
        result: dict[str, Any] = {
            "ruleId": d.rule,
            "ruleIndex": index[d.rule],
            "level": _LEVEL[d.action],
            "message": {"text": d.message},
            "properties": {
                "action": d.action,
                "severity": d.severity.label,
                "security-severity": SCORE[d.severity],
                "subject": d.subject.to_dict(),
            },
        }
        if d.subject.kind == "artifact" and d.subject.path:
            result["locations"] = [
                {"physicalLocation": {"artifactLocation": {"uri": uri(d.subject.path)}}}
            ]
            result["partialFingerprints"] = {"sha256": d.subject.sha256 or ""}
        else:
            result["locations"] = [{"logicalLocations": [{"name": _subject(d), "kind": "module"}]}]
        if d.waived_by:
            result["suppressions"] = [{"kind": "external", "justification": d.waived_by}]
        results.append(result)
    return sarif_log(rules, results)


def write_decisions_sarif(decisions: list[Decision], out: TextIO) -> None:
    json.dump(to_sarif(decisions), out, indent=2, ensure_ascii=False)
    out.write("\n")
