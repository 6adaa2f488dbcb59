"""ComfyUI's model folders (``<install>/models/{checkpoints,loras,vae,...}``) under a user's home.

Install folders recognised: a git checkout at ``~/ComfyUI``, comfy-cli's default workspace
``~/comfy/ComfyUI`` and ComfyUI Desktop's base path ``~/Documents/ComfyUI``. Folders that
``extra_model_paths.yaml`` adds are not read (they are outside the store; inventory them as roots).
Each file's ``source.name`` is its path below ``models`` (``checkpoints/sd_xl_base.safetensors``);
``metadata["comfyui"]["category"]`` is the first folder (``checkpoints``, ``loras``, ``vae`` ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from modelward.inventory.stores.base import StoreResult
from modelward.inventory.stores.folder import item, model_files

INSTALLS = (("ComfyUI",), ("comfy", "ComfyUI"), ("Documents", "ComfyUI"))


class ComfyUIStore:
    """``models`` of a ComfyUI install in the home."""

    kind = "comfyui"

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        return [home.joinpath(*parts, "models") for parts in INSTALLS]

    def collect(self, root: Path) -> StoreResult:
        result = StoreResult()
        for found in model_files(root, result):
            category = found.rel.split("/", 1)[0] if "/" in found.rel else None
            result.items.append(item(self.kind, found, name=found.rel, meta={"category": category}))
        return result


STORE = ComfyUIStore()
