"""Frozen value types shared by every part of modelward: severities, findings, scan results."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NewType

Sha256 = NewType("Sha256", str)
"""A lowercase 64-hex SHA-256 digest."""


class Severity(enum.IntEnum):
    """How bad a finding is. Ordered: ``Severity.CRITICAL > Severity.HIGH``."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in sorted(cls, reverse=True))
            raise ValueError(f"unknown severity {text!r}; expected one of: {names}") from None


UNSAFE_AT = Severity.MEDIUM
"""A file with a finding at or above this severity is *unsafe* (interfaces.md)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the scanner found in a file. ``rule`` is a stable id such as ``pickle.dangerous-global``."""

    rule: str
    severity: Severity
    message: str
    evidence: str = ""
    location: str = ""
    remediation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.label,
            "message": self.message,
            "evidence": self.evidence,
            "location": self.location,
            "remediation": self.remediation,
        }


@dataclass(frozen=True, slots=True)
class FileReport:
    """What the scanner learned about one file (or one folder-shaped model)."""

    path: str
    size: int
    sha256: Sha256 | None
    format: str
    metadata: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    @property
    def unsafe(self) -> bool:
        top = self.max_severity
        return top is not None and top >= UNSAFE_AT

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "format": self.format,
            "metadata": self.metadata,
            "findings": [f.to_dict() for f in self.findings],
            "errors": list(self.errors),
        }


@dataclass(frozen=True, slots=True)
class ScanReport:
    """The result of one scan: a report per file, in a stable order (sorted by path)."""

    files: tuple[FileReport, ...]

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.files for f in r.findings]

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def counts(self) -> dict[str, int]:
        out = {s.label: 0 for s in sorted(Severity, reverse=True)}
        for f in self.findings:
            out[f.severity.label] += 1
        return out

    def summary(self) -> dict[str, Any]:
        top = self.max_severity
        return {
            "files": len(self.files),
            "unsafe_files": sum(1 for r in self.files if r.unsafe),
            "max_severity": top.label if top is not None else None,
            "findings": self.counts(),
            "errors": sum(len(r.errors) for r in self.files),
        }

    def fails(self, threshold: Severity) -> bool:
        """True when a finding is at or above ``threshold`` (the CLI's exit code 1)."""
        top = self.max_severity
        return top is not None and top >= threshold


# The inventory's types live in models_inventory (defining them costs start-up time that the
# scanner does not need); they are imported from here as if defined here.
_INVENTORY_TYPES = frozenset(
    {
        "Artifact",
        "CollectError",
        "HostInfo",
        "Inventory",
        "License",
        "Listen",
        "Package",
        "Runtime",
        "Source",
        "UNKNOWN_LICENSE",
    }
)

if TYPE_CHECKING:
    pass


def __getattr__(name: str) -> Any:
    if name in _INVENTORY_TYPES:
        from modelward import models_inventory

        return getattr(models_inventory, name)
    raise AttributeError(f"module 'modelward.models' has no attribute {name!r}")
