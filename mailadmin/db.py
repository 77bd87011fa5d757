"""Engines, sessions and the one-transaction-per-entry-point helper."""

from __future__ import annotations

import os
import typing as t
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from .services import changes


def _create_private_sqlite_file(url: str) -> None:
    """Create a new SQLite database file 0600 before SQLite does (it would use 0644 less the
    umask: every local user could read the password hashes). SQLite gives the `-wal` and
    `-shm` files the database file's mode, so they are 0600 too. An existing file is left as
    it is (SQL mode opens it to the mail servers on purpose, see `services.sql_access`)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists() or not path.parent.is_dir():
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken more
    finally:
        os.close(fd)


def make_engine(url: str, **kwargs: t.Any) -> Engine:
    """Create an engine with the settings each backend needs to behave like the others."""
    if url.startswith("sqlite"):
        _create_private_sqlite_file(url)
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
