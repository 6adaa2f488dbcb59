"""LM Studio, llama.cpp, GPT4All, Jan, LocalAI, text-generation-webui, ComfyUI, A1111, torch hub."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelward.inventory.stores import (
    STORE_MODULES,
    a1111,
    comfyui,
    gpt4all,
    jan,
    llamacpp,
    lmstudio,
    localai,
    stores,
    textgen,
    torchhub,
    yamlish,
)
from modelward.inventory.stores.base import StoreItem, StoreResult
from modelward.models import Severity, Source
from tests.inventory.homes import make_hf_cache, tiny_safetensors
from tests.inventory.homes_more import (
    gguf_bytes,
    make_gpt4all,
    make_jan,
    make_llamacpp,
    make_lmstudio,
    make_localai,
    pickle_bytes,
    put,
)


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return gguf_bytes(tmp_path_factory.mktemp("gguf"))


def by_path(result: StoreResult) -> dict[str, StoreItem]:
    out = {i.path: i for i in result.items}
    assert len(out) == len(result.items), "one item per path"
    return out


def rules(item: StoreItem) -> list[tuple[str, Severity]]:
    return [(f.rule, f.severity) for f in item.findings]


def test_every_store_is_registered() -> None:
    kinds = {s.kind for s in stores()}
    assert len(kinds) == len(STORE_MODULES)
    assert kinds >= {
        "lmstudio", "llama.cpp", "gpt4all", "jan", "localai", "textgen-webui", "comfyui",
        "a1111", "torch-hub",
    }  # fmt: skip


# ---------------------------------------------------------------------------- LM Studio
def test_lmstudio(tmp_path: Path, gguf: bytes) -> None:
    models = make_lmstudio(tmp_path, gguf)
    store = lmstudio.LMStudioStore()
    assert store.kind == "lmstudio"
    assert store.locations(tmp_path, {}) == [
        tmp_path / ".lmstudio" / "models",
        tmp_path / ".cache" / "lm-studio" / "models",
    ]
    result = store.collect(models)
    assert result.errors == []
    items = by_path(result)
    p = str(models)
    assert set(items) == {
        f"{p}/lmstudio-community/Tiny-GGUF/tiny-Q4_K_M.gguf",
        f"{p}/mlx-community/Tiny-4bit/model.safetensors",
        f"{p}/loose.gguf",
        f"{p}/me/bad--name/x.gguf",
        f"{p}/me/renamed/weights",
    }
    tiny = items[f"{p}/lmstudio-community/Tiny-GGUF/tiny-Q4_K_M.gguf"]
    assert tiny.source == Source(
        "lmstudio", name="lmstudio-community/Tiny-GGUF", repo="lmstudio-community/Tiny-GGUF"
    )
    assert tiny.metadata == {
        "lmstudio": {
            "path_in_store": "lmstudio-community/Tiny-GGUF/tiny-Q4_K_M.gguf",
            "publisher": "lmstudio-community",
            "file": "tiny-Q4_K_M.gguf",
        }
    }
    assert (tiny.sha256, tiny.license, tiny.findings) == (None, None, ())
    mlx = items[f"{p}/mlx-community/Tiny-4bit/model.safetensors"]
    assert mlx.source.repo == "mlx-community/Tiny-4bit"
    assert items[f"{p}/loose.gguf"].source == Source("lmstudio", name="loose.gguf")
    assert items[f"{p}/me/bad--name/x.gguf"].source == Source("lmstudio", name="me/bad--name")
    assert items[f"{p}/me/renamed/weights"].source.repo == "me/renamed"


def test_lmstudio_home_pointer(tmp_path: Path, gguf: bytes) -> None:
    home = tmp_path / "home"
    lm_home = tmp_path / "disk" / "lmstudio"
    put(lm_home / "models" / "org" / "Repo-GGUF" / "m.gguf", gguf)
    put(home / ".lmstudio-home-pointer", f"{lm_home}\n".encode())
    store = lmstudio.LMStudioStore()
    locs = store.locations(home, {})
    assert locs[0] == lm_home / "models"
    item = store.collect(locs[0]).items[0]
    assert item.metadata["lmstudio"]["home_pointer"] == str(home / ".lmstudio-home-pointer")
    assert item.source == Source("lmstudio", name="org/Repo-GGUF", repo="org/Repo-GGUF")


@pytest.mark.parametrize(
    "content", [b"", b"relative/path", b"/a\n/b", b"\xff\xfe\x00", b"x" * 5000]
)
def test_lmstudio_bad_pointer(tmp_path: Path, content: bytes) -> None:
    put(tmp_path / ".lmstudio-home-pointer", content)
    assert lmstudio.read_pointer(tmp_path / ".lmstudio-home-pointer") is None
    assert lmstudio.LMStudioStore().locations(tmp_path, {})[0] == tmp_path / ".lmstudio" / "models"


def test_hub_repo() -> None:
    assert lmstudio.hub_repo("org", "Repo_1.5-GGUF") == "org/Repo_1.5-GGUF"
    for bad in (("org", "a--b"), ("..", "x"), ("org", "a..b"), ("-x", "y"), ("o", "")):
        assert lmstudio.hub_repo(*bad) is None


# ---------------------------------------------------------------------------- llama.cpp
def test_llamacpp_locations(tmp_path: Path) -> None:
    store = llamacpp.STORE
    assert store.kind == "llama.cpp"
    env = {"LLAMA_CACHE": "/data/llama", "XDG_CACHE_HOME": "/xdg"}
    assert store.locations(tmp_path, env) == [
        Path("/data/llama"),
        Path("/xdg/llama.cpp"),
        tmp_path / ".cache" / "llama.cpp",
        tmp_path / "Library" / "Caches" / "llama.cpp",
        tmp_path / "AppData" / "Local" / "llama.cpp",
    ]


def test_llamacpp_flat_cache(tmp_path: Path, gguf: bytes) -> None:
    cache = make_llamacpp(tmp_path / "llama.cpp", gguf)
    result = llamacpp.STORE.collect(cache)
    assert [e.path for e in result.errors] == [str(cache / "manifest=broken=one=latest.json")]
    items = by_path(result)
    c = str(cache)
    assert set(items) == {
        f"{c}/org_Tiny-GGUF_tiny-Q4_K_M.gguf",
        f"{c}/org_Tiny-GGUF_mmproj_tiny-f16.gguf",
        f"{c}/org_Big_GGUF_big-00001-of-00002.gguf",
        f"{c}/org_Big_GGUF_big-00002-of-00002.gguf",
        f"{c}/old_Repo_x.gguf",
        f"{c}/org_Other_y.gguf.downloadInProgress",
    }
    tiny = items[f"{c}/org_Tiny-GGUF_tiny-Q4_K_M.gguf"]
    assert tiny.source == Source("llama.cpp", name="tiny-Q4_K_M.gguf", repo="org/Tiny-GGUF")
    assert tiny.metadata == {
        "llama.cpp": {
            "path_in_store": "org_Tiny-GGUF_tiny-Q4_K_M.gguf",
            "layout": "flat",
            "tag": "Q4_K_M",
            "role": "model",
            "manifest": "manifest=org=Tiny-GGUF=Q4_K_M.json",
            "etag": '"deadbeef"',
        }
    }
    assert (tiny.sha256, tiny.license, tiny.findings) == (None, None, ())
    proj = items[f"{c}/org_Tiny-GGUF_mmproj_tiny-f16.gguf"]
    assert proj.source == Source("llama.cpp", name="mmproj/tiny-f16.gguf", repo="org/Tiny-GGUF")
    assert proj.metadata["llama.cpp"]["role"] == "projector"
    for n in (1, 2):
        part = items[f"{c}/org_Big_GGUF_big-0000{n}-of-00002.gguf"]
        assert part.source == Source(
            "llama.cpp", name=f"big-0000{n}-of-00002.gguf", repo="org/Big_GGUF"
        )
    old = items[f"{c}/old_Repo_x.gguf"]
    assert old.source == Source("llama.cpp", name="x.gguf", repo="old/Repo")
    meta = old.metadata["llama.cpp"]
    assert meta["url"] == "https://huggingface.co/old/Repo/resolve/main/x.gguf"  # no password
    assert (meta["etag"], meta["ref"]) == ('"cafe"', "main")
    assert meta["last_modified"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    partial = items[f"{c}/org_Other_y.gguf.downloadInProgress"]
    assert partial.source == Source("llama.cpp", name="org_Other_y.gguf")
    assert partial.metadata["llama.cpp"]["role"] == "partial"
    assert rules(partial) == [("llamacpp.partial-download", Severity.INFO)]


def test_llamacpp_hub_layout(tmp_path: Path, gguf: bytes) -> None:
    cache = tmp_path / "llama.cpp"
    h = make_hf_cache(cache, hostile=False)
    put(cache / "plain.gguf", gguf)
    result = llamacpp.STORE.collect(cache)
    assert result.errors == []
    items = by_path(result)
    weights = items[h.blob(h.weights_hex)]
    assert weights.source == Source(
        "llama.cpp", name="model.safetensors", repo="org/tiny", revision="a" * 40
    )
    assert weights.sha256 == h.weights_hex
    assert weights.metadata["llama.cpp"]["layout"] == "hub"
    assert weights.metadata["llama.cpp"]["refs"] == ["main"]
    assert items[str(cache / "plain.gguf")].source == Source("llama.cpp", name="plain.gguf")
    assert all(i.source.kind == "llama.cpp" for i in result.items)
    assert items[h.blob(h.incomplete) + ".incomplete"].metadata["llama.cpp"]["role"] == "incomplete"
    assert set(items) == {
        h.blob(h.weights_hex), h.blob(h.config_a), h.blob(h.config_b),
        h.blob(h.incomplete) + ".incomplete", str(cache / "plain.gguf"),
    }  # fmt: skip


def test_llamacpp_helpers() -> None:
    assert llamacpp.parse_manifest_name("manifest=a=b=c.json") == ("a/b", "a_b", "c")
    assert llamacpp.parse_manifest_name("manifest=a_b=c.json") == (None, "a_b", "c")
    for bad in ("manifest=.json", "manifest=a==c.json", "x.json", "manifest=a=b=c=d.json"):
        assert llamacpp.parse_manifest_name(bad) is None
    assert llamacpp.hub_url("https://hf.co/a/b/resolve/abc/d/e.gguf") == {
        "repo": "a/b", "ref": "abc", "file": "d/e.gguf"
    }  # fmt: skip
    for bad in ("https://evil.com/a/b/resolve/m/f", "file:///etc/shadow", "https://hf.co/a/b"):
        assert llamacpp.hub_url(bad) is None
    assert llamacpp.manifest_files({"ggufFile": {"rfilename": 3}, "mmprojFile": []}) == []


# ---------------------------------------------------------------------------- GPT4All
def test_gpt4all(tmp_path: Path, gguf: bytes) -> None:
    home = tmp_path / "home"
    app, elsewhere = make_gpt4all(home, gguf, tmp_path / "disk" / "gpt4all")
    store = gpt4all.GPT4AllStore()
    assert store.kind == "gpt4all"
    locs = store.locations(home, {})
    assert locs == [
        elsewhere,
        app,
        home / "Library" / "Application Support" / "nomic.ai" / "GPT4All",
        home / "AppData" / "Local" / "nomic.ai" / "GPT4All",
        home / ".cache" / "gpt4all",
    ]
    result = store.collect(app)
    assert result.errors == []
    (only,) = result.items
    assert only.path == str(app / "Meta-Llama-3-8B-Instruct.Q4_0.gguf")
    assert only.source == Source("gpt4all", name="Meta-Llama-3-8B-Instruct.Q4_0.gguf")
    assert only.metadata == {"gpt4all": {"path_in_store": "Meta-Llama-3-8B-Instruct.Q4_0.gguf"}}
    moved = store.collect(elsewhere).items
    assert [i.source.name for i in moved] == ["moved.gguf"]
    assert moved[0].metadata["gpt4all"]["model_path_setting"] == str(
        home / ".config" / "nomic.ai" / "GPT4All.ini"
    )


def test_gpt4all_setting_parser() -> None:
    assert gpt4all.model_path_setting('[General]\nmodelPath=/a\nmodelPath="/b c"\n') == "/b c"
    assert gpt4all.model_path_setting("modelPathX=/a\n# modelPath\n") is None
    assert gpt4all.model_path_setting("modelPath=\n") is None


# ---------------------------------------------------------------------------- Jan
def test_jan(tmp_path: Path, gguf: bytes) -> None:
    paths = make_jan(tmp_path, gguf)
    store = jan.STORE
    assert store.kind == "jan"
    locs = store.locations(tmp_path, {})
    assert paths["data"] / "llamacpp" / "models" in locs
    assert tmp_path / "jan" / "models" in locs
    assert tmp_path / "AppData" / "Roaming" / "Jan" / "data" / "mlx" / "models" in locs

    new_root = paths["data"] / "llamacpp" / "models"
    result = store.collect(new_root)
    assert result.errors == []
    items = by_path(result)
    assert set(items) == {
        str(paths["new"] / "model.gguf"),
        str(paths["evil"] / "model.gguf"),
        str(paths["evil"] / "model.yml"),
    }
    tiny = items[str(paths["new"] / "model.gguf")]
    assert tiny.source == Source("jan", name="tiny")
    assert tiny.metadata == {
        "jan": {
            "path_in_store": "tiny/model.gguf",
            "name": "Tiny",
            "descriptor": str(paths["new"] / "model.yml"),
            "engine": "llamacpp",
        }
    }
    assert tiny.findings == ()
    evil = items[str(paths["evil"] / "model.yml")]
    assert rules(evil) == [("jan.model-outside-store", Severity.LOW)]
    assert evil.findings[0].evidence == "/etc/shadow"
    assert evil.source == Source("jan", name="evil")
    assert evil.metadata == {"jan": {"role": "descriptor"}}

    legacy = store.collect(tmp_path / "jan" / "models")
    assert [e.path for e in legacy.errors] == [str(paths["broken"] / "model.json")]
    items = by_path(legacy)
    old = items[str(paths["legacy"] / "tiny.gguf")]
    assert old.source == Source("jan", name="tiny-legacy", repo="org/Tiny-GGUF")
    assert old.metadata["jan"] == {
        "path_in_store": "tiny-legacy/tiny.gguf",
        "name": "Tiny legacy",
        "engine": "nitro",
        "format": "gguf",
        "descriptor": str(paths["legacy"] / "model.json"),
    }
    assert items[str(paths["broken"] / "b.gguf")].source == Source("jan", name="broken")


def test_jan_link_import(tmp_path: Path, gguf: bytes) -> None:
    """A legacy descriptor whose source url is a local file elsewhere (import by link)."""
    outside = put(tmp_path / "Downloads" / "m.gguf", gguf)
    folder = tmp_path / "jan" / "models" / "m"
    put(folder / "m.gguf", gguf)
    put(folder / "model.json", json.dumps({"id": "m", "sources": [{"url": str(outside)}]}).encode())
    items = by_path(jan.STORE.collect(tmp_path / "jan" / "models"))
    assert rules(items[str(folder / "model.json")]) == [("jan.model-outside-store", Severity.LOW)]
    assert str(outside) not in items


# ---------------------------------------------------------------------------- LocalAI
def test_localai(tmp_path: Path, gguf: bytes) -> None:
    models = make_localai(tmp_path / "LocalAI" / "models", gguf)
    put(tmp_path / "secret.gguf", b"never read")
    store = localai.STORE
    assert store.kind == "localai"
    assert store.locations(tmp_path, {"LOCALAI_MODELS_PATH": "/srv/m", "MODELS_PATH": "/m"}) == [
        Path("/srv/m"),
        Path("/m"),
        tmp_path / "LocalAI" / "models",
        Path("/usr/share/local-ai/models"),
    ]
    result = store.collect(models)
    assert result.errors == []
    items = by_path(result)
    m = str(models)
    assert set(items) == {
        f"{m}/tiny.gguf",
        f"{m}/sub/listed.gguf",
        f"{m}/unnamed.gguf",
        f"{m}/evil.yaml",
        f"{m}/escape.yml",
    }
    tiny = items[f"{m}/tiny.gguf"]
    assert tiny.source == Source("localai", name="tiny-chat")
    assert tiny.metadata == {
        "localai": {
            "path_in_store": "tiny.gguf",
            "config": f"{m}/tiny.yaml",
            "backend": "llama-cpp",
            "role": "model",
        }
    }
    listed = items[f"{m}/sub/listed.gguf"]
    assert listed.source == Source("localai", name="listed")
    assert listed.metadata["localai"]["config"] == f"{m}/list.yaml"
    assert items[f"{m}/unnamed.gguf"].source == Source("localai", name="unnamed.gguf")
    evil = items[f"{m}/evil.yaml"]
    assert rules(evil) == [("localai.model-outside-store", Severity.MEDIUM)]
    assert evil.findings[0].evidence == "/etc/shadow"
    assert evil.findings[0].location == f"{m}/evil.yaml"
    assert evil.source == Source("localai", name="evil")
    assert evil.metadata == {"localai": {"role": "config", "names": ["evil"], "remote": []}}
    escape = items[f"{m}/escape.yml"]
    assert rules(escape) == [("localai.model-outside-store", Severity.MEDIUM)] * 2
    assert [f.evidence for f in escape.findings] == ["../../secret.gguf", "../outside/proj.gguf"]


def test_localai_link_out_of_store(tmp_path: Path, gguf: bytes) -> None:
    """A config naming a link inside the folder that leads out of it is outside too."""
    models = tmp_path / "models"
    put(tmp_path / "elsewhere" / "real.gguf", gguf)
    models.mkdir()
    os.symlink(tmp_path / "elsewhere" / "real.gguf", models / "link.gguf")
    put(models / "c.yaml", b"name: c\nparameters:\n  model: link.gguf\n")
    items = by_path(localai.STORE.collect(models))
    assert rules(items[str(models / "c.yaml")]) == [
        ("localai.model-outside-store", Severity.MEDIUM)
    ]
    link = items[str(models / "link.gguf")]
    assert link.source == Source("localai", name="link.gguf")
    assert link.metadata["localai"]["link_target"] == str(tmp_path / "elsewhere" / "real.gguf")
    assert link.metadata["localai"]["outside_store"] is True


def test_yamlish() -> None:
    docs = yamlish.entries(
        "name: a\nparameters:\n  model: 'x.gguf'\n  nested:\n    model: no\n---\n"
        "name: b # c\nmodel: |\n  y\n- z\n",
        ("parameters",),
    )
    assert docs == [{"name": "a", "parameters.model": "x.gguf"}, {"name": "b"}]
    assert yamlish.entries("\tname: tab\nkey:value\n: x\n") == []


# ---------------------------------------------------------------------------- folder stores
def test_comfyui(tmp_path: Path, gguf: bytes) -> None:
    models = tmp_path / "ComfyUI" / "models"
    st_bytes = tiny_safetensors()
    put(models / "checkpoints" / "sd_xl.safetensors", st_bytes)
    put(models / "checkpoints" / "put_checkpoints_here", b"")
    put(models / "loras" / "style" / "l.safetensors", st_bytes)
    put(models / "vae" / "v.pt", pickle_bytes())
    put(tmp_path / "big" / "unet.gguf", gguf)
    os.symlink(tmp_path / "big" / "unet.gguf", models / "checkpoints" / "linked.gguf")
    os.symlink(tmp_path / "big", models / "unet")
    os.symlink(tmp_path / "gone.safetensors", models / "checkpoints" / "broken.safetensors")
    store = comfyui.STORE
    assert store.kind == "comfyui"
    assert store.locations(tmp_path, {}) == [
        models,
        tmp_path / "comfy" / "ComfyUI" / "models",
        tmp_path / "Documents" / "ComfyUI" / "models",
    ]
    result = store.collect(models)
    assert sorted((e.path, e.error.split(":")[0]) for e in result.errors) == [
        (str(models / "checkpoints" / "broken.safetensors"), "broken symbolic link"),
        (str(models / "unet"), f"a symbolic link to the folder {tmp_path / 'big'}"),
    ]
    items = by_path(result)
    assert {p: i.source.name for p, i in items.items()} == {
        str(models / "checkpoints" / "sd_xl.safetensors"): "checkpoints/sd_xl.safetensors",
        str(models / "checkpoints" / "linked.gguf"): "checkpoints/linked.gguf",
        str(models / "loras" / "style" / "l.safetensors"): "loras/style/l.safetensors",
        str(models / "vae" / "v.pt"): "vae/v.pt",
    }
    linked = items[str(models / "checkpoints" / "linked.gguf")]
    assert linked.metadata == {
        "comfyui": {
            "path_in_store": "checkpoints/linked.gguf",
            "category": "checkpoints",
            "link_target": str(tmp_path / "big" / "unet.gguf"),
            "outside_store": True,
        }
    }
    lora = items[str(models / "loras" / "style" / "l.safetensors")]
    assert lora.metadata["comfyui"]["category"] == "loras"
    assert "link_target" not in lora.metadata["comfyui"]


def test_a1111(tmp_path: Path) -> None:
    base = tmp_path / "stable-diffusion-webui"
    put(base / "models" / "Stable-diffusion" / "v1-5.ckpt", pickle_bytes())
    put(base / "models" / "Lora" / "l.safetensors", tiny_safetensors())
    put(base / "embeddings" / "bad-hands.pt", pickle_bytes())
    store = a1111.STORE
    assert store.kind == "a1111"
    assert store.locations(tmp_path, {})[:2] == [base / "models", base / "embeddings"]
    items = by_path(store.collect(base / "models"))
    ckpt = items[str(base / "models" / "Stable-diffusion" / "v1-5.ckpt")]
    assert ckpt.source == Source("a1111", name="Stable-diffusion/v1-5.ckpt")
    assert ckpt.metadata == {
        "a1111": {"path_in_store": "Stable-diffusion/v1-5.ckpt", "category": "Stable-diffusion"}
    }
    assert items[str(base / "models" / "Lora" / "l.safetensors")].metadata["a1111"]["category"] == (
        "Lora"
    )
    (emb,) = store.collect(base / "embeddings").items
    assert emb.source == Source("a1111", name="bad-hands.pt")
    assert emb.metadata["a1111"]["category"] == "embeddings"


def test_textgen(tmp_path: Path, gguf: bytes) -> None:
    base = tmp_path / "text-generation-webui"
    put(base / "models" / "TheBloke_Llama-2-7B-GPTQ" / "model.safetensors", tiny_safetensors())
    put(base / "models" / "TheBloke_Llama-2-7B-GPTQ" / "config.json", b"{}")
    put(base / "models" / "tiny.gguf", gguf)
    put(base / "models" / "place-your-models-here.txt", b"")
    put(base / "user_data" / "loras" / "l" / "adapter_model.bin", pickle_bytes())
    store = textgen.STORE
    assert store.kind == "textgen-webui"
    assert store.locations(tmp_path, {}) == [
        base / "models", base / "loras", base / "user_data" / "models", base / "user_data" / "loras"
    ]  # fmt: skip
    items = by_path(store.collect(base / "models"))
    folder = items[str(base / "models" / "TheBloke_Llama-2-7B-GPTQ" / "model.safetensors")]
    assert folder.source == Source("textgen-webui", name="TheBloke_Llama-2-7B-GPTQ")
    assert folder.metadata == {
        "textgen-webui": {
            "path_in_store": "TheBloke_Llama-2-7B-GPTQ/model.safetensors",
            "role": "model",
            "model_folder": "TheBloke_Llama-2-7B-GPTQ",
        }
    }
    tiny = items[str(base / "models" / "tiny.gguf")]
    assert tiny.source == Source("textgen-webui", name="tiny.gguf")
    assert tiny.metadata["textgen-webui"]["model_folder"] is None
    (lora,) = store.collect(base / "user_data" / "loras").items
    assert lora.metadata["textgen-webui"]["role"] == "lora"


def test_torchhub(tmp_path: Path) -> None:
    hub = tmp_path / ".cache" / "torch" / "hub"
    put(hub / "checkpoints" / "resnet18-f37072fd.pth", pickle_bytes())
    put(hub / "checkpoints" / "plain.pt", pickle_bytes())
    put(hub / "pytorch_vision_main" / "hubconf.py", b"dependencies = []\n")
    put(hub / "pytorch_vision_main" / "weights.pt", pickle_bytes())
    store = torchhub.STORE
    assert store.kind == "torch-hub"
    assert store.locations(tmp_path, {"TORCH_HOME": "/t", "XDG_CACHE_HOME": "/x"}) == [
        Path("/t/hub"), Path("/x/torch/hub"), hub
    ]  # fmt: skip
    items = by_path(store.collect(hub))
    assert set(items) == {
        str(hub / "checkpoints" / "resnet18-f37072fd.pth"),
        str(hub / "checkpoints" / "plain.pt"),
        str(hub / "pytorch_vision_main" / "weights.pt"),
    }
    ck = items[str(hub / "checkpoints" / "resnet18-f37072fd.pth")]
    assert ck.source == Source("torch-hub", name="resnet18-f37072fd.pth")
    assert ck.metadata == {
        "torch-hub": {
            "path_in_store": "checkpoints/resnet18-f37072fd.pth",
            "sha256_prefix": "f37072fd",
        }
    }
    assert (
        items[str(hub / "checkpoints" / "plain.pt")].metadata["torch-hub"]["sha256_prefix"] is None
    )
    repo = items[str(hub / "pytorch_vision_main" / "weights.pt")]
    assert repo.source == Source("torch-hub", name="pytorch_vision_main/weights.pt")
    assert repo.metadata["torch-hub"]["hub_repo"] == "pytorch_vision_main"


def test_folder_walk_hostile(tmp_path: Path, gguf: bytes) -> None:
    """A FIFO, a looping link, an unreadable folder and a deep tree: errors, no hang."""
    models = tmp_path / "ComfyUI" / "models"
    put(models / "checkpoints" / "ok.gguf", gguf)
    os.mkfifo(models / "checkpoints" / "fifo.safetensors")
    os.mkfifo(models / "checkpoints" / "fifo-no-ext")
    os.symlink("loop.gguf", models / "checkpoints" / "loop.gguf")
    locked = models / "locked"
    locked.mkdir()
    put(locked / "x.gguf", gguf)
    deep = models.joinpath(*["d"] * 12)
    put(deep / "deep.gguf", gguf)
    locked.chmod(0)
    try:
        result = comfyui.STORE.collect(models)
    finally:
        locked.chmod(0o755)
    readable = ["locked/x.gguf"] if os.geteuid() == 0 else []  # root reads a mode-0 folder
    assert [i.source.name for i in result.items] == ["checkpoints/ok.gguf", *readable]
    errors = {e.path: e.error for e in result.errors}
    assert str(models / "checkpoints" / "loop.gguf") in errors
    assert any("deeper than" in e for e in errors.values())
    if os.geteuid() != 0:
        assert errors[str(locked)].startswith("cannot list")


# ---------------------------------------------------------------------------- properties
_TEXT = st.text(alphabet=st.sampled_from(list("ab:- #'\"|\n\t./\x00é")), max_size=300)


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_yamlish_never_raises(text: str) -> None:
    docs = yamlish.entries(text, ("parameters",))
    assert all(isinstance(k, str) and isinstance(v, str) for d in docs for k, v in d.items())


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400) | _TEXT.map(str.encode))
def test_localai_config_never_raises(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    models = tmp_path_factory.mktemp("localai")
    put(models / "c.yaml", raw)
    result = localai.STORE.collect(models)
    assert len(result.items) <= 1  # the config: named a file outside, or a model by its header
    for item in result.items:
        assert item.path == str(models / "c.yaml")
        assert {r for r, _ in rules(item)} <= {"localai.model-outside-store"}


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400) | _TEXT.map(str.encode))
def test_jan_descriptors_never_raise(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    root = tmp_path_factory.mktemp("jan") / "models"
    put(root / "m" / "model.json", raw)
    put(root / "m" / "model.yml", raw)
    put(root / "m" / "w.gguf", b"GGUF")
    result = jan.STORE.collect(root)
    assert any(i.path == str(root / "m" / "w.gguf") for i in result.items)


_JSONISH: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
        ["ggufFile", "mmprojFile", "rfilename", "id", "sources", "url", "etag", "x"]), c, max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(_JSONISH)
def test_json_descriptors_never_raise(doc: Any) -> None:
    for role, rfile in llamacpp.manifest_files(doc):
        assert role in ("model", "projector") and isinstance(rfile, str)
    desc = jan.from_json(doc)
    assert isinstance(desc, dict)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_llamacpp_sidecars_never_raise(
    tmp_path_factory: pytest.TempPathFactory, manifest: bytes, sidecar: bytes
) -> None:
    cache = tmp_path_factory.mktemp("llama")
    put(cache / "manifest=o=r=t.json", manifest)
    put(cache / "o_r_f.gguf", b"GGUF")
    put(cache / "o_r_f.gguf.json", sidecar)
    put(cache / "o_r_f.gguf.etag", sidecar)
    result = llamacpp.STORE.collect(cache)
    assert [i.path for i in result.items] == [str(cache / "o_r_f.gguf")]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_name_parsers_never_raise(text: str) -> None:
    llamacpp.parse_manifest_name(text)
    llamacpp.hub_url(text)
    gpt4all.model_path_setting(text)
    lmstudio.hub_repo(*[*text.split("/", 1), ""][:2])
