"""The catalogue of scanner rules: stable ids, default severity, a title and a remediation.

Each format module declares its rules at import time with :func:`rule`; reports and SARIF read the
catalogue. Rule ids are ``family.kebab-name`` and never change meaning once published.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelward.models import Severity

_ID = re.compile(r"^[a-z0-9]+\.[a-z0-9]+(?:-[a-z0-9]+)*$")
_CATALOG: dict[str, Rule] = {}


@dataclass(frozen=True, slots=True)
class Rule:
    """A kind of finding. ``title`` is one line; ``remediation`` says what to do about it."""

    id: str
    severity: Severity
    title: str
    remediation: str


def rule(id: str, severity: Severity, title: str, remediation: str) -> Rule:
    """Declare (or return the already declared) rule ``id``."""
    if not _ID.match(id):
        raise ValueError(f"rule id {id!r} is not family.kebab-name")
    existing = _CATALOG.get(id)
    new = Rule(id, severity, title, remediation)
    if existing is not None:
        if existing != new:
            raise ValueError(f"rule {id!r} declared twice with different contents")
        return existing
    _CATALOG[id] = new
    return new


def catalog() -> dict[str, Rule]:
    """Every rule declared so far, by id (import :mod:`modelward.scan.registry` to load all)."""
    return dict(_CATALOG)


# Rules that belong to no single format.
UNREADABLE = rule(
    "format.unreadable",
    Severity.LOW,
    "The file could not be read completely",
    "Check permissions and that the file is not being written; re-run the scan.",
)
MASQUERADE = rule(
    "format.masquerade",
    Severity.HIGH,
    "The file's content is of a different format than its extension says",
    "Do not load it with the loader its extension suggests; find out why it was renamed and "
    "obtain the model from a trusted source.",
)
TOO_DEEP = rule(
    "archive.too-deep",
    Severity.MEDIUM,
    "Containers are nested deeper than the scanner follows",
    "Unpack the model by hand in a sandbox, or obtain a flat copy from a trusted source.",
)
SCAN_LIMIT = rule(
    "format.scan-limit",
    Severity.MEDIUM,
    "Part of the file was not analysed because it exceeds a scanner bound",
    "Treat the unanalysed part as untrusted; raise the bound only for a file you have reason to trust.",
)
INTERNAL = rule(
    "format.analysis-failed",
    Severity.MEDIUM,
    "The scanner failed while analysing this content",
    "Treat the file as unscanned and report the problem to the modelward developers.",
)
EMPTY = rule(
    "format.empty",
    Severity.LOW,
    "The file is empty although its name promises a model format",
    "Re-download or re-export the model; a loader will fail on an empty file.",
)
UNRECOGNIZED = rule(
    "format.unrecognized",
    Severity.LOW,
    "The content is of no known model format although the name promises one",
    "Check where the file came from; a loader will fail on it or read something unexpected.",
)
