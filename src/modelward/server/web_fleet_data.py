"""Database reads of the fleet console pages beyond :mod:`modelward.fleet.queries`.

Counts for the overview (the unapproved count bounded), host names and teams for the filters, the
artifact a violation is about, and the approved hub revisions holding a file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select

from modelward.errors import NotFound
from modelward.fleet import queries
from modelward.store.db import (
    Database,
    Host,
    HostArtifact,
    HostLicense,
    HostPackage,
    HostRuntime,
    Repo,
    Revision,
    RevisionFile,
    Team,
    utcnow,
)

UNAPPROVED_CAP = 10_000
"""The overview counts unapproved artifacts up to this many ("10,000+"): an exact count is a
probe of the hub's files per artifact, too slow on a large fleet for a page."""


def host_name(db: Database, host_id: str) -> str:
    """The host's name (a 404 page when no host has that id: a filter naming a missing host)."""
    with db.session() as s:
        name = s.scalar(select(Host.hostname).where(Host.id == host_id))
    if name is None:
        raise NotFound(f"no host {host_id}")
    return name


def teams(db: Database) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(Team.name).order_by(Team.name).limit(500)))


def _artifact_digests(db: Database, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(host id, path) -> SHA-256 of the artifacts the violations name without a digest."""
    wanted = {
        (v["host_id"], v["subject"]["name"])
        for v in rows
        if v["subject"]["kind"] == "artifact" and not v["subject"]["sha256"]
    }
    if not wanted:
        return {}
    with db.session() as s:
        found = s.execute(
            select(HostArtifact.host_id, HostArtifact.path, HostArtifact.sha256).where(
                HostArtifact.host_id.in_({h for h, _ in wanted}),
                HostArtifact.path.in_({p for _, p in wanted}),
                HostArtifact.sha256.is_not(None),
            )
        ).all()
    return {(h, p): sha for h, p, sha in found if (h, p) in wanted and sha}


def with_artifacts(db: Database, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Violations with ``artifact``: the SHA-256 of the file they are about, when it is known."""
    digests = _artifact_digests(db, rows)
    return [
        {
            **v,
            "artifact": v["subject"]["sha256"] or digests.get((v["host_id"], v["subject"]["name"])),
        }
        for v in rows
    ]


# ------------------------------------------------------------------------------------ overview
@dataclass(frozen=True, slots=True)
class Counts:
    online: int
    offline: int
    revoked: int
    artifacts: int
    unapproved: int
    unapproved_capped: bool
    exposed: int
    vulnerable: int

    @property
    def hosts(self) -> int:
        return self.online + self.offline + self.revoked


def overview_counts(db: Database, window: int) -> Counts:
    """Hosts by state, artifacts (unapproved ones up to ``UNAPPROVED_CAP``), exposed runtimes and
    vulnerable installs: the same definitions as ``queries.hosts`` and ``queries.metrics``."""
    since = utcnow() - dt.timedelta(seconds=window)
    with db.session() as s:
        total = int(s.scalar(select(func.count()).select_from(Host)) or 0)
        revoked = int(s.scalar(select(func.count()).where(Host.revoked_at.is_not(None))) or 0)
        online = int(
            s.scalar(select(func.count()).where(Host.revoked_at.is_(None), Host.last_seen >= since))
            or 0
        )
        artifacts = int(s.scalar(select(func.coalesce(func.sum(HostLicense.artifacts), 0))) or 0)
        # queries' own definition of "approved" (a file of an approved hub revision).
        unapproved_rows = (
            select(HostArtifact.id)
            .where(or_(HostArtifact.sha256.is_(None), ~queries._approved()))
            .limit(UNAPPROVED_CAP + 1)
            .subquery()
        )
        unapproved = int(s.scalar(select(func.count()).select_from(unapproved_rows)) or 0)
        exposed = int(
            s.scalar(
                select(func.count()).select_from(HostRuntime).where(HostRuntime.exposed.is_(True))
            )
            or 0
        )
        vulnerable = sum(
            int(s.scalar(select(func.count()).select_from(t).where(t.vulnerable.is_(True))) or 0)
            for t in (HostRuntime, HostPackage)
        )
    return Counts(
        online=online,
        offline=total - online - revoked,
        revoked=revoked,
        artifacts=artifacts,
        unapproved=min(unapproved, UNAPPROVED_CAP),
        unapproved_capped=unapproved > UNAPPROVED_CAP,
        exposed=exposed,
        vulnerable=vulnerable,
    )


def hub_files(db: Database, sha: str) -> list[dict[str, Any]]:
    """Approved hub revisions that hold a file with this digest (the artifact is approved)."""
    with db.session() as s:
        rows = s.execute(
            select(Repo.name, Revision.commit, RevisionFile.path)
            .join(Revision, Revision.id == RevisionFile.revision_id)
            .join(Repo, Repo.id == Revision.repo_id)
            .where(RevisionFile.sha256 == sha, Revision.state == "approved")
            .order_by(Repo.name, Revision.commit)
            .limit(20)
        ).all()
    return [{"repo": r[0], "commit": r[1], "path": r[2]} for r in rows]
