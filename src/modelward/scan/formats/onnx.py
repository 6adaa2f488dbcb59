"""ONNX: the ModelProto read field by field for external data paths and custom op domains.

Tensors may keep their bytes in another file (``external_data``: ``location``, ``offset``,
``length``). A location that is absolute, climbs with ``..`` or resolves (through a symlink)
outside the model's folder makes the loader read any file it names (CVE-2024-27318/27319 in
onnx). Nodes in an op domain that neither ONNX nor the model's own functions define need a custom
op library, which is native code. Large ``raw_data`` is skipped by its length, never read.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Any

from modelward.models import Severity
from modelward.scan import protobuf as pb
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.rules import SCAN_LIMIT, rule
from modelward.scan.source import Buffer, Source

MAX_ITEMS = 5_000_000
"""Nodes and tensors walked per model before the rest is reported as not analysed."""
MAX_GRAPH_DEPTH = 64
"""Subgraphs (If/Loop/Scan bodies) inside subgraphs."""
MAX_LISTED = 100

TRAVERSAL = rule(
    "onnx.external-data-traversal",
    Severity.CRITICAL,
    "A tensor's external data path leaves the model's folder (arbitrary file read on load)",
    "Do not load this model: the loader would read the file the path names into a tensor.",
)
EXTERNAL_MISSING = rule(
    "onnx.external-data-missing",
    Severity.LOW,
    "A tensor's external data file is missing or shorter than declared",
    "Download the model's data files too, or obtain a complete copy.",
)
CUSTOM_DOMAIN = rule(
    "onnx.custom-op-domain",
    Severity.MEDIUM,
    "The graph uses ops from a custom domain, which need a native custom op library",
    "Load the model only with a custom op library from a source you trust.",
)
MALFORMED = rule(
    "onnx.malformed",
    Severity.MEDIUM,
    "The ONNX protobuf is malformed",
    "Treat the model as unscanned; obtain a well-formed copy from a trusted source.",
)

STANDARD_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview", "ai.onnx.preview.training"}
)
RUNTIME_DOMAINS = frozenset(
    {
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.microsoft.dml",
        "com.ms.internal.nhwc",
    }
)
"""ONNX Runtime's built-in contrib op domains: listed in metadata, not reported."""

_MODEL_FIELDS = {1: pb.VARINT, 2: pb.LEN, 3: pb.LEN, 4: pb.LEN, 5: pb.VARINT, 6: pb.LEN}
_MODEL_FIELDS |= {7: pb.LEN, 8: pb.LEN, 14: pb.LEN, 20: pb.LEN, 25: pb.LEN, 26: pb.LEN}
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:")


def looks_like_onnx(head: bytes, src: Source) -> bool:
    """A plausible ModelProto: small ir_version first, known top-level fields, a graph."""
    if len(head) < 2 or head[0] != 0x08:
        return False
    graph = False
    try:
        for i, f in enumerate(pb.iter_headers(src, head, 64)):
            if i == 0 and not (f.number == 1 and 1 <= f.value <= 64):
                return False
            if _MODEL_FIELDS.get(f.number) != f.wire:
                return False
            graph = graph or f.number == 7
    except pb.ProtobufError:
        return False
    return graph


class _ExternalFile:
    def __init__(self, real: str | None, size: int | None) -> None:
        self.real = real
        self.size = size


class _OnnxWalker:
    def __init__(self, buf: Buffer, ctx: ScanContext, nested: bool) -> None:
        self.buf = buf
        self.ctx = ctx
        self.nested = nested
        self.ops: Counter[str] = Counter()
        self.nodes = 0
        self.items = 0
        self.over = False
        self.custom: dict[tuple[str, str], str] = {}
        self.external: dict[str, _ExternalFile] = {}
        self.external_tensors = 0
        self.domains: set[str] = set()

    # -------------------------------------------------------------- graphs, iteratively
    def graphs(self, roots: list[tuple[int, int, str]]) -> None:
        stack = [(s, e, where, 0) for s, e, where in reversed(roots)]
        while stack and not self.over:
            start, end, where, depth = stack.pop()
            if depth > MAX_GRAPH_DEPTH:
                self.ctx.report(
                    SCAN_LIMIT,
                    f"Subgraphs are nested more than {MAX_GRAPH_DEPTH} deep; deeper ones were skipped.",
                    location=where,
                )
                continue
            for f in pb.iter_fields(self.buf, start, end):
                if f.wire != pb.LEN or not self.take():
                    continue
                if f.number == 1:
                    for sub in self.node(f.offset, f.end, where):
                        stack.append((*sub, depth + 1))
                elif f.number == 5:
                    self.tensor(f.offset, f.end, where, "initializer")
                elif f.number == 15:
                    self.sparse(f.offset, f.end, where)

    def take(self) -> bool:
        self.items += 1
        if self.items > MAX_ITEMS and not self.over:
            self.over = True
            self.ctx.report(
                SCAN_LIMIT,
                f"The model has more than {MAX_ITEMS} nodes and tensors; the rest was not analysed.",
            )
        return not self.over

    def node(self, start: int, end: int, where: str) -> list[tuple[int, int, str]]:
        """Record one NodeProto; return the subgraphs in its attributes."""
        self.nodes += 1
        name = op = domain = ""
        attrs: list[pb.Field] = []
        for f in pb.iter_fields(self.buf, start, end):
            if f.wire != pb.LEN:
                continue
            if f.number == 3:
                name = pb.text(self.buf, f, 256)
            elif f.number == 4:
                op = pb.text(self.buf, f, 256)
            elif f.number == 7:
                domain = pb.text(self.buf, f, 256)
            elif f.number == 5:
                attrs.append(f)
        self.ops[op if domain in ("", "ai.onnx") else f"{domain}::{op}"] += 1
        if domain not in STANDARD_DOMAINS:
            self.domains.add(domain)
            self.custom.setdefault((domain, op), f"{where}, node {name!r}")
        subgraphs: list[tuple[int, int, str]] = []
        for a in attrs:
            aname = ""
            for g in pb.iter_fields(self.buf, a.offset, a.end):
                if g.wire != pb.LEN:
                    continue
                if g.number == 1:
                    aname = pb.text(self.buf, g, 128)
                elif g.number in (6, 11):
                    subgraphs.append(
                        (g.offset, g.end, f"{where}, node {name!r} attribute {aname!r}")
                    )
                elif g.number in (5, 10):
                    self.tensor(g.offset, g.end, f"{where}, node {name!r}", f"attribute {aname!r}")
                elif g.number in (22, 23):
                    self.sparse(g.offset, g.end, f"{where}, node {name!r}")
        return subgraphs

    def sparse(self, start: int, end: int, where: str) -> None:
        for f in pb.iter_fields(self.buf, start, end):
            if f.number in (1, 2) and f.wire == pb.LEN:
                self.tensor(f.offset, f.end, where, "sparse tensor")

    # -------------------------------------------------------------- external data
    def tensor(self, start: int, end: int, where: str, what: str) -> None:
        name = ""
        external = False
        entries: dict[str, str] = {}
        for f in pb.iter_fields(self.buf, start, end):
            if f.number == 8 and f.wire == pb.LEN:
                name = pb.text(self.buf, f, 256)
            elif f.number == 14 and f.wire == pb.VARINT:
                external = f.value == 1
            elif f.number == 13 and f.wire == pb.LEN:
                kv = pb.strings(self.buf, f.offset, f.end, frozenset({1, 2}), 4096)
                entries[kv.get(1, "")] = kv.get(2, "")
        if not external and "location" not in entries:
            return
        self.external_tensors += 1
        location = f"{where}, {what} {name!r}"
        loc = entries.get("location")
        if not loc:
            self.ctx.report(
                MALFORMED,
                "A tensor stored as external data names no file.",
                evidence=name,
                location=location,
            )
            return
        self.check_location(loc, entries, location)

    def check_location(self, loc: str, entries: dict[str, str], location: str) -> None:
        parts = re.split(r"[\\/]", loc)
        if "\x00" in loc or loc.startswith(("/", "\\")) or _WINDOWS_ABS.match(loc):
            self.traversal(loc, location, "is an absolute path")
            return
        if ".." in parts:
            self.traversal(loc, location, "climbs out of the model's folder with '..'")
            return
        if self.nested:
            return  # a member of a container: there is no folder on disk to check against
        ext = self.external.get(loc)
        if ext is None:
            ext = self.external[loc] = self.resolve(loc)
        if ext.real is None:
            self.traversal(loc, location, "resolves (through a symlink) outside the model's folder")
            return
        if ext.size is None:
            self.ctx.report(
                EXTERNAL_MISSING,
                f"The external data file {loc!r} does not exist next to the model.",
                evidence=loc,
                location=location,
            )
            return
        try:
            offset = int(entries.get("offset") or 0)
            length = int(entries["length"]) if entries.get("length") else None
        except ValueError:
            self.ctx.report(
                MALFORMED,
                "A tensor's external data offset or length is not a number.",
                evidence=f"offset={entries.get('offset')!r} length={entries.get('length')!r}"[:200],
                location=location,
            )
            return
        if offset < 0 or offset + (length or 0) > ext.size or (length or 0) < 0:
            self.ctx.report(
                EXTERNAL_MISSING,
                f"The external data file {loc!r} ({ext.size} bytes) is shorter than the tensor "
                f"declares (offset {offset}, length {length}).",
                evidence=loc,
                location=location,
                severity=Severity.MEDIUM,
            )

    def resolve(self, loc: str) -> _ExternalFile:
        folder = os.path.realpath(self.ctx.folder)
        real = os.path.realpath(os.path.join(folder, loc))
        try:
            inside = os.path.commonpath([folder, real]) == folder
        except ValueError:
            inside = False
        if not inside:
            return _ExternalFile(None, None)
        try:
            st = os.stat(real)
        except OSError:
            return _ExternalFile(real, None)
        return _ExternalFile(real, st.st_size if os.path.isfile(real) else None)

    def traversal(self, loc: str, location: str, why: str) -> None:
        self.ctx.report(
            TRAVERSAL,
            f"External data location {loc[:200]!r} {why}: loading the model reads that file.",
            evidence=loc,
            location=location,
        )


@register
class OnnxDetector(Detector):
    """ONNX ModelProto files (``.onnx``)."""

    format = "onnx"
    extensions = (".onnx",)
    priority = 190

    def matches(self, head: bytes, src: Source) -> bool:
        return looks_like_onnx(head, src)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        buf = src.buffer()
        walker = _OnnxWalker(buf, ctx, nested=bool(ctx.prefix))
        meta: dict[str, Any] = {}
        opsets: dict[str, int] = {}
        props: dict[str, str] = {}
        roots: list[tuple[int, int, str]] = []
        local: set[tuple[str, str]] = set()
        functions: list[tuple[int, int, str]] = []
        try:
            for f in pb.iter_fields(buf):
                if f.number == 1 and f.wire == pb.VARINT:
                    meta["ir_version"] = f.value
                elif f.number in (2, 3, 4) and f.wire == pb.LEN:
                    key = {2: "producer_name", 3: "producer_version", 4: "domain"}[f.number]
                    meta[key] = pb.text(buf, f, 200)
                elif f.number == 5 and f.wire == pb.VARINT:
                    meta["model_version"] = f.value
                elif f.number == 7 and f.wire == pb.LEN:
                    roots.append((f.offset, f.end, "graph"))
                elif f.number == 8 and f.wire == pb.LEN and len(opsets) < MAX_LISTED:
                    kv = {g.number: g for g in pb.iter_fields(buf, f.offset, f.end)}
                    d, v = kv.get(1), kv.get(2)
                    dom = pb.text(buf, d, 200) if d is not None and d.wire == pb.LEN else ""
                    opsets[dom or "ai.onnx"] = v.value if v is not None else 0
                elif f.number == 14 and f.wire == pb.LEN and len(props) < 20:
                    kv2 = pb.strings(buf, f.offset, f.end, frozenset({1, 2}), 200)
                    props[kv2.get(1, "")] = kv2.get(2, "")
                elif f.number == 20 and f.wire == pb.LEN:
                    for g in pb.iter_fields(buf, f.offset, f.end):
                        if g.number in (1, 2) and g.wire == pb.LEN:
                            roots.append((g.offset, g.end, "training_info"))
                elif f.number == 25 and f.wire == pb.LEN:
                    names = pb.strings(buf, f.offset, f.end, frozenset({1, 10}), 256)
                    local.add((names.get(10, ""), names.get(1, "")))
                    functions.append((f.offset, f.end, f"function {names.get(1, '')!r}"))
            walker.graphs(roots)
            for start, end, where in functions:  # a FunctionProto's nodes are field 7
                nodes = [
                    (g.offset, g.end, where)
                    for g in pb.iter_fields(buf, start, end)
                    if g.number == 7 and g.wire == pb.LEN
                ]
                for s, e, w in nodes:
                    if walker.take():
                        walker.graphs(
                            [(sub_s, sub_e, sub_w) for sub_s, sub_e, sub_w in walker.node(s, e, w)]
                        )
        except pb.ProtobufError as exc:
            ctx.report(MALFORMED, f"The ONNX protobuf is malformed: {exc}", evidence=str(exc)[:200])
        for (domain, op), where in sorted(walker.custom.items()):
            if (domain, op) in local or domain in RUNTIME_DOMAINS:
                continue
            ctx.report(
                CUSTOM_DOMAIN,
                f"Op {op!r} is from the custom domain {domain!r}, which needs a custom op library.",
                evidence=f"{domain}::{op}",
                location=where,
            )
        meta["opset_import"] = opsets
        meta["node_count"] = walker.nodes
        meta["ops"] = dict(walker.ops.most_common(MAX_LISTED))
        meta["custom_domains"] = sorted(walker.domains)[:MAX_LISTED]
        meta["local_functions"] = len(local)
        if props:
            meta["metadata_props"] = props
        if walker.external_tensors:
            meta["external_tensors"] = walker.external_tensors
            meta["external_data_files"] = sorted(walker.external)[:20]
        ctx.metadata.update(meta)
