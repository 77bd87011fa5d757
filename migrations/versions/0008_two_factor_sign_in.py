"""Two-factor sign-in: TOTP secrets, recovery codes, remembered browsers, the required roles.

- `two_factor_secrets`: one per panel user or mailbox, the TOTP secret encrypted with the
  instance secret key; unconfirmed while the enrolment waits for its first code.
- `two_factor_recovery_codes`: SHA-256 of single-use recovery codes.
- `two_factor_browsers`: "remember this browser" tokens (SHA-256), revocable.
- `login_sessions.second_factor_at`: when a session last proved its second factor.
- `server_settings.two_factor_required_roles`: roles that must use a second factor.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailadmin.models.base

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_OWNER = "(panel_user_id IS NULL) <> (mailbox_id IS NULL)"


def upgrade() -> None:
    op.create_table(
        "two_factor_secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("panel_user_id", sa.Integer(), nullable=True),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column("secret_encrypted", sa.String(length=255), nullable=False),
        sa.Column("created_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", mailadmin.models.base.UTCDateTime(), nullable=True),
        sa.Column("last_used_step", sa.Integer(), nullable=True),
        sa.CheckConstraint(ONE_OWNER, name=op.f("ck_two_factor_secrets_one_owner")),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"],
            name=op.f("fk_two_factor_secrets_mailbox_id_mailboxes"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["panel_user_id"], ["panel_users.id"],
            name=op.f("fk_two_factor_secrets_panel_user_id_panel_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_two_factor_secrets")),
        sa.UniqueConstraint("mailbox_id", name=op.f("uq_two_factor_secrets_mailbox_id")),
        sa.UniqueConstraint("panel_user_id", name=op.f("uq_two_factor_secrets_panel_user_id")),
    )
    op.create_table(
        "two_factor_recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", mailadmin.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["two_factor_secrets.id"],
            name=op.f("fk_two_factor_recovery_codes_secret_id_two_factor_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_two_factor_recovery_codes")),
    )
    op.create_index(
        op.f("ix_two_factor_recovery_codes_secret_id"), "two_factor_recovery_codes",
        ["secret_id"], unique=False,
    )
    op.create_table(
        "two_factor_browsers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("panel_user_id", sa.Integer(), nullable=True),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column("created_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.CheckConstraint(ONE_OWNER, name=op.f("ck_two_factor_browsers_one_owner")),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"],
            name=op.f("fk_two_factor_browsers_mailbox_id_mailboxes"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["panel_user_id"], ["panel_users.id"],
            name=op.f("fk_two_factor_browsers_panel_user_id_panel_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_two_factor_browsers")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_two_factor_browsers_token_hash")),
    )
    op.create_index(
        op.f("ix_two_factor_browsers_panel_user_id"), "two_factor_browsers", ["panel_user_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_two_factor_browsers_mailbox_id"), "two_factor_browsers", ["mailbox_id"],
        unique=False,
    )
    with op.batch_alter_table("login_sessions") as batch:
        batch.add_column(
            sa.Column("second_factor_at", mailadmin.models.base.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("server_settings") as batch:
        batch.add_column(sa.Column("two_factor_required_roles", sa.String(length=64),
                                   nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("server_settings") as batch:
        batch.drop_column("two_factor_required_roles")
    with op.batch_alter_table("login_sessions") as batch:
        batch.drop_column("second_factor_at")
    # Their indexes go with them (MariaDB refuses to drop an index a foreign key uses).
    op.drop_table("two_factor_browsers")
    op.drop_table("two_factor_recovery_codes")
    op.drop_table("two_factor_secrets")
