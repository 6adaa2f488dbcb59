"""safetensors: files from the real writers are clean; every header defect is a finding."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import save_file as np_save
from safetensors.torch import save_file as torch_save

from modelward.models import Severity
from modelward.scan import Limits, ScanOptions, scan_file
from modelward.scan.context import ScanContext
from modelward.scan.engine import dispatch
from modelward.scan.source import BytesSource

OPTS = ScanOptions(hash=False)


def scan_bytes(data: bytes, name: str = "model.safetensors") -> tuple[str, list[Any]]:
    ctx = ScanContext(name, Limits(), dispatch)
    result = dispatch(ctx, BytesSource(data), name)
    return result.format, ctx.findings


def raw(header: Any, data: bytes = b"", *, text: str | None = None) -> bytes:
    body = (text if text is not None else json.dumps(header)).encode()
    return struct.pack("<Q", len(body)) + body + data


def rules(data: bytes) -> set[str]:
    return {f.rule for f in scan_bytes(data)[1]}


def t(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_numpy_file_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    np_save(
        {
            "w": np.zeros((3, 4), np.float32),
            "i": np.arange(10, dtype=np.int64),
            "empty": np.zeros(0, np.float16),
            "b": np.zeros(3, bool),
        },
        str(path),
        metadata={"format": "np", "note": "x" * 3000},
    )
    rep = scan_file(str(path), path.name, OPTS)
    assert rep.format == "safetensors"
    assert rep.findings == ()
    assert rep.metadata["tensor_count"] == 4
    assert rep.metadata["dtypes"] == {"BOOL": 1, "F16": 1, "F32": 1, "I64": 1}
    assert rep.metadata["parameters"] == 25
    assert rep.metadata["metadata"]["format"] == "np"
    assert len(rep.metadata["metadata"]["note"]) < 1100


def test_torch_file_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    tensors = {
        "layer.weight": torch.zeros(16, 8, dtype=torch.bfloat16),
        "layer.bias": torch.zeros(16, dtype=torch.float16),
        "f8": torch.zeros(4, dtype=torch.float8_e4m3fn),
        "u16": torch.zeros(3, dtype=torch.uint16),
    }
    torch_save(tensors, str(path), metadata={"format": "pt"})
    rep = scan_file(str(path), path.name, OPTS)
    assert rep.findings == ()
    assert rep.metadata["parameters"] == 16 * 8 + 16 + 4 + 3


GOOD = raw({"a": t("F32", [2, 2], 0, 16), "b": t("U8", [3], 16, 19)}, b"\0" * 19)


def test_hand_built_file_is_clean() -> None:
    assert scan_bytes(GOOD) == ("safetensors", [])


def test_sub_byte_dtype_sizes() -> None:
    assert rules(raw({"a": t("F4", [4], 0, 2)}, b"\0\0")) == set()
    assert rules(raw({"a": t("F6_E2M3", [4], 0, 3)}, b"\0" * 3)) == set()
    assert rules(raw({"a": t("F4", [3], 0, 2)}, b"\0\0")) == {"safetensors.bad-offsets"}


BAD = {
    "header-larger-than-file": (struct.pack("<Q", 5000) + b'{"a": 1}', "header-out-of-bounds"),
    "header-over-100mb": (
        struct.pack("<Q", 200_000_000) + b'{"a":' + b" " * 64,
        "header-out-of-bounds",
    ),
    "invalid-json": (raw(None, text='{"a": '), "malformed"),
    "not-an-object": (raw([1, 2]), "malformed"),
    "nan": (raw(None, text='{"a": NaN}'), "malformed"),
    "duplicate-key": (
        raw(
            None,
            text='{"a": {"dtype":"U8","shape":[1],"data_offsets":[0,1]}, '
            '"a": {"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
            data=b"\0",
        ),
        "duplicate-key",
    ),
    "missing-dtype": (raw({"a": {"shape": [1], "data_offsets": [0, 1]}}, b"\0"), "malformed"),
    "missing-shape": (raw({"a": {"dtype": "U8", "data_offsets": [0, 1]}}, b"\0"), "malformed"),
    "missing-offsets": (raw({"a": {"dtype": "U8", "shape": [1]}}, b"\0"), "malformed"),
    "negative-dim": (raw({"a": t("U8", [-1], 0, 1)}, b"\0"), "malformed"),
    "float-offset": (
        raw({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1.5]}}),
        "malformed",
    ),
    "reversed-offsets": (raw({"a": t("U8", [0], 5, 1)}, b"\0" * 5), "malformed"),
    "entry-not-object": (raw({"a": [1]}), "malformed"),
    "unknown-dtype": (raw({"a": t("Q4", [1], 0, 1)}, b"\0"), "unknown-dtype"),
    "out-of-bounds": (raw({"a": t("U8", [100], 0, 100)}, b"\0" * 10), "bad-offsets"),
    "overlap": (raw({"a": t("U8", [4], 0, 4), "b": t("U8", [4], 2, 6)}, b"\0" * 6), "bad-offsets"),
    "size-mismatch": (raw({"a": t("F32", [4], 0, 8)}, b"\0" * 8), "bad-offsets"),
    "gap": (raw({"a": t("U8", [4], 0, 4), "b": t("U8", [4], 8, 12)}, b"\0" * 12), "bad-offsets"),
    "trailing-bytes": (raw({"a": t("U8", [4], 0, 4)}, b"\0" * 40), "bad-offsets"),
    "metadata-not-strings": (
        raw({"__metadata__": {"a": 1}, "x": t("U8", [1], 0, 1)}, b"\0"),
        "malformed",
    ),
    "metadata-not-object": (raw({"__metadata__": "x"}), "malformed"),
    "leading-junk": (struct.pack("<Q", 9) + b" \xff{}     ", "malformed"),
    "not-utf8": (raw(None, text='{"a": "x"}').replace(b"x", b"\xff"), "malformed"),
    "deep-nesting": (raw(None, text='{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"), "malformed"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_header_defects_are_findings(name: str) -> None:
    data, rule_id = BAD[name]
    fmt, findings = scan_bytes(data)
    assert fmt == "safetensors"
    ids = {f.rule for f in findings}
    assert f"safetensors.{rule_id}" in ids, (name, ids)
    assert all(f.severity >= Severity.MEDIUM for f in findings)
    assert "format.analysis-failed" not in ids


def test_truncation_at_every_offset_is_a_finding() -> None:
    for cut in range(9, len(GOOD)):
        fmt, findings = scan_bytes(GOOD[:cut])
        assert fmt == "safetensors"
        assert findings, cut
        assert all(f.rule != "format.analysis-failed" for f in findings)


def test_header_over_the_parse_bound_is_reported(tmp_path: Path) -> None:
    from modelward.scan.formats import safetensors as st_mod

    body = b"{" + b" " * (st_mod.MAX_PARSED + 10) + b"}"
    path = tmp_path / "big.safetensors"
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    rep = scan_file(str(path), path.name, OPTS)
    assert {f.rule for f in rep.findings} == {"format.scan-limit"}


def test_pickle_named_safetensors_is_not_this_format(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x80\x04K\x01.")
    rep = scan_file(str(path), path.name, OPTS)
    assert rep.format != "safetensors"


def _check(data: bytes) -> None:
    _, findings = scan_bytes(data)
    assert all(f.rule != "format.analysis-failed" for f in findings), findings


@given(st.binary(max_size=200))
def test_random_headers(body: bytes) -> None:
    _check(struct.pack("<Q", len(body)) + body)
    _check(struct.pack("<Q", len(body)) + b"{" + body)


@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), max_size=6))
def test_mutations_of_a_valid_file(edits: list[tuple[int, int]]) -> None:
    data = bytearray(GOOD)
    for pos, value in edits:
        data[pos] = value
    _check(bytes(data))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=10), _JSON, max_size=5), st.binary(max_size=64))
def test_structured_garbage_headers(header: dict[str, Any], data: bytes) -> None:
    _check(raw(header, data))
