"""Red-team samples for the container and non-pickle scanners: files a real loader would run or
read differently from what the scanner saw. Each test names the technique and the loader it
targets; every sample is built from raw bytes and never loaded."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelward.models import FileReport, Severity
from modelward.scan import ScanOptions, scan_file
from modelward.scan.context import Limits
from tests.scan.fuzz import mutate, scan_written

# os.system("true") with harmless payload; protocol 2 and 3. Never loaded.
MAL = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
MAL3 = b"\x80\x03cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
SSTI = "{{ cycler.__init__.__globals__.os.popen('true').read() }}"


def scan(path: Path, limits: Limits | None = None) -> FileReport:
    return scan_file(
        str(path), str(path), ScanOptions(hash=False, jobs=1, limits=limits or Limits())
    )


def rules_at(report: FileReport, floor: Severity = Severity.HIGH) -> set[str]:
    return {f.rule for f in report.findings if f.severity >= floor}


# ---------------------------------------------------------------------- raw zip builders
def npy(descr: str, payload: bytes) -> bytes:
    head = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}"
    head += " " * ((64 - (10 + len(head) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode() + payload


def local(name: str, data: bytes) -> bytes:
    n = name.encode()
    crc = zlib.crc32(data)
    return (
        struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(n), 0
        )
        + n
        + data
    )


def central(name: str, data: bytes, off: int) -> bytes:
    n = name.encode()
    crc = zlib.crc32(data)
    fields = (b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(data), len(data), len(n), 0, 0, 0, 0, 0)
    return struct.pack("<4s6H3L5H2L", *fields, off) + n


def members(items: list[tuple[str, bytes]], base: int) -> tuple[bytes, bytes]:
    blob, cd = b"", b""
    for name, data in items:
        cd += central(name, data, base + len(blob))
        blob += local(name, data)
    return blob, cd


def z64_record(n: int, cd_size: int, cd_off: int) -> bytes:
    return struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, cd_size, cd_off)


# ---------------------------------------------------------------------- compression wrappers
def test_gzip_members_separated_by_zero_padding(tmp_path: Path) -> None:
    # Technique: multi-member gzip with zero padding between the members. gzip.GzipFile
    # (gzip.open + pickle.load, pandas.read_pickle) skips the zeros and reads the second member,
    # so the pickle is the concatenation; the scanner stopped at the padding (trailing data).
    p = tmp_path / "model.pkl.gz"
    p.write_bytes(gzip.compress(MAL[:10]) + b"\x00" * 8 + gzip.compress(MAL[10:]))
    assert "pickle.dangerous-global" in rules_at(scan(p), Severity.CRITICAL)


def test_xz_stream_followed_by_lzma_alone_stream(tmp_path: Path) -> None:
    # Technique: joblib.load opens .xz/.lzma with lzma.LZMAFile (FORMAT_AUTO), which reads any
    # following xz *or* lzma-alone stream; the scanner only continued on the xz magic.
    p = tmp_path / "model.joblib"
    p.write_bytes(lzma.compress(MAL[:10]) + lzma.compress(MAL[10:], format=lzma.FORMAT_ALONE))
    assert "pickle.dangerous-global" in rules_at(scan(p), Severity.CRITICAL)


def test_lzma_alone_streams_concatenated(tmp_path: Path) -> None:
    # Technique: two lzma-alone streams (joblib compress='lzma'); LZMAFile reads both.
    p = tmp_path / "model.joblib"
    alone = lzma.FORMAT_ALONE
    p.write_bytes(lzma.compress(MAL[:10], format=alone) + lzma.compress(MAL[10:], format=alone))
    assert "pickle.dangerous-global" in rules_at(scan(p), Severity.CRITICAL)


def test_benign_multi_stream_and_trailing_garbage_stay_low(tmp_path: Path) -> None:
    benign = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."
    for name, data in (
        ("a.pkl.gz", gzip.compress(benign) + b"\x00" * 512),
        ("b.pkl.xz", lzma.compress(benign) + b"not a stream at all"),
        ("c.pkl.bz2", bz2.compress(benign) + b"junk"),
    ):
        p = tmp_path / name
        p.write_bytes(data)
        assert not rules_at(scan(p), Severity.MEDIUM), name


# ---------------------------------------------------------------------- zip directories
def test_zip64_end_records_disagree(tmp_path: Path) -> None:
    # Technique: two zip64 end records. miniz (and the scanner) follow the locator's offset;
    # Python's zipfile (numpy.load of an .npz, Keras) reads the record just before the locator.
    # The second directory lists an object array (a pickle) that the first one hides.
    good = [("a.npy", npy("<f8", b"\x00" * 8))]
    bad = [("a.npy", npy("|O", MAL3))]
    blob_a, cd_a = members(good, 0)
    blob_b, cd_b = members(bad, len(blob_a))
    cd_a_off = len(blob_a) + len(blob_b)
    z64_a = cd_a_off + len(cd_a)
    cd_b_off = z64_a + 56
    data = (
        blob_a
        + blob_b
        + cd_a
        + z64_record(1, len(cd_a), cd_a_off)
        + cd_b
        + z64_record(1, len(cd_b), cd_b_off)
        + struct.pack("<4sLQL", b"PK\x06\x07", 0, z64_a, 1)
        + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    )
    p = tmp_path / "arrays.npz"
    p.write_bytes(data)
    with zipfile.ZipFile(p) as z:  # what numpy.load sees (reads the directory, loads nothing)
        assert z.infolist()[0].header_offset == len(blob_a)
    report = scan(p)
    assert "pickle.dangerous-global" in rules_at(report, Severity.CRITICAL)
    assert "archive.malformed" in rules_at(report)


def test_member_only_in_local_headers(tmp_path: Path) -> None:
    # Technique: a local header that the central directory does not list (a second directory,
    # or an offset another reader computes differently, points at it). It is analysed and high.
    hidden = local("archive/data.pkl", MAL)
    blob, cd = members([("x.txt", b"hello")], len(hidden))
    data = (
        hidden
        + blob
        + cd
        + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), len(hidden) + len(blob), 0)
    )
    p = tmp_path / "x.zip"
    p.write_bytes(data)
    report = scan(p)
    assert "pickle.dangerous-global" in rules_at(report, Severity.CRITICAL)
    assert "archive.malformed" in rules_at(report)


def test_data_pkl_listed_past_the_member_cap(tmp_path: Path) -> None:
    # Technique: data.pkl listed after more decoy members than the scanner reads. torch finds
    # <prefix>/data.pkl by name wherever the directory lists it; the scanner stopped at the cap.
    p = tmp_path / "model.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/version", "3\n")
        for i in range(40):
            z.writestr(f"archive/data/{i}", b"\x00" * 8)
        z.writestr("archive/data.pkl", MAL)
    report = scan(p, Limits(max_members=10))
    assert "pickle.dangerous-global" in rules_at(report, Severity.CRITICAL)


def test_benign_npz_and_torch_zip_have_no_hidden_members(tmp_path: Path) -> None:
    p = tmp_path / "a.npz"
    np.savez_compressed(p, a=np.arange(10), b=np.ones((3, 3)))
    q = tmp_path / "b.npz"
    np.savez(q, a=np.arange(10))
    for path in (p, q):
        assert not rules_at(scan(path), Severity.MEDIUM), path


# ---------------------------------------------------------------------- GGUF
def test_gguf_chat_template_as_string_array(tmp_path: Path) -> None:
    # Technique: tokenizer.chat_template stored as a one-item string array. transformers' GGUF
    # loader collapses one-item arrays into the item and uses it as the chat template; the
    # scanner skipped string arrays.
    import gguf

    p = tmp_path / "model.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_array("tokenizer.chat_template", [SSTI])
    w.add_tensor("t", np.zeros(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert "template.ssti" in rules_at(scan(p), Severity.CRITICAL)


# ---------------------------------------------------------------------- 7z, tar, Keras zips
def test_7z_member_with_bad_crc(tmp_path: Path) -> None:
    # Technique: nullifAI-style 7z whose pickle member fails its CRC after the payload. py7zr
    # raises only after the member's data was written (7-Zip keeps such files too); the scanner
    # dropped the member on the exception and reported a medium malformed archive.
    import py7zr

    p = tmp_path / "model.7z"
    with py7zr.SevenZipFile(p, "w", filters=[{"id": py7zr.FILTER_COPY}]) as z:
        z.writestr(MAL + b"\x00" * 100, "archive/data.pkl")
    raw = bytearray(p.read_bytes())
    raw[raw.find(MAL) + len(MAL) + 50] ^= 0xFF
    p.write_bytes(bytes(raw))
    report = scan(p)
    assert "pickle.dangerous-global" in rules_at(report, Severity.CRITICAL)
    assert "archive.malformed" in rules_at(report)


def test_legacy_tar_members_past_the_member_cap(tmp_path: Path) -> None:
    # Technique: torch's legacy tar checkpoint (torch.load -> tarfile.getmember('pickle')) with
    # more decoy members than the scanner lists before the real ones.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        items = [(f"decoy{i}", b"x") for i in range(30)]
        items += [("sys_info", b"\x80\x02}q\x00."), ("storages", b"\x80\x02K\x00.")]
        items += [("tensors", b"\x80\x02K\x00."), ("pickle", MAL)]
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    p = tmp_path / "model"
    p.write_bytes(buf.getvalue())
    report = scan(p, Limits(max_members=10))
    assert report.format == "pytorch-legacy"
    assert "pickle.dangerous-global" in rules_at(report, Severity.CRITICAL)


def test_keras_zip_with_config_only(tmp_path: Path) -> None:
    # Technique: a .keras zip holding only config.json. keras.saving.load_model reads nothing
    # else; the scanner wanted metadata.json or model.weights.h5 before treating it as Keras,
    # so the config was never analysed (only a masquerade was reported).
    cfg = {"module": "os", "class_name": "system", "config": {}, "registered_name": "x"}
    p = tmp_path / "model.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("config.json", json.dumps(cfg))
    report = scan(p)
    assert report.format == "keras-v3"
    assert "keras.dangerous-callable" in rules_at(report, Severity.CRITICAL)


def test_zipped_hf_folder_config_is_not_keras(tmp_path: Path) -> None:
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "_class_name": "X"}
    p = tmp_path / "model.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("config.json", json.dumps(cfg))
    report = scan(p)
    assert report.format == "zip"
    assert not rules_at(report, Severity.MEDIUM)


def v7_header(name: bytes, data: bytes) -> bytes:
    """A v7 tar header (no ustar magic) for ``name`` followed by ``data``, as tarfile reads it."""
    h = bytearray(512)
    h[: len(name)] = name
    h[100:108] = b"0000644\x00"
    h[108:116] = b"0000000\x00"
    h[116:124] = b"0000000\x00"
    h[124:136] = b"%011o\x00" % len(data)
    h[136:148] = b"00000000000\x00"
    h[148:156] = b" " * 8
    h[156] = ord("0")
    h[148:156] = b"%06o\x00 " % sum(h)
    return bytes(h) + data + b"\x00" * (-len(data) % 512)


def test_v7_tar_whose_first_name_is_another_format(tmp_path: Path) -> None:
    # Technique: torch.load tries tarfile on every file that does not start with a zip header
    # (legacy_load), and tarfile accepts a v7 header whatever its name. A first member named like
    # a pickle (or any non-printable bytes, or another format's magic) made the scanner read the
    # file as that format (or as nothing) and never see the tar's 'pickle' member.
    rest = [(b"sys_info", b"\x80\x02}q\x00."), (b"storages", b"\x80\x02K\x00.")]
    rest += [(b"tensors", b"\x80\x02K\x00."), (b"pickle", MAL)]
    for first in (b"\x80\x02K\x01.", b"\x01junk", b"GGUF\x03\x00\x00\x00"):
        p = tmp_path / "model.pt"
        p.write_bytes(b"".join(v7_header(n, d) for n, d in [(first, b""), *rest]) + bytes(1024))
        report = scan(p)
        assert report.format == "pytorch-legacy", first
        assert "pickle.dangerous-global" in rules_at(report, Severity.CRITICAL), first


def test_npz_member_with_a_method_the_scanner_cannot_read(tmp_path: Path) -> None:
    # Technique: an object array (a pickle) compressed with zstd (zip method 93). Python 3.14's
    # zipfile reads it, so numpy.load(allow_pickle=True) runs it; the scanner cannot decompress
    # it and said so at medium only. An unreadable member that a loader opens is high.
    blob, cd = members([("a.npy", npy("|O", MAL))], 0)
    data = bytearray(
        blob + cd + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), len(blob), 0)
    )
    struct.pack_into("<H", data, 8, 93)  # local header method
    struct.pack_into("<H", data, len(blob) + 10, 93)  # central directory method
    p = tmp_path / "arrays.npz"
    p.write_bytes(bytes(data))
    assert "format.scan-limit" in rules_at(scan(p))


def test_member_flagged_encrypted_is_still_analysed(tmp_path: Path) -> None:
    # Hardening: a member whose encryption flag is set on plain bytes is analysed as stored
    # (a reader that ignores the flag reads them), not skipped.
    hidden = b"(cos\nsystem\nS'true'\ntR."  # imports os.system, then breaks
    blob, cd = members([("archive/version", b"3\n"), ("archive/data.pkl", hidden)], 0)
    data = bytearray(
        blob + cd + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 2, 2, len(cd), len(blob), 0)
    )
    data[blob.find(b"PK\x03\x04", 4) + 6] |= 1
    data[len(blob) + cd.find(b"PK\x01\x02", 4) + 8] |= 1
    p = tmp_path / "model.pt"
    p.write_bytes(bytes(data))
    assert "pickle.dangerous-global" in rules_at(scan(p), Severity.CRITICAL)


def test_offsets_shifted_by_concat_differ_between_miniz_and_zipfile(tmp_path: Path) -> None:
    # Technique: bytes between the central directory and the end record make Python's zipfile
    # (and the scanner) add that count ("concat", for prepended data) to every offset and read a
    # second directory placed there; miniz (torch) takes the offsets as they are and reads the
    # first directory, whose member at offset 0 the scanner took for prefix data.
    name = "archive/data.pkl"
    torch_view = local(name, MAL)
    benign = local(name, b"\x80\x02}q\x00.")
    cd_torch = central(name, MAL, 0)
    shift = len(cd_torch)
    cd_python = central(name, b"\x80\x02}q\x00.", len(torch_view) - shift)
    cd_off = len(torch_view) + len(benign)
    data = (
        torch_view
        + benign
        + cd_torch
        + cd_python
        + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(cd_torch), cd_off, 0)
    )
    p = tmp_path / "model.pt"
    p.write_bytes(data)
    with zipfile.ZipFile(p) as z:  # Python's view: the benign member after the shift
        assert z.infolist()[0].header_offset == len(torch_view)
    assert "pickle.dangerous-global" in rules_at(scan(p), Severity.CRITICAL)


def test_keras_model_saved_as_a_folder(tmp_path: Path) -> None:
    # Technique: keras.saving.load_model(folder) loads a folder holding config.json (is_keras_dir)
    # exactly like a .keras zip; a loose config.json was not recognised at all.
    d = tmp_path / "model"
    d.mkdir()
    layer = {"module": "os", "class_name": "function", "config": "system"}
    cfg = {"module": "keras", "class_name": "Sequential", "config": {"layers": [layer]}}
    (d / "config.json").write_text(json.dumps(cfg))
    report = scan(d / "config.json")
    assert report.format == "keras-v3"
    assert "keras.dangerous-callable" in rules_at(report, Severity.CRITICAL)


def test_benign_keras_folder_written_by_keras(tmp_path: Path) -> None:
    import os
    import warnings

    os.environ.setdefault("KERAS_BACKEND", "torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import keras

        inp = keras.Input((6,), name="features")
        out = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(5)(inp))
        keras.Model(inp, out).save(tmp_path / "model", zipped=False)
    configs = list((tmp_path / "model").glob("*.json"))
    assert configs
    for p in configs:
        report = scan(p)
        assert not rules_at(report, Severity.MEDIUM), (p.name, report.findings)
    assert scan(tmp_path / "model" / "config.json").format == "keras-v3"


def test_object_array_cut_by_the_total_budget(tmp_path: Path) -> None:
    # Technique: decoy arrays spend the total decompression budget, then an object array (a
    # pickle) whose payload lies past the first chunk the scanner still reads. numpy.load reads
    # it whole; the scanner saw a medium scan-limit only.
    filler = b"\x80\x02]q\x00(" + b"G\x00\x00\x00\x00\x00\x00\x00\x00" * 300_000 + b"e0"
    obj = npy("|O", filler + MAL[2:])
    p = tmp_path / "arrays.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("decoy.npy", npy("<f8", bytes(range(256)) * 4096))
        z.writestr("obj.npy", obj)
    report = scan(p, Limits(max_total_uncompressed=1 << 20))
    assert "format.scan-limit" in rules_at(report)


# ---------------------------------------------------------------------- properties
def _crafted_samples() -> list[bytes]:
    blob_a, cd_a = members([("a.npy", npy("<f8", bytes(8)))], 0)
    blob_b, cd_b = members([("a.npy", npy("|O", MAL3))], len(blob_a))
    cd_a_off = len(blob_a) + len(blob_b)
    z64 = cd_a_off + len(cd_a)
    dual = (
        blob_a
        + blob_b
        + cd_a
        + z64_record(1, len(cd_a), cd_a_off)
        + cd_b
        + z64_record(1, len(cd_b), z64 + 56)
        + struct.pack("<4sLQL", b"PK\x06\x07", 0, z64, 1)
        + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    )
    streams = gzip.compress(MAL[:10]) + bytes(8) + gzip.compress(MAL[10:])
    xz = lzma.compress(MAL[:10]) + lzma.compress(MAL[10:], format=lzma.FORMAT_ALONE)
    tar = b"".join(v7_header(n, d) for n, d in [(b"\x80\x02K\x01.", b""), (b"pickle", MAL)])
    return [dual, streams, xz, tar + bytes(1024)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_crafted_samples_never_crash(tmp_path: Path, data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(_crafted_samples()))
    scan_written(tmp_path / "sample.bin", mutate(data, sample, flips=8))
