"""Parse a pushed OCI manifest (oras, ModelPack, ``ollama push``) into the files of a revision.

Input is hostile: the parser bounds the manifest's size, layer count and annotations, accepts only a
single-platform OCI image manifest or Docker v2 manifest whose layers each name one file, checks
every path with :func:`modelward.hub.names.validate_path`, and raises only :class:`HubError`
subclasses (4xx) for any input bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from modelward.errors import BadRequest, InvalidName, TooLarge
from modelward.hub.names import validate_path
from modelward.hub.oci import (
    ANNOTATION_FILEPATH,
    ANNOTATION_TITLE,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    OLLAMA_KINDS,
    OLLAMA_LAYER_PREFIX,
    OLLAMA_MODEL_PATH,
    Descriptor,
    sha256_digest,
)

ORAS_UNPACK: Final = "io.deis.oras.content.unpack"
# Limits for a pushed manifest: the distribution spec asks registries to take at least 4 MiB.
MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
MAX_LAYERS: Final = 4096
MAX_ANNOTATIONS: Final = 64
MAX_ANNOTATION_BYTES: Final = 64 * 1024

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")


class ManifestInvalid(BadRequest):
    """A pushed manifest that is not a single-platform OCI/Docker v2 manifest of named files."""

    code = "manifest_invalid"
    oci_code = "MANIFEST_INVALID"


class ManifestUnsupported(BadRequest):
    """A well-formed manifest of a kind the hub does not take (index, tar layers, tensors)."""

    code = "unsupported"
    oci_code = "UNSUPPORTED"


@dataclass(frozen=True, slots=True)
class PushedFile:
    """One layer of a pushed manifest, as a file of the revision it becomes."""

    path: str
    sha256: str
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class PushedManifest:
    """A parsed, validated manifest from ``PUT /v2/<name>/manifests/<ref>``."""

    media_type: str
    digest: str
    config: Descriptor
    files: tuple[PushedFile, ...]
    annotations: Mapping[str, str]
    artifact_type: str | None = None
    has_subject: bool = False


# --------------------------------------------------------------------------- pushed manifests
def _bad(message: str, **detail: Any) -> ManifestInvalid:
    return ManifestInvalid(message, **detail)


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _bad(f"{where} is not a JSON object")
    mt, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(mt, str) or not mt or len(mt) > 255:
        raise _bad(f"{where} has no valid mediaType")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise _bad(f"{where} digest {str(digest)[:80]!r} is not sha256:<64 lowercase hex>")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > 2**53:
        raise _bad(f"{where} size is not a non-negative integer")
    ann = value.get("annotations")
    if ann is None:
        ann = {}
    if not isinstance(ann, dict) or len(ann) > MAX_ANNOTATIONS:
        raise _bad(f"{where} annotations must be an object of at most {MAX_ANNOTATIONS} strings")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()):
        raise _bad(f"{where} annotations must map strings to strings")
    if sum(len(k) + len(v) for k, v in ann.items()) > MAX_ANNOTATION_BYTES:
        raise _bad(f"{where} annotations are larger than {MAX_ANNOTATION_BYTES} characters")
    return Descriptor(mt, digest, size, dict(ann))


def parse_pushed_manifest(
    data: bytes,
    content_type: str | None = None,
    *,
    max_bytes: int = MAX_MANIFEST_BYTES,
    max_layers: int = MAX_LAYERS,
) -> PushedManifest:
    """Validate a pushed manifest and turn its layers into revision files.

    Accepts an OCI image manifest (``oras push``, ModelPack ``.raw`` layers) or a Docker v2 manifest
    with Ollama layers. A file's path is its ``org.cncf.model.filepath`` annotation, else its
    ``org.opencontainers.image.title``; Ollama layers become ``model.gguf`` and ``ollama/<kind>``.
    Raises :class:`ManifestInvalid`, :class:`ManifestUnsupported`, :class:`InvalidName` (a bad
    path, naming the layer) or :class:`TooLarge`; never anything else for any input bytes.
    """
    if len(data) > max_bytes:
        raise TooLarge(f"manifest is {len(data)} bytes; the limit is {max_bytes}", limit=max_bytes)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise _bad(f"manifest is not JSON: {str(e)[:200]}") from None
    if not isinstance(doc, dict):
        raise _bad("manifest is not a JSON object")
    if doc.get("schemaVersion") != 2 or isinstance(doc.get("schemaVersion"), bool):
        raise _bad("manifest schemaVersion must be 2")
    declared = doc.get("mediaType")
    ctype = (content_type or "").split(";", 1)[0].strip().lower() or None
    media_type = declared if isinstance(declared, str) else ctype or OCI_MANIFEST
    if declared is not None and not isinstance(declared, str):
        raise _bad("manifest mediaType must be a string")
    if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST) or "manifests" in doc:
        raise ManifestUnsupported("image indexes are not supported: push one model manifest")
    if ctype and declared and ctype != declared:
        raise _bad(f"Content-Type {ctype!r} does not match the manifest's mediaType {declared!r}")
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise ManifestUnsupported(f"manifest media type {media_type!r} is not supported")
    config = _descriptor(doc.get("config"), "config")
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list):
        raise _bad("manifest has no layers list")
    if not raw_layers:
        raise _bad("manifest has no layers: push at least one file")
    if len(raw_layers) > max_layers:
        raise TooLarge(f"manifest has {len(raw_layers)} layers; the limit is {max_layers}")
    ann = doc.get("annotations")
    ann = {} if ann is None else ann
    if not isinstance(ann, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in ann.items()
    ):
        raise _bad("manifest annotations must map strings to strings")
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _bad("artifactType must be a string")

    files: list[PushedFile] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_layers):
        layer = _descriptor(raw, f"layer {i}")
        path = _layer_path(layer, i)
        if path in seen:
            raise _bad(f"layers {seen[path]} and {i} both name the file {path!r}", path=path)
        seen[path] = i
        files.append(
            PushedFile(path, layer.digest.removeprefix("sha256:"), layer.size, layer.media_type)
        )
    return PushedManifest(
        media_type=media_type,
        digest=sha256_digest(data),
        config=config,
        files=tuple(files),
        annotations=dict(ann),
        artifact_type=artifact_type,
        has_subject=doc.get("subject") is not None,
    )


def _layer_path(layer: Descriptor, i: int) -> str:
    mt = layer.media_type
    if mt.startswith(OLLAMA_LAYER_PREFIX):
        kind = mt.removeprefix(OLLAMA_LAYER_PREFIX)
        if kind == "model":
            return OLLAMA_MODEL_PATH
        if kind in OLLAMA_KINDS:
            return f"ollama/{kind}"
        raise ManifestUnsupported(
            f"layer {i}: Ollama layer type {kind!r} is not supported (only GGUF models with "
            f"{', '.join(OLLAMA_KINDS)})",
            layer=i,
        )
    packed = mt.startswith(("application/vnd.cncf.model.", "application/vnd.kitops.")) and bool(
        re.search(r"\.v1\.tar(\+gzip|\+zstd)?\Z", mt)
    )
    if packed or layer.annotations.get(ORAS_UNPACK) == "true":
        raise ManifestUnsupported(
            f"layer {i} is a packed directory ({mt}); push the files themselves", layer=i
        )
    path = layer.annotations.get(ANNOTATION_FILEPATH) or layer.annotations.get(ANNOTATION_TITLE)
    if not path:
        raise _bad(
            f"layer {i} ({layer.digest}) has no {ANNOTATION_TITLE} or {ANNOTATION_FILEPATH} "
            "annotation: every layer must name its file",
            layer=i,
        )
    try:
        return validate_path(path)
    except InvalidName as e:
        raise InvalidName(f"layer {i}: {e.message}", layer=i, path=path[:1024]) from None
