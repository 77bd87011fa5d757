"""The account report on the diagnose page and in the API; the login-test and mail-log pages'
scope (servers are not needed: the login test runs against a closed port here, the real
servers are in tests/mailstack/test_account_diagnostics.py)."""

from __future__ import annotations

import socket
import typing as t
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import PanelUser
from mailadmin.services import tokens
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings

from ..factories import actor, mail_account
from ..test_selfservice import register_blueprints
from ..web import sign_in, submit

PANEL_PW = "correct horse 9"
MAILBOX_PW = "Mailbox-pw-Canary-4410"
AUTH_FAILED = "535 5.7.8 Error: authentication failed: authentication failure"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def world(app: t.Any, session_factory: sessionmaker[Session], make_user: t.Any,
          tmp_path: Path) -> t.Any:
    register_blueprints(app)
    make_user("alice")
    make_user("bert")
    closed = _free_port()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "postfix.log").write_text(
        "Nov 26 11:30:00 mail postfix/qmgr[12]: 4D5E6F7A8B: from=<x@remote.test>, size=5, "
        "nrcpt=1 (queue active)\n"
        "Nov 26 11:30:01 mail postfix/lmtp[13]: 4D5E6F7A8B: to=<carl@other.example>, "
        "relay=local, dsn=2.0.0, status=sent (250 2.0.0 <carl@other.example> S1 Saved)\n")
    f = session_factory
    mail_account(f, actor(f, "alice", source=None), "example.org",
                 {"anna@example.org": {"smtp": False}}, MAILBOX_PW)
    mail_account(f, actor(f, "bert", source=None), "other.example",
                 {"carl@other.example": {}}, MAILBOX_PW)
    with transaction(session_factory) as s:
        settings = get_server_settings(s)
        settings.smtp_host = settings.imap_host = settings.pop3_host = "127.0.0.1"
        settings.submission_port = settings.imap_port = settings.pop3_port = closed
        settings.smtps_port = 0
        settings.log_dir = str(tmp_path / "logs")
    return app


def test_diagnose_page_shows_the_account_report(world: t.Any) -> None:
    client = world.test_client()
    sign_in(client, "alice", PANEL_PW)
    html = submit(client, "/diagnose/", {"text": AUTH_FAILED, "address": "anna@example.org"}
                  ).get_data(as_text=True)
    assert 'data-testid="account-report"' in html
    assert 'data-cause="protocol_off"' in html and "SMTP (sending) is switched off" in html
    # another customer's address: no state shown, the same words as for an unknown one
    other = submit(client, "/diagnose/", {"text": AUTH_FAILED, "address": "carl@other.example"}
                   ).get_data(as_text=True)
    assert 'data-cause="not_in_your_account"' in other and "switched off" not in other


def test_mailbox_user_gets_its_own_account_checked(world: t.Any) -> None:
    client = world.test_client()
    submit(client, "/me/login", {"address": "anna@example.org", "password": MAILBOX_PW})
    html = submit(client, "/diagnose/", {"text": AUTH_FAILED}).get_data(as_text=True)
    assert 'data-cause="protocol_off"' in html
    assert client.get("/diagnose/login-test/carl@other.example").status_code == 404
    assert client.get("/diagnose/login-test/anna@example.org").status_code == 200


def test_api_returns_the_account_report(world: t.Any, session_factory: t.Any) -> None:
    with transaction(session_factory) as s:
        alice = s.scalars(select(PanelUser).where(PanelUser.username == "alice")).one()
        _, token = tokens.create_api_token(s, Actor.for_user(alice, "panel"), "diag")
    response = world.test_client().post(
        "/api/v1/diagnose", headers={"Authorization": f"Bearer {token}"},
        json={"text": AUTH_FAILED, "address": "anna@example.org"})
    assert response.status_code == 200, response.get_json()
    account = response.get_json()["account"]
    assert account["account_fine"] is False
    assert account["checks"][0]["cause"] == "protocol_off"


def test_login_test_page_reports_the_failed_step_without_the_password(world: t.Any) -> None:
    client = world.test_client()
    sign_in(client, "alice", PANEL_PW)
    page = "/diagnose/login-test/anna@example.org"
    response = submit(client, page, {"password": MAILBOX_PW})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-failed-step="connect"' in html and MAILBOX_PW not in html
    assert client.get("/diagnose/login-test/carl@other.example").status_code == 404


def test_mail_log_page_scope(world: t.Any) -> None:
    client = world.test_client()
    sign_in(client, "alice", PANEL_PW)
    html = client.get("/diagnose/log?q=4D5E6F7A8B&since=").get_data(as_text=True)
    assert 'data-testid="story"' not in html and "carl@other.example" not in html
    html = client.get("/diagnose/log?q=carl@other.example&since=").get_data(as_text=True)
    assert "not hosted in your account" in html
    bert = world.test_client()
    sign_in(bert, "bert", PANEL_PW)
    html = bert.get("/diagnose/log?q=4D5E6F7A8B&since=").get_data(as_text=True)
    assert 'data-queue-id="4D5E6F7A8B" data-outcome="delivered"' in html


def test_login_test_page_is_rate_limited_per_mailbox(world: t.Any) -> None:
    from mailadmin.diagnostics.live import LIVE_TEST_POLICY

    client = world.test_client()
    sign_in(client, "alice", PANEL_PW)
    page = "/diagnose/login-test/anna@example.org"
    for _ in range(LIVE_TEST_POLICY.max_failures_per_account):
        assert submit(client, page, {"password": MAILBOX_PW}).status_code == 200
    refused = submit(client, page, {"password": MAILBOX_PW})
    assert refused.status_code == 429
    assert "try again in 15 minutes" in refused.get_data(as_text=True)
