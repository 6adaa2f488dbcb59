"""Core ML: the ``.mlmodel`` protobuf (also inside ``.mlpackage``) checked for custom code.

A Core ML model runs inside Apple's runtime, except for custom layers and custom models, whose
``className`` names code the app must supply, and linked models, which pull in another compiled
model from disk that this file does not contain. Pipelines and control-flow layers nest models
and networks; they are walked iteratively with a depth bound.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from modelward.models import Severity
from modelward.scan import protobuf as pb
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.rules import SCAN_LIMIT, rule
from modelward.scan.source import Buffer, Source

MAX_DEPTH = 32
MAX_LAYERS = 2_000_000

CUSTOM_LAYER = rule(
    "coreml.custom-layer",
    Severity.MEDIUM,
    "The model needs a custom layer or custom model class supplied by the app (native code)",
    "Run it only with custom layer code from a source you trust.",
)
LINKED = rule(
    "coreml.linked-model",
    Severity.LOW,
    "The model links another compiled model from disk, which this file does not contain",
    "Scan the linked model too, and check where the search path points.",
)
MALFORMED = rule(
    "coreml.malformed",
    Severity.MEDIUM,
    "The Core ML protobuf is malformed",
    "Treat the model as unscanned; obtain a well-formed copy from a trusted source.",
)

MODEL_TYPES: dict[int, str] = {
    200: "pipelineClassifier", 201: "pipelineRegressor", 202: "pipeline",
    300: "glmRegressor", 301: "supportVectorRegressor", 302: "treeEnsembleRegressor",
    303: "neuralNetworkRegressor", 304: "bayesianProbitRegressor", 400: "glmClassifier",
    401: "supportVectorClassifier", 402: "treeEnsembleClassifier",
    403: "neuralNetworkClassifier", 404: "kNearestNeighborsClassifier", 500: "neuralNetwork",
    501: "itemSimilarityRecommender", 502: "mlProgram", 555: "customModel", 556: "linkedModel",
    560: "classConfidenceThresholding", 600: "oneHotEncoder", 601: "imputer",
    602: "featureVectorizer", 603: "dictVectorizer", 604: "scaler", 606: "categoricalMapping",
    607: "normalizer", 609: "arrayFeatureExtractor", 610: "nonMaximumSuppression",
    900: "identity", 2000: "textClassifier", 2001: "wordTagger", 2002: "visionFeaturePrint",
    2003: "soundAnalysisPreprocessing", 2004: "gazetteer", 2005: "wordEmbedding",
    2006: "audioFeaturePrint", 3000: "serializedModel",
}  # fmt: skip
"""``Model.Type`` oneof: field number -> name (Model.proto)."""

_NETWORKS = frozenset({303, 403, 500})
_PIPELINES = frozenset({200, 201})


def looks_like_coreml(head: bytes, src: Source) -> bool:
    """A plausible ``Model``: a small specificationVersion first, known fields, one model type."""
    if len(head) < 2 or head[0] != 0x08:
        return False
    typed = False
    try:
        for i, f in enumerate(pb.iter_headers(src, head, 32)):
            if i == 0 and not (f.number == 1 and f.wire == pb.VARINT and 1 <= f.value <= 64):
                return False
            if f.number in MODEL_TYPES and f.wire == pb.LEN:
                typed = True
            elif not (f.number == 2 and f.wire == pb.LEN) and not (
                f.number in (1, 10) and f.wire == pb.VARINT
            ):
                return False
    except pb.ProtobufError:
        return False
    return typed


class _CoreMLWalker:
    def __init__(self, buf: Buffer, ctx: ScanContext) -> None:
        self.buf = buf
        self.ctx = ctx
        self.types: Counter[str] = Counter()
        self.layers = 0
        self.custom: list[str] = []

    def walk(self) -> None:
        # (kind, start, end, depth, where): kind is "model", "pipeline" or "network"
        stack: list[tuple[str, int, int, int, str]] = [("model", 0, len(self.buf), 0, "model")]
        while stack:
            kind, start, end, depth, where = stack.pop()
            if depth > MAX_DEPTH:
                self.ctx.report(
                    SCAN_LIMIT,
                    f"Models are nested more than {MAX_DEPTH} deep; deeper ones were skipped.",
                    location=where,
                )
                continue
            if kind == "model":
                stack.extend(self.model(start, end, depth, where))
            elif kind == "pipeline":
                for i, f in enumerate(self.fields(start, end, 1)):
                    stack.append(("model", f.offset, f.end, depth + 1, f"{where}.models[{i}]"))
            else:
                stack.extend(self.network(start, end, depth, where))

    def fields(self, start: int, end: int, number: int) -> list[pb.Field]:
        return [
            f for f in pb.iter_fields(self.buf, start, end) if f.number == number and f.wire == 2
        ]

    def model(
        self, start: int, end: int, depth: int, where: str
    ) -> list[tuple[str, int, int, int, str]]:
        out: list[tuple[str, int, int, int, str]] = []
        for f in pb.iter_fields(self.buf, start, end):
            name = MODEL_TYPES.get(f.number)
            if name is None or f.wire != pb.LEN:
                continue
            self.types[name] += 1
            here = f"{where}.{name}"
            if f.number in _PIPELINES:
                for p in self.fields(f.offset, f.end, 1):
                    out.append(("pipeline", p.offset, p.end, depth + 1, here))
            elif f.number == 202:
                out.append(("pipeline", f.offset, f.end, depth + 1, here))
            elif f.number in _NETWORKS:
                out.append(("network", f.offset, f.end, depth + 1, here))
            elif f.number == 555:
                cls = pb.strings(self.buf, f.offset, f.end, frozenset({10}), 256).get(10, "")
                self.report_custom("custom model", cls, here)
            elif f.number == 556:
                self.linked(f.offset, f.end, here)
        return out

    def network(
        self, start: int, end: int, depth: int, where: str
    ) -> list[tuple[str, int, int, int, str]]:
        out: list[tuple[str, int, int, int, str]] = []
        for layer in self.fields(start, end, 1):
            self.layers += 1
            if self.layers > MAX_LAYERS:
                self.ctx.report(SCAN_LIMIT, "Too many layers; the rest was not analysed.")
                return []
            lname = ""
            for f in pb.iter_fields(self.buf, layer.offset, layer.end):
                if f.wire != pb.LEN:
                    continue
                here = f"{where}, layer {lname!r}"
                if f.number == 1:
                    lname = pb.text(self.buf, f, 256)
                elif f.number == 500:
                    cls = pb.strings(self.buf, f.offset, f.end, frozenset({10}), 256).get(10, "")
                    self.report_custom("custom layer", cls, here)
                elif f.number in (605, 615):  # branch {1, 2}, loop {3, 4}: nested networks
                    for g in pb.iter_fields(self.buf, f.offset, f.end):
                        if g.wire == pb.LEN and g.number in ((1, 2) if f.number == 605 else (3, 4)):
                            out.append(("network", g.offset, g.end, depth + 1, here))
        return out

    def report_custom(self, what: str, cls: str, where: str) -> None:
        if cls not in self.custom and len(self.custom) < 100:
            self.custom.append(cls)
        self.ctx.report(
            CUSTOM_LAYER,
            f"The model needs the {what} class {cls!r}, whose code the app must supply.",
            evidence=cls,
            location=where,
        )

    def linked(self, start: int, end: int, where: str) -> None:
        values: dict[int, str] = {}
        for f in self.fields(start, end, 1):  # LinkedModelFile
            for g in pb.iter_fields(self.buf, f.offset, f.end):
                if g.number in (1, 2) and g.wire == pb.LEN:  # StringParameter.defaultValue = 1
                    values[g.number] = pb.strings(
                        self.buf, g.offset, g.end, frozenset({1}), 1024
                    ).get(1, "")
        name, path = values.get(1, ""), values.get(2, "")
        self.ctx.report(
            LINKED,
            f"The model links the compiled model {name!r} (search path {path!r}).",
            evidence=f"{name} @ {path}"[:300],
            location=where,
        )


@register
class CoreMLDetector(Detector):
    """Core ML ``Model`` protobufs (``.mlmodel``, and ``model.mlmodel`` inside ``.mlpackage``)."""

    format = "coreml"
    extensions = (".mlmodel",)
    priority = 195

    def matches(self, head: bytes, src: Source) -> bool:
        return looks_like_coreml(head, src)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        buf = src.buffer()
        meta: dict[str, Any] = {}
        walker = _CoreMLWalker(buf, ctx)
        try:
            for f in pb.iter_fields(buf):
                if f.number == 1 and f.wire == pb.VARINT:
                    meta["specification_version"] = f.value
                elif f.number == 10 and f.wire == pb.VARINT:
                    meta["updatable"] = bool(f.value)
                elif f.number == 2 and f.wire == pb.LEN:
                    md = pb.first(buf, f.offset, f.end, 100)
                    if md is not None and md.wire == pb.LEN:
                        info = pb.strings(buf, md.offset, md.end, frozenset({1, 2, 3, 4}), 200)
                        for num, key in ((2, "version"), (3, "author"), (4, "license")):
                            if info.get(num):
                                meta[key] = info[num]
                elif f.number in MODEL_TYPES and "model_type" not in meta:
                    meta["model_type"] = MODEL_TYPES[f.number]
            walker.walk()
        except pb.ProtobufError as exc:
            ctx.report(
                MALFORMED, f"The Core ML protobuf is malformed: {exc}", evidence=str(exc)[:200]
            )
        meta["layer_count"] = walker.layers
        meta["model_types"] = dict(walker.types.most_common(50))
        if walker.custom:
            meta["custom_classes"] = walker.custom
        ctx.metadata.update(meta)
