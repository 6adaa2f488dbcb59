"""The hub's database: SQLAlchemy 2.0 tables and a small ``Database`` wrapper (SQLite or PostgreSQL).

The schema is owned by Alembic migrations (``store/migrations``); ``Database.create_all`` exists for
the embedded SQLite default and for tests. Audit rows are append-only: nothing updates or deletes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # The names migrations/versions/v0001_initial.py gives its constraints, so later migrations
    # (and SQLite batch operations) can address them.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}  # noqa: RUF012


class Repo(Base):
    __tablename__ = "repos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(161), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revisions: Mapped[list[Revision]] = relationship(back_populates="repo")


class Revision(Base):
    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("repo_id", "commit"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id"), index=True)
    commit: Mapped[str] = mapped_column(String(40), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    provenance: Mapped[dict[str, Any]] = mapped_column(default=dict)
    license: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Deferred: the report can be large and most reads (downloads) do not need it.
    scan: Mapped[dict[str, Any]] = mapped_column(default=dict, deferred=True)
    max_severity: Mapped[str | None] = mapped_column(String(16), default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    approved_at: Mapped[datetime | None] = mapped_column(default=None)
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    repo: Mapped[Repo] = relationship(back_populates="revisions")
    files: Mapped[list[RevisionFile]] = relationship(
        order_by="RevisionFile.path", cascade="all, delete-orphan"
    )


class RevisionFile(Base):
    __tablename__ = "revision_files"
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    git_sha1: Mapped[str] = mapped_column(String(40))


class Ref(Base):
    """A named pointer: ``main`` (moves on approval) or a tag (immutable once approved)."""

    __tablename__ = "refs"
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"))


class Blob(Base):
    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    """A document attached to a revision (signature bundle, scan report, OCI manifest ...)."""

    __tablename__ = "attachments"
    __table_args__ = (UniqueConstraint("revision_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    media_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    repo: Mapped[str] = mapped_column(String(161), index=True)
    commit: Mapped[str] = mapped_column(String(40), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class OllamaKey(Base):
    """A developer machine's Ollama ed25519 public key, registered so ``ollama pull`` authenticates."""

    __tablename__ = "ollama_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(String(200), unique=True)  # base64 ssh-ed25519 blob
    role: Mapped[str] = mapped_column(String(16), default="reader")
    # Registered (or registered again after a revocation) at: registry tokens name it, so a key
    # revoked and registered again does not bring back the tokens issued before.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    # Set when an admin revokes the key: it no longer authenticates; the row stays for the record.
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ServerKey(Base):
    """Secrets every replica must share (URL-signing key, model-signing key), made on first start."""

    __tablename__ = "server_keys"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Upload(Base):
    """An OCI blob upload session (chunks live in the blob store's temporary area)."""

    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    repo: Mapped[str] = mapped_column(String(161))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# ------------------------------------------------------------------------------------------ fleet
# The endpoint agents' machines (issue 6): enrollment, their last reported inventory, the policy's
# decisions about it, and the policy bundles they fetch. Secrets and host keys are stored hashed.


class Team(Base):
    __tablename__ = "fleet_teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EnrollSecret(Base):
    """A team's enrollment secret (sha256 of it): exchanged by an agent for its own host key."""

    __tablename__ = "fleet_enroll_secrets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("fleet_teams.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Host(Base):
    """An enrolled machine. ``last_ack_seq`` is the seq of the last report applied (0: none yet)."""

    __tablename__ = "fleet_hosts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    machine_id: Mapped[str] = mapped_column(String(200), unique=True)
    hostname: Mapped[str] = mapped_column(String(255), index=True)
    os: Mapped[str] = mapped_column(String(64), default="")
    os_version: Mapped[str] = mapped_column(String(200), default="")
    user: Mapped[str] = mapped_column(String(200), default="")
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("fleet_teams.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime | None] = mapped_column(default=None, index=True)
    last_ack_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    agent_status: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What the last report decided (a digest) and the day it was counted for the trend: a report
    # that changes neither skips rewriting the host's violations.
    decisions_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    counted_on: Mapped[date | None] = mapped_column(Date, default=None)


class HostArtifact(Base):
    """A model file on a host, as its last reports describe it (``doc``: the inventory entry)."""

    __tablename__ = "fleet_host_artifacts"
    __table_args__ = (UniqueConstraint("host_id", "path"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    host_id: Mapped[str] = mapped_column(ForeignKey("fleet_hosts.id"), index=True)
    path: Mapped[str] = mapped_column(String(2048))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    format: Mapped[str] = mapped_column(String(32), default="unknown", index=True)
    source_kind: Mapped[str] = mapped_column(String(32), default="file")
    source_name: Mapped[str | None] = mapped_column(String(300), default=None)
    source_repo: Mapped[str | None] = mapped_column(String(300), default=None)
    source_revision: Mapped[str | None] = mapped_column(String(100), default=None)
    license_id: Mapped[str] = mapped_column(String(100), default="unknown", index=True)
    max_severity: Mapped[str | None] = mapped_column(String(16), default=None)
    in_use: Mapped[bool] = mapped_column(Boolean, default=False)
    doc: Mapped[dict[str, Any]] = mapped_column(default=dict, deferred=True)


class HostLicense(Base):
    """How many of a host's artifacts carry each license: kept with the artifacts, so the fleet's
    license view sums a few rows per host instead of scanning every artifact."""

    __tablename__ = "fleet_host_licenses"
    host_id: Mapped[str] = mapped_column(ForeignKey("fleet_hosts.id"), primary_key=True)
    license_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    artifacts: Mapped[int] = mapped_column(Integer, default=0)


class HostRuntime(Base):
    """An inference runtime on a host (``exposed``: listens on a network-reachable address)."""

    __tablename__ = "fleet_host_runtimes"
    __table_args__ = (UniqueConstraint("host_id", "name"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    host_id: Mapped[str] = mapped_column(ForeignKey("fleet_hosts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str | None] = mapped_column(String(100), default=None)
    running: Mapped[bool] = mapped_column(Boolean, default=False)
    exposed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    vulnerable: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    doc: Mapped[dict[str, Any]] = mapped_column(default=dict)


class HostPackage(Base):
    """An inference library installed in one environment of a host (removed as ``name@env``)."""

    __tablename__ = "fleet_host_packages"
    __table_args__ = (UniqueConstraint("host_id", "key"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    host_id: Mapped[str] = mapped_column(ForeignKey("fleet_hosts.id"), index=True)
    key: Mapped[str] = mapped_column(String(2048))  # "name@environment"
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(100), default="")
    vulnerable: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    doc: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Violation(Base):
    """A policy decision (not a plain allow) about a host, replaced by each of its reports."""

    __tablename__ = "fleet_violations"
    __table_args__ = (Index("ix_fleet_violations_rule_severity", "rule", "severity"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    host_id: Mapped[str] = mapped_column(ForeignKey("fleet_hosts.id"), index=True)
    rule: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(16), index=True)
    action: Mapped[str] = mapped_column(String(16))
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(2048))  # the path (artifact) or name (runtime)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    waived: Mapped[bool] = mapped_column(Boolean, default=False)
    waived_by: Mapped[str | None] = mapped_column(Text, default=None)
    since: Mapped[datetime] = mapped_column(default=utcnow)


class AppliedReport(Base):
    """A report applied once (its id is unique): a resent report is acknowledged, not re-applied."""

    __tablename__ = "fleet_applied_reports"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    host_id: Mapped[str] = mapped_column(ForeignKey("fleet_hosts.id"), index=True)
    report_id: Mapped[str] = mapped_column(String(64), unique=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class PolicyBundle(Base):
    """A signed policy bundle (Rego files, settings, waivers); agents fetch the newest by ETag."""

    __tablename__ = "fleet_policy_bundles"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    etag: Mapped[str] = mapped_column(String(80), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column()
    signature: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class ViolationCount(Base):
    """A host's open violations per severity on a day (its last report that day): the trend."""

    __tablename__ = "fleet_violation_counts"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    host_id: Mapped[str] = mapped_column(ForeignKey("fleet_hosts.id"), primary_key=True)
    severity: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class FleetEvent(Base):
    """An append-only event for SIEMs (violation, enrollment, revocation); ``id`` is the cursor."""

    __tablename__ = "fleet_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    host_id: Mapped[str | None] = mapped_column(String(32), default=None)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)


class UsedChallenge(Base):
    """A signed Ollama token request already exchanged for a token (``id``: its challenge id),
    remembered until its timestamp is stale, so it cannot be replayed on any replica."""

    __tablename__ = "used_challenges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Database:
    """An engine plus a session factory. ``session()`` commits on success, rolls back on error."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_all(self) -> None:
        Base.metadata.create_all(self.engine)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (below); pysqlite must not open transactions on its own.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # SQLite has one writer. A deferred transaction that reads, then writes after another connection
    # committed fails at once with "database is locked" (the busy timeout does not apply to that
    # upgrade). BEGIN IMMEDIATE takes the write lock up front and waits for it with the timeout.
    # Sessions are short and never nested, so serialising them costs little.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
