"""Waivers: signed-off exceptions to the policy, matched by artifact SHA-256, runtime or package.

A waivers file is YAML::

    waivers:
      - sha256: 3f2a...            # an artifact (model file) by its SHA-256
        rule: unapproved-pickle    # optional: only this rule (default: every rule)
        reason: legacy checkpoint, retrained by Q3
        approved_by: security@example.com
        expires: 2027-03-31
      - runtime: ollama            # a runtime by name (decisions about kind "runtime")
        rule: runtime-exposed
        reason: lab box on an isolated network
        approved_by: it@example.com
        expires: 2026-12-31
      - package: torch             # an inference library (decisions about kind "package",
        version: 2.0.1             # e.g. vulnerable-version); version is optional: without it,
        rule: vulnerable-version   # every version of the package is waived
        reason: pinned by the vendor, upgrade planned
        approved_by: security@example.com
        expires: 2026-09-30

Each waiver names exactly one of ``sha256``, ``runtime`` or ``package`` (``version`` only with
``package``; package names compare as pip does: case, ``-``, ``_`` and ``.`` alike).
A waiver turns matching ``deny``/``warn``/``quarantine``/``stop`` decisions into ``allow`` with
``waived_by`` set. An expired waiver stops applying, and the report says so; so does a waiver that
matched no decision (a misspelt rule or digest, or an artifact that is gone).
A key given twice in one waiver is an error (YAML would silently keep the last one), and so is a
null or empty value (``approved_by: ~``), a ``reason`` or ``approved_by`` that YAML reads as
something other than text (``approved_by: yes``: quote it) and an ``expires`` that is not a
``YYYY-MM-DD`` date. Aliases and merge keys (``<<: *defaults``) are refused, as in the settings.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelward.errors import UsageError
from modelward.policy.decision import Decision
from modelward.policy.settings import parse_yaml, read_yaml_text

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_KEYS = {"sha256", "runtime", "package", "version", "rule", "reason", "approved_by", "expires"}
_SUBJECTS = ("sha256", "runtime", "package")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_DATE_TAG = "tag:yaml.org,2002:timestamp"


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
    package: str | None = None
    version: str | None = None

    @property
    def label(self) -> str:
        return f"{self.approved_by}: {self.reason} (until {self.expires.isoformat()})"

    def matches(self, d: Decision) -> bool:
        if self.rule is not None and self.rule != d.rule:
            return False
        if self.sha256 is not None:
            return d.subject.kind == "artifact" and d.subject.sha256 == self.sha256
        if self.package is not None:
            return self._matches_package(d)
        return d.subject.kind == "runtime" and d.subject.name == self.runtime

    def _matches_package(self, d: Decision) -> bool:
        """A ``package`` subject is named ``NAME==VERSION`` (or just ``NAME``)."""
        if d.subject.kind != "package" or not d.subject.name or self.package is None:
            return False
        name, _, version = d.subject.name.partition("==")
        if _project(name) != _project(self.package):
            return False
        return self.version is None or version.strip() == self.version

    @property
    def subject(self) -> dict[str, str]:
        """What the waiver matches: ``{"sha256": ...}``, ``{"runtime": ...}`` or
        ``{"package": ..., "version": ...}`` (version only when given)."""
        if self.sha256 is not None:
            return {"sha256": self.sha256}
        if self.package is not None:
            out = {"package": self.package}
            if self.version is not None:
                out["version"] = self.version
            return out
        return {"runtime": self.runtime or ""}

    def to_dict(self) -> dict[str, Any]:
        """The waiver as reported under ``"waivers"`` (the key it matches by, as written)."""
        return {
            **self.subject,
            "rule": self.rule,
            "reason": self.reason,
            "approved_by": self.approved_by,
            "expires": self.expires.isoformat(),
            "line": self.line,
        }

    def describe(self, source: str | None = None) -> str:
        """``at waivers.yaml:4 for sha256 3f2a... (rule r, approved by a)``: which waiver."""
        where = f"{source}:{self.line}" if source else f"line {self.line}"
        rule = f"rule {self.rule}, " if self.rule else ""
        return f"at {where} for {self.what} ({rule}approved by {self.approved_by})"

    @property
    def what(self) -> str:
        """The subject in words: ``sha256 3f2a...``, ``runtime ollama``, ``package torch 2.0.1``."""
        return " ".join(f"{k} {v}" if k != "version" else v for k, v in self.subject.items())


def _project(name: str) -> str:
    """A Python package name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


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


@dataclass(frozen=True, slots=True)
class WaiverReview:
    """What became of the waivers in one evaluation, for the report: the ``expired`` ones (they no
    longer apply) and the current ones that matched no decision (``unused``: a misspelt digest or
    rule, or a model that is gone). Both are warnings, never errors."""

    expired: tuple[Waiver, ...] = ()
    unused: tuple[Waiver, ...] = ()
    source: str | None = None
    """The waivers file."""

    def to_dict(self) -> dict[str, Any]:
        """``{"expired": [...], "unused": [...]}`` (the ``"waivers"`` key of the JSON report)."""
        return {
            "expired": [w.to_dict() for w in self.expired],
            "unused": [w.to_dict() for w in self.unused],
        }

    def notes(self) -> list[tuple[str, Waiver, str]]:
        """``(kind, waiver, sentence)`` per waiver to mention; kind is ``waiver-expired`` or
        ``waiver-unused``."""
        out = [
            (
                "waiver-expired",
                w,
                f"waiver {w.describe(self.source)} expired on {w.expires.isoformat()}: "
                "no longer applies",
            )
            for w in self.expired
        ]
        out += [
            (
                "waiver-unused",
                w,
                f"waiver {w.describe(self.source)} matched no decision: check its "
                f"{next(iter(w.subject))}{' and rule' if w.rule else ''}, or remove it",
            )
            for w in self.unused
        ]
        return out


class _Index:
    """Waivers by what they match (artifact digest, runtime name, normalised package name), in
    file order: a decision is compared only with the waivers of its own subject, so applying
    thousands of waivers to thousands of decisions stays linear."""

    def __init__(self, waivers: list[Waiver]) -> None:
        self.by: dict[tuple[str, str], list[tuple[int, Waiver]]] = {}
        for i, w in enumerate(waivers):
            if w.sha256 is not None:
                key = ("artifact", w.sha256)
            elif w.package is not None:
                key = ("package", _project(w.package))
            else:
                key = ("runtime", w.runtime or "")
            self.by.setdefault(key, []).append((i, w))

    def matching(self, d: Decision) -> list[tuple[int, Waiver]]:
        """``(position in the file, waiver)`` of the waivers matching ``d``, in file order."""
        s = d.subject
        if s.kind == "artifact":
            key = s.sha256
        elif s.kind == "package":
            key = _project(s.name.partition("==")[0]) if s.name else None
        else:
            key = s.name
        if key is None:
            return []
        return [(i, w) for i, w in self.by.get((s.kind, key), ()) if w.matches(d)]


def review_waivers(
    decisions: list[Decision],
    waivers: list[Waiver],
    today: dt.date | None = None,
    source: str | None = None,
) -> WaiverReview:
    """Sort out the expired waivers and the current ones that match none of ``decisions`` (the
    policy's decisions before waivers are applied; ``allow`` decisions need no waiver)."""
    today = today or dt.date.today()
    expired = tuple(w for w in waivers if w.expires < today)
    index = _Index(waivers)
    used = {i for d in decisions if d.action != "allow" for i, _ in index.matching(d)}
    unused = tuple(w for i, w in enumerate(waivers) if w.expires >= today and i not in used)
    return WaiverReview(expired, unused, source)


def load_waivers(path: Path) -> list[Waiver]:
    """Parse and validate a waivers file; errors name the file, the line and the key."""
    text = read_yaml_text(path, WaiverError, "waivers file")
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
        if not isinstance(name, str):
            raise WaiverError(f"{path}:{kline}: a key must be a plain name")
        if name not in _KEYS:
            raise WaiverError(
                f"{path}:{kline}: unknown key {name!r}; expected one of: {', '.join(sorted(_KEYS))}"
            )
        if not isinstance(value, yaml.ScalarNode):
            raise WaiverError(f"{path}:{kline}: {name!r} must be a single value")
        _check_scalar(f"{path}:{kline}", name, value)
        fields[name] = (value.value, kline)
    for required in ("reason", "approved_by", "expires"):
        if not str(fields.get(required, ("", 0))[0]).strip():
            raise WaiverError(f"{path}:{line}: the waiver needs {required!r}")
    if sum(k in fields for k in _SUBJECTS) != 1:
        raise WaiverError(
            f"{path}:{line}: a waiver names exactly one of 'sha256', 'runtime' or 'package'"
        )
    if "version" in fields and "package" not in fields:
        raise WaiverError(f"{path}:{fields['version'][1]}: 'version' goes with 'package' only")
    for name in ("runtime", "package", "version", "rule"):
        if name in fields and not str(fields[name][0]).strip():
            raise WaiverError(f"{path}:{fields[name][1]}: {name!r} must not be empty")
    sha = None
    if "sha256" in fields:
        sha, kline = fields["sha256"]
        sha = sha.strip().lower().removeprefix("sha256:")
        if not _SHA256.match(sha):
            raise WaiverError(f"{path}:{kline}: 'sha256' must be 64 hex digits")
    text, kline = fields["expires"]
    try:
        if not _DATE.match(str(text).strip()):
            raise ValueError(text)
        expires = dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise WaiverError(f"{path}:{kline}: 'expires' must be a date like 2027-03-31") from None
    return Waiver(
        reason=str(fields["reason"][0]).strip(),
        approved_by=str(fields["approved_by"][0]).strip(),
        expires=expires,
        sha256=sha,
        runtime=_text(fields, "runtime"),
        rule=_text(fields, "rule"),
        line=line,
        package=_text(fields, "package"),
        version=_text(fields, "version"),
    )


def _check_scalar(where: str, name: str, node: Any) -> None:
    """Refuse a null value (``~``, ``null``, nothing), and a ``reason`` or ``approved_by`` that
    YAML reads as something other than text (``approved_by: yes`` is a boolean)."""
    if node.tag == _NULL_TAG:
        raise WaiverError(f"{where}: {name!r} must not be empty (it is null)")
    if name in ("reason", "approved_by"):
        if node.tag != _STR_TAG:
            raise WaiverError(
                f"{where}: {name!r} must be text, not {node.value!r} (put it in quotes)"
            )
        if not node.value.strip():
            raise WaiverError(f"{where}: {name!r} must not be empty")
    if name == "expires" and node.tag not in (_DATE_TAG, _STR_TAG):
        raise WaiverError(f"{where}: 'expires' must be a date like 2027-03-31")


def _text(fields: dict[str, Any], name: str) -> str | None:
    return str(fields[name][0]).strip() if name in fields else None


def apply_waivers(
    decisions: list[Decision], waivers: list[Waiver], today: dt.date | None = None
) -> tuple[list[Decision], list[ExpiredWaiver]]:
    """Waive what current waivers cover (the first in the file wins); report the expired waivers
    that would have."""
    today = today or dt.date.today()
    index = _Index(waivers)
    out: list[Decision] = []
    expired: list[ExpiredWaiver] = []
    for d in decisions:
        if d.action == "allow":
            out.append(d)
            continue
        matching = [w for _, w in index.matching(d)]
        live = next((w for w in matching if w.expires >= today), None)
        if live is not None:
            out.append(replace(d, action="allow", waived_by=live.label))
            continue
        out.append(d)
        expired.extend(ExpiredWaiver(w, d) for w in matching)
    return out, expired
