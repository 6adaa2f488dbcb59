"""The hub's database: SQLAlchemy 2.0 tables and a small ``Database`` wrapper (SQLite or PostgreSQL).

The schema is owned by Alembic migrations (``store/migrations``); ``Database.create_all`` exists for
the embedded SQLite default and for tests. Audit rows are append-only: nothing updates or deletes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


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
