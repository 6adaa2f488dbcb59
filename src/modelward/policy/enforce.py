"""Carry out ``quarantine`` decisions: group each subject with the rest of its model, then vault it.

A decision names one file; quarantining only that file can leave a runtime with half a model, or
leave the same weights reachable under another name. So the subject grows to its model:

- an **Ollama** blob or manifest: every manifest that names it (``metadata["ollama"]["manifests"]``),
  and every blob those manifests reference that no other manifest in the store references (read
  from the manifests on disk: config, layers; digests checked against Ollama's own pattern);
- a **Hugging Face** cache file: every inventoried file of the same repo and revision that no other
  revision uses. The snapshot's relative links are left as they are (dangling while quarantined:
  a loader fails with "file not found"; a restore brings them back to life), and a note is left
  beside each of them too (``snapshots/<rev>/<file>.modelward-quarantine.txt``: the path the user
  knows), not only beside the blob;
- anything else: the file alone.

The decision's own file must still be the one it was about: when the decision carries a SHA-256,
the vault checks the moved bytes against it and leaves the model in place when they differ
(the file was replaced since the inventory), which counts as a failure.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelward.policy.decision import Decision
from modelward.policy.journal import VaultError
from modelward.policy.vault import AlreadyQuarantined, Vault
from modelward.report.text import visible

_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_BLOB = re.compile(r"sha256-[0-9a-f]{64}")
MAX_MANIFEST = 1 << 20
MAX_MANIFESTS = 10_000


def _artifacts(inventory: Any) -> list[Mapping[str, Any]]:
    doc = inventory.to_dict() if hasattr(inventory, "to_dict") else inventory
    arts = doc.get("artifacts", []) if isinstance(doc, Mapping) else []
    return [a for a in arts if isinstance(a, Mapping) and isinstance(a.get("path"), str)]


def _meta(art: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    meta = art.get("metadata")
    inner = meta.get(key) if isinstance(meta, Mapping) else None
    return inner if isinstance(inner, Mapping) else {}


def _source(art: Mapping[str, Any]) -> Mapping[str, Any]:
    src = art.get("source")
    return src if isinstance(src, Mapping) else {}


# ------------------------------------------------------------------------- ollama
def _models_root(manifest: Path) -> Path | None:
    """``<models>`` of ``<models>/manifests/<registry>/<namespace>/<model>/<tag>``."""
    parents = manifest.parents
    if len(parents) > 4 and parents[3].name == "manifests":
        return parents[4]
    return None


def _manifest_digests(path: Path) -> set[str] | None:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_MANIFEST + 1)
        doc = json.loads(raw) if len(raw) <= MAX_MANIFEST else None
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    out = set()
    layers = doc.get("layers")
    items = [doc.get("config"), *(layers if isinstance(layers, list) else [])]
    for item in items:
        digest = item.get("digest") if isinstance(item, dict) else None
        m = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
        if m:
            out.add(m.group(1).lower())
    return out


def _all_manifests(models: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(models / "manifests"):
        depth = len(Path(dirpath).relative_to(models / "manifests").parts)
        if depth >= 3:
            dirnames.clear()
        if depth == 3:
            out += [Path(dirpath) / f for f in filenames]
        if len(out) >= MAX_MANIFESTS:
            break
    return out


def _store_root(path: Path) -> Path | None:
    """The Ollama store (``<models>``) ``path`` is a manifest or a blob of, else ``None``."""
    if path.parent.name == "blobs" and _BLOB.fullmatch(path.name):
        return path.parent.parent
    return _models_root(path)


def _ollama_group(art: Mapping[str, Any]) -> list[Path]:
    """The artifact with its manifests and their unshared blobs: only files inside the
    ``manifests/`` and ``blobs/`` folders of the artifact's own store are ever added (whatever
    the inventory's metadata lists)."""
    meta = _meta(art, "ollama")
    own = Path(os.path.abspath(art["path"]))
    models = _store_root(own)
    if models is None:
        return [Path(art["path"])]
    listed = [m for m in meta.get("manifests") or [] if isinstance(m, str)]
    if meta.get("role") == "manifest":
        listed.append(str(own))
    targets = set()
    for m in listed:
        path = Path(os.path.normpath(os.path.abspath(m)))
        if _models_root(path) == models and path.is_file() and not path.is_symlink():
            targets.add(path)
    if not targets:
        return [Path(art["path"])]
    mine: set[str] = set()
    others: set[str] = set()
    for manifest in _all_manifests(models):
        digests = _manifest_digests(manifest)
        if manifest in targets:
            mine |= digests or set()
        elif digests is None:
            return [Path(art["path"]), *sorted(targets)]  # unreadable: do not guess what it uses
        else:
            others |= digests
    blobs = [models / "blobs" / f"sha256-{d}" for d in sorted(mine - others)]
    group = {Path(art["path"]), *targets, *(b for b in blobs if b.is_file() and not b.is_symlink())}
    return sorted(group)


# ------------------------------------------------------------------------- hugging face
def _hf_group(art: Mapping[str, Any], arts: Iterable[Mapping[str, Any]]) -> list[Path]:
    src = _source(art)
    repo, revision = src.get("repo"), src.get("revision")
    group = {Path(art["path"])}
    if not repo or not revision:
        return sorted(group)
    for other in arts:
        osrc = _source(other)
        if osrc.get("kind") != "huggingface" or osrc.get("repo") != repo:
            continue
        revs = _meta(other, "huggingface").get("revisions") or []
        used = {r.get("revision") for r in revs if isinstance(r, Mapping)} or {osrc.get("revision")}
        if used == {revision}:
            group.add(Path(other["path"]))
    return sorted(group)


def _hf_links(art: Mapping[str, Any]) -> list[str]:
    """The snapshot paths a Hugging Face blob is known by (``<repo>/snapshots/<rev>/<path>``):
    the links the user's code opens. The vault keeps only those that are links to the blob."""
    blob = Path(os.path.abspath(art["path"]))
    if blob.parent.name != "blobs":
        return []
    snapshots = blob.parent.parent / "snapshots"
    out = []
    for rev in _meta(art, "huggingface").get("revisions") or []:
        if not isinstance(rev, Mapping):
            continue
        revision, rel = rev.get("revision"), rev.get("path")
        if not isinstance(revision, str) or not isinstance(rel, str) or not revision or not rel:
            continue
        link = os.path.normpath(snapshots / revision / rel)
        if link.startswith(f"{snapshots}{os.sep}"):
            out.append(link)
    return out


def model_links(group: Sequence[Path], arts: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """For each file of ``group`` (a Hugging Face blob), the snapshot links the user knows it by."""
    by_path = {os.path.abspath(a["path"]): a for a in arts}
    out = {}
    for p in group:
        art = by_path.get(os.path.abspath(p))
        if art is not None and _source(art).get("kind") == "huggingface":
            links = _hf_links(art)
            if links:
                out[os.path.abspath(p)] = links
    return out


def model_group(art: Mapping[str, Any], arts: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Every file that goes into the vault together with the artifact ``art``."""
    kind = _source(art).get("kind")
    if kind == "ollama":
        return _ollama_group(art)
    if kind == "huggingface":
        return _hf_group(art, arts)
    return [Path(art["path"])]


@dataclass(slots=True)
class Outcome:
    """What enforcement did: one line per model, and how many could not be done as decided."""

    lines: list[str] = field(default_factory=list)
    failed: int = 0


def expected_digest(d: Decision) -> dict[str, str]:
    """The SHA-256 the decision was about, keyed by its path (none when it has no digest)."""
    sha = (d.subject.sha256 or "").lower().removeprefix("sha256:")
    if d.subject.path and _SHA256.fullmatch(sha):
        return {os.path.abspath(d.subject.path): sha}
    return {}


def quarantine_decisions(
    decisions: Iterable[Decision], inventory: Any, vault: Vault | None, apply: bool
) -> list[str]:
    """Quarantine the subjects of ``quarantine`` decisions (each with its whole model) into
    ``vault`` when ``apply``; returns one line per group saying what was (or would be) done."""
    return enforce_quarantine(decisions, inventory, vault, apply).lines


def enforce_quarantine(
    decisions: Iterable[Decision], inventory: Any, vault: Vault | None, apply: bool
) -> Outcome:
    """:func:`quarantine_decisions` with the count of models that could not be quarantined.

    A decision's file that no longer has the SHA-256 the decision was about (the inventory is
    older than the file) is not quarantined: the vault checks the bytes it moves against that
    digest and puts everything back when they differ. That counts as a failure."""
    if apply and vault is None:
        raise VaultError("a vault is needed to apply quarantine decisions")
    arts = _artifacts(inventory)
    by_path = {os.path.abspath(a["path"]): a for a in arts}
    done: set[Path] = set()
    out = Outcome()
    if apply and vault is not None:
        out.lines += [f"recovered: {visible(line)}" for line in vault.recovered]
    for d in decisions:
        if d.action != "quarantine" or d.subject.kind != "artifact" or not d.subject.path:
            continue
        path = os.path.abspath(d.subject.path)
        art = by_path.get(path)
        group = model_group(art, arts) if art is not None else [Path(path)]
        group = [p for p in group if p not in done]
        if not group:
            continue
        done.update(group)
        src = _source(art) if art is not None else {}
        # names and messages shown one per line: a newline in a file name must not forge a line
        name = visible(str(src.get("name") or src.get("repo") or "a model"))
        what = f"{len(group)} files of {name}" if len(group) > 1 else visible(str(group[0]))
        listing = "".join(f"\n  {visible(str(p))}" for p in group) if len(group) > 1 else ""
        why = f"[{visible(d.rule)}] {visible(d.message)}"
        if not apply:
            out.lines.append(f"would quarantine {what} {why}{listing}")
            continue
        assert vault is not None
        try:
            entry = vault.quarantine(
                group,
                d.message,
                d.rule,
                expected=expected_digest(d),
                aliases=model_links(group, arts),
            )
        except AlreadyQuarantined as exc:
            out.lines.append(f"already quarantined {what} as {exc.entry.id} (by another run)")
            continue
        except VaultError as exc:
            out.lines.append(f"could not quarantine {what}: {visible(exc.diagnostics())}")
            out.failed += 1
            continue
        out.lines.append(f"quarantined {what} as {entry.id} {why}{listing}")
    return out
