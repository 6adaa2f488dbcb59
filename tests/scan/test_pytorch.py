"""PyTorch checkpoints written by torch itself (zip, legacy, TorchScript) and malicious variants."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelward.models import FileReport, Severity
from modelward.scan import ScanOptions, scan_file
from modelward.scan.context import Limits, ScanContext
from modelward.scan.engine import dispatch
from modelward.scan.source import BytesSource

torch = pytest.importorskip("torch")

MAL = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."


def scan(path: Path) -> FileReport:
    return scan_file(str(path), str(path), ScanOptions(hash=False, jobs=1))


def benign(rep: FileReport) -> bool:
    return not [f for f in rep.findings if f.severity >= Severity.MEDIUM]


def dangerous(rep: FileReport) -> bool:
    return any(f.severity >= Severity.HIGH and "system" in f.evidence for f in rep.findings)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.l(x)) * 2


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("torch")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still used
        _write_models(d)
    return d


def _write_models(d: Path) -> None:
    state = {"w": torch.randn(16, 16), "b": torch.zeros(16, dtype=torch.float16), "n": 3}
    torch.save(state, d / "zip.pt")
    torch.save(Net().state_dict(), d / "net.bin")
    torch.save(state, d / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(state, d / "legacy4.pt", _use_new_zipfile_serialization=False, pickle_protocol=4)
    torch.jit.save(torch.jit.script(Net()), d / "script.pt")
    torch.jit.save(torch.jit.trace(Net(), torch.zeros(1, 3)), d / "trace.pt")


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("zip.pt", "pytorch-zip"),
        ("net.bin", "pytorch-zip"),
        ("legacy.pt", "pytorch-legacy"),
        ("legacy4.pt", "pytorch-legacy"),
        ("script.pt", "torchscript"),
        ("trace.pt", "torchscript"),
    ],
)
def test_real_checkpoints_are_benign(models: Path, name: str, fmt: str) -> None:
    rep = scan(models / name)
    assert rep.format == fmt
    assert benign(rep), rep.findings
    assert not rep.errors


def test_zip_metadata(models: Path) -> None:
    meta = scan(models / "zip.pt").metadata
    assert meta["byteorder"] == "little"
    assert meta["archive_version"] == "3"
    assert "torch._utils._rebuild_tensor_v2" in meta["globals"]
    formats = {m["name"].split("/", 1)[1]: m["format"] for m in meta["member_list"]}
    assert formats["data.pkl"] == "pickle"
    assert formats["data/0"] == "storage"


def test_legacy_storage_bytes_never_read_as_pickles(tmp_path: Path) -> None:
    # Storage bytes that happen to start like a pickle (0x80 0x02) must not be analysed.
    t = torch.tensor([2.0**-126 * 0] * 0 + [float.fromhex("0x1.0p-127")] * 4)
    torch.save({"t": t}, tmp_path / "l.pt", _use_new_zipfile_serialization=False)
    rep = scan(tmp_path / "l.pt")
    assert rep.metadata["pickles"] == 5
    assert benign(rep)


def test_torchscript_code(models: Path) -> None:
    rep = scan(models / "script.pt")
    code = [f for f in rep.findings if f.rule == "torchscript.code"]
    assert code and code[0].severity == Severity.LOW


def _replace(src: bytes, repl: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, repl.get(info.filename, zin.read(info.filename)))
    return out.getvalue()


def test_malicious_torchscript_code(models: Path, tmp_path: Path) -> None:
    data = (models / "script.pt").read_bytes()
    evil = (
        b"class Net(Module):\n  def forward(self, x: Tensor) -> Tensor:\n"
        b"    _0 = __import__('os').system('true')\n    torch.save(x, '/tmp/x')\n    return x\n"
    )
    p = tmp_path / "evil_script.pt"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        code = next(n for n in z.namelist() if n.endswith(".py") and "linear" not in n)
    p.write_bytes(_replace(data, {code: evil}))
    rep = scan(p)
    calls = {f.evidence: f.severity for f in rep.findings if f.rule == "torchscript.dangerous-call"}
    assert calls["__import__"] == Severity.CRITICAL
    assert calls["torch.save"] == Severity.HIGH
    assert any(f.location.endswith("line 3") for f in rep.findings)


def test_malicious_data_pkl_and_extra_member(models: Path, tmp_path: Path) -> None:
    data = (models / "zip.pt").read_bytes()
    p = tmp_path / "evil.pt"
    p.write_bytes(_replace(data, {"zip/data.pkl": MAL}))
    rep = scan(p)
    assert rep.format == "pytorch-zip"
    assert dangerous(rep)
    assert any(f.location.startswith("zip/data.pkl, opcode at byte") for f in rep.findings)
    # A pickle hidden in a storage member, and one under an unrelated name.
    p2 = tmp_path / "evil2.pt"
    p2.write_bytes(_replace(data, {"zip/data/0": MAL, "zip/byteorder": MAL}))
    rep2 = scan(p2)
    locs = {f.location.split(",")[0] for f in rep2.findings if "system" in f.evidence}
    assert locs == {"zip/data/0", "zip/byteorder"}


def test_legacy_malicious(tmp_path: Path) -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    # Swap the sys_info pickle (third) for a malicious one.
    first = data.index(b".") + 1
    second = data.index(b".", first) + 1
    third = data.index(b"u.", second) + 2
    p = tmp_path / "legacy_evil.bin"
    p.write_bytes(data[:second] + MAL + data[third:])
    rep = scan(p)
    assert rep.format == "pytorch-legacy"
    assert dangerous(rep)
    assert any("sys_info pickle" in f.location for f in rep.findings)


def _legacy_tar(main: bytes, views: bytes = b"\x80\x02].") -> bytes:
    args = b"\x80\x02X\x01\x00\x00\x000X\x03\x00\x00\x00cpuctorch\nFloatStorage\nq\x00\x87q\x01."
    storages = pickle.dumps(1, protocol=2) + args + struct.pack("<q", 2) + b"\x80\x02" * 4 + views
    targs = b"\x80\x02X\x01\x00\x00\x001X\x01\x00\x00\x000ctorch\nFloatTensor\nq\x00\x87q\x01."
    tensors = (
        pickle.dumps(1, protocol=2) + targs + struct.pack("<ii", 1, 0) + struct.pack("<3q", 2, 1, 0)
    )
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, body in (
            ("sys_info", pickle.dumps({"protocol_version": 1001, "little_endian": True}, 2)),
            ("pickle", main),
            ("storages", storages),
            ("tensors", tensors),
        ):
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            t.addfile(ti, io.BytesIO(body))
    return out.getvalue()


def test_legacy_tar(tmp_path: Path) -> None:
    p = tmp_path / "old.tar"
    p.write_bytes(_legacy_tar(pickle.dumps({"a": 1}, protocol=2)))
    rep = scan(p)
    assert rep.format == "pytorch-legacy"
    assert benign(rep), rep.findings
    assert "torch.FloatTensor" in rep.metadata["globals"]
    p2 = tmp_path / "old_evil.pt"
    p2.write_bytes(_legacy_tar(pickle.dumps({"a": 1}, protocol=2), views=MAL))
    rep2 = scan(p2)
    assert dangerous(rep2)
    assert any(f.location.startswith("storages") for f in rep2.findings if "system" in f.evidence)
    p3 = tmp_path / "old_evil2.pt"
    p3.write_bytes(_legacy_tar(MAL))
    assert dangerous(scan(p3))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=6), st.integers(0, 600)
)
def test_mutated_legacy_never_crashes(edits: list[tuple[int, int]], cut: int) -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buf, _use_new_zipfile_serialization=False)
    data = bytearray(buf.getvalue())
    for pos, val in edits:
        data[pos % len(data)] = val
    data = data[: max(1, len(data) - cut)]
    ctx = ScanContext("mem", Limits(), dispatch)
    dispatch(ctx, BytesSource(bytes(data)), "x.pt")
    assert not [f for f in ctx.findings if f.rule == "format.analysis-failed"]
