"""Schema migrations (Alembic) driven from Python, for `mailadmin db` and `mailadmin serve`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


def _migrations_dir() -> Path:
    """The Alembic scripts: inside the package in an installed wheel (the build maps them
    there), at the top of the repository in a checkout or an editable install."""
    packaged = Path(__file__).resolve().parent / "migrations"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "migrations"


MIGRATIONS_DIR = _migrations_dir()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def pending(engine: Engine) -> bool:
    return current_revision(engine) != head_revision()
