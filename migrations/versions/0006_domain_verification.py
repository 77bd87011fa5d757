"""Domain verification: pending domains, the challenge token, the deny list, DNS resolvers.

Every domain hosted before this revision was accepted without proof, so it counts as
verified from its creation; the mode starts as "none", which keeps behaviour unchanged.

The SQL-mode views are re-created so that the mail servers skip pending domains exactly as
the files mode does (`mailadmin.mailstack.snapshot.build_snapshot`): the view SQL of 0004 with
every join on ``domains d`` restricted to domains that are not pending.

Revision ID: 0006
Revises: 0005 (0004 while 0005 is not there yet)
Create Date: 2026-12-05
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

import mailadmin.models.base

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _views_0004() -> ModuleType:
    """Revision 0004's module (its view SQL never changes, so this copy is frozen too)."""
    path = Path(__file__).with_name("0004_mail_views.py")
    spec = importlib.util.spec_from_file_location("mailadmin_migration_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def verified_view_sql(dialect: str) -> dict[str, str]:
    views = _views_0004().view_sql(dialect)
    out = {}
    for name, sql in views.items():
        sql = re.sub(r"JOIN domains d ON d\.id = (\w)\.domain_id",
                     r"JOIN domains d ON d.id = \1.domain_id AND NOT d.pending", sql)
        sql = re.sub(r"FROM domains d$", "FROM domains d WHERE NOT d.pending", sql)
        out[name] = sql
    # every view reads domains through one of the patterns above
    assert all("d.pending" in sql for sql in out.values()), "0004's view SQL changed"
    return out


def _recreate_views(sql: dict[str, str], names: Sequence[str]) -> None:
    bind = op.get_bind()
    for name in names:
        bind.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
    for name in reversed(names):  # dependencies first
        bind.exec_driver_sql(f"CREATE VIEW {name} AS {sql[name]}")


def upgrade() -> None:
    views = _views_0004()
    # views over the tables must go before batch mode re-creates the tables on SQLite
    bind = op.get_bind()
    for name in views.VIEWS:
        bind.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("domains") as batch:
        batch.add_column(sa.Column("pending", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("verified_at", mailadmin.models.base.UTCDateTime(),
                                   nullable=True))
        batch.add_column(sa.Column("verification_token", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("verification_checked_at",
                                   mailadmin.models.base.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("verification_note", sa.String(length=300), nullable=True))
    op.execute("UPDATE domains SET verified_at = created_at")
    with op.batch_alter_table("server_settings") as batch:
        batch.add_column(sa.Column("domain_verification", sa.String(length=8), nullable=False,
                                   server_default="none"))
        batch.add_column(sa.Column("dns_resolvers", sa.String(length=1024), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("domain_deny_list", sa.Text(), nullable=True))
        batch.create_check_constraint("domain_verification_known",
                                      "domain_verification IN ('none', 'dns', 'admin')")
    _recreate_views(verified_view_sql(bind.dialect.name), views.VIEWS)


def downgrade() -> None:
    views = _views_0004()
    bind = op.get_bind()
    for name in views.VIEWS:
        bind.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("server_settings") as batch:
        batch.drop_constraint("domain_verification_known", type_="check")
        batch.drop_column("domain_deny_list")
        batch.drop_column("dns_resolvers")
        batch.drop_column("domain_verification")
    with op.batch_alter_table("domains") as batch:
        batch.drop_column("verification_note")
        batch.drop_column("verification_checked_at")
        batch.drop_column("verification_token")
        batch.drop_column("verified_at")
        batch.drop_column("pending")
    _recreate_views(views.view_sql(bind.dialect.name), views.VIEWS)
