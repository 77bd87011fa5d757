# ruff: noqa: S608  - view SQL built from constants only
"""SQL mode on several mail nodes (issue 19): which node holds each domain, for the servers.

``mailsrv_domain_nodes`` (domain, node, address): one row per verified domain that lives on a
mail node. Each node's Dovecot queries join it to proxy the logins of the mailboxes another
node holds, and its Postfix asks it where to hand a domain's mail (render/sql.py). The mail
servers' database user (from `mailadmin sql-access grant`) may read it like the other views.

Revision ID: 0015
Revises: 0016 (0014 on its branch; 0019 and 0016 landed first)
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEW = "mailsrv_domain_nodes"
#: over mailsrv_domains, so it keeps that view's rule (verified domains only)
SQL = ("SELECT md.domain AS domain, n.name AS node, n.address AS address "
       "FROM mailsrv_domains md JOIN domains d ON d.name = md.domain "
       "JOIN mail_nodes n ON n.id = d.node_id")


def _migration(filename: str, name: str) -> ModuleType:
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    m0007 = _migration("0007_app_passwords.py", "mailadmin_migration_0007")
    readers = m0007._mail_server_users(op.get_bind().dialect.name)
    op.get_bind().exec_driver_sql(f"CREATE VIEW {VIEW} AS {SQL}")
    m0007._grant(readers, [VIEW])


def downgrade() -> None:
    op.get_bind().exec_driver_sql(f"DROP VIEW IF EXISTS {VIEW}")
