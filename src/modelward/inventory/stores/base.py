"""The interface of a runtime's model store (Ollama, Hugging Face cache, ...) and its results."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
        """Parse the store at ``root`` (one of ``locations``); never raise for bad content."""
        ...


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
