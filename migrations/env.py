"""Alembic environment: runs against a connection handed in by mailadmin, or the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from mailadmin.config import load_config
from mailadmin.db import make_engine
from mailadmin.help.search_index import include_name
from mailadmin.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER constraints; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Each backend's full-text index over the help articles is not a model (see 0009).
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or load_config()["DATABASE_URL"]
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("mailadmin migrations run online only: use `mailadmin db upgrade`.")
run_migrations_online()
