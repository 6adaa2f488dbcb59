"""Python environments holding local-inference libraries, read from package metadata, never imported.

Environments are venvs (a ``pyvenv.cfg``) found by a bounded walk under the roots, conda
installations and their ``envs/`` (and ``~/.conda/environments.txt``), pyenv versions, the user
site (``~/.local/lib/python3*/site-packages``, ``~/Library/Python/3.*``) and, optionally, the
running interpreter's prefixes and the system ``dist-packages``. In each, only
``*.dist-info/METADATA`` and ``*.egg-info/PKG-INFO`` headers (``Name``, ``Version``) of the
distributions in :data:`INFERENCE_PACKAGES` are read. Versions are checked against the bundled
advisory table (:func:`package_advisories`); the findings come with each :class:`Package`.
"""

from __future__ import annotations

import glob
import os
import re
import stat
import sys
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from modelward.inventory import advisories
from modelward.inventory.fsread import read_head as read_bytes
from modelward.inventory.walk import PSEUDO_FS_TYPES, PSEUDO_PATHS, VCS_FOLDERS, _mounts
from modelward.models import CollectError, Finding, Package, Severity
from modelward.scan.rules import rule

INFERENCE_PACKAGES = frozenset(
    {
        # engines and servers
        "llama-cpp-python", "vllm", "mlx", "mlx-lm", "mlx-vlm", "ctransformers", "exllamav2",
        "exllamav3", "gpt4all", "sglang", "tensorrt-llm", "mlc-llm", "onnxruntime",
        "onnxruntime-gpu", "openvino", "open-webui",
        # model libraries that download and load weights
        "torch", "transformers", "diffusers", "sentence-transformers", "accelerate",
        "bitsandbytes", "auto-gptq", "autoawq", "optimum", "peft", "safetensors", "gguf",
        # clients wired to local runtimes
        "ollama", "langchain-ollama", "llama-index-llms-ollama", "llama-index-llms-llama-cpp",
    }
)  # fmt: skip
"""Distributions reported (normalised names, PEP 503). Chosen as the libraries that run models
locally or load model files (``torch``, ``transformers``...), plus the clients of local runtimes.
Generic frameworks (``langchain-community``, ``llama-index-core``) are left out: they say nothing
about local inference."""

MAX_DEPTH = 6
MAX_FOLDERS = 100_000
MAX_HEADER = 64 << 10
_SKIP = (
    frozenset(
        {".git", "node_modules", "__pycache__", "site-packages", "dist-packages", ".tox", ".nox"}
    )
    | VCS_FOLDERS
)
_NORM = re.compile(r"[-_.]+")

VULNERABLE_PACKAGE = rule(
    "package.vulnerable-version",
    # the catalogue's default; each finding carries the advisory's own severity
    Severity.HIGH,
    "An installed inference library has a version with a known vulnerability",
    "Upgrade the library in that environment to a fixed version (see the CVE), or remove the "
    "environment if it is unused.",
)


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name (``Llama_CPP.python`` -> ``llama-cpp-python``)."""
    return _NORM.sub("-", name).lower().strip("-")


def site_dirs(env_root: Path) -> list[Path]:
    """The site-packages folders of the environment rooted at ``env_root``."""
    base = glob.escape(str(env_root))
    pats = (
        "lib/python3*/site-packages", "lib64/python3*/site-packages", "lib/python3*/dist-packages",
        "lib/python3/dist-packages", "Lib/site-packages", "lib/site-packages",
        "lib/python/site-packages",
    )  # fmt: skip
    out: list[Path] = []
    seen: set[str] = set()
    for pat in pats:
        for p in sorted(glob.glob(os.path.join(base, pat))):
            real = os.path.realpath(p)
            if real not in seen and os.path.isdir(p):
                seen.add(real)
                out.append(Path(p))
    return out


def read_header(path: Path) -> tuple[str | None, str | None]:
    """``Name`` and ``Version`` from a METADATA or PKG-INFO header (None where absent)."""
    raw = read_bytes(path, MAX_HEADER)
    if raw is None:
        return None, None
    name = version = None
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break  # end of the header: the description follows
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        value = value.strip()
        if key == "name" and name is None and 0 < len(value) <= 200:
            name = value
        elif key == "version" and version is None and 0 < len(value) <= 100:
            version = value
    return name, version


def _split_folder(entry: str) -> tuple[str, str] | None:
    """``(name, version)`` from ``name-1.0.dist-info`` or ``name-1.0-py3.11.egg-info``."""
    stem = entry.rsplit(".", 1)[0]
    parts = stem.split("-")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def read_site(site: Path, wanted: Collection[str] | None = None) -> list[tuple[str, str]]:
    """``(name, version)`` of the distributions in a site-packages folder (only ``wanted`` ones)."""
    out: dict[str, str] = {}
    try:
        with os.scandir(site) as it:
            entries = [e.name for e in it]
    except OSError:
        return []
    for entry in entries[:200_000]:
        if entry.endswith(".dist-info"):
            meta = "METADATA"
        elif entry.endswith(".egg-info"):
            meta = "PKG-INFO"
        else:
            continue
        guess = _split_folder(entry)
        if guess is None or (wanted is not None and normalize(guess[0]) not in wanted):
            continue
        path = site / entry
        header = path / meta if path.is_dir() else path  # an .egg-info may be a single file
        name, version = read_header(header)
        name = name or guess[0]
        version = version or guess[1]
        key = normalize(name)
        if wanted is not None and key not in wanted:
            continue
        if key not in out or key == normalize(guess[0]):
            out[key] = version
    return sorted(out.items())


def dist_version(env_root: Path, dist: str) -> str | None:
    """The version of distribution ``dist`` installed in the environment at ``env_root``."""
    want = {normalize(dist)}
    for site in site_dirs(env_root):
        for _name, version in read_site(site, want):
            return version
    return None


def env_root_of(path: str) -> Path | None:
    """The environment holding a console script or interpreter (``/venv/bin/vllm`` -> ``/venv``)."""
    p = Path(path)
    parent = p.parent
    if parent.name.lower() in ("bin", "scripts"):
        return parent.parent
    if (parent / "conda-meta").is_dir() or (parent / "pyvenv.cfg").is_file():  # Windows env root
        return parent
    return None


# ---------------------------------------------------------------------------- environments
def find_packages(
    roots: Sequence[Path],
    homes: Sequence[Path],
    errors: list[CollectError],
    *,
    system: bool = True,
    max_depth: int = MAX_DEPTH,
) -> list[Package]:
    """The inference libraries installed in the Python environments under ``roots`` and ``homes``.

    ``system``: also the running interpreter's prefixes and the system ``dist-packages``.
    """
    envs: dict[str, Path] = {}

    def add(root: Path) -> None:
        try:
            key = os.path.realpath(root)
            if key not in envs and os.path.isdir(root):
                envs[key] = root
        except (OSError, ValueError):
            pass

    for home in homes:
        for root in _home_envs(home, errors):
            add(root)
    for root in _conda_installs(
        [Path(p) for p in ("/opt/conda", "/opt/miniconda3", "/opt/anaconda3", "/opt/miniforge3")]
    ):
        add(root)  # fmt: skip
    for top in roots:
        for root in _walk_for_envs(top, errors, max_depth):
            add(root)
    if system:
        for prefix in {sys.prefix, sys.base_prefix, "/usr", "/usr/local"}:
            add(Path(prefix))
    out: list[Package] = []
    seen_sites: set[str] = set()
    for root in envs.values():
        for site in site_dirs(root):
            real = os.path.realpath(site)
            if real in seen_sites:  # /usr/lib/python3/dist-packages seen from /usr and a venv
                continue
            seen_sites.add(real)
            for name, version in read_site(site, INFERENCE_PACKAGES):
                pkg = Package(name, version, str(root))
                found = tuple(package_advisories(pkg))
                out.append(Package(name, version, str(root), found) if found else pkg)
    return sorted(out, key=lambda p: (p.environment, p.name, p.version))


_CONDA_DIRS = ("miniconda3", "anaconda3", "miniforge3", "mambaforge", "micromamba", ".mamba")


def _home_envs(home: Path, errors: list[CollectError]) -> Iterator[Path]:
    yield from _conda_installs([home / d for d in _CONDA_DIRS] + [home / ".conda"])
    listed = home / ".conda" / "environments.txt"
    text = read_bytes(listed, MAX_HEADER)
    lines = [] if text is None else text.decode("utf-8", "replace").splitlines()[:1000]
    for line in lines:
        line = line.strip()
        if line and os.path.isabs(line):
            yield Path(line)
    for pat in (".pyenv/versions/*", "Library/Python/3.*"):
        for p in sorted(glob.glob(os.path.join(glob.escape(str(home)), pat)))[:200]:
            yield Path(p)
    yield home / ".local"  # the user site: ~/.local/lib/python3*/site-packages


def _conda_installs(bases: list[Path]) -> Iterator[Path]:
    for base in bases:
        try:
            if (base / "conda-meta").is_dir():
                yield base
            envs = base / "envs"
            if envs.is_dir():
                with os.scandir(envs) as it:
                    names = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
                for name in names[:1000]:
                    yield envs / name
        except OSError:
            continue


def _walk_for_envs(top: Path, errors: list[CollectError], max_depth: int) -> Iterator[Path]:
    """Folders under ``top`` holding a ``pyvenv.cfg`` or ``conda-meta`` (bounded, no symlinks)."""
    special: dict[str, str] = {}
    if os.name == "posix":
        for mp, fstype in _mounts().items():
            if fstype in PSEUDO_FS_TYPES:
                special[mp] = "pseudo"
        for p in PSEUDO_PATHS:
            special[p] = "pseudo"
    try:
        start = os.path.realpath(top)
    except (OSError, ValueError):
        return
    stack: list[tuple[str, int]] = [(start, 0)]
    folders = 0
    while stack:
        path, depth = stack.pop()
        folders += 1
        if folders > MAX_FOLDERS:
            errors.append(
                CollectError(str(top), f"more than {MAX_FOLDERS} folders; Python environments "
                             "beyond them not looked for")
            )  # fmt: skip
            return
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:
            continue  # unreadable folders are the discovery walk's to report
        names = {e.name for e in entries}
        if "pyvenv.cfg" in names or "conda-meta" in names:
            yield Path(path)
            if "conda-meta" in names and "envs" in names:
                stack.append((os.path.join(path, "envs"), depth + 1))
            continue
        if depth >= max_depth:
            continue
        for e in entries:
            if e.name in _SKIP:
                continue
            try:
                if not e.is_dir(follow_symlinks=False):
                    continue
                if sys.platform == "win32" and stat.S_ISLNK(e.stat(follow_symlinks=False).st_mode):
                    continue
            except OSError:
                continue
            if special.get(e.path) == "pseudo":
                continue
            stack.append((e.path, depth + 1))


# ---------------------------------------------------------------------------- advisories
def package_advisories(pkg: Package) -> list[Finding]:
    """Findings for the known vulnerabilities of ``pkg``'s version (bundled advisory table)."""
    out: list[Finding] = []
    for adv in advisories.matching(normalize(pkg.name), pkg.version):
        out.append(
            Finding(
                rule=VULNERABLE_PACKAGE.id,
                severity=adv.severity,
                message=f"{pkg.name} {pkg.version} is affected by {adv.cve}: {adv.title}",
                evidence=f"{adv.cve}: {pkg.name} {adv.affected} (installed {pkg.version})",
                location=pkg.environment,
                remediation=VULNERABLE_PACKAGE.remediation,
            )
        )
    return out
