"""The Ollama model store: manifests, layers and config blobs parsed from disk (no server needed).

Layout (ollama/ollama ``server/images.go``, ``server/modelpath.go``)::

    <models>/manifests/<registry>/<namespace>/<model>/<tag>   JSON manifest (schemaVersion 2)
    <models>/blobs/sha256-<hex>                               content-addressed layers
    <models>/blobs/sha256-<hex>-partial[-N]                   downloads in progress

Decisions:

- One :class:`StoreItem` per weights-bearing blob (``model``, ``projector``, ``adapter`` layers):
  a blob shared by several tags is one item whose ``source.name`` is the first name in sorted order
  and whose ``metadata["ollama"]["names"]`` lists every name (the inventory keys artifacts by path).
- Model-level findings that belong to no blob (a cloud model, a corrupt manifest, a digest of the
  CVE-2024-37032 shape, a missing blob) go on an item for the manifest file itself, with
  ``metadata["ollama"]["role"] == "manifest"``; such an item exists only when there is something to
  say (a cloud model always has one: it has no weights on disk).
- Orphan blobs (named by no manifest) and partial downloads are items too (``source.name`` None).
- Store metadata lives under ``metadata["ollama"]`` so it never overwrites the scanner's keys.
- A digest is never turned into a path unless it matches Ollama's own ``^sha256[:-][0-9a-fA-F]{64}$``.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelward.inventory.fsread import read_bounded
from modelward.inventory.stores.base import StoreItem, StoreResult, env_path
from modelward.models import CollectError, Finding, License, Severity, Sha256, Source
from modelward.scan.rules import Rule, rule

DEFAULT_REGISTRY = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
MAX_MANIFEST = 1 << 20
MAX_CONFIG = 1 << 20
MAX_PARAMS = 1 << 20
MAX_LICENSE = 256 << 10
MAX_MANIFESTS = 100_000
MAX_LAYERS = 1_000
MEDIA_PREFIX = "application/vnd.ollama.image."
WEIGHTS = ("model", "projector", "adapter")
"""Layer kinds whose blob holds weights (GGUF, or safetensors for some adapters)."""

_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_BLOB = re.compile(r"sha256-([0-9a-f]{64})")
_PARTIAL = re.compile(r"sha256-([0-9a-fA-F]{64})-partial(?:-\d+)?")
_TRAVERSAL = ("/", "\\", "..", "\x00")

CLOUD = rule(
    "ollama.cloud-model",
    Severity.MEDIUM,
    "An Ollama cloud model: prompts sent to it leave the machine",
    "Remove the model (`ollama rm NAME`) unless sending prompts to ollama.com is approved; "
    "set OLLAMA_NO_CLOUD=1 to disable cloud models.",
)
BAD_DIGEST = rule(
    "ollama.bad-digest",
    Severity.CRITICAL,
    "An Ollama manifest names a blob with a digest that is not sha256:<64 hex> (CVE-2024-37032 shape)",
    "Treat the machine as targeted: find where the model was pulled from, delete the manifest, "
    "check for files written outside the models folder, and update Ollama to 0.1.34 or later.",
)
CORRUPT = rule(
    "ollama.corrupt-manifest",
    Severity.LOW,
    "An Ollama manifest cannot be read or is not a valid manifest",
    "Remove the model (`ollama rm NAME`) and pull it again from a trusted registry.",
)
MISSING = rule(
    "ollama.missing-blob",
    Severity.LOW,
    "An Ollama manifest names a blob that is not in the blobs folder",
    "Pull the model again (`ollama pull NAME`) or remove it.",
)
SIZE_MISMATCH = rule(
    "ollama.size-mismatch",
    Severity.MEDIUM,
    "An Ollama blob's size differs from the size its manifest records",
    "The blob was altered or truncated after download: remove the model and pull it again.",
)
ORPHAN = rule(
    "ollama.orphan-blob",
    Severity.LOW,
    "An Ollama blob is named by no manifest",
    "Run `ollama prune`-like cleanup (restart `ollama serve`, which prunes unused blobs) or delete "
    "the blob; find out where it came from if it holds weights.",
)
PARTIAL = rule(
    "ollama.partial-download",
    Severity.INFO,
    "An interrupted or running Ollama download",
    "Finish the pull or delete the partial files.",
)


def _finding(
    r: Rule, message: str, evidence: str = "", location: str = "", severity: Severity | None = None
) -> Finding:
    return Finding(
        rule=r.id,
        severity=severity if severity is not None else r.severity,
        message=message,
        evidence=evidence[:500],
        location=location,
        remediation=r.remediation,
    )


def display_name(registry: str, namespace: str, model: str, tag: str) -> str:
    """Ollama's shortest display name: ``[registry/][namespace/]model:tag``."""
    if registry == DEFAULT_REGISTRY:
        if namespace == DEFAULT_NAMESPACE:
            return f"{model}:{tag}"
        return f"{namespace}/{model}:{tag}"
    return f"{registry}/{namespace}/{model}:{tag}"


def _clip(value: Any, n: int = 200) -> Any:
    """A JSON-safe, bounded copy of a config value (strings, numbers, bools, short lists)."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str):
        return value[:n]
    if isinstance(value, list):
        return [_clip(v, n) for v in value[:32] if isinstance(v, str | int | float | bool)]
    return None


@dataclass(slots=True)
class _Blob:
    """A weights blob as the manifests describe it."""

    kind: str
    size: int | None
    names: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    license: License | None = None
    findings: list[Finding] = field(default_factory=list)


@dataclass(slots=True)
class _Walk:
    root: Path
    blobs: dict[str, os.DirEntry[str]]
    result: StoreResult = field(default_factory=StoreResult)
    referenced: set[str] = field(default_factory=set)
    weights: dict[str, _Blob] = field(default_factory=dict)
    config_cache: dict[str, dict[str, Any] | str] = field(default_factory=dict)

    def blob_path(self, hexd: str) -> str:
        return str(self.root / "blobs" / f"sha256-{hexd}")


def _identify_license(text: str) -> License | None:
    """``modelward.inventory.license.identify_text`` when that module exists, else None."""
    identify = license_function("identify_text")
    if identify is None:
        return None
    try:
        found = identify(text, "ollama license layer")
    except Exception:  # another module's bug must not stop the store walk
        return None
    return found if isinstance(found, License) else None


@functools.cache
def _license_module() -> Any:
    try:
        return importlib.import_module("modelward.inventory.license")
    except ImportError:
        return None


def license_function(name: str) -> Callable[..., Any] | None:
    """A function of ``modelward.inventory.license`` (written separately), or None while it is absent."""
    fn = getattr(_license_module(), name, None)
    return fn if callable(fn) else None


class OllamaStore:
    """Ollama's ``models`` folder (``OLLAMA_MODELS``, ``~/.ollama/models``, the system service's)."""

    kind = "ollama"

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        out: list[Path] = []
        models = env_path(env, "OLLAMA_MODELS")
        if models is not None:
            out.append(models)
        ohome = env_path(env, "OLLAMA_HOME")
        if ohome is not None:
            out.append(ohome / "models")
        out.append(home / ".ollama" / "models")  # Linux user, macOS, Windows (%USERPROFILE%)
        out.append(Path("/usr/share/ollama/.ollama/models"))  # the Linux install script's service
        out.append(Path("/var/lib/ollama/.ollama/models"))  # some distribution packages
        return list(dict.fromkeys(out))

    def spot(self, folder: str, name: str) -> str | None:
        """The ``models`` folder (any name: ``/srv/ollama/models``, ``.ollama/models``) holding
        ``folder`` when ``folder`` is its ``manifests`` or ``blobs`` and the other one is there too."""
        if name not in ("manifests", "blobs"):
            return None
        parent = os.path.dirname(folder)
        other = "blobs" if name == "manifests" else "manifests"
        return parent if os.path.isdir(os.path.join(parent, other)) else None

    def collect(self, root: Path) -> StoreResult:
        walk = _Walk(root=root, blobs=_list_blobs(root))
        for path, parts in _manifest_files(root, walk.result.errors):
            _read_manifest(walk, path, parts)
        for hexd, blob in sorted(walk.weights.items()):
            walk.result.items.append(_weights_item(walk, hexd, blob))
        _leftovers(walk)
        return walk.result


def _list_blobs(root: Path) -> dict[str, os.DirEntry[str]]:
    out: dict[str, os.DirEntry[str]] = {}
    try:
        with os.scandir(root / "blobs") as it:
            for entry in it:
                out[entry.name] = entry
    except OSError:
        pass
    return out


def _manifest_files(root: Path, errors: list[CollectError]) -> list[tuple[str, tuple[str, ...]]]:
    """Every file at ``manifests/<registry>/<namespace>/<model>/<tag>`` (links to folders not followed)."""
    out: list[tuple[str, tuple[str, ...]]] = []
    stack: list[tuple[str, tuple[str, ...]]] = [(str(root / "manifests"), ())]
    while stack and len(out) < MAX_MANIFESTS:
        folder, parts = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            errors.append(CollectError(folder, f"cannot list: {exc.strerror or exc}"))
            continue
        for entry in reversed(entries):
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            here = (*parts, entry.name)
            if is_dir and len(here) < 4:
                stack.append((entry.path, here))
            elif not is_dir and len(here) == 4:
                out.append((entry.path, here))
    out.sort()
    return out


def _manifest_item(
    walk: _Walk, path: str, name: str, findings: list[Finding], info: dict[str, Any]
) -> None:
    meta = {"role": "manifest", "names": [name], "manifest": path, **info}
    walk.result.items.append(
        StoreItem(
            path=path,
            source=Source("ollama", name=name),
            metadata={"ollama": meta},
            findings=tuple(findings),
        )
    )


def _read_manifest(walk: _Walk, path: str, parts: tuple[str, ...]) -> None:
    name = display_name(*parts)
    raw = read_bounded(path, MAX_MANIFEST)
    if isinstance(raw, str):
        if raw.startswith("larger"):
            f = _finding(CORRUPT, "The manifest is too large to be an Ollama manifest.", raw, path)
            _manifest_item(walk, path, name, [f], {})
        else:
            walk.result.errors.append(CollectError(path, raw))
        return
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        f = _finding(CORRUPT, "The manifest is not valid JSON.", str(exc)[:200], path)
        _manifest_item(walk, path, name, [f], {})
        return
    config = doc.get("config") if isinstance(doc, dict) else None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not (config is None or isinstance(config, dict)):
        f = _finding(CORRUPT, "The manifest has no list of layers.", "", path)
        _manifest_item(walk, path, name, [f], {})
        return
    findings: list[Finding] = []
    entries: list[tuple[str, str, int | None]] = []  # (kind, hex, size)
    cfg_hex: str | None = None
    todo: list[tuple[str, Any]] = [("config", config)] if config is not None else []
    todo += [("layer", layer) for layer in layers[:MAX_LAYERS]]
    if len(layers) > MAX_LAYERS:
        findings.append(_finding(CORRUPT, f"The manifest has {len(layers)} layers.", "", path))
    for role, layer in todo:
        if not isinstance(layer, dict):
            findings.append(_finding(CORRUPT, f"A {role} entry is not an object.", "", path))
            continue
        media = layer.get("mediaType")
        digest = layer.get("digest")
        size = layer.get("size")
        size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
        if not isinstance(digest, str):
            findings.append(_finding(CORRUPT, f"A {role} entry has no digest.", "", path))
            continue
        m = _DIGEST.fullmatch(digest)
        if m is None:
            traversal = any(t in digest for t in _TRAVERSAL)
            findings.append(
                _finding(
                    BAD_DIGEST,
                    "A layer digest "
                    + ("walks out of the blobs folder" if traversal else "is not sha256:<64 hex>")
                    + ": Ollama before 0.1.34 would read or write a file there.",
                    repr(digest)[:200],
                    path,
                    severity=None if traversal else Severity.HIGH,
                )
            )
            continue
        hexd = m.group(1).lower()
        walk.referenced.add(hexd)
        blob = walk.blobs.get(f"sha256-{hexd}")
        if blob is None:
            findings.append(
                _finding(
                    MISSING, f"The {role} blob is not in the blobs folder.", f"sha256:{hexd}", path
                )
            )
        elif size is not None:
            try:
                actual = blob.stat().st_size
            except OSError:
                actual = None
            if actual is not None and actual != size:
                findings.append(
                    _finding(
                        SIZE_MISMATCH,
                        f"The blob has {actual} bytes; the manifest says {size}.",
                        f"sha256:{hexd}",
                        path,
                    )
                )
        if role == "config":
            cfg_hex = hexd if blob is not None else None
            continue
        if blob is not None:
            entries.append((_kind(media), hexd, size))
    info = _model_info(walk, cfg_hex, entries, path)
    lic = _license(walk, entries, info)
    weights = [(k, h, s) for k, h, s in entries if k in WEIGHTS]
    cloud = info.get("remote_host") or info.get("remote_model")
    if cloud:
        findings.append(
            _finding(
                CLOUD,
                f"{name} runs on {info.get('remote_host') or 'ollama.com'}: prompts leave the machine.",
                str(info.get("remote_model") or info.get("remote_host"))[:200],
                path,
            )
        )
    if findings or not weights:
        meta = {k: v for k, v in info.items() if v is not None}
        _manifest_item(walk, path, name, findings, meta)
    for kind, hexd, size in weights:
        wb = walk.weights.get(hexd)
        if wb is None:
            wb = walk.weights[hexd] = _Blob(kind=kind, size=size, info=dict(info), license=lic)
        wb.names.append(name)
        wb.manifests.append(path)
        if wb.license is None:
            wb.license = lic


def _kind(media: object) -> str:
    """``model`` for ``application/vnd.ollama.image.model``; other media types as given."""
    if isinstance(media, str) and media.startswith(MEDIA_PREFIX):
        return media[len(MEDIA_PREFIX) :][:100]
    return str(media)[:100]


def _config(walk: _Walk, hexd: str) -> dict[str, Any] | str:
    cached = walk.config_cache.get(hexd)
    if cached is not None:
        return cached
    raw = read_bounded(walk.blob_path(hexd), MAX_CONFIG)
    out: dict[str, Any] | str
    if isinstance(raw, str):
        out = raw
    else:
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            doc = None
        out = doc if isinstance(doc, dict) else "the config blob is not a JSON object"
    walk.config_cache[hexd] = out
    return out


_CONFIG_KEYS = {
    "model_format": "format",
    "model_family": "family",
    "model_families": "families",
    "model_type": "parameter_size",
    "file_type": "quantization",
    "context_length": "context_length",
    "remote_host": "remote_host",
    "remote_model": "remote_model",
    "capabilities": "capabilities",
    "renderer": "renderer",
    "parser": "parser",
    "requires": "requires",
}


def _model_info(
    walk: _Walk, cfg_hex: str | None, entries: list[tuple[str, str, int | None]], manifest: str
) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if cfg_hex is not None:
        cfg = _config(walk, cfg_hex)
        if isinstance(cfg, str):
            walk.result.errors.append(CollectError(walk.blob_path(cfg_hex), cfg))
        else:
            for key, out in _CONFIG_KEYS.items():
                if key in cfg:
                    value = _clip(cfg[key])
                    if value is not None and value != "":
                        info[out] = value
    kinds = [k for k, _, _ in entries]
    info["layers"] = sorted(set(kinds))
    info["template"] = "template" in kinds
    info["system_prompt"] = "system" in kinds
    info["messages"] = "messages" in kinds
    info["cloud"] = bool(info.get("remote_host") or info.get("remote_model"))
    for kind, hexd, _ in entries:
        if kind == "params":
            raw = read_bounded(walk.blob_path(hexd), MAX_PARAMS)
            try:
                doc = json.loads(raw) if isinstance(raw, bytes) else None
            except (ValueError, RecursionError):
                doc = None
            if isinstance(doc, dict):
                params = {str(k)[:100]: _clip(v) for k, v in list(doc.items())[:64]}
                info["params"] = {k: v for k, v in params.items() if v is not None}
            else:
                walk.result.errors.append(
                    CollectError(walk.blob_path(hexd), "the params layer is not a JSON object")
                )
    return info


def _license(
    walk: _Walk, entries: list[tuple[str, str, int | None]], info: dict[str, Any]
) -> License | None:
    found: License | None = None
    first_lines: list[str] = []
    for kind, hexd, _ in entries:
        if kind != "license":
            continue
        raw = read_bounded(walk.blob_path(hexd), MAX_LICENSE)
        if isinstance(raw, str):
            walk.result.errors.append(CollectError(walk.blob_path(hexd), raw))
            continue
        text = raw.decode("utf-8", "replace")
        line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        if line:
            first_lines.append(line[:200])
        if found is None:
            found = _identify_license(text)
    if first_lines:
        info["license_first_lines"] = first_lines
    return found


def _weights_item(walk: _Walk, hexd: str, blob: _Blob) -> StoreItem:
    names = sorted(set(blob.names))
    meta: dict[str, Any] = {
        "role": blob.kind,
        "names": names,
        "manifests": sorted(set(blob.manifests)),
        **{k: v for k, v in blob.info.items() if v is not None},
    }
    return StoreItem(
        path=walk.blob_path(hexd),
        source=Source("ollama", name=names[0]),
        sha256=Sha256(hexd),
        license=blob.license,
        metadata={"ollama": meta},
        findings=tuple(blob.findings),
    )


def _leftovers(walk: _Walk) -> None:
    """Orphan blobs and partial downloads: items with no model name."""
    partials: dict[str, list[os.DirEntry[str]]] = {}
    for fname, entry in sorted(walk.blobs.items()):
        try:
            if not entry.is_file():
                continue
        except OSError:
            continue
        m = _BLOB.fullmatch(fname)
        if m is not None:
            if m.group(1) not in walk.referenced:
                walk.result.items.append(
                    StoreItem(
                        path=entry.path,
                        source=Source("ollama"),
                        sha256=Sha256(m.group(1)),
                        metadata={"ollama": {"role": "orphan"}},
                        findings=(
                            _finding(ORPHAN, "No manifest names this blob.", fname, entry.path),
                        ),
                    )
                )
            continue
        p = _PARTIAL.fullmatch(fname)
        if p is not None:
            partials.setdefault(p.group(1).lower(), []).append(entry)
    for hexd, parts in sorted(partials.items()):
        main = next((e for e in parts if e.name.endswith("-partial")), parts[0])
        walk.result.items.append(
            StoreItem(
                path=main.path,
                source=Source("ollama"),
                metadata={
                    "ollama": {
                        "role": "partial",
                        "expected_sha256": hexd,
                        "parts": sorted(e.name for e in parts),
                    }
                },
                findings=(
                    _finding(
                        PARTIAL,
                        "A download of this blob did not finish (or is running).",
                        f"sha256:{hexd}",
                        main.path,
                    ),
                ),
            )
        )


STORE = OllamaStore()
