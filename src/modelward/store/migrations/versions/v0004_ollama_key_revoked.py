"""ollama_keys.revoked_at: a revoked Ollama key keeps its row for the record (issue 5).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("ollama_keys")}
    if "revoked_at" in columns:
        # A database made by ``Database.create_all`` (stamped 0001 when adopted) has it already.
        return
    with op.batch_alter_table("ollama_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ollama_keys", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
