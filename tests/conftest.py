from __future__ import annotations

import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.models import PanelUser, Role
from mailadmin.services import accounts
from mailadmin.services.context import Actor

from .databases import BACKENDS, throwaway_database


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend in turn."""
    with throwaway_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def migrated_engine(backend_url: str) -> Iterator[Engine]:
    engine = make_engine(backend_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'svc.db'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(sqlite_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(sqlite_engine)


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
