"""The isolation the shared test database relies on: commits become savepoints that end with the
test, and a failed unit of work undoes only itself."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import PanelUser, Role
from mailadmin.services import accounts
from mailadmin.services.context import Actor

from .conftest import rolled_back


def users(factory: sessionmaker[Session]) -> list[str]:
    with factory() as s:
        return list(s.scalars(select(PanelUser.username).order_by(PanelUser.username)))


def add(factory: sessionmaker[Session], name: str) -> None:
    with transaction(factory) as s:
        accounts.create_panel_user(s, Actor.operator(), name, "correct horse 9", Role.CUSTOMER)


def test_commits_end_with_the_test(shared_sqlite_engine: Engine) -> None:
    with rolled_back(shared_sqlite_engine) as factory:
        add(factory, "alice")
        # Committed as far as the test can tell: a new session sees it.
        assert users(factory) == ["alice"]
        with pytest.raises(RuntimeError), transaction(factory) as s:
            accounts.create_panel_user(s, Actor.operator(), "bert", "correct horse 9",
                                       Role.CUSTOMER)
            raise RuntimeError("the unit of work fails")
        assert users(factory) == ["alice"]
    with rolled_back(shared_sqlite_engine) as factory:
        assert users(factory) == []
    with shared_sqlite_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(PanelUser)) == 0


def test_backend_database_is_migrated_and_isolated(
        backend_session_factory: sessionmaker[Session]) -> None:
    add(backend_session_factory, "carl")
    assert users(backend_session_factory) == ["carl"]
