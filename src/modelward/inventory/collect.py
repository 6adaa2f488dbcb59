"""Collects an inventory: runtime stores, loose model files, hashes (cached), scan findings,
licenses and which files are in use."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelward.errors import UsageError
from modelward.inventory import host
from modelward.inventory.stores import Store, StoreItem, stores
from modelward.inventory.stores.base import Spotter, spotter
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
    parsed: set[str] = field(default_factory=set)
    """Real paths of the store roots parsed."""

    def add(self, item: StoreItem) -> None:
        key = os.path.realpath(item.path)
        # A file seen by a store and by the walk keeps the store's richer description.
        if key not in self.by_path or self.by_path[key].source.kind == "file":
            self.by_path[key] = item


def _store_items(roots: list[Path], env: dict[str, str], errors: list[CollectError]) -> _Items:
    """The stores of the roots that are homes, then those that lie at or below any root: named
    by the current user's environment or home (``HF_HUB_CACHE=/data/hf/hub`` with root ``/data``),
    or a root that is a store itself. Stores further below are spotted by the walk."""
    items = _Items()
    homes = host.known_homes()
    me_home = Path.home()
    me = os.path.realpath(me_home)
    plain: list[str] = []
    for root in roots:
        real = os.path.realpath(root)
        if real not in homes:
            plain.append(real)
            continue
        for store in stores():
            for loc in store.locations(homes[real], env if real == me else {}):
                _parse_store(store, loc, items, errors)
    if not plain:
        return items
    for store in stores():
        for loc in store.locations(me_home, env):
            if any(_within(os.path.realpath(loc), r) for r in plain):
                _parse_store(store, loc, items, errors)
        spot = spotter(store)
        for real in plain:
            if spot is not None and spot(real, os.path.basename(real)) == real:
                _parse_store(store, Path(real), items, errors)
    return items


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _parse_store(store: Store, loc: Path, items: _Items, errors: list[CollectError]) -> None:
    """Parse the store at ``loc`` once (by real path); a folder that does not exist is no store."""
    key = os.path.realpath(loc)
    if key in items.parsed or not loc.is_dir():
        return
    items.parsed.add(key)
    items.roots.append(loc)
    result = store.collect(loc)
    errors.extend(result.errors)
    for item in result.items:
        items.add(item)


def _loose_items(
    roots: list[Path],
    items: _Items,
    skip: set[str],
    options: InventoryOptions,
    errors: list[CollectError],
    progress: Progress | None,
) -> None:
    def on_error(path: str, message: str) -> None:
        errors.append(CollectError(path, message))

    local_dirs: dict[str, Path | None] = {}
    spotters = [(store, spot) for store in stores() if (spot := spotter(store)) is not None]
    spotted: dict[str, Store] = {}
    found = _walk_spotting(roots, skip, on_error, options.size_floor, spotters, spotted)
    for n, (path, _st) in enumerate(found, 1):
        items.add(StoreItem(path=path, source=Source("file")))
        _note_local_dir(os.path.dirname(path), roots, local_dirs)
        if progress is not None and n % 256 == 0:
            progress("walk", n, 0)
    for store_root, store in sorted(spotted.items()):
        _parse_store(store, Path(store_root), items, errors)
    folders = {d for d in local_dirs.values() if d is not None}
    if folders:
        from modelward.inventory.stores.huggingface import local_dir_items

        for folder in sorted(folders):
            result = local_dir_items(folder)
            errors.extend(result.errors)
            for item in result.items:
                items.add(item)


def _walk_spotting(
    roots: list[Path],
    skip: set[str],
    on_error: Callable[[str, str], None],
    size_floor: int,
    spotters: list[tuple[Store, Spotter]],
    spotted: dict[str, Store],
) -> Iterator[tuple[str, os.stat_result]]:
    """:func:`~modelward.inventory.walk.find_model_files`, asking the stores about each folder it
    is about to enter: a folder a store claims (it, or its parent, is a store root) is not walked
    and the store root goes to ``spotted`` (one tree walk, not two; no extra listing of folders).

    The walker's ``claim`` hook: the same walker, limits, pseudo-filesystem and mount rules as
    a plain ``find_model_files``.
    """
    from modelward.inventory import walk

    def claim(path: str, name: str) -> bool:
        for store, spot in spotters:
            try:
                root = spot(path, name)
            except (OSError, ValueError):  # a name the platform cannot stat: not a store
                continue
            if root is not None:
                spotted.setdefault(os.path.realpath(root), store)
                return True
        return False

    return walk.find_model_files(
        roots, skip=skip, on_error=on_error, size_floor=size_floor, claim=claim
    )


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
