"""The doveadm server port between mail nodes (issue 19: moving domains between nodes).

In a multi-node install each node's Dovecot runs the doveadm server on its node address at
this port; the other nodes reach it for ``doveadm sync`` (domain moves) and usage read-back.

Revision ID: 0016
Revises: 0019 (0014 on its branch; 0019 landed first)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("server_settings") as batch:
        batch.add_column(sa.Column("doveadm_port", sa.Integer(), nullable=False,
                                   server_default="12345"))


def downgrade() -> None:
    with op.batch_alter_table("server_settings") as batch:
        batch.drop_column("doveadm_port")
