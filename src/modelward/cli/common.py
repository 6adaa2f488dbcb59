"""What the commands share: option checks, a terminal progress bar, and atomic output."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from modelward.errors import UsageError
from modelward.models import Severity
from modelward.report.text import visible

Update = Callable[[str, int, int], None]
"""``update(label, done, total)``: redraws the bar (``total`` 0 while it is unknown)."""


def echo(message: str = "", *, err: bool = False) -> None:
    """``typer.echo`` with control characters shown, not sent: what the commands print holds
    file names and what hosts report, which anybody can fill with terminal escape sequences."""
    import typer

    typer.echo(visible(message, lines=True), err=err)


def check_format(fmt: str, formats: Sequence[str]) -> None:
    if fmt not in formats:
        raise UsageError(f"--format {fmt!r} is not one of: {', '.join(formats)}")


def parse_fail_on(text: str) -> Severity:
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise UsageError(f"--fail-on: {exc}") from None


@contextlib.contextmanager
def terminal_progress(title: str) -> Iterator[Update | None]:
    """A transient progress bar on stderr when it is a terminal (else ``None``)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn(title),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        transient=True,
        auto_refresh=False,  # no refresh thread: the work forks worker processes
    )
    task = progress.add_task("", total=None)
    last = 0.0

    def update(label: str, done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < 0.1 and done != total:  # redraw ten times a second at most
            return
        last = now
        progress.update(task, completed=done, total=total or None, description=label)
        progress.refresh()

    with progress:
        yield update


def emit(output: Path | None, write: Callable[[TextIO], None]) -> None:
    """Write a report to stdout, or atomically to ``output``."""
    if output is None:
        write(sys.stdout)
        sys.stdout.flush()
    else:
        write_atomically(output, write)


def write_atomically(path: Path, write: Callable[[TextIO], None]) -> None:
    """Replace ``path`` only once the whole report is written and synced (never half a file).

    A failure to write (a full disk, a read-only folder, ``/dev/full``) is one
    :class:`UsageError` line naming the file; the temporary file is removed."""
    folder = path.parent if str(path.parent) else Path(".")
    if str(path) in ("/dev/stdout", "-"):
        write(sys.stdout)
        return
    if not folder.is_dir():
        raise UsageError(f"--output: folder {folder} does not exist")
    try:
        if path.exists() and not path.is_file():
            with open(path, "w", encoding="utf-8") as f:  # /dev/null and the like
                write(f)
            return
        _replace(path, folder, write)
    except OSError as exc:
        raise UsageError(f"--output: cannot write {path}: {exc.strerror or exc}") from None


def _replace(path: Path, folder: Path, write: Callable[[TextIO], None]) -> None:
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
