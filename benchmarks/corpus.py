"""Deterministic benchmark corpora: small benign pickles, sparse multi-GB GGUF/safetensors, hash files.

Everything here *writes* files and never loads one. Each generator is deterministic for a given seed
and size, writes into a temporary name and renames at the end, so an interrupted run is redone and a
finished one is reused by :func:`ensure`.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import string
import struct
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

SMALL_MIN = 1 * KIB
SMALL_MAX = 50 * KIB
PROTOCOLS = (2, 4, 5)
SMALL_KINDS = ("state_dict", "sklearn", "vocab", "config")

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def ensure(path: Path, build: Callable[[Path], None]) -> Path:
    """Return ``path``, building it with ``build(tmp)`` first unless it exists already."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    build(tmp)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- small pickles
def _words(rng: random.Random, n: int, lo: int = 3, hi: int = 10) -> list[str]:
    letters = string.ascii_lowercase
    return ["".join(rng.choices(letters, k=rng.randint(lo, hi))) for _ in range(n)]


def _state_dict(rng: random.Random, budget: int) -> Any:
    """A PyTorch-like state dict with tensors as float lists (about 9 bytes per float)."""
    sd: OrderedDict[str, Any] = OrderedDict()
    n_floats = max(8, budget // 9)
    layer = 0
    while n_floats > 0:
        for part in ("self_attn.q_proj", "self_attn.v_proj", "mlp.fc1", "norm"):
            if n_floats <= 0:
                break
            k = min(n_floats, rng.randint(16, 1024))
            sd[f"encoder.layers.{layer}.{part}.weight"] = [
                round(rng.gauss(0.0, 0.02), 6) for _ in range(k)
            ]
            n_floats -= k
        sd[f"encoder.layers.{layer}.norm.num_batches_tracked"] = rng.randint(0, 10**6)
        layer += 1
    return sd


def _sklearn(rng: random.Random, budget: int) -> Any:
    """A dict shaped like a fitted scikit-learn estimator's ``__dict__`` with raw array bytes."""
    n_features = rng.randint(4, 64)
    n_classes = rng.randint(2, 8)
    coef_len = max(8, budget - 600 - 12 * n_features)
    return {
        "estimator": rng.choice(["LogisticRegression", "LinearSVC", "Ridge", "SGDClassifier"]),
        "params": {"C": 1.0, "penalty": "l2", "max_iter": 100, "tol": 1e-4, "fit_intercept": True},
        "n_features_in_": n_features,
        "feature_names_in_": [f"f_{w}" for w in _words(rng, n_features, 2, 6)],
        "classes_": list(range(n_classes)),
        "coef_": {
            "dtype": "<f8",
            "shape": (n_classes, coef_len // 8),
            "data": rng.randbytes(coef_len),
        },
        "intercept_": {"dtype": "<f8", "shape": (n_classes,), "data": rng.randbytes(8 * n_classes)},
        "n_iter_": [rng.randint(5, 100)],
        "_sklearn_version": "1.5.2",
    }


def _vocab(rng: random.Random, budget: int) -> Any:
    """A tokenizer vocabulary (str -> int) with a few special tokens and merges."""
    n = max(4, budget // 14)
    vocab: dict[str, int] = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for w in _words(rng, n, 1, 9):
        piece = rng.choice(["", "\u0120", "##"]) + w
        vocab.setdefault(piece, len(vocab))
    merges = [
        f"{a} {b}"
        for a, b in zip(_words(rng, n // 8, 1, 4), _words(rng, n // 8, 1, 4), strict=True)
    ]
    return {"model": {"type": "BPE", "vocab": vocab, "merges": merges}, "added_tokens": []}


def _config(rng: random.Random, budget: int) -> Any:
    """A nested training configuration with a per-epoch history."""
    cfg: dict[str, Any] = {
        "model": {
            "architectures": ["BertForSequenceClassification"],
            "hidden_size": rng.choice([256, 512, 768, 1024]),
            "num_hidden_layers": rng.randint(2, 24),
            "hidden_act": rng.choice(["gelu", "relu", "silu"]),
            "dropout": round(rng.random() / 5, 3),
            "layer_norm_eps": 1e-12,
            "tie_word_embeddings": rng.random() < 0.5,
            "rope_scaling": None,
            "id2label": {i: f"LABEL_{i}" for i in range(rng.randint(2, 6))},
        },
        "optimizer": {"name": "adamw", "lr": 5e-5, "betas": (0.9, 0.999), "weight_decay": 0.01},
        "scheduler": {"name": "linear", "warmup_steps": rng.randint(0, 1000)},
        "seed": rng.randint(0, 2**31),
        "history": [],
    }
    per_epoch = 120
    for epoch in range(max(1, (budget - 700) // per_epoch)):
        cfg["history"].append(
            {
                "epoch": epoch,
                "loss": round(rng.uniform(0.01, 3.0), 5),
                "accuracy": round(rng.random(), 5),
                "lr": rng.uniform(1e-6, 5e-5),
                "tags": _words(rng, 2, 3, 6),
                "best": rng.random() < 0.1,
            }
        )
    return cfg


_BUILDERS: dict[str, Callable[[random.Random, int], Any]] = {
    "state_dict": _state_dict,
    "sklearn": _sklearn,
    "vocab": _vocab,
    "config": _config,
}


def small_pickle(seed: int, index: int) -> tuple[str, int, bytes]:
    """(kind, protocol, pickle bytes) of small file ``index``: 1-50 KiB, deterministic."""
    rng = random.Random(seed * 1_000_003 + index)
    kind = SMALL_KINDS[index % len(SMALL_KINDS)]
    protocol = PROTOCOLS[(index // len(SMALL_KINDS)) % len(PROTOCOLS)]
    target = int(SMALL_MIN * (SMALL_MAX / SMALL_MIN) ** rng.random())  # log-uniform
    budget = target
    data = b""
    for _ in range(6):
        state = rng.getstate()
        data = pickle.dumps(_BUILDERS[kind](rng, budget), protocol=protocol)
        if SMALL_MIN <= len(data) <= SMALL_MAX:
            break
        rng.setstate(state)
        budget = max(64, int(budget * target / max(1, len(data))))
    if not SMALL_MIN <= len(data) <= SMALL_MAX:  # cannot happen with the builders above
        raise AssertionError(f"small pickle {index} is {len(data)} bytes")
    return kind, protocol, data


def write_small(folder: Path, count: int, seed: int = 0) -> None:
    """Write ``count`` small benign pickles named ``NNNNN_<kind>_p<protocol>.pkl`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        kind, protocol, data = small_pickle(seed, i)
        (folder / f"{i:05d}_{kind}_p{protocol}.pkl").write_bytes(data)


# --------------------------------------------------------------------------- sparse GGUF
def _llama_tensors(target: int) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, numpy-order shape, ggml type) of a Llama-7B-shaped Q4_K model of about ``target`` bytes."""
    d, ff, vocab = 4096, 11008, 32000
    q4k = 144 / 256
    per_layer = int((4 * d * d + 3 * d * ff) * q4k) + 2 * d * 4
    fixed = int(2 * vocab * d * q4k) + d * 4
    layers = max(1, (target - fixed) // per_layer)
    out: list[tuple[str, tuple[int, ...], str]] = [("token_embd.weight", (vocab, d), "Q4_K")]
    for i in range(layers):
        b = f"blk.{i}"
        out += [
            (f"{b}.attn_norm.weight", (d,), "F32"),
            (f"{b}.attn_q.weight", (d, d), "Q4_K"),
            (f"{b}.attn_k.weight", (d, d), "Q4_K"),
            (f"{b}.attn_v.weight", (d, d), "Q4_K"),
            (f"{b}.attn_output.weight", (d, d), "Q4_K"),
            (f"{b}.ffn_norm.weight", (d,), "F32"),
            (f"{b}.ffn_gate.weight", (ff, d), "Q4_K"),
            (f"{b}.ffn_up.weight", (ff, d), "Q4_K"),
            (f"{b}.ffn_down.weight", (d, ff), "Q4_K"),
        ]
    out += [("output_norm.weight", (d,), "F32"), ("output.weight", (vocab, d), "Q4_K")]
    return out


def _tiny_tensors() -> list[tuple[str, tuple[int, ...], str]]:
    return [("token_embd.weight", (64, 256), "F16"), ("output_norm.weight", (256,), "F32")]


def _vocab_tokens(n: int) -> list[str]:
    rng = random.Random(7)
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    seen = set(toks)
    while len(toks) < n:
        t = rng.choice(["\u2581", ""]) + "".join(
            rng.choices(string.ascii_lowercase, k=rng.randint(1, 8))
        )
        if t not in seen:
            seen.add(t)
            toks.append(t)
    return toks[:n]


def write_gguf(path: Path, target_size: int, vocab_size: int = 32000) -> None:
    """A GGUF v3 file written by the ``gguf`` package whose tensor data is a sparse hole.

    The header, KV section (32k-token vocabulary, scores, types, chat template) and tensor infos
    are real; the file is then extended with ``truncate`` to exactly the size the tensor infos
    declare, so every offset is consistent with the file size. With a small ``target_size`` the
    model has two tiny tensors.
    """
    import gguf

    tensors = _llama_tensors(target_size) if target_size >= 512 * MIB else _tiny_tensors()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("bench-llama-7b")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(4096)
    w.add_embedding_length(4096)
    w.add_block_count(sum(1 for n, _, _ in tensors if n.endswith("attn_q.weight")))
    w.add_feed_forward_length(11008)
    w.add_head_count(32)
    w.add_head_count_kv(32)
    w.add_rope_dimension_count(128)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_license("llama2")
    w.add_tokenizer_model("llama")
    toks = _vocab_tokens(vocab_size)
    w.add_token_list(toks)
    w.add_token_scores([-float(i) for i in range(len(toks))])
    w.add_token_types([2 if i < 3 else (6 if i < 259 else 1) for i in range(len(toks))])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(CHAT_TEMPLATE)
    align = w.data_alignment
    data_size = 0
    for name, shape, tname in tensors:
        qtype = gguf.GGMLQuantizationType[tname]
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        n = 1
        for s in shape:
            n *= s
        nbytes = n // block * type_size
        w.add_tensor_info(name, shape, gguf.np.dtype("float32"), nbytes, raw_dtype=qtype)
        data_size += gguf.GGUFWriter.ggml_pad(nbytes, align)
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    header_end = w.fout[0].tell()
    w.close()
    with open(path, "r+b") as f:
        f.truncate(gguf.GGUFWriter.ggml_pad(header_end, align) + data_size)


# --------------------------------------------------------------------------- sparse safetensors
_ST_DTYPE_SIZE = {"F16": 2, "BF16": 2, "F32": 4}


def write_safetensors(path: Path, target_size: int) -> None:
    """A safetensors file whose header (written by hand) declares BF16 Llama-shaped tensors.

    Offsets are contiguous and the file is extended with ``truncate`` to exactly the declared
    end, so the tensor bytes are a sparse hole.
    """
    d, ff, vocab = 4096, 11008, 32000
    specs: list[tuple[str, list[int], str]] = [("model.embed_tokens.weight", [vocab, d], "BF16")]
    per_layer = 2 * (4 * d * d + 3 * d * ff) + 2 * 2 * d
    layers = max(0, (target_size - 2 * 2 * vocab * d) // per_layer)
    if target_size < 512 * MIB:
        specs = [
            ("model.embed_tokens.weight", [64, 256], "BF16"),
            ("model.norm.weight", [256], "F32"),
        ]
        layers = 0
    for i in range(layers):
        p = f"model.layers.{i}"
        specs += [
            (f"{p}.input_layernorm.weight", [d], "BF16"),
            (f"{p}.self_attn.q_proj.weight", [d, d], "BF16"),
            (f"{p}.self_attn.k_proj.weight", [d, d], "BF16"),
            (f"{p}.self_attn.v_proj.weight", [d, d], "BF16"),
            (f"{p}.self_attn.o_proj.weight", [d, d], "BF16"),
            (f"{p}.post_attention_layernorm.weight", [d], "BF16"),
            (f"{p}.mlp.gate_proj.weight", [ff, d], "BF16"),
            (f"{p}.mlp.up_proj.weight", [ff, d], "BF16"),
            (f"{p}.mlp.down_proj.weight", [d, ff], "BF16"),
        ]
    if layers:
        specs.append(("lm_head.weight", [vocab, d], "BF16"))
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, dtype in specs:
        n = _ST_DTYPE_SIZE[dtype]
        for s in shape:
            n *= s
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)


# --------------------------------------------------------------------------- hash files
def write_random(path: Path, size: int, seed: int = 0) -> None:
    """``size`` pseudo-random bytes (numpy's PCG64 stream), written in 16 MiB chunks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MIB)
            f.write(rng.bytes(n))
            left -= n
