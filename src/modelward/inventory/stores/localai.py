"""LocalAI's models folder: model files plus the YAML configs that name them.

Location: ``LOCALAI_MODELS_PATH`` or ``MODELS_PATH`` (the ``--models-path`` variables), else
``<base>/models``: ``~/LocalAI/models`` for a checkout in the home, ``/usr/share/local-ai/models``
for the install script's service (verify on new releases). Each ``*.yaml``/``*.yml`` config in the
folder is read bounded with :mod:`yamlish` for ``name``, ``backend``, ``parameters.model`` (or a
top-level ``model``) and ``mmproj``. A named file inside the folder gives its item's
``source.name`` (the config's ``name``); a URL (``huggingface://``, ``https://``, ``ollama://``) is
recorded, not fetched; a path that leads out of the folder (absolute, ``..`` or a link) is never
read: the config itself becomes an item with a ``localai.model-outside-store`` finding (medium).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelward.inventory.fsread import read_bounded
from modelward.inventory.stores import yamlish
from modelward.inventory.stores.base import StoreItem, StoreResult, env_path
from modelward.inventory.stores.folder import (
    config_target,
    finding,
    item,
    merge_by_path,
    model_files,
)
from modelward.models import CollectError, Finding, Severity, Source
from modelward.scan.rules import rule

MAX_CONFIG = 256 << 10
MAX_CONFIGS = 10_000
CONFIG_SUFFIXES = (".yaml", ".yml")
MODEL_KEYS = (("parameters.model", "model"), ("model", "model"), ("mmproj", "projector"))

OUTSIDE = rule(
    "localai.model-outside-store",
    Severity.MEDIUM,
    "A LocalAI model config names a file outside the models folder",
    "LocalAI would load that file as a model: check who wrote the config and why it points "
    "there; keep models inside the models folder and remove the config if it is not yours.",
)


@dataclass(frozen=True, slots=True)
class Ref:
    """A model file a config names."""

    config: str
    name: str | None
    backend: str | None
    role: str


def model_refs(doc: dict[str, str]) -> list[tuple[str, str]]:
    """``(role, value)`` of each model file a config entry names (``parameters.model`` first)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, role in MODEL_KEYS:
        value = doc.get(key)
        if value and value not in seen and "\x00" not in value:
            seen.add(value)
            out.append((role, value))
    return out


def is_url(value: str) -> bool:
    return "://" in value


class LocalAIStore:
    """LocalAI's models folder."""

    kind = "localai"

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        out: list[Path] = []
        for name in ("LOCALAI_MODELS_PATH", "MODELS_PATH"):
            p = env_path(env, name)
            if p is not None:
                out.append(p)
        out.append(home / "LocalAI" / "models")
        out.append(Path("/usr/share/local-ai/models"))
        return list(dict.fromkeys(out))

    def collect(self, root: Path) -> StoreResult:
        result = StoreResult()
        refs: dict[str, Ref] = {}
        for config in _configs(root, result):
            _read_config(root, config, refs, result)
        for found in model_files(root, result):
            ref = refs.get(os.path.realpath(found.path))
            meta: dict[str, Any] = {}
            name: str | None = found.rel
            if ref is not None:
                name = ref.name or found.rel
                meta = {"config": ref.config, "backend": ref.backend, "role": ref.role}
            result.items.append(item(self.kind, found, name=name, meta=meta))
        result.items = merge_by_path(result.items)
        return result


def _configs(root: Path, result: StoreResult) -> list[str]:
    try:
        with os.scandir(root) as it:
            names = sorted(
                e.path for e in it if e.name.lower().endswith(CONFIG_SUFFIXES) and _file(e)
            )
    except OSError as exc:
        result.errors.append(CollectError(str(root), f"cannot list: {exc.strerror or exc}"))
        return []
    return names[:MAX_CONFIGS]


def _file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _read_config(root: Path, config: str, refs: dict[str, Ref], result: StoreResult) -> None:
    raw = read_bounded(config, MAX_CONFIG)
    if isinstance(raw, str):
        result.errors.append(CollectError(config, raw))
        return
    findings: list[Finding] = []
    remote: list[str] = []
    names: list[str] = []
    for doc in yamlish.entries(raw.decode("utf-8", "replace"), ("parameters",)):
        name = doc.get("name")
        if name:
            names.append(name[:200])
        for role, value in model_refs(doc):
            if is_url(value):
                remote.append(value[:300])
                continue
            target, inside = config_target(root, value)
            if not inside:
                findings.append(
                    finding(
                        OUTSIDE,
                        f"The config{' of ' + name if name else ''} names a {role} file outside "
                        "the models folder; it was not read.",
                        value,
                        config,
                    )
                )
                continue
            refs.setdefault(
                target, Ref(config, name[:200] if name else None, doc.get("backend"), role)
            )
    if findings:
        result.items.append(
            StoreItem(
                path=config,
                source=Source("localai", name=names[0] if names else None),
                metadata={"localai": {"role": "config", "names": names, "remote": remote}},
                findings=tuple(findings),
            )
        )


STORE = LocalAIStore()
