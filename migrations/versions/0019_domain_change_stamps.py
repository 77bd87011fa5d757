"""Per-domain change stamps, for the incremental render (issue 19, one change live in < 1 s).

``domains.config_changed_at`` is the ``server_settings.config_changed_at`` of the last commit
that changed what the mail servers hold for the domain. An apply redoes only the domains
stamped after the watermark of the release in force; NULL (every existing domain) means "not
changed since": the first apply after the upgrade is a full render anyway (the release in
force names other settings, `render.renderer.settings_digest`).

A plain nullable column: SQLite adds it in place (no table rebuild), so the SQL-mode views
over ``domains`` stay as they are.

Revision ID: 0019
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    kind = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    op.add_column("domains", sa.Column("config_changed_at", kind, nullable=True))
    op.create_index(op.f("ix_domains_config_changed_at"), "domains", ["config_changed_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_domains_config_changed_at"), table_name="domains")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's own DROP COLUMN (a batch rebuild would drop a table the mailboxes' foreign
        # keys point at: refused while they hold rows); it checks every view over the table,
        # so they are dropped and re-created as 0014 does
        views = _views()
        views.drop()
        op.execute("ALTER TABLE domains DROP COLUMN config_changed_at")
        views.create()
    else:
        op.drop_column("domains", "config_changed_at")


def _views() -> Any:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("0014_domain_node.py")
    spec = importlib.util.spec_from_file_location("mailadmin_migration_0014", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._Views()
