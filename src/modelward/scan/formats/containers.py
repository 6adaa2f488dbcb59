"""Tar and 7z containers, including PyTorch's legacy tar checkpoint; walked without extracting.

Tar members are zero-copy slices of the file (headers are parsed by hand, links are reported and
never followed). 7z members are decompressed by ``py7zr`` one at a time into bounded memory after
the declared sizes were checked against the limits; py7zr gets a temporary folder that is always
removed, and nothing is ever extracted with ``extractall``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from typing import Any

from modelward.models import Severity
from modelward.scan import tarread
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.formats import pytorch
from modelward.scan.masquerade import PICKLE_FAMILY
from modelward.scan.members import (
    BOMB,
    ENCRYPTED,
    MALFORMED,
    RATIO_FLOOR,
    SPECIAL,
    check_link,
    check_path,
)
from modelward.scan.rules import SCAN_LIMIT
from modelward.scan.source import BytesSource, Source, SourceIO

MEMBER_LIST_CAP = 200
LEGACY_TAR_MEMBERS = frozenset({"sys_info", "pickle", "storages", "tensors"})
_SPECIAL_TYPES = frozenset(b"346")


def _listing_entry(name: str, size: int, fmt: str) -> dict[str, Any]:
    return {"name": name, "size": size, "format": fmt}


def _member_budget(ctx: ScanContext, state: dict[str, bool]) -> bool:
    if ctx.take_member():
        return True
    if not state.get("reported"):
        state["reported"] = True
        ctx.report(
            SCAN_LIMIT,
            "The archive has more members than the scanner opens; the rest were skipped.",
            evidence=f"{ctx.limits.max_members} members",
        )
    return False


# ---------------------------------------------------------------------- tar
def _legacy_name(name: str) -> bool:
    return name.removeprefix("./") in LEGACY_TAR_MEMBERS


def scan_tar(src: Source, ctx: ScanContext) -> None:
    listing = tarread.walk(src, ctx.limits.max_members, _legacy_name)
    names = {m.name.removeprefix("./") for m in listing.members if m.is_file}
    legacy = {"pickle", "storages"} <= names and bool(names & {"sys_info", "tensors"})
    ctx.format = "pytorch-legacy" if legacy else "tar"
    out: list[dict[str, Any]] = []
    pickles = False
    state: dict[str, bool] = {}
    # The members torch.load opens by name come first: no bound is spent on decoys before them.
    for m in sorted(listing.members, key=lambda m: not _legacy_name(m.name)):
        if not _member_budget(ctx, state):
            break
        check_path(ctx, m.name)
        if m.is_symlink or m.is_hardlink:
            check_link(ctx, m.name, m.linkname, hard=m.is_hardlink)
            continue
        if m.type in _SPECIAL_TYPES:
            ctx.report(
                SPECIAL, "Member is a device or FIFO.", evidence=f"{m.name} (type {chr(m.type)})"
            )
            continue
        if m.is_dir:
            continue
        content = src.slice(m.offset, m.size)
        short = m.name.removeprefix("./")
        if legacy and short in LEGACY_TAR_MEMBERS:
            buf = content.buffer()
            if short == "storages":
                pytorch.walk_legacy_storages(buf, ctx, m.name)
            elif short == "tensors":
                pytorch.walk_legacy_tensors(buf, ctx, m.name)
            else:
                pytorch.analyze_member_pickle(buf, ctx, m.name)
            fmt = "pickle"
        else:
            fmt = pytorch.scan_member(ctx, content, m.name)
        pickles = pickles or fmt in PICKLE_FAMILY
        if len(out) < MEMBER_LIST_CAP:
            out.append(_listing_entry(m.name, m.size, fmt))
    if listing.error:
        ctx.report(
            MALFORMED,
            "The tar archive is damaged: "
            + listing.error
            + (". It holds pickles that lenient readers still load." if pickles or legacy else "."),
            evidence=listing.error,
            severity=Severity.HIGH if pickles or legacy else None,
        )
    if listing.truncated:
        ctx.report(
            SCAN_LIMIT,
            "The archive has more members than the scanner opens; the rest were skipped.",
            evidence=f"{ctx.limits.max_members} members",
        )
    ctx.metadata["members"] = len(listing.members)
    ctx.metadata["member_list"] = out


@register
class Tar(Detector):
    """ustar / GNU / pax tar (and v7 by checksum); PyTorch's legacy tar checkpoint included."""

    format = "tar"
    extensions = (".tar",)
    priority = 5
    """First: torch.load reads any file that does not start with a zip header as a tar when
    tarfile accepts it, whatever magic its first member name begins with."""

    def matches(self, head: bytes, src: Source) -> bool:
        return tarread.looks_like_tar(head)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        scan_tar(src, ctx)


# ---------------------------------------------------------------------- 7z
class _Member:
    """A py7zr writer that keeps at most ``limit`` bytes and hands the member on when closed."""

    def __init__(self, name: str, limit: int, done: Any) -> None:
        self.name = name
        self.limit = limit
        self.buf = bytearray()
        self.dropped = 0
        self._done = done
        self.closed = False

    def write(self, s: bytes | bytearray) -> int:
        room = self.limit - len(self.buf)
        if room > 0:
            self.buf += s[:room]
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return len(self.buf)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._done(self)


def _factory(limit: int, done: Any, folder: str) -> Any:
    from py7zr.io import WriterFactory

    class Factory(WriterFactory):
        def __init__(self) -> None:
            self.products: list[_Member] = []

        def create(self, filename: str) -> Any:
            name = str(filename)  # py7zr passes the path it would have written to
            if name.startswith(folder + os.sep):
                name = name[len(folder) + 1 :]
            m = _Member(name, limit, done)
            self.products.append(m)
            return m

    return Factory()


def scan_7z(src: Source, ctx: ScanContext) -> None:
    try:
        import py7zr
    except ImportError:
        ctx.error("7z archive not analysed: py7zr is not installed")
        return
    limits = ctx.limits
    out: list[dict[str, Any]] = []
    products: list[_Member] = []
    pickles: list[str] = []

    def done(m: _Member) -> None:
        if m.dropped:
            ctx.report(
                SCAN_LIMIT,
                "Member is larger than the scanner's limit; only its beginning was analysed.",
                evidence=m.name,
            )
        ctx.take_uncompressed(len(m.buf))
        fmt = pytorch.scan_member(ctx, BytesSource(m.buf), m.name)
        if fmt in PICKLE_FAMILY:
            pickles.append(m.name)
        if len(out) < MEMBER_LIST_CAP:
            out.append(_listing_entry(m.name, len(m.buf) + m.dropped, fmt))
        m.buf = bytearray()

    try:
        with contextlib.ExitStack() as stack:
            archive = stack.enter_context(
                py7zr.SevenZipFile(io.BufferedReader(SourceIO(src), 1 << 16), mode="r")
            )
            infos = archive.list()
            ctx.metadata["members"] = len(infos)
            if archive.needs_password():
                ctx.report(ENCRYPTED, "The 7z archive is encrypted; its content was not analysed.")
                return
            targets: list[str] = []
            declared = 0
            state: dict[str, bool] = {}
            for info in infos:
                if not _member_budget(ctx, state):
                    break
                check_path(ctx, info.filename)
                if info.is_symlink:
                    check_link(ctx, info.filename, "?")
                    continue
                if info.is_directory:
                    continue
                size = int(info.uncompressed or 0)
                if size > limits.max_member_size:
                    ctx.report(
                        SCAN_LIMIT,
                        f"Member declares {size} bytes, more than the scanner's limit; "
                        "only its beginning is analysed.",
                        evidence=info.filename,
                    )
                declared += size
                targets.append(info.filename)
            if declared > RATIO_FLOOR and declared > limits.max_ratio * max(1, src.size):
                ctx.report(
                    BOMB,
                    f"The 7z archive declares {declared} bytes of content in {src.size} bytes; "
                    "it was not unpacked.",
                    evidence=f"{declared} bytes",
                )
                return
            if declared > limits.max_total_uncompressed:
                ctx.report(
                    SCAN_LIMIT,
                    "The 7z archive declares more content than the scanner unpacks; it was not "
                    "unpacked.",
                    evidence=f"{declared} bytes",
                )
                return
            if not targets:
                return
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="modelward-7z-"))
            factory = _factory(limits.max_member_size, done, folder)
            products = factory.products
            archive.extract(path=folder, targets=targets, factory=factory)
            for m in factory.products:  # py7zr versions that never call close()
                m.close()
    except Exception as exc:  # py7zr raises many types on hostile input; each is a finding
        # A member cut short by the error (a CRC mismatch is raised only after its data was
        # written: 7-Zip keeps such files) is analysed as far as it was decompressed.
        for m in products:
            with contextlib.suppress(Exception):
                m.close()
        ctx.report(
            MALFORMED,
            "The 7z archive could not be read completely; members read before the error were "
            "analysed."
            + (" It holds a pickle that extractors still write out (nullifAI)." if pickles else ""),
            evidence=f"{type(exc).__name__}: {exc}"[:200],
            severity=Severity.HIGH if pickles else None,
        )
    finally:
        ctx.metadata["member_list"] = out


@register
class SevenZip(Detector):
    format = "7z"
    extensions = (".7z",)
    priority = 20

    def matches(self, head: bytes, src: Source) -> bool:
        return head.startswith(b"7z\xbc\xaf\x27\x1c")

    def scan(self, src: Source, ctx: ScanContext) -> None:
        scan_7z(src, ctx)
