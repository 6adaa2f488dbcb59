"""The torch hub cache: ``checkpoints/`` (``load_state_dict_from_url``) and downloaded hub repos.

Location: ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``
(torch ``hub.py`` ``_get_torch_home``). A checkpoint named ``resnet18-f37072fd.pth`` carries the
first hex digits of its SHA-256 (``check_hash``): ``metadata["torch-hub"]["sha256_prefix"]``.
Files inside a hub repo folder (``<owner>_<repo>_<ref>``, code that ``torch.hub.load`` runs) name
that folder in ``metadata["torch-hub"]["hub_repo"]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelward.inventory.stores.base import StoreResult, env_path
from modelward.inventory.stores.folder import item, model_files

_HASH = re.compile(r"-([a-f0-9]{8,64})\.")
"""torch.hub's ``HASH_REGEX`` (``-([a-f0-9]*)\\.``), with a length so ``-a.pth`` is no hash."""


class TorchHubStore:
    """The torch hub folder of a user."""

    kind = "torch-hub"

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        out: list[Path] = []
        torch_home = env_path(env, "TORCH_HOME")
        if torch_home is not None:
            out.append(torch_home / "hub")
        xdg = env_path(env, "XDG_CACHE_HOME")
        if xdg is not None:
            out.append(xdg / "torch" / "hub")
        out.append(home / ".cache" / "torch" / "hub")
        return list(dict.fromkeys(out))

    def collect(self, root: Path) -> StoreResult:
        result = StoreResult()
        for found in model_files(root, result):
            first, _, rest = found.rel.partition("/")
            meta: dict[str, Any] = {}
            if first == "checkpoints" and rest:
                name = rest
                m = _HASH.search(rest.rsplit("/", 1)[-1])
                meta["sha256_prefix"] = m.group(1) if m else None
            else:
                name = found.rel
                meta["hub_repo"] = first if rest else None
            result.items.append(item(self.kind, found, name=name, meta=meta))
        return result


STORE = TorchHubStore()
