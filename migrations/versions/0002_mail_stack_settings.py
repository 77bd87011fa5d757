"""Mail stack settings (paths, listen ports, TLS, webmail) and per-domain self-service switches.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailadmin.models.base

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Server defaults fill the existing rows; the application supplies values for new ones.
def _domain_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("allow_self_forwarding", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column(
            "allow_self_autoresponder", sa.Boolean(), nullable=False, server_default=sa.true()
        ),
    ]


def _settings_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    def text(name: str, length: int, default: str | None) -> sa.Column:  # type: ignore[type-arg]
        return sa.Column(
            name, sa.String(length=length), nullable=default is None, server_default=default
        )

    def number(name: str, default: int, kind: type = sa.Integer) -> sa.Column:  # type: ignore[type-arg]
        return sa.Column(name, kind(), nullable=False, server_default=str(default))

    return [
        text("mail_hostname", 253, "mail.example.net"),
        text("postmaster_address", 320, "postmaster@example.net"),
        text("run_dir", 1024, "/run/mailadmin"),
        text("state_dir", 1024, "/var/lib/mailadmin"),
        text("queue_dir", 1024, "/var/spool/mailadmin-postfix"),
        text("log_dir", 1024, None),
        text("listen_address", 45, "0.0.0.0"),
        number("imap_listen_port", 143),
        number("pop3_listen_port", 110),
        number("submission_listen_port", 587),
        number("smtp_listen_port", 25),
        number("lmtp_listen_port", 24),
        number("reinject_listen_port", 10026),
        number("message_size_limit", 50 * 1024 * 1024, sa.BigInteger),
        text("tls_cert_file", 1024, None),
        text("tls_key_file", 1024, None),
        number("imap_starttls_port", 143),
        number("pop3_starttls_port", 110),
        number("smtps_port", 465),
        text("webmail_url", 1024, None),
        sa.Column("config_changed_at", mailadmin.models.base.UTCDateTime(), nullable=True),
        sa.Column("config_applied_at", mailadmin.models.base.UTCDateTime(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("domains") as batch:
        for column in _domain_columns():
            batch.add_column(column)
    with op.batch_alter_table("server_settings") as batch:
        for column in _settings_columns():
            batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("server_settings") as batch:
        for column in reversed(_settings_columns()):
            batch.drop_column(column.name)
    with op.batch_alter_table("domains") as batch:
        for column in reversed(_domain_columns()):
            batch.drop_column(column.name)
