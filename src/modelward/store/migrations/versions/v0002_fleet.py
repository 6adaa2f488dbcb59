"""Fleet (issue 6): teams, enrollment secrets, hosts and their reported artifacts, runtimes,
packages and violations, applied report ids (exactly once), signed policy bundles, the daily
violation trend and the SIEM event stream.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("fleet_hosts"):
        # A database made by ``Database.create_all`` (stamped 0001 when adopted) has them already.
        return
    op.create_table(
        "fleet_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("host_id", sa.String(length=32), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "fleet_policy_bundles",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("etag", sa.String(length=80), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("version"),
        sa.UniqueConstraint("etag", name=op.f("uq_fleet_policy_bundles_etag")),
    )
    op.create_table(
        "fleet_teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name=op.f("uq_fleet_teams_name")),
    )
    op.create_table(
        "fleet_enroll_secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"], ["fleet_teams.id"], name=op.f("fk_fleet_enroll_secrets_team_id")
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_fleet_enroll_secrets_secret_hash")),
    )
    with op.batch_alter_table("fleet_enroll_secrets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fleet_enroll_secrets_team_id"), ["team_id"], unique=False
        )

    op.create_table(
        "fleet_hosts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("machine_id", sa.String(length=200), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("os", sa.String(length=64), nullable=False),
        sa.Column("os_version", sa.String(length=200), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ack_seq", sa.BigInteger(), nullable=False),
        sa.Column("agent_status", sa.JSON(), nullable=False),
        sa.Column("decisions_digest", sa.String(length=64), nullable=True),
        sa.Column("counted_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"], ["fleet_teams.id"], name=op.f("fk_fleet_hosts_team_id")
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash", name=op.f("uq_fleet_hosts_key_hash")),
        sa.UniqueConstraint("machine_id", name=op.f("uq_fleet_hosts_machine_id")),
    )
    with op.batch_alter_table("fleet_hosts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fleet_hosts_hostname"), ["hostname"], unique=False)
        batch_op.create_index(batch_op.f("ix_fleet_hosts_last_seen"), ["last_seen"], unique=False)
        batch_op.create_index(batch_op.f("ix_fleet_hosts_team_id"), ["team_id"], unique=False)

    op.create_table(
        "fleet_applied_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("host_id", sa.String(length=32), nullable=False),
        sa.Column("report_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["fleet_hosts.id"], name=op.f("fk_fleet_applied_reports_host_id")
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("report_id", name=op.f("uq_fleet_applied_reports_report_id")),
    )
    with op.batch_alter_table("fleet_applied_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fleet_applied_reports_host_id"), ["host_id"], unique=False
        )

    op.create_table(
        "fleet_host_artifacts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("host_id", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=2048), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("source_kind", sa.String(length=32), nullable=False),
        sa.Column("source_name", sa.String(length=300), nullable=True),
        sa.Column("source_repo", sa.String(length=300), nullable=True),
        sa.Column("source_revision", sa.String(length=100), nullable=True),
        sa.Column("license_id", sa.String(length=100), nullable=False),
        sa.Column("max_severity", sa.String(length=16), nullable=True),
        sa.Column("in_use", sa.Boolean(), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["fleet_hosts.id"], name=op.f("fk_fleet_host_artifacts_host_id")
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("host_id", "path", name=op.f("uq_fleet_host_artifacts_host_id_path")),
    )
    with op.batch_alter_table("fleet_host_artifacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fleet_host_artifacts_format"), ["format"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_fleet_host_artifacts_host_id"), ["host_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_fleet_host_artifacts_license_id"), ["license_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_fleet_host_artifacts_sha256"), ["sha256"], unique=False
        )

    op.create_table(
        "fleet_host_licenses",
        sa.Column("host_id", sa.String(length=32), nullable=False),
        sa.Column("license_id", sa.String(length=100), nullable=False),
        sa.Column("artifacts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["fleet_hosts.id"], name=op.f("fk_fleet_host_licenses_host_id")
        ),
        sa.PrimaryKeyConstraint("host_id", "license_id"),
    )
    op.create_table(
        "fleet_host_packages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("host_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=2048), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("vulnerable", sa.Boolean(), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["fleet_hosts.id"], name=op.f("fk_fleet_host_packages_host_id")
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("host_id", "key", name=op.f("uq_fleet_host_packages_host_id_key")),
    )
    with op.batch_alter_table("fleet_host_packages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fleet_host_packages_host_id"), ["host_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_fleet_host_packages_name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_fleet_host_packages_vulnerable"), ["vulnerable"], unique=False
        )

    op.create_table(
        "fleet_host_runtimes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("host_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=True),
        sa.Column("running", sa.Boolean(), nullable=False),
        sa.Column("exposed", sa.Boolean(), nullable=False),
        sa.Column("vulnerable", sa.Boolean(), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["fleet_hosts.id"], name=op.f("fk_fleet_host_runtimes_host_id")
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("host_id", "name", name=op.f("uq_fleet_host_runtimes_host_id_name")),
    )
    with op.batch_alter_table("fleet_host_runtimes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fleet_host_runtimes_exposed"), ["exposed"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_fleet_host_runtimes_host_id"), ["host_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_fleet_host_runtimes_vulnerable"), ["vulnerable"], unique=False
        )

    op.create_table(
        "fleet_violation_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("host_id", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["fleet_hosts.id"], name=op.f("fk_fleet_violation_counts_host_id")
        ),
        sa.PrimaryKeyConstraint("day", "host_id", "severity"),
    )
    op.create_table(
        "fleet_violations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("host_id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=2048), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("waived", sa.Boolean(), nullable=False),
        sa.Column("waived_by", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["fleet_hosts.id"], name=op.f("fk_fleet_violations_host_id")
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fleet_violations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fleet_violations_host_id"), ["host_id"], unique=False)
        batch_op.create_index(
            "ix_fleet_violations_rule_severity", ["rule", "severity"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_fleet_violations_severity"), ["severity"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_fleet_violations_sha256"), ["sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fleet_violations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_violations_sha256"))
        batch_op.drop_index(batch_op.f("ix_fleet_violations_severity"))
        batch_op.drop_index("ix_fleet_violations_rule_severity")
        batch_op.drop_index(batch_op.f("ix_fleet_violations_host_id"))

    op.drop_table("fleet_violations")
    op.drop_table("fleet_violation_counts")
    with op.batch_alter_table("fleet_host_runtimes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_host_runtimes_vulnerable"))
        batch_op.drop_index(batch_op.f("ix_fleet_host_runtimes_host_id"))
        batch_op.drop_index(batch_op.f("ix_fleet_host_runtimes_exposed"))

    op.drop_table("fleet_host_runtimes")
    with op.batch_alter_table("fleet_host_packages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_host_packages_vulnerable"))
        batch_op.drop_index(batch_op.f("ix_fleet_host_packages_name"))
        batch_op.drop_index(batch_op.f("ix_fleet_host_packages_host_id"))

    op.drop_table("fleet_host_packages")
    op.drop_table("fleet_host_licenses")
    with op.batch_alter_table("fleet_host_artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_host_artifacts_sha256"))
        batch_op.drop_index(batch_op.f("ix_fleet_host_artifacts_license_id"))
        batch_op.drop_index(batch_op.f("ix_fleet_host_artifacts_host_id"))
        batch_op.drop_index(batch_op.f("ix_fleet_host_artifacts_format"))

    op.drop_table("fleet_host_artifacts")
    with op.batch_alter_table("fleet_applied_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_applied_reports_host_id"))

    op.drop_table("fleet_applied_reports")
    with op.batch_alter_table("fleet_hosts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_hosts_team_id"))
        batch_op.drop_index(batch_op.f("ix_fleet_hosts_last_seen"))
        batch_op.drop_index(batch_op.f("ix_fleet_hosts_hostname"))

    op.drop_table("fleet_hosts")
    with op.batch_alter_table("fleet_enroll_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_enroll_secrets_team_id"))

    op.drop_table("fleet_enroll_secrets")
    op.drop_table("fleet_teams")
    op.drop_table("fleet_policy_bundles")
    op.drop_table("fleet_events")
