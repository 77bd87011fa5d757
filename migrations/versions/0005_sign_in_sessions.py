"""Sign-in hardening: server-side sessions, known sign-in places, per (account, address) counts.

- `login_sessions`: one row per signed-in browser; signing out deletes it, so the cookie is
  worthless afterwards.
- `known_sign_ins`: addresses and "known device" tokens an account signed in from before; they
  may still sign in with the right password while the account is locked for everyone else.
- `login_throttles`: a third scope "pair" (account and client address together), and the count
  of failures the owner has not been told about yet.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailadmin.models.base

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPE_CHECK = "ck_login_throttles_scope_known"


def upgrade() -> None:
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("panel_user_id", sa.Integer(), nullable=True),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column("created_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "(panel_user_id IS NULL) <> (mailbox_id IS NULL)",
            name=op.f("ck_login_sessions_one_principal"),
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"],
            name=op.f("fk_login_sessions_mailbox_id_mailboxes"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["panel_user_id"], ["panel_users.id"],
            name=op.f("fk_login_sessions_panel_user_id_panel_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_login_sessions_token_hash")),
    )
    op.create_index(
        op.f("ix_login_sessions_panel_user_id"), "login_sessions", ["panel_user_id"], unique=False
    )
    op.create_index(
        op.f("ix_login_sessions_mailbox_id"), "login_sessions", ["mailbox_id"], unique=False
    )
    op.create_index(
        op.f("ix_login_sessions_last_seen_at"), "login_sessions", ["last_seen_at"], unique=False
    )
    op.create_table(
        "known_sign_ins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_key", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("last_seen_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('address', 'device')", name=op.f("ck_known_sign_ins_kind_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_sign_ins")),
        sa.UniqueConstraint(
            "account_key", "kind", "value", name=op.f("uq_known_sign_ins_account_key_kind_value")
        ),
    )
    with op.batch_alter_table("login_throttles") as batch:
        batch.add_column(
            sa.Column("unseen_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("last_failure_at", mailadmin.models.base.UTCDateTime(), nullable=True)
        )
        batch.add_column(sa.Column("last_failure_from", sa.String(length=64), nullable=True))
        batch.drop_constraint(op.f(SCOPE_CHECK), type_="check")
        batch.create_check_constraint("scope_known", "scope IN ('account', 'address', 'pair')")


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM login_throttles WHERE scope = 'pair'"))
    with op.batch_alter_table("login_throttles") as batch:
        batch.drop_constraint(op.f(SCOPE_CHECK), type_="check")
        batch.create_check_constraint("scope_known", "scope IN ('account', 'address')")
        batch.drop_column("last_failure_from")
        batch.drop_column("last_failure_at")
        batch.drop_column("unseen_failures")
    op.drop_table("known_sign_ins")
    # Its indexes go with it (MariaDB refuses to drop an index a foreign key uses).
    op.drop_table("login_sessions")
