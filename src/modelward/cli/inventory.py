"""``modelward inventory``: list the models stored and in use on this machine, and what they are."""

from __future__ import annotations

from pathlib import Path

import typer

from modelward.cli.common import check_format, emit, parse_fail_on, terminal_progress

HELP = """List every local model on this machine: what it is, where it came from, under which license,
and what the scanner finds in it.

Runtime stores are parsed from their on-disk formats (Ollama manifests and blobs, the Hugging Face
cache, ...), and every other model file under the roots is found by its content. Each file gets its
SHA-256 (free when the store names it, otherwise computed once and cached by inode, size and mtime),
its format and scanner findings, its license, and whether a running process has it open. Nothing is
changed and no model is loaded.
"""

EPILOG = """\b
Examples:
  modelward inventory                      # your home: stores and loose model files
  modelward inventory /data/models -f json -o inventory.json
  sudo modelward inventory                 # every user's home and the system-wide stores
  modelward inventory --no-hash            # quicker: sha256 only where a store names it

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 usage error or failure to run.
"""


def inventory_command(
    roots: list[Path] = typer.Argument(
        None,
        help="Folders to inventory (default: your home; every home as root).",
        show_default=False,
        metavar="[ROOT]...",
    ),
    format: str = typer.Option(
        "table",
        "--format",
        "-f",
        help="Output format: table, json or cyclonedx (CycloneDX 1.6 AI-BOM).",
        metavar="FORMAT",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Write the report to FILE (atomically)."
    ),
    fail_on: str = typer.Option(
        "high",
        "--fail-on",
        metavar="SEVERITY",
        help="Exit 1 when a finding is at or above this severity: critical, high, medium, low, info.",
    ),
    no_hash: bool = typer.Option(
        False, "--no-hash", help="Do not compute SHA-256 (store-named digests are still given)."
    ),
    no_processes: bool = typer.Option(
        False, "--no-processes", help="Do not look at running processes (in_use is then false)."
    ),
    jobs: int = typer.Option(
        0, "--jobs", "-j", metavar="N", help="Worker processes (0: one per core).", min=0
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks of failures."),
) -> None:
    from modelward.inventory import InventoryOptions, collect
    from modelward.report.inventory import FORMATS, write_inventory_json, write_inventory_table

    check_format(format, FORMATS)
    threshold = parse_fail_on(fail_on)
    options = InventoryOptions(hash=not no_hash, processes=not no_processes, jobs=jobs)
    with terminal_progress("inventory") as bar:
        cb = None if bar is None else (lambda phase, d, t: bar(_PHASES[phase], d, t))
        inv = collect(roots or None, options, cb)
    write = write_inventory_json if format == "json" else write_inventory_table
    if format == "cyclonedx":
        from modelward.report.cyclonedx import write_inventory_cyclonedx

        write = write_inventory_cyclonedx
    emit(output, lambda f: write(inv, f))
    raise typer.Exit(1 if inv.fails(threshold) else 0)


_PHASES = {"walk": "finding model files", "scan": "scanning and hashing"}
