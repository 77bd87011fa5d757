"""Engines, sessions and the one-transaction-per-entry-point helper."""

from __future__ import annotations

import typing as t
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from .services import changes


def make_engine(url: str, **kwargs: t.Any) -> Engine:
    """Create an engine with the settings each backend needs to behave like the others."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: t.Any, _record: t.Any) -> None:
            cursor = dbapi_connection.cursor()
            # SQLite ignores foreign keys unless asked; WAL lets readers work during a write.
            cursor.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url and url != "sqlite://":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if url.startswith(("mysql", "mariadb")):
        kwargs.setdefault("pool_recycle", 3600)
    return create_engine(url, **kwargs)


def make_session_factory(bind: Engine | Connection, **options: t.Any) -> sessionmaker[Session]:
    """Sessions on `bind`; tests bind one connection and pass `join_transaction_mode`."""
    # expire_on_commit=False: views render objects after the request's commit.
    factory = sessionmaker(bind=bind, expire_on_commit=False, autoflush=True, **options)
    # every change to mail data marks ServerSettings.config_changed_at (coalesced applies)
    return changes.install(factory)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commits when the block ends, rolls back on any exception."""
    with factory() as session, session.begin():
        yield session
