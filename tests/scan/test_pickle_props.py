"""Property tests: the pickle walker and the .npy parser never raise or hang on hostile bytes."""

from __future__ import annotations

import pickle
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from modelward.scan import ScanOptions, scan_file
from modelward.scan.context import Limits, ScanContext
from modelward.scan.engine import dispatch
from modelward.scan.pickle import analyze_pickles, looks_like_pickle
from tests.scan import pickle_samples as ps

_VALID = [
    pickle.dumps({"a": [1.5, 2, "x"], "b": (None, True), "c": {1, 2}}, protocol=p) for p in range(6)
] + [ps.memo_confusion(), ps.computed_name(), ps.build_on_global(), ps.after_stop(), ps.inst()]


def _analyse(data: bytes) -> None:
    ctx = ScanContext("mem", Limits(max_pickle_ops=50_000), dispatch)
    streams = analyze_pickles(data, ctx)
    for s in streams:
        assert s.start <= s.end <= len(data)
    looks_like_pickle(data[:4096])


@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _analyse(data)
    _analyse(b"\x80\x04" + data)


@given(st.sampled_from(_VALID), st.data())
def test_mutated_valid_pickles(base: bytes, data: st.DataObject) -> None:
    buf = bytearray(base)
    for _ in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.integers(0, 2))
        pos = data.draw(st.integers(0, len(buf)))
        if kind == 0 and pos < len(buf):
            buf[pos] = data.draw(st.integers(0, 255))
        elif kind == 1:
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del buf[pos : pos + data.draw(st.integers(1, 8))]
    _analyse(bytes(buf))


@given(st.binary(max_size=512))
def test_scan_file_never_raises(tmp_path_factory, data: bytes) -> None:  # type: ignore[no-untyped-def]
    d: Path = tmp_path_factory.mktemp("p")
    for name, content in (("x.pkl", b"\x80\x02" + data), ("x.npy", b"\x93NUMPY\x01\x00" + data)):
        p = d / name
        p.write_bytes(content)
        rep = scan_file(str(p), name, ScanOptions(hash=False))
        assert not [f for f in rep.findings if f.rule == "format.analysis-failed"]
