"""TFLite: the model flatbuffer read by hand (every offset checked) for its custom and Flex ops.

A ``.tflite`` model names its operators in ``operator_codes``. Builtin ops run inside the TFLite
runtime; ``CUSTOM`` ops need a native kernel registered by the application, and ``Flex*`` custom
ops run full TensorFlow kernels through the Flex delegate, including the ones that touch the
host (``FlexReadFile``, ``FlexWriteFile``, ``FlexPyFunc`` ...), judged like TensorFlow ops.
"""

from __future__ import annotations

import struct
from typing import Any

from modelward.models import Severity
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.formats.tensorflow import classify_op
from modelward.scan.rules import SCAN_LIMIT, rule
from modelward.scan.source import Buffer, Source

MAX_ITEMS = 1_000_000
"""Operator codes, subgraphs and operators walked per file."""
BUILTIN_CUSTOM = 32
"""``BuiltinOperator.CUSTOM``."""

CUSTOM_OP = rule(
    "tflite.custom-op",
    Severity.MEDIUM,
    "The model uses a custom op, which needs a native kernel supplied by the application",
    "Run it only with custom op kernels from a source you trust.",
)
MALFORMED = rule(
    "tflite.malformed",
    Severity.MEDIUM,
    "The TFLite flatbuffer is malformed (an offset or length points outside the file)",
    "Treat the model as unscanned; obtain a well-formed copy from a trusted source.",
)

KNOWN_CUSTOM = frozenset(
    {
        "TFLite_Detection_PostProcess",
        "AudioSpectrogram",
        "Mfcc",
        "MaxPoolingWithArgmax2D",
        "MaxUnpooling2D",
        "Convolution2DTransposeBias",
        "TransformTensorBilinear",
        "TransformLandmarks",
        "Landmarks2TransformMatrix",
    }
)
"""Custom ops shipped with the TFLite runtime or MediaPipe: listed, not reported."""


class FlatbufferError(ValueError):
    """An offset or length of the flatbuffer is out of bounds."""


class _Reader:
    def __init__(self, buf: Buffer) -> None:
        self.buf = buf
        self.size = len(buf)

    def _get(self, fmt: str, off: int) -> int:
        n = struct.calcsize(fmt)
        if off < 0 or off + n > self.size:
            raise FlatbufferError(f"read of {n} bytes at {off} is outside the file")
        value: int = struct.unpack_from(fmt, self.buf, off)[0]
        return value

    def u32(self, off: int) -> int:
        return self._get("<I", off)

    def table(self, pos: int) -> tuple[int, int, int]:
        """(table position, vtable position, vtable size)."""
        vt = pos - self._get("<i", pos)
        vt_size = self._get("<H", vt)
        if vt_size < 4 or vt_size % 2 or vt + vt_size > self.size:
            raise FlatbufferError(f"bad vtable at {vt}")
        return pos, vt, vt_size

    def field(self, t: tuple[int, int, int], index: int) -> int | None:
        pos, vt, vt_size = t
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        rel = self._get("<H", vt + slot)
        return None if rel == 0 else pos + rel

    def scalar(self, t: tuple[int, int, int], index: int, fmt: str, default: int) -> int:
        p = self.field(t, index)
        return default if p is None else self._get(fmt, p)

    def vector(self, t: tuple[int, int, int], index: int, elem: int) -> tuple[int, int]:
        """(first element position, count) of a vector field; (0, 0) when absent."""
        p = self.field(t, index)
        if p is None:
            return 0, 0
        v = p + self.u32(p)
        n = self.u32(v)
        if v + 4 + n * elem > self.size:
            raise FlatbufferError(f"vector of {n} elements at {v} runs past the file")
        return v + 4, n

    def tables(self, t: tuple[int, int, int], index: int) -> list[tuple[int, int, int]]:
        start, n = self.vector(t, index, 4)
        if n > MAX_ITEMS:
            raise FlatbufferError(f"{n} entries exceed the scanner bound")
        return [self.table(start + 4 * i + self.u32(start + 4 * i)) for i in range(n)]

    def string(self, t: tuple[int, int, int], index: int, limit: int = 256) -> str | None:
        start, n = self.vector(t, index, 1)
        if start == 0:
            return None
        return bytes(self.buf[start : start + min(n, limit)]).decode("utf-8", "replace")


def looks_like_tflite(head: bytes) -> bool:
    return len(head) >= 8 and head[4:8] == b"TFL3"


@register
class TFLiteDetector(Detector):
    """TFLite flatbuffers (``TFL3`` file identifier at offset 4)."""

    format = "tflite"
    extensions = (".tflite",)
    priority = 45

    def matches(self, head: bytes, src: Source) -> bool:
        return looks_like_tflite(head)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        r = _Reader(src.buffer())
        meta: dict[str, Any] = {}
        try:
            model = r.table(r.u32(0))
            meta["version"] = r.scalar(model, 0, "<I", 0)
            codes = r.tables(model, 1)
            subgraphs = r.tables(model, 2)
            meta["subgraph_count"] = len(subgraphs)
            meta["operator_code_count"] = len(codes)
            description = r.string(model, 3)
            if description:
                meta["description"] = description
            operators = 0
            for sg in subgraphs:
                operators += r.vector(sg, 3, 4)[1]
            meta["operator_count"] = operators
            names = [r.string(m, 0, 128) or "" for m in r.tables(model, 6)[:50]]
            if names:
                meta["metadata_names"] = names
            self.check_codes(r, codes, ctx, meta)
        except FlatbufferError as exc:
            ctx.report(MALFORMED, f"The TFLite flatbuffer is malformed: {exc}", evidence=str(exc))
        ctx.metadata.update(meta)

    def check_codes(
        self,
        r: _Reader,
        codes: list[tuple[int, int, int]],
        ctx: ScanContext,
        meta: dict[str, Any],
    ) -> None:
        builtin: set[int] = set()
        custom: list[str] = []
        for i, code in enumerate(codes):
            deprecated = r.scalar(code, 0, "<b", 0)
            value = max(deprecated, r.scalar(code, 3, "<i", 0))
            if value != BUILTIN_CUSTOM:
                builtin.add(value)
                continue
            name = r.string(code, 1) or ""
            if name not in custom and len(custom) < 100:
                custom.append(name)
            where = f"operator_codes[{i}]"
            if name.startswith("Flex"):
                risk = classify_op(name[4:])
                if risk is not None:
                    ctx.report(
                        risk.rule,
                        f"Flex op {name} runs the TensorFlow op {name[4:]}, which {risk.why}.",
                        evidence=name,
                        location=where,
                        severity=risk.severity,
                    )
            elif name not in KNOWN_CUSTOM:
                ctx.report(
                    CUSTOM_OP,
                    f"Custom op {name!r} needs a native kernel that the application registers.",
                    evidence=name,
                    location=where,
                )
        meta["builtin_op_codes"] = sorted(builtin)[:200]
        meta["custom_ops"] = custom
        if len(codes) > MAX_ITEMS:
            ctx.report(SCAN_LIMIT, "Too many operator codes to analyse.")
