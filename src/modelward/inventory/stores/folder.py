"""Shared pieces of the stores that are plain model folders: a bounded walk, items, config paths.

The discovery walk skips every store root (a store covers it), so a folder store must yield every
file the walk would have found there, and more: in a folder that exists to hold models, every
regular file with a model extension is an item, and so is every other file whose header carries a
model or archive magic, whatever its size (a renamed pickle of a few hundred bytes is still found).

Symbolic links to files are items under their path in the store (the scanner reads the target);
``metadata[kind]["link_target"]`` names the target, and ``outside_store`` says when it lies outside
the store. Symbolic links to folders are never followed: each becomes an ``errors`` entry that
names the target, so that nothing is skipped silently.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelward.inventory.stores.base import StoreItem, StoreResult
from modelward.inventory.walk import HEAD_BYTES, looks_like_model, model_extension
from modelward.models import CollectError, Finding, Source
from modelward.scan.rules import Rule

MAX_DEPTH = 8
MAX_FILES = 100_000
SKIP_NAMES = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules"})

_FILE_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_BINARY", 0)
)


@dataclass(frozen=True, slots=True)
class Found:
    """A model file in a store folder."""

    rel: str
    """Its path below the store root, ``/``-separated."""
    path: str
    """Its path in the store (a symbolic link stays the link)."""
    size: int
    link_target: str | None = None
    """The real path of the file a symbolic link names."""
    outside: bool = False
    """The link's target lies outside the store root."""


def finding(r: Rule, message: str, evidence: str = "", location: str = "") -> Finding:
    return Finding(
        rule=r.id,
        severity=r.severity,
        message=message,
        evidence=evidence[:500],
        location=location,
        remediation=r.remediation,
    )


def within(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it (both real, normalised paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _sniff(path: str) -> bool:
    """Whether the regular file at ``path`` starts like a model (never blocks on a FIFO)."""
    try:
        fd = os.open(path, _FILE_FLAGS)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size < 4:
            return False
        head = os.pread(fd, HEAD_BYTES, 0) if hasattr(os, "pread") else os.read(fd, HEAD_BYTES)
    except OSError:
        return False
    finally:
        os.close(fd)
    return looks_like_model(head, st.st_size)


def is_model(name: str, path: str) -> bool:
    """A model extension, or a model header (in a store folder, sniffed whatever the size)."""
    return model_extension(name) or _sniff(path)


def model_files(
    root: Path,
    result: StoreResult,
    *,
    max_depth: int = MAX_DEPTH,
    prune: Callable[[str], bool] | None = None,
    accept: Callable[[str, str], bool] = is_model,
) -> list[Found]:
    """The model files below ``root`` (sorted by ``rel``); problems go to ``result.errors``.

    ``prune(rel)`` is asked for each sub-folder (``rel`` ``/``-separated): True skips it.
    ``accept(name, path)`` decides what a regular file is (default: :func:`is_model`).
    """
    out: list[Found] = []
    real_root = os.path.realpath(root)
    stack: list[tuple[str, str, int]] = [(str(root), "", 0)]
    while stack:
        folder, prefix, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            result.errors.append(CollectError(folder, f"cannot list: {exc.strerror or exc}"))
            continue
        for entry in entries:
            if len(out) >= MAX_FILES:
                result.errors.append(
                    CollectError(str(root), f"more than {MAX_FILES} model files; the rest skipped")
                )
                return sorted(out, key=lambda f: f.rel)
            rel = prefix + entry.name
            found = _entry(entry, rel, real_root, result)
            if found is None:
                continue
            if isinstance(found, str):
                if entry.name in SKIP_NAMES or (prune is not None and prune(rel)):
                    continue
                if depth + 1 > max_depth:
                    result.errors.append(
                        CollectError(entry.path, f"deeper than {max_depth} folders; not listed")
                    )
                    continue
                stack.append((entry.path, rel + "/", depth + 1))
                continue
            if accept(entry.name, found.link_target or entry.path):
                out.append(found)
    return sorted(out, key=lambda f: f.rel)


def _entry(
    entry: os.DirEntry[str], rel: str, real_root: str, result: StoreResult
) -> Found | str | None:
    """``"dir"`` for a real folder, a :class:`Found` for a (link to a) regular file, else None."""
    try:
        if entry.is_symlink():
            try:
                st = os.stat(entry.path)
            except OSError as exc:
                if model_extension(entry.name):
                    why = "broken symbolic link" if exc.errno == 2 else exc.strerror or str(exc)
                    result.errors.append(CollectError(entry.path, why))
                return None
            target = os.path.realpath(entry.path)
            if stat.S_ISDIR(st.st_mode):
                result.errors.append(
                    CollectError(
                        entry.path,
                        f"a symbolic link to the folder {target}: not followed "
                        "(inventory that folder as a root to include it)",
                    )
                )
                return None
            if not stat.S_ISREG(st.st_mode):
                return None
            return Found(rel, entry.path, st.st_size, target, not within(target, real_root))
        if entry.is_dir(follow_symlinks=False):
            return "dir"
        if not entry.is_file(follow_symlinks=False):
            return None
        return Found(rel, entry.path, entry.stat(follow_symlinks=False).st_size)
    except OSError as exc:
        result.errors.append(CollectError(entry.path, exc.strerror or str(exc)))
        return None


def item(
    kind: str,
    found: Found,
    *,
    name: str | None,
    repo: str | None = None,
    revision: str | None = None,
    meta: dict[str, Any] | None = None,
    findings: tuple[Finding, ...] = (),
) -> StoreItem:
    """The :class:`StoreItem` of a found file; store metadata goes under ``metadata[kind]``."""
    data: dict[str, Any] = {"path_in_store": found.rel, **(meta or {})}
    if found.link_target is not None:
        data["link_target"] = found.link_target
        if found.outside:
            data["outside_store"] = True
    return StoreItem(
        path=found.path,
        source=Source(kind, name=name, repo=repo, revision=revision),
        metadata={kind: data},
        findings=findings,
    )


def config_target(root: Path, value: str, base: Path | None = None) -> tuple[str, bool]:
    """Where a file named in a store's config lies (never read here), and whether it is inside.

    ``value`` relative is taken from ``base`` (default ``root``); absolute paths, ``~``, ``..``
    and links are resolved lexically and through existing links (``realpath``), so a config that
    names ``../../../etc/shadow`` or a link to it is outside.
    """
    if value.startswith("~"):
        return value, False
    joined = os.path.join(base if base is not None else root, value)
    real = os.path.realpath(joined)
    return real, within(real, os.path.realpath(root))


def under_home(path: Path, home: Path) -> bool:
    """Whether ``path`` lies in ``home`` (lexically, after normalising both)."""
    return within(os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(home)))


def merge_by_path(items: list[StoreItem]) -> list[StoreItem]:
    """One item per path: a config that is also a model by its header keeps both descriptions."""
    out: dict[str, StoreItem] = {}
    for it in items:
        prev = out.get(it.path)
        if prev is None:
            out[it.path] = it
            continue
        metadata = {k: {**prev.metadata.get(k, {}), **v} for k, v in it.metadata.items()}
        out[it.path] = StoreItem(
            path=prev.path,
            source=prev.source if prev.source.name else it.source,
            sha256=prev.sha256 or it.sha256,
            license=prev.license or it.license,
            metadata={**prev.metadata, **metadata},
            findings=prev.findings + it.findings,
        )
    return list(out.values())
