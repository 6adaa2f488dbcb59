"""Zip containers and what lives in them: PyTorch checkpoints, TorchScript, Keras v3, npz, llamafile.

The zip is read with the lenient reader of :mod:`modelward.scan.zipread` (so the scanner sees the
members PyTorch's loader sees), members are bounded by the context's limits, stored members are
zero-copy slices, and each member is analysed by what it is: torch pickles directly, storage bytes
only sniffed, TorchScript code searched for host access, anything else identified by content.
Tar and 7z live in :mod:`modelward.scan.formats.containers`.
"""

from __future__ import annotations

import contextlib
import importlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelward.models import Severity
from modelward.scan import zipread
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.formats import pytorch
from modelward.scan.masquerade import PICKLE_FAMILY
from modelward.scan.members import (
    CRC_MISMATCH,
    DUPLICATE,
    ENCRYPTED,
    HEADER_MISMATCH,
    MALFORMED,
    PREFIX_DATA,
    Unpacked,
    check_link,
    check_path,
    decompress,
)
from modelward.scan.pickle import looks_like_pickle
from modelward.scan.rules import SCAN_LIMIT, Rule
from modelward.scan.source import Source

MEMBER_LIST_CAP = 200
_CRC_STORED_MAX = 16 << 20
_METHODS = {8: "deflate", 12: "bz2", 14: "zip-lzma"}
_EXE_HEADS = (b"MZqFpD", b"\x7fELF", b"#!", b"MZ")
_ANOMALY_RULES: dict[str, Rule] = {
    "malformed": MALFORMED,
    "header-mismatch": HEADER_MISMATCH,
    "flag-bits": HEADER_MISMATCH,
    "duplicate-name": DUPLICATE,
    "crc-mismatch": CRC_MISMATCH,
    "limit": SCAN_LIMIT,
}
_PICKLE_FORMATS = PICKLE_FAMILY - {"zip", "numpy"}
_EVASIONS = frozenset({"hidden-member", "two-directories"})
"""Anomalies that only a crafted archive has: readers that find the directory differently load
different members (high whatever the members hold)."""
_LOADED_FIRST = (".pkl", ".npy", "config.json")
_OBJECT_NPY = b"'descr': '|O'"
_LOADER_KINDS = frozenset({"pytorch-zip", "torchscript", "numpy-npz", "keras-v3"})


def _load_order(e: zipread.ZipEntry) -> int:
    """Members that loaders open by name come first, so no bound (member count, total size)
    is spent on decoys before them."""
    return 0 if e.name.lower().endswith(_LOADED_FIRST) else 1


def classify(names: list[str]) -> str:
    """The format a zip's member names say it is."""
    if any(n.endswith("constants.pkl") for n in names) and any(
        "/code/" in f"/{n}" and n.endswith(".py") for n in names
    ):
        return "torchscript"
    if any(n.rsplit("/", 1)[-1] == "data.pkl" for n in names):
        return "pytorch-zip"
    root = set(names)
    if "config.json" in root and ("metadata.json" in root or "model.weights.h5" in root):
        return "keras-v3"
    if names and all(n.endswith(".npy") for n in names):
        return "numpy-npz"
    return "zip"


def _keras_shaped(content: Source) -> bool:
    """A root ``config.json`` that holds serialised Keras objects (``"class_name"`` keys)."""
    return content.size <= _KERAS_CONFIG_MAX and b'"class_name"' in content.read(0, content.size)


_KERAS_CONFIG_MAX = 64 << 20


@dataclass(slots=True)
class _Walk:
    src: Source
    ctx: ScanContext
    kind: str
    stack: contextlib.ExitStack
    anomalies: list[zipread.Anomaly] = field(default_factory=list)
    pickle_members: set[str] = field(default_factory=set)
    code_members: list[str] = field(default_factory=list)
    listing: list[dict[str, Any]] = field(default_factory=list)
    out_of_members: bool = False

    # ------------------------------------------------------------------ content
    def content(self, e: zipread.ZipEntry) -> Unpacked | None:
        comp = self.src.slice(e.data_offset, e.csize)
        if e.method == 0:
            return Unpacked(comp, True)
        kind = _METHODS.get(e.method)
        if kind is None:
            # High when a loader opens the member (Python 3.14's zipfile reads zstd, method 93).
            loaded = _load_order(e) == 0 or self.kind in _LOADER_KINDS
            self.ctx.report(
                SCAN_LIMIT,
                f"Member uses compression method {e.method}, which the scanner does not read.",
                evidence=e.name,
                severity=Severity.HIGH if loaded else None,
            )
            return None
        return decompress(self.ctx, comp, kind, self.stack, name=e.name, location=e.name)

    def check_crc(self, e: zipread.ZipEntry, un: Unpacked, pickle_like: bool) -> None:
        if not un.complete:
            return
        if e.method == 0:
            if un.source.size > _CRC_STORED_MAX and not pickle_like:
                return  # large raw storage: never interpreted, not worth reading for its CRC
            crc = zlib.crc32(un.source.buffer())
        else:
            crc = un.crc
        if crc != e.crc:
            self.anomalies.append(
                zipread.Anomaly(
                    "crc-mismatch",
                    "The member's CRC-32 does not match its content; strict readers refuse it, "
                    "PyTorch's reader does not.",
                    f"declared {e.crc:08x}, actual {crc:08x}",
                    e.name,
                )
            )

    # ------------------------------------------------------------------ members
    def member(self, e: zipread.ZipEntry) -> None:
        ctx = self.ctx
        if not ctx.take_member():
            if not self.out_of_members:
                self.out_of_members = True
                ctx.report(
                    SCAN_LIMIT,
                    "The archive has more members than the scanner opens; the rest were skipped.",
                    evidence=f"{ctx.limits.max_members} members",
                )
            return
        check_path(ctx, e.name)
        if e.local_name and e.local_name != e.name:
            check_path(ctx, e.local_name)
        if e.is_dir or e.data_offset < 0:
            return
        if e.is_symlink:
            target = self.src.read(e.data_offset, min(e.csize, 4096)) if e.method == 0 else b""
            check_link(ctx, e.name, target.decode("utf-8", "replace") or "?")
            return
        un = self.content(e)
        if un is None:
            return
        head = un.source.read(0, 4096)
        if un.error is not None and not e.encrypted:
            self.anomalies.append(
                zipread.Anomaly(
                    "malformed",
                    "The member's compressed data is corrupt; what decompressed was analysed.",
                    un.error,
                    e.name,
                )
            )
        if e.encrypted and not looks_like_pickle(head):
            # Still analysed: a reader that ignores the flag bit reads the bytes as they are.
            ctx.report(
                ENCRYPTED,
                "Member is flagged as encrypted; its bytes were analysed as stored.",
                evidence=e.name,
            )
        fmt = self.analyse(e, un.source, head)
        if fmt in _PICKLE_FORMATS:
            self.pickle_members.add(e.name)
        if un.stopped and (fmt in _PICKLE_FORMATS or (fmt == "numpy" and _OBJECT_NPY in head)):
            # A bound (member size, total size, ratio) cut a pickle short: what follows the cut
            # runs on load unseen. Decoys can spend the total budget before it.
            ctx.report(
                SCAN_LIMIT,
                "A pickle member was analysed only up to a scanner bound; the rest of it runs "
                "on load unseen.",
                evidence=e.name,
                severity=Severity.HIGH,
            )
        if fmt != "storage":  # raw tensor bytes are never interpreted: not worth reading
            self.check_crc(e, un, e.name in self.pickle_members or looks_like_pickle(head))
        if len(self.listing) < MEMBER_LIST_CAP:
            self.listing.append({"name": e.name, "size": e.usize, "format": fmt})

    def analyse(self, e: zipread.ZipEntry, content: Source, head: bytes) -> str:
        ctx, name = self.ctx, e.name
        if self.kind in ("pytorch-zip", "torchscript"):
            pickle_like = looks_like_pickle(head)
            if pytorch.is_storage_member(name):
                hit = pytorch.sniff_storage(head, content.buffer, ctx, name)
                return "pickle" if hit else "storage"
            if name.endswith("pkl") or pickle_like:
                pytorch.analyze_member_pickle(
                    content.buffer(), ctx, name, torchscript=self.kind == "torchscript"
                )
                return "pickle"
            if content.size <= 64 and pytorch.record_text_member(ctx, name, content.read(0, 64)):
                return "text"
            if self.kind == "torchscript" and "/code/" in f"/{name}" and name.endswith(".py"):
                text = bytes(content.buffer()[: 16 << 20]).decode("utf-8", "replace")
                pytorch.check_torchscript_code(ctx.child(name), name, text)
                self.code_members.append(name)
                return "torchscript-code"
        if name == "config.json" and (self.kind == "keras-v3" or _keras_shaped(content)):
            if self.kind == "zip":  # keras.saving.load_model needs nothing but config.json
                self.kind = ctx.format = "keras-v3"
            self.keras_config(content)
            return "keras-config"
        return pytorch.scan_member(ctx, content, name)

    def keras_config(self, content: Source) -> None:
        try:
            mod = importlib.import_module("modelward.scan.formats.keras")
            fn: Callable[..., object] = mod.analyze_keras_config
        except (ImportError, AttributeError):
            return
        data = bytes(content.buffer()[: 64 << 20])
        meta = fn(data, self.ctx, "config.json")
        if isinstance(meta, dict):
            for key, value in meta.items():
                self.ctx.metadata.setdefault(str(key), value)

    # ------------------------------------------------------------------ reporting
    def report_anomalies(self) -> None:
        for a in self.anomalies:
            r = _ANOMALY_RULES.get(a.kind, MALFORMED)
            hides = a.member in self.pickle_members or (not a.member and bool(self.pickle_members))
            severity = (
                Severity.HIGH
                if (hides or a.kind in _EVASIONS) and r.severity < Severity.HIGH
                else None
            )
            extra = " It hides a pickle: a deliberate evasion of strict scanners." if hides else ""
            self.ctx.report(
                r, a.message + extra, evidence=a.evidence, location=a.member, severity=severity
            )


def scan_zip(src: Source, ctx: ScanContext, *, executable: str | None = None) -> None:
    """Walk a zip (possibly preceded by other data) and analyse every member."""
    arch = zipread.read_zip(src, ctx.limits.max_members)
    if arch is None:
        entries = zipread.walk_local_headers(src, ctx.limits.max_members)
        anomalies = [
            zipread.Anomaly(
                "malformed",
                "The archive has no central directory; members were found from their local headers.",
                f"{len(entries)} members",
            )
        ]
        start = 0
    else:
        entries, anomalies, start = arch.entries, arch.anomalies, arch.start
    names = [e.name for e in entries if not e.is_dir]
    kind = classify(names)
    has_gguf = any(n.lower().endswith(".gguf") for n in names)
    ctx.format = "llamafile" if executable and has_gguf else kind
    with contextlib.ExitStack() as stack:
        walk = _Walk(src, ctx, kind, stack, anomalies=list(anomalies))
        for e in sorted(entries, key=_load_order):
            walk.member(e)
    if kind == "torchscript":
        pytorch.report_torchscript(ctx, walk.code_members)
    if start and not executable:
        hides = bool(walk.pickle_members)
        ctx.report(
            PREFIX_DATA,
            f"{start} bytes precede the zip archive."
            + (" The archive holds pickles: a polyglot that hides them." if hides else ""),
            evidence=repr(src.read(0, 8)),
            severity=Severity.HIGH if hides else None,
        )
    if not entries:
        walk.anomalies.append(zipread.Anomaly("malformed", "The archive has no members.", ""))
    walk.report_anomalies()
    ctx.metadata["members"] = len(entries)
    ctx.metadata["member_list"] = walk.listing
    if executable:
        ctx.metadata["executable"] = executable
        ctx.metadata["zip_offset"] = start


@register
class Zip(Detector):
    """Zip archives that start with a local header (what ``torch.load`` accepts as a zip)."""

    format = "zip"
    extensions = (".zip",)
    priority = 20

    def matches(self, head: bytes, src: Source) -> bool:
        return (
            head[:4] in (zipread.LOCAL_SIG, zipread.EOCD_SIG) or head[:8] == b"PK\x07\x08PK\x03\x04"
        )

    def scan(self, src: Source, ctx: ScanContext) -> None:
        scan_zip(src, ctx)


def executable_kind(head: bytes) -> str | None:
    if head.startswith(b"MZqFpD"):
        return "ape"
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head.startswith(b"#!"):
        return "shell"
    if head.startswith(b"MZ"):
        return "pe"
    return None


@register
class Llamafile(Detector):
    """An executable (APE, ELF, shell, PE) with a zip appended; a llamafile when it holds a GGUF."""

    format = "llamafile"
    extensions = (".llamafile",)
    priority = 40

    def matches(self, head: bytes, src: Source) -> bool:
        return head.startswith(_EXE_HEADS) and zipread.probe(src)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        scan_zip(src, ctx, executable=executable_kind(src.head(8)) or "unknown")
        if ctx.format != "llamafile":
            ctx.format = "zip"


@register
class EmbeddedZip(Detector):
    """Any other content that ends in a zip directory (polyglots): Python's zipfile opens them."""

    format = "zip"
    priority = 900

    def matches(self, head: bytes, src: Source) -> bool:
        return zipread.probe(src)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        scan_zip(src, ctx)
