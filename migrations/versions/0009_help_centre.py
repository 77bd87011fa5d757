"""Help centre: articles, votes and each backend's own full-text index over the articles.

The search index is the database's own: an FTS5 table on SQLite (kept in step by
`mailadmin.services.help`), a stored generated tsvector column (title, summary and tags
weighted above the body) with a GIN index on PostgreSQL, FULLTEXT indexes on MariaDB/MySQL. None of them can be described by the models, so autogenerate
skips every name starting with "help_search" (`mailadmin.help.search_index.include_name`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailadmin.models.base

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of mailadmin.help.search_index's statements at this revision.
PG_VECTOR = ("(setweight(to_tsvector('english'::regconfig, search_head), 'A') || "
             "setweight(to_tsvector('english'::regconfig, search_body), 'D'))")


def upgrade() -> None:
    op.create_table(
        "help_articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("tags", sa.String(length=500), nullable=False),
        sa.Column("related", sa.String(length=1000), nullable=False),
        sa.Column("families", sa.String(length=500), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("search_head", sa.Text(), nullable=False),
        sa.Column("search_body", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("locally_edited", sa.Boolean(), nullable=False),
        sa.Column("shipped_hash", sa.String(length=64), nullable=True),
        sa.Column("updated_at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.CheckConstraint("audience IN ('public', 'mailbox', 'customer', 'reseller')",
                           name=op.f("ck_help_articles_audience_known")),
        sa.CheckConstraint("origin IN ('shipped', 'local')",
                           name=op.f("ck_help_articles_origin_known")),
        sa.ForeignKeyConstraint(["owner_id"], ["panel_users.id"],
                                name=op.f("fk_help_articles_owner_id_panel_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_articles")),
        sa.UniqueConstraint("slug", name=op.f("uq_help_articles_slug")),
    )
    op.create_index(op.f("ix_help_articles_owner_id"), "help_articles", ["owner_id"])
    op.create_table(
        "help_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("voter", sa.String(length=80), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("at", mailadmin.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["help_articles.id"],
                                name=op.f("fk_help_votes_article_id_help_articles"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_votes")),
        sa.UniqueConstraint("article_id", "voter", name=op.f("uq_help_votes_article_id_voter")),
    )
    op.create_index(op.f("ix_help_votes_article_id"), "help_votes", ["article_id"])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        # rowid = help_articles.id; the service writes both in the same transaction.
        op.execute("CREATE VIRTUAL TABLE help_search USING fts5("
                   "head, body, tokenize = 'porter unicode61 remove_diacritics 2')")
    elif dialect == "postgresql":
        # Stored, so ranking reads the vector instead of parsing every matching body again.
        op.execute("ALTER TABLE help_articles ADD COLUMN help_search_vector tsvector "
                   f"GENERATED ALWAYS AS {PG_VECTOR} STORED")
        op.execute("CREATE INDEX help_search_vector_idx ON help_articles "
                   "USING gin (help_search_vector)")
    elif dialect in ("mysql", "mariadb"):
        op.execute("CREATE FULLTEXT INDEX help_search_head ON help_articles (search_head)")
        op.execute("CREATE FULLTEXT INDEX help_search_body ON help_articles (search_body)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS help_search")
    # Dropping a table drops its indexes (MariaDB refuses to drop an FK's index first).
    op.drop_table("help_votes")
    op.drop_table("help_articles")
