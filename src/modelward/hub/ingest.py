"""Turn a source (folder, Hugging Face cache entry, Ollama model, upstream hub) into files to upload.

Every source becomes an :class:`IngestPlan`: the files of the new revision (path in the repository,
the local file holding its bytes, size and SHA-256 computed while reading) plus the provenance the
hub records. Nothing here talks to the hub; :mod:`modelward.hub.client` uploads a plan and the
server's import route stores one.

- :func:`from_folder` (``hub push DIR``): every file under DIR, symlinks to files inside DIR followed
  (a link pointing outside refuses the folder), links to folders and special files skipped,
  ``.git/`` and ``.cache/huggingface/`` left out.
- :func:`from_hf_cache`: the snapshot of one revision of ``models--ns--name`` in a local Hugging
  Face cache; blob names that are digests are checked against the bytes read.
- :func:`from_ollama`: a local Ollama model ``name:tag``; the GGUF model layer becomes
  ``model.gguf``, the other layers ``ollama/<kind>`` (the hub renders them back as Ollama layers).
- :func:`from_upstream`: a Hugging Face-compatible endpoint, fetched with ``huggingface_hub`` into a
  folder the caller owns (and deletes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from modelward.errors import (
    HubError,
    InvalidName,
    RepoNotFound,
    RevisionNotFound,
    TooLarge,
    Unauthorized,
    UsageError,
)
from modelward.hub.names import is_commit, validate_path
from modelward.hub.oci import OLLAMA_KINDS, OLLAMA_MODEL_PATH

CHUNK = 4 << 20
"""Read size for hashing (4 MiB: large enough that hashing runs at the digest's own speed)."""
MAX_OLLAMA_MANIFEST = 1 << 20
MAX_OLLAMA_CONFIG = 1 << 20
SKIP_DIRS = (".git",)
"""Folder names left out at any depth (version-control metadata is never model content)."""
SKIP_TOP = (".cache/huggingface",)
"""Folders left out at the top of a pushed folder (``hf download --local-dir`` bookkeeping)."""

Progress = Callable[[str, int, int], None]
"""``progress(label, done_bytes, total_bytes)``, called while files are hashed."""

_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")


class UpstreamError(HubError):
    """The upstream hub could not be reached or refused the download."""

    status = 502
    code = "upstream_failed"
    oci_code = "UNSUPPORTED"


@dataclass(frozen=True, slots=True)
class IngestFile:
    """One file of a revision to be: where it goes in the repository and where its bytes are."""

    path: str
    source: Path
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True, slots=True)
class IngestPlan:
    """The files of a new revision (sorted by path) and the provenance the hub records for it."""

    files: tuple[IngestFile, ...]
    provenance: dict[str, Any]
    skipped: tuple[str, ...] = field(default=())
    """Paths left out, each with why (``"link/ (link to a folder)"``), for the user's information."""

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


# ------------------------------------------------------------------------------------------ hashing
def hash_file(
    path: str | os.PathLike[str],
    progress: Callable[[int], None] | None = None,
    git_sha1: bool = False,
) -> tuple[str, int, str | None]:
    """``(sha256 hex, size, git blob sha1 or None)`` of a file, read once in :data:`CHUNK` pieces.

    ``progress(n)`` is called with the byte count of each piece. The git blob SHA-1 (of
    ``blob <size>\\0`` + bytes) is computed only when asked: the hub derives it itself.
    """
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as f:
        g = None
        if git_sha1:
            g = hashlib.sha1(b"blob %d\0" % os.fstat(f.fileno()).st_size, usedforsecurity=False)
        while n := f.readinto(buf):
            chunk = view[:n]
            h.update(chunk)
            if g is not None:
                g.update(chunk)
            size += n
            if progress is not None:
                progress(n)
    return h.hexdigest(), size, (g.hexdigest() if g is not None else None)


@dataclass(slots=True)
class _Candidate:
    path: str
    source: Path
    size: int
    expect_sha256: str | None = None
    expect_git_sha1: str | None = None


def _hash_all(cands: list[_Candidate], progress: Progress | None) -> tuple[IngestFile, ...]:
    """Hash every candidate (checking expected digests) and return the files sorted by path."""
    total = sum(c.size for c in cands)
    done = 0
    out: list[IngestFile] = []
    for c in sorted(cands, key=lambda c: c.path):
        label = c.path if len(c.path) <= 40 else "…" + c.path[-39:]

        def step(n: int, label: str = label) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(label, done, total)

        try:
            sha, size, git = hash_file(c.source, step, git_sha1=c.expect_git_sha1 is not None)
        except OSError as exc:
            raise UsageError(f"cannot read {c.source}: {exc.strerror or exc}") from None
        if c.expect_sha256 is not None and sha != c.expect_sha256:
            raise UsageError(
                f"{c.source} ({c.path}) does not hash to the SHA-256 its store names "
                f"({c.expect_sha256}): the copy on disk is corrupted or was altered; "
                "download it again"
            )
        if c.expect_git_sha1 is not None and git != c.expect_git_sha1:
            raise UsageError(
                f"{c.source} ({c.path}) does not match the git blob id its cache names "
                f"({c.expect_git_sha1}): the copy on disk was altered; download it again"
            )
        out.append(IngestFile(path=c.path, source=c.source, size=size, sha256=sha))
    return tuple(out)


def _check_names(cands: list[_Candidate]) -> None:
    """Refuse the whole source if any file path breaks the hub's naming rules (all named at once)."""
    bad: list[str] = []
    for c in cands:
        try:
            validate_path(c.path)
        except InvalidName as exc:
            bad.append(exc.message)
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InvalidName("; ".join(bad[:5]) + more, paths=bad[:50])
    seen: set[str] = set()
    for c in cands:
        if c.path in seen:  # cannot happen from a walk; guards the Ollama mapping
            raise InvalidName(f"two files would be stored as {c.path!r}", path=c.path)
        seen.add(c.path)


# ------------------------------------------------------------------------------------ local folder
def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(os.path.commonpath([path, root]) == root for root in roots)


def _walk(
    top: Path, skip_top: tuple[str, ...] = SKIP_TOP, within: tuple[str, ...] | None = None
) -> tuple[list[_Candidate], list[str]]:
    """Files under ``top`` as candidates (links to files followed), and what was skipped and why.

    With ``within`` (real paths), a link to a file is followed only when its target resolves inside
    one of them: any other link refuses the whole folder, each named with its target.
    """
    cands: list[_Candidate] = []
    skipped: list[str] = []
    broken: list[str] = []
    outside: list[str] = []

    def onerror(exc: OSError) -> None:
        raise UsageError(f"cannot list {exc.filename}: {exc.strerror or exc}")

    for folder, dirs, names in os.walk(top, onerror=onerror, followlinks=False):
        rel_dir = os.path.relpath(folder, top)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        keep: list[str] = []
        for d in sorted(dirs):
            rel = rel_dir + d
            if d in SKIP_DIRS or rel in skip_top:
                continue
            if os.path.islink(os.path.join(folder, d)):
                skipped.append(f"{rel}/ (link to a folder: not followed)")
                continue
            keep.append(d)
        dirs[:] = keep
        for name in sorted(names):
            rel = rel_dir + name
            full = os.path.join(folder, name)
            try:
                st = os.stat(full)  # follows links: a link to a file uploads the file
            except FileNotFoundError:
                broken.append(f"{rel} -> {_link_target(full)}")
                continue
            except OSError as exc:
                raise UsageError(f"cannot read {full}: {exc.strerror or exc}") from None
            if stat.S_ISDIR(st.st_mode):  # a link to a folder that os.walk listed as a name
                skipped.append(f"{rel}/ (link to a folder: not followed)")
            elif not stat.S_ISREG(st.st_mode):
                skipped.append(f"{rel} (not a regular file)")
            elif (
                within is not None
                and os.path.islink(full)
                and not _inside(os.path.realpath(full), within)
            ):
                outside.append(f"{rel} -> {os.path.realpath(full)}")
            else:
                cands.append(_Candidate(path=rel, source=Path(full), size=st.st_size))
    if broken:
        raise UsageError(
            f"{len(broken)} broken link(s) under {top}: {', '.join(broken[:5])}; "
            "fix or remove them (the model would be incomplete)"
        )
    if outside:
        more = f" (and {len(outside) - 5} more)" if len(outside) > 5 else ""
        raise UsageError(
            f"{len(outside)} link(s) under {top} point outside it: {', '.join(outside[:5])}{more}; "
            "nothing was uploaded. Copy the files into the folder, or remove the links"
        )
    return cands, skipped


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _allowed_roots(top: Path) -> tuple[str, ...]:
    """Where links under ``top`` may point: inside it, and for a Hugging Face cache snapshot
    (``models--ns--name/snapshots/<commit>``) into the same repo folder's ``blobs/``."""
    real = os.path.realpath(top)
    roots = [real]
    parent = os.path.dirname(real)
    if os.path.basename(parent) == "snapshots":
        blobs = os.path.join(os.path.dirname(parent), "blobs")
        if os.path.isdir(blobs):
            roots.append(os.path.realpath(blobs))
    return tuple(roots)


def from_folder(
    folder: str | os.PathLike[str],
    progress: Progress | None = None,
    *,
    uploader: str | None = None,
) -> IngestPlan:
    """Every file under ``folder`` (``hub push DIR``), hashed; paths breaking the rules refuse all.

    Links to files inside the folder are followed (each path is a file of the revision); a link
    whose target is outside it refuses the folder, except, when the folder is a Hugging Face cache
    snapshot, links into the blobs/ of the same cache repo folder.
    """
    top = Path(folder)
    if not top.is_dir():
        raise UsageError(f"{top} is not a folder")
    cands, skipped = _walk(top, within=_allowed_roots(top))
    if not cands:
        raise UsageError(f"{top} has no files to push")
    _check_names(cands)
    files = _hash_all(cands, progress)
    prov: dict[str, Any] = {"kind": "upload", "source": str(top.resolve())}
    if uploader:
        prov["uploader"] = uploader
    return IngestPlan(files=files, provenance=prov, skipped=tuple(skipped))


# ----------------------------------------------------------------------------- Hugging Face cache
def hf_cache_roots(env: Mapping[str, str] | None = None, home: Path | None = None) -> list[Path]:
    """Where the Hugging Face hub cache may be, in the order ``huggingface_hub`` looks."""
    from modelward.inventory.stores.huggingface import STORE

    return STORE.locations(home or Path.home(), os.environ if env is None else env)


def _hf_repo_id(repo_id: str) -> list[str]:
    """The segments of a Hugging Face repo id: ``name`` (legacy) or ``namespace/name``."""
    parts = repo_id.split("/")
    bad = any(p in ("", ".", "..") or "\\" in p or "\0" in p or "--" in p for p in parts)
    if len(parts) > 2 or bad:
        raise UsageError(f"Hugging Face repo id {repo_id!r} must be 'namespace/name' or 'name'")
    return parts


def _hf_repo_folder(repo_id: str, cache_dir: Path | None, env: Mapping[str, str] | None) -> Path:
    parts = _hf_repo_id(repo_id)
    folder = "models--" + "--".join(parts)
    if cache_dir is not None:
        # the cache folder, or the repo's own folder
        candidates = [cache_dir] if cache_dir.name == folder else [cache_dir / folder]
    else:
        candidates = [root / folder for root in hf_cache_roots(env)]
    for c in candidates:
        if c.is_dir():
            return c
    where = ", ".join(str(c.parent) for c in candidates)
    raise UsageError(
        f"{repo_id} is not in the Hugging Face cache (looked in {where}); "
        "download it first (`hf download REPO`) or pass --cache-dir"
    )


def _hf_commit(repo_folder: Path, revision: str) -> str:
    if is_commit(revision):
        if (repo_folder / "snapshots" / revision).is_dir():
            return revision
        raise UsageError(f"revision {revision} is not in the cache at {repo_folder}")
    segments = revision.split("/")
    if any(s in ("", ".", "..") for s in segments) or "\\" in revision or "\0" in revision:
        raise UsageError(f"revision {revision!r} is not a branch, tag or commit name")
    ref = repo_folder.joinpath("refs", *segments)
    try:
        commit = ref.read_text("ascii").strip()
    except FileNotFoundError:
        raise UsageError(
            f"the cache at {repo_folder} has no ref {revision!r}; pass the 40-hex commit "
            "or a ref it has (see its refs/ folder)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {ref}: {exc}") from None
    if not _HEX40.fullmatch(commit):
        raise UsageError(f"{ref} does not hold a 40-hex commit id")
    if not (repo_folder / "snapshots" / commit).is_dir():
        raise UsageError(f"ref {revision} points at {commit}, which is not in the cache")
    return commit


def _snapshot_candidates(repo_folder: Path, commit: str) -> tuple[list[_Candidate], list[str]]:
    """Files of ``snapshots/<commit>``; each must be a link into ``blobs/`` (or a real file)."""
    snap = repo_folder / "snapshots" / commit
    blobs = os.path.realpath(repo_folder / "blobs")
    cands, skipped = _walk(snap, skip_top=())
    for c in cands:
        if not os.path.islink(c.source):
            continue  # degraded mode (no symlinks on Windows): a real file, hashed as it is
        target = os.path.realpath(c.source)
        if os.path.dirname(target) != blobs:
            raise UsageError(
                f"{c.path} in {snap} links outside the repository's blobs folder ({target}): "
                "the cache was altered; delete the repo from the cache and download it again"
            )
        name = os.path.basename(target)
        if _HEX64.fullmatch(name):
            c.expect_sha256 = name
        elif _HEX40.fullmatch(name):
            c.expect_git_sha1 = name
    return cands, skipped


def from_hf_cache(
    repo_id: str,
    revision: str = "main",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> IngestPlan:
    """The snapshot of ``revision`` of ``repo_id`` in a local Hugging Face cache, digests checked."""
    repo_folder = _hf_repo_folder(repo_id, Path(cache_dir) if cache_dir else None, env)
    commit = _hf_commit(repo_folder, revision)
    cands, skipped = _snapshot_candidates(repo_folder, commit)
    if not cands:
        raise UsageError(f"the snapshot {commit} of {repo_id} in {repo_folder} has no files")
    _check_names(cands)
    files = _hash_all(cands, progress)
    prov: dict[str, Any] = {
        "kind": "hf-cache",
        "source": str(repo_folder),
        "repo": repo_id,
        "revision": commit,
    }
    if revision != commit:
        prov["ref"] = revision
    return IngestPlan(files=files, provenance=prov, skipped=tuple(skipped))


# ------------------------------------------------------------------------------------------ Ollama
@dataclass(frozen=True, slots=True)
class OllamaName:
    """A parsed Ollama model name: ``[host/][namespace/]model[:tag]`` with Ollama's defaults."""

    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> OllamaName:
        from modelward.inventory.stores.ollama import DEFAULT_NAMESPACE, DEFAULT_REGISTRY

        name = text.strip()
        for scheme in ("https://", "http://"):
            if name.startswith(scheme):
                name = name[len(scheme) :]
        tag = "latest"
        slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > slash:
            name, tag = name[:colon], name[colon + 1 :]
        parts = name.split("/")
        if len(parts) == 1:
            host, ns, model = DEFAULT_REGISTRY, DEFAULT_NAMESPACE, parts[0]
        elif len(parts) == 2:
            host, ns, model = DEFAULT_REGISTRY, parts[0], parts[1]
        elif len(parts) == 3:
            host, ns, model = parts
        else:
            raise UsageError(f"Ollama model name {text!r} must be [host/][namespace/]model[:tag]")
        for part in (host, ns, model, tag):
            if not part or part in (".", "..") or any(c in part for c in "/\\\0"):
                raise UsageError(f"Ollama model name {text!r} is not valid")
        return cls(host, ns, model, tag)

    @property
    def display(self) -> str:
        from modelward.inventory.stores.ollama import display_name

        return display_name(self.host, self.namespace, self.model, self.tag)


def ollama_roots(env: Mapping[str, str] | None = None, home: Path | None = None) -> list[Path]:
    """Ollama's ``models`` folders: ``OLLAMA_MODELS`` first, then the usual places."""
    from modelward.inventory.stores.ollama import STORE

    return STORE.locations(home or Path.home(), os.environ if env is None else env)


def _ollama_manifest(
    name: OllamaName, models_dir: Path | None, env: Mapping[str, str] | None
) -> Path:
    roots = [models_dir] if models_dir is not None else ollama_roots(env)
    rels = [(name.host, name.namespace, name.model, name.tag)]
    lower = (name.host.lower(), name.namespace.lower(), name.model.lower(), name.tag)
    if lower != rels[0]:
        rels.append(lower)  # Ollama stores host/namespace/model lowercased
    for root in roots:
        for rel in rels:
            p = root.joinpath("manifests", *rel)
            if p.is_file():
                return p
    raise UsageError(
        f"Ollama model {name.display} not found (looked in {', '.join(str(r) for r in roots)}); "
        "pull it first (`ollama pull NAME`) or set OLLAMA_MODELS"
    )


def _read_small(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UsageError(f"{path} is larger than {limit} bytes: not an Ollama manifest or config")
    return data


def _ollama_config(blob: Path) -> dict[str, Any]:
    try:
        doc = json.loads(_read_small(blob, MAX_OLLAMA_CONFIG))
    except (ValueError, UsageError):
        return {}
    if not isinstance(doc, dict):
        return {}
    keys = ("model_format", "model_family", "model_families", "model_type", "file_type")
    return {k: doc[k] for k in keys if isinstance(doc.get(k), str | list)}


def from_ollama(
    name: str,
    models_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> IngestPlan:
    """A local Ollama model: ``model.gguf`` plus ``ollama/<kind>`` files, blob digests checked.

    A second layer of a kind already seen (two licenses, say) becomes ``ollama/<kind>.2``, ...
    in manifest order. Tensor (safetensors) models and unknown layer kinds are refused.
    """
    from modelward.inventory.stores.ollama import MEDIA_PREFIX

    parsed = OllamaName.parse(name)
    manifest = _ollama_manifest(parsed, Path(models_dir) if models_dir else None, env)
    root = manifest.parents[4]
    raw = _read_small(manifest, MAX_OLLAMA_MANIFEST)
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"{manifest} is not valid JSON: {exc}") from None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not layers:
        raise UsageError(f"{manifest} has no layers: not an Ollama model manifest")
    cands: list[_Candidate] = []
    counts: dict[str, int] = {}
    for layer in layers:
        media = layer.get("mediaType") if isinstance(layer, dict) else None
        digest = layer.get("digest") if isinstance(layer, dict) else None
        m = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
        if not isinstance(media, str) or m is None:
            raise UsageError(
                f"{manifest} names a layer with a bad digest {digest!r} (CVE-2024-37032 shape): "
                "refusing to read it"
            )
        kind = media[len(MEDIA_PREFIX) :] if media.startswith(MEDIA_PREFIX) else media
        hexd = m.group(1).lower()
        blob = root / "blobs" / f"sha256-{hexd}"
        try:
            size = blob.stat().st_size
        except OSError:
            raise UsageError(
                f"the {kind} layer sha256:{hexd} of {parsed.display} is missing from "
                f"{root / 'blobs'}; pull the model again"
            ) from None
        n = counts[kind] = counts.get(kind, 0) + 1
        if kind == "model":
            if n > 1:
                raise UsageError(f"{parsed.display} has {n} model layers; the hub takes one GGUF")
            try:
                with open(blob, "rb") as f:
                    magic = f.read(4)
            except OSError as exc:
                raise UsageError(f"cannot read {blob}: {exc.strerror or exc}") from None
            if magic != b"GGUF":
                raise UsageError(f"the model layer of {parsed.display} is not a GGUF file")
            path = OLLAMA_MODEL_PATH
        elif kind in OLLAMA_KINDS:
            path = f"ollama/{kind}" if n == 1 else f"ollama/{kind}.{n}"
        else:
            raise UsageError(
                f"{parsed.display} has a {media!r} layer, which the hub does not take "
                f"(it takes one GGUF model plus {', '.join(OLLAMA_KINDS)})"
            )
        cands.append(_Candidate(path=path, source=blob, size=size, expect_sha256=hexd))
    if "model" not in counts:
        raise UsageError(f"{parsed.display} has no model (GGUF) layer")
    _check_names(cands)
    files = _hash_all(cands, progress)
    prov: dict[str, Any] = {
        "kind": "ollama",
        "source": str(manifest),
        "name": parsed.display,
        "revision": "sha256:" + hashlib.sha256(raw).hexdigest(),
        "manifest_digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
    }
    config = doc.get("config")
    if isinstance(config, dict) and isinstance(config.get("digest"), str):
        cm = _DIGEST.fullmatch(config["digest"])
        if cm is not None:
            prov["config_digest"] = "sha256:" + cm.group(1).lower()
            info = _ollama_config(root / "blobs" / f"sha256-{cm.group(1).lower()}")
            if info:
                prov["config"] = info
    return IngestPlan(files=files, provenance=prov)


# ---------------------------------------------------------------------------------------- upstream
def redact_url(url: str) -> str:
    """``url`` without user and password (provenance is shown to everyone)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def from_upstream(
    endpoint: str,
    repo_id: str,
    dest: str | os.PathLike[str],
    revision: str | None = None,
    token: str | None = None,
    progress: Progress | None = None,
    max_bytes: int | None = None,
) -> IngestPlan:
    """Fetch ``repo_id`` at ``revision`` from a Hugging Face-compatible ``endpoint`` into ``dest``.

    ``dest`` is a folder the caller owns and deletes after uploading (the plan's files live in it).
    ``max_bytes`` stops the download (:class:`TooLarge`) as soon as more bytes than that have come
    (the size the upstream's listing announced, or the room the caller has): an upstream whose
    listing lies cannot fill the disk.
    ``token`` goes only to ``endpoint``; without one, no token is sent (never the user's own
    ``HF_TOKEN``: it belongs to huggingface.co, not to an arbitrary endpoint).
    """
    scheme = urlsplit(endpoint).scheme
    if scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
        raise UsageError(f"upstream endpoint {endpoint!r} must be an http:// or https:// URL")
    _hf_repo_id(repo_id)
    where = redact_url(endpoint)
    snapshot = _download(
        endpoint.rstrip("/"), repo_id, revision, token, Path(dest), where, max_bytes
    )
    commit = snapshot.name
    repo_folder = snapshot.parent.parent
    cands, skipped = _snapshot_candidates(repo_folder, commit)
    if not cands:
        raise UpstreamError(f"{repo_id} at {where} has no files at revision {commit}")
    _check_names(cands)
    files = _hash_all(cands, progress)
    prov: dict[str, Any] = {
        "kind": "huggingface",
        "source": where,
        "repo": repo_id,
        "revision": commit,
    }
    if revision and revision != commit:
        prov["ref"] = revision
    return IngestPlan(files=files, provenance=prov, skipped=tuple(skipped))


def _download(
    endpoint: str,
    repo_id: str,
    revision: str | None,
    token: str | None,
    dest: Path,
    where: str,
    max_bytes: int | None = None,
) -> Path:
    """Resolve ``revision`` to a commit id upstream, check it, then fetch that commit.

    The commit id an upstream answers with becomes folder and file names in ``dest``
    (``snapshots/<sha>``, ``trees/<sha>.json``): huggingface_hub does not check it, so an upstream
    answering ``"sha": "../../x"`` would write outside ``dest``. Resolving first and downloading by
    the checked 40-hex id keeps every name in ``dest``. Whatever the upstream sends (malformed
    JSON, a document of the wrong shape, a broken HTTP answer) is an :class:`UpstreamError`.
    """
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    auth: str | bool = token if token else False
    try:
        info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, token=auth)
        sha = getattr(info, "sha", None)
        if not isinstance(sha, str) or not _HEX40.fullmatch(sha):
            shown = repr(sha)[:80]
            raise UpstreamError(
                f"upstream {where} names {shown} as the commit of {repo_id}, not a 40-hex id",
                upstream=where,
            )
        capped = None if max_bytes is None else _byte_cap(max_bytes, f"{repo_id} at {where}")
        path = snapshot_download(
            repo_id, revision=sha, cache_dir=dest, endpoint=endpoint, token=auth, tqdm_class=capped
        )
    except RevisionNotFoundError:
        raise RevisionNotFound(
            f"upstream {where} has no revision {revision!r} of {repo_id}",
            upstream=where,
            repo=repo_id,
        ) from None
    except GatedRepoError as exc:
        raise Unauthorized(
            f"upstream {where} refused {repo_id} (gated or not approved): {_first_line(exc)}",
            upstream=where,
        ) from None
    except RepositoryNotFoundError:
        raise RepoNotFound(
            f"upstream {where} has no repository {repo_id} (or the token may not read it)",
            upstream=where,
            repo=repo_id,
        ) from None
    except HfHubHTTPError as exc:
        raise UpstreamError(
            f"upstream {where} failed for {repo_id}: {_first_line(exc)}", upstream=where
        ) from None
    except LocalEntryNotFoundError as exc:
        raise UpstreamError(
            f"cannot download {repo_id} from {where}: {_first_line(exc)}", upstream=where
        ) from None
    except json.JSONDecodeError as exc:
        raise UpstreamError(
            f"upstream {where} answered with malformed JSON for {repo_id}: {_first_line(exc)}",
            upstream=where,
        ) from None
    except ValueError as exc:  # huggingface_hub refusing a hostile file name ('..', absolute)
        raise UpstreamError(
            f"upstream {where} sent {repo_id} with {_first_line(exc)}", upstream=where
        ) from None
    except (TypeError, KeyError, AttributeError, IndexError, AssertionError) as exc:
        # huggingface_hub reading a JSON document of the wrong shape (a list for an object, ...)
        raise UpstreamError(
            f"upstream {where} answered with an unexpected document for {repo_id} "
            f"({type(exc).__name__}: {_first_line(exc)}): not a Hugging Face-compatible endpoint?",
            upstream=where,
        ) from None
    except OSError as exc:
        raise UpstreamError(
            f"cannot download {repo_id} from {where}: {exc.strerror or exc}", upstream=where
        ) from None
    except Exception as exc:
        if not isinstance(exc, _transport_errors()):
            raise
        raise UpstreamError(
            f"cannot download {repo_id} from {where}: {type(exc).__name__}: {_first_line(exc)}",
            upstream=where,
        ) from None
    if not isinstance(path, str):  # dry_run=False always returns the folder
        raise UpstreamError(f"unexpected answer from huggingface_hub for {repo_id}")
    return Path(path)


def _byte_cap(limit: int, what: str) -> Any:
    """A progress-bar class for ``snapshot_download`` that stops the download past ``limit`` bytes.

    huggingface_hub has no byte limit of its own; it reports every chunk it writes to the byte bars
    it makes with the ``tqdm_class`` it is given (2.x: one bar counting transfers, one counting
    what is written), so a bar that raises once its count passes the limit ends the download
    within one chunk of it. Each bar counts on its own (both see the same bytes).
    """
    from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

    class _Capped(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._mw_bytes = kwargs.get("unit") == "B"
            self._mw_seen = 0
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

        def update(self, n: float | None = 1) -> bool | None:
            if self._mw_bytes and n:
                self._mw_seen += int(n)
                if self._mw_seen > limit:
                    raise TooLarge(
                        f"{what}: the upstream sent more than the {limit} bytes it announced; "
                        "the import was stopped and nothing was stored",
                        limit=limit,
                    )
            return super().update(n)  # type: ignore[no-any-return]

    return _Capped


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's errors (broken answers, timeouts): httpx2 for huggingface_hub 2, httpx
    for 1. Imported only here, when a download already failed."""
    import importlib

    found: list[type[BaseException]] = []
    for module in ("httpx2", "httpx"):
        try:
            cls = getattr(importlib.import_module(module), "HTTPError", None)
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
