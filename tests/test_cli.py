"""The `mailadmin` command line: users, passwords, --as, refusals."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from mailadmin.cli import main
from mailadmin.models import AuditEvent, PanelUser
from mailadmin.security import verify_panel_password


@pytest.fixture
def run(tmp_path: Path, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> t.Any:
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()

    def _run(*args: str, stdin: str | None = None) -> t.Any:
        return runner.invoke(main, ["--instance", str(tmp_path / "inst"), *args], input=stdin)

    return _run


def test_user_add_and_passwd(run: t.Any, sqlite_engine: Engine) -> None:
    result = run("user", "add", "bob", "--role", "reseller", "--password-stdin",
                 stdin="a long pass 12\n")
    assert result.exit_code == 0, result.output
    assert "Created reseller 'bob'" in result.output
    assert "a long pass 12" not in result.output
    result = run("user", "add", "carol", "--role", "customer", "--reseller", "bob")
    assert result.exit_code == 0, result.output
    assert "Password (shown once):" in result.output
    result = run("user", "passwd", "bob", "--password-stdin", stdin="another pass 34\n")
    assert result.exit_code == 0, result.output
    with Session(sqlite_engine) as s:
        bob = s.scalars(select(PanelUser).where(PanelUser.username == "bob")).one()
        assert verify_panel_password("another pass 34", bob.password_hash)[0]
        carol = s.scalars(select(PanelUser).where(PanelUser.username == "carol")).one()
        assert carol.parent_id == bob.id
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions == ["panel_user.create", "panel_user.create", "panel_user.password"]


def test_refusals_exit_non_zero_and_change_nothing(run: t.Any, sqlite_engine: Engine) -> None:
    assert run("user", "add", "bob", "--role", "reseller").exit_code == 0
    duplicate = run("user", "add", "bob", "--role", "customer")
    assert duplicate.exit_code != 0
    assert "taken" in duplicate.output
    weak = run("user", "add", "dave", "--role", "customer", "--password-stdin", stdin="short\n")
    assert weak.exit_code != 0
    assert "at least 10 characters" in weak.output
    hostile = run("user", "add", "eve\nroot", "--role", "customer")
    assert hostile.exit_code != 0
    with Session(sqlite_engine) as s:
        assert s.scalars(select(PanelUser.username)).all() == ["bob"]
        assert len(s.scalars(select(AuditEvent)).all()) == 1


def test_acting_as_a_reseller_applies_its_rights(run: t.Any) -> None:
    assert run("user", "add", "bob", "--role", "reseller").exit_code == 0
    assert run("user", "add", "zed", "--role", "reseller").exit_code == 0
    made = run("--as", "bob", "user", "add", "carol", "--role", "customer")
    assert made.exit_code == 0, made.output
    refused = run("--as", "bob", "user", "add", "mallory", "--role", "admin")
    assert refused.exit_code != 0
    assert "A reseller can create customers only." in refused.output
    other = run("--as", "bob", "user", "add", "dan", "--role", "customer", "--reseller", "zed")
    assert other.exit_code != 0
    # A reseller cannot reset another reseller's password: it is as if the account did not exist.
    foreign = run("--as", "bob", "user", "passwd", "zed", "--password-stdin", stdin="x long pass 99\n")
    assert foreign.exit_code != 0
    assert "There is no panel user 'zed'" in foreign.output
    unknown = run("--as", "ghost", "user", "add", "x1", "--role", "customer")
    assert unknown.exit_code != 0


def test_db_upgrade_reports_state(run: t.Any) -> None:
    result = run("db", "upgrade")
    assert result.exit_code == 0
    assert "up to date" in result.output
