"""Red-team samples against the pickle analyser: each one a loader-vs-scanner differential.

Every sample is built here with a harmless payload (``os.system("true")``) and never loaded; what
CPython's unpickler (``pickle.py``'s ``_Unpickler``, which joblib uses, or ``_pickle``) would do
was checked by reading its source. Each test names the technique it defeats.
"""

from __future__ import annotations

import pickletools
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelward.models import Severity
from modelward.scan import Limits, ScanOptions, scan_file
from modelward.scan.context import ScanContext
from modelward.scan.engine import dispatch
from modelward.scan.pickle import analyze_pickles, vm
from modelward.scan.pickle.globals import classify
from modelward.scan.pickle.plain import is_plain
from tests.scan.pickle_samples import s0, su
from tests.workcount import assert_linear

PAYLOAD = b"cos\nsystem\n(" + s0("true") + b"tR"
"""Protocol-0 ``os.system("true")``, leaving the result on the stack (no STOP)."""


def analyse(data: bytes, **kw: object) -> ScanContext:
    ctx = ScanContext("mem", Limits(), dispatch)
    analyze_pickles(data, ctx, **kw)  # type: ignore[arg-type]
    return ctx


def worst(findings: object) -> Severity:
    return max((f.severity for f in findings), default=Severity.INFO)  # type: ignore[attr-defined]


def assert_high(ctx_or_findings: object) -> None:
    findings = getattr(ctx_or_findings, "findings", ctx_or_findings)
    assert worst(findings) >= Severity.HIGH, [(f.rule, f.evidence) for f in findings]


def scan_bytes(tmp_path: Path, data: bytes, name: str):  # type: ignore[no-untyped-def]
    p = tmp_path / name
    p.write_bytes(data)
    return scan_file(str(p), name, ScanOptions(hash=False))


# ---------------------------------------------------------------------- names and lines


def test_dotted_name_longer_than_512_chars() -> None:
    # Technique: protocol 4 find_class walks ``path.os.path.os....system`` of any length; the
    # scanner refused names over 512 characters as "not importable" and stopped quietly.
    name = ("path.os." * 70 + "system").encode()
    data = b"\x80\x04" + su("os") + b"X" + struct.pack("<I", len(name)) + name
    ctx = analyse(data + b"\x93" + su("true") + b"\x85R.")
    assert any(f.rule == "pickle.dangerous-global" for f in ctx.findings)


def test_global_line_longer_than_4096_chars() -> None:
    # Technique: a GLOBAL line longer than the scanner's line limit (readline has none).
    name = b"path.os." * 600 + b"system"
    ctx = analyse(b"\x80\x04c" + b"os\n" + name + b"\n(" + s0("true") + b"tR.")
    assert any(f.rule == "pickle.dangerous-global" for f in ctx.findings)


def test_get_argument_padded_with_spaces() -> None:
    # Technique: ``int(b"   ...   0")`` ignores whitespace, so a GET line can be any length.
    data = b"\x80\x02" + su("x") + b"p0\n0g" + b" " * 5000 + b"0\n0" + PAYLOAD + b"."
    assert_high(analyse(data))


def test_float_argument_longer_than_4096_chars() -> None:
    # Technique: FLOAT's text argument has no length limit in the unpickler.
    data = b"F" + b"1" * 5000 + b"\n0" + PAYLOAD + b"."
    assert_high(analyse(data))


# ---------------------------------------------------------------------- frames and streams


def test_frame_longer_than_the_file() -> None:
    # Technique: pure-Python _Unpickler (joblib's) reads a short frame and goes on; the
    # scanner called the stream truncated at the FRAME and never looked at the payload.
    data = b"\x80\x04\x95" + struct.pack("<Q", 1 << 20) + PAYLOAD + b"."
    assert_high(analyse(data))


@pytest.mark.parametrize(
    "second",
    [
        su("os") + su("system") + b"\x93" + su("true") + b"\x85R.",  # no PROTO
        b"\x80\x01" + PAYLOAD + b".",  # PROTO 1
        b"\x80\x00" + PAYLOAD + b".",  # PROTO 0
        b"\x95" + struct.pack("<Q", 10) + PAYLOAD + b".",  # FRAME first
    ],
)
def test_second_stream_starting_with_any_opcode(second: bytes) -> None:
    # Technique: ``pickle.load`` in a loop reads a second stream that needs no PROTO; the
    # scanner only followed streams starting with PROTO 2-5 or a text opcode.
    assert_high(analyse(b"\x80\x02N." + second))


@pytest.mark.parametrize("name", ["model.bin", "weights", "model.data"])
@pytest.mark.parametrize(
    "data",
    [
        su("os") + su("system") + b"\x93" + su("true") + b"\x85R.",
        b"\x80\x01" + PAYLOAD + b".",
        b"\x80\x02" + PAYLOAD + b"\xff garbage",  # nullifAI with a PROTO header
    ],
)
def test_pickle_starting_with_any_opcode_is_found(tmp_path: Path, name: str, data: bytes) -> None:
    # Technique: content detection only knew PROTO 2-5 and text opcodes as first bytes.
    rep = scan_bytes(tmp_path, data, name)
    assert rep.format == "pickle"
    assert_high(rep.findings)


# ---------------------------------------------------------------------- joblib arrays


def _wrapper_state(
    shape: bytes = b"K\x08\x85", dtype_state: bytes | None = None, extra: bytes = b""
) -> bytes:
    ds = dtype_state
    if ds is None:
        ds = b"(K\x03" + su("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    dtype = su("numpy") + su("dtype") + b"\x93" + su("f8") + b"\x89\x88\x87R" + ds + b"b"
    return (
        b"}("
        + su("subclass")
        + su("numpy")
        + su("ndarray")
        + b"\x93"
        + su("shape")
        + shape
        + su("order")
        + su("C")
        + su("dtype")
        + dtype
        + su("allow_mmap")
        + b"\x88"
        + extra
        + b"ub"
    )


_W = su("joblib.numpy_pickle") + su("NumpyArrayWrapper") + b"\x93"


def _swallow(data_len: int, after: bytes) -> bytes:
    """Array bytes (``data_len`` of them) that, read as opcodes, swallow ``after`` whole."""
    pad = data_len - 5
    return b"B" + struct.pack("<I", pad + len(after)) + b"\x00" * pad


def test_joblib_alignment_none() -> None:
    # Technique: ``numpy_array_alignment_bytes: None`` means no padding byte to joblib; the
    # scanner read a padding byte when the key was merely present (and skipped the payload).
    extra = su("numpy_array_alignment_bytes") + b"N"
    head = b"\x80\x04" + _W + b")\x81" + _wrapper_state(b"K\x00\x85", extra=extra)
    body = b"0" + PAYLOAD + b"."
    data = head + body + b"\x00" * (0x31 - len(body)) + b"."
    assert_high(analyse(data))


def test_joblib_dtype_elsize_from_state() -> None:
    # Technique: numpy ignores the state's elsize for fixed-size dtypes (``f8`` stays 8 bytes);
    # the scanner took it (1), so it read 56 array bytes as opcodes that hid the payload.
    ds = b"(K\x03" + su("<") + b"NNNJ\x01\x00\x00\x00J\xff\xff\xff\xffK\x00t"
    head = b"\x80\x04" + _W + b")\x81" + _wrapper_state(dtype_state=ds)
    tail = b"0" + PAYLOAD + b"."
    array = b"\x00" * 8 + _swallow(56, tail)
    assert_high(analyse(head + array + tail + b"."))


@pytest.mark.parametrize(
    "make",
    [
        su("copyreg") + su("__newobj__") + b"\x93" + _W + b"\x85R",
        su("copyreg")
        + su("_reconstructor")
        + b"\x93"
        + _W
        + su("builtins")
        + su("object")
        + b"\x93N\x87R",
    ],
)
def test_joblib_wrapper_made_by_copyreg(make: bytes) -> None:
    # Technique: joblib checks ``isinstance(.., NumpyArrayWrapper)`` after BUILD however the
    # instance was made; the scanner only skipped array bytes after a direct class call.
    head = b"\x80\x04" + make + _wrapper_state()
    tail = b"0" + PAYLOAD + b"."
    assert_high(analyse(head + _swallow(64, tail) + tail + b"."))


def test_joblib_file_loaded_by_plain_pickle() -> None:
    # Technique: ``pickle.load`` of a joblib file runs the array bytes as opcodes; the check of
    # that region started from an empty stack, so a leading POP made it give up.
    head = b"\x80\x04" + _W + b")\x81" + _wrapper_state()
    body = b"0" + PAYLOAD + b"."
    assert len(body) <= 64
    assert_high(analyse(head + body + b"\x00" * (64 - len(body)) + b"."))


def test_joblib_alignment_key_hidden_in_a_big_setitems() -> None:
    # Technique: the state dict is modelled only up to 64 items; an alignment key set by a
    # SETITEMS past that limit was invisible, so padding bytes desynchronised the walk.
    junk = b"".join(su(f"k{n}") + b"N" for n in range(70))
    state = _wrapper_state()[:-1] + b"(" + junk + su("numpy_array_alignment_bytes") + b"K\x10ub"
    head = b"\x80\x04" + _W + b")\x81" + state
    tail = b"0" + PAYLOAD + b"."
    block = bytearray(1 + 100 + 64)  # real: padding byte 100, 100 bytes, 64 array bytes
    block[0] = 100
    block[64:69] = b"B" + struct.pack("<I", len(block) - 69 + len(tail))  # scanner: opcodes
    assert_high(analyse(head + bytes(block) + tail + b"."))


def test_ndarraywrapper_loads_another_file_with_pickle() -> None:
    # Technique: joblib's legacy NDArrayWrapper calls np.load(<path from the pickle>,
    # allow_pickle=True): an arbitrary pickle outside the scanned file.
    data = (
        b"\x80\x02cjoblib.numpy_pickle\nNDArrayWrapper\n)\x81}"
        + s0("filename")
        + s0("../../x.npy")
        + b"sb."
    )
    assert_high(analyse(data))


# ---------------------------------------------------------------------- op budget


def test_payload_after_the_op_budget() -> None:
    # Technique: pad the stream past Limits.max_pickle_ops with no-ops, then call os.system.
    ctx = ScanContext("mem", Limits(max_pickle_ops=1000), dispatch)
    data = b"\x80\x02N" + b"N0" * 600 + PAYLOAD + b"."
    analyze_pickles(data, ctx)
    assert_high(ctx)


def test_data_after_the_op_budget_stays_medium() -> None:
    ctx = ScanContext("mem", Limits(max_pickle_ops=1000), dispatch)
    analyze_pickles(b"\x80\x02ccollections\nOrderedDict\n)R0]" + b"N" * 1000 + b"N.", ctx)
    assert worst(ctx.findings) == Severity.MEDIUM


# ---------------------------------------------------------------------- numpy .npy


def _npy(header: str, body: bytes, major: int = 1) -> bytes:
    raw = header.encode("utf-8" if major == 3 else "latin-1")
    if major == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw + body
    return b"\x93NUMPY" + bytes([major, 0]) + struct.pack("<I", len(raw)) + raw + body


@pytest.mark.parametrize(
    "descr",
    ["'object'", "'(2,)O'", "'i4,O'", "[('a', '<i4'), ('b', 'object')]", "'|O'"],
)
def test_npy_object_dtype_spellings(tmp_path: Path, descr: str) -> None:
    # Technique: numpy.dtype accepts many spellings of an object dtype; only a leading "O"
    # made the scanner read the array data as a pickle.
    header = "{'descr': " + descr + ", 'fortran_order': False, 'shape': (1,), }\n"
    rep = scan_bytes(tmp_path, _npy(header, b"\x80\x02" + PAYLOAD + b"."), "a.npy")
    assert_high(rep.findings)


@pytest.mark.parametrize("shape", ["(True,)", "(-1,)", "(" + "1, " * 70 + ")"])
def test_npy_object_array_with_odd_shape(tmp_path: Path, shape: str) -> None:
    # Technique: numpy unpickles object arrays before it uses the shape; the scanner rejected
    # the header (bool, negative or 70 dimensions) and never read the pickle.
    header = "{'descr': '|O', 'fortran_order': False, 'shape': " + shape + ", }\n"
    rep = scan_bytes(tmp_path, _npy(header, b"\x80\x02" + PAYLOAD + b"."), "a.npy")
    assert_high(rep.findings)


def test_npy_header_longer_than_64k(tmp_path: Path) -> None:
    # Technique: np.load(allow_pickle=True) accepts headers of any size; the scanner stopped at
    # 64 KiB with a medium finding and never read the pickle.
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }" + " " * 70000 + "\n"
    rep = scan_bytes(tmp_path, _npy(header, b"\x80\x02" + PAYLOAD + b".", 2), "a.npy")
    assert_high(rep.findings)


# ---------------------------------------------------------------------- differential checks

_OPS = [
    b"N",
    b"K\x05",
    b"M\x01\x02",
    b"J\x01\x02\x03\x04",
    b"G" + b"\x00" * 8,
    b"\x88",
    b"\x89",
    b"}",
    b"]",
    b")",
    b"(",
    b"\x8c\x03abc",
    b"X\x02\x00\x00\x00hi",
    b"C\x02ab",
    b"B\x01\x00\x00\x00a",
    b"\x8a\x02\x01\x02",
    b"q\x01",
    b"h\x01",
    b"r\x01\x00\x00\x00",
    b"j\x01\x00\x00\x00",
    b"\x94",
    b"0",
    b"1",
    b"2",
    b"a",
    b"e",
    b"s",
    b"u",
    b"t",
    b"\x85",
    b"\x86",
    b"\x87",
    b"\x95" + b"\x00" * 8,
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_OPS), max_size=40))
def test_plain_tokenisation_matches_genops(ops: list[bytes]) -> None:
    # Oracle: pickletools.genops tokenises exactly as the unpickler reads. Whenever the
    # data-only fast path clears a stream, genops must see only data-only opcodes in it.
    data = b"\x80\x04" + b"".join(ops) + b"."
    if not is_plain(data, 0, len(data)):
        return
    names = [op.name for op, _arg, _pos in pickletools.genops(data)]
    assert names[-1] == "STOP"
    assert not {"GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "INST", "OBJ"} & set(names)


# ---------------------------------------------------------------------- benign files stay clean


def test_benign_joblib_files_stay_clean(tmp_path: Path) -> None:
    # The plain-pickle reading of joblib files meets array bytes and nested object-array pickles
    # that mix their memo with the outer one: none of that may raise a medium finding.
    import collections

    import joblib
    import numpy as np

    rng = np.random.default_rng(7)
    for k in range(40):
        value = {
            "obj": np.array([k, "a", None, {"x": k}], dtype=object),
            "f": rng.random(int(rng.integers(0, 20))),
            "i": rng.integers(-300, 300, int(rng.integers(1, 20))),
            "s": np.zeros(2, dtype=[("a", "<i4"), ("b", "O")]),
            "d": collections.OrderedDict(a=np.arange(3), t=np.array(["2020-01-01"], "M8[D]")),
        }
        p = tmp_path / f"m{k}.joblib"
        joblib.dump(value, p, protocol=2 + k % 4)
        rep = scan_file(str(p), p.name, ScanOptions(hash=False))
        assert worst(rep.findings) <= Severity.LOW, [(f.rule, f.evidence) for f in rep.findings]


def test_stack_global_on_an_allowlisted_class_is_a_loader_error() -> None:
    # A class is never a str: the unpickler fails there, so nothing after it runs.
    data = b"\x80\x04ccollections\nOrderedDict\n" + su("x") + b"\x93)R."
    ctx = analyse(data)
    assert not any(f.rule == "pickle.unresolved-global" for f in ctx.findings)
    assert any(f.rule == "pickle.malformed" for f in ctx.findings)


@pytest.mark.parametrize(
    ("module", "name"),
    [("random", "_os.replace"), ("collections", "_sys.modules"), ("tempfile", "_os.mkdir")],
)
def test_private_module_alias_in_a_dotted_name(module: str, name: str) -> None:
    # Technique: protocol 4 find_class walks ``random._os.replace``: the os module under the
    # private alias a stdlib module keeps, with a function name missing from the denylist.
    data = b"\x80\x04" + su(module) + su(name) + b"\x93" + su("a") + su("b") + b"\x86R."
    ctx = analyse(data)
    assert any(f.rule == "pickle.dangerous-global" for f in ctx.findings)


_WALK_OPS = [
    *_OPS,
    b"cos\nsystem\n",
    b"ccollections\nOrderedDict\n",
    b"(S'x'\nios\nsystem\n",
    su("os") + su("system") + b"\x93",
    b"\x93",
    b"R",
    b"b",
    b"\x81",
    b"p3\n",
    b"g3\n",
    b"I1\n",
    b"\x80\x02",
    b"\x80\x04",
    b"V\\u0041\n",
    b"\x8c\x02os",
    b"\x8c\x06system",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WALK_OPS), max_size=30))
def test_walk_tokenisation_matches_genops(ops: list[bytes]) -> None:
    # Oracle: pickletools.genops. Every import the walk records sits on a GLOBAL, INST or
    # STACK_GLOBAL opcode of genops' tokenisation, and every GLOBAL/INST the walk got past
    # was recorded (no opcode hidden by a tokenisation slip).
    from modelward.scan.pickle.vm import Sink, walk

    data = b"\x80\x04" + b"".join(ops) + b"."
    seen: dict[int, tuple[str, object]] = {}
    try:
        for op, arg, pos in pickletools.genops(data):
            seen[pos] = (op.name, arg)  # type: ignore[index]
    except ValueError:
        pass
    sink = Sink(10_000)
    res = walk(data, 0, len(data), sink, joblib=False)
    got = {g.offset for g in sink.imports} | {off for off, _ in sink.unresolved}
    names = {g.full for g in sink.imports}
    for off in got:
        assert seen.get(off, ("",))[0] in ("GLOBAL", "INST", "STACK_GLOBAL"), (off, seen)
    for pos, (name, arg) in seen.items():
        if name in ("GLOBAL", "INST") and pos < res.end:
            assert str(arg).replace(" ", ".") in names, (pos, data)


# ---------------------------------------------------------------------- work linear in size
# Counted, not timed (tests/workcount.py): the Python lines the analysis executes, and the
# characters it validates. Speed itself is benchmarks/scan_bench.py's (section hostile).


def _cold(data: bytes) -> ScanContext:
    classify.cache_clear()  # every name classified afresh, at n as at 2n
    return analyse(data)


def _mutated_globals(n: int) -> bytes:
    parts = [b"ccollections\nOrderedDict.x%d\n}b0" % k for k in range(n)]
    return b"\x80\x02" + b"".join(parts) + b"N."


def test_many_mutated_globals_stay_linear() -> None:
    # Technique (denial of service): every import was checked against every mutated name,
    # quadratic in the number of BUILDs on globals (2.7 MB took minutes).
    found = {f.rule for f in analyse(_mutated_globals(40_000)).findings}
    assert {"pickle.global-mutation", "pickle.unknown-global"} <= found
    assert_linear(_cold, _mutated_globals(1_000), _mutated_globals(2_000), "mutated globals")


def _dotted(components: int, imports: int) -> bytes:
    name = b".".join([b"a"] * components)
    head = b"\x80\x04" + su("collections") + b"\x94X" + struct.pack("<I", len(name)) + name
    return head + b"\x94" + b"h\x00h\x01\x93" * imports + b"N."


def test_long_dotted_names_stay_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    # Technique (denial of service): classification joined every run of dotted components,
    # cubic in their number; and a memoised long name imported again and again was re-read.
    found = {f.rule for f in analyse(_dotted(100_000, 100_000)).findings}
    assert "pickle.unresolved-global" in found  # a name past MAX_STR: too long to analyse
    assert_linear(_cold, _dotted(500, 1), _dotted(1_000, 1), "dotted components")
    assert_linear(_cold, _dotted(2_000, 1_000), _dotted(2_000, 2_000), "repeated imports")
    validated: list[int] = []
    real = vm.valid_name
    monkeypatch.setattr(vm, "valid_name", lambda t, p=False: validated.append(len(t)) or real(t, p))
    assert {f.rule for f in _cold(_dotted(2_000, 10_000)).findings} == {"pickle.unknown-global"}
    assert sum(validated) <= 2 * (len("collections") + 4_000)  # each name read once, not per import
