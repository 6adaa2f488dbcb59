"""Walks the paths to scan, identifies each file by content and runs its detector.

Small files are read once (hash and analysis share the bytes); large files are memory-mapped for
analysis and hashed with ``readinto``. Several files are spread over the cores by forking (see
:mod:`.forkpool`), balanced by size so that two large files are hashed on two cores; where
forking is not available, threads overlap the hashing (hashlib releases the GIL).

A file reached under several names (hard links, a Hugging Face blob and its snapshot link, a hub
revision's identical files) has its content analysed once; the checks of content against name
(masquerade, empty, unrecognised) are made for every name, so each name gets exactly the report
a scan of it alone gives.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from modelward.errors import UsageError
from modelward.models import FileReport, Finding, ScanReport, Severity, Sha256
from modelward.scan import forkpool, masquerade, registry
from modelward.scan.context import MAX_FINDINGS_PER_RULE, Limits, NestedResult, ScanContext
from modelward.scan.detector import Detector
from modelward.scan.rules import EMPTY, INTERNAL, MASQUERADE, SCAN_LIMIT, UNRECOGNIZED, Rule
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
    return with_name(analyse_content(path, display, options), path, display)


# ------------------------------------------------------------------ content, then name
# A file's report is its content analysis (shared by every name of the same inode) plus the
# checks of that content against one name (its extension's promise), made per name. Where the
# content analysis itself reads the name or the folder (see ``_READS``), a name for which these
# differ gets its own content analysis.

_Stage = Literal["unopened", "empty", "unidentified", "scanned"]

_READS: dict[str, frozenset[str]] = {
    "compressed": frozenset({"name"}),  # the member's name is the file's name less .gz/.xz ...
    "hfconfig": frozenset({"name"}),  # a Jinja file is a chat template by its name
    "onnx": frozenset({"folder"}),  # external data files are looked up beside the file
}
"""What of the file's location the top-level analysis of each format module reads
(``ctx.path``, ``ctx.folder``); a test keeps this in step with the modules."""


@dataclass(frozen=True, slots=True)
class Content:
    """The analysis of a file's bytes, before the checks of its name."""

    report: FileReport
    """Findings, metadata, hash and format of the content (no name-dependent finding)."""
    stage: _Stage
    """How far the analysis got: name checks differ for an empty or unidentified file."""
    reads: frozenset[str] = frozenset()
    """What of its location the analysis used: ``extension`` (detector chosen by it), ``name``
    (the file name), ``folder`` (siblings). Another name may share it if :func:`name_key` agrees."""
    key: tuple[str, ...] = ()
    """``name_key(reads, path)`` of the path analysed."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    stage: _Stage
    format: str
    reads: frozenset[str] = frozenset()


def _reads_of(det: Detector) -> frozenset[str]:
    return _READS.get(type(det).__module__.rsplit(".", 1)[-1], frozenset())


def name_key(reads: frozenset[str], path: str) -> tuple[str, ...]:
    """The parts of ``path`` that a content analysis which ``reads`` them depends on."""
    key: list[str] = []
    if "extension" in reads:  # the detector is the extension's, and reads what it reads
        claimed = registry.claimed_by_extension(os.path.basename(path))
        key.append(type(claimed[0]).__name__ if claimed else "")
        reads = reads | (_reads_of(claimed[0]) if claimed else frozenset())
    if "name" in reads:
        key.append(os.path.basename(path))
    if "folder" in reads:
        key.append(os.path.realpath(os.path.dirname(os.path.abspath(path))))
    return tuple(key)


def analyse_content(path: str, display: str, options: ScanOptions) -> Content:
    """Analyse the file at ``path`` (reported as ``display``) by content; no name checks."""
    try:
        src = FileSource(path)
    except NotRegularFile as exc:
        return _unopened(display, f"{exc}: skipped")
    except OSError as exc:
        return _unopened(display, f"cannot read: {exc.strerror}")
    with src:
        ctx = ScanContext(path, options.limits, dispatch)
        outcome = _analyse(ctx, src, os.path.basename(path))
        digest: Sha256 | None = None
        if options.hash:
            try:
                digest = _sha256(src)
            except OSError as exc:
                ctx.error(f"cannot hash: {exc.strerror}")
        metadata = ctx.metadata
        dropped = ctx.suppressed()
        if dropped:
            metadata["suppressed_findings"] = dropped
        report = FileReport(
            path=display,
            size=src.size,
            sha256=digest,
            format=outcome.format,
            metadata=metadata,
            findings=tuple(sorted(ctx.findings, key=lambda f: -f.severity)),
            errors=tuple(ctx.errors),
        )
        return Content(report, outcome.stage, outcome.reads, name_key(outcome.reads, path))


def _unopened(display: str, error: str, size: int = 0) -> Content:
    return Content(FileReport(display, size, None, "unknown", errors=(error,)), "unopened")


def with_name(content: Content, path: str, display: str) -> FileReport:
    """The report of ``content`` under the name ``path`` (shown as ``display``): the content's
    findings plus those of checking it against the name, exactly as a scan of ``path`` alone."""
    rep = content.report
    extra = name_findings(os.path.basename(path), content.stage, rep.format)
    if not extra and rep.path == display:
        return rep
    findings = list(rep.findings)
    metadata = rep.metadata
    for rule, message, evidence, severity in extra:
        if any(f.rule == rule.id and f.evidence == evidence and not f.location for f in findings):
            continue  # ScanContext.report drops a duplicate
        suppressed = dict(metadata.get("suppressed_findings") or {})
        count = sum(f.rule == rule.id for f in findings) + suppressed.get(rule.id, 0)
        if count >= MAX_FINDINGS_PER_RULE:  # ScanContext.report's cap
            suppressed[rule.id] = suppressed.get(rule.id, 0) + 1
            metadata = {**metadata, "suppressed_findings": suppressed}
            continue
        findings.append(
            Finding(rule.id, severity, message, evidence=evidence, remediation=rule.remediation)
        )
    return FileReport(
        path=display,
        size=rep.size,
        sha256=rep.sha256,
        format=rep.format,
        metadata=metadata,
        findings=tuple(sorted(findings, key=lambda f: -f.severity)),
        errors=rep.errors,
    )


_NameFinding = tuple[Rule, str, str, Severity]


def name_findings(name: str, stage: _Stage, fmt: str) -> list[_NameFinding]:
    """What checking content that got to ``stage`` as ``fmt`` against ``name`` finds."""
    expected = masquerade.expected_formats(name)
    if expected is None or stage == "unopened":
        return []
    ext = os.path.splitext(name)[1]
    if stage == "empty":
        return [(EMPTY, f"The file is empty but its name ends in {ext}.", ext, EMPTY.severity)]
    if stage == "unidentified":
        message = f"The content is of no known format, but the name ends in {ext}."
        return [(UNRECOGNIZED, message, ext, UNRECOGNIZED.severity)]
    if fmt in expected or fmt == "unknown":
        return []
    severity = Severity.HIGH if fmt in masquerade.CODE_CAPABLE else Severity.LOW
    message = (
        f"Content is {fmt} but the name ends in {ext}: a loader chosen by extension "
        f"would see something else than a scanner chosen by it."
    )
    return [(MASQUERADE, message, f"{ext} -> {fmt}"[:500], severity)]


def dispatch(ctx: ScanContext, src: Source, name: str) -> NestedResult:
    """Identify ``src`` by content, scan it, and check the format against ``name``'s extension."""
    outcome = _analyse(ctx, src, name)
    for rule, message, evidence, severity in name_findings(name, outcome.stage, outcome.format):
        ctx.report(rule, message, evidence=evidence, severity=severity)
    return NestedResult(outcome.format, ctx.metadata)


def _analyse(ctx: ScanContext, src: Source, name: str) -> _Outcome:
    """Identify ``src`` by content and scan it; ``name`` only picks a detector for content of no
    known format (so that it can say why it is not what the extension promises)."""
    if src.size == 0:
        return _Outcome("empty", "unknown")
    det = registry.identify(src, name)
    if det is not None:
        reads = _reads_of(det)
    else:  # the name picks the detector (and so what of the name it reads: see name_key)
        reads = frozenset({"extension"})
        claimed = registry.claimed_by_extension(name)
        if not claimed:
            return _Outcome("unidentified", "unknown", reads)
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
    return _Outcome("scanned", ctx.format or det.format, reads)


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
_Inode = tuple[int, int]


def _run(
    targets: list[tuple[str, str]], options: ScanOptions, progress: Progress | None
) -> list[FileReport]:
    # The same file reached twice (a Hugging Face snapshot link and its blob) is analysed once;
    # every name gets its own name checks, and its own analysis if that read the name and the
    # names differ in what it read.
    inodes: list[_Inode | None] = []
    sizes: list[int] = []
    first: dict[_Inode, int] = {}
    for i, (real, _display) in enumerate(targets):
        try:
            st = os.stat(real)
        except OSError:
            inodes.append(None)
            sizes.append(0)
            continue
        inode = (st.st_dev, st.st_ino)
        inodes.append(inode)
        sizes.append(st.st_size)
        first.setdefault(inode, i)

    analysed: dict[int, Content] = {}
    runner = _Runner(targets, sizes, options, progress, analysed)
    runner.run([i for i, k in enumerate(inodes) if k is None or first[k] == i])

    source: list[int] = list(range(len(targets)))
    by_key: dict[tuple[_Inode, tuple[str, ...]], int] = {}
    again: list[int] = []
    for i, node in enumerate(inodes):
        if node is None or i in analysed:
            continue
        head = analysed[first[node]]
        if not head.reads:
            source[i] = first[node]
            continue
        by_key.setdefault((node, head.key), first[node])
        key = name_key(head.reads, targets[i][0])
        source[i] = by_key.setdefault((node, key), i)
        if source[i] == i:
            again.append(i)
    runner.run(again)

    return [
        with_name(analysed[source[i]], real, display) for i, (real, display) in enumerate(targets)
    ]


class _Runner:
    """Content analysis of chosen targets over the cores, with progress over all rounds."""

    def __init__(
        self,
        targets: list[tuple[str, str]],
        sizes: list[int],
        options: ScanOptions,
        progress: Progress | None,
        out: dict[int, Content],
    ) -> None:
        self.targets, self.sizes, self.options, self.progress = targets, sizes, options, progress
        self.out = out
        self.total = 0

    def run(self, indices: list[int]) -> None:
        if not indices:
            return
        self.total += len(indices)
        work = [self.targets[i] for i in indices]
        weights = [self.sizes[i] for i in indices]
        jobs = min(self.options.jobs or os.cpu_count() or 1, len(work))
        options = self.options

        def scan_one(item: tuple[str, str]) -> Content:
            return analyse_content(item[0], item[1], options)

        def note(k: int, content: Content) -> None:
            self.out[indices[k]] = content
            if self.progress is not None:
                self.progress(len(self.out), self.total, content.report.path)

        if jobs > 1 and forkpool.available():
            lost = forkpool.run(work, scan_one, jobs, weights, note)
            for k in lost:
                died = "the worker process analysing this file died; it was not scanned"
                note(k, _unopened(work[k][1], died, weights[k]))
        elif jobs > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(jobs) as tp:
                for k, content in enumerate(tp.map(scan_one, work)):
                    note(k, content)
        else:
            for k, item in enumerate(work):
                note(k, scan_one(item))
