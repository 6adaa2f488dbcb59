"""The Ollama store: names, layers, config, license, cloud models and hostile manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from modelward.inventory.stores import ollama
from modelward.inventory.stores.base import StoreItem
from modelward.models import License, Severity, Source
from tests.inventory.homes import (
    CLOUD_HOST,
    EVIL_DIGEST,
    LLAMA31_LICENSE,
    layer,
    make_ollama,
    write_blob,
    write_manifest,
)

STORE = ollama.STORE


def expected_license() -> License | None:
    """What the license layer yields: identify_text's answer when license.py exists, else None."""
    fn = ollama.license_function("identify_text")
    if fn is None:
        return None
    found = fn(LLAMA31_LICENSE, "ollama license layer")
    assert found == License("llama3.1", "Llama 3.1 Community License", "ollama license layer")
    return found


def by_path(items: list[StoreItem]) -> dict[str, StoreItem]:
    out = {i.path: i for i in items}
    assert len(out) == len(items), "one item per path"
    return out


def rules(item: StoreItem) -> list[tuple[str, Severity]]:
    return [(f.rule, f.severity) for f in item.findings]


def test_locations(tmp_path: Path) -> None:
    env = {"OLLAMA_MODELS": "/data/ollama", "OLLAMA_HOME": "/opt/ollama"}
    assert STORE.kind == "ollama"
    assert STORE.locations(tmp_path, env) == [
        Path("/data/ollama"),
        Path("/opt/ollama/models"),
        tmp_path / ".ollama" / "models",
        Path("/usr/share/ollama/.ollama/models"),
        Path("/var/lib/ollama/.ollama/models"),
    ]
    assert STORE.locations(tmp_path, {"OLLAMA_MODELS": "  "})[0] == tmp_path / ".ollama" / "models"


def test_display_name() -> None:
    assert ollama.display_name("registry.ollama.ai", "library", "llama3.1", "8b") == "llama3.1:8b"
    assert ollama.display_name("registry.ollama.ai", "alex", "m", "latest") == "alex/m:latest"
    assert ollama.display_name("hf.co", "org", "repo", "Q4_K_M") == "hf.co/org/repo:Q4_K_M"


def test_full_home(tmp_path: Path) -> None:
    models = tmp_path / ".ollama" / "models"
    h = make_ollama(models)
    result = STORE.collect(models)
    assert result.errors == []
    items = by_path(result.items)
    m = {k: str(v) for k, v in h.manifests.items()}
    assert set(items) == {
        h.blob(h.model_hex),
        h.blob(h.hf_model_hex),
        h.blob(h.projector_hex),
        h.blob(h.orphan_hex),
        h.blob(h.partial_hex) + "-partial",
        m["gpt-oss:120b-cloud"],
        m["attacker/evil:latest"],
    }

    llama = items[h.blob(h.model_hex)]  # one blob, two tags
    assert llama.source == Source("ollama", name="llama3.1:8b")
    assert llama.sha256 == h.model_hex
    assert llama.license == expected_license()
    assert llama.findings == ()
    assert llama.metadata == {
        "ollama": {
            "role": "model",
            "names": ["llama3.1:8b", "llama3.1:latest"],
            "manifests": sorted([m["llama3.1:8b"], m["llama3.1:latest"]]),
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "8.0B",
            "quantization": "Q4_K_M",
            "layers": ["license", "model", "params", "template"],
            "template": True,
            "system_prompt": False,
            "messages": False,
            "cloud": False,
            "params": {"stop": ["<|eot_id|>"], "temperature": 0.6},
            "license_first_lines": ["LLAMA 3.1 COMMUNITY LICENSE AGREEMENT"],
        }
    }
    with open(llama.path, "rb") as fh:
        assert fh.read(4) == b"GGUF"

    hf_meta = {
        "names": ["hf.co/org/tiny-gguf:Q4_K_M"],
        "manifests": [m["hf.co/org/tiny-gguf:Q4_K_M"]],
        "format": "gguf",
        "family": "gemma3",
        "parameter_size": "4B",
        "quantization": "Q4_K_M",
        "context_length": 8192,
        "layers": ["model", "projector", "system"],
        "template": False,
        "system_prompt": True,
        "messages": False,
        "cloud": False,
    }
    for hexd, role in ((h.hf_model_hex, "model"), (h.projector_hex, "projector")):
        item = items[h.blob(hexd)]
        assert item.source == Source("ollama", name="hf.co/org/tiny-gguf:Q4_K_M")
        assert item.sha256 == hexd
        assert item.license is None
        assert item.findings == ()
        assert item.metadata == {"ollama": {"role": role, **hf_meta}}

    cloud = items[m["gpt-oss:120b-cloud"]]
    assert cloud.source == Source("ollama", name="gpt-oss:120b-cloud")
    assert cloud.sha256 is None and cloud.license is None
    assert rules(cloud) == [("ollama.cloud-model", Severity.MEDIUM)]
    assert cloud.findings[0].evidence == "gpt-oss:120b"
    assert cloud.findings[0].location == m["gpt-oss:120b-cloud"]
    assert cloud.metadata == {
        "ollama": {
            "role": "manifest",
            "names": ["gpt-oss:120b-cloud"],
            "manifest": m["gpt-oss:120b-cloud"],
            "family": "gptoss",
            "parameter_size": "116.8B",
            "remote_host": CLOUD_HOST,
            "remote_model": "gpt-oss:120b",
            "layers": ["template"],
            "template": True,
            "system_prompt": False,
            "messages": False,
            "cloud": True,
        }
    }

    evil = items[m["attacker/evil:latest"]]
    assert evil.source == Source("ollama", name="attacker/evil:latest")
    assert rules(evil) == [("ollama.bad-digest", Severity.CRITICAL)]
    assert evil.findings[0].evidence == repr(EVIL_DIGEST)
    assert evil.metadata["ollama"]["role"] == "manifest"
    assert evil.metadata["ollama"]["layers"] == []

    orphan = items[h.blob(h.orphan_hex)]
    assert orphan.source == Source("ollama")
    assert orphan.sha256 == h.orphan_hex and orphan.license is None
    assert orphan.metadata == {"ollama": {"role": "orphan"}}
    assert rules(orphan) == [("ollama.orphan-blob", Severity.LOW)]

    partial = items[h.blob(h.partial_hex) + "-partial"]
    assert partial.source == Source("ollama") and partial.sha256 is None
    assert partial.metadata == {
        "ollama": {
            "role": "partial",
            "expected_sha256": h.partial_hex,
            "parts": [f"sha256-{h.partial_hex}-partial", f"sha256-{h.partial_hex}-partial-0"],
        }
    }
    assert rules(partial) == [("ollama.partial-download", Severity.INFO)]
    json.dumps([i.metadata for i in result.items])  # JSON-serialisable


def test_bad_digest_is_never_followed(tmp_path: Path) -> None:
    models = tmp_path / "models"
    secret = tmp_path / "secret"
    secret.write_text("x")
    path = models / "manifests" / "registry.ollama.ai" / "library" / "m" / "latest"
    path.parent.mkdir(parents=True)
    layers = [
        {"mediaType": ollama.MEDIA_PREFIX + "license", "digest": "sha256:../../../secret"},
        {"mediaType": ollama.MEDIA_PREFIX + "model", "digest": "sha256:" + "z" * 64},
    ]
    path.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    result = STORE.collect(models)
    (item,) = result.items
    assert rules(item) == [
        ("ollama.bad-digest", Severity.CRITICAL),
        ("ollama.bad-digest", Severity.HIGH),
    ]
    assert "license_first_lines" not in item.metadata["ollama"]
    assert all(str(secret) not in i.path for i in result.items)


def test_missing_blob_and_size_mismatch(tmp_path: Path) -> None:
    models = tmp_path / "models"
    present = write_blob(models, b"GGUF" + bytes(60))
    parts = ("registry.ollama.ai", "library", "m", "latest")
    path = write_manifest(
        models, parts, None, [layer("model", present, 999), layer("adapter", "ab" * 32, 10)]
    )
    result = STORE.collect(models)
    items = by_path(result.items)
    assert rules(items[str(path)]) == [
        ("ollama.size-mismatch", Severity.MEDIUM),
        ("ollama.missing-blob", Severity.LOW),
    ]
    assert items[str(models / "blobs" / f"sha256-{present}")].source.name == "m:latest"
    assert len(items) == 2


def test_corrupt_and_unreadable_manifests(tmp_path: Path) -> None:
    models = tmp_path / "models"
    base = models / "manifests" / "registry.ollama.ai" / "library"
    for name, content in {
        "notjson": b"{not json",
        "list": b"[1, 2]",
        "nolayers": b'{"schemaVersion": 2}',
        "badlayer": b'{"layers": [1, {"digest": 5}]}',
    }.items():
        (base / name).mkdir(parents=True)
        (base / name / "latest").write_bytes(content)
    (base / "big").mkdir()
    (base / "big" / "latest").write_bytes(b" " * (ollama.MAX_MANIFEST + 1))
    (base / "fifo").mkdir()
    os.mkfifo(base / "fifo" / "latest")  # would hang a blocking open
    (base / "dir").mkdir()
    (base / "dir" / "latest").mkdir()  # a folder where a manifest should be
    result = STORE.collect(models)
    items = {i.source.name: i for i in result.items}
    assert set(items) == {
        "notjson:latest",
        "list:latest",
        "nolayers:latest",
        "badlayer:latest",
        "big:latest",
    }
    for item in items.values():
        assert {r for r, _ in rules(item)} == {"ollama.corrupt-manifest"}
    assert [e.error for e in result.errors] == ["not a regular file"]


def test_empty_and_missing_store(tmp_path: Path) -> None:
    assert STORE.collect(tmp_path / "nothing").items == []
    (tmp_path / "models" / "manifests").mkdir(parents=True)
    assert STORE.collect(tmp_path / "models").items == []


def test_manifest_links_to_folders_are_not_followed(tmp_path: Path) -> None:
    models = tmp_path / "models"
    reg = models / "manifests" / "registry.ollama.ai"
    reg.mkdir(parents=True)
    os.symlink(reg, reg / "loop")  # manifests/registry/loop -> registry (a cycle)
    result = STORE.collect(models)
    assert result.items == [] and result.errors == []


def _manifest_with(models: Path, raw: bytes) -> None:
    path = models / "manifests" / "registry.ollama.ai" / "library" / "fuzz" / "latest"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)


@given(st.binary(max_size=512))
def test_random_manifest_bytes_never_raise(raw: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        models = Path(d)
        _manifest_with(models, raw)
        result = STORE.collect(models)
        assert len(result.items) <= 1


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=80)
    | st.sampled_from(["sha256:" + "a" * 64, EVIL_DIGEST]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["mediaType", "digest", "size", "layers", "config", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(JSON)
def test_mutated_manifest_json_never_raises(doc: object) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        models = Path(d)
        write_blob(models, b'{"model_family": "llama"}')
        _manifest_with(models, json.dumps(doc).encode())
        result = STORE.collect(models)
        json.dumps([i.metadata for i in result.items])


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_random_config_and_params_blobs_never_raise(config: bytes, params: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        models = Path(d)
        cfg = write_blob(models, config)
        prm = write_blob(models, params)
        model = write_blob(models, b"GGUF")
        doc = {
            "config": {"digest": f"sha256:{cfg}"},
            "layers": [layer("model", model, 4), layer("params", prm, len(params))],
        }
        _manifest_with(models, json.dumps(doc).encode())
        result = STORE.collect(models)
        json.dumps([i.metadata for i in result.items])
        assert any(i.sha256 == model for i in result.items)
