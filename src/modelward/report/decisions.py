"""Output formats for policy decisions: a table, ``modelward.decisions/v1`` JSON, and SARIF 2.1.0."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any, TextIO

from modelward.policy.decision import Decision
from modelward.report.sarif import SCORE, sarif_log, uri
from modelward.report.style import SEVERITY_STYLE
from modelward.report.text import markup, visible

if TYPE_CHECKING:
    from modelward.policy.waivers import WaiverReview

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


def to_json(decisions: list[Decision], waivers: WaiverReview | None = None) -> dict[str, Any]:
    """The ``modelward.decisions/v1`` document; ``"waivers"`` (expired and unused waivers) only
    when a waivers file was given."""
    doc: dict[str, Any] = {"schema": SCHEMA, "decisions": [d.to_dict() for d in decisions]}
    if waivers is not None:
        doc["waivers"] = waivers.to_dict()
    return doc


def write_decisions_json(
    decisions: list[Decision], out: TextIO, waivers: WaiverReview | None = None
) -> None:
    json.dump(to_json(decisions, waivers), out, indent=2, ensure_ascii=False)
    out.write("\n")


def _subject(d: Decision) -> str:
    s = d.subject
    if s.kind == "artifact":
        return visible(s.path or s.sha256 or "?")
    return visible(f"{s.kind} {s.name}" if s.name else s.kind)


_TABLE_ROWS = 300
"""Up to this many decisions are laid out as a rich table (about 0.4 ms a row: 5,000 decisions
took 2.3 s); more are written as aligned lines, one per decision, which take a few milliseconds."""


def write_decisions_table(
    decisions: list[Decision], out: TextIO, waivers: WaiverReview | None = None
) -> None:
    """One row per decision (strongest first), a summary line, then a line per expired or unused
    waiver."""
    from rich.console import Console
    from rich.table import Table

    console = Console(
        file=out, highlight=False, soft_wrap=False, width=None if out.isatty() else 180
    )
    if len(decisions) > _TABLE_ROWS:
        _write_lines(decisions, console)
    elif decisions:
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
                markup(_subject(d)),
                markup(d.message),
            )
        console.print(table)
    counts = Counter(d.action for d in decisions)
    parts = [
        f"{counts[a]} {a}" for a in ("quarantine", "stop", "deny", "warn", "allow") if counts[a]
    ]
    console.print(f"{len(decisions)} decisions" + (f": {', '.join(parts)}" if parts else ""))
    if waivers is not None:
        from rich.text import Text

        for _kind, _waiver, sentence in waivers.notes():
            console.print(Text(visible(sentence), style="yellow"), soft_wrap=True)


def _write_lines(decisions: list[Decision], console: Any) -> None:
    """The table's columns as aligned lines, without wrapping (long lists: see ``_TABLE_ROWS``)."""
    from rich.text import Text

    rows = [
        (d.action + (" (waived)" if d.waived_by else ""), d.severity.label, d.rule, _subject(d))
        for d in decisions
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    widths.append(min(60, max(len(r[3]) for r in rows)))
    head = ("action", "severity", "rule", "subject")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    header = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + "  message"
    if not console.is_terminal or console.no_color:  # plain text: no per-line rendering
        lines = [header]
        for (action, sev, rule, subject), d in zip(rows, decisions, strict=True):
            cells = (action, sev, rule, subject)
            lines.append(
                "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
                + "  "
                + visible(d.message)
            )
        console.file.write("\n".join(lines) + "\n")
        return
    console.print(Text(header, style="bold"), crop=False)
    for (action, sev, rule, subject), d in zip(rows, decisions, strict=True):
        console.print(
            Text.assemble(
                (action.ljust(widths[0]), _ACTION_STYLE[d.action]),
                "  ",
                (sev.ljust(widths[1]), SEVERITY_STYLE.get(d.severity, "")),
                "  ",
                rule.ljust(widths[2]),
                "  ",
                subject.ljust(widths[3]),
                "  ",
                visible(d.message),
            ),
            crop=False,
        )


_NOTIFICATIONS = {
    "waiver-expired": "A waiver has expired: the decisions it covered apply again.",
    "waiver-unused": "A waiver matched no decision (a misspelt digest, name or rule?).",
}


def _invocation(waivers: WaiverReview) -> dict[str, Any]:
    """``run.invocations[0]``: the expired and unused waivers as tool execution notifications
    (SARIF 2.1.0 §3.20.21, §3.58), each pointing at its line in the waivers file."""
    ids = list(_NOTIFICATIONS)
    notes = []
    for kind, waiver, sentence in waivers.notes():
        note: dict[str, Any] = {
            "level": "warning",
            "message": {"text": sentence},
            "descriptor": {"id": kind, "index": ids.index(kind)},
            "properties": {"waiver": waiver.to_dict()},
        }
        if waivers.source:
            note["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(waivers.source)},
                        "region": {"startLine": max(waiver.line, 1)},
                    }
                }
            ]
        notes.append(note)
    return {"executionSuccessful": True, "toolExecutionNotifications": notes}


def to_sarif(decisions: list[Decision], waivers: WaiverReview | None = None) -> dict[str, Any]:
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
    log = sarif_log(rules, results)
    if waivers is not None:
        run = log["runs"][0]
        run["tool"]["driver"]["notifications"] = [
            {"id": kind, "name": kind, "shortDescription": {"text": text}}
            for kind, text in _NOTIFICATIONS.items()
        ]
        run["invocations"] = [_invocation(waivers)]
    return log


def write_decisions_sarif(
    decisions: list[Decision], out: TextIO, waivers: WaiverReview | None = None
) -> None:
    json.dump(to_sarif(decisions, waivers), out, indent=2, ensure_ascii=False)
    out.write("\n")
