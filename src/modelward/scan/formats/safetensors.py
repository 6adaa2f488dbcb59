"""safetensors files: the JSON header validated the way the reference loader does, data never read.

Layout: an 8-byte little-endian header length ``N``, ``N`` bytes of JSON, then the tensor data.
The reference loader rejects a header longer than the file, invalid JSON, unknown dtypes, and
offsets that are not contiguous, in bounds and exactly ``shape x itemsize``; a scanner must report
the same so that a file it calls clean is one the loader reads as the scanner did.

Findings (all medium: a structural problem the reference loader rejects but a lenient one may not):
``safetensors.malformed``, ``safetensors.header-out-of-bounds``, ``safetensors.duplicate-key``,
``safetensors.unknown-dtype``, ``safetensors.bad-offsets``.
"""

from __future__ import annotations

import json
from typing import Any

from modelward.models import Severity
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.rules import SCAN_LIMIT, rule
from modelward.scan.source import Source

MALFORMED = rule(
    "safetensors.malformed",
    Severity.MEDIUM,
    "safetensors header is not valid (bad JSON, wrong types, missing fields)",
    "Do not load the file with a lenient reader; obtain the model again from a trusted source.",
)
OUT_OF_BOUNDS = rule(
    "safetensors.header-out-of-bounds",
    Severity.MEDIUM,
    "safetensors header is declared larger than the file (or than 100 MB)",
    "The file is truncated or crafted; re-download it and verify its hash.",
)
DUP_KEY = rule(
    "safetensors.duplicate-key",
    Severity.MEDIUM,
    "safetensors header names a key twice (readers disagree on which entry wins)",
    "Do not trust the file; obtain the model from a trusted source.",
)
UNKNOWN_DTYPE = rule(
    "safetensors.unknown-dtype",
    Severity.MEDIUM,
    "safetensors tensor has a dtype the format does not define",
    "The reference loader rejects the file; obtain the model from a trusted source.",
)
BAD_OFFSETS = rule(
    "safetensors.bad-offsets",
    Severity.MEDIUM,
    "safetensors tensor offsets are out of bounds, overlapping, gapped or do not match the shape",
    "A lenient reader may read other tensors' or foreign bytes; obtain the model again.",
)

MAX_HEADER = 100_000_000  # the reference implementation's limit
MAX_PARSED = 32 << 20  # larger headers are reported, not parsed (memory bound)
MAX_METADATA_KEYS = 64
MAX_METADATA_VALUE = 1024
MAX_RANK = 64

# dtype -> bits per element (safetensors 0.6: sub-byte F4/F6 and the F8 variants included).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}


class _Duplicate(Exception):
    pass


def _header_length(head: bytes) -> int | None:
    if len(head) < 9:
        return None
    return int.from_bytes(head[:8], "little")


@register
class SafetensorsDetector(Detector):
    format = "safetensors"
    extensions = (".safetensors",)
    priority = 20

    def matches(self, head: bytes, src: Source) -> bool:
        n = _header_length(head)
        if n is None or n < 2 or n > MAX_HEADER:
            return False
        body = head[8 : 8 + min(n, 64)].lstrip(b" \t\r\n")
        if n + 8 <= src.size:
            return body.startswith(b"{")
        return body.startswith((b'{"', b"{}"))  # truncated: only a very JSON-like start

    def scan(self, src: Source, ctx: ScanContext) -> None:
        head = src.read(0, 8)
        if len(head) < 8:
            ctx.report(MALFORMED, "File is shorter than the 8-byte header length.")
            return
        n = int.from_bytes(head, "little")
        ctx.metadata["header_size"] = n
        if n > MAX_HEADER or n + 8 > src.size:
            ctx.report(
                OUT_OF_BOUNDS,
                f"Header length {n:,} exceeds "
                + ("the 100 MB limit." if n > MAX_HEADER else f"the file ({src.size:,} bytes)."),
                evidence=f"header length {n}",
                location="byte 0",
            )
            return
        if n > MAX_PARSED:
            ctx.report(
                SCAN_LIMIT,
                f"Header of {n:,} bytes is larger than the {MAX_PARSED:,} analysed.",
                evidence=f"header length {n}",
            )
            return
        raw = src.read(8, n)
        header = self.parse(raw, ctx)
        if header is None:
            return
        self.check(header, src.size - 8 - n, ctx)

    # ------------------------------------------------------------------ JSON
    def parse(self, raw: bytes, ctx: ScanContext) -> dict[str, Any] | None:
        if not raw.lstrip(b" ").startswith(b"{"):
            ctx.report(
                MALFORMED,
                "Header does not start with '{'.",
                evidence=raw[:40].hex(),
                location="byte 8",
            )
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            ctx.report(
                MALFORMED,
                "Header is not UTF-8.",
                evidence=str(exc)[:200],
                location=f"byte {8 + exc.start}",
            )
            return None
        dupes: list[str] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, v in items:
                if k in out:
                    dupes.append(k)
                out[k] = v
            return out

        def bad_constant(name: str) -> Any:
            raise ValueError(f"non-standard JSON constant {name}")

        try:
            value = json.loads(text, object_pairs_hook=pairs, parse_constant=bad_constant)
        except RecursionError:
            ctx.report(MALFORMED, "Header JSON is nested too deeply.", location="byte 8")
            return None
        except ValueError as exc:
            ctx.report(
                MALFORMED,
                f"Header is not valid JSON: {exc}.",
                evidence=str(exc)[:200],
                location="byte 8",
            )
            return None
        for key in dupes[:20]:
            ctx.report(
                DUP_KEY,
                f"Header names {key!r} more than once; readers may keep different entries.",
                evidence=key[:200],
            )
        if not isinstance(value, dict):
            ctx.report(
                MALFORMED,
                f"Header is a JSON {type(value).__name__}, not an object.",
                location="byte 8",
            )
            return None
        return value

    # ------------------------------------------------------------------ entries
    def check(self, header: dict[str, Any], data_size: int, ctx: ScanContext) -> None:
        meta = header.get("__metadata__")
        if "__metadata__" in header:
            self.check_metadata(meta, ctx)
        spans: list[tuple[int, int, str]] = []
        dtypes: dict[str, int] = {}
        parameters = 0
        count = 0
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            count += 1
            info = self.entry(name, entry, ctx)
            if info is None:
                continue
            dtype, elems, begin, end = info
            dtypes[dtype] = dtypes.get(dtype, 0) + 1
            parameters += elems
            bits = DTYPE_BITS.get(dtype)
            if bits is None:
                ctx.report(
                    UNKNOWN_DTYPE,
                    f"Tensor {name!r} has dtype {dtype!r}, which safetensors does not define.",
                    evidence=f"{name}: {dtype}"[:200],
                )
            elif (elems * bits) % 8 or (elems * bits) // 8 != end - begin:
                ctx.report(
                    BAD_OFFSETS,
                    f"Tensor {name!r} occupies {end - begin} bytes but its shape and dtype need "
                    f"{elems * bits / 8:g}.",
                    evidence=f"{name}: [{begin}, {end}) {dtype} x {elems}"[:200],
                )
            spans.append((begin, end, name))
        ctx.metadata["tensor_count"] = count
        ctx.metadata["dtypes"] = dict(sorted(dtypes.items()))
        ctx.metadata["parameters"] = parameters
        self.check_spans(spans, data_size, ctx)

    def entry(self, name: str, entry: Any, ctx: ScanContext) -> tuple[str, int, int, int] | None:
        def bad(why: str) -> None:
            ctx.report(
                MALFORMED,
                f"Tensor entry {name!r} is invalid: {why}.",
                evidence=f"{name}: {json.dumps(entry)[:150]}"[:200],
            )

        if not isinstance(entry, dict):
            bad("not an object")
            return None
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str):
            bad("missing or non-string dtype")
            return None
        if not isinstance(shape, list) or len(shape) > MAX_RANK:
            bad("missing shape or more than 64 dimensions")
            return None
        if not all(_is_uint(d) for d in shape):
            bad("shape holds something other than non-negative integers")
            return None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_uint, offsets))):
            bad("data_offsets is not a pair of non-negative integers")
            return None
        begin, end = offsets
        if end < begin:
            bad(f"data_offsets end {end} is before begin {begin}")
            return None
        elems = 1
        for d in shape:
            elems *= d
            if elems >= 1 << 64:
                bad("element count overflows 64 bits")
                return None
        return dtype, elems, begin, end

    def check_metadata(self, meta: Any, ctx: ScanContext) -> None:
        if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            ctx.report(
                MALFORMED,
                "__metadata__ must map strings to strings.",
                evidence=json.dumps(meta)[:200],
            )
            return
        shown: dict[str, str] = {}
        for k, v in list(meta.items())[:MAX_METADATA_KEYS]:
            shown[k[:200]] = v if len(v) <= MAX_METADATA_VALUE else v[:MAX_METADATA_VALUE] + "..."
        ctx.metadata["metadata"] = shown
        if len(meta) > MAX_METADATA_KEYS:
            ctx.metadata["metadata_keys"] = len(meta)

    def check_spans(
        self, spans: list[tuple[int, int, str]], data_size: int, ctx: ScanContext
    ) -> None:
        spans.sort()
        expected = 0
        reported = 0
        for begin, end, name in spans:
            problem = None
            if end > data_size:
                problem = f"tensor {name!r} data [{begin}, {end}) ends past the file's {data_size} data bytes"
            elif begin < expected:
                problem = f"tensor {name!r} data [{begin}, {end}) overlaps another tensor"
            elif begin > expected:
                problem = f"{begin - expected} unused bytes before tensor {name!r} (a gap)"
            if problem is not None:
                ctx.report(BAD_OFFSETS, f"Data offsets: {problem}.", evidence=problem[:200])
                reported += 1
                if reported >= 20:
                    return
            expected = max(expected, end)
        if expected < data_size and not reported:
            ctx.report(
                BAD_OFFSETS,
                f"{data_size - expected} bytes after the last tensor are not covered by any tensor.",
                evidence=f"data section {data_size} bytes, tensors end at {expected}",
            )


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
