# ruff: noqa: S608  - view SQL built from constants only
"""App passwords: per-device mailbox passwords limited to some protocols, and "app passwords
only" per mailbox.

Two views for SQL mode, beside 0004's (with 0006's rule that pending domains are left out):

- ``mailsrv_app_passwords``: one row per app password with its slot and, per protocol, whether
  it may log in (the app password's own switch *and* the mailbox's);
- ``mailsrv_app_passwords_only``: the mailboxes whose main password is refused by the mail
  servers.

Adding the column re-creates ``mailboxes`` on SQLite (batch mode), so every view over it is
dropped first and re-created afterwards, as in 0006. The mail servers' database user (from
`mailadmin sql-access grant`) is given the same read access to the re-created and the new
views, so SQL mode keeps working across the upgrade without a new grant.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

import mailadmin.models.base

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copy of mailadmin.models.APP_PASSWORD_SLOTS at this revision.
SLOTS = 8

APP_VIEWS = {
    "mailsrv_app_passwords": """
SELECT m.local_part AS local_part,
       d.name AS domain,
       a.slot AS slot,
       a.password_hash AS password,
       CASE WHEN a.imap AND m.imap THEN 1 ELSE 0 END AS imap_ok,
       CASE WHEN a.pop3 AND m.pop3 THEN 1 ELSE 0 END AS pop3_ok,
       CASE WHEN a.smtp AND m.smtp THEN 1 ELSE 0 END AS smtp_ok
FROM app_passwords a
JOIN mailboxes m ON m.id = a.mailbox_id
JOIN domains d ON d.id = m.domain_id AND NOT d.pending""",
    "mailsrv_app_passwords_only": """
SELECT m.local_part AS local_part, d.name AS domain
FROM mailboxes m
JOIN domains d ON d.id = m.domain_id AND NOT d.pending
WHERE m.app_passwords_only""",
}


def _migration(filename: str, name: str) -> ModuleType:
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _drop(names: Sequence[str]) -> None:
    bind = op.get_bind()
    for name in names:
        bind.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")


def _create(sql: dict[str, str], names: Sequence[str]) -> None:
    bind = op.get_bind()
    for name in reversed(names):  # dependencies first
        bind.exec_driver_sql(f"CREATE VIEW {name} AS {sql[name]}")


def _mail_server_users(dialect: str) -> list[str]:
    """Who may read ``mailsrv_users`` (the user `mailadmin sql-access grant` made), quoted for
    a GRANT; PostgreSQL forgets the grants of a dropped view, and the new views need them."""
    bind = op.get_bind()
    if dialect == "postgresql":
        rows = bind.exec_driver_sql(
            "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
            "WHERE table_name = 'mailsrv_users' AND privilege_type = 'SELECT' "
            "AND grantee <> current_user")
        return [f'"{name}"' for (name,) in rows]
    if dialect in ("mysql", "mariadb"):
        rows = bind.exec_driver_sql(
            "SELECT DISTINCT grantee FROM information_schema.table_privileges "
            "WHERE table_schema = DATABASE() AND table_name = 'mailsrv_users' "
            "AND privilege_type = 'SELECT'")
        return [str(name) for (name,) in rows]
    return []


def _grant(users: Sequence[str], views: Sequence[str]) -> None:
    bind = op.get_bind()
    for user in users:
        for view in views:
            bind.exec_driver_sql(f"GRANT SELECT ON {view} TO {user}")


def upgrade() -> None:
    views_0004 = _migration("0004_mail_views.py", "mailadmin_migration_0004")
    views_0006 = _migration("0006_domain_verification.py", "mailadmin_migration_0006")
    dialect = op.get_bind().dialect.name
    readers = _mail_server_users(dialect)
    _drop(views_0004.VIEWS)
    with op.batch_alter_table("mailboxes") as batch:
        batch.add_column(sa.Column("app_passwords_only", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        "app_passwords",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("imap", sa.Boolean(), nullable=False),
        sa.Column("pop3", sa.Boolean(), nullable=False),
        sa.Column("smtp", sa.Boolean(), nullable=False),
        sa.Column("created_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.CheckConstraint(f"slot >= 1 AND slot <= {SLOTS}",
                           name=op.f("ck_app_passwords_slot_in_range")),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailboxes.id"],
                                name=op.f("fk_app_passwords_mailbox_id_mailboxes"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_passwords")),
        sa.UniqueConstraint("mailbox_id", "label",
                            name=op.f("uq_app_passwords_mailbox_id_label")),
        sa.UniqueConstraint("mailbox_id", "slot", name=op.f("uq_app_passwords_mailbox_id_slot")),
    )
    _create(views_0006.verified_view_sql(dialect), views_0004.VIEWS)
    _create(APP_VIEWS, list(APP_VIEWS))
    _grant(readers, [*views_0004.VIEWS, *APP_VIEWS])


def downgrade() -> None:
    views_0004 = _migration("0004_mail_views.py", "mailadmin_migration_0004")
    views_0006 = _migration("0006_domain_verification.py", "mailadmin_migration_0006")
    dialect = op.get_bind().dialect.name
    readers = _mail_server_users(dialect)
    _drop(list(APP_VIEWS))
    _drop(views_0004.VIEWS)
    op.drop_table("app_passwords")
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("app_passwords_only")
    _create(views_0006.verified_view_sql(dialect), views_0004.VIEWS)
    _grant(readers, views_0004.VIEWS)
