"""LM Studio's model folder: ``<LM Studio home>/models/<publisher>/<repo>/<file>``.

The LM Studio home is ``~/.lmstudio`` unless ``~/.lmstudio-home-pointer`` names another folder
(one absolute path; read bounded); the pre-0.3 folder ``~/.cache/lm-studio/models`` is read too.
Downloads mirror the Hugging Face repo they came from (``lmstudio-community/Qwen3-8B-GGUF``), so
a file two folders down has ``source.name`` and ``source.repo`` ``publisher/repo`` when both parts
are valid Hub names; ``metadata["lmstudio"]["file"]`` is the path inside the repo. MLX models
(folders of safetensors with a ``config.json``) live alongside and are listed the same way.
A store reached through the pointer says so in ``metadata["lmstudio"]["home_pointer"]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelward.inventory.fsread import read_bounded
from modelward.inventory.stores.base import StoreResult
from modelward.inventory.stores.folder import item, model_files

MAX_POINTER = 4096
POINTER = ".lmstudio-home-pointer"
_HUB_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def hub_repo(publisher: str, repo: str) -> str | None:
    """``publisher/repo`` when both are valid Hub names (no ``--`` or ``..``), else None."""
    for part in (publisher, repo):
        if not _HUB_PART.fullmatch(part) or "--" in part or ".." in part:
            return None
    return f"{publisher}/{repo}"


def read_pointer(path: Path) -> Path | None:
    """The absolute folder named by an ``.lmstudio-home-pointer`` file, else None."""
    raw = read_bounded(str(path), MAX_POINTER)
    if isinstance(raw, str):
        return None
    text = raw.decode("utf-8", "replace").strip()
    if not text or "\n" in text or "\x00" in text:
        return None
    folder = Path(os.path.expanduser(text)) if text[0] == "~" else Path(text)
    return folder if folder.is_absolute() else None


class LMStudioStore:
    """``models`` under the LM Studio home (and the legacy cache folder)."""

    kind = "lmstudio"

    def __init__(self) -> None:
        self.pointed: dict[str, str] = {}
        """Real path of a models folder found through a pointer -> the pointer file."""

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        out: list[Path] = []
        pointer = home / POINTER
        lm_home = read_pointer(pointer)
        if lm_home is not None:
            self.pointed[os.path.realpath(lm_home / "models")] = str(pointer)
            out.append(lm_home / "models")
        out.append(home / ".lmstudio" / "models")
        out.append(home / ".cache" / "lm-studio" / "models")
        return list(dict.fromkeys(out))

    def collect(self, root: Path) -> StoreResult:
        result = StoreResult()
        pointer = self.pointed.get(os.path.realpath(root))
        for found in model_files(root, result):
            parts = found.rel.split("/")
            meta: dict[str, Any] = {}
            if pointer is not None:
                meta["home_pointer"] = pointer
            if len(parts) >= 3:
                name: str = f"{parts[0]}/{parts[1]}"
                repo = hub_repo(parts[0], parts[1])
                meta["publisher"] = parts[0]
                meta["file"] = "/".join(parts[2:])
            else:
                name, repo = found.rel, None
            result.items.append(item(self.kind, found, name=name, repo=repo, meta=meta))
        return result


STORE = LMStudioStore()
