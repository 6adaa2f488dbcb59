"""Per-file scan state handed to detectors: findings, metadata, bounds, and nested dispatch."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelward.models import Finding, Severity
from modelward.scan.rules import TOO_DEEP, Rule
from modelward.scan.source import Source

MAX_FINDINGS_PER_RULE = 50


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep every scan finite whatever the input. Exceeding one is a finding."""

    max_depth: int = 6
    """Containers inside containers (zip in tar in gzip ...)."""
    max_members: int = 100_000
    """Archive members looked at, over the whole file."""
    max_member_size: int = 512 << 20
    """Largest decompressed member held in memory for analysis."""
    max_total_uncompressed: int = 4 << 30
    """Decompressed bytes over the whole file."""
    max_ratio: float = 200.0
    """Uncompressed/compressed ratio above which a member is treated as a bomb (past 1 MiB)."""
    max_pickle_ops: int = 20_000_000
    """Pickle opcodes walked per stream before the rest is reported as not analysed."""
    max_template_bytes: int = 4 << 20
    """Largest chat template parsed."""


@dataclass(slots=True)
class NestedResult:
    """What a nested scan found out about a member."""

    format: str
    metadata: dict[str, Any]


@dataclass(slots=True)
class _Shared:
    findings: list[Finding] = field(default_factory=list)
    seen: set[tuple[str, str, str]] = field(default_factory=set)
    per_rule: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    members: int = 0
    uncompressed: int = 0


Dispatch = Callable[["ScanContext", Source, str], NestedResult]


class ScanContext:
    """State of one file's scan. Child contexts (archive members) share findings and budgets."""

    def __init__(
        self,
        path: str,
        limits: Limits,
        dispatch: Dispatch,
        *,
        prefix: str = "",
        depth: int = 0,
        shared: _Shared | None = None,
    ) -> None:
        self.path = path
        """The file on disk (real path); member contexts keep their container's path."""
        self.limits = limits
        self.prefix = prefix
        self.depth = depth
        self.format: str | None = None
        """Set by a detector that recognises a more specific format than its own name."""
        self.metadata: dict[str, Any] = {}
        self._dispatch = dispatch
        self._shared = shared if shared is not None else _Shared()

    # ------------------------------------------------------------------ findings
    def where(self, location: str = "") -> str:
        """A location string: the member prefix, then ``location``."""
        if self.prefix and location:
            return f"{self.prefix}, {location}"
        return self.prefix or location

    def report(
        self,
        rule: Rule,
        message: str,
        *,
        evidence: str = "",
        location: str = "",
        severity: Severity | None = None,
    ) -> None:
        """Record a finding (duplicates of rule, evidence and location are dropped)."""
        loc = self.where(location)
        key = (rule.id, evidence, loc)
        shared = self._shared
        if key in shared.seen:
            return
        shared.seen.add(key)
        count = shared.per_rule.get(rule.id, 0) + 1
        shared.per_rule[rule.id] = count
        if count > MAX_FINDINGS_PER_RULE:
            return
        shared.findings.append(
            Finding(
                rule=rule.id,
                severity=severity if severity is not None else rule.severity,
                message=message,
                evidence=evidence[:500],
                location=loc,
                remediation=rule.remediation,
            )
        )

    def error(self, message: str) -> None:
        """A part of the file could not be read (not a finding about the model)."""
        self._shared.errors.append(self.where(message) if self.prefix else message)

    @property
    def findings(self) -> list[Finding]:
        return self._shared.findings

    @property
    def errors(self) -> list[str]:
        return self._shared.errors

    def suppressed(self) -> dict[str, int]:
        """Rules that hit the per-rule cap, with how many findings were dropped."""
        return {
            r: n - MAX_FINDINGS_PER_RULE
            for r, n in self._shared.per_rule.items()
            if n > MAX_FINDINGS_PER_RULE
        }

    # ------------------------------------------------------------------ budgets
    def take_member(self) -> bool:
        """Count one archive member; False once ``max_members`` is exhausted."""
        self._shared.members += 1
        return self._shared.members <= self.limits.max_members

    def take_uncompressed(self, n: int) -> bool:
        """Count ``n`` decompressed bytes; False once the whole-file budget is exhausted."""
        self._shared.uncompressed += n
        return self._shared.uncompressed <= self.limits.max_total_uncompressed

    # ------------------------------------------------------------------ nesting
    def child(self, name: str) -> ScanContext:
        """A context for a member called ``name`` inside this content."""
        prefix = f"{self.prefix}/{name}" if self.prefix else name
        return ScanContext(
            self.path,
            self.limits,
            self._dispatch,
            prefix=prefix,
            depth=self.depth + 1,
            shared=self._shared,
        )

    def scan_nested(self, src: Source, name: str) -> NestedResult:
        """Identify ``src`` (a member called ``name``) by content and scan it with its detector."""
        child = self.child(name)
        if child.depth > self.limits.max_depth:
            self.report(
                TOO_DEEP,
                f"Member nested {child.depth} levels deep was not opened.",
                evidence=name,
            )
            return NestedResult("unknown", {})
        return self._dispatch(child, src, name)

    @property
    def folder(self) -> str:
        """The folder holding the file on disk (for references to sibling files)."""
        return os.path.dirname(os.path.abspath(self.path))
