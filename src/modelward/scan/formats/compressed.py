"""Compression wrappers (gzip, bz2, xz, lzma-alone, zlib and joblib's ``ZF`` files) around any format.

The stream is decompressed with bounds (:func:`modelward.scan.members.decompress`) and the output
is identified by content and scanned. A compressed pickle is what ``joblib.dump(..., compress=)``
writes, so the file's format becomes ``joblib`` when the inner content is a pickle; otherwise it is
the inner format. ``metadata["compression"]`` names the wrapper. A stream that breaks after some
output is analysed as far as it goes and reported, since a loader executes a pickle opcode by
opcode before it notices the break.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import re
import zlib
from collections.abc import Callable
from typing import Any

from modelward.models import Severity
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.formats import pytorch
from modelward.scan.members import MALFORMED, TRAILING, decompress
from modelward.scan.source import Source

_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".lzma", ".z", ".zlib", ".tgz")
_PICKLE_LIKE = frozenset({"pickle", "joblib"})
_ZF = re.compile(rb"^ZF0x[0-9a-fA-F]{1,17} *")
_ZLIB_SECOND = frozenset(b"\x01\x5e\x9c\xda")
ZF_HEADER = 2 + 19
"""joblib's legacy ``ZF`` header: the prefix and the hex length padded to 19 characters."""


def _inner_name(ctx: ScanContext) -> str:
    base = os.path.basename(ctx.prefix or ctx.path) or "content"
    stem, ext = os.path.splitext(base)
    if ext.lower() == ".tgz":
        return stem + ".tar"
    if ext.lower() in _SUFFIXES:
        return stem
    return base


def unwrap(src: Source, ctx: ScanContext, kind: str, *, start: int = 0) -> None:
    """Decompress ``src[start:]`` as ``kind`` and scan the output as a nested member."""
    ctx.metadata["compression"] = kind
    with contextlib.ExitStack() as stack:
        un = decompress(ctx, src.slice(start, src.size - start), kind, stack)
        name = _inner_name(ctx)
        produced = un.source.size
        fmt = pytorch.scan_member(ctx, un.source, name) if produced else "unknown"
    ctx.metadata["compression"] = kind
    ctx.metadata["uncompressed_size"] = produced
    ctx.metadata["inner_format"] = fmt
    ctx.format = "joblib" if fmt in _PICKLE_LIKE else (fmt if fmt != "unknown" else kind)
    if un.error is not None:
        hides = fmt in _PICKLE_LIKE or fmt.startswith("pytorch")
        ctx.report(
            MALFORMED,
            f"The {kind} stream is corrupt after {produced} bytes of output; that output was "
            "analysed"
            + (
                " (a broken stream around a pickle evades scanners that give up)." if hides else "."
            ),
            evidence=un.error[:200],
            severity=Severity.HIGH if hides else None,
        )
    if un.trailing:
        ctx.report(
            TRAILING,
            f"{un.trailing} bytes follow the end of the {kind} stream.",
            evidence=f"{un.trailing} bytes",
        )


def _trial(head: bytes, make: Callable[[], Any]) -> bool:
    """Whether the head decompresses to something without error (for weak 2-3 byte magics)."""
    try:
        dec = make()
        out: bytes = dec.decompress(head, 64)
    except (zlib.error, lzma.LZMAError, ValueError, EOFError):
        return False
    return bool(out) or bool(getattr(dec, "eof", False))


@register
class Gzip(Detector):
    format = "gzip"
    extensions = (".gz", ".tgz")
    priority = 20

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:3] == b"\x1f\x8b\x08"

    def scan(self, src: Source, ctx: ScanContext) -> None:
        unwrap(src, ctx, "gzip")


@register
class Bzip2(Detector):
    format = "bz2"
    extensions = (".bz2",)
    priority = 20

    def matches(self, head: bytes, src: Source) -> bool:
        return (
            len(head) >= 10
            and head[:3] == b"BZh"
            and 0x31 <= head[3] <= 0x39
            and (head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"))
        )

    def scan(self, src: Source, ctx: ScanContext) -> None:
        unwrap(src, ctx, "bz2")


@register
class Xz(Detector):
    format = "xz"
    extensions = (".xz",)
    priority = 20

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:6] == b"\xfd7zXZ\x00"

    def scan(self, src: Source, ctx: ScanContext) -> None:
        unwrap(src, ctx, "xz")


@register
class JoblibZFile(Detector):
    """joblib < 0.10 ``ZF`` files: ``ZF`` + hex length padded to 19 characters + zlib data."""

    format = "joblib"
    priority = 20

    def matches(self, head: bytes, src: Source) -> bool:
        return bool(_ZF.match(head[:40]))

    def scan(self, src: Source, ctx: ScanContext) -> None:
        start = ZF_HEADER + (1 if src.read(ZF_HEADER, 1) == b" " else 0)
        unwrap(src, ctx, "zlib", start=start)
        ctx.metadata["compression"] = "joblib-zfile"


@register
class LzmaAlone(Detector):
    """The legacy ``.lzma`` container (joblib ``compress='lzma'``): weak magic, so trial-decoded."""

    format = "lzma"
    extensions = (".lzma",)
    priority = 150

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:3] == b"\x5d\x00\x00" and _trial(
            head, lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE)
        )

    def scan(self, src: Source, ctx: ScanContext) -> None:
        unwrap(src, ctx, "lzma-alone")


@register
class Zlib(Detector):
    """A bare zlib stream (joblib ``compress=N`` default): two-byte magic, so trial-decoded."""

    format = "zlib"
    extensions = (".z", ".zlib")
    priority = 150

    def matches(self, head: bytes, src: Source) -> bool:
        return (
            len(head) >= 2
            and head[0] == 0x78
            and head[1] in _ZLIB_SECOND
            and _trial(head, lambda: zlib.decompressobj(15))
        )

    def scan(self, src: Source, ctx: ScanContext) -> None:
        unwrap(src, ctx, "zlib")
