"""TensorFlow: SavedModel, frozen GraphDef and keras_metadata.pb, built by hand as protobuf bytes."""

from __future__ import annotations

import base64
import json
import marshal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelward.models import FileReport, Severity
from modelward.scan import ScanOptions, scan_file
from modelward.scan.formats.tensorflow import classify_op, looks_like_graphdef
from modelward.scan.source import BytesSource
from tests.scan.fuzz import mutate, scan_written
from tests.scan.test_protobuf import f32, ld, vint


# ---------------------------------------------------------------------- fixtures
def node(name: str, op: str, *inputs: str, attrs: dict[str, bytes] | None = None) -> bytes:
    out = ld(1, name) + ld(2, op) + b"".join(ld(3, i) for i in inputs) + ld(4, "/device:CPU:0")
    for key, value in (attrs or {}).items():
        out += ld(5, ld(1, key) + ld(2, value))
    return out


def attr_s(text: str) -> bytes:
    return ld(2, text)


def attr_type(dtype: int = 1) -> bytes:
    return vint(6, dtype)


def function(name: str, *nodes: bytes) -> bytes:
    return ld(1, ld(1, name)) + b"".join(ld(3, n) for n in nodes)


def graph(nodes: list[bytes], functions: list[bytes] | tuple[bytes, ...] = ()) -> bytes:
    lib = b"".join(ld(1, f) for f in functions)
    return (
        b"".join(ld(1, n) for n in nodes)
        + (ld(2, lib) if lib else b"")
        + ld(4, vint(1, 1087) + vint(2, 0))
    )


def saved_model(g: bytes, tags: tuple[str, ...] = ("serve",)) -> bytes:
    info = b"".join(ld(4, t) for t in tags) + ld(5, "2.15.0") + ld(6, "v2.15.0-rc1")
    saver = ld(1, "saver_filename:0") + ld(2, "StatefulPartitionedCall_1:0") + vint(4, 1)
    meta = ld(1, info) + ld(2, g) + ld(3, saver)
    return vint(1, 1) + ld(2, meta)


BENIGN_NODES = [
    node("x", "Placeholder", attrs={"dtype": attr_type()}),
    node("dense/kernel", "VarHandleOp", attrs={"dtype": attr_type(), "shared_name": attr_s("k")}),
    node("dense/MatMul/ReadVariableOp", "ReadVariableOp", "dense/kernel"),
    node("dense/MatMul", "MatMul", "x", "dense/MatMul/ReadVariableOp"),
    node("dense/Relu", "Relu", "dense/MatMul"),
    node("Identity", "Identity", "dense/Relu"),
    node("print", "PrintV2", "dense/Relu", attrs={"output_stream": attr_s("stderr")}),
    # the saver graph every SavedModel has
    node("saver_filename", "Placeholder", attrs={"dtype": attr_type(7)}),
    node("StringJoin", "StringJoin", "saver_filename"),
    node("ShardedFilename", "ShardedFilename", "StringJoin"),
    node("SaveV2", "SaveV2", "ShardedFilename"),
    node("MergeV2Checkpoints", "MergeV2Checkpoints", "ShardedFilename"),
    node("RestoreV2", "RestoreV2", "saver_filename"),
    node("AssignVariableOp", "AssignVariableOp", "dense/kernel", "RestoreV2"),
    node("StatefulPartitionedCall", "StatefulPartitionedCall", "x"),
    node("init_table", "InitializeTableFromTextFileV2", "table", "asset_path"),
]
BENIGN_FUNCTIONS = [
    function(
        "__inference_serving_default_123",
        node("MatMul", "MatMul", "x", "w"),
        node("BiasAdd", "BiasAdd", "MatMul", "b"),
        node("Relu", "Relu", "BiasAdd"),
    )
]


def _scan(path: Path) -> FileReport:
    return scan_file(str(path), str(path), ScanOptions(hash=False))


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------------- SavedModel
def test_benign_savedmodel_is_clean(tmp_path: Path) -> None:
    data = saved_model(graph(BENIGN_NODES, BENIGN_FUNCTIONS))
    rep = _scan(_write(tmp_path, "saved_model.pb", data))
    assert rep.format == "tf-savedmodel"
    assert not rep.unsafe
    assert {f.severity for f in rep.findings} <= {Severity.INFO}
    assert rep.metadata["tags"] == ["serve"]
    assert rep.metadata["tensorflow_version"] == "2.15.0"
    assert rep.metadata["node_count"] == len(BENIGN_NODES) + 3
    assert rep.metadata["function_count"] == 1
    assert rep.metadata["ops"]["MatMul"] == 2


@pytest.mark.parametrize(
    ("op", "rule", "severity"),
    [
        ("ReadFile", "tf.host-op", Severity.HIGH),
        ("WriteFile", "tf.host-op", Severity.HIGH),
        ("MatchingFiles", "tf.host-op", Severity.HIGH),
        ("ImmutableConst", "tf.host-op", Severity.HIGH),
        ("DebugIdentityV2", "tf.host-op", Severity.HIGH),
        ("PyFunc", "tf.pyfunc", Severity.CRITICAL),
        ("EagerPyFunc", "tf.pyfunc", Severity.CRITICAL),
    ],
)
def test_host_ops_in_the_function_library(
    tmp_path: Path, op: str, rule: str, severity: Severity
) -> None:
    evil = function("__inference_call_7", node("leak", op, "path"))
    data = saved_model(graph(BENIGN_NODES, [*BENIGN_FUNCTIONS, evil]))
    rep = _scan(_write(tmp_path, "saved_model.pb", data))
    bad = [f for f in rep.findings if f.severity >= Severity.MEDIUM]
    assert [(f.rule, f.severity, f.evidence) for f in bad] == [(rule, severity, op)]
    assert "__inference_call_7" in bad[0].location and "'leak'" in bad[0].location


def test_print_to_file_is_a_host_op(tmp_path: Path) -> None:
    n = node("p", "PrintV2", "x", attrs={"output_stream": attr_s("file:///tmp/out.txt")})
    rep = _scan(_write(tmp_path, "saved_model.pb", saved_model(graph([n]))))
    assert [f.rule for f in rep.findings] == ["tf.host-op"]
    assert "file:///tmp/out.txt" in rep.findings[0].evidence


def test_decode_proto_descriptor_from_file(tmp_path: Path) -> None:
    n = node("d", "DecodeProtoV2", "x", attrs={"descriptor_source": attr_s("/etc/passwd")})
    rep = _scan(_write(tmp_path, "saved_model.pb", saved_model(graph([n]))))
    assert [f.rule for f in rep.findings] == ["tf.host-op"]


def test_inner_garbage_is_malformed(tmp_path: Path) -> None:
    bad_graph = ld(1, b"\x0a\xff\xff\xff\x0f")  # a node whose name length runs past it
    rep = _scan(_write(tmp_path, "saved_model.pb", saved_model(bad_graph)))
    assert rep.format == "tf-savedmodel"
    assert [f.rule for f in rep.findings] == ["tf.malformed"]


# ---------------------------------------------------------------------- frozen GraphDef
def test_frozen_graphdef(tmp_path: Path) -> None:
    rep = _scan(_write(tmp_path, "frozen.pb", graph(BENIGN_NODES)))
    assert rep.format == "tf-graphdef"
    assert not rep.unsafe
    evil = graph([*BENIGN_NODES, node("w", "WriteFile", "name", "contents")])
    rep = _scan(_write(tmp_path, "frozen_evil.pb", evil))
    assert rep.format == "tf-graphdef"
    assert [f.rule for f in rep.findings if f.severity >= Severity.MEDIUM] == ["tf.host-op"]


def test_other_protobufs_are_not_graphs() -> None:
    sentencepiece = ld(1, ld(1, "<unk>") + f32(2, 0.0) + vint(3, 2)) * 3
    assert not looks_like_graphdef(sentencepiece, BytesSource(sentencepiece))
    fingerprint = vint(1, 123) + vint(2, 456) + ld(6, vint(1, 1))
    assert not looks_like_graphdef(fingerprint, BytesSource(fingerprint))


def test_unrelated_pb_is_unknown(tmp_path: Path) -> None:
    fingerprint = vint(1, 1234567) + vint(2, 42) + vint(3, 7) + ld(6, vint(1, 1))
    rep = _scan(_write(tmp_path, "fingerprint.pb", fingerprint))
    assert rep.format == "unknown"
    assert rep.findings == ()


def test_classify_op() -> None:
    assert classify_op("ReadFile") is not None
    assert classify_op("SaveV2") is None
    assert classify_op("RestoreV2") is None


# ---------------------------------------------------------------------- keras_metadata.pb
def _keras_metadata(*layers: dict[str, object]) -> bytes:
    out = b""
    for i, layer in enumerate(layers):
        obj = vint(2, i) + ld(3, f"root.layer-{i}") + ld(4, "_tf_keras_layer")
        out += ld(1, obj + ld(5, json.dumps(layer)))
    return out


def test_keras_metadata_lambda(tmp_path: Path) -> None:
    code = base64.encodebytes(marshal.dumps((lambda t: t).__code__)).decode()
    benign = {"class_name": "Dense", "config": {"units": 4}}
    lam = {
        "class_name": "Lambda",
        "config": {"function": [code, None, None], "function_type": "lambda"},
    }
    rep = _scan(_write(tmp_path, "keras_metadata.pb", _keras_metadata(benign)))
    assert rep.format == "tf-savedmodel"
    assert rep.metadata["component"] == "keras_metadata"
    assert rep.findings == ()
    rep = _scan(_write(tmp_path, "keras_metadata2.pb", _keras_metadata(benign, lam)))
    assert [f.rule for f in rep.findings] == ["keras.lambda-layer"]
    assert "root.layer-1" in rep.findings[0].location


# ---------------------------------------------------------------------- fuzzing
VALID = saved_model(graph(BENIGN_NODES, BENIGN_FUNCTIONS))


@settings(max_examples=60)
@given(st.data())
def test_mutated_savedmodel_never_escapes(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    scan_written(tmp_path_factory.mktemp("tf") / "saved_model.pb", mutate(data, VALID))


@given(st.binary(max_size=400))
def test_random_bytes_never_escape(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("tfr") / "x.pb"
    p.write_bytes(data)
    rep = _scan(p)
    assert not any(f.rule == "format.analysis-failed" for f in rep.findings)
