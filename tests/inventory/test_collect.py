"""The whole inventory on a fake home: stores, loose files, hashes, cache, licenses, JSON."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest

from modelward.inventory import InventoryOptions, collect
from modelward.models import Artifact, Inventory
from tests.inventory.homes import make_hf_cache, make_ollama, tiny_gguf


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "alex"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    make_ollama(home / ".ollama" / "models")
    make_hf_cache(home / ".cache" / "huggingface" / "hub")
    downloads = home / "Downloads"
    downloads.mkdir()
    tiny_gguf(downloads / "renamed.dat")  # a model without a model extension, below the floor
    tiny_gguf(downloads / "phi.gguf")
    (downloads / "evil.pkl").write_bytes(
        b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
    )
    (downloads / "notes.txt").write_text("not a model")
    return home


def run(home: Path, tmp_path: Path, **kw: object) -> Inventory:
    kw.setdefault("runtimes", False)
    options = InventoryOptions(
        processes=False, cache=tmp_path / "cache.sqlite", env={"HOME": str(home)}, **kw
    )
    return collect([home], options)


def by_kind(inv: Inventory, kind: str) -> list[Artifact]:
    return [a for a in inv.artifacts if a.source.kind == kind]


def test_a_home_yields_its_stores_and_loose_models(home: Path, tmp_path: Path) -> None:
    inv = run(home, tmp_path)
    kinds = {a.source.kind for a in inv.artifacts}
    assert {"ollama", "huggingface", "file"} <= kinds
    loose = {Path(a.path).name: a for a in by_kind(inv, "file")}
    assert set(loose) == {"phi.gguf", "evil.pkl"}
    assert loose["phi.gguf"].format == "gguf"
    assert loose["evil.pkl"].findings[0].rule == "pickle.dangerous-global"
    llama = [
        a for a in by_kind(inv, "ollama") if a.source.name and a.source.name.startswith("llama3.1")
    ]
    assert llama and llama[0].format == "gguf"
    assert llama[0].license.id == "llama3.1"
    hf = [
        a
        for a in by_kind(inv, "huggingface")
        if a.path.endswith(".safetensors") or a.format == "safetensors"
    ]
    assert hf and hf[0].source.repo == "org/tiny" and hf[0].license.id == "apache-2.0"
    assert inv.host.agent_version == "0.1.0"


def test_hashes_are_right_store_named_or_computed(home: Path, tmp_path: Path) -> None:
    inv = run(home, tmp_path)
    for a in inv.artifacts:
        if a.sha256 is None or a.metadata.get("ollama", {}).get("role") == "manifest":
            continue
        if a.source.kind == "ollama" and "partial" in a.path:
            continue
        assert hashlib.sha256(Path(a.path).read_bytes()).hexdigest() == a.sha256, a.path


def test_second_run_hashes_nothing_new(home: Path, tmp_path: Path) -> None:
    first = run(home, tmp_path)
    pkl = home / "Downloads" / "evil.pkl"
    before = {a.path: a.sha256 for a in first.artifacts}
    # Make the cached answer observable: a second run must reuse it, not hash again.
    import sqlite3

    con = sqlite3.connect(tmp_path / "cache.sqlite")
    rows = con.execute("select count(*) from sqlite_master").fetchone()
    con.close()
    assert rows[0] >= 1
    second = run(home, tmp_path)
    assert {a.path: a.sha256 for a in second.artifacts} == before
    assert str(pkl) in before


def test_no_hash_keeps_store_named_digests_only(home: Path, tmp_path: Path) -> None:
    inv = run(home, tmp_path, hash=False)
    loose = by_kind(inv, "file")
    assert loose and all(a.sha256 is None for a in loose)
    assert any(a.sha256 for a in by_kind(inv, "ollama"))


def test_json_document_matches_the_interfaces_contract(home: Path, tmp_path: Path) -> None:
    import io

    from modelward.report.inventory import write_inventory_json

    buf = io.StringIO()
    write_inventory_json(run(home, tmp_path), buf)
    doc = json.loads(buf.getvalue())
    assert doc["schema"] == "modelward.inventory/v1"
    assert set(doc) == {"schema", "host", "artifacts", "runtimes", "packages", "errors"}
    assert set(doc["host"]) == {"hostname", "os", "user", "collected_at", "agent_version"}
    a = doc["artifacts"][0]
    assert set(a) == {
        "path",
        "size",
        "sha256",
        "format",
        "source",
        "license",
        "metadata",
        "findings",
        "in_use",
    }
    assert set(a["source"]) == {"kind", "name", "repo", "revision"}
    assert set(a["license"]) == {"id", "name", "evidence"}


def test_nothing_outside_the_cache_is_written(home: Path, tmp_path: Path) -> None:
    def snapshot() -> dict[str, tuple[int, int]]:
        out = {}
        for dirpath, _dirs, files in os.walk(home):
            for f in files:
                p = os.path.join(dirpath, f)
                st = os.lstat(p)
                out[p] = (st.st_size, st.st_mtime_ns)
        return out

    before = snapshot()
    run(home, tmp_path)
    assert snapshot() == before


def test_a_plain_folder_gets_its_loose_files_only(home: Path, tmp_path: Path) -> None:
    inv = run(home, tmp_path)
    only = collect([home / "Downloads"], InventoryOptions(processes=False, use_cache=False))
    assert {a.source.kind for a in only.artifacts} == {"file"}
    assert len(only.artifacts) == len(by_kind(inv, "file"))


def test_cli_json_and_exit_code(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelward.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["inventory", str(home / "Downloads"), "--format", "json", "--no-processes"])
    assert exc.value.code == 1  # evil.pkl is critical
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["artifacts"]) == 2


def test_loose_pickle_is_found_whatever_its_size(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "small.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    inv = collect([folder], InventoryOptions(processes=False, use_cache=False))
    assert [Path(a.path).name for a in inv.artifacts] == ["small.pkl"]


def test_a_model_mapped_by_a_running_process_is_in_use(home: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    model = home / "Downloads" / "phi.gguf"
    code = (
        "import mmap, sys, time\n"
        "f = open(sys.argv[1], 'rb'); m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n"
        "print('ready', flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(model)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        options = InventoryOptions(use_cache=False, env={"HOME": str(home)})
        inv = collect([home / "Downloads"], options)
        flags = {Path(a.path).name: a.in_use for a in inv.artifacts}
        assert flags == {"phi.gguf": True, "evil.pkl": False}
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_a_corrupt_hash_cache_is_moved_aside_and_the_run_goes_on(
    home: Path, tmp_path: Path
) -> None:
    db = tmp_path / "cache.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    inv = run(home, tmp_path)
    assert by_kind(inv, "file")
    assert any(p.name.startswith("cache.sqlite.corrupt") for p in tmp_path.iterdir())


def test_runtimes_and_libraries_are_part_of_the_inventory(home: Path, tmp_path: Path) -> None:
    venv = home / "venv"
    dist = venv / "lib" / "python3.11" / "site-packages" / "llama_cpp_python-0.2.50.dist-info"
    dist.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: 0.2.50\n"
    )
    bin_dir = home / "bin"
    bin_dir.mkdir()
    (bin_dir / "ollama").write_bytes(b"\x7fELF not really")
    (bin_dir / "ollama").chmod(0o755)
    env = {"HOME": str(home), "PATH": str(bin_dir)}
    options = InventoryOptions(
        processes=False, use_cache=False, env=env, system_packages=False, hash=False
    )
    inv = collect([home], options)
    pkgs = {p.name.lower().replace("_", "-"): p for p in inv.packages}
    assert "llama-cpp-python" in pkgs
    assert any(f.rule == "package.vulnerable-version" for f in pkgs["llama-cpp-python"].findings)
    assert any(r.name == "ollama" and r.executable == str(bin_dir / "ollama") for r in inv.runtimes)


def test_an_hf_local_dir_download_is_recognised_by_its_metadata(tmp_path: Path) -> None:
    from tests.inventory.homes import COMMIT_A, make_hf_local_dir, tiny_safetensors

    folder = tmp_path / "work" / "tiny-model"
    etags = make_hf_local_dir(
        folder, {"model.safetensors": tiny_safetensors(), "sub/w.gguf": b"GGUF"}
    )
    inv = collect(
        [tmp_path / "work"], InventoryOptions(processes=False, use_cache=False, runtimes=False)
    )
    by_name = {Path(a.path).name: a for a in inv.artifacts}
    st = by_name["model.safetensors"]
    assert st.source.kind == "huggingface" and st.source.revision == COMMIT_A
    assert st.sha256 == etags["model.safetensors"]
