"""TFLite: flatbuffers laid out by a tiny builder in the test; custom ops, Flex host ops, bounds."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelward.models import FileReport, Severity
from modelward.scan import ScanOptions, scan_file
from tests.scan.fuzz import mutate, scan_written


# ---------------------------------------------------------------------- a minimal flatbuffer writer
# Objects: ("table", [(index, struct_fmt, value) | (index, "ref", obj)]), ("string", bytes),
# ("tables", [obj...]), ("ints", [int...]). Parents are laid out before children so that every
# uoffset points forward, as in real flatbuffers.
def build(root: Any, ident: bytes = b"TFL3") -> bytes:
    buf = bytearray(8)
    buf[4:8] = ident
    patches: list[tuple[int, Any]] = []

    def align() -> None:
        while len(buf) % 4:
            buf.append(0)

    def place(obj: Any) -> int:
        kind = obj[0]
        align()
        pos = len(buf)
        if kind == "string":
            buf.extend(struct.pack("<I", len(obj[1])) + obj[1] + b"\0")
        elif kind == "ints":
            buf.extend(
                struct.pack("<I", len(obj[1])) + b"".join(struct.pack("<i", v) for v in obj[1])
            )
        elif kind == "tables":
            buf.extend(struct.pack("<I", len(obj[1])))
            for child in obj[1]:
                patches.append((len(buf), child))
                buf.extend(b"\0\0\0\0")
        else:  # table: vtable first, then the table
            fields = obj[1]
            nslots = 1 + max((f[0] for f in fields), default=-1)
            layout: list[tuple[int, int, Any]] = []  # (index, offset in table, field)
            off = 4
            for f in fields:
                size = 4 if f[1] == "ref" else struct.calcsize(f[1])
                while off % size:
                    off += 1
                layout.append((f[0], off, f))
                off += size
            slots = [0] * nslots
            for index, o, _ in layout:
                slots[index] = o
            vt = struct.pack("<HH", 4 + 2 * nslots, off) + b"".join(
                struct.pack("<H", s) for s in slots
            )
            vt_pos = len(buf)
            buf.extend(vt)
            align()
            pos = len(buf)
            table = bytearray(off)
            struct.pack_into("<i", table, 0, pos - vt_pos)
            buf.extend(table)
            for _, o, f in layout:
                if f[1] == "ref":
                    patches.append((pos + o, f[2]))
                else:
                    struct.pack_into(f[1], buf, pos + o, f[2])
        return pos

    root_pos = place(root)
    struct.pack_into("<I", buf, 0, root_pos)
    while patches:
        slot, child = patches.pop(0)
        target = place(child)
        struct.pack_into("<I", buf, slot, target - slot)
    return bytes(buf)


def opcode(builtin: int, custom: str | None = None, deprecated: int | None = None) -> Any:
    fields: list[Any] = [(2, "<i", 1), (3, "<i", builtin)]
    fields.append((0, "<b", min(builtin, 127) if deprecated is None else deprecated))
    if custom is not None:
        fields.append((1, "ref", ("string", custom.encode())))
    return ("table", fields)


def model(codes: list[Any], description: str = "TOCO Converted.") -> Any:
    op = ("table", [(0, "<I", 0)])
    tensor = ("table", [(3, "ref", ("string", b"input"))])
    subgraph = (
        "table",
        [
            (0, "ref", ("tables", [tensor])),
            (1, "ref", ("ints", [0])),
            (2, "ref", ("ints", [0])),
            (3, "ref", ("tables", [op, op])),
            (4, "ref", ("string", b"main")),
        ],
    )
    meta = ("table", [(0, "ref", ("string", b"min_runtime_version")), (1, "<I", 1)])
    return (
        "table",
        [
            (0, "<I", 3),
            (1, "ref", ("tables", codes)),
            (2, "ref", ("tables", [subgraph])),
            (3, "ref", ("string", description.encode())),
            (4, "ref", ("tables", [("table", [])])),
            (6, "ref", ("tables", [meta])),
        ],
    )


def _scan(path: Path) -> FileReport:
    return scan_file(str(path), str(path), ScanOptions(hash=False))


def _write(tmp_path: Path, data: bytes, name: str = "m.tflite") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


BENIGN = build(
    model(
        [
            opcode(3),  # CONV_2D
            opcode(9),  # FULLY_CONNECTED
            opcode(150, deprecated=127),  # a builtin past 127 (placeholder in the old field)
            opcode(32, "TFLite_Detection_PostProcess"),
            opcode(32, "FlexAddV2"),
        ]
    )
)


# ---------------------------------------------------------------------- tests
def test_benign_model_is_clean_with_metadata(tmp_path: Path) -> None:
    rep = _scan(_write(tmp_path, BENIGN))
    assert rep.format == "tflite"
    assert rep.findings == ()
    md = rep.metadata
    assert md["version"] == 3
    assert md["subgraph_count"] == 1
    assert md["operator_count"] == 2
    assert md["builtin_op_codes"] == [3, 9, 150]
    assert md["custom_ops"] == ["TFLite_Detection_PostProcess", "FlexAddV2"]
    assert md["description"] == "TOCO Converted."
    assert md["metadata_names"] == ["min_runtime_version"]


def test_unknown_custom_op_is_medium(tmp_path: Path) -> None:
    rep = _scan(_write(tmp_path, build(model([opcode(3), opcode(32, "MyNativeOp")]))))
    assert [(f.rule, f.severity, f.evidence) for f in rep.findings] == [
        ("tflite.custom-op", Severity.MEDIUM, "MyNativeOp")
    ]


@pytest.mark.parametrize(
    ("name", "rule", "severity"),
    [
        ("FlexReadFile", "tf.host-op", Severity.HIGH),
        ("FlexWriteFile", "tf.host-op", Severity.HIGH),
        ("FlexPyFunc", "tf.pyfunc", Severity.CRITICAL),
    ],
)
def test_flex_host_ops(tmp_path: Path, name: str, rule: str, severity: Severity) -> None:
    rep = _scan(_write(tmp_path, build(model([opcode(32, name)]))))
    assert [(f.rule, f.severity) for f in rep.findings] == [(rule, severity)]


def test_bad_root_offset_is_malformed(tmp_path: Path) -> None:
    data = struct.pack("<I", 0xFFFFFF00) + b"TFL3" + b"\0" * 32
    rep = _scan(_write(tmp_path, data))
    assert rep.format == "tflite"
    assert [f.rule for f in rep.findings] == ["tflite.malformed"]


def test_huge_vector_length_is_malformed(tmp_path: Path) -> None:
    data = bytearray(build(model([opcode(3)])))
    # find the operator_codes vector (length 1) and claim 2**31 entries
    root = struct.unpack_from("<I", data, 0)[0]
    vt = root - struct.unpack_from("<i", data, root)[0]
    field = root + struct.unpack_from("<H", data, vt + 4 + 2)[0]
    vec = field + struct.unpack_from("<I", data, field)[0]
    struct.pack_into("<I", data, vec, 1 << 31)
    rep = _scan(_write(tmp_path, bytes(data)))
    assert [f.rule for f in rep.findings] == ["tflite.malformed"]


@settings(max_examples=80)
@given(st.data())
def test_mutated_model_never_escapes(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    mutant = mutate(data, BENIGN, flips=8, min_len=8)
    scan_written(tmp_path_factory.mktemp("tfl") / "m.tflite", mutant)


@given(st.binary(max_size=200))
def test_random_bytes_never_escape(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("tflr") / "m.tflite"
    p.write_bytes(data[:4] + b"TFL3" + data[4:])
    rep = _scan(p)
    assert not any(f.rule == "format.analysis-failed" for f in rep.findings)
