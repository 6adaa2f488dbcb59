"""Finds the models, runtimes and inference libraries on a machine (``modelward inventory``).

Library API::

    from modelward.inventory import collect, InventoryOptions
    inv = collect()                       # the current user's home (all homes as root)
    for a in inv.artifacts:
        print(a.source.kind, a.source.name, a.sha256, a.license.id)
"""

from __future__ import annotations

from modelward.inventory.collect import InventoryOptions, collect, default_roots

__all__ = ["InventoryOptions", "collect", "default_roots"]
