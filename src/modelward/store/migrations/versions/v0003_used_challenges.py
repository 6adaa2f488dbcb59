"""used_challenges: signed Ollama token requests already used (single use, issue 5).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("used_challenges"):
        # A database made by ``Database.create_all`` (stamped 0001 when adopted) has it already.
        return
    op.create_table(
        "used_challenges",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("used_challenges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_used_challenges_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("used_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_used_challenges_expires_at"))
    op.drop_table("used_challenges")
