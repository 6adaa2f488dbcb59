"""Jan's model folders: ``<data>/llamacpp/models/<id>/model.yml`` (newer) and ``models/.../model.json``.

Data folders: ``~/.config/Jan/data`` and ``~/.local/share/Jan/data`` (Linux), ``~/Library/Application
Support/Jan/data`` (macOS), ``~/AppData/Roaming/Jan/data`` (Windows), and the legacy ``~/jan``.
Model folders in each: ``llamacpp/models/<id>/`` (``model.yml``: ``model_path``, ``mmproj_path``,
``name``, relative to the data folder), ``models/<provider>/<id>/`` or legacy ``models/<id>/``
(``model.json``: ``id``, ``name``, ``engine``, ``sources[].url``) and ``mlx/models/<id>/``.
Every model file in those folders is an item named by its model id; a Hub ``url`` in
``model.json`` gives ``source.repo``. A descriptor that names a local file outside the folder
(an import by link, or an altered descriptor) is not followed: the descriptor becomes an item with
a ``jan.model-outside-store`` finding (low: Jan imports by link on purpose).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelward.inventory.fsread import read_bounded
from modelward.inventory.stores import yamlish
from modelward.inventory.stores.base import StoreItem, StoreResult
from modelward.inventory.stores.folder import (
    config_target,
    finding,
    item,
    merge_by_path,
    model_files,
)
from modelward.inventory.stores.llamacpp import hub_url
from modelward.models import CollectError, Finding, Severity, Source
from modelward.scan.rules import rule

MAX_DESCRIPTOR = 1 << 20
MAX_SOURCES = 64
DATA_FOLDERS = (
    (".config", "Jan", "data"),
    (".local", "share", "Jan", "data"),
    ("Library", "Application Support", "Jan", "data"),
    ("AppData", "Roaming", "Jan", "data"),
    ("jan",),
)
MODEL_FOLDERS = (("llamacpp", "models"), ("models",), ("mlx", "models"))

OUTSIDE = rule(
    "jan.model-outside-store",
    Severity.LOW,
    "A Jan model descriptor names a file outside Jan's model folder",
    "Check that the file is the model you imported; inventory its folder as a root to scan it.",
)


def from_json(doc: object) -> dict[str, Any]:
    """``id``, ``name``, ``engine`` and local/remote ``sources`` of a ``model.json`` document."""
    out: dict[str, Any] = {}
    if not isinstance(doc, dict):
        return out
    for key in ("id", "name", "engine", "format"):
        value = doc.get(key)
        if isinstance(value, str) and value:
            out[key] = value[:200]
    urls: list[str] = []
    sources = doc.get("sources")
    if isinstance(sources, list):
        for src in sources[:MAX_SOURCES]:
            url = src.get("url") if isinstance(src, dict) else None
            if isinstance(url, str) and url and "\x00" not in url:
                urls.append(url[:1024])
    out["urls"] = urls
    return out


def from_yml(text: str) -> dict[str, Any]:
    """``model_path``, ``mmproj_path``, ``name`` and ``size_bytes`` of a ``model.yml``."""
    docs = yamlish.entries(text)
    doc = docs[0] if docs else {}
    return {k: doc[k] for k in ("model_path", "mmproj_path", "name", "size_bytes") if k in doc}


class JanStore:
    """Jan's model folders in each data folder."""

    kind = "jan"

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        return [home.joinpath(*data, *models) for data in DATA_FOLDERS for models in MODEL_FOLDERS]

    def collect(self, root: Path) -> StoreResult:
        result = StoreResult()
        data = root.parent.parent if root.parent.name in ("llamacpp", "mlx") else root.parent
        descriptors: dict[str, dict[str, Any]] = {}
        for found in model_files(root, result):
            folder = os.path.dirname(found.path)
            if folder not in descriptors:
                descriptors[folder] = _descriptor(root, data, Path(folder), result)
            desc = descriptors[folder]
            rel_folder = os.path.dirname(found.rel)
            model_id = desc.get("id") or (rel_folder.rsplit("/", 1)[-1] if rel_folder else None)
            repo = None
            for url in desc.get("urls", []):
                hub = hub_url(url)
                if hub is not None:
                    repo = hub["repo"]
                    break
            meta: dict[str, Any] = {
                k: desc[k] for k in ("name", "engine", "format", "descriptor") if k in desc
            }
            meta["engine"] = meta.get("engine") or _engine(root)
            result.items.append(
                item(self.kind, found, name=model_id or found.rel, repo=repo, meta=meta)
            )
        result.items = merge_by_path(result.items)
        return result


def _engine(root: Path) -> str | None:
    return {"llamacpp": "llamacpp", "mlx": "mlx"}.get(root.parent.name)


def _descriptor(root: Path, data: Path, folder: Path, result: StoreResult) -> dict[str, Any]:
    """What ``model.json`` or ``model.yml`` in ``folder`` says; outside paths become a finding."""
    for fname in ("model.yml", "model.json"):
        path = folder / fname
        raw = read_bounded(str(path), MAX_DESCRIPTOR)
        if isinstance(raw, str):
            if not raw.startswith("cannot read: No such file"):
                result.errors.append(CollectError(str(path), raw))
            continue
        text = raw.decode("utf-8", "replace")
        if fname == "model.yml":
            desc = from_yml(text)
            local: list[tuple[str, Any, Path]] = [
                (k, desc[k], data) for k in ("model_path", "mmproj_path") if k in desc
            ]
        else:
            try:
                desc = from_json(json.loads(text))
            except (ValueError, RecursionError):
                result.errors.append(CollectError(str(path), "the descriptor is not valid JSON"))
                return {"descriptor": str(path)}
            local = [("sources.url", u, folder) for u in desc["urls"] if "://" not in u]
        desc["descriptor"] = str(path)
        findings: list[Finding] = []
        for key, value, base in local:
            _target, inside = config_target(root, value, base)
            if not inside:
                findings.append(
                    finding(
                        OUTSIDE,
                        f"The descriptor's {key} names a file outside Jan's model folder; "
                        "it was not read.",
                        value,
                        str(path),
                    )
                )
        if findings:
            result.items.append(
                StoreItem(
                    path=str(path),
                    source=Source("jan", name=desc.get("id") or folder.name),
                    metadata={"jan": {"role": "descriptor"}},
                    findings=tuple(findings),
                )
            )
        return desc
    return {}


STORE = JanStore()
