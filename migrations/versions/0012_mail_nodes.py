"""Mail nodes: the machines `mailadmin node run` keeps current, and what each reported.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailadmin.models.base

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("address", sa.String(length=253), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", mailadmin.models.base.UTCDateTime(), nullable=True),
        sa.Column("applied_revision_id", sa.Integer(), nullable=True),
        sa.Column("applied_checksum", sa.String(length=64), nullable=True),
        sa.Column("applied_at", mailadmin.models.base.UTCDateTime(), nullable=True),
        sa.Column("applied_through", mailadmin.models.base.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("role IN ('mail')", name=op.f("ck_mail_nodes_role_known")),
        sa.ForeignKeyConstraint(["applied_revision_id"], ["config_revisions.id"],
                                name=op.f("fk_mail_nodes_applied_revision_id_config_revisions"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_nodes")),
        sa.UniqueConstraint("name", name=op.f("uq_mail_nodes_name")),
    )


def downgrade() -> None:
    op.drop_table("mail_nodes")
