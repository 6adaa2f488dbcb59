"""Versions of installed programs, read from what lies next to them: never by running them.

Sources, in order: an app bundle's ``Info.plist``; an Electron app's ``package.json``; ComfyUI's
``comfyui_version.py`` or ``pyproject.toml``; a version in the path a package manager chose
(Homebrew ``Cellar/<formula>/<version>``, ``/nix/store/<hash>-<name>-<version>``); the
``dist-info`` of the Python environment a console script lives in; the Go build information of
Ollama and LocalAI binaries (a streaming search, bounded to :data:`GO_SCAN_LIMIT` bytes, for the
``-X .../version.Version=`` linker flag Go records with the build settings). Unreadable or
hostile content gives None.
"""

from __future__ import annotations

import json
import os
import plistlib
import re
from collections.abc import Sequence
from pathlib import Path

from modelward.inventory.fsread import read_head as read_bytes
from modelward.inventory.packages import dist_version, env_root_of

GO_SCAN_LIMIT = 256 << 20
GO_BUILDINFO = b"\xff Go buildinf:"
_GO_VERSION = re.compile(
    rb"(?:ollama/version|LocalAI/internal)\.Version=v?(\d[0-9A-Za-z.+\-]{0,40})"
)


def read_version(
    path: str,
    folder: Path | None = None,
    *,
    formulas: Sequence[str] = (),
    dist: str | None = None,
    go: bool = False,
    comfyui: bool = False,
) -> str | None:
    """The version of the program at ``path``; ``folder``: its install folder, if known.

    ``formulas``: package names it has in Homebrew or Nix; ``dist``: the Python distribution
    that provides it; ``go``: look for the Go build information; ``comfyui``: read ComfyUI's
    version file. None when nothing says.
    """
    try:
        return _read_version(path, folder, formulas, dist, go, comfyui)
    except (OSError, ValueError, RecursionError):
        return None


def _read_version(
    path: str,
    folder: Path | None,
    formulas: Sequence[str],
    dist: str | None,
    go: bool,
    comfyui: bool,
) -> str | None:
    real = os.path.realpath(path)
    app = _app_bundle(real) or _app_bundle(path)
    if app is not None:
        v = plist_version(app / "Contents" / "Info.plist")
        if v:
            return v
    if folder is not None:
        for rel in ("resources/app/package.json", "Contents/Resources/app/package.json"):
            v = package_json_version(folder / rel)
            if v:
                return v
        if comfyui:
            v = comfyui_version(folder)
            if v:
                return v
    v = path_version(real, formulas)
    if v:
        return v
    if dist is not None:
        root = env_root_of(path)
        if root is not None:
            v = dist_version(root, dist)
            if v:
                return v
    if go and os.path.isfile(real):
        return go_version(real)
    return None


def _app_bundle(path: str) -> Path | None:
    i = path.find(".app")
    while i >= 0:
        end = i + 4
        if end == len(path) or path[end] in "/\\":
            return Path(path[:end])
        i = path.find(".app", end)
    return None


def plist_version(path: Path) -> str | None:
    """``CFBundleShortVersionString`` (else ``CFBundleVersion``) of an ``Info.plist``."""
    data = _read_small(path)
    if data is None:
        return None
    try:
        info = plistlib.loads(data)
    except Exception:  # plistlib raises several types on garbage
        return None
    if not isinstance(info, dict):
        return None
    for key in ("CFBundleShortVersionString", "CFBundleVersion"):
        v = info.get(key)
        if isinstance(v, str) and 0 < len(v.strip()) <= 64:
            return v.strip()
    return None


def package_json_version(path: Path) -> str | None:
    data = _read_small(path)
    if data is None:
        return None
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    v = obj.get("version") if isinstance(obj, dict) else None
    return v.strip() if isinstance(v, str) and 0 < len(v.strip()) <= 64 else None


_COMFY_VERSION = re.compile(r"""^__version__\s*=\s*["']([^"'\n]{1,40})["']""", re.MULTILINE)
_TOML_VERSION = re.compile(r"""^version\s*=\s*["']([^"'\n]{1,40})["']""", re.MULTILINE)


def comfyui_version(folder: Path) -> str | None:
    data = _read_small(folder / "comfyui_version.py")
    if data is not None and (m := _COMFY_VERSION.search(data.decode("utf-8", "replace"))):
        return m.group(1)
    data = _read_small(folder / "pyproject.toml")
    if data is not None and (m := _TOML_VERSION.search(data.decode("utf-8", "replace"))):
        return m.group(1)
    return None


_CELLAR = re.compile(r"/Cellar/([^/]+)/([^/]+)/")
_NIX = re.compile(r"/nix/store/[0-9a-z]{32}-([^/]+?)-(\d[^/-]*)/")


def path_version(real: str, formulas: Sequence[str]) -> str | None:
    """The version a package manager put in the path (Homebrew Cellar, Nix store)."""
    p = real.replace("\\", "/")
    for m in (_CELLAR.search(p), _NIX.search(p)):
        if m and m.group(1) in formulas:
            v = m.group(2)
            return v.split("_", 1)[0] if "/Cellar/" in p else v  # 0.5.7_1 = Homebrew revision
    return None


def go_version(path: str, limit: int = GO_SCAN_LIMIT) -> str | None:
    """The ``version.Version`` linker flag recorded in a Go binary's build information.

    A bounded, streaming search for the build-info marker (no parsing of the executable format,
    nothing executed); the flag is within the next 64 KiB.
    """
    chunk = 1 << 20
    keep = len(GO_BUILDINFO) - 1
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as fh:
            tail = b""
            offset = 0
            while offset < limit:
                block = fh.read(chunk)
                if not block:
                    return None
                buf = tail + block
                i = buf.find(GO_BUILDINFO)
                if i >= 0:
                    rest = buf[i:] + fh.read(64 << 10)
                    m = _GO_VERSION.search(rest[: 64 << 10])
                    return m.group(1).decode("ascii", "replace") if m else None
                tail = buf[-keep:]
                offset += len(block)
    except OSError:
        return None
    return None


def _read_small(path: Path, limit: int = 1 << 20) -> bytes | None:
    data = read_bytes(path, limit + 1)
    return None if data is None or len(data) > limit else data
