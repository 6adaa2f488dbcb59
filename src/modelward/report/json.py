"""The ``modelward.scan/v1`` JSON document (see shared/design/interfaces.md)."""

from __future__ import annotations

import json
from typing import Any, TextIO

from modelward import __version__
from modelward.models import ScanReport

SCHEMA = "modelward.scan/v1"


def to_document(report: ScanReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "tool": {"name": "modelward", "version": __version__},
        "files": [f.to_dict() for f in report.files],
        "summary": report.summary(),
    }


def write_json(report: ScanReport, out: TextIO) -> None:
    json.dump(to_document(report), out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")
