"""Builders of fake homes with the layouts of LM Studio, llama.cpp, GPT4All, Jan, LocalAI and SD UIs."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

from tests.inventory.homes import tiny_gguf, tiny_safetensors


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def gguf_bytes(tmp: Path, name: str = "Tiny") -> bytes:
    scratch = tmp / f".scratch-{os.getpid()}.gguf"
    data = tiny_gguf(scratch, name)
    scratch.unlink()
    return data


def pickle_bytes() -> bytes:
    """A benign pickle (protocol 4), as torch checkpoints and A1111 embeddings are; never loaded."""
    return pickle.dumps({"w": [1.0, 2.0]}, protocol=4)


def make_lmstudio(home: Path, gguf: bytes) -> Path:
    models = home / ".lmstudio" / "models"
    put(models / "lmstudio-community" / "Tiny-GGUF" / "tiny-Q4_K_M.gguf", gguf)
    put(models / "mlx-community" / "Tiny-4bit" / "model.safetensors", tiny_safetensors())
    put(models / "mlx-community" / "Tiny-4bit" / "config.json", b'{"model_type": "llama"}')
    put(models / "loose.gguf", gguf)
    put(models / "me" / "bad--name" / "x.gguf", gguf)  # not a Hub repo id
    put(models / "me" / "renamed" / "weights", tiny_safetensors())  # found by its header
    put(models / "me" / "renamed" / "notes.txt", b"not a model")
    return models


def make_llamacpp(cache: Path, gguf: bytes) -> Path:
    manifest = {
        "ggufFile": {"rfilename": "tiny-Q4_K_M.gguf", "size": len(gguf)},
        "mmprojFile": {"rfilename": "mmproj/tiny-f16.gguf"},
    }
    put(cache / "manifest=org=Tiny-GGUF=Q4_K_M.json", json.dumps(manifest).encode())
    put(cache / "org_Tiny-GGUF_tiny-Q4_K_M.gguf", gguf)
    put(cache / "org_Tiny-GGUF_tiny-Q4_K_M.gguf.etag", b'"deadbeef"\n')
    put(cache / "org_Tiny-GGUF_mmproj_tiny-f16.gguf", gguf)
    split = {"ggufFile": {"rfilename": "big-00001-of-00002.gguf"}}
    put(cache / "manifest=org=Big_GGUF=Q8_0.json", json.dumps(split).encode())
    put(cache / "org_Big_GGUF_big-00001-of-00002.gguf", gguf)
    put(cache / "org_Big_GGUF_big-00002-of-00002.gguf", gguf)
    put(cache / "old_Repo_x.gguf", gguf)
    legacy = {
        "etag": '"cafe"',
        "lastModified": "Mon, 01 Jan 2024 00:00:00 GMT",
        "url": "https://user:secret@huggingface.co/old/Repo/resolve/main/x.gguf",
    }
    put(cache / "old_Repo_x.gguf.json", json.dumps(legacy).encode())
    put(cache / "org_Other_y.gguf.downloadInProgress", gguf[:64])
    put(cache / "manifest=broken=one=latest.json", b"{not json")
    return cache


def make_gpt4all(home: Path, gguf: bytes, elsewhere: Path) -> tuple[Path, Path]:
    app = home / ".local" / "share" / "nomic.ai" / "GPT4All"
    put(app / "Meta-Llama-3-8B-Instruct.Q4_0.gguf", gguf)
    put(app / "localdocs_v2.db", b"SQLite format 3\x00" + b"\x00" * 100)
    put(app / "test_write.txt", b"")
    put(elsewhere / "moved.gguf", gguf)
    ini = home / ".config" / "nomic.ai" / "GPT4All.ini"
    put(ini, f"[General]\nmodelPath={elsewhere}\nuserDefaultModel=Auto\n".encode())
    return app, elsewhere


def make_jan(home: Path, gguf: bytes) -> dict[str, Path]:
    data = home / ".config" / "Jan" / "data"
    new = data / "llamacpp" / "models" / "tiny"
    put(new / "model.gguf", gguf)
    put(
        new / "model.yml",
        b"model_path: llamacpp/models/tiny/model.gguf\nname: Tiny\nsize_bytes: 1234\n"
        b"embedding: false\n",
    )
    evil = data / "llamacpp" / "models" / "evil"
    put(evil / "model.gguf", gguf)
    put(evil / "model.yml", b"model_path: /etc/shadow\nname: evil\n")
    legacy = home / "jan" / "models" / "tiny-legacy"
    put(legacy / "tiny.gguf", gguf)
    doc = {
        "id": "tiny-legacy",
        "name": "Tiny legacy",
        "engine": "nitro",
        "format": "gguf",
        "sources": [
            {
                "filename": "tiny.gguf",
                "url": "https://huggingface.co/org/Tiny-GGUF/resolve/main/tiny.gguf",
            }
        ],
    }
    put(legacy / "model.json", json.dumps(doc).encode())
    broken = home / "jan" / "models" / "broken"
    put(broken / "b.gguf", gguf)
    put(broken / "model.json", b"[[[")
    return {"new": new, "evil": evil, "legacy": legacy, "broken": broken, "data": data}


LOCALAI_TINY = b"""# a LocalAI model config
name: tiny-chat
backend: llama-cpp
context_size: 2048
parameters:
  model: tiny.gguf
  temperature: 0.2
template:
  chat: |
    model: not-a-key.gguf
"""
LOCALAI_LIST = b"""- name: listed
  parameters:
    model: "sub/listed.gguf" # quoted, with a comment
- name: remote
  parameters:
    model: huggingface://org/Tiny-GGUF/tiny.gguf
"""
LOCALAI_EVIL = b"name: evil\nparameters:\n  model: /etc/shadow\n"
LOCALAI_ESCAPE = b"name: escape\nmodel: ../../secret.gguf\nmmproj: ../outside/proj.gguf\n"


def make_localai(models: Path, gguf: bytes) -> Path:
    put(models / "tiny.gguf", gguf)
    put(models / "tiny.yaml", LOCALAI_TINY)
    put(models / "sub" / "listed.gguf", gguf)
    put(models / "list.yaml", LOCALAI_LIST)
    put(models / "evil.yaml", LOCALAI_EVIL)
    put(models / "escape.yml", LOCALAI_ESCAPE)
    put(models / "unnamed.gguf", gguf)
    return models
