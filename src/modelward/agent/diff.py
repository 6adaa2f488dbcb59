"""What changed between two inventories: the ``added``/``removed`` parts of an agent report.

A state is the inventory keyed the way the server keys it: artifacts by path, runtimes by name,
packages by ``name@environment``. A changed entry is sent again whole in ``added`` (the server
upserts by key); a vanished one is named in ``removed``. A full report puts every entry in
``added`` and replaces the host's state on the server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

KINDS = ("artifacts", "runtimes", "packages")

State = dict[str, dict[str, Any]]
"""``{"artifacts": {path: entry}, "runtimes": {name: entry}, "packages": {name@env: entry}}``."""


def key(kind: str, entry: Mapping[str, Any]) -> str:
    if kind == "artifacts":
        return str(entry.get("path"))
    if kind == "runtimes":
        return str(entry.get("name"))
    return f"{entry.get('name')}@{entry.get('environment')}"


def empty() -> State:
    return {k: {} for k in KINDS}


def state_of(inventory: Mapping[str, Any]) -> State:
    """The state of a ``modelward.inventory/v1`` document."""
    out = empty()
    for kind in KINDS:
        for entry in inventory.get(kind) or []:
            if isinstance(entry, Mapping):
                out[kind][key(kind, entry)] = dict(entry)
    return out


def _same(a: Any, b: Any) -> bool:
    return a == b or json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def delta(old: State | None, new: State) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
    """``(added, removed)`` turning ``old`` into ``new``; ``old=None`` gives everything as added."""
    added: dict[str, list[Any]] = {k: [] for k in KINDS}
    removed: dict[str, list[str]] = {k: [] for k in KINDS}
    for kind in KINDS:
        before = (old or {}).get(kind, {})
        after = new.get(kind, {})
        for k in sorted(after):
            if k not in before or not _same(before[k], after[k]):
                added[kind].append(after[k])
        removed[kind] = sorted(k for k in before if k not in after)
    return added, removed


def is_empty(added: Mapping[str, list[Any]], removed: Mapping[str, list[str]]) -> bool:
    return not any(added.get(k) for k in KINDS) and not any(removed.get(k) for k in KINDS)


def apply(state: State | None, report: Mapping[str, Any]) -> State:
    """The state after ``report`` (full: its ``added`` alone; delta: applied on ``state``)."""
    out = (
        empty()
        if report.get("full") or state is None
        else {k: dict(state.get(k, {})) for k in KINDS}
    )
    added = report.get("added") or {}
    removed = report.get("removed") or {}
    for kind in KINDS:
        for k in removed.get(kind) or []:
            out[kind].pop(str(k), None)
        for entry in added.get(kind) or []:
            if isinstance(entry, Mapping):
                out[kind][key(kind, entry)] = dict(entry)
    return out


def as_full(report: Mapping[str, Any], state: State) -> dict[str, Any]:
    """``report`` rewritten as a full report of ``state`` (the state after it)."""
    out = dict(report)
    out["full"] = True
    out["base"] = None
    out["added"] = {k: [state[k][x] for x in sorted(state[k])] for k in KINDS}
    out["removed"] = {k: [] for k in KINDS}
    return out
