"""TensorFlow: SavedModel ``saved_model.pb``, frozen GraphDef ``.pb`` and ``keras_metadata.pb``.

A TensorFlow graph runs ops, and a few ops reach outside the tensor world: they read, list or
write files, open network connections, or call back into Python (``PyFunc``). Every node of every
graph and of every function in the library is checked against that list. The checkpoint ops
that every SavedModel's saver graph contains (``SaveV2``, ``RestoreV2``, ``MergeV2Checkpoints``,
``ShardedFilename``, ``StringJoin`` and the legacy ``Save``/``Restore``) are normal and not
reported. ``keras_metadata.pb`` (tf.keras SavedModels) holds each layer's Keras config, which
``keras.models.load_model`` rebuilds, so it gets the Keras config analysis.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from modelward.models import Severity
from modelward.scan import protobuf as pb
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.rules import SCAN_LIMIT, Rule, rule
from modelward.scan.source import Buffer, Source

MAX_NODES = 5_000_000
"""Nodes walked per file before the rest is reported as not analysed."""
MAX_OPS_LISTED = 100

PYFUNC = rule(
    "tf.pyfunc",
    Severity.CRITICAL,
    "The graph calls back into Python (PyFunc): it runs whatever Python the loader registers",
    "Do not load this model; a graph that needs py_function cannot be served safely.",
)
HOST_OP = rule(
    "tf.host-op",
    Severity.HIGH,
    "The graph contains an op that reads, writes or lists files or opens network connections",
    "Do not run this graph unless you know why it touches the host; inspect the op's inputs.",
)
MALFORMED = rule(
    "tf.malformed",
    Severity.MEDIUM,
    "The TensorFlow protobuf is malformed",
    "Treat the model as unscanned; obtain a well-formed copy from a trusted source.",
)


@dataclass(frozen=True, slots=True)
class OpRisk:
    """Why an op is reported."""

    rule: Rule
    severity: Severity
    why: str


def _ops(names: str, risk: OpRisk) -> dict[str, OpRisk]:
    return dict.fromkeys(names.split(), risk)


_READS = OpRisk(HOST_OP, Severity.HIGH, "reads files named by a tensor")
_WRITES = OpRisk(HOST_OP, Severity.HIGH, "writes files named by a tensor")
_NET = OpRisk(HOST_OP, Severity.HIGH, "talks to the network")
_DEBUG = OpRisk(HOST_OP, Severity.HIGH, "is a debugger op that writes to files or URLs")

HOST_OPS: dict[str, OpRisk] = {
    **_ops("PyFunc PyFuncStateless EagerPyFunc", OpRisk(PYFUNC, Severity.CRITICAL, "runs Python")),
    **_ops(
        "ReadFile MatchingFiles WholeFileReader WholeFileReaderV2 TextLineReader "
        "TextLineReaderV2 TFRecordReader TFRecordReaderV2 FixedLengthRecordReader "
        "FixedLengthRecordReaderV2 LMDBReader TFRecordDataset TFRecordDatasetV2 TextLineDataset "
        "FixedLengthRecordDataset FixedLengthRecordDatasetV2 CSVDataset CSVDatasetV2 "
        "ExperimentalCSVDataset LMDBDataset ExperimentalLMDBDataset SqlDataset "
        "ExperimentalSqlDataset MatchingFilesDataset ExperimentalMatchingFilesDataset "
        "LoadDataset SnapshotDatasetReader SnapshotChunkDataset",
        _READS,
    ),
    "ImmutableConst": OpRisk(HOST_OP, Severity.HIGH, "memory-maps a file named in the graph"),
    **_ops(
        "WriteFile SaveDataset SaveDatasetV2 SnapshotDataset SnapshotDatasetV2 DatasetToTFRecord "
        "ExperimentalDatasetToTFRecord CreateSummaryFileWriter CreateSummaryDbWriter "
        "DistributedSave",
        _WRITES,
    ),
    **_ops(
        "Rpc TryRpc RpcCall RpcClient RpcServer RpcServerStart RpcServerRegister "
        "BigQueryReader GenerateBigQueryReaderPartitions DataServiceDataset DataServiceDatasetV2 "
        "DataServiceDatasetV3 DataServiceDatasetV4 RegisterDataset RegisterDatasetV2",
        _NET,
    ),
    **_ops(
        "DebugIdentity DebugIdentityV2 DebugIdentityV3 DebugNanCount DebugNumericSummary "
        "DebugNumericSummaryV2",
        _DEBUG,
    ),
    **_ops(
        "LoadAndRemapMatrix GenerateVocabRemapping",
        OpRisk(HOST_OP, Severity.LOW, "reads a checkpoint or vocabulary file named by a tensor"),
    ),
    **_ops(
        "InitializeTableFromTextFile InitializeTableFromTextFileV2",
        OpRisk(HOST_OP, Severity.INFO, "reads a vocabulary file (normally one of its assets)"),
    ),
}
"""Ops that reach outside the graph, with what they do."""

ATTR_CHECKS: dict[str, tuple[str, str]] = {
    "PrintV2": ("output_stream", "file://"),
    "DecodeProtoV2": ("descriptor_source", ""),
    "EncodeProto": ("descriptor_source", ""),
}
"""Ops that touch the host only with some attribute values: (attr, prefix that is risky)."""
_SAFE_DESCRIPTOR = frozenset({"", "local://"})

_OP_NAME = re.compile(rb"^[A-Za-z_][A-Za-z0-9_>.]{0,127}$")
_NODE_NAME = re.compile(rb"^[A-Za-z0-9_.\-/>:]{1,512}$")


def classify_op(op: str) -> OpRisk | None:
    """The risk of a TensorFlow op (also used for TFLite ``Flex`` ops), or None."""
    return HOST_OPS.get(op)


# ------------------------------------------------------------------ graph walking
class _GraphWalker:
    def __init__(self, buf: Buffer, ctx: ScanContext) -> None:
        self.buf = buf
        self.ctx = ctx
        self.ops: Counter[str] = Counter()
        self.nodes = 0
        self.functions = 0
        self.over = False

    def graph(self, start: int, end: int, where: str) -> None:
        for f in pb.iter_fields(self.buf, start, end):
            if self.over:
                return
            if f.number == 1 and f.wire == pb.LEN:
                self.node(f.offset, f.end, where)
            elif f.number == 2 and f.wire == pb.LEN:
                self.library(f.offset, f.end)

    def library(self, start: int, end: int) -> None:
        for f in pb.iter_fields(self.buf, start, end):
            if f.number != 1 or f.wire != pb.LEN or self.over:
                continue
            self.functions += 1
            sig = pb.first(self.buf, f.offset, f.end, 1)
            name = ""
            if sig is not None and sig.wire == pb.LEN:
                name = pb.strings(self.buf, sig.offset, sig.end, frozenset({1}), 256).get(1, "")
            where = f"function {name!r}"
            for g in pb.iter_fields(self.buf, f.offset, f.end):
                if g.number == 3 and g.wire == pb.LEN:
                    self.node(g.offset, g.end, where)

    def node(self, start: int, end: int, where: str) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.over = True
            self.ctx.report(
                SCAN_LIMIT,
                f"The graph has more than {MAX_NODES} nodes; the rest was not analysed.",
            )
            return
        name = op = ""
        attrs: list[pb.Field] = []
        for f in pb.iter_fields(self.buf, start, end):
            if f.wire != pb.LEN:
                continue
            if f.number == 1:
                name = pb.text(self.buf, f, 256)
            elif f.number == 2:
                op = pb.text(self.buf, f, 256)
            elif f.number == 5:
                attrs.append(f)
        self.ops[op] += 1
        risk = HOST_OPS.get(op)
        location = f"{where}, node {name!r}"
        if risk is not None:
            self.ctx.report(
                risk.rule,
                f"Op {op} {risk.why}.",
                evidence=op,
                location=location,
                severity=risk.severity,
            )
        check = ATTR_CHECKS.get(op)
        if check is not None:
            self.attr_check(op, check, attrs, location)

    def attr_check(
        self, op: str, check: tuple[str, str], attrs: list[pb.Field], location: str
    ) -> None:
        wanted, prefix = check
        for entry in attrs:
            fields = {f.number: f for f in pb.iter_fields(self.buf, entry.offset, entry.end)}
            key, value = fields.get(1), fields.get(2)
            if key is None or value is None or key.wire != pb.LEN or value.wire != pb.LEN:
                continue
            if pb.text(self.buf, key, 256) != wanted:
                continue
            s = pb.first(self.buf, value.offset, value.end, 2)  # AttrValue.s
            text = pb.text(self.buf, s, 1024) if s is not None and s.wire == pb.LEN else ""
            risky = text.startswith(prefix) if prefix else text not in _SAFE_DESCRIPTOR
            if risky:
                self.ctx.report(
                    HOST_OP,
                    f"Op {op} has {wanted}={text[:100]!r}: it touches a file when it runs.",
                    evidence=f"{op} {wanted}={text[:200]}",
                    location=location,
                )

    def metadata(self) -> dict[str, object]:
        return {
            "node_count": self.nodes,
            "function_count": self.functions,
            "ops": dict(self.ops.most_common(MAX_OPS_LISTED)),
        }


# ------------------------------------------------------------------ sniffing
def _prefix_fields(buf: Buffer, start: int, end: int, limit: int = 16) -> list[pb.Field]:
    """Records at the start of a message that lie in ``buf`` (stops at the first error)."""
    out: list[pb.Field] = []
    try:
        for f in pb.iter_fields(buf, start, min(end, len(buf))):
            out.append(f)
            if len(out) >= limit:
                break
    except pb.ProtobufError:
        pass
    return out


def looks_like_node(buf: Buffer, start: int, end: int) -> bool:
    """Whether a NodeDef starts at ``start``: a name and an op that look like TensorFlow's."""
    fields = _prefix_fields(buf, start, end, 8)
    name = op = None
    for f in fields:
        if f.number > 7:
            return False
        if f.number == 1 and f.wire == pb.LEN:
            name = bytes(buf[f.offset : f.end])
        elif f.number == 2 and f.wire == pb.LEN:
            op = bytes(buf[f.offset : f.end])
        elif f.number in (1, 2, 3, 4) and f.wire != pb.LEN:
            return False
    return (
        name is not None
        and op is not None
        and bool(_NODE_NAME.match(name))
        and bool(_OP_NAME.match(op))
    )


def looks_like_savedmodel(head: bytes, src: Source) -> bool:
    if not head or head[0] not in (0x08, 0x12):
        return False
    meta: pb.Field | None = None
    try:
        for f in pb.iter_headers(src, head, 16):
            if f.number == 1 and f.wire == pb.VARINT:
                if f.value > 16:
                    return False
            elif f.number == 2 and f.wire == pb.LEN:
                meta = meta or f
            else:
                return False
    except pb.ProtobufError:
        return False
    if meta is None or meta.offset >= len(head):
        return False
    inner = _prefix_fields(head, meta.offset, meta.end, 4)
    return bool(inner) and all(1 <= f.number <= 9 and f.wire == pb.LEN for f in inner)


def looks_like_graphdef(head: bytes, src: Source) -> bool:
    if not head or head[0] != 0x0A:
        return False
    nodes = 0
    try:
        for f in pb.iter_headers(src, head, 64):
            if f.number == 1 and f.wire == pb.LEN:
                if nodes == 0 and (
                    f.offset >= len(head) or not looks_like_node(head, f.offset, f.end)
                ):
                    return False
                nodes += 1
            elif not (f.number in (2, 4, 5) and f.wire == pb.LEN) and not (
                f.number == 3 and f.wire == pb.VARINT
            ):
                return False
    except pb.ProtobufError:
        return False
    return nodes > 0


def looks_like_keras_metadata(head: bytes, src: Source) -> bool:
    if not head or head[0] != 0x0A:
        return False
    first = _prefix_fields(head, 0, len(head), 1)
    if not first or first[0].number != 1 or first[0].wire != pb.LEN:
        return False
    for f in _prefix_fields(head, first[0].offset, first[0].end, 6):
        if f.number == 4 and f.wire == pb.LEN:
            return bytes(head[f.offset : f.offset + 9]) == b"_tf_keras"
    return False


# ------------------------------------------------------------------ detectors
def _malformed(ctx: ScanContext, what: str, exc: Exception) -> None:
    ctx.report(MALFORMED, f"The {what} is malformed: {exc}", evidence=str(exc)[:200])


@register
class SavedModelDetector(Detector):
    """``saved_model.pb``: the SavedModel protobuf (meta graphs with their graphs and functions)."""

    format = "tf-savedmodel"
    priority = 200

    def matches(self, head: bytes, src: Source) -> bool:
        return looks_like_savedmodel(head, src)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        buf = src.buffer()
        walker = _GraphWalker(buf, ctx)
        tags: list[str] = []
        versions: set[str] = set()
        metas = 0
        try:
            for f in pb.iter_fields(buf):
                if f.number == 1 and f.wire == pb.VARINT:
                    ctx.metadata["schema_version"] = f.value
                if f.number != 2 or f.wire != pb.LEN:
                    continue
                where = f"meta_graph[{metas}]"
                metas += 1
                for g in pb.iter_fields(buf, f.offset, f.end):
                    if g.number == 1 and g.wire == pb.LEN:  # MetaInfoDef
                        info = pb.iter_fields(buf, g.offset, g.end)
                        for h in info:
                            if h.number == 4 and h.wire == pb.LEN and len(tags) < 32:
                                tags.append(pb.text(buf, h, 64))
                            elif h.number == 5 and h.wire == pb.LEN:
                                versions.add(pb.text(buf, h, 64))
                    elif g.number == 2 and g.wire == pb.LEN:
                        walker.graph(g.offset, g.end, where)
        except pb.ProtobufError as exc:
            _malformed(ctx, "SavedModel protobuf", exc)
        ctx.metadata["meta_graphs"] = metas
        ctx.metadata["tags"] = sorted(set(tags))
        if versions:
            ctx.metadata["tensorflow_version"] = sorted(versions)[0]
        ctx.metadata.update(walker.metadata())


@register
class GraphDefDetector(Detector):
    """A frozen ``GraphDef`` (``.pb`` from ``tf.io.write_graph`` / freeze_graph)."""

    format = "tf-graphdef"
    priority = 210

    def matches(self, head: bytes, src: Source) -> bool:
        return looks_like_graphdef(head, src)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        buf = src.buffer()
        walker = _GraphWalker(buf, ctx)
        try:
            walker.graph(0, len(buf), "graph")
        except pb.ProtobufError as exc:
            _malformed(ctx, "GraphDef protobuf", exc)
        ctx.metadata.update(walker.metadata())


@register
class KerasMetadataDetector(Detector):
    """``keras_metadata.pb`` of a tf.keras SavedModel: a Keras config per layer."""

    format = "tf-savedmodel"
    priority = 205

    def matches(self, head: bytes, src: Source) -> bool:
        return looks_like_keras_metadata(head, src)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        from modelward.scan.formats.keras import MAX_CONFIG_BYTES, analyze_keras_config

        buf = src.buffer()
        count = 0
        classes: Counter[str] = Counter()
        try:
            for f in pb.iter_fields(buf):
                if f.number != 1 or f.wire != pb.LEN:
                    continue
                count += 1
                values = pb.strings(buf, f.offset, f.end, frozenset({3, 5}), MAX_CONFIG_BYTES + 1)
                path = values.get(3, f"node {count}")[:200]
                meta = values.get(5)
                if meta:
                    sub = analyze_keras_config(meta.encode("utf-8", "replace"), ctx, path)
                    classes.update(sub.get("class_names", {}))
        except pb.ProtobufError as exc:
            _malformed(ctx, "keras_metadata.pb protobuf", exc)
        ctx.metadata["component"] = "keras_metadata"
        ctx.metadata["keras_objects"] = count
        ctx.metadata["class_names"] = dict(classes.most_common(50))
