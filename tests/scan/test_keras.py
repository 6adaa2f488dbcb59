"""Keras: config analysis (Lambda bytecode, foreign modules, file gadgets) and the HDF5 detector."""

from __future__ import annotations

import base64
import json
import marshal
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelward.models import FileReport, Severity
from modelward.scan import ScanOptions, keras_config, scan_file
from modelward.scan.context import Limits, NestedResult, ScanContext
from modelward.scan.formats import keras as kmod
from modelward.scan.formats.keras import analyze_keras_config
from tests.scan.fuzz import mutate, scan_written


def _ctx() -> ScanContext:
    def dispatch(ctx: ScanContext, src: Any, name: str) -> NestedResult:
        return NestedResult("unknown", {})

    return ScanContext("/nonexistent/model.keras", Limits(), dispatch)


def _scan(path: Path) -> FileReport:
    return scan_file(str(path), str(path), ScanOptions(hash=False))


def _rules(findings: Any, at_least: Severity = Severity.MEDIUM) -> set[str]:
    return {f.rule for f in findings if f.severity >= at_least}


def _code_b64() -> str:
    """Base64 of a marshalled harmless code object, as keras ``func_dump`` writes it (never run)."""
    fn = lambda t: print("harmless", t)  # noqa: E731
    return base64.encodebytes(marshal.dumps(fn.__code__)).decode("ascii")


def _dense(**extra: Any) -> dict[str, Any]:
    cfg = {"name": "dense", "units": 4, "activation": "relu", "use_bias": True}
    cfg.update(extra)
    return {"module": "keras.layers", "class_name": "Dense", "config": cfg, "registered_name": None}


def _functional(*layers: dict[str, Any]) -> dict[str, Any]:
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {"name": "functional", "trainable": True, "layers": list(layers)},
        "registered_name": "Functional",
    }


def _analyze(config: Any) -> tuple[ScanContext, dict[str, Any]]:
    ctx = _ctx()
    meta = analyze_keras_config(json.dumps(config).encode(), ctx, "config.json")
    return ctx, meta


# ---------------------------------------------------------------------- config: benign
def test_benign_keras3_config_is_clean_with_metadata() -> None:
    conv = {
        "module": "keras.layers",
        "class_name": "Conv2D",
        "config": {
            "filters": 8,
            "kernel_size": [3, 3],
            "kernel_initializer": {
                "module": "keras.initializers",
                "class_name": "GlorotUniform",
                "config": {"seed": None},
                "registered_name": None,
            },
            "dtype": {
                "module": "keras",
                "class_name": "DTypePolicy",
                "config": {"name": "float32"},
            },
        },
        "registered_name": None,
    }
    builtins_fn = {"module": "builtins", "class_name": "function", "config": "relu"}
    ctx, meta = _analyze(_functional(conv, _dense(activation=builtins_fn)))
    assert _rules(ctx.findings, Severity.LOW) == set()
    assert meta["model_class"] == "Functional"
    assert meta["layer_count"] == 2
    assert meta["class_names"]["Conv2D"] == 1


def test_benign_keras2_config_is_clean() -> None:
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8]}},
                {"class_name": "Dense", "config": {"units": 4, "activation": "relu"}},
                {"class_name": "Dropout", "config": {"rate": 0.2}},
            ],
        },
    }
    ctx, meta = _analyze(config)
    assert ctx.findings == []
    assert meta["layer_count"] == 3


# ---------------------------------------------------------------------- config: malicious
def test_keras3_lambda_is_critical() -> None:
    lam = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "lambda",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": _code_b64(), "defaults": None, "closure": None},
            },
        },
        "registered_name": None,
    }
    ctx, _ = _analyze(_functional(_dense(), lam))
    found = [f for f in ctx.findings if f.rule == "keras.lambda-layer"]
    assert len(found) == 1
    assert found[0].severity == Severity.CRITICAL
    assert "print" in found[0].evidence
    assert "layers[1]" in found[0].location


def test_keras2_lambda_function_list_is_critical() -> None:
    lam = {
        "class_name": "Lambda",
        "config": {
            "name": "lambda",
            "function": [_code_b64(), None, None],
            "function_type": "lambda",
            "module": "__main__",
        },
    }
    ctx, _ = _analyze({"class_name": "Sequential", "config": {"layers": [lam]}})
    assert _rules(ctx.findings) == {"keras.lambda-layer"}


def test_bytecode_anywhere_is_found() -> None:
    odd = _dense(activation={"class_name": "__lambda__", "config": {"value": [_code_b64()]}})
    ctx, _ = _analyze(_functional(odd))
    assert "keras.lambda-layer" in _rules(ctx.findings)
    ctx, _ = _analyze(_functional(_dense(extra_blob=_code_b64())))
    assert "keras.lambda-layer" in _rules(ctx.findings)


@pytest.mark.parametrize(
    "obj",
    [
        {"module": "os", "class_name": "function", "config": "system", "registered_name": None},
        {"module": "subprocess", "class_name": "Popen", "config": {"args": ["true"]}},
        {"module": "builtins", "class_name": "function", "config": "exec"},
        {"module": "posix", "class_name": "system", "config": {}},
    ],
)
def test_dangerous_module_in_config_is_critical(obj: dict[str, Any]) -> None:  # CVE-2025-1550
    ctx, _ = _analyze(_functional(_dense(activation=obj)))
    crit = [f for f in ctx.findings if f.severity == Severity.CRITICAL]
    assert [f.rule for f in crit] == ["keras.dangerous-callable"]


def test_keras2_lambda_named_function_in_dangerous_module() -> None:
    lam = {"class_name": "Lambda", "config": {"function": "system", "function_type": "function"}}
    lam["config"]["module"] = "os"
    ctx, _ = _analyze({"class_name": "Sequential", "config": {"layers": [lam]}})
    assert _rules(ctx.findings) == {"keras.dangerous-callable"}


def test_unknown_third_party_module_is_medium() -> None:
    obj = {
        "module": "my_pkg.layers",
        "class_name": "MyLayer",
        "config": {"units": 3},
        "registered_name": "my_pkg>MyLayer",
    }
    ctx, _ = _analyze(_functional(obj))
    assert [(f.rule, f.severity) for f in ctx.findings] == [
        ("keras.custom-object", Severity.MEDIUM)
    ]


def test_unknown_module_with_dangerous_name_is_high() -> None:
    obj = {"module": "somepkg.util", "class_name": "function", "config": "system"}
    ctx, _ = _analyze(_functional(_dense(activation=obj)))
    assert [(f.rule, f.severity) for f in ctx.findings] == [
        ("keras.dangerous-callable", Severity.HIGH)
    ]


def test_registered_custom_object_without_module_is_medium() -> None:
    ctx, _ = _analyze(
        {"class_name": "Sequential", "config": {"layers": [{"class_name": "Custom>Foo"}]}}
    )
    assert _rules(ctx.findings) == {"keras.custom-object"}


def test_get_file_gadget_is_file_access() -> None:  # CVE-2025-8747
    gadget = {
        "module": "keras.utils",
        "class_name": "function",
        "config": "get_file",
        "registered_name": None,
    }
    ctx, _ = _analyze(_functional(_dense(activation=gadget)))
    assert "keras.file-access" in _rules(ctx.findings, Severity.HIGH)
    call = {
        "module": "keras.utils",
        "class_name": "get_file",
        "config": {"fname": "x", "origin": "http://example.invalid/x"},
    }
    ctx, _ = _analyze(_functional(call))
    assert "keras.file-access" in _rules(ctx.findings, Severity.HIGH)


def test_tfsmlayer_filepath_is_file_access() -> None:  # CVE-2026-1462
    layer = {
        "module": "keras.layers",
        "class_name": "TFSMLayer",
        "config": {"filepath": "/tmp/attacker_savedmodel", "call_endpoint": "serve"},
        "registered_name": None,
    }
    ctx, _ = _analyze(_functional(layer))
    found = [f for f in ctx.findings if f.rule == "keras.file-access"]
    assert found and all(f.severity == Severity.HIGH for f in found)


def test_vocabulary_path_is_file_access() -> None:
    layer = {
        "module": "keras.layers",
        "class_name": "StringLookup",
        "config": {"vocabulary": "/etc/passwd"},
    }
    ctx, _ = _analyze(_functional(layer))
    assert _rules(ctx.findings) == {"keras.file-access"}
    layer["config"]["vocabulary"] = ["a", "b"]
    ctx, _ = _analyze(_functional(layer))
    assert ctx.findings == []


def test_enable_unsafe_deserialization_is_critical() -> None:
    obj = {
        "module": "keras.config",
        "class_name": "function",
        "config": "enable_unsafe_deserialization",
    }
    ctx, _ = _analyze(_functional(_dense(activation=obj)))
    assert [(f.rule, f.severity) for f in ctx.findings] == [("keras.unsafe-api", Severity.CRITICAL)]


# ---------------------------------------------------------------------- config: hostile input
@pytest.mark.parametrize(
    "data",
    [b"{not json", b"[1, 2]", b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000, b'"str"'],
)
def test_malformed_config_is_a_finding(data: bytes) -> None:
    ctx = _ctx()
    assert analyze_keras_config(data, ctx, "config.json") == {}
    assert _rules(ctx.findings) == {"keras.malformed"}


def test_oversized_config_is_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keras_config, "MAX_CONFIG_BYTES", 100)
    ctx = _ctx()
    analyze_keras_config(b"{" + b" " * 200 + b"}", ctx, "config.json")
    assert _rules(ctx.findings) == {"format.scan-limit"}


def test_deep_but_parseable_config_walks_iteratively() -> None:
    deep: Any = {"class_name": "Dense", "config": {}}
    for _ in range(300):
        deep = {"class_name": "Wrapper", "config": {"layer": deep}}
    _, meta = _analyze(deep)
    assert meta["class_names"]["Wrapper"] == 300


@given(st.binary(max_size=300))
def test_random_config_bytes_never_escape(data: bytes) -> None:
    analyze_keras_config(data, _ctx(), "config.json")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["class_name", "module", "config", "function", "layers", "filepath", "x"]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@given(_JSON)
def test_random_config_shapes_never_escape(value: Any) -> None:
    analyze_keras_config(json.dumps(value).encode(), _ctx(), "config.json")


# ---------------------------------------------------------------------- HDF5 files written with h5py
def _write_h5(path: Path, model_config: Any, **attrs: Any) -> Path:
    with h5py.File(path, "w", **attrs.pop("file_kwargs", {})) as f:
        if model_config is not None:
            f.attrs["model_config"] = json.dumps(model_config)
        f.attrs["keras_version"] = attrs.get("keras_version", "2.15.0")
        f.attrs["backend"] = "tensorflow"
        g = f.create_group("model_weights/dense")
        g.create_dataset("kernel:0", data=np.zeros((8, 4), dtype=np.float32))
    return path


def test_h5_benign_keras2_layout(tmp_path: Path) -> None:
    config = {
        "class_name": "Sequential",
        "config": {"layers": [{"class_name": "Dense", "config": {"units": 4}}]},
    }
    rep = _scan(_write_h5(tmp_path / "m.h5", config))
    assert rep.format == "keras-h5"
    assert rep.metadata["keras_version"] == "2.15.0"
    assert rep.metadata["layer_count"] == 1
    assert not rep.unsafe


def test_h5_keras2_lambda(tmp_path: Path) -> None:
    lam = {
        "class_name": "Lambda",
        "config": {"function": [_code_b64(), None, None], "function_type": "lambda"},
    }
    config = {"class_name": "Sequential", "config": {"layers": [lam]}}
    rep = _scan(_write_h5(tmp_path / "m.h5", config))
    assert rep.format == "keras-h5"
    assert [f.rule for f in rep.findings] == ["keras.lambda-layer"]
    assert "model_config attribute" in rep.findings[0].location


def test_h5_keras3_lambda_with_user_block(tmp_path: Path) -> None:
    lam = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {"function": {"class_name": "__lambda__", "config": {"code": _code_b64()}}},
    }
    path = _write_h5(tmp_path / "m.h5", _functional(lam), file_kwargs={"userblock_size": 1024})
    rep = _scan(path)
    assert rep.format == "keras-h5"
    assert _rules(rep.findings) == {"keras.lambda-layer"}


def test_h5_without_model_config_is_plain_hdf5(tmp_path: Path) -> None:
    rep = _scan(_write_h5(tmp_path / "w.h5", None))
    assert rep.format == "hdf5"
    assert rep.findings == ()


def test_h5_training_config_is_analysed(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(_functional(_dense()))
        loss = {"module": "os", "class_name": "function", "config": "system"}
        f.attrs["training_config"] = json.dumps({"loss": loss})
    rep = _scan(path)
    assert _rules(rep.findings) == {"keras.dangerous-callable"}
    assert "training_config" in rep.findings[0].location


def test_h5_oversized_attribute_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kmod, "MAX_ATTR_BYTES", 10)
    rep = _scan(_write_h5(tmp_path / "m.h5", _functional(_dense())))
    assert _rules(rep.findings) == {"format.scan-limit"}


def test_malformed_h5_is_a_finding(tmp_path: Path) -> None:
    p = tmp_path / "bad.h5"
    p.write_bytes(kmod.HDF5_MAGIC + os.urandom(300))
    rep = _scan(p)
    assert rep.format == "hdf5"
    assert _rules(rep.findings) == {"hdf5.malformed"}


def test_h5_inside_a_container_reads_through_the_source(tmp_path: Path) -> None:
    from modelward.scan.source import BytesSource

    data = _write_h5(
        tmp_path / "m.h5",
        _functional(
            _dense(activation={"module": "os", "class_name": "function", "config": "system"})
        ),
    ).read_bytes()
    ctx = _ctx().child("model.h5")
    kmod.KerasH5Detector().scan(BytesSource(data), ctx)
    assert ctx.format == "keras-h5"
    assert _rules(ctx.findings) == {"keras.dangerous-callable"}


@settings(max_examples=25)
@given(st.data())
def test_mutated_h5_never_escapes(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    base = tmp_path_factory.mktemp("h5")
    good = _write_h5(base / "m.h5", _functional(_dense())).read_bytes()
    rep = scan_written(base / "mut.h5", mutate(data, good, flips=8, min_len=64))
    assert rep.format in ("hdf5", "keras-h5")


# ---------------------------------------------------------------------- real files written by keras
@pytest.fixture(scope="module")
def keras_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras = pytest.importorskip("keras")
        out = tmp_path_factory.mktemp("keras")
        seq = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Conv2D(8, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dropout(0.2),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        seq.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        seq.save(out / "seq.keras")
        seq.save(out / "seq.h5")
        inp = keras.Input((8,))
        x = keras.layers.Dense(4, activation="relu")(inp)
        x = keras.layers.Lambda(lambda t: t * 2)(x)
        lam = keras.Model(inp, x)
        lam.save(out / "lam.keras")
        lam.save(out / "lam.h5")
    return out


def test_real_keras_h5_benign_and_lambda(keras_files: Path) -> None:
    rep = _scan(keras_files / "seq.h5")
    assert rep.format == "keras-h5"
    assert not rep.unsafe
    assert rep.metadata["model_class"] == "Sequential"
    rep = _scan(keras_files / "lam.h5")
    assert _rules(rep.findings) == {"keras.lambda-layer"}


def test_real_keras_v3_config_json(keras_files: Path) -> None:
    for name, expected in (("seq.keras", set()), ("lam.keras", {"keras.lambda-layer"})):
        with zipfile.ZipFile(keras_files / name) as z:
            config = z.read("config.json")
        ctx = _ctx()
        meta = analyze_keras_config(config, ctx, "config.json")
        assert _rules(ctx.findings) == expected
        assert meta["layer_count"] >= 2


@pytest.mark.parametrize(
    ("function", "rule"),
    [("io.write_file", "keras.file-access"), ("py_function", "keras.dangerous-callable")],
)
def test_tf_op_lambda_gadgets(function: str, rule: str) -> None:
    layer = {"class_name": "TFOpLambda", "config": {"name": "tf.x", "function": function}}
    ctx, _ = _analyze({"class_name": "Functional", "config": {"layers": [layer]}})
    assert _rules(ctx.findings) == {rule}
    layer["config"]["function"] = "math.add"
    ctx, _ = _analyze({"class_name": "Functional", "config": {"layers": [layer]}})
    assert ctx.findings == []


def test_tensorflow_typespec_is_data() -> None:
    spec = {
        "class_name": "__typespec__",
        "spec_name": "TensorSpec",
        "module": "tensorflow.python.framework.tensor_spec",
        "config": [[None, 8], "float32", None],
        "registered_name": None,
    }
    ctx, _ = _analyze(_functional(_dense(input_spec=spec)))
    assert ctx.findings == []
