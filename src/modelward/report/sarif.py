"""SARIF 2.1.0 output: one run, one result per finding, rules from the scanner's catalogue."""

from __future__ import annotations

import json
from typing import Any, TextIO

from modelward import __version__
from modelward.models import ScanReport, Severity
from modelward.scan.rules import catalog

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning reads this property to rank security results (0.0 - 10.0).
SCORE = {
    Severity.CRITICAL: "9.8",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.0",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def to_sarif(report: ScanReport) -> dict[str, Any]:
    from modelward.scan import registry

    registry.load()  # every detector module declares its rules on import
    rules = catalog()
    used = sorted({f.rule for f in report.findings})
    index = {rid: i for i, rid in enumerate(used)}
    rule_objs = []
    for rid in used:
        r = rules.get(rid)
        sev = r.severity if r else Severity.MEDIUM
        rule_objs.append(
            {
                "id": rid,
                "name": rid,
                "shortDescription": {"text": r.title if r else rid},
                "help": {"text": r.remediation if r else ""},
                "defaultConfiguration": {"level": _LEVEL[sev]},
                "properties": {"security-severity": SCORE[sev], "tags": ["security"]},
            }
        )
    results = []
    for fr in report.files:
        for f in fr.findings:
            results.append(
                {
                    "ruleId": f.rule,
                    "ruleIndex": index[f.rule],
                    "level": _LEVEL[f.severity],
                    "message": {"text": f"{f.message} ({f.evidence})" if f.evidence else f.message},
                    "locations": [
                        {
                            "physicalLocation": {"artifactLocation": {"uri": uri(fr.path)}},
                            "logicalLocations": [{"name": f.location}] if f.location else [],
                        }
                    ],
                    "properties": {
                        "severity": f.severity.label,
                        "evidence": f.evidence,
                        "remediation": f.remediation,
                        "security-severity": SCORE[f.severity],
                    },
                    "partialFingerprints": {"sha256": fr.sha256 or ""},
                }
            )
    return sarif_log(rule_objs, results)


def sarif_log(rules: list[dict[str, Any]], results: list[dict[str, Any]]) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run of modelward (shared by the scan and policy reports)."""
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "modelward",
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/modelward/",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def uri(path: str) -> str:
    from urllib.parse import quote

    return quote(path.replace("\\", "/"), safe="/:._-~")


def write_sarif(report: ScanReport, out: TextIO) -> None:
    json.dump(to_sarif(report), out, indent=2, ensure_ascii=False)
    out.write("\n")
