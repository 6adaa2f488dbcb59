"""Fleet views: hosts, artifacts, violations, runtimes, packages, licenses, trend, events, metrics.

Lists are paginated by a cursor (keyset on the row id: stable while rows are added, no OFFSET
scans): each answer is ``{"items": [...], "next": cursor-or-null}``; pass ``next`` back as
``cursor``. A host is **online** when it reported within the offline window (default three report
intervals, ``FleetSettings.offline_window``), **offline** otherwise, **revoked** once an admin
revoked it. An artifact is **approved** when its SHA-256 is a file of an approved hub revision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import distinct, exists, func, or_, select

from modelward.errors import BadRequest
from modelward.fleet.errors import HostNotFound
from modelward.fleet.report import SEVERITIES
from modelward.store.db import (
    Database,
    FleetEvent,
    Host,
    HostArtifact,
    HostLicense,
    HostPackage,
    HostRuntime,
    PolicyBundle,
    Revision,
    RevisionFile,
    Team,
    Violation,
    ViolationCount,
    utcnow,
)

MAX_LIMIT = 1000
HOST_STATES = ("online", "offline", "revoked")


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.extra, "items": self.items, "next": self.next}


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be 1..{MAX_LIMIT}", limit=limit)
    return limit


def _int_cursor(cursor: str | None) -> int | None:
    if cursor in (None, ""):
        return None
    try:
        return int(str(cursor))
    except ValueError:
        raise BadRequest("cursor is not one this server gave out", cursor=cursor) from None


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite gives naive datetimes back; they are stored as UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _page(rows: Sequence[Any], limit: int, item: Any, key: Any) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([item(r) for r in rows], str(key(rows[-1])) if more and rows else None)


def _with_host(table: Any, *columns: Any) -> Any:
    """SQL: the rows of a per-host table with their host's name, in id order (the cursor's)."""
    return (
        select(table, Host.hostname, *columns)
        .join(Host, Host.id == table.host_id)
        .order_by(table.id)
    )


def _id_page(db: Database, q: Any, table: Any, limit: int, cursor: str | None, item: Any) -> Page:
    """One page of ``q`` (from :func:`_with_host`) after ``cursor``, the last row id given out."""
    after = _int_cursor(cursor)
    if after is not None:
        q = q.where(table.id > after)
    with db.session() as s:
        rows = s.execute(q.limit(limit + 1)).all()
        return _page(rows, limit, item, lambda r: r[0].id)


def _severities(text: str | None) -> list[str] | None:
    if not text:
        return None
    out = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in out if s not in SEVERITIES]
    if bad:
        raise BadRequest(f"severity must be among {', '.join(SEVERITIES)}", severity=text)
    return out


# ----------------------------------------------------------------------------------------- hosts
def host_state(host: Host, window: int, now: dt.datetime | None = None) -> str:
    if host.revoked_at is not None:
        return "revoked"
    seen = _aware(host.last_seen)
    now = now or utcnow()
    return (
        "online" if seen is not None and seen >= now - dt.timedelta(seconds=window) else "offline"
    )


def _host_doc(host: Host, team: str | None, window: int, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": host.id,
        "hostname": host.hostname,
        "os": host.os,
        "os_version": host.os_version,
        "user": host.user,
        "machine_id": host.machine_id,
        "agent_version": host.agent_version,
        "team": team,
        "state": host_state(host, window, now),
        "enrolled_at": _iso(host.enrolled_at),
        "last_seen": _iso(host.last_seen),
        "revoked_at": _iso(host.revoked_at),
        "last_ack_seq": host.last_ack_seq,
        "agent": host.agent_status or {},
    }


def hosts(
    db: Database,
    *,
    window: int,
    state: str | None = None,
    team: str | None = None,
    hostname: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    limit = _limit(limit)
    now = utcnow()
    since = now - dt.timedelta(seconds=window)
    q = select(Host, Team.name).outerjoin(Team, Team.id == Host.team_id).order_by(Host.id)
    if state is not None:
        if state not in HOST_STATES:
            raise BadRequest(f"state must be one of {', '.join(HOST_STATES)}", state=state)
        if state == "revoked":
            q = q.where(Host.revoked_at.is_not(None))
        elif state == "online":
            q = q.where(Host.revoked_at.is_(None), Host.last_seen >= since)
        else:
            q = q.where(
                Host.revoked_at.is_(None), or_(Host.last_seen.is_(None), Host.last_seen < since)
            )
    if team:
        q = q.where(Team.name == team)
    if hostname:
        q = q.where(Host.hostname.contains(hostname, autoescape=True))
    if cursor:
        q = q.where(Host.id > cursor)
    with db.session() as s:
        rows = s.execute(q.limit(limit + 1)).all()
        return _page(rows, limit, lambda r: _host_doc(r[0], r[1], window, now), lambda r: r[0].id)


def host(db: Database, host_id: str, *, window: int) -> dict[str, Any]:
    """One host with its runtimes, packages and counts of artifacts and open violations."""
    with db.session() as s:
        row = s.execute(
            select(Host, Team.name)
            .outerjoin(Team, Team.id == Host.team_id)
            .where(Host.id == host_id)
        ).first()
        if row is None:
            raise HostNotFound(f"no host {host_id}", host_id=host_id)
        doc = _host_doc(row[0], row[1], window, utcnow())
        doc["artifacts"] = s.scalar(
            select(func.count()).select_from(HostArtifact).where(HostArtifact.host_id == host_id)
        )
        doc["violations"] = dict(
            s.execute(
                select(Violation.severity, func.count())
                .where(Violation.host_id == host_id, Violation.waived.is_(False))
                .group_by(Violation.severity)
            ).all()
        )
        doc["runtimes"] = [
            {**r.doc, "exposed": r.exposed, "vulnerable": r.vulnerable}
            for r in s.scalars(
                select(HostRuntime).where(HostRuntime.host_id == host_id).order_by(HostRuntime.name)
            )
        ]
        doc["packages"] = [
            {**p.doc, "vulnerable": p.vulnerable}
            for p in s.scalars(
                select(HostPackage).where(HostPackage.host_id == host_id).order_by(HostPackage.key)
            )
        ]
        return doc


# ------------------------------------------------------------------------------------- artifacts
def _approved() -> Any:
    """SQL: the artifact's sha256 is a file of an approved hub revision."""
    return exists(
        select(RevisionFile.sha256)
        .join(Revision, Revision.id == RevisionFile.revision_id)
        .where(RevisionFile.sha256 == HostArtifact.sha256, Revision.state == "approved")
    )


def artifacts(
    db: Database,
    *,
    sha256: str | None = None,
    unapproved: bool = False,
    host_id: str | None = None,
    format: str | None = None,
    license_id: str | None = None,
    source_kind: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Artifacts across the fleet with the host that holds each (``sha256``: which hosts hold it)."""
    limit = _limit(limit)
    approved = _approved().label("approved")
    q = _with_host(HostArtifact, approved)
    if sha256:
        q = q.where(HostArtifact.sha256 == sha256.lower().removeprefix("sha256:"))
    if unapproved:
        q = q.where(or_(HostArtifact.sha256.is_(None), ~_approved()))
    if host_id:
        q = q.where(HostArtifact.host_id == host_id)
    if format:
        q = q.where(HostArtifact.format == format)
    if license_id:
        q = q.where(HostArtifact.license_id == license_id)
    if source_kind:
        q = q.where(HostArtifact.source_kind == source_kind)

    def item(r: Any) -> dict[str, Any]:
        a: HostArtifact = r[0]
        return {
            "id": a.id,
            "host_id": a.host_id,
            "hostname": r[1],
            "path": a.path,
            "sha256": a.sha256,
            "size": a.size,
            "format": a.format,
            "source": {
                "kind": a.source_kind,
                "name": a.source_name,
                "repo": a.source_repo,
                "revision": a.source_revision,
            },
            "license": a.license_id,
            "max_severity": a.max_severity,
            "in_use": a.in_use,
            "approved": bool(r[2]),
        }

    return _id_page(db, q, HostArtifact, limit, cursor, item)


# ------------------------------------------------------------------------------------ violations
def violations(
    db: Database,
    *,
    rule: str | None = None,
    severity: str | None = None,
    host_id: str | None = None,
    action: str | None = None,
    include_waived: bool = False,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    limit = _limit(limit)
    q = _with_host(Violation)
    if rule:
        q = q.where(Violation.rule == rule)
    sev = _severities(severity)
    if sev:
        q = q.where(Violation.severity.in_(sev))
    if host_id:
        q = q.where(Violation.host_id == host_id)
    if action:
        q = q.where(Violation.action == action)
    if not include_waived:
        q = q.where(Violation.waived.is_(False))

    def item(r: Any) -> dict[str, Any]:
        v: Violation = r[0]
        return {
            "id": v.id,
            "host_id": v.host_id,
            "hostname": r[1],
            "rule": v.rule,
            "severity": v.severity,
            "action": v.action,
            "subject": {"kind": v.subject_kind, "name": v.subject, "sha256": v.sha256},
            "message": v.message,
            "waived": v.waived,
            "waived_by": v.waived_by,
            "since": _iso(v.since),
        }

    return _id_page(db, q, Violation, limit, cursor, item)


def violation_summary(db: Database) -> list[dict[str, Any]]:
    """Open violations by rule and severity: how many, on how many hosts (most severe first)."""
    with db.session() as s:
        # Per host first, then per rule: a hash aggregate, no sort for count(DISTINCT host).
        per_host = (
            select(Violation.rule, Violation.severity, func.count().label("n"))
            .where(Violation.waived.is_(False))
            .group_by(Violation.rule, Violation.severity, Violation.host_id)
            .subquery()
        )
        rows = s.execute(
            select(
                per_host.c.rule, per_host.c.severity, func.sum(per_host.c.n), func.count()
            ).group_by(per_host.c.rule, per_host.c.severity)
        ).all()
    out: list[dict[str, Any]] = [
        {"rule": r[0], "severity": r[1], "count": r[2], "hosts": r[3]} for r in rows
    ]
    out.sort(key=lambda d: (SEVERITIES.index(d["severity"]), -d["count"], d["rule"]))
    return out


# --------------------------------------------------------------------------- runtimes, packages
def runtimes(
    db: Database,
    *,
    exposed: bool | None = None,
    vulnerable: bool | None = None,
    name: str | None = None,
    host_id: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    limit = _limit(limit)
    q = _with_host(HostRuntime)
    if exposed is not None:
        q = q.where(HostRuntime.exposed.is_(exposed))
    if vulnerable is not None:
        q = q.where(HostRuntime.vulnerable.is_(vulnerable))
    if name:
        q = q.where(HostRuntime.name == name)
    if host_id:
        q = q.where(HostRuntime.host_id == host_id)

    def item(r: Any) -> dict[str, Any]:
        rt: HostRuntime = r[0]
        return {
            "id": rt.id,
            "host_id": rt.host_id,
            "hostname": r[1],
            "name": rt.name,
            "version": rt.version,
            "running": rt.running,
            "exposed": rt.exposed,
            "vulnerable": rt.vulnerable,
            "listen": rt.doc.get("listen", []),
            "findings": rt.doc.get("findings", []),
        }

    return _id_page(db, q, HostRuntime, limit, cursor, item)


def packages(
    db: Database,
    *,
    vulnerable: bool | None = None,
    name: str | None = None,
    host_id: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    limit = _limit(limit)
    q = _with_host(HostPackage)
    if vulnerable is not None:
        q = q.where(HostPackage.vulnerable.is_(vulnerable))
    if name:
        q = q.where(HostPackage.name == name)
    if host_id:
        q = q.where(HostPackage.host_id == host_id)

    def item(r: Any) -> dict[str, Any]:
        p: HostPackage = r[0]
        return {
            "id": p.id,
            "host_id": p.host_id,
            "hostname": r[1],
            "name": p.name,
            "version": p.version,
            "environment": p.doc.get("environment"),
            "vulnerable": p.vulnerable,
            "findings": p.doc.get("findings", []),
        }

    return _id_page(db, q, HostPackage, limit, cursor, item)


def vulnerable_versions(db: Database) -> list[dict[str, Any]]:
    """Runtime and library versions with a known vulnerability, with how many hosts run them."""
    out: list[dict[str, Any]] = []
    with db.session() as s:
        for kind, table in (("runtime", HostRuntime), ("package", HostPackage)):
            rows = s.execute(
                select(table.name, table.version, func.count(distinct(table.host_id)))
                .where(table.vulnerable.is_(True))
                .group_by(table.name, table.version)
            ).all()
            out += [{"kind": kind, "name": r[0], "version": r[1], "hosts": r[2]} for r in rows]
    out.sort(key=lambda d: (-d["hosts"], d["kind"], d["name"], d["version"] or ""))
    return out


# -------------------------------------------------------------------------------- licenses, trend
def licenses(db: Database) -> list[dict[str, Any]]:
    """License identifiers across the fleet: artifacts and hosts with each (most hosts first)."""
    with db.session() as s:
        rows = s.execute(
            select(HostLicense.license_id, func.sum(HostLicense.artifacts), func.count()).group_by(
                HostLicense.license_id
            )
        ).all()
    out: list[dict[str, Any]] = [
        {"license": r[0], "artifacts": int(r[1]), "hosts": int(r[2])} for r in rows
    ]
    out.sort(key=lambda d: (-d["hosts"], d["license"]))
    return out


def trend(db: Database, days: int = 30) -> list[dict[str, Any]]:
    """Per day (oldest first): open violations by severity, summed over the hosts' last report
    of that day. Days without any report are absent."""
    if not 1 <= days <= 366:
        raise BadRequest("days must be 1..366", days=days)
    first = utcnow().date() - dt.timedelta(days=days - 1)
    with db.session() as s:
        rows = s.execute(
            select(ViolationCount.day, ViolationCount.severity, func.sum(ViolationCount.count))
            .where(ViolationCount.day >= first)
            .group_by(ViolationCount.day, ViolationCount.severity)
            .order_by(ViolationCount.day)
        ).all()
    by_day: dict[dt.date, dict[str, int]] = {}
    for day, sev, n in rows:
        by_day.setdefault(day, {s: 0 for s in SEVERITIES})[sev] = int(n)
    return [
        {"day": day.isoformat(), "total": sum(c.values()), "by_severity": c}
        for day, c in sorted(by_day.items())
    ]


# ------------------------------------------------------------------------------- events, metrics
def events(
    db: Database, since: str | None = None, limit: int = 1000
) -> tuple[list[dict[str, Any]], str]:
    """Events after the cursor ``since`` (oldest first) and the cursor to pass next time."""
    limit = _limit(limit)
    after = _int_cursor(since) or 0
    with db.session() as s:
        rows = s.scalars(
            select(FleetEvent).where(FleetEvent.id > after).order_by(FleetEvent.id).limit(limit)
        ).all()
    out = []
    for e in rows:
        doc = dict(e.document)
        doc["metadata"] = {**doc.get("metadata", {}), "uid": str(e.id)}
        doc["cursor"] = str(e.id)
        doc["modelward_kind"] = e.kind
        out.append(doc)
    return out, str(rows[-1].id if rows else after)


def metrics(db: Database, *, window: int) -> str:
    """Prometheus text exposition (format 0.0.4) of the fleet's gauges.

    Hand-written: eight gauges do not justify a dependency (prometheus_client is not installed).
    """
    since = utcnow() - dt.timedelta(seconds=window)
    with db.session() as s:
        revoked = s.scalar(select(func.count()).where(Host.revoked_at.is_not(None)))
        online = s.scalar(
            select(func.count()).where(Host.revoked_at.is_(None), Host.last_seen >= since)
        )
        total = s.scalar(select(func.count()).select_from(Host))
        by_sev = dict(
            s.execute(
                select(Violation.severity, func.count())
                .where(Violation.waived.is_(False))
                .group_by(Violation.severity)
            ).all()
        )
        artifacts_n = s.scalar(select(func.coalesce(func.sum(HostLicense.artifacts), 0)))
        exposed = s.scalar(
            select(func.count()).select_from(HostRuntime).where(HostRuntime.exposed.is_(True))
        )
        vulnerable = sum(
            int(s.scalar(select(func.count()).select_from(t).where(t.vulnerable.is_(True))) or 0)
            for t in (HostRuntime, HostPackage)
        )
        bundle = s.scalar(select(func.max(PolicyBundle.version))) or 0
    offline = int(total or 0) - int(online or 0) - int(revoked or 0)
    lines = [
        "# HELP modelward_fleet_hosts Enrolled hosts by state.",
        "# TYPE modelward_fleet_hosts gauge",
        f'modelward_fleet_hosts{{state="online"}} {online}',
        f'modelward_fleet_hosts{{state="offline"}} {offline}',
        f'modelward_fleet_hosts{{state="revoked"}} {revoked}',
        "# HELP modelward_fleet_violations Open (not waived) policy violations by severity.",
        "# TYPE modelward_fleet_violations gauge",
        *(
            f'modelward_fleet_violations{{severity="{sev}"}} {by_sev.get(sev, 0)}'
            for sev in SEVERITIES
        ),
        "# HELP modelward_fleet_artifacts Model files reported across the fleet.",
        "# TYPE modelward_fleet_artifacts gauge",
        f"modelward_fleet_artifacts {artifacts_n}",
        "# HELP modelward_fleet_exposed_runtimes Runtimes listening on a network address.",
        "# TYPE modelward_fleet_exposed_runtimes gauge",
        f"modelward_fleet_exposed_runtimes {exposed}",
        "# HELP modelward_fleet_vulnerable_installs Runtimes and libraries with a known advisory.",
        "# TYPE modelward_fleet_vulnerable_installs gauge",
        f"modelward_fleet_vulnerable_installs {vulnerable}",
        "# HELP modelward_fleet_policy_bundle_version Newest policy bundle version (0: none).",
        "# TYPE modelward_fleet_policy_bundle_version gauge",
        f"modelward_fleet_policy_bundle_version {bundle}",
    ]
    return "\n".join(lines) + "\n"
