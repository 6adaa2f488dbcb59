"""The Hugging Face hub cache and ``hf download --local-dir`` folders, parsed from disk (no library).

Cache layout (huggingface/hub-docs ``docs/hub/local-cache.md``)::

    <cache>/models--org--name/refs/<ref>                 a 40-hex commit per ref (main, tags, refs/pr/1)
    <cache>/models--org--name/snapshots/<commit>/<path>  relative links to ../../blobs/<hash>
    <cache>/models--org--name/blobs/<hash>               64 hex = LFS SHA-256, 40 hex = git blob SHA-1
    <cache>/models--org--name/blobs/<hash>.incomplete    a download in progress or aborted
    <cache>/models--org--name/.no_exist/<commit>/<path>  files a library looked for and did not find

Decisions:

- Items are the files a scanner can say something about: weights and serialised objects (by
  extension, :data:`MODEL_SUFFIXES`) and the configs the scanner reads for chat templates and
  remote code (:data:`CONFIG_NAMES`). Python files are not items; their paths are listed in
  ``metadata["huggingface"]["remote_code"]`` (code ``trust_remote_code=True`` would run).
- ``models--``, ``datasets--`` and ``spaces--`` are all parsed (a dataset can hold pickles); the
  repo of a dataset is ``datasets/org/name`` and of a Space ``spaces/org/name``, as in Hub URLs.
- One item per blob (the inventory keys artifacts by path): a blob in several revisions is one item
  whose source revision is the one ``main`` points at (else another ref's, else the first commit in
  sorted order); ``metadata["huggingface"]["revisions"]`` lists every (revision, path, refs).
- Windows' degraded mode (real files in ``snapshots/``) gives items whose path is the snapshot file.
- Store metadata lives under ``metadata["huggingface"]``; nothing is hashed here, and tokens
  (``$HF_HOME/token``, ``stored_tokens``) are never read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelward.inventory.fsread import read_bounded
from modelward.inventory.stores.base import StoreItem, StoreResult, env_path
from modelward.inventory.stores.ollama import license_function
from modelward.models import CollectError, Finding, License, Severity, Sha256, Source
from modelward.scan.rules import rule

MODEL_SUFFIXES = frozenset(
    {
        ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".ggml", ".onnx", ".h5", ".hdf5",
        ".keras", ".msgpack", ".pkl", ".pickle", ".joblib", ".npz", ".npy", ".tflite", ".mlmodel",
        ".pb", ".nemo", ".llamafile", ".pdparams", ".mar", ".jinja",
    }
)  # fmt: skip
CONFIG_NAMES = frozenset({"config.json", "tokenizer_config.json", "chat_template.json"})
REPO_TYPES = {"models": "", "datasets": "datasets/", "spaces": "spaces/"}
_REPO_PREFIXES = tuple(f"{t}--" for t in REPO_TYPES)
MAX_REF = 4096
MAX_CARD = 256 << 10
MAX_METADATA = 4096
MAX_DEPTH = 24
MAX_FILES_PER_SNAPSHOT = 50_000
MAX_NO_EXIST = 64

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")

INCOMPLETE = rule(
    "huggingface.incomplete-download",
    Severity.INFO,
    "An interrupted or running Hugging Face download",
    "Finish the download (it resumes) or delete the .incomplete file.",
)
OUTSIDE = rule(
    "huggingface.link-outside-blobs",
    Severity.MEDIUM,
    "A file in a Hugging Face snapshot links outside its repository's blobs folder",
    "The cache was altered by hand or by another program: a loader would read the linked file "
    "as this repo's file. Delete the repo from the cache (`hf cache delete`) and download it again.",
)


def _finding(message: str, evidence: str, location: str) -> Finding:
    return Finding(
        rule=INCOMPLETE.id,
        severity=INCOMPLETE.severity,
        message=message,
        evidence=evidence[:500],
        location=location,
        remediation=INCOMPLETE.remediation,
    )


def is_model_file(name: str) -> bool:
    """True for the file names this store reports (weights, pickles, scanned configs)."""
    if name in CONFIG_NAMES:
        return True
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in MODEL_SUFFIXES


def repo_id(folder: str) -> tuple[str, str] | None:
    """``("models", "org/name")`` for ``models--org--name``; None for any other folder name."""
    parts = folder.split("--")
    if len(parts) < 2 or parts[0] not in REPO_TYPES or not all(parts[1:]):
        return None
    return parts[0], "/".join(parts[1:])


def _card_license(text: str, evidence: str = "model card") -> License | None:
    fn = license_function("from_model_card")
    if fn is None:
        return None
    try:
        found = fn(text)
    except Exception:  # another module's bug must not stop the store walk
        return None
    if not isinstance(found, License):
        return None
    return found if found.evidence else License(found.id, found.name, evidence)


def _read_card(path: str) -> License | None:
    raw = read_bounded(path, MAX_CARD)
    if isinstance(raw, str):
        return None
    return _card_license(raw.decode("utf-8", "replace"))


@dataclass(slots=True)
class _Hit:
    """One blob (or degraded-mode file) as the snapshots name it."""

    path: str
    sha256: Sha256 | None
    blob: str | None
    revisions: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


class HuggingFaceStore:
    """The hub cache (``HF_HUB_CACHE``, ``$HF_HOME/hub``, legacy variables, ``~/.cache/huggingface/hub``),
    or one repo folder of a cache found anywhere (:meth:`spot`)."""

    kind = "huggingface"

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        out: list[Path] = []
        for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
            p = env_path(env, name)
            if p is not None:
                out.append(p)
        hf_home = env_path(env, "HF_HOME")
        if hf_home is not None:
            out.append(hf_home / "hub")
        for name in ("TRANSFORMERS_CACHE", "PYTORCH_TRANSFORMERS_CACHE"):
            p = env_path(env, name)
            if p is not None:
                out.append(p)
        xdg = env_path(env, "XDG_CACHE_HOME")
        if xdg is not None:
            out.append(xdg / "huggingface" / "hub")
        out.append(home / ".cache" / "huggingface" / "hub")  # Linux, macOS and Windows alike
        return list(dict.fromkeys(out))

    def spot(self, folder: str, name: str) -> str | None:
        """A repo folder (``models--org--name``, ``datasets--``, ``spaces--``) with ``blobs`` or
        ``snapshots``, anywhere: the folder itself (:meth:`collect` parses one repo as well as a
        cache). A folder merely named like one is walked as any other."""
        if not name.startswith(_REPO_PREFIXES) or repo_id(name) is None:
            return None
        for part in ("snapshots", "blobs"):
            if os.path.isdir(os.path.join(folder, part)):
                return folder
        return None

    def collect(self, root: Path) -> StoreResult:
        result = StoreResult()
        ident = repo_id(root.name)
        if ident is not None and self.spot(str(root), root.name) is not None:
            _collect_repo(str(root), REPO_TYPES[ident[0]] + ident[1], ident[0], result)
            return result
        try:
            with os.scandir(root) as it:
                repos = sorted((e.name, e.path) for e in it if repo_id(e.name) and _is_dir(e))
        except OSError as exc:
            result.errors.append(CollectError(str(root), f"cannot list: {exc.strerror or exc}"))
            return result
        for name, path in repos:
            ident = repo_id(name)
            assert ident is not None
            _collect_repo(path, REPO_TYPES[ident[0]] + ident[1], ident[0], result)
        return result


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _listdir(path: str, result: StoreResult | None = None) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except FileNotFoundError:
        return []
    except OSError as exc:
        if result is not None:
            result.errors.append(CollectError(path, f"cannot list: {exc.strerror or exc}"))
        return []


def _refs(repo: str, result: StoreResult) -> dict[str, list[str]]:
    """Commit -> the refs naming it (``main``, ``v1.0``, ``refs/pr/1``); bad refs are errors."""
    out: dict[str, list[str]] = {}
    stack: list[tuple[str, str]] = [(os.path.join(repo, "refs"), "")]
    while stack:
        folder, prefix = stack.pop()
        for entry in _listdir(folder, result):
            name = prefix + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if name.count("/") < 4:
                    stack.append((entry.path, name + "/"))
                continue
            raw = read_bounded(entry.path, MAX_REF)
            text = raw.decode("ascii", "replace").strip() if isinstance(raw, bytes) else ""
            if isinstance(raw, str) or not _HEX40.fullmatch(text):
                why = raw if isinstance(raw, str) else "the ref is not a 40-hex commit id"
                result.errors.append(CollectError(entry.path, why))
                continue
            out.setdefault(text, []).append(name)
    return out


def _no_exist(repo: str, commit: str) -> list[str]:
    out: list[str] = []
    stack = [(os.path.join(repo, ".no_exist", commit), "")]
    while stack and len(out) < MAX_NO_EXIST:
        folder, prefix = stack.pop()
        for entry in _listdir(folder):
            try:
                if entry.is_dir(follow_symlinks=False):
                    if prefix.count("/") < MAX_DEPTH:
                        stack.append((entry.path, prefix + entry.name + "/"))
                    continue
            except OSError:
                continue
            out.append(prefix + entry.name)
    return sorted(out)[:MAX_NO_EXIST]


def _collect_repo(repo: str, rid: str, rtype: str, result: StoreResult) -> None:
    parts = {e.name for e in _listdir(repo, result)}  # one listing instead of failing opens
    blobs = (
        {e.name: e for e in _listdir(os.path.join(repo, "blobs"), result)}
        if "blobs" in parts
        else {}
    )
    refs = _refs(repo, result) if "refs" in parts else {}
    has_no_exist = ".no_exist" in parts
    hits: dict[str, _Hit] = {}
    remote_code: set[str] = set()
    licenses: dict[str, License | None] = {}
    snaps = _listdir(os.path.join(repo, "snapshots"), result) if "snapshots" in parts else []
    for snap in sorted(snaps, key=lambda e: e.name):
        try:
            if not snap.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        commit = snap.name
        card: str | None = None
        for rel, entry in _walk_snapshot(snap.path, result):
            if rel == "README.md":
                card = entry.path
            if rel.endswith(".py"):
                remote_code.add(rel)
            if not is_model_file(rel.rsplit("/", 1)[-1]):
                continue
            hit = _resolve(entry, rel, repo, blobs, result)
            if hit is None:
                continue
            key = hit.path
            hit = hits.setdefault(key, hit)
            hit.revisions.append(
                {"revision": commit, "path": rel, "refs": sorted(refs.get(commit, []))}
            )
        if hits and card is not None and commit not in licenses:
            licenses[commit] = _read_card(card)
    no_exist: dict[str, list[str]] = {}
    for _, hit in sorted(hits.items()):
        primary = min(hit.revisions, key=_rank)
        meta: dict[str, Any] = {
            "repo_type": rtype,
            "path_in_repo": primary["path"],
            "refs": primary["refs"],
            "revisions": sorted(hit.revisions, key=lambda r: (r["revision"], r["path"])),
        }
        if hit.blob is None:
            meta["degraded"] = True  # a real file in snapshots/ (Windows without symlinks)
        if remote_code:
            meta["remote_code"] = sorted(remote_code)[:64]
        if primary["revision"] not in no_exist:
            tried_here = _no_exist(repo, primary["revision"]) if has_no_exist else []
            no_exist[primary["revision"]] = tried_here
        tried = no_exist[primary["revision"]]
        if tried:
            meta["no_exist"] = tried
        result.items.append(
            StoreItem(
                path=hit.path,
                source=Source(
                    "huggingface", name=primary["path"], repo=rid, revision=primary["revision"]
                ),
                sha256=hit.sha256,
                license=licenses.get(primary["revision"]),
                metadata={"huggingface": meta},
                findings=tuple(hit.findings),
            )
        )
    for name, entry in sorted(blobs.items()):
        if name.endswith(".incomplete"):
            result.items.append(
                _incomplete_item(entry.path, name[: -len(".incomplete")], rid, rtype)
            )


def _rank(rev: dict[str, Any]) -> tuple[int, str, str]:
    refs = rev["refs"]
    return (0 if "main" in refs else 1 if refs else 2, rev["revision"], rev["path"])


def _incomplete_item(path: str, etag: str, rid: str | None, rtype: str | None) -> StoreItem:
    meta: dict[str, Any] = {"role": "incomplete", "expected_etag": etag}
    if rtype is not None:
        meta["repo_type"] = rtype
    return StoreItem(
        path=path,
        source=Source("huggingface", repo=rid),
        metadata={"huggingface": meta},
        findings=(_finding("A download of this file did not finish (or is running).", etag, path),),
    )


def _walk_snapshot(top: str, result: StoreResult) -> list[tuple[str, os.DirEntry[str]]]:
    """(path in repo, entry) of every non-folder under ``top``; links to folders are not followed."""
    out: list[tuple[str, os.DirEntry[str]]] = []
    stack: list[tuple[str, str, int]] = [(top, "", 0)]
    while stack and len(out) < MAX_FILES_PER_SNAPSHOT:
        folder, prefix, depth = stack.pop()
        for entry in _listdir(folder, result):
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if depth < MAX_DEPTH:
                    stack.append((entry.path, prefix + entry.name + "/", depth + 1))
                continue
            out.append((prefix + entry.name, entry))
    return out


def _resolve(
    entry: os.DirEntry[str],
    rel: str,
    repo: str,
    blobs: dict[str, os.DirEntry[str]],
    result: StoreResult,
) -> _Hit | None:
    """The blob a snapshot file names (by reading its link, never by following it); None on error."""
    try:
        is_link = entry.is_symlink()
    except OSError:
        return None
    if not is_link:
        try:
            regular = entry.is_file(follow_symlinks=False)
        except OSError:
            regular = False
        return _Hit(path=entry.path, sha256=None, blob=None) if regular else None
    try:
        target = os.readlink(entry.path)
    except OSError as exc:
        result.errors.append(CollectError(entry.path, f"cannot read link: {exc.strerror or exc}"))
        return None
    where = os.path.normpath(os.path.join(os.path.dirname(entry.path), target))
    name = os.path.basename(where)
    if os.path.dirname(where) != os.path.normpath(os.path.join(repo, "blobs")):
        finding = Finding(
            rule=OUTSIDE.id,
            severity=OUTSIDE.severity,
            message=f"{rel} links to a file outside the repository's blobs folder.",
            evidence=target[:500],
            location=entry.path,
            remediation=OUTSIDE.remediation,
        )
        return _Hit(path=entry.path, sha256=None, blob=None, findings=[finding])
    blob = blobs.get(name)
    try:
        ok = blob is not None and blob.is_file()
    except OSError:
        ok = False
    if not ok:
        result.errors.append(
            CollectError(entry.path, f"broken link: blob {name} is missing or unreadable")
        )
        return None
    sha = Sha256(name) if _HEX64.fullmatch(name) else None
    return _Hit(path=where, sha256=sha, blob=name)


STORE = HuggingFaceStore()


# ---------------------------------------------------------------------------- --local-dir downloads
def local_dir_items(folder: Path) -> StoreResult:
    """Items of an ``hf download --local-dir FOLDER`` download, from its ``.cache/huggingface/download``.

    Each ``<path>.metadata`` there holds the commit (line 1), the etag (line 2: the SHA-256 for LFS
    files) and the download time (line 3). A file modified after that time has no trusted digest.
    The repo id is not recorded there, so ``source.repo`` is None.
    """
    result = StoreResult()
    meta_root = os.path.join(folder, ".cache", "huggingface", "download")
    card = os.path.join(folder, "README.md")
    lic = _read_card(card) if os.path.isfile(card) else None
    for rel, entry in _walk_snapshot(meta_root, result):
        if rel.endswith(".incomplete"):
            result.items.append(
                _incomplete_item(entry.path, rel[: -len(".incomplete")], None, None)
            )
            continue
        if not rel.endswith(".metadata"):
            continue
        rel = rel[: -len(".metadata")]
        if not is_model_file(rel.rsplit("/", 1)[-1]):
            continue
        target = os.path.join(folder, *rel.split("/"))
        try:
            st = os.stat(target)
        except OSError:
            continue  # recorded but deleted since: nothing to report
        raw = read_bounded(entry.path, MAX_METADATA)
        lines = raw.decode("utf-8", "replace").splitlines() if isinstance(raw, bytes) else []
        commit = lines[0].strip() if lines else ""
        etag = lines[1].strip().strip('"') if len(lines) > 1 else ""
        try:
            when = float(lines[2].strip()) if len(lines) > 2 else None
        except ValueError:
            when = None
        if not _HEX40.fullmatch(commit):
            result.errors.append(CollectError(entry.path, "the download metadata has no commit id"))
            commit = ""
        meta: dict[str, Any] = {"local_dir": str(folder), "path_in_repo": rel}
        if etag:
            meta["etag"] = etag[:100]
        modified = when is None or st.st_mtime > when + 1
        if modified:
            meta["modified_after_download"] = True
        sha = Sha256(etag) if _HEX64.fullmatch(etag) and not modified else None
        result.items.append(
            StoreItem(
                path=target,
                source=Source("huggingface", name=rel, revision=commit or None),
                sha256=sha,
                license=lic,
                metadata={"huggingface": meta},
            )
        )
    return result
