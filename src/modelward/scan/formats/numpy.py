"""NumPy ``.npy`` arrays: header sanity, and the pickle that an object array carries."""

from __future__ import annotations

import ast
import re
import struct
from typing import Any

from modelward.models import Severity
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.pickle import analyze_pickles
from modelward.scan.rules import rule
from modelward.scan.source import Source

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 24
"""numpy refuses headers above 10,000 bytes unless ``allow_pickle=True``, which lifts the bound:
headers are parsed up to 16 MiB; a larger one is reported high, as it may hide an object array."""

MALFORMED = rule(
    "numpy.malformed",
    Severity.MEDIUM,
    "The .npy header is invalid or does not match the file",
    "numpy would refuse or misread this file; obtain an intact copy from a trusted source.",
)

_PY2_LONG = re.compile(r"\b(\d+)L\b")
_SIMPLE = re.compile(r"[<>|=]?([a-zA-Z])(\d*)\Z")
_SIZES = {"b": 1, "?": 1, "e": 2, "f": 4, "d": 8, "g": 16, "h": 2, "i": 4, "l": 8, "q": 8}


def _has_object(descr: Any, depth: int = 0) -> bool:
    """Whether a numpy ``descr`` (string or list of fields) may contain Python objects.

    ``numpy.dtype`` spells objects many ways (``O``, ``|O8``, ``object``, ``(2,)O``, ``i4,O``);
    no numeric type string has an ``O`` or ``object`` in it. Field lists are
    ``(name, dtype[, shape])`` tuples and a subarray is ``(dtype, shape)``: only the dtype is
    looked at, not the field name.
    """
    if depth > 32:
        return True
    if isinstance(descr, str):
        return "O" in descr or "object" in descr.lower()
    if isinstance(descr, list):
        return any(_has_object(x, depth + 1) for x in descr)
    if isinstance(descr, tuple):
        if len(descr) < 2:
            return True
        if isinstance(descr[1], (tuple, int)):  # (dtype, shape): a subarray
            return _has_object(descr[0], depth + 1)
        return _has_object(descr[1], depth + 1)  # (name, dtype[, shape]): a field
    return True


def _itemsize(descr: Any) -> int | None:
    if not isinstance(descr, str):
        return None
    m = _SIMPLE.match(descr)
    if m is None:
        return None
    kind, digits = m.group(1), m.group(2)
    if digits:
        return int(digits) * (4 if kind == "U" else 1)
    return _SIZES.get(kind)


@register
class NumpyDetector(Detector):
    """A ``.npy`` file (format versions 1-3)."""

    format = "numpy"
    extensions = (".npy",)
    priority = 20

    def matches(self, head: bytes, src: Source) -> bool:
        return head.startswith(MAGIC)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        head = src.read(0, 12)
        if len(head) < 10 or not head.startswith(MAGIC):
            ctx.report(MALFORMED, "The file is too short for a .npy header.", evidence="header")
            return
        major, minor = head[6], head[7]
        ctx.metadata["npy_version"] = f"{major}.{minor}"
        if major == 1:
            (hlen,) = struct.unpack_from("<H", head, 8)
            hstart = 10
        elif major in (2, 3) and len(head) >= 12:
            (hlen,) = struct.unpack_from("<I", head, 8)
            hstart = 12
        else:
            ctx.report(
                MALFORMED,
                f"Unknown .npy format version {major}.{minor}.",
                evidence=f"version {major}.{minor}",
            )
            return
        if hlen > MAX_HEADER or hstart + hlen > src.size:
            big = hstart + hlen <= src.size
            ctx.report(
                MALFORMED,
                f"The .npy header claims {hlen} bytes, beyond the limit or the file size.",
                evidence=f"header length {hlen}",
                # np.load(allow_pickle=True) reads any header size: it may hide an object array.
                severity=Severity.HIGH if big else Severity.MEDIUM,
            )
            return
        raw = src.read(hstart, hlen)
        header = self._parse(raw, major)
        if header is None:
            ctx.report(
                MALFORMED,
                "The .npy header is not a valid array description.",
                evidence=raw[:80].decode("latin-1"),
            )
            return
        descr, shape, fortran = header
        ctx.metadata["dtype"] = descr if isinstance(descr, str) else repr(descr)[:500]
        ctx.metadata["shape"] = list(shape)[:64]
        ctx.metadata["fortran_order"] = fortran
        data = hstart + hlen
        if _has_object(descr):
            # numpy unpickles object arrays before it looks at the shape.
            ctx.metadata["object_array"] = True
            analyze_pickles(src.buffer(), ctx, start=data, location="array data")
            return
        if not all(0 <= d < 1 << 62 for d in shape) or len(shape) > 64:
            ctx.report(
                MALFORMED, "The .npy shape is invalid.", evidence=f"shape {list(shape)[:64]}"
            )
            return
        size = _itemsize(descr)
        if size is None:
            return
        count = 1
        for dim in shape:
            count *= dim
        if data + count * size > src.size:
            ctx.report(
                MALFORMED,
                f"The array needs {count * size} bytes of data but the file holds "
                f"{src.size - data}.",
                evidence=f"shape {list(shape)}",
                severity=Severity.LOW,
            )

    @staticmethod
    def _parse(raw: bytes, major: int) -> tuple[Any, tuple[int, ...], bool] | None:
        try:
            text = raw.decode("utf-8" if major >= 3 else "latin-1").strip()
            try:
                value = ast.literal_eval(text)
            except SyntaxError:  # Python 2 wrote shapes as (2L,): numpy drops the L, as here
                value = ast.literal_eval(_PY2_LONG.sub(r"\1", text))
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            return None
        if not isinstance(value, dict) or set(value) != {"descr", "fortran_order", "shape"}:
            return None
        shape = value["shape"]
        fortran = value["fortran_order"]
        # numpy's own check: a tuple of ints (bools and negatives pass it).
        if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
            return None
        if not isinstance(fortran, bool):
            return None
        return value["descr"], shape, fortran
