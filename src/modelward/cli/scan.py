"""``modelward scan``: statically scan model files and folders and report what loading them would do."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from modelward.cli.common import check_format, emit, parse_fail_on, terminal_progress

HELP = """Scan model files and folders without loading them.

Every file is identified by its content, never by its extension: GGUF, safetensors, pickle, PyTorch
(zip, legacy, TorchScript), NumPy, joblib, Keras, TensorFlow SavedModel, ONNX, TFLite, Core ML,
llamafile, and zip/tar/7z/gzip/bz2/xz containers, which are opened recursively. Nothing from the
model is ever executed. A file that cannot be read is reported and the scan goes on.
"""

EPILOG = """\b
Examples:
  modelward scan model.pt                  # table of findings; exit 1 if high or critical
  modelward scan ~/models --format json -o scan.json
  modelward scan ./ckpts --format sarif -o modelward.sarif   # GitHub code scanning
  modelward scan big.gguf --no-hash        # header-only formats in milliseconds
  modelward scan model.bin --fail-on medium                 # stricter CI gate

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 usage error or failure to run.
"""


def scan_command(
    paths: list[Path] = typer.Argument(
        ...,
        help="Files or folders to scan (folders are walked recursively).",
        show_default=False,
        metavar="PATH...",
    ),
    format: str = typer.Option(
        "table", "--format", "-f", help="Output format: table, json or sarif.", metavar="FORMAT"
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="FILE",
        help="Write the report to FILE (atomically) instead of stdout.",
    ),
    fail_on: str = typer.Option(
        "high",
        "--fail-on",
        help="Exit 1 when a finding is at or above this severity: critical, high, medium, low, info.",
        metavar="SEVERITY",
    ),
    no_hash: bool = typer.Option(
        False,
        "--no-hash",
        help="Skip SHA-256 (faster on large files; sha256 is null in the report).",
    ),
    jobs: int = typer.Option(
        0, "--jobs", "-j", metavar="N", help="Worker processes (0: one per core).", min=0
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks of failures."),
) -> None:
    from modelward.report import FORMATS, renderer
    from modelward.scan import ScanOptions, scan

    check_format(format, FORMATS)
    threshold = parse_fail_on(fail_on)
    options = ScanOptions(hash=not no_hash, jobs=jobs)
    with terminal_progress("scanning") as bar:
        cb = None if bar is None else (lambda d, t, p: bar(os.path.basename(p)[-40:], d, t))
        report = scan(paths, options, cb)
    emit(output, lambda f: renderer(format)(report, f))
    raise typer.Exit(1 if report.fails(threshold) else 0)
