"""Runtime model stores, each parsed from its on-disk format (no runtime needed)."""

from __future__ import annotations

import importlib

from modelward.inventory.stores.base import Store, StoreItem, StoreResult

STORE_MODULES = (
    "ollama", "huggingface", "lmstudio", "llamacpp", "gpt4all", "jan", "localai", "textgen",
    "comfyui", "a1111", "torchhub",
)  # fmt: skip
"""Modules under this package; each defines ``STORE``, an instance of :class:`Store`."""

__all__ = ["STORE_MODULES", "Store", "StoreItem", "StoreResult", "stores"]


def stores() -> list[Store]:
    out: list[Store] = []
    for name in STORE_MODULES:
        try:
            mod = importlib.import_module(f"modelward.inventory.stores.{name}")
        except ModuleNotFoundError as exc:  # a store module not written yet
            if exc.name != f"modelward.inventory.stores.{name}":
                raise
            continue
        out.append(mod.STORE)
    return out
