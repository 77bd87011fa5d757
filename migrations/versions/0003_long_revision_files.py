"""Config revision files as LONGTEXT on MariaDB/MySQL (TEXT holds only 64 KB there).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import LONGTEXT

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    if _is_mysql():
        op.alter_column("config_revisions", "files", type_=LONGTEXT(), existing_nullable=False)
        op.alter_column(
            "config_revisions", "validation_output", type_=LONGTEXT(), existing_nullable=True
        )


def downgrade() -> None:
    if _is_mysql():
        op.alter_column("config_revisions", "files", type_=sa.Text(), existing_nullable=False)
        op.alter_column(
            "config_revisions", "validation_output", type_=sa.Text(), existing_nullable=True
        )
