"""The benchmark's corpus generators write valid, deterministic files (small sizes only).

Files are checked statically: pickles with ``pickletools.genops`` (never unpickled), GGUF with the
``gguf`` package's reader (header and tensor infos only), safetensors by its JSON header.
"""

from __future__ import annotations

import itertools
import json
import pickletools
import struct
from pathlib import Path

import pytest

from benchmarks import corpus

ALLOWED_GLOBALS = {("collections", "OrderedDict"), ("_codecs", "encode")}


def _globals_and_last(data: bytes) -> tuple[int, set[tuple[str, str]], str, int]:
    """(protocol, globals imported, name of the last opcode, its position) by a static walk."""
    protocol = 0
    found: set[tuple[str, str]] = set()
    strings: list[str] = []
    last, pos = "", -1
    for op, arg, p in pickletools.genops(data):
        if op.name == "PROTO":
            protocol = int(arg)
        if op.name == "GLOBAL":
            mod, name = str(arg).split(" ", 1)
            found.add((mod, name))
        if op.name == "STACK_GLOBAL":
            found.add((strings[-2], strings[-1]))
        if isinstance(arg, str):
            strings.append(arg)
        last, pos = op.name, int(p or 0)
    return protocol, found, last, pos


def test_small_pickles_are_valid_benign_and_deterministic(tmp_path: Path) -> None:
    n = 24
    corpus.write_small(tmp_path / "a", n, seed=3)
    corpus.write_small(tmp_path / "b", n, seed=3)
    files = sorted((tmp_path / "a").iterdir())
    assert len(files) == n
    kinds, protocols = set(), set()
    for f in files:
        data = f.read_bytes()
        assert data == (tmp_path / "b" / f.name).read_bytes(), "same seed, same bytes"
        assert corpus.SMALL_MIN <= len(data) <= corpus.SMALL_MAX
        protocol, found, last, pos = _globals_and_last(data)
        assert last == "STOP" and pos == len(data) - 1, "one pickle, nothing after STOP"
        assert found <= ALLOWED_GLOBALS, found
        kind, proto_text = f.stem.split("_", 1)[1].rsplit("_p", 1)  # 00003_state_dict_p4
        proto = int(proto_text)
        assert protocol == proto
        kinds.add(kind)
        protocols.add(proto)
    assert kinds == set(corpus.SMALL_KINDS)
    assert protocols == set(corpus.PROTOCOLS)
    assert corpus.small_pickle(4, 7) != corpus.small_pickle(5, 7), "the seed matters"


def test_gguf_header_is_consistent_with_the_file_size(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "m.gguf"
    corpus.write_gguf(path, 4 * corpus.MIB, vocab_size=600)
    size = path.stat().st_size
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.architecture"].contents() == "llama"
    assert len(reader.fields["tokenizer.ggml.tokens"].contents()) == 600
    assert reader.fields["tokenizer.chat_template"].contents() == corpus.CHAT_TEMPLATE
    ends = [t.data_offset + int(t.n_bytes) for t in reader.tensors]
    assert reader.tensors and max(ends) <= size
    assert size - max(ends) < reader.alignment, "no trailing bytes beyond the last tensor's padding"


def test_big_sparse_files_declare_their_exact_size(tmp_path: Path) -> None:
    """Multi-GB sizes cost nothing: tensor data is a hole made by truncate."""
    pytest.importorskip("gguf")
    g, s = tmp_path / "big.gguf", tmp_path / "big.safetensors"
    corpus.write_gguf(g, 3 * corpus.GIB, vocab_size=300)
    corpus.write_safetensors(s, 3 * corpus.GIB)
    for p in (g, s):
        st = p.stat()
        assert 2 * corpus.GIB < st.st_size < 4 * corpus.GIB
        assert st.st_blocks * 512 < 64 * corpus.MIB, "sparse"
    with open(s, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    assert n % 8 == 0
    spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), "contiguous"
    assert 8 + n + spans[-1][1] == s.stat().st_size


def test_random_file_and_ensure(tmp_path: Path) -> None:
    calls: list[Path] = []

    def build(p: Path) -> None:
        calls.append(p)
        corpus.write_random(p, 100_000, seed=2)

    target = tmp_path / "r.bin"
    corpus.ensure(target, build)
    corpus.ensure(target, build)
    assert len(calls) == 1 and target.stat().st_size == 100_000
    other = tmp_path / "o.bin"
    corpus.write_random(other, 100_000, seed=2)
    assert other.read_bytes() == target.read_bytes()
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"
