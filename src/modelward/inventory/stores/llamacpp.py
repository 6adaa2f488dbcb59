"""llama.cpp's ``-hf`` download cache: flat files named ``<org>_<repo>_<file>`` with manifests and etags.

Location (``fs_get_cache_directory``): ``LLAMA_CACHE``, else ``$XDG_CACHE_HOME/llama.cpp``, else
``~/.cache/llama.cpp`` (Linux), ``~/Library/Caches/llama.cpp`` (macOS), ``~/AppData/Local/llama.cpp``.
Layout (ggml-org/llama.cpp ``common/download.cpp``, ``common/arg.cpp``)::

    manifest=<org>=<repo>=<tag>.json     the Hub's answer for ``-hf org/repo:tag`` (``ggufFile.rfilename``,
                                         ``mmprojFile.rfilename``); older builds wrote ``org_repo``
    <org>_<repo>_<rfilename, / -> _>     the downloaded file (split GGUFs: one per part)
    <file>.etag                          the server's ETag (first line)
    <file>.json                          older builds: ``{"etag", "lastModified", "url"}``
    <file>.downloadInProgress            an interrupted or running download

``source.repo`` comes from a manifest naming the file, else from a legacy ``url`` on the Hub; the
flat name alone is ambiguous (``_`` is allowed in names) and is never split. Newer builds that use
the Hub cache layout (``models--org--repo``) inside this folder are parsed by the Hugging Face
store's code and reported with kind ``llama.cpp``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelward.inventory.fsread import read_bounded
from modelward.inventory.stores import huggingface
from modelward.inventory.stores.base import StoreItem, StoreResult, env_path
from modelward.inventory.stores.folder import finding, is_model, item, model_files
from modelward.models import CollectError, Finding, Severity, Source
from modelward.scan.rules import rule

MAX_MANIFEST = 1 << 20
MAX_SIDECAR = 64 << 10
MAX_SPLITS = 1000
PARTIAL_SUFFIX = ".downloadInProgress"
HUB_HOSTS = frozenset({"huggingface.co", "hf.co"})

_SPLIT = re.compile(r"^(.*)-(\d{5})-of-(\d{5})(\.gguf)$")
_HEX40 = re.compile(r"[0-9a-f]{40}")

PARTIAL = rule(
    "llamacpp.partial-download",
    Severity.INFO,
    "An interrupted or running llama.cpp download",
    "Run the same llama.cpp command again to finish it, or delete the .downloadInProgress file.",
)


def parse_manifest_name(name: str) -> tuple[str | None, str, str] | None:
    """``(repo id or None, flat repo, tag)`` of ``manifest=org=repo=tag.json``; None otherwise."""
    if not (name.startswith("manifest=") and name.endswith(".json")):
        return None
    parts = name[len("manifest=") : -len(".json")].split("=")
    if len(parts) == 3 and all(parts):
        return f"{parts[0]}/{parts[1]}", f"{parts[0]}_{parts[1]}", parts[2]
    if len(parts) == 2 and all(parts):  # older builds: "/" became "_", the split is ambiguous
        return None, parts[0], parts[1]
    return None


def manifest_files(doc: object) -> list[tuple[str, str]]:
    """``(role, rfilename)`` for ``ggufFile`` and ``mmprojFile`` of a manifest document."""
    out: list[tuple[str, str]] = []
    if not isinstance(doc, dict):
        return out
    for key, role in (("ggufFile", "model"), ("mmprojFile", "projector")):
        entry = doc.get(key)
        rfile = entry.get("rfilename") if isinstance(entry, dict) else None
        if isinstance(rfile, str) and rfile and "\x00" not in rfile and len(rfile) <= 1024:
            out.append((role, rfile))
    return out


def _split_names(rfile: str) -> list[str]:
    m = _SPLIT.match(rfile)
    if m is None:
        return [rfile]
    total = int(m.group(3))
    if not 1 <= total <= MAX_SPLITS:
        return [rfile]
    return [f"{m.group(1)}-{n:05d}-of-{m.group(3)}{m.group(4)}" for n in range(1, total + 1)]


def hub_url(url: str) -> dict[str, str] | None:
    """``{"repo", "ref", "file"}`` of ``https://huggingface.co/<org>/<repo>/resolve/<ref>/<file>``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in HUB_HOSTS:
        return None
    segs = parts.path.strip("/").split("/")
    if len(segs) < 5 or segs[2] != "resolve" or not all(segs):
        return None
    return {"repo": f"{segs[0]}/{segs[1]}", "ref": segs[3], "file": "/".join(segs[4:])}


def _safe_url(url: str) -> str:
    """The URL without user or password (llama.cpp allows them in ``-mu``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url[:300]
    if parts.username is None and parts.password is None:
        return url[:300]
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()[:300]


class LlamaCppStore:
    """llama.cpp's download cache."""

    kind = "llama.cpp"

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        out: list[Path] = []
        cache = env_path(env, "LLAMA_CACHE")
        if cache is not None:
            out.append(cache)
        xdg = env_path(env, "XDG_CACHE_HOME")
        if xdg is not None:
            out.append(xdg / "llama.cpp")
        out.append(home / ".cache" / "llama.cpp")
        out.append(home / "Library" / "Caches" / "llama.cpp")
        out.append(home / "AppData" / "Local" / "llama.cpp")
        return list(dict.fromkeys(out))

    def collect(self, root: Path) -> StoreResult:
        result = StoreResult()
        named = _manifests(root, result)
        for found in model_files(root, result, prune=_is_hub_folder, accept=_accept):
            flat = found.rel
            meta: dict[str, Any] = {"layout": "flat"}
            findings: tuple[Finding, ...] = ()
            if flat.endswith(PARTIAL_SUFFIX):
                flat = flat[: -len(PARTIAL_SUFFIX)]
                meta["role"] = "partial"
                findings = (
                    finding(
                        PARTIAL, "A download did not finish (or is running).", flat, found.path
                    ),
                )
            name, repo, revision = flat, None, None
            hit = named.get(flat)
            if hit is not None:
                repo, name = hit["repo"], hit["file"]
                meta.update({k: v for k, v in hit.items() if k not in ("repo", "file")})
            sidecar = _sidecar(root, flat, result)
            legacy = hub_url(sidecar.get("url", "")) if "url" in sidecar else None
            if legacy is not None:
                repo = repo or legacy["repo"]
                name = legacy["file"] if hit is None else name
                meta["ref"] = legacy["ref"]
                if _HEX40.fullmatch(legacy["ref"]):
                    revision = legacy["ref"]
            meta.update(sidecar)
            result.items.append(
                item(
                    self.kind,
                    found,
                    name=name,
                    repo=repo,
                    revision=revision,
                    meta=meta,
                    findings=findings,
                )
            )
        _hub_layout(root, result)
        return result


def _is_hub_folder(rel: str) -> bool:
    return "/" not in rel and huggingface.repo_id(rel) is not None


def _accept(name: str, path: str) -> bool:
    if name.endswith((".etag", ".json")):
        return False
    return name.endswith(PARTIAL_SUFFIX) or is_model(name, path)


def _manifests(root: Path, result: StoreResult) -> dict[str, dict[str, Any]]:
    """Flat file name -> what the manifests say about it (repo, file, tag, role)."""
    out: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(p.name for p in root.iterdir() if p.name.startswith("manifest="))
    except OSError as exc:
        result.errors.append(CollectError(str(root), f"cannot list: {exc.strerror or exc}"))
        return out
    for fname in names[:10_000]:
        parsed = parse_manifest_name(fname)
        if parsed is None:
            continue
        repo, flat_repo, tag = parsed
        path = str(root / fname)
        raw = read_bounded(path, MAX_MANIFEST)
        if isinstance(raw, str):
            result.errors.append(CollectError(path, raw))
            continue
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            result.errors.append(CollectError(path, "the manifest is not valid JSON"))
            continue
        files = manifest_files(doc)
        if not files:
            result.errors.append(CollectError(path, "the manifest names no GGUF file"))
        for role, rfile in files:
            for part in _split_names(rfile):
                flat = f"{flat_repo}_{part.replace('/', '_')}"
                out.setdefault(
                    flat,
                    {"repo": repo, "file": part, "tag": tag, "role": role, "manifest": fname},
                )
    return out


def _sidecar(root: Path, flat: str, result: StoreResult) -> dict[str, str]:
    """``etag`` (from ``.etag`` or a legacy ``.json``), ``url`` and ``last_modified`` of a file."""
    out: dict[str, str] = {}
    raw = read_bounded(str(root / f"{flat}.etag"), MAX_SIDECAR)
    if isinstance(raw, bytes):
        line = raw.decode("utf-8", "replace").splitlines()[:1]
        if line and line[0].strip():
            out["etag"] = line[0].strip()[:200]
    path = str(root / f"{flat}.json")
    raw = read_bounded(path, MAX_SIDECAR)
    if isinstance(raw, bytes):
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            result.errors.append(CollectError(path, "the download metadata is not a JSON object"))
            return out
        for key, out_key in (("etag", "etag"), ("url", "url"), ("lastModified", "last_modified")):
            value = doc.get(key)
            if isinstance(value, str) and value and out_key not in out:
                out[out_key] = _safe_url(value) if key == "url" else value[:200]
    return out


def _hub_layout(root: Path, result: StoreResult) -> None:
    """``models--org--repo`` folders of newer builds, parsed as a Hub cache, kind ``llama.cpp``."""
    hub = huggingface.STORE.collect(root)
    result.errors.extend(hub.errors)
    for hit in hub.items:
        meta = dict(hit.metadata.get("huggingface", {}))
        meta["layout"] = "hub"
        result.items.append(
            StoreItem(
                path=hit.path,
                source=Source(
                    "llama.cpp", name=hit.source.name, repo=hit.source.repo,
                    revision=hit.source.revision,
                ),
                sha256=hit.sha256,
                license=hit.license,
                metadata={"llama.cpp": meta},
                findings=hit.findings,
            )
        )  # fmt: skip


STORE = LlamaCppStore()
