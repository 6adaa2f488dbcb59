"""ModelPack and Ollama renderings of a revision, negotiation, referrers and the pushed-manifest parser."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import oras.oci
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelward.errors import HubError, InvalidName, TooLarge
from modelward.hub import oci, oci_parse
from modelward.hub.names import validate_path
from modelward.hub.revision import FileEntry, RevisionView, commit_id

T0 = datetime(2026, 11, 1, 12, 0, 0)


def _entry(path: str, data: bytes) -> FileEntry:
    return FileEntry(path, len(data), hashlib.sha256(data).hexdigest(), "0" * 40)


def _rev(files: list[FileEntry], scan: dict[str, Any] | None = None, **kw: Any) -> RevisionView:
    files = sorted(files, key=lambda f: f.path)
    return RevisionView(
        repo=kw.pop("repo", "org/tiny"),
        commit=commit_id(files),
        state=kw.pop("state", "approved"),
        files=tuple(files),
        created_at=kw.pop("created_at", T0),
        created_by="alice",
        scan=scan or {},
        **kw,
    )


HF_FILES = [
    _entry("config.json", b'{"model_type": "bert"}'),
    _entry("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "),
    _entry("tokenizer.json", b"{}"),
    _entry("README.md", b"# tiny"),
    _entry("modeling_tiny.py", b"print(1)"),
    _entry("sub/dir/vocab.txt", b"a\nb\n"),
]
GGUF = _entry("tiny.gguf", b"GGUF\x03\x00\x00\x00" + b"\x00" * 16)
TEMPLATE = _entry("ollama/template", b"{{ .Prompt }}")
PARAMS = _entry("ollama/params", b'{"stop": ["<|end|>"]}')
LICENSE = _entry("ollama/license", b"MIT")
GGUF_SCAN = {
    "schema": "modelward.scan/v1",
    "files": [
        {
            "path": "tiny.gguf",
            "sha256": GGUF.sha256,
            "format": "gguf",
            "metadata": {
                "architecture": "llama",
                "quantization": "Q4_K_M",
                "parameters": 1_500_000_000,
                "context_length": 2048,
            },
        }
    ],
}


# --------------------------------------------------------------------------- ModelPack
def test_modelpack_manifest_shape() -> None:
    rev = _rev(
        HF_FILES, license={"declared": "apache-2.0"}, provenance={"source": "https://hf.co/x"}
    )
    r = oci.render_modelpack(rev)
    m = json.loads(r.manifest)
    assert m["schemaVersion"] == 2
    assert m["mediaType"] == oci.OCI_MANIFEST == r.media_type
    assert m["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert m["config"] == {
        "mediaType": "application/vnd.cncf.model.config.v1+json",
        "digest": "sha256:" + hashlib.sha256(r.config).hexdigest(),
        "size": len(r.config),
    }
    assert r.digest == "sha256:" + hashlib.sha256(r.manifest).hexdigest()
    kinds = {
        layer["annotations"]["org.cncf.model.filepath"]: layer["mediaType"] for layer in m["layers"]
    }
    assert kinds == {
        "README.md": "application/vnd.cncf.model.doc.v1.raw",
        "config.json": "application/vnd.cncf.model.weight.config.v1.raw",
        "model.safetensors": "application/vnd.cncf.model.weight.v1.raw",
        "modeling_tiny.py": "application/vnd.cncf.model.code.v1.raw",
        "sub/dir/vocab.txt": "application/vnd.cncf.model.weight.config.v1.raw",
        "tokenizer.json": "application/vnd.cncf.model.weight.config.v1.raw",
    }
    for layer, f in zip(m["layers"], rev.files, strict=True):
        assert layer["digest"] == "sha256:" + f.sha256 and layer["size"] == f.size
        assert layer["annotations"]["org.opencontainers.image.title"] == f.path
    assert m["annotations"] == {
        "org.opencontainers.image.created": "2026-11-01T12:00:00Z",
        "org.opencontainers.image.licenses": "apache-2.0",
        "org.opencontainers.image.revision": rev.commit,
        "org.opencontainers.image.source": "https://hf.co/x",
    }
    cfg = json.loads(r.config)
    assert cfg["descriptor"] == {
        "name": "org/tiny",
        "revision": rev.commit,
        "createdAt": "2026-11-01T12:00:00Z",
        "licenses": ["apache-2.0"],
        "sourceURL": "https://hf.co/x",
    }
    assert cfg["config"] == {"format": "safetensors"}
    assert cfg["modelfs"] == {"type": "layers", "diffIds": [d["digest"] for d in m["layers"]]}


def test_rendering_is_deterministic() -> None:
    a = oci.render_modelpack(_rev(HF_FILES))
    b = oci.render_modelpack(_rev(list(reversed(HF_FILES)), created_at=T0.replace(tzinfo=UTC)))
    assert a.manifest == b.manifest and a.config == b.config
    # canonical JSON: sorted keys, no whitespace
    assert (
        a.manifest
        == json.dumps(json.loads(a.manifest), sort_keys=True, separators=(",", ":")).encode()
    )
    c = oci.render_modelpack(_rev(HF_FILES[:-1]))
    assert c.digest != a.digest


def test_modelpack_of_gguf_carries_scan_metadata() -> None:
    cfg = json.loads(oci.render_modelpack(_rev([GGUF], GGUF_SCAN)).config)
    assert cfg["descriptor"]["family"] == "llama"
    assert cfg["config"] == {
        "architecture": "llama",
        "format": "gguf",
        "paramSize": "1.5b",
        "quantization": "Q4_K_M",
    }


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("pytorch_model.bin", "weight"),
        ("model-00001-of-00002.safetensors", "weight"),
        ("LICENSE", "doc"),
        ("LICENSE.txt", "doc"),
        ("notes.md", "doc"),
        ("tokenizer.model", "weight.config"),
        ("generation_config.json", "weight.config"),
        ("merges.txt", "weight.config"),
        ("train.parquet", "dataset"),
        ("run.sh", "code"),
        ("ollama/projector", "weight"),
        ("ollama/license", "doc"),
        ("ollama/template", "weight.config"),
        ("mystery", "doc"),
    ],
)
def test_modelpack_kinds(path: str, kind: str) -> None:
    assert oci.modelpack_kind(path) == kind


def test_empty_revision_cannot_be_rendered() -> None:
    with pytest.raises(HubError):
        oci.render_modelpack(_rev([]))


@pytest.mark.parametrize(
    ("n", "upper", "lower"),
    [(1_500_000_000, "1.5B", "1.5b"), (8_030_261_248, "8.0B", "8.0b"), (7_000_000_000, "7B", "7b"),
     (135_000_000, "135M", "135m"), (1_234, "1.2K", "1.2k"), (999, "999", "999")],
)  # fmt: skip
def test_human_count(n: int, upper: str, lower: str) -> None:
    assert oci.human_count(n) == upper and oci.human_count(n, upper=False) == lower


# --------------------------------------------------------------------------- Ollama
def test_ollama_manifest_of_gguf_revision() -> None:
    rev = _rev([GGUF, TEMPLATE, PARAMS, LICENSE, _entry("README.md", b"x")], GGUF_SCAN)
    r = oci.render_ollama(rev)
    assert r is not None
    m = json.loads(r.manifest)
    assert m["schemaVersion"] == 2
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert m["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert m["config"]["digest"] == r.config_digest and m["config"]["size"] == len(r.config)
    assert [(x["mediaType"], x["digest"], x["size"]) for x in m["layers"]] == [
        ("application/vnd.ollama.image.model", "sha256:" + GGUF.sha256, GGUF.size),
        ("application/vnd.ollama.image.license", "sha256:" + LICENSE.sha256, LICENSE.size),
        ("application/vnd.ollama.image.template", "sha256:" + TEMPLATE.sha256, TEMPLATE.size),
        ("application/vnd.ollama.image.params", "sha256:" + PARAMS.sha256, PARAMS.size),
    ]
    cfg = json.loads(r.config)
    assert cfg["model_format"] == "gguf"
    assert cfg["model_family"] == "llama" and cfg["model_families"] == ["llama"]
    assert cfg["file_type"] == "Q4_K_M" and cfg["model_type"] == "1.5B"
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [x["digest"] for x in m["layers"]]}
    assert oci.render_ollama(rev) == r


def test_ollama_scan_match_by_path_when_sha_absent() -> None:
    scan = {"files": [{"path": "/tmp/x/tiny.gguf", "metadata": {"architecture": "qwen2"}}]}
    info = oci.gguf_info(_rev([GGUF], scan))
    assert info == oci.GgufInfo(architecture="qwen2")
    assert oci.gguf_info(_rev([GGUF], {"files": "nonsense"})) == oci.GgufInfo()


def test_no_ollama_manifest_without_exactly_one_top_level_gguf() -> None:
    assert oci.render_ollama(_rev(HF_FILES)) is None
    assert oci.render_ollama(_rev([GGUF, _entry("b.gguf", b"GGUF2")])) is None
    assert oci.render_ollama(_rev([_entry("sub/a.gguf", b"GGUF")])) is None
    r = oci.render_ollama(_rev([GGUF]))
    assert r is not None and json.loads(r.config)["model_family"] == ""


OLLAMA_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"
ORAS_ACCEPT = ", ".join(
    [oci.OCI_MANIFEST, oci.OCI_INDEX, oci.DOCKER_MANIFEST, oci.DOCKER_MANIFEST_LIST]
)


@pytest.mark.parametrize(
    ("accept", "ollama", "want"),
    [
        (OLLAMA_ACCEPT, True, "ollama"),
        (OLLAMA_ACCEPT, False, None),
        (ORAS_ACCEPT, True, "modelpack"),
        (None, True, "modelpack"),
        ("*/*", True, "modelpack"),
        (f"{oci.OCI_MANIFEST};q=0.5", False, "modelpack"),
        ("text/html", True, None),
    ],
)
def test_negotiate(accept: str | None, ollama: bool, want: str | None) -> None:
    assert oci.negotiate(accept, ollama_available=ollama) == want


# --------------------------------------------------------------------------- referrers
def test_referrer_and_index() -> None:
    rev = _rev([GGUF], GGUF_SCAN)
    subject = oci.render_modelpack(rev).descriptor()
    doc = oci.canonical_json(GGUF_SCAN)
    blob = oci.Descriptor(oci.SCAN_ARTIFACT, oci.sha256_digest(doc), len(doc))
    ref = oci.render_referrer(
        subject, oci.SCAN_ARTIFACT, blob, {"org.opencontainers.image.created": "x"}
    )
    m = json.loads(ref.manifest)
    assert m["artifactType"] == oci.SCAN_ARTIFACT
    assert m["subject"] == {
        "mediaType": oci.OCI_MANIFEST,
        "digest": subject.digest,
        "size": subject.size,
    }
    assert m["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
    }
    assert ref.config == b"{}" and ref.config_digest == m["config"]["digest"]
    index = json.loads(oci.render_index([ref.descriptor()]))
    assert index == {
        "schemaVersion": 2,
        "mediaType": oci.OCI_INDEX,
        "manifests": [
            {
                "mediaType": oci.OCI_MANIFEST,
                "digest": ref.digest,
                "size": len(ref.manifest),
                "artifactType": oci.SCAN_ARTIFACT,
            }
        ],
    }


# --------------------------------------------------------------------------- pushed manifests
def _files(pm: oci_parse.PushedManifest) -> list[tuple[str, str, int]]:
    return sorted((f.path, f.sha256, f.size) for f in pm.files)


def test_rendered_manifests_parse_back_to_their_files() -> None:
    rev = _rev(HF_FILES)
    r = oci.render_modelpack(rev)
    pm = oci_parse.parse_pushed_manifest(r.manifest, oci.OCI_MANIFEST)
    assert _files(pm) == sorted((f.path, f.sha256, f.size) for f in rev.files)
    assert pm.digest == r.digest and pm.artifact_type == oci.MODELPACK_ARTIFACT
    assert pm.config.media_type == oci.MODELPACK_CONFIG

    olr = oci.render_ollama(_rev([GGUF, TEMPLATE, PARAMS]))
    assert olr is not None
    pm = oci_parse.parse_pushed_manifest(olr.manifest, oci.DOCKER_MANIFEST + "; charset=utf-8")
    assert _files(pm) == sorted(
        [("model.gguf", GGUF.sha256, GGUF.size), ("ollama/params", PARAMS.sha256, PARAMS.size),
         ("ollama/template", TEMPLATE.sha256, TEMPLATE.size)]
    )  # fmt: skip


def test_oras_py_manifest(tmp_path: Path) -> None:
    """What `oras push` builds: default tar media type, title = file name, unknown config."""
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"abc")
    manifest = oras.oci.NewManifest()
    layer = oras.oci.NewLayer(str(f))
    layer["annotations"] = {"org.opencontainers.image.title": "weights.safetensors"}
    manifest["layers"].append(layer)
    manifest["config"], _ = oras.oci.ManifestConfig()
    pm = oci_parse.parse_pushed_manifest(json.dumps(manifest).encode(), oci.OCI_MANIFEST)
    assert _files(pm) == [("weights.safetensors", hashlib.sha256(b"abc").hexdigest(), 3)]


def _manifest(layers: list[dict[str, Any]], **extra: Any) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.unknown.config.v1+json",
            "digest": "sha256:" + "0" * 64,
            "size": 2,
        },
        "layers": layers,
        **extra,
    }
    return json.dumps(body).encode()


def _layer(
    title: str | None = "a.bin", mt: str = "application/octet-stream", **ann: str
) -> dict[str, Any]:
    annotations = dict(ann)
    if title is not None:
        annotations["org.opencontainers.image.title"] = title
    return {"mediaType": mt, "digest": "sha256:" + "1" * 64, "size": 3, "annotations": annotations}


def test_filepath_annotation_wins_over_title() -> None:
    pm = oci_parse.parse_pushed_manifest(
        _manifest([_layer("vocab.txt", **{"org.cncf.model.filepath": "tok/vocab.txt"})])
    )
    assert [f.path for f in pm.files] == ["tok/vocab.txt"]


@pytest.mark.parametrize(
    ("data", "ctype", "error", "message"),
    [
        (b"\xff", None, oci_parse.ManifestInvalid, "not JSON"),
        (b"[]", None, oci_parse.ManifestInvalid, "not a JSON object"),
        (json.dumps({"schemaVersion": 1}).encode(), None, oci_parse.ManifestInvalid, "schemaVersion"),
        (_manifest([]), None, oci_parse.ManifestInvalid, "no layers"),
        (_manifest([_layer(None)]), None, oci_parse.ManifestInvalid, "annotation"),
        (_manifest([_layer("../etc/passwd")]), None, InvalidName, r"layer 0: .*'\.\.'"),
        (_manifest([_layer("/abs")]), None, InvalidName, "absolute"),
        (_manifest([_layer(".git/config")]), None, InvalidName, r"\.git"),
        (_manifest([_layer("a\\b")]), None, InvalidName, "backslash"),
        (_manifest([_layer("a"), _layer("a")]), None, oci_parse.ManifestInvalid, "both name"),
        (_manifest([_layer(mt="application/vnd.ollama.image.tensor")]), None, oci_parse.ManifestUnsupported, "tensor"),
        (_manifest([_layer(mt="application/vnd.cncf.model.weight.v1.tar")]), None, oci_parse.ManifestUnsupported, "packed"),
        (_manifest([_layer(**{"io.deis.oras.content.unpack": "true"})]), None, oci_parse.ManifestUnsupported, "packed"),
        (_manifest([], manifests=[]), None, oci_parse.ManifestUnsupported, "index"),
        (_manifest([_layer()]), oci.DOCKER_MANIFEST, oci_parse.ManifestInvalid, "does not match"),
        (_manifest([_layer()], mediaType="application/x-foo"), None, oci_parse.ManifestUnsupported, "not supported"),
        (_manifest([{**_layer(), "digest": "sha256:ABC"}]), None, oci_parse.ManifestInvalid, "digest"),
        (_manifest([{**_layer(), "size": -1}]), None, oci_parse.ManifestInvalid, "size"),
        (_manifest([{**_layer(), "size": True}]), None, oci_parse.ManifestInvalid, "size"),
        (_manifest([{**_layer(), "annotations": {"a": 1}}]), None, oci_parse.ManifestInvalid, "annotations"),
        (_manifest([_layer()], config=None), None, oci_parse.ManifestInvalid, "config"),
        (_manifest([_layer()], annotations=[]), None, oci_parse.ManifestInvalid, "annotations"),
    ],
)  # fmt: skip
def test_bad_pushed_manifests(
    data: bytes, ctype: str | None, error: type[HubError], message: str
) -> None:
    with pytest.raises(error, match=message) as exc:
        oci_parse.parse_pushed_manifest(data, ctype)
    assert exc.value.status == 400


def test_annotation_size_limit() -> None:
    big = "x" * (oci_parse.MAX_ANNOTATION_BYTES + 1)
    with pytest.raises(oci_parse.ManifestInvalid, match="larger"):
        oci_parse.parse_pushed_manifest(_manifest([_layer("a", note=big)]))


def test_pushed_manifest_limits() -> None:
    with pytest.raises(TooLarge):
        oci_parse.parse_pushed_manifest(b" " * 101, max_bytes=100)
    layers = [_layer(f"f{i}") for i in range(11)]
    with pytest.raises(TooLarge, match="11 layers"):
        oci_parse.parse_pushed_manifest(_manifest(layers), max_layers=10)
    assert len(oci_parse.parse_pushed_manifest(_manifest(layers[:10]), max_layers=10).files) == 10


def test_deeply_nested_json_is_a_clean_error() -> None:
    with pytest.raises(oci_parse.ManifestInvalid):
        oci_parse.parse_pushed_manifest(b"[" * 100_000 + b"]" * 100_000)


# --------------------------------------------------------------------------- hostile input
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
    ),
    max_leaves=30,
)


@given(st.binary(max_size=2000))
def test_any_bytes_give_a_hub_error_or_a_manifest(data: bytes) -> None:
    try:
        oci_parse.parse_pushed_manifest(data)
    except HubError as e:
        assert 400 <= e.status < 500


@given(_json, st.sampled_from([None, oci.OCI_MANIFEST, oci.DOCKER_MANIFEST, "x/y"]))
def test_any_json_gives_a_hub_error_or_a_manifest(doc: Any, ctype: str | None) -> None:
    try:
        oci_parse.parse_pushed_manifest(json.dumps(doc).encode(), ctype)
    except HubError as e:
        assert 400 <= e.status < 500


_layer_st = st.fixed_dictionaries(
    {
        "mediaType": st.sampled_from(
            ["application/octet-stream", "application/vnd.oci.image.layer.v1.tar",
             "application/vnd.cncf.model.weight.v1.raw", "application/vnd.ollama.image.model",
             "application/vnd.ollama.image.template", "application/vnd.ollama.image.tensor", ""]
        ),
        "digest": st.sampled_from(["sha256:" + "a" * 64, "sha256:" + "b" * 64, "md5:x"]),
        "size": st.integers(-2, 10**6),
        "annotations": st.dictionaries(
            st.sampled_from(["org.opencontainers.image.title", "org.cncf.model.filepath", "x"]),
            st.text(max_size=30) | st.sampled_from(["a", "a/b", "../a", "/a", ".git/x", "a//b", "./a"]),
            max_size=3,
        ),
    }
)  # fmt: skip


@given(st.lists(_layer_st, max_size=6))
def test_structured_hostile_manifests(layers: list[dict[str, Any]]) -> None:
    try:
        pm = oci_parse.parse_pushed_manifest(_manifest(layers))
    except HubError as e:
        assert 400 <= e.status < 500
        return
    paths = [f.path for f in pm.files]
    assert len(set(paths)) == len(paths) == len(layers)
    for p in paths:
        assert validate_path(p) == p
