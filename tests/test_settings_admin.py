"""Server settings: validated in the service, reachable by the admin only, in CLI and web."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.cli import main
from mailadmin.db import transaction
from mailadmin.errors import PermissionDenied, ValidationError
from mailadmin.services import domains, mailboxes
from mailadmin.services import settings as settings_service
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings

from .web import sign_in, submit


def test_scheme_selection_changes_new_hashes(
    session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    make_user("alice")
    op = Actor.operator()
    with transaction(session_factory) as s:
        settings_service.set_setting(s, op, "password_scheme", "argon2id")
        domains.add_domain(s, op, "a.example", customer="alice")
        box = mailboxes.create_mailbox(s, op, "x@a.example", "Tr0ub4dor&3-horse")
        assert box.password_hash.startswith("{ARGON2ID}$argon2id$")
        settings_service.set_setting(s, op, "password_scheme", "BLF-CRYPT")
        box = mailboxes.create_mailbox(s, op, "y@a.example", "Tr0ub4dor&3-horse")
        assert box.password_hash.startswith("{BLF-CRYPT}$2y$")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("imap_host", "mail.example.net\nmail_location = /tmp"),
        ("mail_root", "/var/vmail/../../etc"),
        ("mail_root", "relative/path"),
        ("config_output_dir", "/etc/x y"),
        ("imap_port", "99999"),
        ("password_scheme", "PLAIN"),
        ("stack_mode", "ldap"),
        ("min_password_length", "3"),
    ],
)
def test_unsafe_values_are_refused(
    name: str, value: str, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as s:
        before = settings_service.list_settings(s, Actor.operator())
    with pytest.raises(ValidationError), transaction(session_factory) as s:
        settings_service.set_setting(s, Actor.operator(), name, value)
    with session_factory() as s:
        assert {k: getattr(get_server_settings(s), k) for k in before} == before


def test_only_the_admin_sees_settings(
    session_factory: sessionmaker[Session], make_user: t.Any, app: t.Any
) -> None:
    make_user("rita", "reseller")
    make_user("alice", "customer")
    with session_factory() as s:
        from mailadmin.services.accounts import get_user

        for name in ("rita", "alice"):
            actor = Actor.for_user(get_user(s, name), "panel")
            with pytest.raises(PermissionDenied):
                settings_service.list_settings(s, actor)
    client = app.test_client()
    sign_in(client, "alice", "correct horse 9")
    assert client.get("/admin/settings").status_code == 403


def test_admin_page_saves_all_or_nothing(
    app: t.Any, make_user: t.Any, session_factory: t.Any
) -> None:
    make_user("root", "admin")
    client = app.test_client()
    sign_in(client, "root", "correct horse 9")
    with session_factory() as s:
        values = {k: str(v) for k, v in settings_service.list_settings(s, Actor.operator()).items()}
    bad = {**values, "imap_host": "imap.example.org", "mail_root": "not absolute"}
    response = submit(client, "/admin/settings", bad)
    assert response.status_code == 422
    assert "absolute path" in response.get_data(as_text=True)
    with session_factory() as s:
        assert get_server_settings(s).imap_host == "mail.example.net"
    good = {**values, "imap_host": "imap.example.org"}
    assert submit(client, "/admin/settings", good).status_code == 302
    with session_factory() as s:
        assert get_server_settings(s).imap_host == "imap.example.org"


def test_cli_settings(
    tmp_path: Path, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, make_user: t.Any
) -> None:
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()
    base = ["--instance", str(tmp_path / "i")]
    assert (
        runner.invoke(main, [*base, "settings", "set", "password_scheme", "argon2id"]).exit_code
        == 0
    )
    assert (
        runner.invoke(main, [*base, "settings", "get", "password_scheme"]).output.strip()
        == "ARGON2ID"
    )
    refused = runner.invoke(main, [*base, "settings", "set", "smtp_host", "bad host"])
    assert refused.exit_code != 0
    make_user("alice")
    denied = runner.invoke(main, [*base, "--as", "alice", "settings", "list"])
    assert denied.exit_code != 0 and "Only the server admin" in denied.output
