"""The agent report (``modelward.agent-report/v1``) parsed and checked into frozen values.

The HTTP edge only checks that the body is JSON of the right rough shape; everything the database
relies on (lengths, digests, seq arithmetic) is checked here, so a bad report is a 400 that stores
nothing rather than a database error halfway through.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelward.errors import BadRequest

SCHEMA = "modelward.agent-report/v1"
SEVERITIES = ("critical", "high", "medium", "low", "info")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
MAX_KEY_BYTES = 2048
"""Longest path / package key stored (bytes of UTF-8): it is part of a unique index."""


@dataclass(frozen=True, slots=True)
class ArtifactIn:
    path: str
    sha256: str | None
    size: int
    format: str
    source_kind: str
    source_name: str | None
    source_repo: str | None
    source_revision: str | None
    license_id: str
    max_severity: str | None
    in_use: bool
    doc: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RuntimeIn:
    name: str
    version: str | None
    running: bool
    exposed: bool
    vulnerable: bool
    doc: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PackageIn:
    key: str  # "name@environment"
    name: str
    version: str
    vulnerable: bool
    doc: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DecisionIn:
    rule: str
    severity: str
    action: str
    subject_kind: str
    subject: str
    sha256: str | None
    message: str
    waived_by: str | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.subject_kind, self.subject)


@dataclass(frozen=True, slots=True)
class Report:
    report_id: str
    seq: int
    base: int | None
    full: bool
    artifacts: tuple[ArtifactIn, ...]
    runtimes: tuple[RuntimeIn, ...]
    packages: tuple[PackageIn, ...]
    removed_artifacts: tuple[str, ...]
    removed_runtimes: tuple[str, ...]
    removed_packages: tuple[str, ...]
    decisions: tuple[DecisionIn, ...]
    actions: tuple[Mapping[str, Any], ...]
    host: Mapping[str, Any]
    agent: Mapping[str, Any]


def _text(value: Any, where: str, *, limit: int = 300, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise BadRequest(f"report: {where} must be a string", field=where)
    if len(value) > limit:
        raise BadRequest(f"report: {where} is longer than {limit} characters", field=where)
    return value


def _opt(value: Any, where: str, limit: int = 300) -> str | None:
    return None if value is None else _text(value, where, limit=limit)


def _key(value: Any, where: str) -> str:
    text = _text(value, where, limit=MAX_KEY_BYTES)
    if not text or len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES or "\0" in text:
        raise BadRequest(f"report: {where} must be 1..{MAX_KEY_BYTES} bytes", field=where)
    return text


def _map(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest(f"report: {where} must be an object", field=where)
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRequest(f"report: {where} must be a list", field=where)
    return value


def _severity(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if value not in SEVERITIES:
        raise BadRequest(f"report: {where} must be one of {', '.join(SEVERITIES)}", field=where)
    return str(value)


def _max_severity(findings: Any, where: str) -> str | None:
    best: str | None = None
    for i, f in enumerate(_list(findings, where)):
        sev = _severity(_map(f, f"{where}[{i}]").get("severity"), f"{where}[{i}].severity")
        if sev is not None and (best is None or SEVERITIES.index(sev) < SEVERITIES.index(best)):
            best = sev
    return best


def _vulnerable(findings: Any, where: str) -> bool:
    return any(
        str(_map(f, where).get("rule", "")).endswith("vulnerable-version")
        for f in _list(findings, where)
    )


def parse_artifact(doc: Any, where: str) -> ArtifactIn:
    d = _map(doc, where)
    sha = d.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
        raise BadRequest(f"report: {where}.sha256 must be 64 lowercase hex or null", field=where)
    size = d.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 2**63:
        raise BadRequest(f"report: {where}.size must be a non-negative integer", field=where)
    source = _map(d.get("source"), f"{where}.source")
    license_ = _map(d.get("license"), f"{where}.license")
    return ArtifactIn(
        path=_key(d.get("path"), f"{where}.path"),
        sha256=sha,
        size=size,
        format=_text(d.get("format"), f"{where}.format", limit=32, default="unknown"),
        source_kind=_text(source.get("kind"), f"{where}.source.kind", limit=32, default="file"),
        source_name=_opt(source.get("name"), f"{where}.source.name"),
        source_repo=_opt(source.get("repo"), f"{where}.source.repo"),
        source_revision=_opt(source.get("revision"), f"{where}.source.revision", 100),
        license_id=_text(license_.get("id"), f"{where}.license.id", limit=100, default="unknown"),
        max_severity=_max_severity(d.get("findings"), f"{where}.findings"),
        in_use=bool(d.get("in_use", False)),
        doc=d,
    )


def parse_runtime(doc: Any, where: str) -> RuntimeIn:
    d = _map(doc, where)
    listen = _list(d.get("listen"), f"{where}.listen")
    return RuntimeIn(
        name=_text(d.get("name"), f"{where}.name", limit=100),
        version=_opt(d.get("version"), f"{where}.version", 100),
        running=bool(d.get("running", False)),
        exposed=any(bool(_map(x, f"{where}.listen").get("exposed")) for x in listen),
        vulnerable=_vulnerable(d.get("findings"), f"{where}.findings"),
        doc=d,
    )


def package_key(name: str, environment: str) -> str:
    return f"{name}@{environment}"


def parse_package(doc: Any, where: str) -> PackageIn:
    d = _map(doc, where)
    name = _text(d.get("name"), f"{where}.name", limit=200)
    env = _text(d.get("environment"), f"{where}.environment", limit=MAX_KEY_BYTES, default="")
    return PackageIn(
        key=_key(package_key(name, env), f"{where}.environment"),
        name=name,
        version=_text(d.get("version"), f"{where}.version", limit=100, default=""),
        vulnerable=_vulnerable(d.get("findings"), f"{where}.findings"),
        doc=d,
    )


def parse_decision(doc: Any, where: str) -> DecisionIn:
    d = _map(doc, where)
    subject = _map(d.get("subject"), f"{where}.subject")
    kind = _text(subject.get("kind"), f"{where}.subject.kind", limit=16, default="artifact")
    label = subject.get("path") if kind == "artifact" else subject.get("name")
    label = label if label is not None else subject.get("name") or subject.get("path") or ""
    sha = subject.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
        sha = None
    return DecisionIn(
        rule=_text(d.get("rule"), f"{where}.rule", limit=100),
        severity=_severity(d.get("severity"), f"{where}.severity") or "info",
        action=_text(d.get("action"), f"{where}.action", limit=16),
        subject_kind=kind,
        subject=_text(label, f"{where}.subject", limit=MAX_KEY_BYTES),
        sha256=sha,
        message=_text(d.get("message"), f"{where}.message", limit=10_000, default=""),
        waived_by=_opt(d.get("waived_by"), f"{where}.waived_by", 10_000),
    )


def parse_report(doc: Mapping[str, Any]) -> Report:
    """Check a report document; :class:`BadRequest` names the first problem."""
    if doc.get("schema", SCHEMA) != SCHEMA:
        raise BadRequest(f"report: schema must be {SCHEMA!r}", field="schema")
    report_id = _text(doc.get("report_id"), "report_id", limit=64)
    try:
        uuid.UUID(report_id)
    except ValueError:
        raise BadRequest("report: report_id must be a UUID", field="report_id") from None
    seq, base = doc.get("seq"), doc.get("base")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 2**63:
        raise BadRequest("report: seq must be an integer >= 1", field="seq")
    full = bool(doc.get("full", base is None))
    if full:
        base = None
    elif not isinstance(base, int) or isinstance(base, bool) or not 0 <= base < seq:
        raise BadRequest("report: a delta's base must be an integer below its seq", field="base")
    added = _map(doc.get("added"), "added")
    removed = _map(doc.get("removed"), "removed")
    return Report(
        report_id=report_id,
        seq=seq,
        base=base,
        full=full,
        artifacts=tuple(
            parse_artifact(a, f"added.artifacts[{i}]")
            for i, a in enumerate(_list(added.get("artifacts"), "added.artifacts"))
        ),
        runtimes=tuple(
            parse_runtime(r, f"added.runtimes[{i}]")
            for i, r in enumerate(_list(added.get("runtimes"), "added.runtimes"))
        ),
        packages=tuple(
            parse_package(p, f"added.packages[{i}]")
            for i, p in enumerate(_list(added.get("packages"), "added.packages"))
        ),
        removed_artifacts=tuple(
            _key(p, "removed.artifacts") for p in _list(removed.get("artifacts"), "removed")
        ),
        removed_runtimes=tuple(
            _text(n, "removed.runtimes", limit=100)
            for n in _list(removed.get("runtimes"), "removed")
        ),
        removed_packages=tuple(
            _key(k, "removed.packages") for k in _list(removed.get("packages"), "removed")
        ),
        decisions=tuple(
            parse_decision(d, f"decisions[{i}]")
            for i, d in enumerate(_list(doc.get("decisions"), "decisions"))
        ),
        actions=tuple(_map(a, "actions") for a in _list(doc.get("actions"), "actions")),
        host=_map(doc.get("host"), "host"),
        agent=_map(doc.get("agent"), "agent"),
    )
