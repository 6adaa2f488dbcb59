"""Initial schema: repositories, revisions and their files, refs, blobs, attachments, audit log,
tokens, Ollama keys, shared server keys and OCI upload sessions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Constraints get explicit names (``uq_<table>_<columns>``, ``fk_<table>_<column>``) so later
migrations can alter them on SQLite (batch mode) and PostgreSQL alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_{table}_{column}")


def upgrade() -> None:
    op.create_table(
        "repos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(161), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_repos_name"),
    )
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("commit", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("license", sa.JSON(), nullable=False),
        sa.Column("scan", sa.JSON(), nullable=False),
        sa.Column("max_severity", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("decided_at", _TS, nullable=True),
        sa.Column("approved_at", _TS, nullable=True),
        sa.Column("signature", sa.JSON(), nullable=True),
        _fk("revisions", "repo_id", "repos.id"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repo_id", "commit", name="uq_revisions_repo_id_commit"),
    )
    op.create_index("ix_revisions_commit", "revisions", ["commit"])
    op.create_index("ix_revisions_repo_id", "revisions", ["repo_id"])
    op.create_index("ix_revisions_state", "revisions", ["state"])
    op.create_table(
        "revision_files",
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("git_sha1", sa.String(40), nullable=False),
        _fk("revision_files", "revision_id", "revisions.id"),
        sa.PrimaryKeyConstraint("revision_id", "path"),
    )
    op.create_index("ix_revision_files_sha256", "revision_files", ["sha256"])
    op.create_table(
        "refs",
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        _fk("refs", "repo_id", "repos.id"),
        _fk("refs", "revision_id", "revisions.id"),
        sa.PrimaryKeyConstraint("repo_id", "name"),
    )
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        _fk("attachments", "revision_id", "revisions.id"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("revision_id", "kind", name="uq_attachments_revision_id_kind"),
    )
    op.create_index("ix_attachments_revision_id", "attachments", ["revision_id"])
    op.create_index("ix_attachments_sha256", "attachments", ["sha256"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("repo", sa.String(161), nullable=False),
        sa.Column("commit", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_repo", "audit_events", ["repo"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
    )
    op.create_table(
        "ollama_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("public_key", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_key", name="uq_ollama_keys_public_key"),
    )
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("repo", sa.String(161), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    for table in (
        "uploads",
        "server_keys",
        "ollama_keys",
        "tokens",
        "audit_events",
        "attachments",
        "blobs",
        "refs",
        "revision_files",
        "revisions",
        "repos",
    ):
        op.drop_table(table)  # indexes go with their table
