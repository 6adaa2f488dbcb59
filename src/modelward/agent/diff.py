"""What changed between two inventories: the ``added``/``removed`` parts of an agent report.

A state is the inventory keyed the way the server keys it: artifacts by path, runtimes by name,
packages by ``name@environment``. A changed entry is sent again whole in ``added`` (the server
upserts by key); a vanished one is named in ``removed``. A full report puts every entry in
``added`` and replaces the host's state on the server. A report too large for the server is
:func:`split` into several that have the same effect.
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


def encoded(report: Mapping[str, Any]) -> bytes:
    """The report as the spool stores it (compact JSON): an upper bound of what is sent."""
    return json.dumps(report, separators=(",", ":")).encode()


def split(report: Mapping[str, Any], target: int) -> list[dict[str, Any]] | None:
    """``report`` cut into reports of about ``target`` bytes each that, applied in order, have
    the same effect; ``None`` when it cannot be cut (fewer than two entries, or what every part
    carries is already ``target`` bytes).

    The first part keeps the report's ``full``/``base`` and its ``removed``; the others are deltas
    adding the rest (their ``seq``/``base``/``report_id`` are the caller's to set). Every part
    carries the report's decisions, since the server replaces a host's violations with each
    report's (the same decisions again change nothing); ``actions`` go with the last part only.
    """
    added = report.get("added") or {}
    entries = [(kind, e) for kind in KINDS for e in added.get(kind) or []]
    if len(entries) < 2:
        return None
    skeleton = {**report, "added": {k: [] for k in KINDS}}
    budget = target - len(encoded(skeleton))
    if budget <= 0:
        return None
    groups: list[list[tuple[str, Any]]] = [[]]
    used = 0
    for kind, entry in entries:
        size = len(encoded(entry)) + 1
        if groups[-1] and used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append((kind, entry))
        used += size
    if len(groups) < 2:  # it fits the target after all: halve it so that each try makes progress
        half = len(entries) // 2
        groups = [entries[:half], entries[half:]]
    parts: list[dict[str, Any]] = []
    for i, group in enumerate(groups):
        part = dict(skeleton)
        part["added"] = {k: [e for kind, e in group if kind == k] for k in KINDS}
        if i:
            part["full"] = False
            part["removed"] = {k: [] for k in KINDS}
        if i < len(groups) - 1:
            part["actions"] = []
        parts.append(part)
    return parts
