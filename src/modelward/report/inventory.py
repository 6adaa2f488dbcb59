"""Output formats for an inventory: the ``modelward.inventory/v1`` JSON document and a table."""

from __future__ import annotations

import json
from typing import Any, TextIO

from modelward.models import Inventory
from modelward.report.style import SEVERITY_STYLE, human_size

FORMATS = ("table", "json", "cyclonedx")


def write_inventory_json(inv: Inventory, out: TextIO) -> None:
    """The interfaces.md document, one artifact per line (C encoder; see report.json)."""

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, default=str)

    doc = inv.to_dict()
    out.write('{"schema": ' + dumps(doc["schema"]) + ",\n")
    out.write(' "host": ' + dumps(doc["host"]) + ",\n")
    for key in ("artifacts", "runtimes", "packages", "errors"):
        entries = doc[key]
        out.write(f' "{key}": [')
        for n, entry in enumerate(entries):
            out.write(("\n  " if n == 0 else ",\n  ") + dumps(entry))
        out.write("\n ]" if entries else "]")
        out.write(",\n" if key != "errors" else "\n")
    out.write("}\n")


def write_inventory_table(inv: Inventory, out: TextIO) -> None:
    """Artifacts grouped by source, then errors and a summary line."""
    from rich.console import Console
    from rich.table import Table

    from modelward.report.text import markup

    console = Console(file=out, highlight=False, width=None if out.isatty() else 180)
    kinds = sorted({a.source.kind for a in inv.artifacts})
    for kind in kinds:
        table = Table(title=f"{kind} models", title_justify="left", header_style="bold")
        for col in (
            "model",
            "file",
            "format",
            "size",
            "license",
            "sha256",
            "worst finding",
            "in use",
        ):
            table.add_column(col, overflow="fold")
        for a in (x for x in inv.artifacts if x.source.kind == kind):
            top = max(a.findings, key=lambda f: f.severity, default=None)
            name = a.source.name or a.source.repo or "-"
            if a.source.repo and a.source.name and a.source.repo not in a.source.name:
                name = f"{a.source.repo}: {a.source.name}"
            table.add_row(
                markup(name),
                markup(a.path),
                a.format,
                human_size(a.size),
                markup(a.license.id),
                (a.sha256 or "-")[:12],
                f"[{SEVERITY_STYLE[top.severity]}]{top.severity.label}[/] {top.rule}"
                if top
                else "[green]-[/]",
                "[bold]yes[/]" if a.in_use else "",
            )
        console.print(table)
    if inv.runtimes:
        table = Table(title="runtimes", title_justify="left", header_style="bold")
        for col in ("runtime", "version", "running", "listening", "worst finding", "executable"):
            table.add_column(col, overflow="fold")
        for r in inv.runtimes:
            top = max(r.findings, key=lambda f: f.severity, default=None)
            listen = ", ".join(
                f"{x.address}:{x.port}" + (" [bold red](exposed)[/]" if x.exposed else "")
                for x in r.listen
            )
            table.add_row(
                r.name,
                markup(r.version or "?"),
                f"yes ({', '.join(map(str, r.pids))})" if r.running else "no",
                listen or "-",
                f"[{SEVERITY_STYLE[top.severity]}]{top.severity.label}[/] {top.rule}"
                if top
                else "[green]-[/]",
                markup(r.executable or "-"),
            )
        console.print(table)
    if inv.packages:
        table = Table(title="inference libraries", title_justify="left", header_style="bold")
        for col in ("package", "version", "environment", "worst finding"):
            table.add_column(col, overflow="fold")
        for p in inv.packages:
            top = max(p.findings, key=lambda f: f.severity, default=None)
            table.add_row(
                markup(p.name),
                markup(p.version),
                markup(p.environment),
                f"[{SEVERITY_STYLE[top.severity]}]{top.severity.label}[/] {top.rule}"
                if top
                else "[green]-[/]",
            )
        console.print(table)
    if inv.errors:
        console.print(
            f"[magenta]{len(inv.errors)} item(s) could not be read[/] (--format json lists them)"
        )
    worst = max((f.severity for f in inv.findings), default=None)
    console.print(
        f"{len(inv.artifacts)} model file(s) found"
        + (f"; worst finding: {worst.label}" if worst is not None else "; no findings")
    )
