"""Shared by the container detectors: archive rules, bounded decompression, member path checks.

Decompression is streaming and bounded by :class:`~modelward.scan.context.Limits`: a member stops
at ``max_member_size``, the whole file at ``max_total_uncompressed``, and output that outgrows its
input by more than ``max_ratio`` past 1 MiB is a bomb. Output stays in memory up to
:data:`SPILL_AT` and then goes to a temporary folder that the caller's ``ExitStack`` removes.
"""

from __future__ import annotations

import bz2
import contextlib
import lzma
import os
import re
import struct
import tempfile
import zlib
from dataclasses import dataclass
from typing import Any

from modelward.models import Severity
from modelward.scan.context import ScanContext
from modelward.scan.rules import SCAN_LIMIT, rule
from modelward.scan.source import BytesSource, FileSource, Source

MALFORMED = rule(
    "archive.malformed",
    Severity.MEDIUM,
    "The container's structure is damaged or crafted in a way strict readers reject",
    "Do not load it; a lenient loader may read other content than a scanner. Re-download it from "
    "a trusted source.",
)
CRC_MISMATCH = rule(
    "archive.crc-mismatch",
    Severity.LOW,
    "A member's checksum does not match its content",
    "The file is corrupt or was edited after packing; lenient loaders still read it. Re-download "
    "it from a trusted source.",
)
HEADER_MISMATCH = rule(
    "archive.header-mismatch",
    Severity.MEDIUM,
    "Two headers of one member disagree (name, method, size or flag bits)",
    "Readers that trust different headers see different members: do not load the file.",
)
DUPLICATE = rule(
    "archive.duplicate-name",
    Severity.HIGH,
    "Two members have the same name",
    "Readers disagree on which copy they load; do not load the file.",
)
PREFIX_DATA = rule(
    "archive.prefix-data",
    Severity.LOW,
    "Data precedes the archive (a polyglot or self-extracting file)",
    "Find out what the leading bytes are; load the archive only from a trusted source.",
)
TRAVERSAL = rule(
    "archive.path-traversal",
    Severity.CRITICAL,
    "A member path is absolute or climbs out of the extraction folder",
    "Never extract this archive; it would write outside its folder.",
)
LINK = rule(
    "archive.link",
    Severity.MEDIUM,
    "A member is a symbolic or hard link",
    "Extracting links lets later members write through them; never extract it outside a sandbox.",
)
SPECIAL = rule(
    "archive.special-file",
    Severity.MEDIUM,
    "A member is a device, FIFO or other special file",
    "Model archives have no reason to carry special files; do not extract it.",
)
ENCRYPTED = rule(
    "archive.encrypted",
    Severity.MEDIUM,
    "A member is encrypted and could not be scanned",
    "Scan the decrypted content, or obtain an unencrypted copy from a trusted source.",
)
BOMB = rule(
    "archive.bomb",
    Severity.MEDIUM,
    "A member decompresses far beyond its size (a decompression bomb); the rest was not read",
    "Do not unpack it; obtain the model from a trusted source.",
)
TRAILING = rule(
    "archive.trailing-data",
    Severity.LOW,
    "Bytes follow the end of the compressed stream",
    "Check where the extra bytes come from; some readers ignore them, others do not.",
)

SPILL_AT = 32 << 20
"""Decompressed output past this size is written to a temporary file instead of memory."""
RATIO_FLOOR = 1 << 20
_IN_CHUNK = 64 << 10
_OUT_CHUNK = 1 << 20

_LZMA_KINDS = frozenset({"xz", "lzma-alone", "lzma-auto"})
_ZERO_SKIP_MAX = 64 << 20
"""Zero padding skipped between gzip members (``gzip.GzipFile`` skips any amount)."""


def next_stream(kind: str, comp: Source, at: int) -> int:
    """Where the stream that follows a finished one starts, or -1: what the standard readers
    do after the end of a stream. ``gzip.GzipFile`` (``gzip.open``, ``pandas.read_pickle``)
    skips zero padding and reads the next member; ``bz2.BZ2File`` reads the next ``BZh`` stream;
    ``lzma.LZMAFile`` (``joblib`` for ``.xz`` and ``.lzma``) tries *any* xz or lzma-alone
    stream (the caller treats an error on its first bytes as trailing data, as LZMAFile does)."""
    if at >= comp.size:
        return -1
    if kind == "gzip":
        pos = at
        while pos < comp.size and pos - at < _ZERO_SKIP_MAX:
            chunk = comp.read(pos, _IN_CHUNK)
            stripped = chunk.lstrip(b"\x00")
            pos += len(chunk) - len(stripped)
            if stripped:
                break
        return pos if comp.read(pos, 2) == b"\x1f\x8b" else -1
    if kind == "bz2":
        return at if comp.read(at, 3) == b"BZh" else -1
    if kind in _LZMA_KINDS:
        return at
    return -1


@dataclass(slots=True)
class Unpacked:
    """The decompressed content of a member (possibly partial)."""

    source: Source
    complete: bool
    """The compressed stream reached its end and every byte of output was kept."""
    error: str | None = None
    crc: int = 0
    trailing: int = 0
    stopped: str | None = None
    """``bomb``, ``member-limit`` or ``total-limit`` when a bound cut the output short."""


def _decompressor(kind: str, props: bytes = b"") -> Any:
    if kind == "deflate":
        return zlib.decompressobj(-15)
    if kind == "zlib":
        return zlib.decompressobj(15)
    if kind == "gzip":
        return zlib.decompressobj(31)
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ)
    if kind == "lzma-alone":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE)
    if kind == "lzma-auto":  # what lzma.LZMAFile (and so joblib) uses for every later stream
        return lzma.LZMADecompressor(lzma.FORMAT_AUTO)
    if kind == "zip-lzma":  # zip method 14: raw LZMA1 with the properties in a 4+5 byte header
        decode = getattr(lzma, "_decode_filter_properties", None)
        if decode is None:
            raise lzma.LZMAError("lzma properties decoder unavailable")
        filt = decode(lzma.FILTER_LZMA1, props)
        return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
    raise ValueError(kind)


class _Sink:
    """Collects output in memory, then in a temporary file once it passes SPILL_AT."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.buf = bytearray()
        self.size = 0
        self.crc = 0
        self._stack = stack
        self._file: Any = None
        self._path = ""

    def write(self, data: bytes) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        if self._file is None and len(self.buf) + len(data) > SPILL_AT:
            folder = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="modelward-"))
            self._path = os.path.join(folder, "member")
            self._file = self._stack.enter_context(open(self._path, "wb"))  # noqa: SIM115
            self._file.write(self.buf)
            self.buf = bytearray()
        if self._file is not None:
            self._file.write(data)
        else:
            self.buf += data

    def source(self) -> Source:
        if self._file is None:
            return BytesSource(self.buf)
        self._file.close()
        return self._stack.enter_context(FileSource(self._path))


def decompress(
    ctx: ScanContext,
    comp: Source,
    kind: str,
    stack: contextlib.ExitStack,
    *,
    name: str = "",
    location: str = "",
) -> Unpacked:
    """Decompress ``comp`` within the context's limits; findings for bombs and limits go to ``ctx``."""
    limits = ctx.limits
    props = b""
    start = 0
    if kind == "zip-lzma":
        head = comp.read(0, 4)
        plen = struct.unpack("<H", head[2:4])[0] if len(head) == 4 else 0
        props = comp.read(4, plen)
        start = 4 + plen
    sink = _Sink(stack)
    try:
        dec = _decompressor(kind, props)
    except (lzma.LZMAError, ValueError) as exc:
        return Unpacked(sink.source(), False, error=str(exc))
    is_zlib = kind in ("deflate", "zlib", "gzip")
    pos = start
    pending = b""
    error: str | None = None
    stopped: str | None = None
    trailing = 0
    ended = False
    fresh = False  # a later lzma stream whose first bytes have not been decoded yet
    stream_at = start
    while True:
        want = min(_OUT_CHUNK, limits.max_member_size - sink.size)
        if want <= 0:
            stopped = "member-limit"
            break
        try:
            if is_zlib:
                if not pending:
                    pending = comp.read(pos, _IN_CHUNK)
                    pos += len(pending)
                    if not pending:
                        break
                out = dec.decompress(pending, want)
                pending = dec.unconsumed_tail
            else:
                chunk = b""
                if dec.needs_input:
                    chunk = comp.read(pos, _IN_CHUNK)
                    pos += len(chunk)
                    if not chunk:
                        break
                out = dec.decompress(chunk, want)
        except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
            if fresh:  # LZMAFile ignores a following "stream" that fails at once
                trailing = max(0, comp.size - stream_at)
                ended = True
                break
            error = str(exc) or type(exc).__name__
            break
        fresh = False
        if out:
            sink.write(out)
            if not ctx.take_uncompressed(len(out)):
                stopped = "total-limit"
                break
            used = max(1, pos - len(pending) - start)
            if sink.size > RATIO_FLOOR and sink.size > limits.max_ratio * used:
                stopped = "bomb"
                break
        if dec.eof:
            rest_at = pos - len(dec.unused_data) - (len(pending) if is_zlib else 0)
            nxt = next_stream(kind, comp, rest_at)
            if nxt > stream_at:  # concatenated streams, read on as the standard readers do
                kind = "lzma-auto" if kind in _LZMA_KINDS else kind
                dec = _decompressor(kind)
                fresh = kind == "lzma-auto"
                pending = b""
                pos = stream_at = nxt
                continue
            trailing = max(0, comp.size - rest_at)
            ended = True
            break
    if stopped == "bomb":
        ctx.report(
            BOMB,
            f"Member decompresses more than {limits.max_ratio:g} times its compressed size; "
            f"stopped after {sink.size} bytes.",
            evidence=name or kind,
            location=location,
        )
    elif stopped == "member-limit":
        ctx.report(
            SCAN_LIMIT,
            f"Member is larger than the scanner's limit of {limits.max_member_size} bytes; "
            "only its beginning was analysed.",
            evidence=name or kind,
            location=location,
        )
    elif stopped == "total-limit":
        ctx.report(
            SCAN_LIMIT,
            "The file's total decompressed size exceeds the scanner's limit; the rest was not read.",
            evidence=f"{limits.max_total_uncompressed} bytes",
            location=location,
        )
    if error is None and stopped is None and not ended:
        error = "compressed data ends before the end of the stream"
    return Unpacked(
        sink.source(),
        ended and stopped is None and error is None,
        error=error,
        crc=sink.crc,
        trailing=trailing,
        stopped=stopped,
    )


# ---------------------------------------------------------------------- member paths
_DRIVE = re.compile(r"^[A-Za-z]:")


def _norm(path: str) -> str:
    return path.replace("\\", "/")


def escapes(path: str, base: str = "") -> bool:
    """Whether ``path`` (relative to the folder of member ``base``) leaves the extraction root."""
    p = _norm(path)
    if p.startswith("/") or _DRIVE.match(p):
        return True
    depth = len([x for x in _norm(base).split("/")[:-1] if x not in ("", ".")])
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        else:
            depth += 1
    return False


def check_path(ctx: ScanContext, name: str) -> None:
    """Report a member name that is absolute, climbs with ``..`` or carries a NUL byte."""
    p = _norm(name)
    if p.startswith("/") or _DRIVE.match(p):
        ctx.report(
            TRAVERSAL,
            "Member path is absolute: extracting it writes outside the target folder.",
            evidence=name,
        )
    elif escapes(p):
        ctx.report(
            TRAVERSAL,
            "Member path climbs out of the extraction folder with '..'.",
            evidence=name,
        )
    elif ".." in p.split("/"):
        ctx.report(
            TRAVERSAL,
            "Member path contains '..' (it stays inside the folder, but readers normalise it "
            "differently).",
            evidence=name,
            severity=Severity.HIGH,
        )
    if "\x00" in name:
        ctx.report(
            HEADER_MISMATCH,
            "Member name contains a NUL byte: readers that stop at it see another name.",
            evidence=repr(name),
            severity=Severity.HIGH,
        )


def check_link(ctx: ScanContext, name: str, target: str, *, hard: bool = False) -> None:
    """Report a link member; critical when its target leaves the extraction folder."""
    kind = "hard link" if hard else "symbolic link"
    base = "" if hard else name  # hard link targets are archive paths, symlinks are relative
    if escapes(target, base):
        ctx.report(
            LINK,
            f"Member is a {kind} to a path outside the extraction folder.",
            evidence=f"{name} -> {target}",
            severity=Severity.CRITICAL,
        )
    else:
        ctx.report(LINK, f"Member is a {kind}.", evidence=f"{name} -> {target}")
