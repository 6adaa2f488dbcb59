"""Ingest sources: a local folder, a Hugging Face cache entry, a local Ollama model, an upstream hub."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from modelward.errors import InvalidName, UsageError
from modelward.hub.ingest import (
    CHUNK,
    OllamaName,
    UpstreamError,
    from_folder,
    from_hf_cache,
    from_ollama,
    from_upstream,
    hash_file,
    redact_url,
)
from tests.inventory.homes import (
    COMMIT_A,
    COMMIT_B,
    EVIL_DIGEST,
    layer,
    make_hf_cache,
    sha256,
    tiny_gguf,
    write_blob,
    write_manifest,
)


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


# ------------------------------------------------------------------------------------------ hashing
def test_hash_file_reads_in_chunks_and_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(CHUNK * 2 + 12345)
    p = tmp_path / "big.bin"
    p.write_bytes(data)
    seen: list[int] = []
    digest, size, git = hash_file(p, seen.append, git_sha1=True)
    assert digest == hashlib.sha256(data).hexdigest()
    assert size == len(data) == sum(seen)
    assert len(seen) == 3
    assert git == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ------------------------------------------------------------------------------------- local folder
def test_folder_lists_files_follows_file_links_and_skips_metadata(tmp_path: Path) -> None:
    model = tmp_path / "model"
    _tree(
        model,
        {
            "config.json": b'{"model_type": "llama"}',
            "weights/model.safetensors": b"w" * 100,
            ".git/HEAD": b"ref: refs/heads/main\n",
            "sub/.git/config": b"[core]\n",
            ".cache/huggingface/download/config.json.metadata": b"x\n",
            ".cache/other/kept.txt": b"kept",
        },
    )
    os.symlink(model / "config.json", model / "linked.txt")  # inside the folder: followed
    os.symlink(model / "weights", model / "weights-link")
    os.mkfifo(model / "pipe")
    progress: list[tuple[str, int, int]] = []
    plan = from_folder(model, lambda *a: progress.append(a))
    paths = [f.path for f in plan.files]
    assert paths == [
        ".cache/other/kept.txt",
        "config.json",
        "linked.txt",
        "weights/model.safetensors",
    ]
    by = {f.path: f for f in plan.files}
    assert by["linked.txt"].sha256 == by["config.json"].sha256 == sha256(b'{"model_type": "llama"}')
    assert by["weights/model.safetensors"].size == 100
    assert plan.total_size == sum(f.size for f in plan.files)
    assert plan.provenance == {"kind": "upload", "source": str(model.resolve())}
    assert any("weights-link" in s for s in plan.skipped)
    assert any(s.startswith("pipe") for s in plan.skipped)
    assert progress[-1][1] == progress[-1][2] == plan.total_size


@pytest.mark.parametrize("name", ["back\\slash.bin", "ctl\x01.bin", "new\nline"])
def test_folder_refuses_names_the_hub_cannot_serve(tmp_path: Path, name: str) -> None:
    _tree(tmp_path / "m", {"ok.bin": b"1", name: b"2"})
    with pytest.raises(InvalidName) as info:
        from_folder(tmp_path / "m")
    assert "not allowed" in info.value.message


def test_folder_refuses_links_that_point_outside_it(tmp_path: Path) -> None:
    m = tmp_path / "m1"
    _tree(m, {"config.json": b"{}", "sub/w.bin": b"w"})
    _tree(tmp_path / "outside", {"secret.txt": b"not part of the model"})
    os.symlink("../outside/secret.txt", m / "link_out")
    with pytest.raises(UsageError) as info:
        from_folder(m)
    message = info.value.args[0]
    assert f"link_out -> {(tmp_path / 'outside' / 'secret.txt').resolve()}" in message
    assert "point outside" in message and "nothing was uploaded" in message
    os.remove(m / "link_out")
    # a chain that leaves the folder through a link inside it, and a link from a subfolder
    os.symlink(tmp_path / "outside" / "secret.txt", tmp_path / "hop")
    os.symlink("../../hop", m / "sub" / "hop.bin")
    with pytest.raises(UsageError, match=r"sub/hop\.bin -> .*secret\.txt"):
        from_folder(m)
    os.remove(m / "sub" / "hop.bin")
    # links within the folder are fine, even through a relative path and from a subfolder
    os.symlink("../config.json", m / "sub" / "config-link.json")
    plan = from_folder(m)
    assert [f.path for f in plan.files] == ["config.json", "sub/config-link.json", "sub/w.bin"]


def test_a_hugging_face_snapshot_may_link_into_its_own_blobs(tmp_path: Path) -> None:
    h = make_hf_cache(tmp_path / "hub", hostile=False)
    snap = h.repo / "snapshots" / COMMIT_A
    plan = from_folder(snap)  # `hub push <snapshot>`: its links go to ../../blobs/<digest>
    assert "model.safetensors" in [f.path for f in plan.files]
    other = make_hf_cache(tmp_path / "hub2", hostile=False)
    os.symlink(Path(other.blob(other.weights_hex)), snap / "foreign.bin")  # another repo's blob
    with pytest.raises(UsageError, match=r"foreign\.bin -> .*hub2"):
        from_folder(snap)


def test_folder_refuses_broken_links_missing_and_empty_folders(tmp_path: Path) -> None:
    m = tmp_path / "m"
    _tree(m, {"a.bin": b"1"})
    os.symlink(tmp_path / "gone", m / "dangling.bin")
    with pytest.raises(
        UsageError, match="broken link.*" + re.escape(f"dangling.bin -> {tmp_path / 'gone'}")
    ):
        from_folder(m)
    (tmp_path / "empty" / ".git").mkdir(parents=True)
    with pytest.raises(UsageError, match="no files"):
        from_folder(tmp_path / "empty")
    with pytest.raises(UsageError, match="not a folder"):
        from_folder(tmp_path / "nope")


# ----------------------------------------------------------------------------- Hugging Face cache
def test_hf_cache_snapshot_by_ref_tag_and_commit(tmp_path: Path) -> None:
    h = make_hf_cache(tmp_path / "hub", hostile=False)
    plan = from_hf_cache("org/tiny", cache_dir=tmp_path / "hub")
    assert [f.path for f in plan.files] == [
        "README.md",
        "config.json",
        "model.safetensors",
        "onnx/model.onnx",
    ]
    assert plan.provenance == {
        "kind": "hf-cache",
        "source": str(h.repo),
        "repo": "org/tiny",
        "revision": COMMIT_A,
        "ref": "main",
    }
    weights = {f.path: f for f in plan.files}["model.safetensors"]
    assert weights.sha256 == h.weights_hex
    assert weights.source.is_symlink()
    tagged = from_hf_cache("org/tiny", "v1.0", tmp_path / "hub")
    assert tagged.provenance["revision"] == COMMIT_B
    pinned = from_hf_cache("org/tiny", COMMIT_B, h.repo)  # the repo folder itself works too
    assert "ref" not in pinned.provenance
    assert [f.sha256 for f in pinned.files] == [f.sha256 for f in tagged.files]


def test_hf_cache_found_through_environment(tmp_path: Path) -> None:
    make_hf_cache(tmp_path / "hfhome" / "hub", hostile=False)
    env = {"HF_HOME": str(tmp_path / "hfhome")}
    plan = from_hf_cache("org/tiny", env=env)
    assert plan.provenance["revision"] == COMMIT_A
    with pytest.raises(UsageError, match="not in the Hugging Face cache"):
        from_hf_cache("org/absent", env=env)


def test_hf_cache_detects_altered_blobs_and_foreign_links(tmp_path: Path) -> None:
    h = make_hf_cache(tmp_path / "hub", hostile=False)
    Path(h.blob(h.config_a)).write_bytes(b'{"model_type": "evil"}')
    with pytest.raises(UsageError, match="git blob id"):
        from_hf_cache("org/tiny", cache_dir=tmp_path / "hub")
    Path(h.blob(h.weights_hex)).write_bytes(b"tampered")
    with pytest.raises(UsageError, match="SHA-256"):
        from_hf_cache("org/tiny", COMMIT_B, tmp_path / "hub")
    h2 = make_hf_cache(tmp_path / "hub2", hostile=False)
    snap = h2.repo / "snapshots" / COMMIT_A
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", snap / "extra.json")
    with pytest.raises(UsageError, match="outside the repository's blobs"):
        from_hf_cache("org/tiny", cache_dir=tmp_path / "hub2")


@pytest.mark.parametrize(
    ("revision", "match"),
    [
        ("nope", "no ref"),
        ("../../etc", "not a branch"),
        ("0" * 40, "not in the cache"),
    ],
)
def test_hf_cache_bad_revisions(tmp_path: Path, revision: str, match: str) -> None:
    make_hf_cache(tmp_path / "hub", hostile=False)
    with pytest.raises(UsageError, match=match):
        from_hf_cache("org/tiny", revision, tmp_path / "hub")


def test_hf_cache_bad_repo_ids(tmp_path: Path) -> None:
    for bad in ("a/b/c", "../x", "a--b/c", ""):
        with pytest.raises(UsageError, match="repo id"):
            from_hf_cache(bad, cache_dir=tmp_path)


# ------------------------------------------------------------------------------------------ Ollama
def _ollama(
    models: Path, tmp: Path, extra: list[dict[str, object]] | None = None
) -> dict[str, str]:
    gguf = tiny_gguf(tmp / "t.gguf")
    blobs = {
        "model": write_blob(models, gguf),
        "template": write_blob(models, b"{{ .Prompt }}"),
        "license": write_blob(models, b"Apache License 2.0"),
        "license2": write_blob(models, b"Acceptable use policy"),
        "params": write_blob(models, b'{"stop": ["<|eot|>"]}'),
    }
    layers = [
        layer("model", blobs["model"], len(gguf)),
        layer("template", blobs["template"], 13),
        layer("license", blobs["license"], 18),
        layer("license", blobs["license2"], 21),
        layer("params", blobs["params"], 21),
        *(extra or []),
    ]
    cfg = {"model_format": "gguf", "model_family": "llama", "file_type": "F32"}
    write_manifest(models, ("registry.ollama.ai", "library", "tiny", "1b"), cfg, layers)
    return blobs


def test_ollama_model_becomes_gguf_plus_layer_files(tmp_path: Path) -> None:
    models = tmp_path / "models"
    blobs = _ollama(models, tmp_path)
    plan = from_ollama("tiny:1b", models)
    by = {f.path: f for f in plan.files}
    assert sorted(by) == [
        "model.gguf",
        "ollama/license",
        "ollama/license.2",
        "ollama/params",
        "ollama/template",
    ]
    assert by["model.gguf"].sha256 == blobs["model"]
    assert by["ollama/license.2"].sha256 == blobs["license2"]
    manifest = models / "manifests/registry.ollama.ai/library/tiny/1b"
    digest = "sha256:" + sha256(manifest.read_bytes())
    prov = plan.provenance
    assert prov["kind"] == "ollama"
    assert prov["name"] == "tiny:1b"
    assert prov["revision"] == prov["manifest_digest"] == digest
    assert prov["config"] == {"model_format": "gguf", "model_family": "llama", "file_type": "F32"}
    # found through OLLAMA_MODELS, and by its long name
    again = from_ollama("registry.ollama.ai/library/tiny:1b", env={"OLLAMA_MODELS": str(models)})
    assert again.files == plan.files


def test_ollama_refuses_tampered_missing_and_unsupported_layers(tmp_path: Path) -> None:
    models = tmp_path / "models"
    blobs = _ollama(models, tmp_path)
    (models / "blobs" / f"sha256-{blobs['template']}").write_bytes(b"{{ evil }}")
    with pytest.raises(UsageError, match="corrupted"):
        from_ollama("tiny:1b", models)
    with pytest.raises(UsageError, match="not found"):
        from_ollama("tiny:7b", models)

    m2 = tmp_path / "m2"
    _ollama(m2, tmp_path, [layer("tensor", "ab" * 32, 4)])
    (m2 / "blobs" / f"sha256-{'ab' * 32}").write_bytes(b"abcd")
    with pytest.raises(UsageError, match="does not take"):
        from_ollama("tiny:1b", m2)

    m3 = tmp_path / "m3"
    _ollama(
        m3, tmp_path, [{"mediaType": "application/vnd.ollama.image.license", "digest": EVIL_DIGEST}]
    )
    with pytest.raises(UsageError, match="CVE-2024-37032"):
        from_ollama("tiny:1b", m3)

    m4 = tmp_path / "m4"
    not_gguf = write_blob(m4, b"PK\x03\x04 not a gguf")
    write_manifest(
        m4, ("registry.ollama.ai", "library", "x", "latest"), None, [layer("model", not_gguf, 19)]
    )
    with pytest.raises(UsageError, match="not a GGUF"):
        from_ollama("x", m4)

    m5 = tmp_path / "m5"
    write_manifest(
        m5, ("registry.ollama.ai", "library", "x", "latest"), None, [layer("model", "cd" * 32, 1)]
    )
    with pytest.raises(UsageError, match="missing"):
        from_ollama("x", m5)


def test_ollama_names() -> None:
    assert OllamaName.parse("llama3") == OllamaName(
        "registry.ollama.ai", "library", "llama3", "latest"
    )
    assert OllamaName.parse("hf.co/org/m:Q4_K_M") == OllamaName("hf.co", "org", "m", "Q4_K_M")
    assert OllamaName.parse("localhost:8000/acme/m:1b").host == "localhost:8000"
    assert OllamaName.parse("acme/m:1b").display == "acme/m:1b"
    for bad in ("a/b/c/d", "../x:1", "x:", "a//b"):
        with pytest.raises(UsageError):
            OllamaName.parse(bad)


# ---------------------------------------------------------------------------------------- upstream
def test_upstream_input_checks_and_unreachable_endpoint(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="http"):
        from_upstream("file:///etc", "org/x", tmp_path)
    with pytest.raises(UsageError, match="repo id"):
        from_upstream("http://127.0.0.1:9", "a/b/c", tmp_path)
    with pytest.raises(UpstreamError) as info:
        from_upstream("http://user:pw@127.0.0.1:9", "org/x", tmp_path)
    assert info.value.status == 502
    assert "127.0.0.1:9" in info.value.message and "pw" not in info.value.message


def test_redact_url() -> None:
    assert redact_url("https://u:p@hub.example:8443/prefix") == "https://hub.example:8443/prefix"
    assert json.dumps(redact_url("http://h/")) == '"http://h/"'
