"""Raw pickle files (protocols 0-5, found by content) and uncompressed joblib dumps."""

from __future__ import annotations

from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.pickle import analyze_pickles, looks_like_pickle
from modelward.scan.source import Source

_JOBLIB_WRAPPERS = ("joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle.NDArrayWrapper")


@register
class PickleDetector(Detector):
    """A file that is one or more pickle streams; ``joblib`` when it carries joblib arrays."""

    format = "pickle"
    extensions = (".pkl", ".pickle", ".joblib")
    priority = 80
    """After every magic-number format (legacy PyTorch files are pickles too)."""

    def matches(self, head: bytes, src: Source) -> bool:
        return looks_like_pickle(head)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        streams = analyze_pickles(src.buffer(), ctx)
        names = {g.full for s in streams for g in s.globals}
        if any(w in names for w in _JOBLIB_WRAPPERS):
            ctx.format = "joblib"
        ctx.metadata["pickle_streams"] = len(streams)
        ctx.metadata["pickle_protocols"] = sorted({s.protocol for s in streams})
        ctx.metadata.setdefault("globals", sorted(names))
