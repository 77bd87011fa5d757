"""Time zones of panel users and mailbox users; the mailbox list's usage index.

Each person may choose the zone the panel shows times in (NULL: not chosen yet, the panel
shows UTC until the browser's zone is saved). The indexes let the mailbox list sort one
domain's mailboxes by usage or status without sorting them all, and sum usage per domain from
the index alone.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch re-creation): SQLite supports it, and the SQL-mode views over
    # these tables stay as they are.
    op.add_column("panel_users", sa.Column("time_zone", sa.String(length=64), nullable=True))
    op.add_column("mailboxes", sa.Column("time_zone", sa.String(length=64), nullable=True))
    op.create_index("ix_mailboxes_domain_usage", "mailboxes",
                    ["domain_id", "usage_bytes", "local_part", "quota", "usage_read_at",
                     "usage_messages"])
    op.create_index("ix_mailboxes_domain_status", "mailboxes",
                    ["domain_id", "suspend_login", "suspend_incoming", "suspend_outgoing",
                     "local_part"])


def downgrade() -> None:
    op.drop_index("ix_mailboxes_domain_status", table_name="mailboxes")
    op.drop_index("ix_mailboxes_domain_usage", table_name="mailboxes")
    op.drop_column("mailboxes", "time_zone")
    op.drop_column("panel_users", "time_zone")
