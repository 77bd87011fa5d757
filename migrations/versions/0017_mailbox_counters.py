"""Counters per domain over its mailboxes, and indexes for lists of a million mailboxes (issue 19).

``domains`` gains the mailbox count, quota total, unlimited mailboxes, usage readings and
their sums and the oldest reading; the services keep them in the same transaction as the
mailbox rows (``mailadmin.services.counters``), and this migration fills them from the rows
already there. ``mailboxes`` gains indexes for sorting every mailbox in sight by quota or
usage, for the oldest reading of a domain, and for "search anywhere": on PostgreSQL a GIN
trigram index (``pg_trgm``), created if the extension can be created; where it cannot (a
database user without the right), a plain ``text_pattern_ops`` index under the same name
serves prefix searches and the migration says so in the log. The extension is left in place
by the downgrade (something else may use it).

Revision ID: 0017
Revises: 0015 (0014 on its branch; 0019, 0016 and 0015 landed first)
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

COUNTERS: list[tuple[str, type[sa.types.TypeEngine[int]]]] = [
    ("mailbox_count", sa.Integer),
    ("quota_total", sa.BigInteger),
    ("unlimited_count", sa.Integer),
    ("usage_read_count", sa.Integer),
    ("usage_bytes_total", sa.BigInteger),
    ("usage_messages_total", sa.BigInteger),
]

#: The same sums as `mailadmin.services.counters.recount`, as correlated subqueries (one
#: statement every backend runs the same way).
FILL = """
UPDATE domains SET
  mailbox_count = (SELECT count(*) FROM mailboxes m WHERE m.domain_id = domains.id),
  quota_total = (SELECT coalesce(sum(m.quota), 0) FROM mailboxes m
                 WHERE m.domain_id = domains.id),
  unlimited_count = (SELECT count(*) FROM mailboxes m
                     WHERE m.domain_id = domains.id AND m.quota = 0),
  usage_read_count = (SELECT count(m.usage_read_at) FROM mailboxes m
                      WHERE m.domain_id = domains.id),
  usage_bytes_total = (SELECT coalesce(sum(m.usage_bytes), 0) FROM mailboxes m
                       WHERE m.domain_id = domains.id),
  usage_messages_total = (SELECT coalesce(sum(m.usage_messages), 0) FROM mailboxes m
                          WHERE m.domain_id = domains.id),
  usage_oldest_read_at = (SELECT min(m.usage_read_at) FROM mailboxes m
                          WHERE m.domain_id = domains.id)
"""


def upgrade() -> None:
    for name, type_ in COUNTERS:
        op.add_column("domains", sa.Column(name, type_(), nullable=False,
                                           server_default=sa.text("0")))
    op.add_column("domains", sa.Column("usage_oldest_read_at", sa.DateTime(), nullable=True))
    op.create_index("ix_mailboxes_domain_read_at", "mailboxes", ["domain_id", "usage_read_at"])
    op.create_index("ix_mailboxes_quota", "mailboxes",
                    ["quota", "local_part", "domain_id", "id"])
    op.create_index("ix_mailboxes_usage", "mailboxes",
                    ["usage_bytes", "local_part", "domain_id", "id"])
    op.create_index("ix_mailboxes_status", "mailboxes",
                    ["suspend_login", "suspend_incoming", "suspend_outgoing", "local_part",
                     "domain_id", "id"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        try:
            with bind.begin_nested():
                bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            trigrams = True
        except sa.exc.DBAPIError as exc:
            log.warning("pg_trgm cannot be created here (%s); mailbox search gets a prefix "
                        "index instead of a trigram index", str(exc.orig).strip())
            trigrams = False
        if trigrams:
            op.create_index("ix_mailboxes_local_part_search", "mailboxes", ["local_part"],
                            postgresql_using="gin", postgresql_ops={"local_part": "gin_trgm_ops"})
        else:
            op.create_index("ix_mailboxes_local_part_search", "mailboxes", ["local_part"],
                            postgresql_ops={"local_part": "text_pattern_ops"})
    else:
        op.create_index("ix_mailboxes_local_part_search", "mailboxes", ["local_part"])
    bind.execute(sa.text(FILL))


def _load(filename: str, name: str) -> ModuleType:
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _views() -> object:
    """0014's helper that drops and re-creates the SQL-mode views around an alter of
    ``domains`` (SQLite checks every view over the table when a column is dropped)."""
    return _load("0014_domain_node.py", "mailadmin_migration_0014")._Views()


def downgrade() -> None:
    for index in ("ix_mailboxes_local_part_search", "ix_mailboxes_status", "ix_mailboxes_usage",
                  "ix_mailboxes_quota",
                  "ix_mailboxes_domain_read_at"):
        op.drop_index(index, table_name="mailboxes")
    names = ["usage_oldest_read_at", *reversed([n for n, _ in COUNTERS])]
    if op.get_bind().dialect.name != "sqlite":
        for name in names:
            op.drop_column("domains", name)
        return
    # SQLite: its own DROP COLUMN (3.35+), not a batch rebuild, which would drop a table the
    # mailboxes' foreign keys point at (refused while they hold rows). The SQL-mode views
    # over domains are made again around it.
    # (0015's node view stands on mailsrv_domains, so it goes first and comes back last)
    node_view = _load("0015_domain_nodes_view.py", "mailadmin_migration_0015")
    op.execute(f"DROP VIEW IF EXISTS {node_view.VIEW}")
    views = _views()
    views.drop()  # type: ignore[attr-defined]
    for name in names:
        op.execute(f"ALTER TABLE domains DROP COLUMN {name}")
    views.create()  # type: ignore[attr-defined]
    op.execute(f"CREATE VIEW {node_view.VIEW} AS {node_view.SQL}")
