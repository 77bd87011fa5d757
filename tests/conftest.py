from __future__ import annotations

import shutil
import sqlite3
import typing as t
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, sessionmaker

from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.models import PanelUser, Role
from mailadmin.services import accounts
from mailadmin.services.context import Actor

from .databases import BACKENDS, throwaway_database


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend in turn (for the migration tests themselves)."""
    with throwaway_database(request.param, tmp_path) as url:
        yield url


def _savepoints_work(engine: Engine) -> Engine:
    """pysqlite opens transactions lazily and breaks SAVEPOINT; let SQLAlchemy emit BEGIN."""
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_implicit_begin(dbapi_connection: t.Any, _record: t.Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _explicit_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def rolled_back(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions inside one connection-level transaction that is rolled back at the end.

    Each session's own transaction becomes a SAVEPOINT, so the services' commits (through
    `transaction()`) are visible to the test's later sessions but never outlive the test.
    """
    with engine.connect() as connection:
        outer = connection.begin()
        try:
            yield make_session_factory(connection, join_transaction_mode="create_savepoint")
        finally:
            outer.rollback()


@pytest.fixture(scope="session", params=BACKENDS)
def backend_engine(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One migrated database per backend for the whole run."""
    with throwaway_database(request.param, tmp_path_factory.mktemp(request.param)) as url:
        engine = _savepoints_work(make_engine(url))
        migrate.upgrade(engine)
        yield engine
        engine.dispose()


@pytest.fixture
def backend_session_factory(backend_engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions on each backend's migrated database; nothing they commit outlives the test."""
    with rolled_back(backend_engine) as factory:
        yield factory


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; tests that need a database of their own get a copy."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    # Fold the write-ahead log into the file so that copying the file copies everything.
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=DELETE")
    return path


@pytest.fixture
def sqlite_engine(tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    """A migrated SQLite database file of the test's own, for tests whose code under test opens
    its own connections (the app, the CLI, threads)."""
    path = tmp_path / "svc.db"
    shutil.copyfile(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def shared_sqlite_engine(tmp_path_factory: pytest.TempPathFactory,
                         sqlite_template: Path) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("shared") / "shared.db"
    shutil.copyfile(sqlite_template, path)
    engine = _savepoints_work(make_engine(f"sqlite:///{path}"))
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(request: pytest.FixtureRequest) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated SQLite database, isolated per test.

    When the test also uses `sqlite_engine` (directly or through `app`, a CLI runner...), the
    code under test opens its own connections, so the sessions use that file of the test's
    own. Otherwise they share the run's database inside a transaction rolled back at the end.
    """
    if "sqlite_engine" in request.fixturenames:
        engine: Engine = request.getfixturevalue("sqlite_engine")
        yield make_session_factory(engine)
        return
    with rolled_back(request.getfixturevalue("shared_sqlite_engine")) as factory:
        yield factory


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed only if the test commits it."""
    with session_factory() as s:
        yield s


@pytest.fixture
def app(tmp_path: Path, sqlite_engine: Engine) -> t.Any:
    from panel import create_app

    application = create_app(
        {
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": str(sqlite_engine.url),
            "TESTING": True,
        }
    )
    return application


@pytest.fixture
def client(app: t.Any) -> t.Any:
    return app.test_client()


@pytest.fixture
def make_user(session_factory: sessionmaker[Session]) -> t.Callable[..., PanelUser]:
    """Create a committed panel user through the service, as the operator would."""

    def _make(username: str, role: str = "customer", password: str = "correct horse 9",
              reseller: str | None = None) -> PanelUser:
        with transaction(session_factory) as session:
            return accounts.create_panel_user(
                session, Actor.operator(), username, password, Role(role), reseller_name=reseller
            )

    return _make


BROWSER_TESTS = Path(__file__).resolve().parent / "browser"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/browser drives Chromium: mark it so `-m "not browser"` works."""
    for item in items:
        if item.path.is_relative_to(BROWSER_TESTS):
            item.add_marker(pytest.mark.browser)
