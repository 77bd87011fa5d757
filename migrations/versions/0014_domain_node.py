"""Each domain lives on one mail node (issue 19, several mail servers).

``domains.node_id`` names the node that stores the domain's mail; the other nodes proxy its
logins and hand its incoming mail to that node. NULL means the single-server default: the one
node holds every domain, so an existing install changes nothing.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _migration(filename: str, name: str) -> ModuleType:
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Views:
    """The SQL-mode views as 0007 left them: SQLite rebuilds ``domains`` to add a foreign
    key, which a view over it does not survive, so they are dropped and made again (with the
    mail servers' grants, which PostgreSQL forgets with a dropped view)."""

    def __init__(self) -> None:
        self.m0004 = _migration("0004_mail_views.py", "mailadmin_migration_0004")
        self.m0006 = _migration("0006_domain_verification.py", "mailadmin_migration_0006")
        self.m0007 = _migration("0007_app_passwords.py", "mailadmin_migration_0007")
        self.dialect = op.get_bind().dialect.name
        self.readers = self.m0007._mail_server_users(self.dialect)
        self.names = [*self.m0004.VIEWS, *self.m0007.APP_VIEWS]

    def drop(self) -> None:
        self.m0007._drop(list(self.m0007.APP_VIEWS))
        self.m0007._drop(self.m0004.VIEWS)

    def create(self) -> None:
        self.m0007._create(self.m0006.verified_view_sql(self.dialect), self.m0004.VIEWS)
        self.m0007._create(self.m0007.APP_VIEWS, list(self.m0007.APP_VIEWS))
        self.m0007._grant(self.readers, self.names)


def upgrade() -> None:
    views = _Views()
    views.drop()
    with op.batch_alter_table("domains") as batch:
        batch.add_column(sa.Column("node_id", sa.Integer(), nullable=True))
        batch.create_index(batch.f("ix_domains_node_id"), ["node_id"], unique=False)
        batch.create_foreign_key(batch.f("fk_domains_node_id_mail_nodes"), "mail_nodes",
                                 ["node_id"], ["id"], ondelete="RESTRICT")
    views.create()


def downgrade() -> None:
    views = _Views()
    views.drop()
    with op.batch_alter_table("domains") as batch:
        batch.drop_constraint(batch.f("fk_domains_node_id_mail_nodes"), type_="foreignkey")
        batch.drop_index(batch.f("ix_domains_node_id"))
        batch.drop_column("node_id")
    views.create()
