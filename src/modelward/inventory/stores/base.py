"""The interface of a runtime's model store (Ollama, Hugging Face cache, ...) and its results."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from modelward.models import CollectError, Finding, License, Sha256, Source


@dataclass(frozen=True, slots=True)
class StoreItem:
    """A model file as a store describes it, before it is scanned.

    ``sha256`` is what the store's naming says (Ollama blob names, Hugging Face LFS blob names);
    ``license`` and ``metadata`` are what the store records about the model (Ollama license
    layer and config blob, ...); ``findings`` are the store's own (orphan blobs, bad digests).
    """

    path: str
    source: Source
    sha256: Sha256 | None = None
    license: License | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()


@dataclass(slots=True)
class StoreResult:
    """What one store location yielded: items, plus errors and store-level findings."""

    items: list[StoreItem] = field(default_factory=list)
    errors: list[CollectError] = field(default_factory=list)


class Store(Protocol):
    """A runtime's on-disk model store, parsed without the runtime."""

    kind: str

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        """Where this store lives for a user whose home is ``home`` (``env``: their environment)."""
        ...

    def collect(self, root: Path) -> StoreResult:
        """Parse the store at ``root`` (one of ``locations``, or a folder ``spot`` named); never
        raise for bad content."""
        ...


class Spots(Protocol):
    """The optional part of a :class:`Store`: recognising its layout in any folder (not a home).

    ``spot(folder, name)`` is asked about each sub-folder the discovery walk is about to enter
    (``name`` is its base name): it returns the store root that ``folder`` belongs to (``folder``
    itself or its parent), which the walk then leaves to :meth:`Store.collect`, or None. It is
    asked about every folder of a tree, so it decides by ``name`` first and touches the disk only
    for a likely name (a ``stat`` or two), and it never raises.
    """

    def spot(self, folder: str, name: str) -> str | None: ...


Spotter = Callable[[str, str], str | None]

_NO_HOME = Path(os.sep, ".modelward-no-such-home")
"""A home that cannot exist: what ``locations`` gives below it are the store's home-relative places."""


def spotter(store: Store) -> Spotter | None:
    """``store.spot`` when it has one; else a spotter of the places ``store.locations`` gives under
    a home that have two folder names or more (``.cache/llama.cpp``, ``ComfyUI/models``): such a
    folder is the store wherever the home-like folder holding it is (a backup, a mounted disk).
    None when the store has neither."""
    spot = getattr(store, "spot", None)
    if callable(spot):
        return cast(Spotter, spot)
    places: dict[str, list[tuple[str, ...]]] = {}
    try:
        homeward = store.locations(_NO_HOME, {})
    except Exception:  # a store's bug must not stop the inventory
        return None
    for loc in homeward:
        try:
            parts = loc.relative_to(_NO_HOME).parts
        except ValueError:  # a system-wide location (/usr/share/ollama/...): not home-relative
            continue
        if len(parts) >= 2:
            places.setdefault(parts[-1], []).append(parts[:-1])
    return _PlaceSpotter(places) if places else None


@dataclass(frozen=True, slots=True)
class _PlaceSpotter:
    places: dict[str, list[tuple[str, ...]]]
    """Last folder name -> the folder names before it."""

    def __call__(self, folder: str, name: str) -> str | None:
        befores = self.places.get(name)
        if befores is None:
            return None
        parts = Path(folder).parts[:-1]
        for before in befores:
            if parts[len(parts) - len(before) :] == before and len(parts) > len(before):
                return folder
        return None


def env_path(env: Mapping[str, str], name: str) -> Path | None:
    """``env[name]`` as a path with ``~`` expanded, or None when unset or empty."""
    value = env.get(name, "").strip()
    return Path(os.path.expanduser(value)) if value else None


def iter_existing(paths: list[Path]) -> Iterator[Path]:
    """The folders among ``paths`` that exist, each once."""
    seen: set[str] = set()
    for p in paths:
        try:
            if p.is_dir():
                key = os.path.realpath(p)
                if key not in seen:
                    seen.add(key)
                    yield p
        except OSError:
            continue
