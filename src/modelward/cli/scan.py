"""``modelward scan``: statically scan model files and folders and report what loading them would do."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelward.errors import UsageError
from modelward.models import Severity

if TYPE_CHECKING:
    from modelward.models import ScanReport

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

    if format not in FORMATS:
        raise UsageError(f"--format {format!r} is not one of: {', '.join(FORMATS)}")
    try:
        threshold = Severity.parse(fail_on)
    except ValueError as exc:
        raise UsageError(f"--fail-on: {exc}") from None
    options = ScanOptions(hash=not no_hash, jobs=jobs)
    report = _with_progress(lambda cb: scan(paths, options, cb))
    write = renderer(format)
    if output is None:
        write(report, sys.stdout)
        sys.stdout.flush()
    else:
        _write_atomically(output, lambda f: write(report, f))
    raise typer.Exit(1 if report.fails(threshold) else 0)


def _with_progress(run: typing_run) -> ScanReport:
    """Run the scan with a transient progress bar on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return run(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        transient=True,
        auto_refresh=False,  # no refresh thread: the scan forks worker processes
        console=None,
    )
    task = progress.add_task("", total=None)
    last = 0.0

    def cb(done: int, total: int, path: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < 0.1 and done < total:  # redraw ten times a second at most
            return
        last = now
        progress.update(task, completed=done, total=total, description=os.path.basename(path)[-40:])
        progress.refresh()

    with progress:
        return run(cb)


def _write_atomically(path: Path, write: typing_writer) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if str(path) in ("/dev/stdout", "-"):
        write(sys.stdout)
        return
    if not folder.is_dir():
        raise UsageError(f"--output: folder {folder} does not exist")
    if path.exists() and not path.is_file():
        with open(path, "w", encoding="utf-8") as f:  # /dev/null and the like
            write(f)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

    from modelward.scan import Progress

    typing_run = Callable[[Progress | None], ScanReport]
    typing_writer = Callable[[TextIO], None]
