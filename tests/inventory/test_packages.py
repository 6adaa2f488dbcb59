"""Inference libraries in Python environments: venvs, conda, user site; read, never imported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from modelward.inventory import packages
from modelward.models import CollectError, Package, Severity


def dist(site: Path, name: str, version: str, meta: bytes | None = None) -> None:
    folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    text = (
        meta if meta is not None else f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    (folder / "METADATA").write_bytes(
        text if isinstance(text, bytes) else (text + "\nName: evil\nVersion: 0\n").encode()
    )


def venv(root: Path, py: str = "python3.11") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    site = root / "lib" / py / "site-packages"
    site.mkdir(parents=True)
    return site


def find(roots: list[Path], homes: list[Path]) -> tuple[list[Package], list[CollectError]]:
    errors: list[CollectError] = []
    return packages.find_packages(roots, homes, errors, system=False), errors


def test_venvs_conda_and_user_site(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proj = home / "code" / "chat"
    site = venv(proj / ".venv")
    dist(site, "torch", "2.5.1+cu121")
    dist(site, "llama-cpp-python", "0.2.50")
    dist(site, "requests", "2.32.0")  # not an inference library
    dist(site, "transformers", "4.40.0", meta=b"\x00\xff garbage \x00")  # folder name wins
    (site / "ctransformers-0.2.27-py3.11.egg-info").write_text(
        "Metadata-Version: 1.0\nName: ctransformers\nVersion: 0.2.27\n"
    )  # an .egg-info that is a file
    egg = site / "Auto_GPTQ-0.7.1-py3.11.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Name: auto-gptq\nVersion: 0.7.1\n")
    conda = home / "miniconda3"
    (conda / "conda-meta").mkdir(parents=True)
    dist(conda / "lib" / "python3.12" / "site-packages", "vllm", "0.5.0")
    ml = conda / "envs" / "ml"
    (ml / "conda-meta").mkdir(parents=True)
    dist(ml / "lib" / "python3.10" / "site-packages", "diffusers", "0.27.0")
    elsewhere = tmp_path / "opt-envs" / "gpu"
    (elsewhere / "conda-meta").mkdir(parents=True)
    dist(elsewhere / "lib" / "python3.11" / "site-packages", "bitsandbytes", "0.43.0")
    (home / ".conda").mkdir()
    (home / ".conda" / "environments.txt").write_text(f"{elsewhere}\nrelative/ignored\n\n")
    dist(home / ".local" / "lib" / "python3.12" / "site-packages", "ollama", "0.3.0")
    deep = home / "a" / "b" / "c" / "d" / "e" / "f" / "g" / "venv"  # beyond depth 6
    dist(venv(deep), "mlx-lm", "0.1.0")
    hidden = home / "web" / "node_modules" / "x" / "venv"
    dist(venv(hidden), "gpt4all", "2.0.0")

    found, errors = find([home], [home])
    assert not errors
    got = {(p.environment, p.name): p for p in found}
    env = str(proj / ".venv")
    assert got[env, "torch"].version == "2.5.1+cu121"
    assert got[env, "llama-cpp-python"].version == "0.2.50"
    assert got[env, "transformers"].version == "4.40.0"
    assert got[env, "ctransformers"].version == "0.2.27"
    assert got[env, "auto-gptq"].version == "0.7.1"
    assert (env, "requests") not in got
    assert got[str(conda), "vllm"].version == "0.5.0"
    assert got[str(ml), "diffusers"].version == "0.27.0"
    assert got[str(elsewhere), "bitsandbytes"].version == "0.43.0"
    assert got[str(home / ".local"), "ollama"].version == "0.3.0"
    assert not any(p.name in ("mlx-lm", "gpt4all") for p in found)
    assert len(found) == len(got)  # each package once, though conda is found twice
    torch = got[env, "torch"].findings
    assert [(f.rule, f.severity) for f in torch] == [
        ("package.vulnerable-version", Severity.CRITICAL)
    ]
    assert "CVE-2025-32434" in torch[0].evidence and torch[0].location == env
    assert "CVE-2024-34359" in got[env, "llama-cpp-python"].findings[0].message
    assert got[str(conda), "vllm"].findings == ()


def test_package_advisories_direct() -> None:
    assert packages.package_advisories(Package("torch", "2.6.0", "/e")) == []
    assert packages.package_advisories(Package("Llama_CPP.Python", "0.2.71", "/e"))
    assert packages.package_advisories(Package("torch", "nonsense", "/e")) == []
    assert packages.normalize("Llama_CPP.python") == "llama-cpp-python"


def test_running_interpreter_environment() -> None:
    errors: list[CollectError] = []
    found = packages.find_packages([], [], errors, system=True)
    if any(Path(sys.prefix, "lib").glob("python3*/site-packages/torch-*.dist-info")):
        assert any(p.name == "torch" and p.environment == sys.prefix for p in found)


def test_env_root_and_dist_version(tmp_path: Path) -> None:
    site = venv(tmp_path / "v")
    dist(site, "vllm", "0.6.0")
    assert packages.env_root_of(str(tmp_path / "v" / "bin" / "vllm")) == tmp_path / "v"
    assert packages.env_root_of(str(tmp_path / "v" / "python.exe")) == tmp_path / "v"
    assert packages.env_root_of("/usr/share/x") is None
    assert packages.dist_version(tmp_path / "v", "vllm") == "0.6.0"
    assert packages.dist_version(tmp_path / "v", "torch") is None
    assert packages.dist_version(tmp_path / "missing", "vllm") is None


def test_hostile_environments(tmp_path: Path) -> None:
    home = tmp_path / "home"
    site = venv(home / "v")
    (site / "torch-2.0.dist-info").write_text("a file, not a folder")
    (site / "-.dist-info").mkdir()
    (site / "vllm-.dist-info").mkdir()
    os.mkfifo(site / "diffusers-1.0.dist-info")  # never opened for reading: no hang
    loop = home / "loop"
    loop.mkdir()
    (loop / "self").symlink_to(loop)
    (home / ".conda").mkdir()
    (home / ".conda" / "environments.txt").mkdir()  # a folder where a file should be
    big = home / "big" / "lib" / "python3.11" / "site-packages" / "torch-2.1.dist-info"
    big.mkdir(parents=True)
    (big / "METADATA").write_bytes(b"Name: torch\n" + b"x" * (1 << 20))
    (home / "big" / "pyvenv.cfg").write_text("")
    found, errors = find([home], [home])
    names = {(p.name, p.version) for p in found}
    assert ("torch", "2.0") in names  # a single-file dist-info read as PKG-INFO style header
    assert ("torch", "2.1") in names  # version from the folder when the header has none
    assert all(p.name != "vllm" for p in found)
    assert {e.path for e in errors} <= {str(home / ".conda" / "environments.txt")}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_metadata_parser_never_raises(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "METADATA"
        p.write_bytes(data)
        name, version = packages.read_header(p)
        assert name is None or len(name) <= 200
        assert version is None or len(version) <= 100
