from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailadmin.config import ConfigError, load_config


def test_defaults_file_then_environment(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'mailadmin.db'}"
    assert config["LOGIN_MAX_FAILURES_PER_ACCOUNT"] == 100
    assert config["LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS"] == 5
    (tmp_path / "mailadmin.toml").write_text(
        'database_url = "postgresql+psycopg://db/mail"\nLOGIN_MAX_FAILURES_PER_ACCOUNT = 7\n'
    )
    config = load_config(tmp_path, environ={})
    assert config["DATABASE_URL"] == "postgresql+psycopg://db/mail"
    assert config["LOGIN_MAX_FAILURES_PER_ACCOUNT"] == 7
    config = load_config(
        tmp_path,
        environ={"MAILADMIN_DATABASE_URL": "sqlite:///x.db", "MAILADMIN_LOGIN_MAX_FAILURES_PER_ACCOUNT": "3"},
    )
    assert config["DATABASE_URL"] == "sqlite:///x.db"
    assert config["LOGIN_MAX_FAILURES_PER_ACCOUNT"] == 3


def test_bad_environment_value_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILADMIN_LOGIN_LOCK_SECONDS must be a whole number"):
        load_config(tmp_path, environ={"MAILADMIN_LOGIN_LOCK_SECONDS": "soon"})


def test_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    first = load_config(tmp_path, environ={})["SECRET_KEY"]
    second = load_config(tmp_path, environ={})["SECRET_KEY"]
    assert first == second and len(first) == 64
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600


def test_instance_folder_and_database_files_are_private(tmp_path: Path) -> None:
    """0700 folder; database, -wal and -shm 0600, whatever the umask lets through."""
    import os

    import sqlalchemy as sa

    from mailadmin import migrate
    from mailadmin.db import make_engine

    instance = tmp_path / "deep" / "instance"
    old_umask = os.umask(0o022)
    try:
        config = load_config(instance, environ={})
        engine = make_engine(config["DATABASE_URL"])
        migrate.upgrade(engine)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM panel_users")).scalar()
            files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in instance.iterdir()}
        engine.dispose()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert {"mailadmin.db", "mailadmin.db-wal", "mailadmin.db-shm", "secret_key"} <= set(files)
    assert {name: mode for name, mode in files.items() if mode != 0o600} == {}
    # The parents it needed are ordinary folders; an existing instance folder is left alone.
    assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o755
    instance.chmod(0o750)
    load_config(instance, environ={})
    assert stat.S_IMODE(instance.stat().st_mode) == 0o750
