"""Deliverability: DKIM keys per domain, the cached DNS health check, and the settings for
the server's public addresses, the DKIM key folder and the OpenDKIM milter port.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailadmin.models.base

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("selector", sa.String(length=63), nullable=False),
        sa.Column("algorithm", sa.String(length=8), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("created_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.Column("activated_at", mailadmin.models.base.UTCDateTime(), nullable=True),
        sa.Column("retire_at", mailadmin.models.base.UTCDateTime(), nullable=True),
        sa.CheckConstraint("algorithm IN ('rsa', 'ed25519')",
                           name=op.f("ck_dkim_keys_algorithm_known")),
        sa.CheckConstraint("state IN ('published', 'active', 'retiring')",
                           name=op.f("ck_dkim_keys_state_known")),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"],
                                name=op.f("fk_dkim_keys_domain_id_domains"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dkim_keys")),
        sa.UniqueConstraint("domain_id", "selector",
                            name=op.f("uq_dkim_keys_domain_id_selector")),
    )
    op.create_index(op.f("ix_dkim_keys_domain_id"), "dkim_keys", ["domain_id"])
    op.create_table(
        "dns_health_checks",
        sa.Column("domain_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("checked_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"],
                                name=op.f("fk_dns_health_checks_domain_id_domains"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("domain_id", name=op.f("pk_dns_health_checks")),
    )
    with op.batch_alter_table("server_settings") as batch:
        batch.add_column(sa.Column("mail_server_addresses", sa.String(length=1024),
                                   nullable=False, server_default=""))
        batch.add_column(sa.Column("dkim_key_dir", sa.String(length=1024), nullable=False,
                                   server_default="/etc/mailadmin/dkim"))
        batch.add_column(sa.Column("dkim_milter_port", sa.Integer(), nullable=False,
                                   server_default="8891"))


def downgrade() -> None:
    with op.batch_alter_table("server_settings") as batch:
        batch.drop_column("dkim_milter_port")
        batch.drop_column("dkim_key_dir")
        batch.drop_column("mail_server_addresses")
    op.drop_table("dns_health_checks")
    op.drop_index(op.f("ix_dkim_keys_domain_id"), table_name="dkim_keys")
    op.drop_table("dkim_keys")
