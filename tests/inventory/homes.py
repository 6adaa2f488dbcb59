"""Builders of fake homes with the real on-disk layouts of Ollama and the Hugging Face cache."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LLAMA31_LICENSE = (
    "LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\n"
    "Llama 3.1 Version Release Date: July 23, 2024\n\n"
    "“Agreement” means the terms and conditions for use, reproduction, distribution and "
    "modification of the Llama Materials set forth herein.\n"
)
LLAMA31_TEMPLATE = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>{{ .System }}{{ end }}"
)
MEDIA = "application/vnd.ollama.image."
MANIFEST_MEDIA = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA = "application/vnd.docker.container.image.v1+json"
EVIL_DIGEST = "sha256:../../../../../../../../etc/ld.so.preload"
CLOUD_HOST = "https://ollama.com:443"


def tiny_gguf(path: Path, name: str = "Tiny Llama") -> bytes:
    """A small real GGUF written by the ``gguf`` package; returns its bytes."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(256)
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def tiny_safetensors() -> bytes:
    from safetensors.numpy import save

    return save({"w": np.arange(4, dtype=np.float32).reshape(2, 2)}, metadata={"format": "np"})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_sha1(data: bytes) -> str:
    """The git blob id Hugging Face names small files by: sha1(b"blob <size>\\0" + data)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


# ---------------------------------------------------------------------------- Ollama
def write_blob(models: Path, data: bytes) -> str:
    hexd = sha256(data)
    (models / "blobs").mkdir(parents=True, exist_ok=True)
    (models / "blobs" / f"sha256-{hexd}").write_bytes(data)
    return hexd


def layer(kind: str, hexd: str, size: int) -> dict[str, Any]:
    return {"mediaType": MEDIA + kind, "digest": f"sha256:{hexd}", "size": size}


def write_manifest(
    models: Path,
    parts: tuple[str, str, str, str],
    config: dict[str, Any] | None,
    layers: list[dict[str, Any]],
) -> Path:
    """Write ``manifests/<registry>/<namespace>/<model>/<tag>`` (config written as a blob)."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA, "layers": layers}
    if config is not None:
        raw = json.dumps(config).encode()
        doc["config"] = {
            "mediaType": CONFIG_MEDIA,
            "digest": f"sha256:{write_blob(models, raw)}",
            "size": len(raw),
        }
    path = models.joinpath("manifests", *parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


@dataclass
class OllamaHome:
    models: Path
    model_hex: str = ""
    hf_model_hex: str = ""
    projector_hex: str = ""
    license_hex: str = ""
    params_hex: str = ""
    orphan_hex: str = ""
    partial_hex: str = ""
    manifests: dict[str, Path] = field(default_factory=dict)

    def blob(self, hexd: str) -> str:
        return str(self.models / "blobs" / f"sha256-{hexd}")


def make_ollama(
    models: Path,
    *,
    cloud: bool = True,
    orphan: bool = True,
    partial: bool = True,
    evil: bool = True,
) -> OllamaHome:
    """An Ollama ``models`` folder: llama3.1 (two tags, one blob), an hf.co model with a projector,
    and optionally a cloud model, an orphan blob, a partial download and a CVE-2024-37032 manifest."""
    h = OllamaHome(models=models)
    models.mkdir(parents=True, exist_ok=True)
    gguf_bytes = tiny_gguf(models.parent / "tmp-model.gguf")
    (models.parent / "tmp-model.gguf").unlink()
    h.model_hex = write_blob(models, gguf_bytes)
    template = LLAMA31_TEMPLATE.encode()
    template_hex = write_blob(models, template)
    lic = LLAMA31_LICENSE.encode()
    h.license_hex = write_blob(models, lic)
    params = json.dumps({"stop": ["<|eot_id|>"], "temperature": 0.6}).encode()
    h.params_hex = write_blob(models, params)
    config = {
        "model_format": "gguf",
        "model_family": "llama",
        "model_families": ["llama"],
        "model_type": "8.0B",
        "file_type": "Q4_K_M",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    layers = [
        layer("model", h.model_hex, len(gguf_bytes)),
        layer("template", template_hex, len(template)),
        layer("license", h.license_hex, len(lic)),
        layer("params", h.params_hex, len(params)),
    ]
    for tag in ("8b", "latest"):
        h.manifests[f"llama3.1:{tag}"] = write_manifest(
            models, ("registry.ollama.ai", "library", "llama3.1", tag), config, layers
        )
    hf_bytes = tiny_gguf(models.parent / "tmp-hf.gguf", "Tiny HF")
    (models.parent / "tmp-hf.gguf").unlink()
    h.hf_model_hex = write_blob(models, hf_bytes)
    proj = tiny_gguf(models.parent / "tmp-proj.gguf", "Tiny projector")
    (models.parent / "tmp-proj.gguf").unlink()
    h.projector_hex = write_blob(models, proj)
    system = b"You are a pirate."
    system_hex = write_blob(models, system)
    h.manifests["hf.co/org/tiny-gguf:Q4_K_M"] = write_manifest(
        models,
        ("hf.co", "org", "tiny-gguf", "Q4_K_M"),
        {
            "model_format": "gguf",
            "model_family": "gemma3",
            "model_type": "4B",
            "file_type": "Q4_K_M",
            "context_length": 8192,
        },
        [
            layer("model", h.hf_model_hex, len(hf_bytes)),
            layer("projector", h.projector_hex, len(proj)),
            layer("system", system_hex, len(system)),
        ],
    )
    if cloud:
        h.manifests["gpt-oss:120b-cloud"] = write_manifest(
            models,
            ("registry.ollama.ai", "library", "gpt-oss", "120b-cloud"),
            {
                "model_format": "",
                "model_family": "gptoss",
                "model_type": "116.8B",
                "remote_host": CLOUD_HOST,
                "remote_model": "gpt-oss:120b",
            },
            [layer("template", template_hex, len(template))],
        )
    if orphan:
        h.orphan_hex = write_blob(models, os.urandom(64))
    if partial:
        h.partial_hex = sha256(b"the whole file")
        (models / "blobs" / f"sha256-{h.partial_hex}-partial").write_bytes(b"the whole")
        (models / "blobs" / f"sha256-{h.partial_hex}-partial-0").write_text(
            '{"N":0,"Offset":0,"Size":14}'
        )
    if evil:
        path = models.joinpath("manifests", "registry.ollama.ai", "attacker", "evil", "latest")
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "schemaVersion": 2,
            "layers": [{"mediaType": MEDIA + "model", "digest": EVIL_DIGEST, "size": 1}],
        }
        path.write_text(json.dumps(doc))
        h.manifests["attacker/evil:latest"] = path
    return h


# ---------------------------------------------------------------------------- Hugging Face cache
MODEL_CARD = "---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n# tiny\n\nA tiny model.\n"
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


@dataclass
class HfCache:
    cache: Path
    repo: Path
    weights_hex: str = ""
    config_a: str = ""
    config_b: str = ""
    card: str = ""
    incomplete: str = ""
    missing: str = ""

    def blob(self, name: str) -> str:
        return str(self.repo / "blobs" / name)


def _link_file(repo: Path, commit: str, rel: str, blob: str) -> None:
    """``snapshots/<commit>/<rel>`` -> ``../../blobs/<blob>`` (relative, one more ``..`` per subfolder)."""
    path = repo / "snapshots" / commit / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    up = "../" * (2 + rel.count("/"))
    os.symlink(f"{up}blobs/{blob}", path)


def _put(repo: Path, data: bytes, lfs: bool) -> str:
    name = sha256(data) if lfs else git_sha1(data)
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "blobs" / name).write_bytes(data)
    return name


def make_hf_cache(cache: Path, *, hostile: bool = True) -> HfCache:
    """A hub cache: ``models--org--tiny`` with two revisions sharing a safetensors blob, refs/main and a
    tag, a model card, ``.no_exist``, an ``.incomplete`` blob, a broken and a looping link (hostile),
    and ``models--org--nosnap`` with refs but no snapshots."""
    repo = cache / "models--org--tiny"
    h = HfCache(cache=cache, repo=repo)
    h.weights_hex = _put(repo, tiny_safetensors(), lfs=True)
    h.config_a = _put(repo, b'{"model_type": "llama"}', lfs=False)
    h.config_b = _put(repo, b'{"model_type": "llama", "v": 2}', lfs=False)
    h.card = _put(repo, MODEL_CARD.encode(), lfs=False)
    for commit, config in ((COMMIT_A, h.config_a), (COMMIT_B, h.config_b)):
        _link_file(repo, commit, "model.safetensors", h.weights_hex)
        _link_file(repo, commit, "config.json", config)
        _link_file(repo, commit, "README.md", h.card)
    _link_file(repo, COMMIT_A, "onnx/model.onnx", h.weights_hex)  # a subfolder, odd content: fine
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_A)  # no newline, as huggingface_hub writes it
    (repo / "refs" / "v1.0").write_text(COMMIT_B + "\n")
    (repo / ".no_exist" / COMMIT_A).mkdir(parents=True)
    (repo / ".no_exist" / COMMIT_A / "adapter_config.json").write_bytes(b"")
    h.incomplete = sha256(b"big download")
    (repo / "blobs" / f"{h.incomplete}.incomplete").write_bytes(b"big")
    if hostile:
        h.missing = sha256(b"gone")
        _link_file(repo, COMMIT_B, "broken.safetensors", h.missing)
        _link_file(repo, COMMIT_B, "loop.bin", "loop")
        os.symlink("loop", repo / "blobs" / "loop")
        (repo / "refs" / "garbage").write_bytes(b"\xff\x00not a commit")
    nosnap = cache / "models--org--nosnap"
    (nosnap / "refs").mkdir(parents=True)
    (nosnap / "refs" / "main").write_text(COMMIT_A)
    (nosnap / "blobs").mkdir()
    return h


def make_hf_local_dir(
    folder: Path, files: dict[str, bytes], commit: str = COMMIT_A
) -> dict[str, str]:
    """An ``hf download --local-dir FOLDER`` result; returns each file's etag."""
    etags: dict[str, str] = {}
    for rel, data in files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        lfs = rel.endswith((".safetensors", ".gguf", ".bin"))
        etags[rel] = sha256(data) if lfs else git_sha1(data)
        meta = folder / ".cache" / "huggingface" / "download" / f"{rel}.metadata"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(f"{commit}\n{etags[rel]}\n{time.time() + 2}\n")
    return etags
