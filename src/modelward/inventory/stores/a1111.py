"""Automatic1111's Stable Diffusion web UI (and Forge): ``models/{Stable-diffusion,Lora,VAE,...}``.

Install folders recognised: ``~/stable-diffusion-webui`` and ``~/stable-diffusion-webui-forge``;
their ``models`` and ``embeddings`` (textual inversions, often pickled ``.pt`` files) folders are the
store. ``source.name`` is the path below that folder; ``metadata["a1111"]["category"]`` is the
first folder (``Stable-diffusion``, ``Lora``, ``VAE``, ``ESRGAN`` ...) or ``embeddings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from modelward.inventory.stores.base import StoreResult
from modelward.inventory.stores.folder import item, model_files

INSTALLS = ("stable-diffusion-webui", "stable-diffusion-webui-forge")


class A1111Store:
    """``models`` and ``embeddings`` of an Automatic1111 (or Forge) install in the home."""

    kind = "a1111"

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        return [home / name / sub for name in INSTALLS for sub in ("models", "embeddings")]

    def collect(self, root: Path) -> StoreResult:
        result = StoreResult()
        for found in model_files(root, result):
            if root.name == "embeddings":
                category: str | None = "embeddings"
            else:
                category = found.rel.split("/", 1)[0] if "/" in found.rel else None
            result.items.append(item(self.kind, found, name=found.rel, meta={"category": category}))
        return result


STORE = A1111Store()
