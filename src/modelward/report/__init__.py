"""Output formats for scan results: ``json`` (the interfaces contract), ``sarif`` and ``table``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from modelward.models import ScanReport

FORMATS = ("table", "json", "sarif")


def renderer(fmt: str) -> Callable[[ScanReport, TextIO], None]:
    """The writer for ``fmt`` (imported on demand: rich is only needed for ``table``)."""
    if fmt == "json":
        from modelward.report.json import write_json

        return write_json
    if fmt == "sarif":
        from modelward.report.sarif import write_sarif

        return write_sarif
    if fmt == "table":
        from modelward.report.table import write_table

        return write_table
    raise ValueError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
