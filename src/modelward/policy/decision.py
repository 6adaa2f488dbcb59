"""A policy decision about one subject (artifact or runtime): the ``modelward.decisions/v1`` entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelward.models import Severity

ACTIONS = ("allow", "warn", "deny", "stop", "quarantine")
"""Ordered from the mildest to the strongest. ``stop`` (terminate a runtime's processes that listen
on a network address) only comes with the setting ``stop_exposed_runtimes``."""


@dataclass(frozen=True, slots=True)
class Subject:
    """What a decision is about: ``kind`` is ``artifact`` or ``runtime``."""

    kind: str
    path: str | None = None
    sha256: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "artifact":
            out.update(path=self.path, sha256=self.sha256)
        if self.name is not None or self.kind != "artifact":
            out["name"] = self.name
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    rule: str
    action: str
    severity: Severity
    subject: Subject
    message: str
    waived_by: str | None = None
    """The waiver that turned this decision into ``allow`` (its id or reason), when one applies."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "action": self.action,
            "severity": self.severity.label,
            "subject": self.subject.to_dict(),
            "message": self.message,
            "waived_by": self.waived_by,
        }
