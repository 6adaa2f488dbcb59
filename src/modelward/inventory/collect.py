"""Collects an inventory: runtime stores, loose model files, hashes (cached), scan findings,
licenses and which files are in use."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelward.errors import UsageError
from modelward.inventory import host
from modelward.inventory.stores import StoreItem, stores
from modelward.models import (
    UNKNOWN_LICENSE,
    Artifact,
    CollectError,
    FileReport,
    Inventory,
    License,
    Package,
    Runtime,
    Sha256,
    Source,
)

if TYPE_CHECKING:  # sqlite3 and the process table are imported only when used
    from modelward.inventory.hashcache import HashCache
    from modelward.inventory.inuse import InUse

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phase is ``walk``, ``scan``."""


@dataclass(frozen=True, slots=True)
class InventoryOptions:
    """How to collect. The defaults suit a laptop run by its user."""

    hash: bool = True
    """SHA-256 of every artifact (free when a store names it; cached by inode, size and mtime)."""
    processes: bool = True
    """Look at running processes (which models are in use)."""
    size_floor: int = 16 << 20
    """Files without a model extension are sniffed only from this size up."""
    jobs: int = 0
    """Worker processes for scanning and hashing; 0 means one per core."""
    cache: Path | None = None
    """The hash cache database (default: the user's cache folder); ``use_cache=False`` disables it."""
    use_cache: bool = True
    runtimes: bool = True
    """Look for inference runtimes (installed and running) and libraries in Python environments."""
    probes: bool = True
    """Ask a running runtime's loopback API for its version and loaded models (127.0.0.1 only)."""
    system_packages: bool = True
    """Include the interpreter's and the system's site-packages in the library search."""
    env: dict[str, str] | None = field(default=None, compare=False)
    """The environment that locates the current user's stores (default: ``os.environ``)."""


def default_roots() -> list[Path]:
    """The user's home; every home when run as root."""
    return host.all_homes() if host.is_root() else [Path.home()]


def collect(
    roots: Sequence[str | os.PathLike[str]] | None = None,
    options: InventoryOptions | None = None,
    progress: Progress | None = None,
) -> Inventory:
    """Inventory the models under ``roots`` (default: :func:`default_roots`) and their homes' stores.

    Never raises for a problem with the machine's content: unreadable folders, corrupt
    manifests and vanishing files become ``errors`` entries or findings.
    """
    options = options or InventoryOptions()
    env = dict(os.environ) if options.env is None else options.env
    root_paths = [Path(r) for r in roots] if roots else default_roots()
    for r in root_paths:
        if not r.exists():
            raise UsageError(f"{r}: no such file or folder")
    errors: list[CollectError] = []
    items = _store_items(root_paths, env, errors)
    store_roots = {os.path.realpath(p) for p in items.roots}
    _loose_items(root_paths, items, store_roots, options, errors, progress)
    in_use = _in_use(errors) if options.processes else None
    artifacts = _identify(items.by_path, options, errors, in_use, progress)
    runtimes: list[Runtime] = []
    packages: list[Package] = []
    if options.runtimes:
        from modelward.inventory.packages import find_packages
        from modelward.inventory.runtimes import collect_runtimes

        homes = _homes_among(root_paths) or None
        runtimes = collect_runtimes(
            env,
            probes=options.probes and options.processes,
            errors=errors,
            homes=homes,
            processes=options.processes,
        )
        packages = find_packages(root_paths, homes or [], errors, system=options.system_packages)
        if options.processes:
            runtimes = _with_gpu(runtimes)
    return Inventory(
        host=host.host_info(),
        artifacts=tuple(sorted(artifacts, key=lambda a: (a.source.kind, a.path))),
        runtimes=tuple(runtimes),
        packages=tuple(packages),
        errors=tuple(errors),
    )


def _with_gpu(runtimes: list[Runtime]) -> list[Runtime]:
    """Attach the GPU memory of each running runtime's processes (NVML, when present)."""
    from dataclasses import replace

    from modelward.inventory.gpu import gpu_processes

    used = gpu_processes() if any(r.pids for r in runtimes) else {}
    if not used:
        return runtimes
    return [
        replace(r, gpu_memory=sum(used.get(p, 0) for p in r.pids)) if set(r.pids) & set(used) else r
        for r in runtimes
    ]


def _homes_among(roots: list[Path]) -> list[Path]:
    homes = host.known_homes()
    return [homes[r] for r in (os.path.realpath(p) for p in roots) if r in homes]


@dataclass(slots=True)
class _Items:
    by_path: dict[str, StoreItem] = field(default_factory=dict)
    roots: list[Path] = field(default_factory=list)

    def add(self, item: StoreItem) -> None:
        key = os.path.realpath(item.path)
        # A file seen by a store and by the walk keeps the store's richer description.
        if key not in self.by_path or self.by_path[key].source.kind == "file":
            self.by_path[key] = item


def _store_items(roots: list[Path], env: dict[str, str], errors: list[CollectError]) -> _Items:
    items = _Items()
    homes = host.known_homes()
    me = os.path.realpath(Path.home())
    seen: set[str] = set()
    for root in roots:
        real = os.path.realpath(root)
        if real not in homes:
            continue  # a plain folder: only its loose files
        for store in stores():
            for loc in store.locations(homes[real], env if real == me else {}):
                key = os.path.realpath(loc)
                if key in seen or not loc.is_dir():
                    continue
                seen.add(key)
                items.roots.append(loc)
                result = store.collect(loc)
                errors.extend(result.errors)
                for item in result.items:
                    items.add(item)
    return items


def _loose_items(
    roots: list[Path],
    items: _Items,
    skip: set[str],
    options: InventoryOptions,
    errors: list[CollectError],
    progress: Progress | None,
) -> None:
    from modelward.inventory.walk import find_model_files

    def on_error(path: str, message: str) -> None:
        errors.append(CollectError(path, message))

    local_dirs: dict[str, Path | None] = {}
    found = find_model_files(roots, skip=skip, on_error=on_error, size_floor=options.size_floor)
    for n, (path, _st) in enumerate(found, 1):
        items.add(StoreItem(path=path, source=Source("file")))
        _note_local_dir(os.path.dirname(path), roots, local_dirs)
        if progress is not None and n % 256 == 0:
            progress("walk", n, 0)
    folders = {d for d in local_dirs.values() if d is not None}
    if folders:
        from modelward.inventory.stores.huggingface import local_dir_items

        for folder in sorted(folders):
            result = local_dir_items(folder)
            errors.extend(result.errors)
            for item in result.items:
                items.add(item)


def _note_local_dir(folder: str, roots: list[Path], seen: dict[str, Path | None]) -> None:
    """Find the ``hf download --local-dir`` folder (one with ``.cache/huggingface/download``)
    holding ``folder``, if any, looking up to the scanned root; memoised per folder."""
    tops = {os.path.realpath(r) for r in roots}
    chain: list[str] = []
    current = folder
    found: Path | None = None
    while current not in seen:
        chain.append(current)
        if os.path.isdir(os.path.join(current, ".cache", "huggingface", "download")):
            found = Path(current)
            break
        parent = os.path.dirname(current)
        if current in tops or parent == current:
            break
        current = parent
    else:
        found = seen[current]
    for c in chain:
        seen[c] = found


def _in_use(errors: list[CollectError]) -> InUse | None:
    """Taken before any scan worker starts (the scanner maps the files it reads)."""
    from modelward.inventory.inuse import files_in_use

    try:
        return files_in_use()
    except Exception as exc:  # psutil missing or the process table unreadable: say so, go on
        errors.append(CollectError("processes", f"could not read the process table: {exc}"))
        return None


def _identify(
    by_path: dict[str, StoreItem],
    options: InventoryOptions,
    errors: list[CollectError],
    in_use: InUse | None,
    progress: Progress | None,
) -> list[Artifact]:
    """Scan every item (hashing what neither its store nor the cache knows) into artifacts."""
    from modelward.scan import forkpool
    from modelward.scan.engine import ScanOptions, scan_file

    cache = _open_cache(options, errors)
    paths = sorted(by_path)
    known: dict[str, Sha256] = {}
    stats: dict[str, os.stat_result] = {}
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as exc:
            errors.append(CollectError(p, f"cannot read: {exc.strerror}"))
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        stats[p] = st
        given = by_path[p].sha256
        if given is not None:
            known[p] = given
        elif options.hash and cache is not None:
            hit = cache.get(st)
            if hit is not None:
                known[p] = Sha256(hit)
    work = [p for p in paths if p in stats]
    need_hash = {p for p in work if options.hash and p not in known}
    reports: dict[str, FileReport] = {}
    total = len(work)

    def scan_one(p: str) -> FileReport:
        return scan_file(p, p, ScanOptions(hash=p in need_hash))

    def note(_i: int, rep: FileReport) -> None:
        reports[rep.path] = rep
        if progress is not None:
            progress("scan", len(reports), total)

    jobs = min(options.jobs or os.cpu_count() or 1, max(1, len(work)))
    weights = [stats[p].st_size if p in need_hash else 0 for p in work]
    if jobs > 1 and forkpool.available():
        for i in forkpool.run(work, scan_one, jobs, weights, note):
            errors.append(CollectError(work[i], "the worker analysing this file died"))
    else:
        for i, p in enumerate(work):
            note(i, scan_one(p))

    artifacts: list[Artifact] = []
    fresh: list[tuple[os.stat_result, str]] = []
    for p in work:
        rep = reports.get(p)
        if rep is None:
            continue
        item = by_path[p]
        digest = known.get(p) or rep.sha256
        if rep.sha256 is not None and p in need_hash:
            if _unchanged(p, stats[p]):
                fresh.append((stats[p], rep.sha256))
            else:  # written to while hashed: report it, cache nothing
                errors.append(CollectError(p, "the file changed while it was being hashed"))
                digest = None
        for e in rep.errors:
            errors.append(CollectError(p, e))
        metadata = {**rep.metadata, **item.metadata}
        artifacts.append(
            Artifact(
                path=item.path,
                size=stats[p].st_size,
                sha256=digest,
                format=rep.format,
                source=item.source,
                license=_license(item, rep, p),
                metadata=metadata,
                findings=tuple(item.findings) + rep.findings,
                in_use=in_use is not None
                and bool(in_use.pids(p, stats[p]) or in_use.pids(item.path)),
            )
        )
    if cache is not None:
        try:
            cache.put_many(fresh)
        finally:
            cache.close()
    return artifacts


def _unchanged(path: str, before: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_ino, now.st_size, now.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )


def _open_cache(options: InventoryOptions, errors: list[CollectError]) -> HashCache | None:
    if not (options.hash and options.use_cache):
        return None
    from modelward.inventory.hashcache import HashCache

    try:
        cache = HashCache(options.cache)
        if cache.status:  # moved aside as corrupt, or locked: the run goes on without it
            errors.append(CollectError(str(options.cache or "hash cache"), cache.status))
        return cache
    except Exception as exc:  # a broken cache costs speed, never the run
        errors.append(
            CollectError(str(options.cache or "hash cache"), f"hash cache unusable: {exc}")
        )
        return None


def _license(item: StoreItem, rep: FileReport, path: str) -> License:
    if item.license is not None:
        return item.license
    from modelward.inventory import license as lic

    found = lic.from_gguf_metadata(rep.metadata) if rep.format == "gguf" else None
    if found is None:
        found = lic.near(Path(path))
    return found or UNKNOWN_LICENSE
