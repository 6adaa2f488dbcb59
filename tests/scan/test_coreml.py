"""Core ML: ``.mlmodel`` protobufs built by hand; custom layers/models, linked models, pipelines."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelward.models import FileReport, Severity
from modelward.scan import ScanOptions, scan_file
from modelward.scan.formats.coreml import looks_like_coreml
from modelward.scan.formats.onnx import looks_like_onnx
from modelward.scan.formats.tensorflow import looks_like_savedmodel
from modelward.scan.source import BytesSource
from tests.scan.fuzz import mutate, scan_written
from tests.scan.test_protobuf import ld, vint


def feature(name: str) -> bytes:
    return ld(1, name) + ld(3, ld(5, vint(1, 65568)))  # multiArrayType, FLOAT32


def description() -> bytes:
    meta = ld(1, "A test model") + ld(2, "1.0") + ld(3, "modelward") + ld(4, "MIT")
    return ld(1, feature("input")) + ld(10, feature("output")) + ld(100, meta)


def layer(name: str, body_field: int, body: bytes = b"") -> bytes:
    return ld(1, name) + ld(2, "input") + ld(3, "output") + ld(body_field, body)


def network(*layers: bytes) -> bytes:
    return b"".join(ld(1, x) for x in layers)


def mlmodel(type_field: int, body: bytes, version: int = 4) -> bytes:
    return vint(1, version) + ld(2, description()) + ld(type_field, body)


BENIGN_NN = network(
    layer("conv", 100, vint(1, 3) + vint(2, 8)),  # convolution
    layer("relu", 130, ld(10, b"")),  # activation ReLU
    layer("fc", 140, vint(1, 8) + vint(2, 4)),  # innerProduct
)


def _scan(path: Path) -> FileReport:
    return scan_file(str(path), str(path), ScanOptions(hash=False))


def _write(tmp_path: Path, data: bytes, name: str = "m.mlmodel") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_benign_neural_network_is_clean(tmp_path: Path) -> None:
    rep = _scan(_write(tmp_path, mlmodel(500, BENIGN_NN)))
    assert rep.format == "coreml"
    assert rep.findings == ()
    md = rep.metadata
    assert md["specification_version"] == 4
    assert md["model_type"] == "neuralNetwork"
    assert md["layer_count"] == 3
    assert md["author"] == "modelward" and md["license"] == "MIT"


def test_mlpackage_member_is_recognised_by_content(tmp_path: Path) -> None:
    pkg = tmp_path / "M.mlpackage" / "Data" / "com.apple.CoreML"
    pkg.mkdir(parents=True)
    rep = _scan(_write(pkg, mlmodel(502, ld(1, vint(1, 1)), version=6), "model.mlmodel"))
    assert rep.format == "coreml"
    assert rep.metadata["model_type"] == "mlProgram"
    assert rep.findings == ()


def test_custom_layer_is_medium(tmp_path: Path) -> None:
    nn = network(layer("conv", 100), layer("mine", 500, ld(10, "MyCustomLayer")))
    rep = _scan(_write(tmp_path, mlmodel(403, nn)))  # neuralNetworkClassifier
    assert [(f.rule, f.severity, f.evidence) for f in rep.findings] == [
        ("coreml.custom-layer", Severity.MEDIUM, "MyCustomLayer")
    ]
    assert "'mine'" in rep.findings[0].location
    assert rep.metadata["custom_classes"] == ["MyCustomLayer"]


def test_custom_model_is_medium(tmp_path: Path) -> None:
    rep = _scan(_write(tmp_path, mlmodel(555, ld(10, "EvilModel") + ld(40, "desc"))))
    assert [f.rule for f in rep.findings] == ["coreml.custom-layer"]


def test_custom_layer_inside_pipeline_and_loop(tmp_path: Path) -> None:
    inner_body = network(layer("deep", 500, ld(10, "DeepCustom")))
    loop = layer("loop", 615, vint(1, 3) + ld(4, inner_body))
    inner_model = vint(1, 4) + ld(500, network(loop))
    pipeline = ld(1, ld(1, inner_model) + ld(2, "step0"))
    rep = _scan(_write(tmp_path, mlmodel(200, pipeline)))  # pipelineClassifier
    assert [f.evidence for f in rep.findings] == ["DeepCustom"]
    assert "models[0]" in rep.findings[0].location


def test_linked_model_is_low(tmp_path: Path) -> None:
    linked = ld(1, ld(1, ld(1, "Other.mlmodelc")) + ld(2, ld(1, "../../elsewhere")))
    rep = _scan(_write(tmp_path, mlmodel(556, linked)))
    assert [(f.rule, f.severity) for f in rep.findings] == [("coreml.linked-model", Severity.LOW)]
    assert "Other.mlmodelc" in rep.findings[0].evidence


def test_malformed_inner_message(tmp_path: Path) -> None:
    rep = _scan(_write(tmp_path, mlmodel(500, ld(1, b"\x0a\xff\xff\x7f"))))
    assert rep.format == "coreml"
    assert [f.rule for f in rep.findings] == ["coreml.malformed"]


def test_sniffers_keep_formats_apart() -> None:
    coreml = mlmodel(500, BENIGN_NN)
    src = BytesSource(coreml)
    assert looks_like_coreml(coreml, src)
    assert not looks_like_onnx(coreml, src)
    assert not looks_like_savedmodel(coreml, src)
    onnx_like = vint(1, 8) + ld(2, "pytorch") + ld(7, ld(1, ld(4, "Relu"))) + ld(8, vint(2, 17))
    assert looks_like_onnx(onnx_like, BytesSource(onnx_like))
    assert not looks_like_coreml(onnx_like, BytesSource(onnx_like))


@settings(max_examples=60)
@given(st.data())
def test_mutated_model_never_escapes(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    good = mlmodel(500, network(layer("mine", 500, ld(10, "X")), layer("l", 615, ld(4, BENIGN_NN))))
    scan_written(tmp_path_factory.mktemp("cml") / "m.mlmodel", mutate(data, good))


@given(st.binary(max_size=300))
def test_random_bytes_never_escape(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("cmlr") / "m.mlmodel"
    p.write_bytes(b"\x08\x04" + data)
    rep = _scan(p)
    assert not any(f.rule == "format.analysis-failed" for f in rep.findings)
