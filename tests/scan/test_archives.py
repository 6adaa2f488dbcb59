"""Zip / tar / 7z / llamafile containers: members, evasions, bounds, and fuzzing of the readers."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
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

# A malicious pickle with a harmless payload: os.system("true"). Built from raw opcodes; never loaded.
MAL = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
BENIGN = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."


def scan(path: Path, limits: Limits | None = None) -> FileReport:
    opts = ScanOptions(hash=False, jobs=1, limits=limits or Limits())
    return scan_file(str(path), str(path), opts)


def scan_bytes(data: bytes, name: str = "x.bin") -> ScanContext:
    ctx = ScanContext(
        "mem", Limits(max_member_size=8 << 20, max_total_uncompressed=64 << 20), dispatch
    )
    dispatch(ctx, BytesSource(data), name)
    return ctx


def rules(rep: FileReport, at_least: Severity = Severity.INFO) -> set[str]:
    return {f.rule for f in rep.findings if f.severity >= at_least}


def dangerous(rep: FileReport) -> bool:
    return any(f.severity >= Severity.HIGH and "system" in f.evidence for f in rep.findings)


def benign(rep: FileReport) -> bool:
    return not [f for f in rep.findings if f.severity >= Severity.MEDIUM]


def raw_zip(
    members: list[tuple[str, bytes]],
    *,
    method: int = 0,
    prefix: bytes = b"",
    flags: int = 0,
    local_names: dict[str, str] | None = None,
    crcs: dict[str, int] | None = None,
    usizes: dict[str, int] | None = None,
    attrs: dict[str, int] | None = None,
) -> bytes:
    """A zip built by hand so headers can lie (names, flags, CRCs) as attackers make them."""
    out = bytearray(prefix)
    central = bytearray()
    for name, data in members:
        body = data
        if method == 8 and (usizes is None or name not in usizes):
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            body = c.compress(data) + c.flush()
        crc = (crcs or {}).get(name, zlib.crc32(data))
        usize = (usizes or {}).get(name, len(data))
        lname = (local_names or {}).get(name, name).encode()
        cname = name.encode()
        off = len(out) - len(prefix)
        out += (
            struct.pack(
                "<4s5H3L2H",
                b"PK\x03\x04",
                20,
                flags,
                method,
                0,
                0,
                crc,
                len(body),
                usize,
                len(lname),
                0,
            )
            + lname
            + body
        )
        attr = (attrs or {}).get(name, 0)
        made = (3 << 8 | 20) if attr else 20
        central += (
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                made,
                20,
                flags,
                method,
                0,
                0,
                crc,
                len(body),
                usize,
                len(cname),
                0,
                0,
                0,
                0,
                attr,
                off,
            )
            + cname
        )
    cd_off = len(out) - len(prefix)
    out += central
    out += struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), cd_off, 0
    )
    return bytes(out)


def torch_like(data_pkl: bytes, root: str = "archive") -> list[tuple[str, bytes]]:
    return [
        (f"{root}/data.pkl", data_pkl),
        (f"{root}/byteorder", b"little"),
        (f"{root}/data/0", b"\x00" * 64),
        (f"{root}/version", b"3\n"),
    ]


# ---------------------------------------------------------------------- zip basics
def test_malicious_member_under_any_name(tmp_path: Path) -> None:
    p = tmp_path / "m.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("weights/readme.txt", "hello")
        z.writestr("weights/innocent.bin", MAL)
    rep = scan(p)
    assert rep.format == "zip"
    assert dangerous(rep)
    loc = next(f.location for f in rep.findings if "system" in f.evidence)
    assert loc.startswith("weights/innocent.bin")
    assert rep.metadata["members"] == 2


def test_benign_zip_and_npz(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    p = tmp_path / "a.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.txt", "hello" * 100)
        z.writestr("b.pkl", BENIGN)
    assert benign(scan(p))
    np.savez(tmp_path / "a.npz", a=np.arange(10), b=np.random.rand(5, 5))
    np.savez_compressed(tmp_path / "b.npz", a=np.arange(1000), b=np.random.rand(50))
    for name in ("a.npz", "b.npz"):
        rep = scan(tmp_path / name)
        assert rep.format == "numpy-npz"
        assert benign(rep)
        assert [m["name"] for m in rep.metadata["member_list"]] == ["a.npy", "b.npy"]


def test_bad_crc_hides_pickle(tmp_path: Path) -> None:
    """CVE-2025-10156: zipfile refuses a bad CRC, torch does not."""
    p = tmp_path / "crc.pt"
    p.write_bytes(raw_zip(torch_like(MAL), crcs={"archive/data.pkl": 0xDEADBEEF}))
    with pytest.raises(zipfile.BadZipFile), zipfile.ZipFile(p) as z:
        z.read("archive/data.pkl")
    rep = scan(p)
    assert rep.format == "pytorch-zip"
    assert dangerous(rep)
    crc = [f for f in rep.findings if f.rule == "archive.crc-mismatch"]
    assert crc and crc[0].severity == Severity.HIGH


def test_flag_bits_and_name_mismatch(tmp_path: Path) -> None:
    """CVE-2025-1945 (encrypted/patched flag bits on plain data), CVE-2025-1944 (local name differs)."""
    p = tmp_path / "flags.pt"
    p.write_bytes(raw_zip(torch_like(MAL), flags=0x21))
    rep = scan(p)
    assert dangerous(rep)
    assert any(
        f.rule == "archive.header-mismatch" and f.severity >= Severity.HIGH for f in rep.findings
    )
    p2 = tmp_path / "names.pt"
    p2.write_bytes(raw_zip(torch_like(MAL), local_names={"archive/data.pkl": "archive/data.txt"}))
    rep2 = scan(p2)
    assert dangerous(rep2)
    assert any(
        f.rule == "archive.header-mismatch" and "data.txt" in f.evidence for f in rep2.findings
    )


def test_duplicate_names_and_prefix_data(tmp_path: Path) -> None:
    p = tmp_path / "dup.zip"
    p.write_bytes(raw_zip([("model.pkl", BENIGN), ("model.pkl", MAL)]))
    rep = scan(p)
    assert dangerous(rep)
    assert "archive.duplicate-name" in rules(rep, Severity.HIGH)
    p2 = tmp_path / "poly.bin"
    p2.write_bytes(raw_zip([("model.pkl", MAL)], prefix=b"\x89PNG\r\n\x1a\n" + b"\x00" * 200))
    rep2 = scan(p2)
    assert rep2.format == "zip"
    assert dangerous(rep2)
    assert "archive.prefix-data" in rules(rep2, Severity.HIGH)


def test_deflated_and_encrypted_members(tmp_path: Path) -> None:
    p = tmp_path / "d.zip"
    p.write_bytes(raw_zip([("x/y", MAL)], method=8))
    assert dangerous(scan(p))
    p2 = tmp_path / "enc.zip"
    p2.write_bytes(raw_zip([("secret.bin", b"\x13\x37" * 50)], flags=1))
    assert "archive.encrypted" in rules(scan(p2))


def test_no_central_directory(tmp_path: Path) -> None:
    data = raw_zip(torch_like(MAL))
    cut = data[: data.index(b"PK\x01\x02")]
    p = tmp_path / "trunc.pt"
    p.write_bytes(cut)
    rep = scan(p)
    assert dangerous(rep)
    assert "archive.malformed" in rules(rep, Severity.HIGH)


# ---------------------------------------------------------------------- paths and links
def test_zip_traversal_and_symlink(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    link = 0o120777 << 16
    p.write_bytes(
        raw_zip(
            [
                ("../../evil.sh", b"x"),
                ("/etc/cron.d/x", b"y"),
                ("a/../b", b"z"),
                ("lnk", b"../../../etc/passwd"),
                ("ok_lnk", b"sub/file"),
            ],
            attrs={"lnk": link, "ok_lnk": link},
        )
    )
    rep = scan(p)
    trav = [f for f in rep.findings if f.rule == "archive.path-traversal"]
    assert {f.evidence for f in trav if f.severity == Severity.CRITICAL} == {
        "../../evil.sh",
        "/etc/cron.d/x",
    }
    assert any(f.evidence == "a/../b" and f.severity == Severity.HIGH for f in trav)
    links = {f.evidence: f.severity for f in rep.findings if f.rule == "archive.link"}
    assert links["lnk -> ../../../etc/passwd"] == Severity.CRITICAL
    assert links["ok_lnk -> sub/file"] == Severity.MEDIUM


def test_tar_traversal_links_devices(tmp_path: Path) -> None:
    p = tmp_path / "t.tar"
    with tarfile.open(p, "w", format=tarfile.GNU_FORMAT) as t:
        for name, data in (("../evil", b"x"), ("ok/model.pkl", MAL), ("L" * 150 + ".bin", b"z")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        sym = tarfile.TarInfo("passwd")
        sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(sym)
        hard = tarfile.TarInfo("h")
        hard.type, hard.linkname = tarfile.LNKTYPE, "ok/model.pkl"
        t.addfile(hard)
        dev = tarfile.TarInfo("dev")
        dev.type = tarfile.CHRTYPE
        t.addfile(dev)
    rep = scan(p)
    assert rep.format == "tar"
    assert dangerous(rep)
    assert any(
        f.rule == "archive.path-traversal" and f.severity == Severity.CRITICAL for f in rep.findings
    )
    links = {f.evidence: f.severity for f in rep.findings if f.rule == "archive.link"}
    assert links["passwd -> /etc/passwd"] == Severity.CRITICAL
    assert links["h -> ok/model.pkl"] == Severity.MEDIUM
    assert "archive.special-file" in rules(rep)
    assert any(m["name"] == "L" * 150 + ".bin" for m in rep.metadata["member_list"])


def test_pax_tar_benign(tmp_path: Path) -> None:
    p = tmp_path / "b.tar"
    with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("dir/" + "é" * 80 + ".pkl")
        ti.size = len(BENIGN)
        t.addfile(ti, io.BytesIO(BENIGN))
    rep = scan(p)
    assert rep.format == "tar" and benign(rep)
    assert rep.metadata["member_list"][0]["name"].endswith(".pkl")


# ---------------------------------------------------------------------- bounds
def _bomb(size_mib: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\x00" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    body = block * size_mib + c.flush()
    return raw_zip(
        [("zeros.bin", body)], method=8, usizes={"zeros.bin": 0xFFFFFFFF}, crcs={"zeros.bin": 0}
    )


def test_zip_bomb_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "bomb.zip"
    p.write_bytes(_bomb(1024))  # 1 GiB of zeros in ~1 MB
    inflated = Decompressed(monkeypatch, unpack, "_decompressor")
    rep = scan(p)
    assert "archive.bomb" in rules(rep)
    # stopped early: the work is a few MiB of output, not the GiB the member holds
    assert 0 < inflated.bytes <= unpack.RATIO_FLOOR + 4 * unpack._OUT_CHUNK, inflated.bytes


def test_total_budget(tmp_path: Path) -> None:
    p = tmp_path / "many.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(5):
            z.writestr(f"m{i}", bytes(range(256)) * 4096)
    rep = scan(p, Limits(max_total_uncompressed=2 << 20))
    assert "format.scan-limit" in rules(rep)
    rep2 = scan(p, Limits(max_members=2))
    assert "format.scan-limit" in rules(rep2)


def test_deep_nesting(tmp_path: Path) -> None:
    data = MAL
    for i in range(10):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(f"level{i}.zip" if i else "inner.bin", data)
        data = buf.getvalue()
    p = tmp_path / "deep.zip"
    p.write_bytes(data)
    rep = scan(p)
    assert "archive.too-deep" in rules(rep, Severity.MEDIUM)
    shallow = tmp_path / "shallow.zip"
    data = MAL
    for i in range(3):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(f"l{i}", data)
        data = buf.getvalue()
    shallow.write_bytes(data)
    rep2 = scan(shallow)
    assert dangerous(rep2)
    assert any(f.location.startswith("l2/l1/l0") for f in rep2.findings)


# ---------------------------------------------------------------------- 7z, llamafile, masquerade
def test_7z_nullifai(tmp_path: Path) -> None:
    """nullifAI: a PyTorch archive 7z-compressed, with a pickle broken right after its payload."""
    py7zr = pytest.importorskip("py7zr")
    broken = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R\xff\xfe garbage"
    pt = raw_zip(torch_like(broken))
    p = tmp_path / "model.7z"
    with py7zr.SevenZipFile(p, "w") as z:
        z.writestr(pt, "model.pt")
        z.writestr(b"hello", "notes.txt")
    rep = scan(p)
    assert rep.format == "7z"
    assert dangerous(rep)
    assert {m["name"]: m["format"] for m in rep.metadata["member_list"]}[
        "model.pt"
    ] == "pytorch-zip"


def test_7z_benign_and_corrupt(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    p = tmp_path / "b.7z"
    with py7zr.SevenZipFile(p, "w") as z:
        z.writestr(BENIGN, "a.pkl")
    assert benign(scan(p))
    data = p.read_bytes()
    (tmp_path / "c.7z").write_bytes(data[: len(data) - 7])
    rep = scan(tmp_path / "c.7z")
    assert "format.analysis-failed" not in rules(rep)


def test_llamafile(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    gpath = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(gpath), "llama")
    w.add_name("tiny")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    stub = b"MZqFpD='\n#!/bin/sh\nexec llamafile\n" + b"\x00" * 4000
    p = tmp_path / "tiny.llamafile"
    p.write_bytes(
        raw_zip([("tiny.gguf", gpath.read_bytes()), (".args", b"-m\ntiny.gguf\n")], prefix=stub)
    )
    rep = scan(p)
    assert rep.format == "llamafile"
    assert rep.metadata["executable"] == "ape"
    assert benign(rep)
    assert any(m["name"] == "tiny.gguf" for m in rep.metadata["member_list"])


def test_zip_named_gguf_is_masquerade(tmp_path: Path) -> None:
    p = tmp_path / "model.gguf"
    p.write_bytes(raw_zip(torch_like(BENIGN)))
    rep = scan(p)
    assert any(f.rule == "format.masquerade" and f.severity >= Severity.HIGH for f in rep.findings)


def test_keras_v3(tmp_path: Path) -> None:
    import os
    import warnings

    os.environ.setdefault("KERAS_BACKEND", "torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras = pytest.importorskip("keras")
        inp = keras.Input((8,))
        dense = keras.Model(inp, keras.layers.Dense(4)(inp))
        dense.save(tmp_path / "dense.keras")
        lam = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp))
        lam.save(tmp_path / "lam.keras")
    rep = scan(tmp_path / "dense.keras")
    assert rep.format == "keras-v3"
    assert benign(rep), rep.findings
    assert {m["name"]: m["format"] for m in rep.metadata["member_list"]}["config.json"] == (
        "keras-config"
    )
    assert "keras.lambda-layer" in rules(scan(tmp_path / "lam.keras"), Severity.MEDIUM)


# ---------------------------------------------------------------------- fuzzing
def _valid_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", BENIGN)
        z.writestr("archive/data/0", b"\x01" * 40)
        z.writestr("c.txt", b"hello " * 30, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _valid_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in (("pickle", BENIGN), ("a/" + "n" * 120, b"x" * 700)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


VALID = [_valid_zip(), _valid_tar(), raw_zip([("a", MAL)], prefix=b"#!/bin/sh\n")]
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    st.sampled_from(range(len(VALID))),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 1 << 16),
)
def test_mutated_containers_never_crash(which: int, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID[which])
    for pos, val in edits:
        data[pos % len(data)] = val
    data = data[: max(1, len(data) - cut % len(data))]
    ctx = scan_bytes(bytes(data))
    assert not [f for f in ctx.findings if f.rule == "format.analysis-failed"], ctx.findings


@FUZZ
@given(
    st.binary(max_size=2048),
    st.sampled_from([b"PK\x03\x04", b"", b"7z\xbc\xaf\x27\x1c", b"MZqFpD", b"PK\x05\x06"]),
)
def test_random_bytes_never_crash(data: bytes, head: bytes) -> None:
    ctx = scan_bytes(head + data + (b"PK\x05\x06" + data[:18] if len(data) % 3 == 0 else b""))
    assert not [f for f in ctx.findings if f.rule == "format.analysis-failed"], ctx.findings
