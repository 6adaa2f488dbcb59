"""Stores in folders that are not homes: at the root, below it, named by the environment."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest

from modelward.inventory import InventoryOptions, collect
from modelward.inventory.stores import huggingface, ollama, stores
from modelward.inventory.stores.base import spotter
from modelward.models import Artifact, Inventory
from tests.inventory.homes import COMMIT_A, make_hf_cache, make_ollama, tiny_gguf
from tests.inventory.homes_more import gguf_bytes, make_llamacpp, put


@pytest.fixture(autouse=True)
def elsewhere_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's home: empty and outside every root the tests give."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def run(root: Path, tmp_path: Path, env: dict[str, str] | None = None) -> Inventory:
    options = InventoryOptions(
        processes=False,
        runtimes=False,
        cache=tmp_path / "cache.sqlite",
        env={"HOME": os.environ["HOME"], **(env or {})},
    )
    return collect([root], options)


def once(inv: Inventory) -> dict[str, Artifact]:
    """The artifacts by path, checking that none is listed twice (by path or by real path)."""
    paths = collections.Counter(os.path.realpath(a.path) for a in inv.artifacts)
    assert [p for p, n in paths.items() if n > 1] == []
    return {a.path: a for a in inv.artifacts}


def inside(path: str, folder: Path) -> bool:
    return Path(path).is_relative_to(folder)


def check_hf(arts: dict[str, Artifact], cache: Path) -> None:
    h_repo = cache / "models--org--tiny"
    weights = [a for a in arts.values() if a.path.startswith(str(h_repo / "blobs")) and a.format]
    safetensors = [a for a in weights if a.format == "safetensors"]
    assert len(safetensors) == 1
    a = safetensors[0]
    assert a.source.kind == "huggingface"
    assert a.source.repo == "org/tiny"
    assert a.source.revision == COMMIT_A
    assert a.license.id == "apache-2.0"
    assert a.sha256 == Path(a.path).name  # named by the store: the LFS blob name
    revisions = {r["path"] for r in a.metadata["huggingface"]["revisions"]}
    assert "model.safetensors" in revisions
    assert [p for p, x in arts.items() if inside(p, cache) and x.source.kind == "file"] == []


def check_ollama(arts: dict[str, Artifact], models: Path, model_hex: str) -> None:
    blob = str(models / "blobs" / f"sha256-{model_hex}")
    assert blob in arts
    a = arts[blob]
    assert a.source.kind == "ollama"
    assert a.source.name is not None and a.source.name.startswith("llama3.1")
    assert a.sha256 == model_hex
    assert a.license.id == "llama3.1"
    assert a.metadata["ollama"]["names"] == ["llama3.1:8b", "llama3.1:latest"]
    cloud = [x for x in arts.values() if x.source.name == "gpt-oss:120b-cloud"]
    assert cloud and cloud[0].findings[0].rule == "ollama.cloud-model"
    assert [p for p, x in arts.items() if inside(p, models) and x.source.kind == "file"] == []


def test_a_hub_cache_given_as_root(tmp_path: Path) -> None:
    cache = tmp_path / "data" / "hf" / "hub"
    make_hf_cache(cache)
    inv = run(cache, tmp_path)
    check_hf(once(inv), cache)


def test_a_hub_cache_named_by_hf_hub_cache_is_parsed_once(tmp_path: Path) -> None:
    cache = tmp_path / "data" / "hf" / "hub"
    make_hf_cache(cache)
    for root in (cache, tmp_path / "data"):
        inv = run(root, tmp_path, {"HF_HUB_CACHE": str(cache)})
        check_hf(once(inv), cache)


def test_one_repo_folder_given_as_root(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    make_hf_cache(cache)
    inv = run(cache / "models--org--tiny", tmp_path)
    arts = once(inv)
    check_hf(arts, cache)
    assert {a.source.repo for a in arts.values()} == {"org/tiny"}


def test_an_ollama_store_given_as_root(tmp_path: Path) -> None:
    models = tmp_path / "srv" / "ollama" / "models"
    h = make_ollama(models)
    inv = run(models, tmp_path)
    check_ollama(once(inv), models, h.model_hex)


def test_stores_two_folders_below_a_plain_root(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    cache = root / "hf" / "hub"
    make_hf_cache(cache)
    models = root / "ollama" / "models"
    h = make_ollama(models)
    tiny_gguf(root / "loose.gguf")
    # a link from outside the cache to one of its blobs: one artifact, the store's
    blob = next(p for p in (cache / "models--org--tiny" / "blobs").iterdir() if len(p.name) == 64)
    (root / "links").mkdir()
    os.symlink(blob, root / "links" / "model.safetensors")
    inv = run(root, tmp_path)
    arts = once(inv)
    check_hf(arts, cache)
    check_ollama(arts, models, h.model_hex)
    assert arts[str(root / "loose.gguf")].source.kind == "file"
    assert not any(inside(p, root / "links") for p in arts)
    assert not [e for e in inv.errors if "ollama" in e.path and "manifests" in e.path]


def test_ollama_models_named_by_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    models = root / "store"
    h = make_ollama(models)
    inv = run(root, tmp_path, {"OLLAMA_MODELS": str(models)})
    check_ollama(once(inv), models, h.model_hex)


def test_a_folder_only_named_like_a_store_is_walked(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    gguf = gguf_bytes(tmp_path)
    put(root / "models--x" / "readme.txt", b"hello")
    put(root / "models--org--fake" / "weights.gguf", gguf)  # no blobs, no snapshots
    put(root / "datasets--a--b" / "blobs", b"a file, not a folder")
    put(root / "manifests" / "x", b"{}")  # manifests without blobs: no Ollama store
    put(root / "manifests" / "m.gguf", gguf)
    inv = run(root, tmp_path)
    arts = once(inv)
    assert {(Path(p).relative_to(root).as_posix(), a.source.kind) for p, a in arts.items()} == {
        ("models--org--fake/weights.gguf", "file"),
        ("manifests/m.gguf", "file"),
    }


def test_an_empty_store_lookalike_does_not_crash(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / "models--org--empty" / "blobs").mkdir(parents=True)
    (root / "models--org--empty" / "snapshots" / COMMIT_A).mkdir(parents=True)
    (root / "x" / "manifests").mkdir(parents=True)
    (root / "x" / "blobs").mkdir()
    inv = run(root, tmp_path)
    assert inv.artifacts == ()


def test_a_store_in_a_home_like_place_below_a_root(tmp_path: Path) -> None:
    """A backup of a home: its llama.cpp cache is recognised by its place (.cache/llama.cpp)."""
    root = tmp_path / "backup"
    cache = make_llamacpp(root / "alice" / ".cache" / "llama.cpp", gguf_bytes(tmp_path))
    inv = run(root, tmp_path)
    arts = once(inv)
    assert arts and {a.source.kind for a in arts.values()} == {"llama.cpp"}
    tiny = arts[str(cache / "org_Tiny-GGUF_tiny-Q4_K_M.gguf")]
    assert tiny.source.repo == "org/Tiny-GGUF"


def test_a_store_named_by_the_environment_inside_a_root(tmp_path: Path) -> None:
    """A flat llama.cpp cache has no shape of its own: LLAMA_CACHE names it."""
    root = tmp_path / "data"
    cache = make_llamacpp(root / "flat", gguf_bytes(tmp_path))
    inv = run(root, tmp_path, {"LLAMA_CACHE": str(cache)})
    arts = once(inv)
    assert {a.source.kind for a in arts.values()} == {"llama.cpp"}
    outside = run(root, tmp_path, {"LLAMA_CACHE": str(tmp_path / "elsewhere")})
    assert {a.source.kind for a in outside.artifacts} == {"file"}


def test_spot() -> None:
    hf, ol = huggingface.STORE, ollama.STORE
    assert hf.spot("/nonexistent/models--a--b", "models--a--b") is None
    assert hf.spot("/x/models--", "models--") is None
    assert ol.spot("/x/models/blob", "blob") is None
    kinds = {s.kind for s in stores() if spotter(s) is not None}
    assert {"huggingface", "ollama", "llama.cpp", "lmstudio", "comfyui", "torch-hub"} <= kinds
    place = spotter(next(s for s in stores() if s.kind == "torch-hub"))
    assert place is not None
    assert place("/m/bob/.cache/torch/hub", "hub") == "/m/bob/.cache/torch/hub"
    assert place("/m/bob/torch/hub", "hub") is None


def test_a_store_off_the_default_places_of_a_home(tmp_path: Path, elsewhere_home: Path) -> None:
    """A home is walked the same way: an Ollama folder its environment does not name is found."""
    models = elsewhere_home / "data" / "ollama"
    h = make_ollama(models)
    inv = run(elsewhere_home, tmp_path)
    check_ollama(once(inv), models, h.model_hex)
