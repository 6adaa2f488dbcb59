"""Waivers: signed-off exceptions to the policy, matched by artifact SHA-256 or runtime name.

A waivers file is YAML::

    waivers:
      - sha256: 3f2a...            # or: runtime: ollama
        rule: unapproved-pickle    # optional: only this rule (default: every rule)
        reason: legacy checkpoint, retrained by Q3
        approved_by: security@example.com
        expires: 2027-03-31

A waiver turns matching ``deny``/``warn``/``quarantine`` decisions into ``allow`` with ``waived_by``
set. An expired waiver stops applying, and the report says so.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelward.errors import UsageError
from modelward.policy.decision import Decision
from modelward.policy.settings import parse_yaml

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_KEYS = {"sha256", "runtime", "rule", "reason", "approved_by", "expires"}


class WaiverError(UsageError):
    """The waivers file is not valid; the message names the file, line and key."""


@dataclass(frozen=True, slots=True)
class Waiver:
    reason: str
    approved_by: str
    expires: dt.date
    sha256: str | None = None
    runtime: str | None = None
    rule: str | None = None
    line: int = 0

    @property
    def label(self) -> str:
        return f"{self.approved_by}: {self.reason} (until {self.expires.isoformat()})"

    def matches(self, d: Decision) -> bool:
        if self.rule is not None and self.rule != d.rule:
            return False
        if self.sha256 is not None:
            return d.subject.kind == "artifact" and d.subject.sha256 == self.sha256
        return d.subject.kind == "runtime" and d.subject.name == self.runtime


@dataclass(frozen=True, slots=True)
class ExpiredWaiver:
    """A waiver that would have matched a decision but has expired."""

    waiver: Waiver
    decision: Decision

    def message(self) -> str:
        w = self.waiver
        return (
            f"waiver by {w.approved_by} expired on {w.expires.isoformat()}; "
            f"{self.decision.rule} applies again to {self.decision.subject.path or self.decision.subject.name}"
        )


def load_waivers(path: Path) -> list[Waiver]:
    """Parse and validate a waivers file; errors name the file, the line and the key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WaiverError(f"{path}: cannot read the waivers file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise WaiverError(f"{path}: cannot read the waivers file: {exc}") from None
    root, _ = parse_yaml(path, text, WaiverError, construct=False)  # refuses a key given twice
    if root is None:
        return []
    items = _entries(path, root)
    return [_waiver(path, node) for node in items]


def _entries(path: Path, root: Any) -> list[Any]:
    import yaml

    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "waivers":
                root = value
                break
        else:
            raise WaiverError(f"{path}:{root.start_mark.line + 1}: expected a 'waivers:' list")
    if not isinstance(root, yaml.SequenceNode):
        raise WaiverError(f"{path}:{root.start_mark.line + 1}: 'waivers' must be a list of entries")
    return list(root.value)


def _waiver(path: Path, node: Any) -> Waiver:
    import yaml

    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise WaiverError(f"{path}:{line}: a waiver must be a mapping of keys to values")
    fields: dict[str, Any] = {}
    for key, value in node.value:
        name = key.value
        kline = key.start_mark.line + 1
        if name not in _KEYS:
            raise WaiverError(
                f"{path}:{kline}: unknown key {name!r}; expected one of: {', '.join(sorted(_KEYS))}"
            )
        if not isinstance(value, yaml.ScalarNode):
            raise WaiverError(f"{path}:{kline}: {name!r} must be a single value")
        fields[name] = (value.value, kline)
    for required in ("reason", "approved_by", "expires"):
        if not str(fields.get(required, ("", 0))[0]).strip():
            raise WaiverError(f"{path}:{line}: the waiver needs {required!r}")
    if ("sha256" in fields) == ("runtime" in fields):
        raise WaiverError(f"{path}:{line}: a waiver names exactly one of 'sha256' or 'runtime'")
    sha = None
    if "sha256" in fields:
        sha, kline = fields["sha256"]
        sha = sha.strip().lower().removeprefix("sha256:")
        if not _SHA256.match(sha):
            raise WaiverError(f"{path}:{kline}: 'sha256' must be 64 hex digits")
    text, kline = fields["expires"]
    try:
        expires = dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise WaiverError(f"{path}:{kline}: 'expires' must be a date like 2027-03-31") from None
    return Waiver(
        reason=str(fields["reason"][0]).strip(),
        approved_by=str(fields["approved_by"][0]).strip(),
        expires=expires,
        sha256=sha,
        runtime=str(fields["runtime"][0]).strip() if "runtime" in fields else None,
        rule=str(fields["rule"][0]).strip() if "rule" in fields else None,
        line=line,
    )


def apply_waivers(
    decisions: list[Decision], waivers: list[Waiver], today: dt.date | None = None
) -> tuple[list[Decision], list[ExpiredWaiver]]:
    """Waive what current waivers cover; report the expired waivers that would have."""
    today = today or dt.date.today()
    out: list[Decision] = []
    expired: list[ExpiredWaiver] = []
    for d in decisions:
        if d.action == "allow":
            out.append(d)
            continue
        live = next((w for w in waivers if w.matches(d) and w.expires >= today), None)
        if live is not None:
            out.append(replace(d, action="allow", waived_by=live.label))
            continue
        out.append(d)
        expired.extend(ExpiredWaiver(w, d) for w in waivers if w.matches(d))
    return out, expired
