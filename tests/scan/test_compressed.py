"""Compression wrappers (gzip, bz2, xz, lzma, zlib, joblib ZF) around pickles and other formats."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelward.models import FileReport, Severity
from modelward.scan import ScanOptions, scan_file
from modelward.scan import members as unpack
from modelward.scan.context import Limits, ScanContext
from modelward.scan.engine import dispatch
from modelward.scan.source import BytesSource
from tests.workcount import Decompressed

MAL = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
BENIGN = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."


def zfile(data: bytes) -> bytes:
    """joblib < 0.10's ``ZF`` container: ZF + hex length padded to 19 + zlib data."""
    return b"ZF" + hex(len(data)).encode().ljust(19) + zlib.compress(data)


WRAPPERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lambda d: lzma.compress(d, format=lzma.FORMAT_XZ),
    "lzma-alone": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "zlib": zlib.compress,
    "joblib-zfile": zfile,
}


def scan(path: Path, limits: Limits | None = None) -> FileReport:
    return scan_file(
        str(path), str(path), ScanOptions(hash=False, jobs=1, limits=limits or Limits())
    )


def dangerous(rep: FileReport) -> bool:
    return any(f.severity >= Severity.HIGH and "system" in f.evidence for f in rep.findings)


def benign(rep: FileReport) -> bool:
    return not [f for f in rep.findings if f.severity >= Severity.MEDIUM]


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_malicious_pickle_in_each_wrapper(tmp_path: Path, kind: str) -> None:
    p = tmp_path / "model.joblib"
    p.write_bytes(WRAPPERS[kind](MAL))
    rep = scan(p)
    assert rep.format == "joblib"
    assert rep.metadata["compression"] == kind
    assert dangerous(rep)
    assert any(f.location.startswith("model.joblib, opcode") for f in rep.findings)


@pytest.mark.parametrize("compress", ["zlib", "gzip", "bz2", "xz", "lzma"])
def test_real_joblib_files_are_benign(tmp_path: Path, compress: str) -> None:
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    p = tmp_path / f"m.{compress}.joblib"
    joblib.dump({"coef": np.arange(50.0), "names": ["a", "b"]}, p, compress=(compress, 3))
    rep = scan(p)
    assert rep.format == "joblib"
    assert benign(rep), rep.findings


def test_wrapper_around_other_formats(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("weights.pkl")
        ti.size = len(MAL)
        t.addfile(ti, io.BytesIO(MAL))
    p = tmp_path / "bundle.tar.gz"
    p.write_bytes(gzip.compress(buf.getvalue()))
    rep = scan(p)
    assert rep.format == "tar"
    assert rep.metadata["compression"] == "gzip"
    assert dangerous(rep)
    assert any(f.location.startswith("bundle.tar/weights.pkl") for f in rep.findings)


def test_broken_stream_after_payload(tmp_path: Path) -> None:
    data = gzip.compress(MAL + bytes(range(256)) * 400)
    p = tmp_path / "cut.pkl.gz"
    p.write_bytes(data[: len(data) // 2])
    rep = scan(p)
    assert dangerous(rep)
    assert any(f.rule == "archive.malformed" and f.severity >= Severity.HIGH for f in rep.findings)


def test_multistream_and_trailing(tmp_path: Path) -> None:
    p = tmp_path / "two.gz"
    p.write_bytes(gzip.compress(BENIGN[:-1]) + gzip.compress(b"."))
    rep = scan(p)
    assert rep.metadata["uncompressed_size"] == len(BENIGN)
    p2 = tmp_path / "trail.bz2"
    p2.write_bytes(bz2.compress(MAL) + b"junk after the stream")
    rep2 = scan(p2)
    assert dangerous(rep2)
    assert "archive.trailing-data" in {f.rule for f in rep2.findings}


def test_bomb_and_nesting_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = zlib.compressobj(9)
    first = c.compress(b"\x00" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)  # with the zlib header
    block = c.compress(b"\x00" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    p = tmp_path / "bomb.z"
    p.write_bytes(first + block * 511 + c.flush())
    inflated = Decompressed(monkeypatch, unpack, "_decompressor")
    rep = scan(p)
    assert "archive.bomb" in {f.rule for f in rep.findings}
    # stopped early: a few MiB of output, not the 512 MiB the stream holds
    assert 0 < inflated.bytes <= unpack.RATIO_FLOOR + 4 * unpack._OUT_CHUNK, inflated.bytes
    data = MAL
    for _ in range(9):
        data = gzip.compress(data)
    (tmp_path / "deep.gz").write_bytes(data)
    assert "archive.too-deep" in {f.rule for f in scan(tmp_path / "deep.gz").findings}


def test_member_limit_spills_and_truncates(tmp_path: Path) -> None:
    payload = MAL + random.Random(1).randbytes(1 << 20) * 40  # past the in-memory spill point
    p = tmp_path / "big.pkl.gz"
    p.write_bytes(gzip.compress(payload, compresslevel=1))
    rep = scan(p, Limits(max_member_size=36 << 20))
    assert dangerous(rep)
    assert "format.scan-limit" in {f.rule for f in rep.findings}


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    st.sampled_from(sorted(WRAPPERS)),
    st.binary(max_size=300),
    st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=5),
)
def test_mutated_wrappers_never_crash(kind: str, body: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(WRAPPERS[kind](MAL + body))
    for pos, val in edits:
        data[pos % len(data)] = val
    ctx = ScanContext("mem", Limits(max_member_size=4 << 20), dispatch)
    dispatch(ctx, BytesSource(bytes(data)), "x.joblib")
    assert not [f for f in ctx.findings if f.rule == "format.analysis-failed"]


@FUZZ
@given(
    st.sampled_from(
        [b"\x1f\x8b\x08", b"BZh91AY&SY", b"\xfd7zXZ\x00", b"\x5d\x00\x00", b"\x78\x9c", b"ZF0x10"]
    ),
    st.binary(max_size=600),
)
def test_random_after_magic_never_crashes(magic: bytes, body: bytes) -> None:
    ctx = ScanContext("mem", Limits(max_member_size=4 << 20), dispatch)
    dispatch(ctx, BytesSource(magic + body), "x.bin")
    assert not [f for f in ctx.findings if f.rule == "format.analysis-failed"]
