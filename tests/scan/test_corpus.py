"""End to end across formats: a benign download folder written by the real libraries has no
finding at medium or above, and every malicious sample (one per technique) is flagged with its rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelward.cli import main
from modelward.models import FileReport, ScanReport, Severity
from modelward.scan import ScanOptions, scan
from modelward.scan.context import Limits, ScanContext
from modelward.scan.engine import dispatch
from modelward.scan.formats.pytorch import check_torchscript_code
from modelward.scan.pickle.globals import Verdict, classify
from tests.scan import corpus_builders as cb

OPTS = ScanOptions(hash=False)


class Corpus:
    """Where the corpus was written and what it holds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.benign = root / "benign"
        self.malicious = root / "malicious"
        self.has_keras = cb.build_benign(self.benign)
        cb.build_malicious(self.malicious)
        self.benign_report: ScanReport = scan([self.benign], OPTS)
        self.malicious_report: ScanReport = scan([self.malicious], OPTS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("corpus"))


def _by_rel(report: ScanReport, root: Path) -> dict[str, FileReport]:
    return {Path(f.path).resolve().relative_to(root.resolve()).as_posix(): f for f in report.files}


def _serious(f: FileReport) -> list[str]:
    return [
        f"{f.path} [{f.format}]: {x.rule} {x.severity.name} {x.evidence!r} at {x.location!r}"
        for x in f.findings
        if x.severity >= Severity.MEDIUM
    ]


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, _ = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 0), json.loads(out)


# ====================================================================== benign
BENIGN_FORMATS = {
    "torch/model.pt": "pytorch-zip",
    "torch/checkpoint.ckpt": "pytorch-zip",
    "torch/model_legacy.pth": "pytorch-legacy",
    "torch/model_legacy_p4.pth": "pytorch-legacy",
    "torch/scripted.pt": "torchscript",
    "torch/traced.pt": "torchscript",
    "hf/model.safetensors": "safetensors",
    "hf/pytorch_model.bin": "pytorch-zip",
    "hf/config.json": "unknown",
    "hf/tokenizer_config.json": "hf-config",
    "numpy/floats.npy": "numpy",
    "numpy/obj_ints.npy": "numpy",
    "numpy/obj_strs.npy": "numpy",
    "numpy/arrays.npz": "numpy-npz",
    "numpy/compressed.npz": "numpy-npz",
    **{f"joblib/{m}.joblib": "joblib" for m in ("logreg", "forest", "pipeline", "tfidf")},
    **{f"joblib/pipeline_{c}.joblib": "joblib" for c in cb.JOBLIB_COMPRESSIONS[1:]},
    "joblib/arrays.joblib": "joblib",
    "joblib/scaler.pkl": "pickle",
    "gguf/tiny.gguf": "gguf",
    "gguf/chatml.gguf": "gguf",
    "onnx/model.onnx": "onnx",
    "onnx/model_ext.onnx": "onnx",
    "archives/torch_models.tar": "tar",
    "archives/hf_model.tar.gz": "tar",
    "archives/joblib_models.zip": "zip",
    "archives/bundle.7z": "7z",
    "archives/scaler.pkl.gz": "joblib",
}
KERAS_FORMATS = {
    "keras/classifier.keras": "keras-v3",
    "keras/functional.keras": "keras-v3",
    "keras/classifier.h5": "keras-h5",
}


def test_benign_folder_has_no_medium_or_higher_finding(corpus: Corpus) -> None:
    bad = [line for f in corpus.benign_report.files for line in _serious(f)]
    errors = [f"{f.path}: {f.errors}" for f in corpus.benign_report.files if f.errors]
    assert not bad, "false positives:\n" + "\n".join(bad)
    assert not errors, "\n".join(errors)
    assert corpus.benign_report.files and not any(f.unsafe for f in corpus.benign_report.files)


def test_benign_files_are_identified_by_content(corpus: Corpus) -> None:
    files = _by_rel(corpus.benign_report, corpus.benign)
    expected = dict(BENIGN_FORMATS)
    if corpus.has_keras:
        expected |= KERAS_FORMATS
    got = {name: files[name].format if name in files else "<missing>" for name in expected}
    assert got == expected


def test_benign_metadata_proves_the_content_was_read(corpus: Corpus) -> None:
    files = _by_rel(corpus.benign_report, corpus.benign)
    traced = files["torch/traced.pt"].metadata["globals"]
    assert "torch.jit._pickle.restore_type_tag" in traced  # the .debug_pkl type helpers
    assert files["gguf/tiny.gguf"].metadata["architecture"] == "llama"
    assert files["gguf/tiny.gguf"].metadata["chat_template"] is True
    assert files["numpy/obj_strs.npy"].metadata["object_array"] is True
    assert files["torch/model_legacy.pth"].metadata["pickles"] == 5
    bundle = {m["name"]: m["format"] for m in files["archives/bundle.7z"].metadata["member_list"]}
    assert bundle["model.pt"] == "pytorch-zip"
    assert bundle["tiny.gguf"] == "gguf"


def test_benign_folder_through_the_cli(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = _run_cli(["scan", str(corpus.benign), "--format", "json", "--no-hash"], capsys)
    assert doc["schema"] == "modelward.scan/v1"
    serious = [
        (f["path"], x["rule"], x["evidence"])
        for f in doc["files"]
        for x in f["findings"]
        if x["severity"] in ("critical", "high", "medium")
    ]
    assert serious == []
    assert code == 0
    assert doc["summary"]["unsafe_files"] == 0
    assert doc["summary"]["files"] == len(corpus.benign_report.files)
    code, _ = _run_cli(
        ["scan", str(corpus.benign), "--format", "json", "--no-hash", "--fail-on", "medium"], capsys
    )
    assert code == 0


# ====================================================================== malicious
@pytest.mark.parametrize("sample", cb.MALICIOUS, ids=[s.name for s in cb.MALICIOUS])
def test_malicious_sample_is_detected(corpus: Corpus, sample: cb.Sample) -> None:
    files = _by_rel(corpus.malicious_report, corpus.malicious)
    key = sample.name if sample.name in files else f"{sample.name}/saved_model.pb"
    assert key in files, sorted(files)
    rep = files[key]
    hits = [f for f in rep.findings if f.rule == sample.rule and f.severity >= sample.severity]
    assert hits, (
        f"{sample.technique}: expected {sample.rule} >= {sample.severity.name}, got "
        + repr([(f.rule, f.severity.name, f.evidence) for f in rep.findings])
    )
    assert rep.unsafe


def test_malicious_folder_flags_every_file(corpus: Corpus) -> None:
    report = corpus.malicious_report
    assert len(report.files) == len(cb.MALICIOUS)
    clean = [f.path for f in report.files if not f.unsafe]
    assert clean == []
    assert not [f.path for f in report.files if f.errors]


def test_malicious_folder_through_the_cli(
    corpus: Corpus, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _run_cli(["scan", str(corpus.malicious), "--format", "json"], capsys)
    assert code == 1
    assert doc["summary"]["files"] == len(cb.MALICIOUS)
    assert doc["summary"]["unsafe_files"] == len(cb.MALICIOUS)
    assert doc["summary"]["max_severity"] == "critical"
    assert all(len(f["sha256"]) == 64 for f in doc["files"])


# ====================================================================== the fixes this corpus needed
@pytest.mark.parametrize(
    ("module", "name", "verdict"),
    [
        ("torch.jit._pickle", "build_intlist", Verdict.SAFE),
        ("torch.jit._pickle", "build_tensorlist", Verdict.SAFE),
        ("torch.jit._pickle", "build_tensor_from_id", Verdict.SAFE),
        ("torch.jit._pickle", "restore_type_tag", Verdict.SAFE),
        ("torch", "FloatTensor", Verdict.SAFE),
        ("torch", "BoolTensor", Verdict.SAFE),
        ("torch.cuda", "HalfTensor", Verdict.SAFE),
        # The module-wide denial still holds for everything else in torch.jit ...
        ("torch.jit", "load", Verdict.DANGEROUS),
        ("torch.jit._pickle", "anything_else", Verdict.DANGEROUS),
        ("torch.jit._serialization", "load", Verdict.DANGEROUS),
        # ... and attribute walks from an allow-listed helper are not exact pairs.
        ("torch.jit._pickle", "build_intlist.__globals__", Verdict.DANGEROUS),
        ("torch", "jit._pickle.build_intlist", Verdict.DANGEROUS),
    ],
)
def test_allowlist_fixes(module: str, name: str, verdict: Verdict) -> None:
    assert classify(module, name)[0] == verdict


def _ts_calls(code: str) -> set[str]:
    ctx = ScanContext("mem", Limits(), dispatch)
    check_torchscript_code(ctx, "code/x.py", code)
    return {f.evidence for f in ctx.findings}


def test_torchscript_string_literals_are_data() -> None:
    benign = (
        "def f(x: Tensor) -> Tensor:\n"
        '  ops.prim.RaiseException("expected 4D input", "builtins.ValueError")\n'
        "  _0 = 'os.system(\\'x\\') open(' # builtins __import__\n"
        '  _1 = """__import__\nbuiltins"""\n'
        "  return x\n"
    )
    assert _ts_calls(benign) == set()
    evil = benign + "def g(x: Tensor) -> Tensor:\n  _2 = __import__('os').system('true')\n"
    assert _ts_calls(evil) == {"__import__", "system("}
