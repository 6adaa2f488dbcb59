"""Pickle static analysis: malicious techniques detected, benign pickles clean. Nothing is loaded."""

from __future__ import annotations

import collections
import datetime
import decimal
import os
import pickle
import tracemalloc
from pathlib import Path

import pytest

from modelward.models import Severity
from modelward.scan import Limits, ScanOptions, scan_file
from modelward.scan.context import ScanContext
from modelward.scan.engine import dispatch
from modelward.scan.pickle import analyze_pickles, looks_like_pickle
from modelward.scan.pickle.globals import Verdict, classify
from tests.scan import pickle_samples as ps


def analyse(data: bytes, **kw: object) -> tuple[list[object], ScanContext]:
    ctx = ScanContext("mem", Limits(), dispatch)
    streams = analyze_pickles(data, ctx, **kw)  # type: ignore[arg-type]
    return streams, ctx  # type: ignore[return-value]


def rules(ctx: ScanContext) -> dict[str, tuple[Severity, str]]:
    return {f.rule + ":" + f.evidence: (f.severity, f.location) for f in ctx.findings}


def has(ctx: ScanContext, rule: str, evidence: str | None = None, severity: Severity | None = None):
    for f in ctx.findings:
        ok_evidence = evidence is None or f.evidence == evidence
        if f.rule == rule and ok_evidence and (severity is None or f.severity == severity):
            return f
    raise AssertionError(f"{rule} {evidence} not in {[(f.rule, f.evidence) for f in ctx.findings]}")


def scan_bytes(tmp_path: Path, data: bytes, name: str = "model.pkl", **opts: object):
    p = tmp_path / name
    p.write_bytes(data)
    return scan_file(str(p), name, ScanOptions(hash=False, **opts))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- techniques


@pytest.mark.parametrize("proto", [0, 2, 3, 4, 5])
def test_global_reduce_every_protocol(proto: int) -> None:
    _, ctx = analyse(ps.global_reduce("os", "system", proto=proto))
    f = has(ctx, "pickle.dangerous-global", "os.system", Severity.CRITICAL)
    assert f.location == "opcode at byte " + ("0" if proto < 2 else "2")


def test_location_prefix() -> None:
    _, ctx = analyse(ps.global_reduce("posix", "system"), location="archive/data.pkl")
    assert has(ctx, "pickle.dangerous-global", "posix.system").location == (
        "archive/data.pkl, opcode at byte 0"
    )


@pytest.mark.parametrize(
    ("data", "evidence"),
    [
        (ps.stack_global("os", "system"), "os.system"),
        (ps.stack_global("os", "system", memoize=False), "os.system"),
        (ps.memo_confusion(), "os.system"),
        (ps.inst(), "os.system"),
        (ps.obj(), "os.system"),
        (ps.newobj(), "os.system"),
        (ps.newobj_ex(), "os.system"),
        (ps.global_reduce("__builtin__", "eval", "1"), "__builtin__.eval"),
        (ps.global_reduce("nt", "system"), "nt.system"),
        (ps.dotted("pathlib", "os.system"), "pathlib.os.system"),
        (ps.dotted("torch", "serialization.os.system"), "torch.serialization.os.system"),
        (ps.dotted("logging", "os.system"), "logging.os.system"),
        (ps.global_reduce("pathlib", "os"), "pathlib.os"),
        (ps.dotted("numpy", "__builtins__.eval"), "numpy.__builtins__.eval"),
        (ps.getattr_chain(), "builtins.getattr"),
    ],
)
def test_call_paths(data: bytes, evidence: str) -> None:
    _, ctx = analyse(data)
    has(ctx, "pickle.dangerous-global", evidence, Severity.CRITICAL)


def test_computed_stack_global_is_unresolved() -> None:
    _, ctx = analyse(ps.computed_name())
    f = has(ctx, "pickle.unresolved-global", severity=Severity.HIGH)
    assert "_codecs.encode" in f.evidence


def test_extension_code() -> None:
    _, ctx = analyse(ps.ext_code(7))
    has(ctx, "pickle.extension-code", "extension code 7", Severity.HIGH)


def test_build_on_global_then_read_back() -> None:
    _, ctx = analyse(ps.build_on_global())
    has(ctx, "pickle.global-mutation", "collections.OrderedDict", Severity.HIGH)
    has(ctx, "pickle.unresolved-global", severity=Severity.HIGH)


def test_indirect_call_of_computed_value() -> None:
    _, ctx = analyse(ps.getattr_chain())
    has(ctx, "pickle.indirect-call", severity=Severity.HIGH)


def test_reconstructor_with_computed_class() -> None:
    _, ctx = analyse(ps.reconstructor_computed())
    has(ctx, "pickle.indirect-call", "copyreg._reconstructor with a computed class")


def test_nullifai_broken_after_payload() -> None:
    _, ctx = analyse(ps.nullifai())
    has(ctx, "pickle.dangerous-global", "os.system", Severity.CRITICAL)
    has(ctx, "pickle.malformed", severity=Severity.HIGH)


def test_payload_after_stop_and_several_pickles() -> None:
    streams, ctx = analyse(ps.after_stop())
    assert len(streams) == 2
    has(ctx, "pickle.dangerous-global", "os.system")
    streams, ctx = analyse(ps.after_stop(), multiple=False)
    assert len(streams) == 1


def test_trailing_garbage_is_low() -> None:
    _, ctx = analyse(pickle.dumps([1, 2]) + b"\x01\x02\x03 not a pickle")
    assert [f.severity for f in ctx.findings] == [Severity.LOW]
    has(ctx, "pickle.trailing-data")


def test_nested_pickle_loads_is_scanned(tmp_path: Path) -> None:
    inner = ps.global_reduce("subprocess", "Popen", proto=2)
    rep = scan_bytes(tmp_path, ps.nested_loads(inner))
    ev = {(f.rule, f.evidence) for f in rep.findings}
    assert ("pickle.dangerous-global", "pickle.loads") in ev
    assert ("pickle.dangerous-global", "subprocess.Popen") in ev


def test_load_from_bytes_literal_is_scanned_not_flagged(tmp_path: Path) -> None:
    rep = scan_bytes(tmp_path, ps.load_from_bytes(pickle.dumps({"a": 1}, protocol=2)))
    assert not [f for f in rep.findings if f.severity >= Severity.MEDIUM]
    rep = scan_bytes(tmp_path, ps.load_from_bytes(ps.global_reduce("os", "system", proto=2)))
    assert any(f.evidence == "os.system" for f in rep.findings)


def test_one_finding_per_global() -> None:
    data = b"\x80\x02(" + b"cos\nsystem\n" * 5 + b"l."
    _, ctx = analyse(data)
    assert len([f for f in ctx.findings if f.evidence == "os.system"]) == 1


def test_unknown_global_is_medium_and_metadata() -> None:
    _, ctx = analyse(ps.global_reduce("mypkg.models", "Net"))
    has(ctx, "pickle.unknown-global", "mypkg.models.Net", Severity.MEDIUM)
    assert ctx.metadata["globals"] == ["mypkg.models.Net"]


# Every family from the research notes (scanners.md section 2): one sample each.
DENYLIST = [
    ("os", "system"),
    ("posix", "system"),
    ("nt", "system"),
    ("subprocess", "Popen"),
    ("subprocess", "check_output"),
    ("sys", "modules"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "compile"),
    ("builtins", "open"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "breakpoint"),
    ("builtins", "input"),
    ("runpy", "run_path"),
    ("pty", "spawn"),
    ("socket", "create_connection"),
    ("shutil", "rmtree"),
    ("importlib", "import_module"),
    ("importlib.util", "spec_from_file_location"),
    ("pkgutil", "resolve_name"),
    ("marshal", "loads"),
    ("types", "FunctionType"),
    ("types", "CodeType"),
    ("pickle", "loads"),
    ("_pickle", "loads"),
    ("cPickle", "loads"),
    ("operator", "attrgetter"),
    ("operator", "itemgetter"),
    ("operator", "methodcaller"),
    ("_operator", "attrgetter"),
    ("_operator", "methodcaller"),
    ("functools", "partial"),
    ("code", "InteractiveInterpreter"),
    ("codeop", "compile_command"),
    ("ctypes", "CDLL"),
    ("cProfile", "run"),
    ("profile", "run"),
    ("trace", "Trace"),
    ("pdb", "run"),
    ("bdb", "Bdb"),
    ("timeit", "timeit"),
    ("doctest", "debug_script"),
    ("pip", "main"),
    ("pip._internal", "main"),
    ("asyncio.unix_events", "_UnixSubprocessTransport"),
    ("asyncio.subprocess", "create_subprocess_shell"),
    ("asyncio.base_subprocess", "BaseSubprocessTransport"),
    ("uuid", "_get_command_stdout"),
    ("imaplib", "IMAP4_stream"),
    ("_pyrepl.pager", "pipe_pager"),
    ("_osx_support", "_read_output"),
    ("_aix_support", "_read_cmd_output"),
    ("logging", "FileHandler"),
    ("mailcap", "findmatch"),
    ("torch.utils.collect_env", "run"),
    ("multiprocessing.util", "spawnv_passfds"),
    ("distutils.file_util", "write_file"),
    ("_io", "FileIO"),
    ("io", "open"),
    ("numpy.f2py.crackfortran", "myeval"),
    ("numpy.testing._private.utils", "runstring"),
    ("idlelib.pyshell", "ModifiedInterpreter"),
    ("lib2to3.pgen2.pgen", "ParserGenerator"),
    ("_interpreters", "run_string"),
    ("webbrowser", "open"),
    ("requests.api", "get"),
    ("urllib.request", "urlretrieve"),
    ("http.client", "HTTPConnection"),
    ("pandas", "read_csv"),
    ("pandas.io.parsers", "read_csv"),
    ("mlflow.projects.backend.local", "_run_entry_point"),
    ("torch", "load"),
    ("numpy", "load"),
    ("joblib", "load"),
    ("torch.fx.graph_module", "reduce_graph_module"),
    ("dill._dill", "_create_code"),
    ("copyreg", "add_extension"),
    ("__builtin__", "eval"),
    ("copy_reg", "add_extension"),
]


@pytest.mark.parametrize(("module", "name"), DENYLIST)
def test_denylist(module: str, name: str) -> None:
    _, ctx = analyse(ps.global_reduce(module, name))
    has(ctx, "pickle.dangerous-global", f"{module}.{name}", Severity.CRITICAL)
    _, ctx = analyse(ps.stack_global(module, name))
    has(ctx, "pickle.dangerous-global", f"{module}.{name}", Severity.CRITICAL)


@pytest.mark.parametrize(
    ("module", "name", "verdict"),
    [
        ("torch._utils", "_rebuild_tensor_v2", Verdict.SAFE),
        ("torch", "FloatStorage", Verdict.SAFE),
        ("torch", "Size", Verdict.SAFE),
        ("collections", "OrderedDict", Verdict.SAFE),
        ("numpy.core.multiarray", "_reconstruct", Verdict.SAFE),
        ("numpy._core.multiarray", "scalar", Verdict.SAFE),
        ("numpy.dtypes", "Float64DType", Verdict.SAFE),
        ("_codecs", "encode", Verdict.SAFE),
        ("__builtin__", "set", Verdict.SAFE),
        ("copy_reg", "_reconstructor", Verdict.SAFE),
        ("sklearn.linear_model._logistic", "LogisticRegression", Verdict.LIBRARY),
        ("sklearn.utils._testing", "TempMemmap", Verdict.UNKNOWN),
        ("torch", "_utils._rebuild_tensor_v2", Verdict.UNKNOWN),
        ("collections", "OrderedDict.fromkeys", Verdict.UNKNOWN),
        ("mypkg", "Thing", Verdict.UNKNOWN),
        ("torch._utils", "os.system", Verdict.DANGEROUS),
    ],
)
def test_classification(module: str, name: str, verdict: Verdict) -> None:
    assert classify(module, name)[0] == verdict


# ---------------------------------------------------------------------- benign


class _Plain:
    pass


def _realistic() -> list[object]:
    return [
        {"a": [1.5] * 3000, "b": list(range(2000)), "c": ("x", None, True, False)},
        collections.OrderedDict((f"layer.{i}.weight", [0.1] * 100) for i in range(20)),
        {f"tok{i}": i for i in range(5000)},
        {
            "coef_": bytes(range(256)) * 40,
            "classes_": bytearray(b"ab"),
            "x": {1, 2},
            "y": frozenset(),
        },
        {"when": datetime.datetime(2024, 1, 2), "d": decimal.Decimal("1.5"), "z": 3 + 4j},
        [{"name": f"n{i}", "cfg": {"act": "relu", "p": 0.1, "s": slice(1, 2)}} for i in range(300)],
        {"big": 2**100, "neg": -(2**70), "r": range(3), "s": "é" * 10},
    ]


@pytest.mark.parametrize("proto", range(6))
def test_benign_pickles_are_clean(proto: int) -> None:
    for obj in _realistic():
        data = pickle.dumps(obj, protocol=proto)
        assert looks_like_pickle(data[:4096])
        streams, ctx = analyse(data)
        assert [f for f in ctx.findings if f.severity >= Severity.LOW] == [], obj
        assert len(streams) == 1 and streams[0].complete  # type: ignore[attr-defined]


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_numpy_arrays_in_pickles_are_clean(proto: int) -> None:
    np = pytest.importorskip("numpy")
    obj = {
        "f": np.arange(100, dtype=np.float32),
        "o": np.array([1, 2, 3], dtype=object),
        "s": np.float64(1.5),
        "r": np.random.RandomState(0),
        "g": np.random.default_rng(0),
        "st": np.zeros(3, dtype=[("a", "f4"), ("b", "i8")]),
        "u": np.array(["ab", "c"]),
    }
    _, ctx = analyse(pickle.dumps(obj, protocol=proto))
    assert [f for f in ctx.findings if f.severity >= Severity.MEDIUM] == []


def test_torch_legacy_save_is_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    p = tmp_path / "legacy.pt"
    sd = {"w": torch.randn(4, 4), "b": torch.zeros(4, dtype=torch.float16), "n": torch.tensor(3)}
    torch.save(sd, p, _use_new_zipfile_serialization=False)
    rep = scan_file(str(p), "legacy.pt", ScanOptions(hash=False))
    assert [f for f in rep.findings if f.severity >= Severity.MEDIUM] == []
    assert "torch._utils._rebuild_tensor_v2" in rep.metadata.get("globals", [])


def test_torch_pickle_dumps_tensor_is_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    data = pickle.dumps({"t": torch.ones(3)}, protocol=2)
    rep = scan_bytes(tmp_path, data)
    assert [f for f in rep.findings if f.severity >= Severity.MEDIUM] == []


def test_random_data_with_pickle_header_is_quiet_in_archives() -> None:
    data = b"\x80\x02" + os.urandom(5000)
    _, ctx = analyse(data, quiet_if_not_pickle=True)
    assert [f for f in ctx.findings if f.rule == "pickle.malformed"] == []


def test_text_is_not_a_pickle() -> None:
    for text in [b"hello world\n", b"(hello) world", b"Note: it works.", b"I like it\n", b"{}"]:
        assert not looks_like_pickle(text), text
    assert looks_like_pickle(b"N.")
    assert looks_like_pickle(pickle.dumps([1, 2, 3], protocol=0))


def test_detector_formats(tmp_path: Path) -> None:
    rep = scan_bytes(tmp_path, pickle.dumps({"a": 1}, protocol=4))
    assert rep.format == "pickle"
    assert rep.metadata["pickle_protocols"] == [4]
    assert rep.metadata["pickle_streams"] == 1
    rep = scan_bytes(
        tmp_path, ps.global_reduce("os", "system", proto=2), name="weights.safetensors"
    )
    assert rep.format == "pickle"
    assert any(f.rule == "pickle.dangerous-global" for f in rep.findings)


# ---------------------------------------------------------------------- bounds


def test_big_binbytes_payload_is_not_copied() -> None:
    payload = 50 * 1024 * 1024
    data = b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00B" + payload.to_bytes(4, "little")
    data = data + bytes(payload) + b"\x85."
    tracemalloc.start()
    try:
        streams, _ctx = analyse(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert streams[0].complete  # type: ignore[attr-defined]
    assert peak < 2 * 1024 * 1024


def test_op_budget_stops_pathological_pickle(tmp_path: Path) -> None:
    data = b"\x80\x02" + b"N0" * 5_000_000 + b"N."
    rep = scan_bytes(tmp_path, data, limits=Limits(max_pickle_ops=100_000))
    f = next(f for f in rep.findings if f.rule == "format.scan-limit")
    assert f.severity == Severity.MEDIUM


def test_deep_nesting_does_not_recurse() -> None:
    data = b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b"."
    streams, _ctx = analyse(data)
    assert streams[0].complete  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", ["my-plugin", "évil", "plug in"])
def test_importable_non_identifier_module_names_are_imports_not_noise(
    tmp_path: Path, module: str
) -> None:
    # __import__ loads my-plugin.py / évil.py from sys.path (the current folder): an attacker can
    # ship the module next to the model, so the name must be reported, not dismissed as garbage.
    data = b"\x80\x02c" + module.encode() + b"\nrun\n)R."
    rep = scan_bytes(tmp_path, data)
    assert any(f.rule == "pickle.unknown-global" and module in f.evidence for f in rep.findings)
    assert rep.unsafe


def test_invalid_string_escapes_are_decoded_like_pickle_without_a_warning(tmp_path: Path) -> None:
    # pickle.loads accepts S'\z' (DeprecationWarning only); the scanner must neither warn nor fail,
    # and must still see the global that follows.
    data = b"S'a\\zb\\8'\np0\n0cos\nsystem\n(S'echo harmless'\ntR."
    _, ctx = analyse(data)
    assert has(ctx, "pickle.dangerous-global", "os.system") or any(
        "os.system" in f.evidence for f in ctx.findings
    )
