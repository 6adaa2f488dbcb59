"""A policy folder checked the way an agent will use it, before it becomes a bundle.

``modelward fleet policy push`` runs this on the admin's machine and the server runs it again on
what it receives: the ``.rego`` files must compile and evaluate (over an empty inventory, with the
folder's own settings), ``settings.yaml`` and ``waivers.yaml`` must load. A broken bundle is refused
with ``file:line`` and never reaches an agent (which would keep its last good bundle, silently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelward.fleet.bundle import SETTINGS_FILE, read_folder

EMPTY_INVENTORY: dict[str, Any] = {
    "schema": "modelward.inventory/v1",
    "host": {},
    "artifacts": [],
    "runtimes": [],
    "packages": [],
    "errors": [],
}


def check_folder(folder: Path) -> dict[str, Any]:
    """The bundle content of ``folder`` (see :func:`~modelward.fleet.bundle.read_folder`), once its
    policy compiles and evaluates. Raises :class:`~modelward.errors.PolicyError` (Rego, with
    ``file:line``) or :class:`~modelward.errors.UsageError` (settings, waivers, size)."""
    from modelward.policy.engine import evaluate
    from modelward.policy.settings import Settings, load_settings

    content = read_folder(folder)  # lists the .rego files, validates settings and waivers
    settings_file = folder / SETTINGS_FILE
    settings = load_settings(settings_file) if settings_file.is_file() else Settings()
    evaluate(EMPTY_INVENTORY, settings, folder)
    return content
