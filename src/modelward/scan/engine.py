"""Walks the paths to scan, identifies each file by content and runs its detector.

Small files are read once (hash and analysis share the bytes); large files are memory-mapped for
analysis and hashed with ``readinto``. Several files are spread over the cores by forking (see
:mod:`.forkpool`), balanced by size so that two large files are hashed on two cores; where
forking is not available, threads overlap the hashing (hashlib releases the GIL).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from modelward.errors import UsageError
from modelward.models import FileReport, ScanReport, Severity, Sha256
from modelward.scan import forkpool, masquerade, registry
from modelward.scan.context import Limits, NestedResult, ScanContext
from modelward.scan.rules import EMPTY, INTERNAL, MASQUERADE, SCAN_LIMIT, UNRECOGNIZED
from modelward.scan.source import FileSource, NotRegularFile, Source

Progress = Callable[[int, int, str], None]
"""``progress(done, total, path)`` is called after each file."""

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """How to scan. The defaults suit an interactive scan of a model folder."""

    hash: bool = True
    """Compute each file's SHA-256 (free for small files, ~1.2 GB/s per core for large ones)."""
    jobs: int = 0
    """Worker processes; 0 means one per core."""
    limits: Limits = field(default_factory=Limits)


def scan(
    paths: Iterable[str | os.PathLike[str]],
    options: ScanOptions | None = None,
    progress: Progress | None = None,
) -> ScanReport:
    """Scan files and folders statically and return a report per file, sorted by path.

    Raises :class:`~modelward.errors.UsageError` for a path that does not exist. A file that
    cannot be read is reported with an error entry; it does not stop the scan.
    """
    options = options or ScanOptions()
    targets = list(iter_targets(paths))
    reports = _run(targets, options, progress)
    return ScanReport(files=tuple(sorted(reports, key=lambda r: r.path)))


def iter_targets(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[str, str]]:
    """(real path, display path) for every regular file under ``paths``.

    Symlinks to files are followed (Hugging Face snapshots are links to blobs); symlinked
    folders are not descended, so a link loop cannot trap the walk.
    """
    for p in paths:
        given = os.fspath(p)
        try:
            st = os.stat(given)
        except FileNotFoundError:
            raise UsageError(f"{given}: no such file or folder") from None
        except OSError as exc:
            raise UsageError(f"{given}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(given)
        else:
            yield given, given


def _walk(root: str) -> Iterator[tuple[str, str]]:
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            yield folder, folder  # reported as unreadable by scan_file
            continue
        subdirs = []
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    subdirs.append(e.path)
                elif e.is_symlink() and e.is_dir():
                    continue  # a linked folder: not descended (loops, and scanning twice)
                else:  # files, links to files, and the odd ones (reported, not opened)
                    yield e.path, e.path
            except OSError:
                yield e.path, e.path
        stack.extend(reversed(subdirs))


def scan_file(path: str, display: str, options: ScanOptions) -> FileReport:
    """Scan one file. Never raises for a problem with the file itself."""
    try:
        src = FileSource(path)
    except NotRegularFile as exc:
        return FileReport(display, 0, None, "unknown", errors=(f"{exc}: skipped",))
    except OSError as exc:
        return FileReport(display, 0, None, "unknown", errors=(f"cannot read: {exc.strerror}",))
    with src:
        ctx = ScanContext(path, options.limits, dispatch)
        result = dispatch(ctx, src, os.path.basename(path))
        digest: Sha256 | None = None
        if options.hash:
            try:
                digest = _sha256(src)
            except OSError as exc:
                ctx.error(f"cannot hash: {exc.strerror}")
        metadata = result.metadata
        dropped = ctx.suppressed()
        if dropped:
            metadata["suppressed_findings"] = dropped
        return FileReport(
            path=display,
            size=src.size,
            sha256=digest,
            format=result.format,
            metadata=metadata,
            findings=tuple(sorted(ctx.findings, key=lambda f: -f.severity)),
            errors=tuple(ctx.errors),
        )


def dispatch(ctx: ScanContext, src: Source, name: str) -> NestedResult:
    """Identify ``src`` by content, scan it, and check the format against ``name``'s extension."""
    expected = masquerade.expected_formats(name)
    ext = os.path.splitext(name)[1]
    if src.size == 0:
        if expected is not None:
            ctx.report(EMPTY, f"The file is empty but its name ends in {ext}.", evidence=ext)
        return NestedResult("unknown", ctx.metadata)
    det = registry.identify(src, name)
    if det is None:
        claimed = registry.claimed_by_extension(name)
        if not claimed:
            if expected is not None:
                ctx.report(
                    UNRECOGNIZED,
                    f"The content is of no known format, but the name ends in {ext}.",
                    evidence=ext,
                )
            return NestedResult("unknown", ctx.metadata)
        det = claimed[0]  # unrecognisable content under a model extension: let it say why
    try:
        det.scan(src, ctx)
    except OSError as exc:
        ctx.error(f"read failed: {exc.strerror or exc}")
    except RecursionError:
        ctx.report(SCAN_LIMIT, "Content is nested too deeply to analyse.", evidence=det.format)
    except Exception as exc:  # a detector bug must not hide the file: say it was not scanned
        ctx.report(
            INTERNAL,
            f"The {det.format} analyser failed; the file was not fully scanned.",
            evidence=f"{type(exc).__name__}: {exc}"[:300],
        )
    fmt = ctx.format or det.format
    if expected is not None and fmt not in expected and fmt != "unknown":
        severity = Severity.HIGH if fmt in masquerade.CODE_CAPABLE else Severity.LOW
        ctx.report(
            MASQUERADE,
            f"Content is {fmt} but the name ends in {ext}: a loader chosen by extension "
            f"would see something else than a scanner chosen by it.",
            evidence=f"{ext} -> {fmt}",
            severity=severity,
        )
    return NestedResult(fmt, ctx.metadata)


def _sha256(src: FileSource) -> Sha256:
    buf = src.cached_bytes()
    if buf is not None:
        return Sha256(hashlib.sha256(buf).hexdigest())
    h = hashlib.sha256()
    view = memoryview(bytearray(_HASH_CHUNK))
    offset = 0
    while n := src.readinto(view, offset):
        h.update(view[:n])
        offset += n
    return Sha256(h.hexdigest())


# ---------------------------------------------------------------------- parallel execution
def _run(
    targets: list[tuple[str, str]], options: ScanOptions, progress: Progress | None
) -> list[FileReport]:
    # The same file reached twice (a Hugging Face snapshot link and its blob) is scanned once.
    unique: dict[tuple[int, int], tuple[str, str]] = {}
    sizes: dict[tuple[int, int], int] = {}
    aliases: list[tuple[tuple[int, int] | None, str, str]] = []
    for real, display in targets:
        try:
            st = os.stat(real)
            key: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            key = None
        if key is not None and key not in unique:
            unique[key] = (real, display)
            sizes[key] = st.st_size
        aliases.append((key, real, display))

    work = list(unique.values()) + [(r, d) for k, r, d in aliases if k is None]
    weights = [sizes.get(k, 0) for k in unique] + [0] * (len(work) - len(unique))
    jobs = min(options.jobs or os.cpu_count() or 1, len(work))
    total = len(work)
    done: dict[str, FileReport] = {}

    def note(rep: FileReport) -> None:
        done[rep.path] = rep
        if progress is not None:
            progress(len(done), total, rep.path)

    def scan_one(item: tuple[str, str]) -> FileReport:
        return scan_file(item[0], item[1], options)

    if jobs > 1 and forkpool.available():
        lost = forkpool.run(work, scan_one, jobs, weights, lambda _i, rep: note(rep))
        for i in lost:
            note(
                FileReport(
                    work[i][1],
                    weights[i],
                    None,
                    "unknown",
                    errors=("the worker process analysing this file died; it was not scanned",),
                )
            )
    elif jobs > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(jobs) as tp:
            for rep in tp.map(scan_one, work):
                note(rep)
    else:
        for item in work:
            note(scan_one(item))

    out: list[FileReport] = []
    by_key = {k: done[d] for k, (_, d) in unique.items()}
    for key, _real, display in aliases:
        rep = by_key[key] if key is not None else done[display]
        if rep.path != display:
            rep = FileReport(
                display, rep.size, rep.sha256, rep.format, rep.metadata, rep.findings, rep.errors
            )
        out.append(rep)
    return out
