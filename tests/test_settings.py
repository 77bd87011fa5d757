from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailadmin.config import ConfigError, load_config


def test_defaults_file_then_environment(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'mailadmin.db'}"
    assert config["LOGIN_MAX_FAILURES_PER_ACCOUNT"] == 5
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
