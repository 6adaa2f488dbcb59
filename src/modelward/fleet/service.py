"""Fleet: enrollment secrets, enrollment, host keys and exactly-once report ingestion.

Secrets (``mwe_...``) and host keys (``mwh_...``) are random and stored only as their SHA-256.
A report is applied in ONE transaction that locks the host's row, records its ``report_id``
(unique) and moves the host's ``last_ack_seq``: a resent report finds its id and is acknowledged
without being applied again; a delta whose ``base`` is not ``last_ack_seq`` is refused with
``resync_required`` (the agent then sends a full report); a report older than the last one applied
is acknowledged and ignored (it would roll the host's state back).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelward import __version__
from modelward.errors import BadRequest, Unauthorized
from modelward.fleet.errors import HostKeyRevoked, HostNotFound, ResyncRequired, SecretNotFound
from modelward.fleet.report import DecisionIn, Report
from modelward.store.db import (
    AppliedReport,
    Database,
    EnrollSecret,
    FleetEvent,
    Host,
    HostArtifact,
    HostLicense,
    HostPackage,
    HostRuntime,
    Team,
    Violation,
    ViolationCount,
    utcnow,
)

SECRET_PREFIX = "mwe_"
HOST_KEY_PREFIX = "mwh_"
DEFAULT_TEAM = "default"
_CHUNK = 500  # rows per IN (...) list / executemany batch
AUTH_CACHE_SECONDS = 10.0
_AUTH_CACHE_SIZE = 100_000
_OCSF_SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}


@dataclass(frozen=True, slots=True)
class FleetSettings:
    report_interval: int = 300
    """Seconds between an agent's reports (told to the agent at enrollment)."""
    offline_after: int | None = None
    """A host is offline when not seen for this many seconds (default: 3 report intervals)."""

    @property
    def offline_window(self) -> int:
        return self.offline_after or 3 * self.report_interval


@dataclass(frozen=True, slots=True)
class SecretView:
    id: int
    team: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    secret: str | None = None
    """In clear only in the answer that created it."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "team": self.team,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }
        if self.secret is not None:
            out["secret"] = self.secret
        return out


@dataclass(frozen=True, slots=True)
class Enrollment:
    host_id: str
    host_key: str
    report_interval: int
    bundle_public_key: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "host_id": self.host_id,
            "host_key": self.host_key,
            "report_interval": self.report_interval,
            "bundle_public_key": self.bundle_public_key,
        }


@dataclass(frozen=True, slots=True)
class Ack:
    ack: int
    applied: bool

    def to_dict(self) -> dict[str, Any]:
        return {"ack": self.ack, "applied": self.applied}


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _host_text(info: Mapping[str, Any], name: str, limit: int, required: bool = False) -> str:
    value = info.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        need = "a non-empty string" if required else "a string"
        raise BadRequest(f"host.{name} must be {need} of at most {limit} characters", field=name)
    return value


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class Fleet:
    """The fleet's library API (no HTTP here): the routes and the tests call it."""

    def __init__(
        self, db: Database, bundle_key_pem: str, settings: FleetSettings | None = None
    ) -> None:
        self.db = db
        self.settings = settings or FleetSettings()
        self._bundle_key_pem = bundle_key_pem
        self._public_pem: str | None = None
        # key hash -> (host id, expiry): lets the report route refuse strangers before reading
        # a body without a database round trip; ingest() checks the key again in its transaction.
        self._auth_cache: dict[str, tuple[str, float]] = {}

    # ------------------------------------------------------------------------------- bundle key
    @property
    def bundle_public_key(self) -> str:
        if self._public_pem is None:
            from modelward.fleet.bundle import public_pem

            self._public_pem = public_pem(self._bundle_key_pem)
        return self._public_pem

    @property
    def bundle_private_key(self) -> str:
        return self._bundle_key_pem

    # ---------------------------------------------------------------------------------- secrets
    def create_secret(self, team: str | None, actor: str) -> SecretView:
        """A new enrollment secret for ``team`` (created when new); the secret is shown once."""
        name = (team or DEFAULT_TEAM).strip()
        if not name or len(name) > 200:
            raise BadRequest("team must be 1..200 characters", team=name)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        for attempt in range(2):
            try:
                with self.db.session() as s:
                    team_row = s.scalar(select(Team).where(Team.name == name))
                    if team_row is None:
                        team_row = Team(name=name)
                        s.add(team_row)
                        s.flush()
                    row = EnrollSecret(
                        team_id=team_row.id, secret_hash=hash_secret(secret), created_by=actor
                    )
                    s.add(row)
                    s.flush()
                    return SecretView(row.id, name, row.created_at, actor, None, secret)
            except IntegrityError:  # another request created the team at the same moment
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def secrets(self) -> list[SecretView]:
        with self.db.session() as s:
            rows = s.execute(
                select(EnrollSecret, Team.name).join(Team).order_by(EnrollSecret.id)
            ).all()
            return [
                SecretView(r.id, team, r.created_at, r.created_by, r.revoked_at) for r, team in rows
            ]

    def revoke_secret(self, secret_id: int, actor: str) -> SecretView:
        """No new host may enroll with it; hosts already enrolled keep their keys."""
        with self.db.session() as s:
            row = s.get(EnrollSecret, secret_id)
            if row is None:
                raise SecretNotFound(f"no enrollment secret {secret_id}", id=secret_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            team = s.get_one(Team, row.team_id).name
            return SecretView(row.id, team, row.created_at, row.created_by, row.revoked_at)

    # ------------------------------------------------------------------------------- enrollment
    def enroll(self, secret: str, info: Mapping[str, Any]) -> Enrollment:
        """Exchange a team secret for a host key; a known ``machine_id`` gets a new key (the old
        one stops working) and its next report must be full. A revoked host cannot re-enroll."""
        host_fields = {
            "hostname": _host_text(info, "hostname", 255, required=True),
            "os": _host_text(info, "os", 64),
            "os_version": _host_text(info, "os_version", 200),
            "user": _host_text(info, "user", 200),
            "agent_version": _host_text(info, "agent_version", 64),
        }
        machine_id = _host_text(info, "machine_id", 200, required=True)
        if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
            raise Unauthorized("unknown or revoked enrollment secret")
        key = HOST_KEY_PREFIX + secrets.token_urlsafe(32)
        for attempt in range(2):
            try:
                with self.db.session() as s:
                    row = s.scalar(
                        select(EnrollSecret).where(EnrollSecret.secret_hash == hash_secret(secret))
                    )
                    if row is None or row.revoked_at is not None:
                        raise Unauthorized("unknown or revoked enrollment secret")
                    host = s.scalar(
                        select(Host).where(Host.machine_id == machine_id).with_for_update()
                    )
                    if host is not None and host.revoked_at is not None:
                        raise HostKeyRevoked(
                            "this host was revoked by an admin and may not enroll again",
                            host_id=host.id,
                        )
                    action = "re-enroll"
                    if host is None:
                        action = "enroll"
                        host = Host(id=uuid.uuid4().hex, machine_id=machine_id)
                        s.add(host)
                    for name, value in host_fields.items():
                        setattr(host, name, value)
                    host.team_id = row.team_id
                    if host.key_hash:
                        self._auth_cache.pop(host.key_hash, None)
                    host.key_hash = hash_secret(key)
                    host.enrolled_at = utcnow()
                    host.last_ack_seq = 0  # the agent's next report must be full
                    host.decisions_digest = None
                    if host.agent_status is None:
                        host.agent_status = {}
                    s.flush()
                    _event(s, "enrollment", host, _entity_event(host, action))
                    return Enrollment(
                        host.id, key, self.settings.report_interval, self.bundle_public_key
                    )
            except IntegrityError:  # the same machine enrolled twice at once: retry, finds it
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def cached_host(self, host_key: str) -> str | None:
        """The host id of a key seen valid in the last few seconds (no query), else None."""
        hit = self._auth_cache.get(hash_secret(host_key))
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def authenticate(self, host_key: str, *, cached: bool = False) -> str:
        """The host id a key belongs to; 401 ``unauthorized`` or ``host_key_revoked``.

        ``cached``: a key seen valid in the last :data:`AUTH_CACHE_SECONDS` passes without a
        query. Only for a gate in front of :meth:`ingest`, which checks the key under its lock.
        """
        if not host_key.startswith(HOST_KEY_PREFIX):
            raise Unauthorized("unknown host key: enroll the agent again")
        digest = hash_secret(host_key)
        now = time.monotonic()
        if cached:
            hit = self._auth_cache.get(digest)
            if hit is not None and hit[1] > now:
                return hit[0]
        with self.db.session() as s:
            row = s.execute(
                select(Host.id, Host.revoked_at).where(Host.key_hash == hash_secret(host_key))
            ).first()
        if row is None:
            raise Unauthorized("unknown host key: enroll the agent again")
        if row.revoked_at is not None:
            raise HostKeyRevoked("this host's key was revoked by an admin", host_id=row.id)
        if len(self._auth_cache) >= _AUTH_CACHE_SIZE:
            self._auth_cache.clear()
        self._auth_cache[digest] = (str(row.id), now + AUTH_CACHE_SECONDS)
        return str(row.id)

    def revoke_host(self, host_id: str, actor: str) -> None:
        """The host's key stops working at once and the machine may not enroll again."""
        with self.db.session() as s:
            host = s.get(Host, host_id, with_for_update=True)
            if host is None:
                raise HostNotFound(f"no host {host_id}", host_id=host_id)
            self._auth_cache.pop(host.key_hash, None)
            if host.revoked_at is None:
                host.revoked_at = utcnow()
                doc = _entity_event(host, "revoke")
                doc["actor"] = {"user": {"name": actor}}
                _event(s, "revocation", host, doc)

    # -------------------------------------------------------------------------------- reports
    def ingest(self, host_id: str, report: Report, *, host_key: str | None = None) -> Ack:
        """Apply ``report`` exactly once (see the module docstring). With ``host_key``, the key
        must still be the host's current one (checked under the row lock)."""
        key_hash = hash_secret(host_key) if host_key is not None else None
        for attempt in range(2):
            try:
                with self.db.session() as s:
                    return self._ingest(s, host_id, report, key_hash)
            except IntegrityError:
                # The same report_id committed by a concurrent request: the retry finds it.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _ingest(self, s: Session, host_id: str, report: Report, key_hash: str | None) -> Ack:
        host = s.get(Host, host_id, with_for_update=True, populate_existing=True)
        if host is None or (key_hash is not None and host.key_hash != key_hash):
            raise Unauthorized("unknown host key: enroll the agent again")
        if host.revoked_at is not None:
            raise HostKeyRevoked("this host's key was revoked by an admin", host_id=host_id)
        done = s.execute(
            select(AppliedReport.host_id, AppliedReport.seq).where(
                AppliedReport.report_id == report.report_id
            )
        ).first()
        if done is not None:
            if done.host_id != host_id:
                raise BadRequest("report_id was used by another host", report_id=report.report_id)
            host.last_seen = utcnow()
            return Ack(int(done.seq), False)
        if report.seq <= host.last_ack_seq:
            # Older than what is applied (a late duplicate under a new id, or a replay after a
            # full report overtook it): acknowledged so the agent drops it, never applied.
            host.last_seen = utcnow()
            return Ack(report.seq, False)
        if not report.full and report.base != host.last_ack_seq:
            raise ResyncRequired(
                f"report {report.seq} is a delta against {report.base} but the server's last "
                f"applied report is {host.last_ack_seq}: send a full report",
                base=report.base,
                last_ack=host.last_ack_seq,
            )
        self._apply_inventory(s, host_id, report)
        self._apply_decisions(s, host, report.decisions)
        now = utcnow()
        host.last_ack_seq = report.seq
        host.last_seen = now
        status = dict(report.agent)
        status["collected_at"] = report.host.get("collected_at")
        host.agent_status = status
        if isinstance(report.agent.get("version"), str) and len(report.agent["version"]) <= 64:
            host.agent_version = report.agent["version"]
        s.add(AppliedReport(host_id=host_id, report_id=report.report_id, seq=report.seq, at=now))
        s.flush()
        return Ack(report.seq, True)

    def _apply_inventory(self, s: Session, host_id: str, report: Report) -> None:
        tables: list[tuple[Any, Any, list[str], list[dict[str, Any]]]] = [
            (
                HostArtifact,
                HostArtifact.path,
                [*report.removed_artifacts, *(a.path for a in report.artifacts)],
                [
                    {
                        "host_id": host_id,
                        "path": a.path,
                        "sha256": a.sha256,
                        "size": a.size,
                        "format": a.format,
                        "source_kind": a.source_kind,
                        "source_name": a.source_name,
                        "source_repo": a.source_repo,
                        "source_revision": a.source_revision,
                        "license_id": a.license_id,
                        "max_severity": a.max_severity,
                        "in_use": a.in_use,
                        "doc": dict(a.doc),
                    }
                    for a in _last_by(report.artifacts, lambda a: a.path)
                ],
            ),
            (
                HostRuntime,
                HostRuntime.name,
                [*report.removed_runtimes, *(r.name for r in report.runtimes)],
                [
                    {
                        "host_id": host_id,
                        "name": r.name,
                        "version": r.version,
                        "running": r.running,
                        "exposed": r.exposed,
                        "vulnerable": r.vulnerable,
                        "doc": dict(r.doc),
                    }
                    for r in _last_by(report.runtimes, lambda r: r.name)
                ],
            ),
            (
                HostPackage,
                HostPackage.key,
                [*report.removed_packages, *(p.key for p in report.packages)],
                [
                    {
                        "host_id": host_id,
                        "key": p.key,
                        "name": p.name,
                        "version": p.version,
                        "vulnerable": p.vulnerable,
                        "doc": dict(p.doc),
                    }
                    for p in _last_by(report.packages, lambda p: p.key)
                ],
            ),
        ]
        for table, key_column, keys, rows in tables:
            if report.full:
                s.execute(delete(table).where(table.host_id == host_id))
            else:
                for part in _chunks(sorted(set(keys))):
                    s.execute(delete(table).where(table.host_id == host_id, key_column.in_(part)))
            for part in _chunks(rows):
                s.execute(insert(table), list(part))
        if report.full or report.artifacts or report.removed_artifacts:
            s.execute(delete(HostLicense).where(HostLicense.host_id == host_id))
            s.execute(
                insert(HostLicense).from_select(
                    ["host_id", "license_id", "artifacts"],
                    select(HostArtifact.host_id, HostArtifact.license_id, func.count())
                    .where(HostArtifact.host_id == host_id)
                    .group_by(HostArtifact.host_id, HostArtifact.license_id),
                )
            )

    def _apply_decisions(self, s: Session, host: Host, decisions: Sequence[DecisionIn]) -> None:
        """The host's violations become the report's decisions (plain allows are not kept)."""
        kept = _last_by(
            [d for d in decisions if d.action != "allow" or d.waived_by], lambda d: d.key
        )
        digest = hashlib.sha256(
            json.dumps(sorted(dataclasses.astuple(d) for d in kept)).encode()
        ).hexdigest()
        now = utcnow()
        today = now.date()
        if host.decisions_digest == digest and host.counted_on == today:
            return  # the same decisions as the last report, already counted today
        host.decisions_digest = digest
        host.counted_on = today
        before = {
            (r.rule, r.subject_kind, r.subject): r.since
            for r in s.execute(
                select(
                    Violation.rule, Violation.subject_kind, Violation.subject, Violation.since
                ).where(Violation.host_id == host.id, Violation.waived.is_(False))
            )
        }
        s.execute(delete(Violation).where(Violation.host_id == host.id))
        rows = [
            {
                "host_id": host.id,
                "rule": d.rule,
                "severity": d.severity,
                "action": d.action,
                "subject_kind": d.subject_kind,
                "subject": d.subject,
                "sha256": d.sha256,
                "message": d.message,
                "waived": bool(d.waived_by),
                "waived_by": d.waived_by,
                "since": before.get(d.key, now),  # when it was first reported
            }
            for d in kept
        ]
        for part in _chunks(rows):
            s.execute(insert(Violation), list(part))
        for d in kept:
            if not d.waived_by and d.key not in before:
                _event(s, "violation", host, _finding_event(host, d))
        # The daily trend: this host's open (not waived) violations per severity, today.
        s.execute(
            delete(ViolationCount).where(
                ViolationCount.day == today, ViolationCount.host_id == host.id
            )
        )
        counts: dict[str, int] = {}
        for d in kept:
            if not d.waived_by:
                counts[d.severity] = counts.get(d.severity, 0) + 1
        if counts:
            s.execute(
                insert(ViolationCount),
                [
                    {"day": today, "host_id": host.id, "severity": sev, "count": n}
                    for sev, n in sorted(counts.items())
                ],
            )

    # ---------------------------------------------------------------------------------- misc
    def host_count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Host)) or 0)


def _last_by(items: Iterable[Any], key: Any) -> list[Any]:
    """``items`` without duplicates of ``key`` (the last one wins, as a later entry would)."""
    out: dict[Any, Any] = {}
    for item in items:
        out[key(item)] = item
    return list(out.values())


# ------------------------------------------------------------------------------- SIEM events
def _event(s: Session, kind: str, host: Host, document: dict[str, Any]) -> None:
    s.add(FleetEvent(kind=kind, host_id=host.id, document=document, at=utcnow()))


def _ocsf_base(host: Host) -> dict[str, Any]:
    return {
        "time": int(utcnow().timestamp() * 1000),
        "metadata": {
            "version": "1.3.0",
            "product": {"name": "modelward", "vendor_name": "modelward", "version": __version__},
        },
        "device": {
            "uid": host.id,
            "hostname": host.hostname,
            "os": {"name": host.os, "version": host.os_version},
            "owner": {"name": host.user},
        },
    }


def _finding_event(host: Host, d: DecisionIn) -> dict[str, Any]:
    """An OCSF Detection Finding (class 2004) for a new violation on a host."""
    resource: dict[str, Any] = {"type": d.subject_kind, "name": d.subject}
    if d.sha256:
        resource["uid"] = d.sha256
    return {
        **_ocsf_base(host),
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "severity_id": _OCSF_SEVERITY.get(d.severity, 0),
        "severity": d.severity.capitalize(),
        "message": d.message,
        "finding_info": {
            "uid": hashlib.sha256(
                f"{host.id}\0{d.rule}\0{d.subject_kind}\0{d.subject}".encode()
            ).hexdigest()[:32],
            "title": d.rule,
            "desc": d.message,
            "types": ["modelward.policy"],
        },
        "disposition": d.action,
        "resources": [resource],
    }


def _entity_event(host: Host, action: str) -> dict[str, Any]:
    """An OCSF-style Entity Management event (class 3004) for enrollment or revocation."""
    activity = {"enroll": (1, "Create"), "re-enroll": (3, "Update"), "revoke": (4, "Delete")}
    aid, aname = activity[action]
    return {
        **_ocsf_base(host),
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "class_uid": 3004,
        "class_name": "Entity Management",
        "activity_id": aid,
        "activity_name": aname,
        "type_uid": 300400 + aid,
        "severity_id": 1,
        "severity": "Informational",
        "message": f"host {host.hostname} ({host.id}): {action}",
        "entity": {"type": "host key", "uid": host.id, "name": host.hostname},
    }
