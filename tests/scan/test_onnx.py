"""ONNX: models written with the onnx package; external data traversal and custom op domains."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from modelward.models import FileReport, Severity
from modelward.scan import ScanOptions, scan_file
from modelward.scan.context import Limits, NestedResult, ScanContext
from modelward.scan.formats.onnx import OnnxDetector, looks_like_onnx
from modelward.scan.source import BytesSource
from tests.scan.fuzz import mutate, scan_written


def _scan(path: Path) -> FileReport:
    return scan_file(str(path), str(path), ScanOptions(hash=False))


def _rules(rep: FileReport, at_least: Severity = Severity.LOW) -> list[str]:
    return [f.rule for f in rep.findings if f.severity >= at_least]


def _model(
    extra_nodes: list[Any] | tuple[Any, ...] = (),
    functions: list[Any] | tuple[Any, ...] = (),
    opsets: list[Any] | tuple[Any, ...] = (),
) -> Any:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), dtype=np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, dtype=np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
        *extra_nodes,
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[w, b],
    )
    imports = [helper.make_opsetid("", 17), *opsets]
    m = helper.make_model(
        g, opset_imports=imports, producer_name="modelward-tests", functions=list(functions)
    )
    m.ir_version = 8
    helper.set_model_props(m, {"author": "tests"})
    return m


def _external(model: Any, location: str, offset: int = 0, length: int = 432) -> bytes:
    """The model with tensor ``w`` moved to external data at ``location`` (bytes, not saved by onnx)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return m.SerializeToString()


# ---------------------------------------------------------------------- benign
def test_benign_model_is_clean_with_metadata(tmp_path: Path) -> None:
    p = tmp_path / "m.onnx"
    onnx.save(_model(), p)
    rep = _scan(p)
    assert rep.format == "onnx"
    assert rep.findings == ()
    md = rep.metadata
    assert md["ir_version"] == 8
    assert md["producer_name"] == "modelward-tests"
    assert md["opset_import"] == {"ai.onnx": 17}
    assert md["ops"] == {"Conv": 1, "Relu": 1}
    assert md["node_count"] == 2
    assert md["metadata_props"] == {"author": "tests"}


def test_benign_external_data_written_by_onnx(tmp_path: Path) -> None:
    p = tmp_path / "m.onnx"
    onnx.save_model(
        _model(), p, save_as_external_data=True, all_tensors_to_one_file=True,
        location="m.onnx.data", size_threshold=0,
    )  # fmt: skip
    rep = _scan(p)
    assert rep.format == "onnx"
    assert rep.findings == ()
    assert rep.metadata["external_data_files"] == ["m.onnx.data"]
    assert rep.metadata["external_tensors"] == 2


def test_contrib_and_local_function_domains_are_not_reported(tmp_path: Path) -> None:
    fn = helper.make_function(
        "local.fns", "MyRelu", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )  # fmt: skip
    extra = [
        helper.make_node("MyRelu", ["y"], ["z"], domain="local.fns", name="mine"),
        helper.make_node("FusedGemm", ["z", "z"], ["q"], domain="com.microsoft", name="ort"),
    ]
    opsets = [helper.make_opsetid("local.fns", 1), helper.make_opsetid("com.microsoft", 1)]
    p = tmp_path / "m.onnx"
    p.write_bytes(_model(extra, [fn], opsets).SerializeToString())
    rep = _scan(p)
    assert rep.findings == ()
    assert rep.metadata["custom_domains"] == ["com.microsoft", "local.fns"]
    assert rep.metadata["local_functions"] == 1


# ---------------------------------------------------------------------- malicious
@pytest.mark.parametrize(
    "location",
    ["../../../../etc/passwd", "/etc/passwd", "sub/../../secret", "C:\\Windows\\win.ini"],
)
def test_external_data_traversal_is_critical(tmp_path: Path, location: str) -> None:
    p = tmp_path / "m.onnx"
    p.write_bytes(_external(_model(), location))
    rep = _scan(p)
    assert _rules(rep) == ["onnx.external-data-traversal"]
    assert rep.findings[0].severity == Severity.CRITICAL
    assert rep.findings[0].evidence == location
    assert "initializer 'w'" in rep.findings[0].location


def test_external_data_symlink_out_of_folder(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"x" * 1000)
    os.symlink(secret, model_dir / "weights.bin")
    p = model_dir / "m.onnx"
    p.write_bytes(_external(_model(), "weights.bin"))
    rep = _scan(p)
    assert _rules(rep) == ["onnx.external-data-traversal"]


def test_external_data_missing_or_short(tmp_path: Path) -> None:
    p = tmp_path / "m.onnx"
    p.write_bytes(_external(_model(), "missing.bin"))
    rep = _scan(p)
    assert [(f.rule, f.severity) for f in rep.findings] == [
        ("onnx.external-data-missing", Severity.LOW)
    ]
    (tmp_path / "short.bin").write_bytes(b"\0" * 100)
    p.write_bytes(_external(_model(), "short.bin", offset=0, length=432))
    rep = _scan(p)
    assert [(f.rule, f.severity) for f in rep.findings] == [
        ("onnx.external-data-missing", Severity.MEDIUM)
    ]


def test_custom_domain_is_medium(tmp_path: Path) -> None:
    extra = [helper.make_node("Backdoor", ["y"], ["z"], domain="com.evil", name="bd")]
    p = tmp_path / "m.onnx"
    p.write_bytes(_model(extra, opsets=[helper.make_opsetid("com.evil", 1)]).SerializeToString())
    rep = _scan(p)
    assert [(f.rule, f.severity, f.evidence) for f in rep.findings] == [
        ("onnx.custom-op-domain", Severity.MEDIUM, "com.evil::Backdoor")
    ]


def test_subgraph_contents_are_checked(tmp_path: Path) -> None:
    inner_t = numpy_helper.from_array(np.ones(3, dtype=np.float32), "inner")
    inner_t.ClearField("raw_data")
    inner_t.data_location = TensorProto.EXTERNAL
    e = inner_t.external_data.add()
    e.key, e.value = "location", "/etc/shadow"
    then_g = helper.make_graph(
        [helper.make_node("Evil", [], ["o"], domain="ai.evil", name="deep")],
        "then", [], [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)],
        initializer=[inner_t],
    )  # fmt: skip
    else_g = helper.make_graph(
        [helper.make_node("Constant", [], ["o"], value=helper.make_tensor("v", 1, [1], [1.0]))],
        "else", [], [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)],
    )  # fmt: skip
    cond = helper.make_node("If", ["c"], ["r"], then_branch=then_g, else_branch=else_g, name="if")
    p = tmp_path / "m.onnx"
    p.write_bytes(_model([cond]).SerializeToString())
    rep = _scan(p)
    assert sorted(_rules(rep)) == ["onnx.custom-op-domain", "onnx.external-data-traversal"]
    assert any("then_branch" in f.location for f in rep.findings)


def test_nested_member_checks_path_shape_only() -> None:
    def dispatch(ctx: ScanContext, src: Any, name: str) -> NestedResult:
        return NestedResult("unknown", {})

    ctx = ScanContext("/x/archive.zip", Limits(), dispatch).child("m.onnx")
    data = _external(_model(), "../x.bin")
    OnnxDetector().scan(BytesSource(data), ctx)
    assert [f.rule for f in ctx.findings] == ["onnx.external-data-traversal"]
    ctx = ScanContext("/x/archive.zip", Limits(), dispatch).child("m.onnx")
    OnnxDetector().scan(BytesSource(_external(_model(), "x.bin")), ctx)
    assert ctx.findings == []


def test_sniff_does_not_read_big_initializers() -> None:
    m = _model()
    m.graph.initializer[0].raw_data = b"\0" * (8 << 20)
    data = m.SerializeToString()
    reads: list[int] = []

    class Counting(BytesSource):
        def read(self, offset: int, n: int) -> bytes:
            reads.append(n)
            return super().read(offset, n)

    assert looks_like_onnx(data[:4096], Counting(data))
    assert sum(reads) < 4096


# ---------------------------------------------------------------------- fuzzing
VALID = _external(_model([helper.make_node("X", ["y"], ["z"], domain="d.x")]), "w.bin")


@settings(max_examples=60)
@given(st.data())
def test_mutated_model_never_escapes(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    scan_written(tmp_path_factory.mktemp("onnx") / "m.onnx", mutate(data, VALID))
