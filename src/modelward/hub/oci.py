"""OCI renderings of a revision: CNCF ModelPack-raw and Ollama manifests, referrers, negotiation.

Everything here is pure: a revision in, deterministic bytes out (sorted keys, compact separators,
no clock), so the same revision always has the same manifest digest on every replica. A ``.raw``
ModelPack layer and an Ollama model layer are a file's bytes, so every layer digest is the file's
SHA-256, the same blob the Hugging Face routes serve.

How a client gets which rendering (:func:`negotiate`): a request whose ``Accept`` names the OCI
image manifest (oras, modctl, containerd, or no ``Accept`` at all) gets the ModelPack manifest. A
request that accepts the Docker v2 manifest but not the OCI one is what ``ollama pull`` sends; it
gets the Ollama manifest when the revision is a GGUF model, else no manifest (404
``MANIFEST_UNKNOWN`` saying why).

Pushed manifests are parsed by :mod:`modelward.hub.oci_parse`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from modelward.errors import BadRequest
from modelward.hub.revision import FileEntry, RevisionView

# --------------------------------------------------------------------------- media types
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
MODELPACK_ARTIFACT: Final = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG: Final = "application/vnd.cncf.model.config.v1+json"
OLLAMA_LAYER_PREFIX: Final = "application/vnd.ollama.image."

# Referrer artifact types (what `oras discover` lists next to a model manifest).
# (The hub attaches these documents on ingest and approval; see modelward.hub.service.)
SIGNATURE_ARTIFACT: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
SCAN_ARTIFACT: Final = "application/vnd.modelward.scan.v1+json"
APPROVAL_ARTIFACT: Final = "application/vnd.modelward.approval.v1+json"

ANNOTATION_FILEPATH: Final = "org.cncf.model.filepath"
ANNOTATION_TITLE: Final = "org.opencontainers.image.title"
ANNOTATION_REVISION: Final = "org.opencontainers.image.revision"
ANNOTATION_SOURCE: Final = "org.opencontainers.image.source"
ANNOTATION_CREATED: Final = "org.opencontainers.image.created"
ANNOTATION_LICENSES: Final = "org.opencontainers.image.licenses"
ANNOTATION_REF_NAME: Final = "org.opencontainers.image.ref.name"

# The Ollama layers a revision may carry besides the GGUF model, stored as files `ollama/<kind>`,
# in the order Ollama's own `create` writes them.
OLLAMA_KINDS: Final = (
    "projector",
    "adapter",
    "license",
    "template",
    "system",
    "params",
    "messages",
)
OLLAMA_MODEL_PATH: Final = "model.gguf"

_EMPTY_JSON = b"{}"


# --------------------------------------------------------------------------- value types
@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


@dataclass(frozen=True, slots=True)
class Rendered:
    """A manifest and its config blob, ready to serve; digests are of exactly these bytes."""

    manifest: bytes
    media_type: str
    config: bytes
    config_media_type: str
    layers: tuple[Descriptor, ...]
    artifact_type: str | None = None

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)

    def descriptor(self) -> Descriptor:
        return Descriptor(
            self.media_type, self.digest, len(self.manifest), artifact_type=self.artifact_type
        )


@dataclass(frozen=True, slots=True)
class GgufInfo:
    """What the scanner learned from a GGUF header, as far as manifests care."""

    architecture: str | None = None
    quantization: str | None = None
    parameters: int | None = None
    context_length: int | None = None


# --------------------------------------------------------------------------- helpers
def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """The one byte form of every rendered document: sorted keys, compact, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _rfc3339(at: datetime) -> str:
    # SQLite hands back naive datetimes; the hub stores UTC.
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def human_count(n: int, *, upper: bool = True) -> str:
    """``8030261248 -> "8.0B"`` (Ollama's model_type style); ``upper=False`` -> ``"8.0b"`` (ModelPack)."""
    for unit, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            value = n / scale
            text = (
                f"{value:.0f}{unit}"
                if value >= 100 or value == int(value)
                else f"{value:.1f}{unit}"
            )
            return text if upper else text.lower()
    return str(n)


_WEIGHT_SUFFIXES = (
    ".safetensors", ".gguf", ".ggml", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".hdf5", ".keras",
    ".onnx", ".tflite", ".pb", ".msgpack", ".npz", ".npy", ".pkl", ".pickle", ".joblib",
    ".mlmodel", ".ot", ".llamafile", ".engine", ".plan", ".nemo", ".mar",
)  # fmt: skip
_CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".model", ".tiktoken", ".spm", ".vocab", ".toml")
_CONFIG_NAMES = frozenset({"vocab.txt", "merges.txt", "added_tokens.txt", "special_tokens.txt"})
_DOC_NAMES = ("readme", "license", "licence", "notice", "copying", "use_policy", "model_card")
_DOC_SUFFIXES = (".md", ".rst", ".txt", ".pdf", ".html", ".png", ".jpg", ".jpeg", ".gif", ".svg")
_CODE_SUFFIXES = (
    ".py",
    ".sh",
    ".ipynb",
    ".js",
    ".ts",
    ".c",
    ".cc",
    ".cpp",
    ".cu",
    ".h",
    ".rs",
    ".go",
)
_DATASET_SUFFIXES = (".csv", ".tsv", ".parquet", ".arrow", ".jsonl")


def modelpack_kind(path: str) -> str:
    """The ModelPack layer kind of a file: weight, weight.config, doc, code or dataset."""
    name = path.rsplit("/", 1)[-1].lower()
    if path in ("ollama/projector", "ollama/adapter"):
        return "weight"
    if path == "ollama/license":
        return "doc"
    if path.startswith("ollama/"):
        return "weight.config"
    if name.startswith(_DOC_NAMES):
        return "doc"
    if name.endswith(_WEIGHT_SUFFIXES) or re.search(r"\.(bin|safetensors|gguf)\.\d+", name):
        return "weight"
    if name in _CONFIG_NAMES or name.endswith(_CONFIG_SUFFIXES):
        return "weight.config"
    if name.endswith(_CODE_SUFFIXES):
        return "code"
    if name.endswith(_DATASET_SUFFIXES):
        return "dataset"
    return "doc"


def modelpack_media_type(path: str) -> str:
    return f"application/vnd.cncf.model.{modelpack_kind(path)}.v1.raw"


_FORMATS = (
    (".gguf", "gguf"),
    (".safetensors", "safetensors"),
    (".onnx", "onnx"),
    (".tflite", "tflite"),
    (".keras", "keras"),
    (".h5", "keras"),
    (".pt", "pytorch"),
    (".pth", "pytorch"),
    (".bin", "pytorch"),
    (".pb", "tensorflow"),
    (".joblib", "joblib"),
    (".pkl", "pickle"),
)


def weight_format(files: Iterable[FileEntry]) -> str | None:
    """The format of the revision's weights (``gguf``, ``safetensors``, ...) if one can be named."""
    names = [f.path.lower() for f in files if modelpack_kind(f.path) == "weight"]
    for suffix, fmt in _FORMATS:
        if any(n.endswith(suffix) for n in names):
            return fmt
    return None


def gguf_file(rev: RevisionView) -> FileEntry | None:
    """The revision's one top-level ``*.gguf`` file, or None when it has none or several."""
    found = [f for f in rev.files if "/" not in f.path and f.path.lower().endswith(".gguf")]
    return found[0] if len(found) == 1 else None


def gguf_info(rev: RevisionView, entry: FileEntry | None = None) -> GgufInfo:
    """GGUF metadata of ``entry`` (default: the revision's GGUF file) from the stored scan report."""
    entry = entry or gguf_file(rev)
    if entry is None:
        return GgufInfo()
    files = rev.scan.get("files") if isinstance(rev.scan, dict) else None
    if not isinstance(files, list):
        return GgufInfo()
    match: dict[str, Any] | None = None
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("metadata"), dict):
            continue
        path = item.get("path")
        if item.get("sha256") == entry.sha256 or (
            isinstance(path, str) and (path == entry.path or path.endswith("/" + entry.path))
        ):
            match = item
            if item.get("sha256") == entry.sha256:
                break
    if match is None:
        return GgufInfo()
    md: dict[str, Any] = match["metadata"]

    def text(key: str) -> str | None:
        v = md.get(key)
        return v if isinstance(v, str) and v else None

    def count(key: str) -> int | None:
        v = md.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    return GgufInfo(
        text("architecture"), text("quantization"), count("parameters"), count("context_length")
    )


def _licenses(rev: RevisionView) -> list[str]:
    lic = rev.license if isinstance(rev.license, dict) else {}
    for key in ("declared", "detected"):
        v = lic.get(key)
        if isinstance(v, str) and v:
            return [v]
        if isinstance(v, dict) and isinstance(v.get("id"), str) and v["id"]:
            return [v["id"]]
        if isinstance(v, list):
            names = [x for x in v if isinstance(x, str) and x]
            if names:
                return names
    return []


def _source(rev: RevisionView) -> str | None:
    src = rev.provenance.get("source") if isinstance(rev.provenance, dict) else None
    return src if isinstance(src, str) and re.match(r"https?://", src) else None


def _revision_annotations(rev: RevisionView) -> dict[str, str]:
    out = {ANNOTATION_REVISION: rev.commit, ANNOTATION_CREATED: _rfc3339(rev.created_at)}
    if src := _source(rev):
        out[ANNOTATION_SOURCE] = src
    if lic := _licenses(rev):
        out[ANNOTATION_LICENSES] = " AND ".join(lic)
    return out


# --------------------------------------------------------------------------- ModelPack
def render_modelpack(rev: RevisionView) -> Rendered:
    """The CNCF ModelPack manifest of a revision: one ``.raw`` layer per file, in path order."""
    if not rev.files:
        raise BadRequest(f"revision {rev.commit} of {rev.repo} has no files", repo=rev.repo)
    layers = tuple(
        Descriptor(
            modelpack_media_type(f.path),
            "sha256:" + f.sha256,
            f.size,
            {ANNOTATION_FILEPATH: f.path, ANNOTATION_TITLE: f.path},
        )
        for f in rev.files
    )
    info = gguf_info(rev)
    fmt = weight_format(rev.files)
    descriptor: dict[str, Any] = {
        "name": rev.repo,
        "revision": rev.commit,
        "createdAt": _rfc3339(rev.created_at),
    }
    if lic := _licenses(rev):
        descriptor["licenses"] = lic
    if src := _source(rev):
        descriptor["sourceURL"] = src
    if info.architecture:
        descriptor["family"] = info.architecture
    model_config: dict[str, Any] = {}
    if fmt:
        model_config["format"] = fmt
    if info.architecture:
        model_config["architecture"] = info.architecture
    if info.parameters:
        model_config["paramSize"] = human_count(info.parameters, upper=False)
    if info.quantization:
        model_config["quantization"] = info.quantization
    config = canonical_json(
        {
            "descriptor": descriptor,
            "config": model_config,
            "modelfs": {"type": "layers", "diffIds": [d.digest for d in layers]},
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": MODELPACK_ARTIFACT,
            "config": Descriptor(MODELPACK_CONFIG, sha256_digest(config), len(config)).to_json(),
            "layers": [d.to_json() for d in layers],
            "annotations": _revision_annotations(rev),
        }
    )
    return Rendered(manifest, OCI_MANIFEST, config, MODELPACK_CONFIG, layers, MODELPACK_ARTIFACT)


# --------------------------------------------------------------------------- Ollama
def ollama_files(rev: RevisionView) -> tuple[FileEntry, list[tuple[str, FileEntry]]] | None:
    """The GGUF file and the ``(kind, file)`` Ollama layers of a revision, or None if not GGUF."""
    model = gguf_file(rev)
    if model is None:
        return None
    extra = [(kind, f) for kind in OLLAMA_KINDS if (f := rev.file(f"ollama/{kind}")) is not None]
    return model, extra


def render_ollama(rev: RevisionView) -> Rendered | None:
    """The Ollama (Docker v2) manifest of a GGUF revision, or None when the revision is not one."""
    found = ollama_files(rev)
    if found is None:
        return None
    model, extra = found
    layers = [Descriptor(OLLAMA_LAYER_PREFIX + "model", "sha256:" + model.sha256, model.size)]
    layers += [Descriptor(OLLAMA_LAYER_PREFIX + k, "sha256:" + f.sha256, f.size) for k, f in extra]
    info = gguf_info(rev, model)
    family = info.architecture or ""
    config = canonical_json(
        {
            "model_format": "gguf",
            "model_family": family,
            "model_families": [family] if family else [],
            "model_type": human_count(info.parameters) if info.parameters else "",
            "file_type": info.quantization or "",
            # Docker's image config requires these; Ollama fills them from its own build, and
            # they mean nothing for a GGUF file. Fixed values keep the digest stable.
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [d.digest for d in layers]},
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": Descriptor(DOCKER_CONFIG, sha256_digest(config), len(config)).to_json(),
            "layers": [d.to_json() for d in layers],
        }
    )
    return Rendered(manifest, DOCKER_MANIFEST, config, DOCKER_CONFIG, tuple(layers))


# --------------------------------------------------------------------------- negotiation
def accepted_types(accept: str | None) -> list[str]:
    """Media types named in an ``Accept`` header (parameters and q-values dropped)."""
    if not accept:
        return []
    out = []
    for part in accept.split(","):
        mt = part.split(";", 1)[0].strip().lower()
        if mt:
            out.append(mt)
    return out


def negotiate(accept: str | None, *, ollama_available: bool) -> str | None:
    """Which rendering to answer a manifest GET with: ``"modelpack"``, ``"ollama"`` or None.

    ModelPack when the client takes the OCI manifest (or sends no ``Accept``, or ``*/*``); Ollama
    when it takes Docker v2 but not OCI (``ollama pull``) and the revision is a GGUF model; None
    when nothing the client accepts can be rendered.
    """
    types = accepted_types(accept)
    if not types or OCI_MANIFEST in types or "*/*" in types or "application/*" in types:
        return "modelpack"
    if DOCKER_MANIFEST in types and ollama_available:
        return "ollama"
    return None


# --------------------------------------------------------------------------- referrers
def empty_config() -> Descriptor:
    return Descriptor(OCI_EMPTY, sha256_digest(_EMPTY_JSON), len(_EMPTY_JSON))


EMPTY_CONFIG_BYTES: Final = _EMPTY_JSON


def render_referrer(
    subject: Descriptor,
    artifact_type: str,
    blob: Descriptor,
    annotations: Mapping[str, str] | None = None,
) -> Rendered:
    """An OCI 1.1 artifact manifest (one layer, empty config) that refers to ``subject``."""
    cfg = empty_config()
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": cfg.to_json(),
        "layers": [blob.to_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
    }
    if annotations:
        body["annotations"] = dict(annotations)
    return Rendered(
        canonical_json(body), OCI_MANIFEST, _EMPTY_JSON, OCI_EMPTY, (blob,), artifact_type
    )


def render_index(manifests: Sequence[Descriptor]) -> bytes:
    """The OCI image index a referrers request answers with."""
    return canonical_json(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [m.to_json() for m in manifests]}
    )
