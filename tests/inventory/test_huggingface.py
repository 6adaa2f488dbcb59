"""The Hugging Face cache store and ``--local-dir`` downloads: repos, revisions, links, licenses."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelward.inventory.stores import huggingface as hf
from modelward.inventory.stores.base import StoreItem
from modelward.inventory.stores.ollama import license_function
from modelward.models import License, Severity, Source
from tests.inventory.homes import (
    COMMIT_A,
    COMMIT_B,
    MODEL_CARD,
    make_hf_cache,
    make_hf_local_dir,
    tiny_safetensors,
)
from tests.workcount import Calls, assert_linear

STORE = hf.STORE


def card_license() -> License | None:
    fn = license_function("from_model_card")
    if fn is None:
        return None
    found = fn(MODEL_CARD)
    assert isinstance(found, License) and (found.id, found.evidence) == ("apache-2.0", "model card")
    return found


def by_path(items: list[StoreItem]) -> dict[str, StoreItem]:
    out = {i.path: i for i in items}
    assert len(out) == len(items), "one item per path"
    return out


def test_locations(tmp_path: Path) -> None:
    env = {
        "HF_HUB_CACHE": "/a",
        "HUGGINGFACE_HUB_CACHE": "/b",
        "HF_HOME": "/c",
        "TRANSFORMERS_CACHE": "/d",
        "PYTORCH_TRANSFORMERS_CACHE": "/d",
        "XDG_CACHE_HOME": "/x",
        "HF_TOKEN": "never read",
    }
    assert STORE.kind == "huggingface"
    assert STORE.locations(tmp_path, env) == [
        Path("/a"),
        Path("/b"),
        Path("/c/hub"),
        Path("/d"),
        Path("/x/huggingface/hub"),
        tmp_path / ".cache" / "huggingface" / "hub",
    ]
    assert STORE.locations(tmp_path, {}) == [tmp_path / ".cache" / "huggingface" / "hub"]


def test_repo_id() -> None:
    assert hf.repo_id("models--org--name") == ("models", "org/name")
    assert hf.repo_id("models--gpt2") == ("models", "gpt2")
    assert hf.repo_id("datasets--org--d") == ("datasets", "org/d")
    assert hf.repo_id("models--") is None
    assert hf.repo_id("models--a----b") is None
    assert hf.repo_id(".locks") is None
    assert hf.repo_id("version.txt") is None


def test_cache(tmp_path: Path) -> None:
    cache = tmp_path / ".cache" / "huggingface" / "hub"
    h = make_hf_cache(cache)
    snap_b = h.repo / "snapshots" / COMMIT_B
    (cache / ".locks" / "models--org--tiny").mkdir(parents=True)
    (tmp_path / ".cache" / "huggingface" / "token").write_text("hf_secret")
    result = STORE.collect(cache)
    items = by_path(result.items)
    assert set(items) == {
        h.blob(h.weights_hex),
        h.blob(h.config_a),
        h.blob(h.config_b),
        h.blob(h.incomplete + ".incomplete"),
    }
    lic = card_license()

    weights = items[h.blob(h.weights_hex)]  # in both revisions, and twice in A
    assert weights.source == Source(
        "huggingface", name="model.safetensors", repo="org/tiny", revision=COMMIT_A
    )
    assert weights.sha256 == h.weights_hex
    assert weights.license == lic
    assert weights.findings == ()
    assert weights.metadata == {
        "huggingface": {
            "repo_type": "models",
            "path_in_repo": "model.safetensors",
            "refs": ["main"],
            "revisions": [
                {"revision": COMMIT_A, "path": "model.safetensors", "refs": ["main"]},
                {"revision": COMMIT_A, "path": "onnx/model.onnx", "refs": ["main"]},
                {"revision": COMMIT_B, "path": "model.safetensors", "refs": ["v1.0"]},
            ],
            "no_exist": ["adapter_config.json"],
        }
    }
    assert Path(weights.path).read_bytes() == tiny_safetensors()

    config_a = items[h.blob(h.config_a)]  # a git file: sha256 unknown
    assert config_a.source == Source(
        "huggingface", name="config.json", repo="org/tiny", revision=COMMIT_A
    )
    assert config_a.sha256 is None and config_a.license == lic and config_a.findings == ()
    assert config_a.metadata["huggingface"]["revisions"] == [
        {"revision": COMMIT_A, "path": "config.json", "refs": ["main"]}
    ]

    config_b = items[h.blob(h.config_b)]
    assert config_b.source == Source(
        "huggingface", name="config.json", repo="org/tiny", revision=COMMIT_B
    )
    assert config_b.metadata == {
        "huggingface": {
            "repo_type": "models",
            "path_in_repo": "config.json",
            "refs": ["v1.0"],
            "revisions": [{"revision": COMMIT_B, "path": "config.json", "refs": ["v1.0"]}],
        }
    }
    assert config_b.license == lic

    inc = items[h.blob(h.incomplete + ".incomplete")]
    assert inc.source == Source("huggingface", repo="org/tiny")
    assert inc.sha256 is None and inc.license is None
    assert inc.metadata == {
        "huggingface": {"role": "incomplete", "expected_etag": h.incomplete, "repo_type": "models"}
    }
    assert [(f.rule, f.severity) for f in inc.findings] == [
        ("huggingface.incomplete-download", Severity.INFO)
    ]

    errors = {(e.path, e.error.split(":")[0]) for e in result.errors}
    assert errors == {
        (str(h.repo / "refs" / "garbage"), "the ref is not a 40-hex commit id"),
        (str(snap_b / "broken.safetensors"), "broken link"),
        (str(snap_b / "loop.bin"), "broken link"),
    }
    json.dumps([i.metadata for i in result.items])


def test_remote_code_and_datasets(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    repo = cache / "datasets--org--pickles"
    snap = repo / "snapshots" / COMMIT_A
    snap.mkdir(parents=True)
    (snap / "data.pkl").write_bytes(b"\x80\x04N.")  # degraded mode: a real file
    (snap / "modeling_x.py").write_text("print(1)\n")
    (snap / "notes.txt").write_text("hi")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_A)
    (item,) = STORE.collect(cache).items
    assert item.path == str(snap / "data.pkl")
    assert item.source == Source(
        "huggingface", name="data.pkl", repo="datasets/org/pickles", revision=COMMIT_A
    )
    assert item.sha256 is None and item.license is None and item.findings == ()
    assert item.metadata == {
        "huggingface": {
            "repo_type": "datasets",
            "path_in_repo": "data.pkl",
            "refs": ["main"],
            "revisions": [{"revision": COMMIT_A, "path": "data.pkl", "refs": ["main"]}],
            "degraded": True,
            "remote_code": ["modeling_x.py"],
        }
    }


def test_link_outside_blobs(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    snap = cache / "models--a--b" / "snapshots" / COMMIT_A
    snap.mkdir(parents=True)
    (tmp_path / "elsewhere.bin").write_bytes(b"x")
    os.symlink("../../../../elsewhere.bin", snap / "pytorch_model.bin")
    (item,) = STORE.collect(cache).items
    assert item.path == str(snap / "pytorch_model.bin")
    assert item.source == Source(
        "huggingface", name="pytorch_model.bin", repo="a/b", revision=COMMIT_A
    )
    assert [(f.rule, f.severity) for f in item.findings] == [
        ("huggingface.link-outside-blobs", Severity.MEDIUM)
    ]
    assert item.findings[0].evidence == "../../../../elsewhere.bin"


def test_unreadable_and_missing_cache(tmp_path: Path) -> None:
    missing = STORE.collect(tmp_path / "nope")
    assert missing.items == [] and len(missing.errors) == 1
    cache = tmp_path / "hub"
    (cache / "models--a--b").mkdir(parents=True)  # no refs, no snapshots, no blobs
    (cache / "models--c--d").write_text("a file, not a folder")
    result = STORE.collect(cache)
    assert result.items == [] and result.errors == []


def _many_repos(cache: Path, n: int) -> None:
    cache.mkdir()
    for i in range(n):
        repo = cache / f"models--org--m{i}"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(COMMIT_A)
        (repo / "snapshots" / COMMIT_A).mkdir(parents=True)
        (repo / "blobs").mkdir()
        if i % 10 == 0:
            (repo / "blobs" / ("c" * 64)).write_bytes(b"x")
            os.symlink(
                "../../blobs/" + "c" * 64, repo / "snapshots" / COMMIT_A / "model.safetensors"
            )


def test_ten_thousand_repos_parse_with_constant_work_per_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Speed is benchmarks/inventory_bench.py's (section stores); here: every repo is parsed, with
    # a few file-system calls each, and the Python work grows linearly with the number of repos.
    cache = tmp_path / "hub"
    _many_repos(cache, 10_000)
    calls = Calls(monkeypatch)
    for name in ("scandir", "open", "readlink", "stat", "lstat", "listdir"):
        calls.patch(os, name)
    result = STORE.collect(cache)
    assert result.errors == [] and len(result.items) == 1_000
    assert {i.sha256 for i in result.items} == {"c" * 64}
    assert sorted(i.source.repo or "" for i in result.items)[:2] == ["org/m0", "org/m10"]
    assert calls["scandir"] <= 5 * 10_000 + 1  # the cache; each repo, its blobs, refs, snapshots
    assert calls["open"] <= 10_000  # refs/main only: no blob, no snapshot file is read
    assert calls["readlink"] <= 1_000  # once per link, never followed
    assert calls["stat"] + calls["lstat"] + calls["listdir"] == 0  # scandir's entries suffice
    monkeypatch.undo()
    small, double = tmp_path / "n", tmp_path / "2n"
    _many_repos(small, 500)
    _many_repos(double, 1_000)
    assert_linear(STORE.collect, small, double, "huggingface cache")


def test_local_dir(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    weights = tiny_safetensors()
    etags = make_hf_local_dir(
        folder,
        {
            "model.safetensors": weights,
            "sub/config.json": b'{"model_type": "llama"}',
            "README.md": MODEL_CARD.encode(),
            "edited.bin": b"\x80\x04N.",
        },
    )
    meta = folder / ".cache" / "huggingface" / "download" / "edited.bin.metadata"
    meta.write_text(f"{COMMIT_A}\n{etags['edited.bin']}\n{time.time() - 100}\n")
    (folder / ".cache" / "huggingface" / "download" / "x.gguf.abc.incomplete").write_bytes(b"G")
    result = hf.local_dir_items(folder)
    assert result.errors == []
    items = by_path(result.items)
    lic = card_license()
    st_item = items[str(folder / "model.safetensors")]
    assert st_item.source == Source("huggingface", name="model.safetensors", revision=COMMIT_A)
    assert st_item.sha256 == etags["model.safetensors"]
    assert st_item.license == lic and st_item.findings == ()
    assert st_item.metadata == {
        "huggingface": {
            "local_dir": str(folder),
            "path_in_repo": "model.safetensors",
            "etag": etags["model.safetensors"],
        }
    }
    cfg = items[str(folder / "sub" / "config.json")]
    assert cfg.source == Source("huggingface", name="sub/config.json", revision=COMMIT_A)
    assert cfg.sha256 is None  # a git SHA-1 etag
    edited = items[str(folder / "edited.bin")]
    assert edited.sha256 is None
    assert edited.metadata["huggingface"]["modified_after_download"] is True
    inc = items[str(folder / ".cache" / "huggingface" / "download" / "x.gguf.abc.incomplete")]
    assert [f.rule for f in inc.findings] == ["huggingface.incomplete-download"]
    assert inc.source == Source("huggingface")
    assert len(items) == 4  # README.md is evidence, not an item


def test_local_dir_corrupt_metadata(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    make_hf_local_dir(folder, {"a.safetensors": b"x", "b.safetensors": b"y"})
    (folder / ".cache" / "huggingface" / "download" / "a.safetensors.metadata").write_bytes(
        b"\xff\xfe"
    )
    (folder / "b.safetensors").unlink()
    result = hf.local_dir_items(folder)
    (item,) = result.items
    assert item.source.revision is None and item.sha256 is None
    assert [e.error for e in result.errors] == ["the download metadata has no commit id"]
    assert hf.local_dir_items(tmp_path / "none").items == []


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_random_refs_and_metadata_never_raise(ref: bytes, meta: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        cache = Path(d) / "hub"
        h = make_hf_cache(cache, hostile=False)
        (h.repo / "refs" / "main").write_bytes(ref)
        (h.repo / "snapshots" / COMMIT_A / "README.md").unlink()
        (h.repo / "snapshots" / COMMIT_A / "README.md").write_bytes(meta)
        result = STORE.collect(cache)
        json.dumps([i.metadata for i in result.items])
        assert any(i.sha256 == h.weights_hex for i in result.items)
        folder = Path(d) / "local"
        make_hf_local_dir(folder, {"m.safetensors": b"x"})
        (folder / ".cache" / "huggingface" / "download" / "m.safetensors.metadata").write_bytes(
            meta
        )
        assert len(hf.local_dir_items(folder).items) == 1


@given(
    st.lists(
        st.sampled_from(["a", "..", "blobs", "snapshots", "/", "x" * 64, "models--q"]), max_size=6
    )
)
def test_random_link_targets_never_raise(parts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        cache = Path(d) / "hub"
        snap = cache / "models--o--n" / "snapshots" / COMMIT_A
        snap.mkdir(parents=True)
        os.symlink("/".join(parts) or ".", snap / "model.gguf")
        STORE.collect(cache)
