"""Human output: a rich table of files and their findings, then a one-line summary."""

from __future__ import annotations

from typing import TextIO

from modelward.models import ScanReport
from modelward.report.style import SEVERITY_STYLE, human_size

MAX_CLEAN_ROWS = 50
"""Past this many files, the table lists only those with findings or errors."""


def write_table(report: ScanReport, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    from modelward.report.text import markup

    width = None if out.isatty() else 160  # a file or pipe gets whole paths, not folded ones
    console = Console(file=out, highlight=False, soft_wrap=False, width=width)
    table = Table(show_lines=False, header_style="bold", expand=False)
    table.add_column("file", overflow="fold")
    table.add_column("format")
    table.add_column("size", justify="right")
    table.add_column("severity")
    table.add_column("rule")
    table.add_column("finding", overflow="fold")
    show_clean = len(report.files) <= MAX_CLEAN_ROWS
    hidden = 0
    for fr in report.files:
        name = markup(fr.path)
        if not fr.findings and not fr.errors:
            if show_clean:
                table.add_row(name, fr.format, human_size(fr.size), "[green]ok[/]", "", "")
            else:
                hidden += 1
            continue
        first = True
        for f in fr.findings:
            detail = markup(f.message)
            if f.evidence:
                detail += f" [dim]{markup(f.evidence)}[/]"
            if f.location:
                detail += f" [dim]@ {markup(f.location)}[/]"
            table.add_row(
                name if first else "",
                fr.format if first else "",
                human_size(fr.size) if first else "",
                f"[{SEVERITY_STYLE[f.severity]}]{f.severity.label}[/]",
                f.rule,
                detail,
            )
            first = False
        for e in fr.errors:
            table.add_row(
                name if first else "",
                fr.format if first else "",
                human_size(fr.size) if first else "",
                "[magenta]error[/]",
                "",
                markup(e),
            )
            first = False
    if table.row_count:
        console.print(table)
    if hidden:
        console.print(
            f"[dim]{hidden} file(s) with no finding not listed (--format json lists all)[/]"
        )
    s = report.summary()
    counts = ", ".join(f"{n} {sev}" for sev, n in s["findings"].items() if n)
    verdict = (
        f"[bold red]{s['unsafe_files']} unsafe[/]"
        if s["unsafe_files"]
        else "[green]no unsafe file[/]"
    )
    console.print(
        f"{s['files']} file(s) scanned: {verdict}"
        + (f"; findings: {counts}" if counts else "")
        + (f"; {s['errors']} read error(s)" if s["errors"] else "")
    )
