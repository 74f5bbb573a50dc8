"""CRM access tokens shared by workers; daily quotas on rate buckets

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sync.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_tokens",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("instance_url", sa.String(length=500), nullable=True),
        sa.Column("refresh_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=False),
        sa.Column("minted", sa.Integer(), nullable=False),
        sa.Column("updated_at", sync.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_access_tokens")),
    )
    with op.batch_alter_table("rate_buckets") as batch:
        batch.add_column(sa.Column("daily_remaining", sa.Double(), nullable=True))
        batch.add_column(sa.Column("daily_limit", sa.Double(), nullable=True))
        batch.add_column(sa.Column("daily_as_of", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rate_buckets") as batch:
        batch.drop_column("daily_as_of")
        batch.drop_column("daily_limit")
        batch.drop_column("daily_remaining")
    op.drop_table("access_tokens")
