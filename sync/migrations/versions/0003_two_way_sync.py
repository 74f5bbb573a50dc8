"""two-way sync: ledger, conflicts, profiles, order facts, audit, exports

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 15:05:23.972670
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sync.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=320), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sync.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_connection", ["connection_id", "id"], unique=False)

    op.create_table(
        "profiles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("crm_platform", sa.String(length=32), nullable=False),
        sa.Column("crm_account", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("crm_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sync.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sync.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
        sa.UniqueConstraint(
            "crm_platform",
            "crm_account",
            "email",
            name=op.f("uq_profiles_crm_platform_crm_account_email"),
        ),
    )
    op.create_table(
        "conflicts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("store_id", sa.String(length=320), nullable=False),
        sa.Column("crm_id", sa.String(length=64), nullable=True),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("store_value", sa.JSON(), nullable=True),
        sa.Column("store_at", sync.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("crm_value", sa.JSON(), nullable=True),
        sa.Column("crm_at", sync.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("winner", sa.String(length=8), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sync.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_conflicts_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflicts")),
    )
    with op.batch_alter_table("conflicts", schema=None) as batch_op:
        batch_op.create_index("ix_conflicts_connection", ["connection_id", "id"], unique=False)

    op.create_table(
        "field_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("store_id", sa.String(length=320), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("agreed", sa.JSON(), nullable=True),
        sa.Column("store_value", sa.JSON(), nullable=True),
        sa.Column("store_at", sync.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("crm_value", sa.JSON(), nullable=True),
        sa.Column("crm_at", sync.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("store_written", sa.JSON(), nullable=True),
        sa.Column("crm_written", sa.JSON(), nullable=True),
        sa.Column("written_at", sync.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("origin", sa.String(length=8), nullable=True),
        sa.Column("updated_at", sync.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_field_ledger_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_field_ledger")),
        sa.UniqueConstraint(
            "connection_id",
            "entity",
            "store_id",
            "field",
            name=op.f("uq_field_ledger_connection_id_entity_store_id_field"),
        ),
    )
    op.create_table(
        "order_facts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.String(length=320), nullable=False),
        sa.Column(
            "profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", sa.String(length=40), nullable=False),
        sa.Column("refunded", sa.String(length=40), nullable=False),
        sa.Column("placed_at", sync.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("counts", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sync.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_order_facts_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_order_facts_profile_id_profiles"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_facts")),
        sa.UniqueConstraint(
            "connection_id", "store_id", name=op.f("uq_order_facts_connection_id_store_id")
        ),
    )
    with op.batch_alter_table("order_facts", schema=None) as batch_op:
        batch_op.create_index("ix_order_facts_profile", ["profile_id"], unique=False)

    op.create_table(
        "privacy_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=320), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("created_at", sync.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_privacy_exports_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_exports")),
        sa.UniqueConstraint(
            "connection_id", "request_id", name=op.f("uq_privacy_exports_connection_id_request_id")
        ),
    )
    op.create_table(
        "profile_members",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.String(length=320), nullable=False),
        sa.Column("merged_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sync.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_profile_members_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_profile_members_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_members")),
        sa.UniqueConstraint(
            "connection_id", "store_id", name=op.f("uq_profile_members_connection_id_store_id")
        ),
    )
    with op.batch_alter_table("profile_members", schema=None) as batch_op:
        batch_op.create_index("ix_profile_members_profile", ["profile_id"], unique=False)

    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("change_source", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("change_source")

    with op.batch_alter_table("profile_members", schema=None) as batch_op:
        batch_op.drop_index("ix_profile_members_profile")

    op.drop_table("profile_members")
    op.drop_table("privacy_exports")
    with op.batch_alter_table("order_facts", schema=None) as batch_op:
        batch_op.drop_index("ix_order_facts_profile")

    op.drop_table("order_facts")
    op.drop_table("field_ledger")
    with op.batch_alter_table("conflicts", schema=None) as batch_op:
        batch_op.drop_index("ix_conflicts_connection")

    op.drop_table("conflicts")
    op.drop_table("profiles")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_connection")

    op.drop_table("audit_log")
