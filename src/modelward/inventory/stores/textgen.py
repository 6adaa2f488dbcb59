"""text-generation-webui (oobabooga): ``<install>/models`` and ``loras`` (newer: under ``user_data``).

Only an install in the home is recognised (``~/text-generation-webui``); a model is a file in
``models`` (GGUF) or a folder there (``download-model.py`` names it ``<org>_<repo>``: the split is
ambiguous, so ``source.repo`` stays None and the folder name is ``source.name``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from modelward.inventory.stores.base import StoreResult
from modelward.inventory.stores.folder import item, model_files

INSTALL = "text-generation-webui"


class TextGenStore:
    """``models`` and ``loras`` of a text-generation-webui install in the home."""

    kind = "textgen-webui"

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        base = home / INSTALL
        return [
            base / "models",
            base / "loras",
            base / "user_data" / "models",
            base / "user_data" / "loras",
        ]

    def collect(self, root: Path) -> StoreResult:
        result = StoreResult()
        role = "lora" if root.name == "loras" else "model"
        for found in model_files(root, result):
            name = found.rel.split("/", 1)[0]
            meta = {"role": role, "model_folder": name if "/" in found.rel else None}
            result.items.append(item(self.kind, found, name=name, meta=meta))
        return result


STORE = TextGenStore()
