"""Names of each backend's full-text index over the help articles (built by migration 0009).

These objects cannot be described by SQLAlchemy models (an FTS5 virtual table and its shadow
tables, a generated tsvector column and its GIN index, FULLTEXT indexes), so Alembic's
autogenerate is told to leave them alone; the migration test compares everything else.
"""

from __future__ import annotations

import typing as t

#: Every table or index of the help search starts with this.
PREFIX = "help_search"
#: SQLite: the FTS5 table; its rowid is the article's id.
SQLITE_TABLE = "help_search"
#: PostgreSQL: a stored generated column holding this weighted document, GIN-indexed.
PG_COLUMN = "help_search_vector"
PG_VECTOR = ("(setweight(to_tsvector('english'::regconfig, search_head), 'A') || "
             "setweight(to_tsvector('english'::regconfig, search_body), 'D'))")


def include_name(name: str | None, type_: str, parent_names: t.Mapping[str, t.Any]) -> bool:
    """Alembic `include_name` hook: skip the search index objects (tables, indexes and the
    PostgreSQL column), keep everything else."""
    return not (type_ in ("table", "index", "column") and name is not None
                and name.startswith(PREFIX))
