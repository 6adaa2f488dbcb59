"""One file under several names (links, Hugging Face caches, hub revisions): every name gets the
findings a scan of that name alone gives, although the content is analysed once."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import pytest

from modelward.cli import main
from modelward.models import FileReport, Severity
from modelward.scan import ScanOptions, engine, registry, scan
from tests.scan.test_onnx import _external, _model

PICKLE = pickle.dumps({"weights": [1.0, 2.0]}, protocol=4)
NAMES = ("a.pkl", "model.safetensors", "zz.pkl")


def _rules(rep: FileReport) -> list[tuple[str, Severity]]:
    return [(f.rule, f.severity) for f in rep.findings]


def _alone(path: Path) -> FileReport:
    (rep,) = scan([path]).files
    return rep


def _three_names(root: Path, how: str) -> Path:
    """The same pickle as a.pkl, model.safetensors and zz.pkl (links to one blob, or hard links)."""
    blob = root / "blob"
    blob.write_bytes(PICKLE)
    folder = root / "rev"
    folder.mkdir()
    for name in NAMES:
        if how == "symlink":
            (folder / name).symlink_to(blob)
        else:
            os.link(blob, folder / name)
    return folder


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_pickle_under_three_names_is_a_masquerade_under_the_safetensors_one(
    tmp_path: Path, how: str, jobs: int
) -> None:
    folder = _three_names(tmp_path, how)
    files = {Path(f.path).name: f for f in scan([folder], ScanOptions(jobs=jobs)).files}
    assert list(files) == list(NAMES)
    assert _rules(files["model.safetensors"]) == [("format.masquerade", Severity.HIGH)]
    assert files["model.safetensors"].unsafe
    assert _rules(files["a.pkl"]) == [] and _rules(files["zz.pkl"]) == []
    assert {f.format for f in files.values()} == {"pickle"}
    for name, rep in files.items():
        assert rep == _alone(folder / name)


def test_the_command_line_reports_the_masquerade_of_a_linked_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _three_names(tmp_path, "symlink")
    with pytest.raises(SystemExit) as exc:
        main(["scan", str(folder), "--format", "json"])
    assert exc.value.code == 1  # a high finding fails the scan
    doc = json.loads(capsys.readouterr().out)
    rules = {Path(f["path"]).name: [x["rule"] for x in f["findings"]] for f in doc["files"]}
    assert rules == {"a.pkl": [], "model.safetensors": ["format.masquerade"], "zz.pkl": []}


def _hf_cache(root: Path, data: bytes, name: str = "model.safetensors") -> Path:
    """models--acme--m/blobs/<sha> with snapshots/<rev>/<name> linking to it (relative link)."""
    repo = root / "models--acme--m"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "blobs" / "0f1e2d").write_bytes(data)
    (repo / "snapshots" / "abc123" / name).symlink_to(Path("..") / ".." / "blobs" / "0f1e2d")
    return repo


def test_a_hugging_face_cache_gives_the_masquerade_on_the_snapshot_path(tmp_path: Path) -> None:
    repo = _hf_cache(tmp_path, PICKLE)
    snap = repo / "snapshots" / "abc123" / "model.safetensors"
    files = {f.path: f for f in scan([repo]).files}
    assert list(files) == [str(repo / "blobs" / "0f1e2d"), str(snap)]
    assert _rules(files[str(snap)]) == [("format.masquerade", Severity.HIGH)]
    assert _rules(files[str(repo / "blobs" / "0f1e2d")]) == []  # a blob's name promises nothing
    assert files[str(snap)] == _alone(snap)
    assert scan([repo]).fails(Severity.HIGH)


def test_an_empty_file_is_empty_only_under_its_model_name(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    os.link(tmp_path / "model.safetensors", tmp_path / "readme.txt")
    files = {Path(f.path).name: f for f in scan([tmp_path]).files}
    assert _rules(files["model.safetensors"]) == [("format.empty", Severity.LOW)]
    assert _rules(files["readme.txt"]) == []
    for name, rep in files.items():
        assert rep == _alone(tmp_path / name)


# --------------------------------------------------------------------------- every name, alone
def _zip_of_masquerades(n: int) -> bytes:
    """A zip whose ``n`` members are pickles named .safetensors (past the per-rule finding cap)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(n):
            z.writestr(f"m{i:02}.safetensors", PICKLE)
    return buf.getvalue()


CONTENTS: dict[str, bytes] = {
    "pickle": PICKLE,
    "empty": b"",
    "gzip": gzip.compress(PICKLE, mtime=0),  # the member's name is the file's name less .gz
    "noise": bytes(range(7, 107)),  # no known format: the extension picks the detector
    "jinja": b"{% for m in messages %}{{ m.content }}{% endfor %}",  # a chat template by name
    "onnx": _external(_model(), "w.bin"),  # external data is looked up beside the file
    "zip": _zip_of_masquerades(60),
}
ALIASES = (
    "a.pkl",
    "model.safetensors",
    "zz.pkl",
    "notes.txt",
    "noext",
    "model.pt",
    "model.onnx",
    "chat_template.jinja",
    "other.jinja",
    "w.pkl.gz",
    "w.safetensors.gz",
)


def _aliased_tree(root: Path) -> list[Path]:
    """Every content under every name: symlinks to a blob in another folder, one hard link."""
    (root / "blobs").mkdir()
    paths: list[Path] = []
    for kind, data in CONTENTS.items():
        blob = root / "blobs" / kind
        blob.write_bytes(data)
        folder = root / kind
        folder.mkdir()
        (folder / "w.bin").write_bytes(bytes(432))  # the ONNX external data, in this folder only
        for name in ALIASES:
            (folder / name).symlink_to(blob)
        os.link(blob, folder / "hard.safetensors")
        paths += [blob, folder / "hard.safetensors", *(folder / n for n in ALIASES)]
    return paths


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_name_of_a_shared_file_gets_what_a_scan_of_it_alone_gives(
    tmp_path: Path, jobs: int
) -> None:
    paths = _aliased_tree(tmp_path)
    files = {f.path: f for f in scan([tmp_path], ScanOptions(jobs=jobs)).files}
    assert set(map(str, paths)) <= set(files)
    for p in paths:
        assert files[str(p)] == _alone(p), p
    # The cases where the name (or folder) matters did matter:
    masq = files[str(tmp_path / "pickle" / "model.safetensors")]
    assert [f.rule for f in masq.findings] == ["format.masquerade"]
    assert files[str(tmp_path / "gzip" / "w.safetensors.gz")].findings
    assert not files[str(tmp_path / "gzip" / "w.pkl.gz")].findings
    assert files[str(tmp_path / "onnx" / "model.onnx")].findings == ()
    assert files[str(tmp_path / "blobs" / "onnx")].findings  # its external data is missing there
    chat = files[str(tmp_path / "jinja" / "chat_template.jinja")]
    assert chat.metadata.get("chat_template") is True
    assert "chat_template" not in files[str(tmp_path / "jinja" / "other.jinja")].metadata
    zipped = files[str(tmp_path / "zip" / "model.safetensors")]
    assert zipped.metadata["suppressed_findings"]["format.masquerade"] == 11  # 61 - cap of 50


def test_content_is_analysed_once_per_inode_unless_the_analysis_read_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _aliased_tree(tmp_path)
    analysed: list[str] = []
    real = engine.analyse_content

    def counting(path: str, display: str, options: ScanOptions) -> engine.Content:
        analysed.append(path)
        return real(path, display, options)

    monkeypatch.setattr(engine, "analyse_content", counting)
    scan([tmp_path], ScanOptions(jobs=1))
    analysed = [p for p in analysed if not p.endswith("w.bin")]  # a file of its own in each folder
    by_kind = {
        k: sum(Path(p).parent.name == k or p.endswith(f"/blobs/{k}") for p in analysed)
        for k in CONTENTS
    }
    assert by_kind["pickle"] == by_kind["empty"] == by_kind["zip"] == 1
    assert by_kind["onnx"] == 2  # the blob's folder and the folder holding w.bin
    assert by_kind["gzip"] == len(ALIASES) + 2  # every name differs
    assert len(analysed) == len(set(analysed))
    assert len(paths) > len(analysed)


def test_the_formats_that_read_the_file_location_are_declared() -> None:
    """``engine._READS`` must name every format module whose analysis reads ``ctx.path`` or
    ``ctx.folder``; otherwise a second name would get the first name's analysis."""
    formats = Path(registry.__file__).parent / "formats"
    exempt = {"pytorch"}  # hands ctx.path on to a scratch context, reads nothing of it
    reading = {
        p.stem
        for p in formats.glob("*.py")
        if re.search(r"\bctx\.(path|folder)\b", p.read_text(encoding="utf-8"))
    }
    assert reading - exempt == set(engine._READS)
