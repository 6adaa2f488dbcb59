"""NumPy .npy files and joblib dumps written by the real libraries; object arrays are pickles."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from modelward.models import Severity
from modelward.scan import ScanOptions, scan_file
from tests.scan import pickle_samples as ps

np = pytest.importorskip("numpy")


def scan(path: Path):
    return scan_file(str(path), path.name, ScanOptions(hash=False))


def serious(rep) -> list[object]:
    return [f for f in rep.findings if f.severity >= Severity.MEDIUM]


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.ones((2, 3))),
        np.array(["a", "bc"]),
        np.zeros(3, dtype=[("a", "f4"), ("b", "i8")]),
        np.array(3.5),
    ],
)
def test_npy_plain(tmp_path: Path, arr) -> None:
    p = tmp_path / "a.npy"
    np.save(p, arr)
    rep = scan(p)
    assert rep.format == "numpy"
    assert rep.findings == ()
    assert rep.metadata["shape"] == list(arr.shape)
    assert rep.metadata["fortran_order"] == (arr.flags.f_contiguous and not arr.flags.c_contiguous)


def test_npy_object_array_of_ints_is_below_medium(tmp_path: Path) -> None:
    p = tmp_path / "o.npy"
    np.save(p, np.array([1, 2, 3], dtype=object), allow_pickle=True)
    rep = scan(p)
    assert rep.metadata["object_array"] is True
    assert serious(rep) == []
    assert any("_reconstruct" in g for g in rep.metadata["globals"])


def _npy_header(descr: str, shape: str = "(1,)", version: int = 1) -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(text)) + text


def test_npy_object_array_with_payload(tmp_path: Path) -> None:
    p = tmp_path / "evil.npy"
    p.write_bytes(_npy_header("|O") + ps.global_reduce("os", "system", proto=3))
    rep = scan(p)
    f = next(f for f in rep.findings if f.rule == "pickle.dangerous-global")
    assert f.evidence == "os.system" and f.location.startswith("array data")


@pytest.mark.parametrize(
    "data",
    [
        b"\x93NUMPY\x01\x00\xff\xff{}",
        b"\x93NUMPY\x09\x00\x10\x00",
        b"\x93NUMPY\x01\x00\x08\x00not dict",
        b"\x93NUMPY\x02\x00\xff\xff\xff\x7f",
        b"\x93NUMP",
    ],
)
def test_npy_malformed(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "bad.npy"
    p.write_bytes(data)
    rep = scan(p)
    assert any(f.rule == "numpy.malformed" for f in rep.findings)


def test_npy_truncated_data_is_low(tmp_path: Path) -> None:
    p = tmp_path / "t.npy"
    p.write_bytes(_npy_header("<f8", "(1000,)", version=3) + b"\0" * 16)
    rep = scan(p)
    assert [f.severity for f in rep.findings] == [Severity.LOW]


# ---------------------------------------------------------------------- joblib
joblib = pytest.importorskip("joblib")


def test_joblib_arrays_clean(tmp_path: Path) -> None:
    p = tmp_path / "m.joblib"
    obj = {
        "w": np.random.rand(50, 20),
        "i": np.arange(7, dtype=np.int16),
        "f": np.asfortranarray(np.ones((3, 4), dtype=np.float32)),
        "o": np.array([1, "x", None], dtype=object),
        "s": np.array(["ab", "c"]),
        "e": np.zeros((0, 3)),
        "again": np.random.rand(5),
        "tail": "after",
    }
    joblib.dump(obj, p, compress=0)
    rep = scan(p)
    assert rep.format == "joblib"
    assert rep.findings == ()
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in rep.metadata["globals"]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_joblib_protocols(tmp_path: Path, protocol: int) -> None:
    p = tmp_path / "m.pkl"
    joblib.dump([np.arange(10.0), {"k": np.ones(3)}], p, protocol=protocol)
    rep = scan(p)
    assert rep.format == "joblib" and rep.findings == ()


def test_joblib_sklearn_estimator_below_medium(tmp_path: Path) -> None:
    lm = pytest.importorskip("sklearn.linear_model")
    est = lm.LogisticRegression().fit(np.random.rand(20, 3), np.arange(20) % 2)
    p = tmp_path / "est.joblib"
    joblib.dump(est, p)
    rep = scan(p)
    assert serious(rep) == [], [(f.rule, f.evidence) for f in rep.findings]


def test_joblib_payload_after_array(tmp_path: Path) -> None:
    buf = io.BytesIO()
    joblib.dump([np.arange(4.0), "x"], buf := tmp_path / "a.joblib")  # type: ignore[assignment]
    data = Path(buf).read_bytes()
    assert data.endswith(b".")
    evil = data[:-1] + b"0" + ps.global_reduce("os", "system")[:-1] + b"."
    p = tmp_path / "evil.joblib"
    p.write_bytes(evil)
    rep = scan(p)
    assert any(f.evidence == "os.system" for f in rep.findings)


def test_python2_header_with_long_literals_is_read_like_numpy(tmp_path: Path) -> None:
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    p = tmp_path / "py2.npy"
    p.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(16))
    rep = scan_file(str(p), str(p), ScanOptions())
    assert rep.format == "numpy" and rep.findings == ()
    assert rep.metadata["shape"] == [2]


def test_numpy_1_era_object_array_shim_is_allowlisted() -> None:
    from modelward.scan.pickle.globals import Verdict, classify

    assert classify("numpy.core._internal", "_reconstruct")[0] == Verdict.SAFE


def test_scipy_sparse_and_numpy_matrix_are_not_unknown() -> None:
    from modelward.scan.pickle.globals import Verdict, classify

    assert classify("scipy.sparse._coo", "coo_matrix")[0] == Verdict.LIBRARY
    assert classify("scipy.sparse._csr", "csr_array")[0] == Verdict.LIBRARY
    assert classify("scipy.sparse._csr", "save_npz")[0] == Verdict.UNKNOWN
    assert classify("numpy.matrixlib.defmatrix", "matrix")[0] == Verdict.SAFE
