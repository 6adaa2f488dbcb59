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
    """Write the document with one file entry per line.

    ``json.dump(indent=...)`` falls back to the pure-Python encoder (several times slower on a
    folder of thousands of files); each entry here goes through the C encoder, and the result
    stays easy to read and to ``grep``.
    """

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, default=str)

    out.write('{"schema": ' + dumps(SCHEMA) + ",\n")
    out.write(' "tool": ' + dumps({"name": "modelward", "version": __version__}) + ",\n")
    out.write(' "files": [')
    for n, f in enumerate(report.files):
        out.write(("\n  " if n == 0 else ",\n  ") + dumps(f.to_dict()))
    out.write("\n ],\n" if report.files else "],\n")
    out.write(' "summary": ' + dumps(report.summary()) + "}\n")
