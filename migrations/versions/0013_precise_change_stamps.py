"""Change stamps with microseconds on MariaDB (issue 15, "is it live?").

``server_settings.config_changed_at`` and ``config_applied_at`` are compared to tell whether
the mail servers have a change; MariaDB's DATETIME kept whole seconds, so a change in the same
second as an apply's watermark looked applied. PostgreSQL and SQLite keep microseconds
already; nothing changes there.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("config_changed_at", "config_applied_at")


def _mariadb() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    if not _mariadb():
        return
    for name in COLUMNS:
        op.alter_column("server_settings", name, type_=mysql.DATETIME(fsp=6),
                        existing_type=mysql.DATETIME(), existing_nullable=True)


def downgrade() -> None:
    if not _mariadb():
        return
    for name in COLUMNS:
        op.alter_column("server_settings", name, type_=mysql.DATETIME(),
                        existing_type=mysql.DATETIME(fsp=6), existing_nullable=True)
