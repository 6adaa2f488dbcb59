"""GPT4All's model folder: the app data folder (or the ``modelPath`` of its settings) and the bindings' cache.

Locations (Qt ``AppLocalDataLocation``): ``~/.local/share/nomic.ai/GPT4All`` (Linux),
``~/Library/Application Support/nomic.ai/GPT4All`` (macOS), ``~/AppData/Local/nomic.ai/GPT4All``
(Windows); the Python bindings download to ``~/.cache/gpt4all``. The desktop app's settings
(``~/.config/nomic.ai/GPT4All.ini``, Windows ``~/AppData/Roaming/nomic.ai/GPT4All.ini``) may move
the folder with ``modelPath=``: that folder is a location too, and its items say so in
``metadata["gpt4all"]["model_path_setting"]`` (the settings file; it is read bounded, line by line).
Models are files in the folder itself (GGUF; older ``.bin``), so the walk goes two folders deep.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from modelward.inventory.fsread import read_bounded
from modelward.inventory.stores.base import StoreResult
from modelward.inventory.stores.folder import item, model_files

MAX_SETTINGS = 256 << 10
APP = ("nomic.ai", "GPT4All")
SETTINGS = (
    (".config", "nomic.ai", "GPT4All.ini"),
    ("AppData", "Roaming", "nomic.ai", "GPT4All.ini"),
)


def model_path_setting(text: str) -> str | None:
    """The ``modelPath=`` value of a Qt settings file (the last one wins, as in QSettings)."""
    found: str | None = None
    for n, line in enumerate(text.splitlines()):
        if n >= 10_000:
            break
        key, sep, value = line.partition("=")
        if sep and key.strip() == "modelPath":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found = value or None
    return found


class GPT4AllStore:
    """The GPT4All desktop app's model folder and the Python bindings' cache."""

    kind = "gpt4all"

    def __init__(self) -> None:
        self.configured: dict[str, str] = {}
        """Real path of a folder named by ``modelPath`` -> the settings file naming it."""

    def locations(self, home: Path, env: Mapping[str, str]) -> list[Path]:
        out: list[Path] = []
        for parts in SETTINGS:
            ini = home.joinpath(*parts)
            raw = read_bounded(str(ini), MAX_SETTINGS)
            if isinstance(raw, bytes):
                value = model_path_setting(raw.decode("utf-8", "replace"))
                if value and "\x00" not in value:
                    folder = Path(os.path.expanduser(value) if value[0] == "~" else value)
                    if not folder.is_absolute():
                        continue  # relative to an unknown working folder: not guessed
                    self.configured[os.path.realpath(folder)] = str(ini)
                    out.append(folder)
        out += [
            home / ".local" / "share" / APP[0] / APP[1],
            home / "Library" / "Application Support" / APP[0] / APP[1],
            home / "AppData" / "Local" / APP[0] / APP[1],
            home / ".cache" / "gpt4all",
        ]
        return list(dict.fromkeys(out))

    def collect(self, root: Path) -> StoreResult:
        result = StoreResult()
        setting = self.configured.get(os.path.realpath(root))
        for found in model_files(root, result, max_depth=2):
            meta = {"model_path_setting": setting} if setting else {}
            result.items.append(item(self.kind, found, name=found.rel, meta=meta))
        return result


STORE = GPT4AllStore()
