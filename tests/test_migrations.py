"""The Alembic migrations create exactly the models' schema, on every backend, and undo it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mailadmin import migrate
from mailadmin.db import make_engine
from mailadmin.models import Base


def test_upgrade_matches_models_and_downgrades(backend_url: str) -> None:
    engine = make_engine(backend_url)
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        assert set(Base.metadata.tables) <= set(sa.inspect(engine).get_table_names())

        migrate.downgrade(engine, "base")
        engine.dispose()
        remaining = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
        assert remaining == set()
    finally:
        engine.dispose()


def test_foreign_keys_enforced(migrated_engine: sa.Engine) -> None:
    """Every backend refuses a mailbox whose domain does not exist (SQLite needs a pragma)."""
    import pytest

    from mailadmin.models import Mailbox

    with sa.orm.Session(migrated_engine) as session:
        session.add(Mailbox(domain_id=424242, local_part="x", password_hash="{X}y"))
        with pytest.raises(sa.exc.IntegrityError):
            session.flush()
