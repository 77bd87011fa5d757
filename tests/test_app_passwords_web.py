"""App passwords in the browser's HTTP: /me for the mailbox user, the mailbox page for the
customer; shown once, CSRF on every form, another tenant sees nothing, and "app passwords
only" leaves the main password working for /me."""

from __future__ import annotations

import re
import typing as t

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.hashing import verify_mailbox_password
from mailadmin.models import AppPassword, AuditEvent
from mailadmin.services import app_passwords
from mailadmin.services.context import Actor

from .test_selfservice import PASSWORD, mail_app, mailbox, mailbox_sign_in, web
from .web import csrf_token, sign_in, submit

__all__ = ["mail_app", "web"]  # fixtures

PANEL_PASSWORD = "correct horse 9"
SHOWN = re.compile(r'data-testid="app-password">([a-z0-9-]+)<')


def _apps(session_factory: sessionmaker[Session]) -> list[AppPassword]:
    with session_factory() as s:
        return list(s.scalars(select(AppPassword).order_by(AppPassword.id)))


def test_mailbox_user_creates_sees_once_and_revokes(web: t.Any,
                                                    session_factory: t.Any) -> None:
    mailbox_sign_in(web, "anna@example.org")
    page = web.get("/me/app-passwords")
    assert page.status_code == 200 and "No app passwords yet" in page.get_data(as_text=True)
    # no CSRF token: refused, nothing made
    assert web.post("/me/app-passwords", data={"label": "x", "imap": "y"}).status_code == 400
    answer = submit(web, "/me/app-passwords", {"label": "Anna's phone", "imap": "y"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    password = SHOWN.search(html).group(1)  # type: ignore[union-attr]
    (app,) = _apps(session_factory)
    assert (app.label, app.imap, app.pop3, app.smtp) == ("Anna's phone", True, False, False)
    assert verify_mailbox_password(password, app.password_hash)
    # shown this once: not on the next page, not in the session cookie
    again = web.get("/me/app-passwords").get_data(as_text=True)
    assert password not in again and "Anna&#39;s phone" in again
    assert all(password not in c.value for c in web._cookies.values())
    # bad input: a clear error, nothing changed
    bad = submit(web, "/me/app-passwords", {"label": "tablet"})
    assert bad.status_code == 422
    assert "Choose at least one protocol" in bad.get_data(as_text=True)
    assert len(_apps(session_factory)) == 1
    # revoke
    token = csrf_token(again)
    done = web.post(f"/me/app-passwords/{app.id}/revoke", data={"csrf_token": token},
                    follow_redirects=True)
    assert "revoked" in done.get_data(as_text=True)
    assert _apps(session_factory) == []


def test_a_mailbox_user_cannot_touch_another_mailboxs_app_passwords(
        web: t.Any, session_factory: t.Any) -> None:
    with session_factory() as s:
        carl = app_passwords.add_app_password(s, Actor.operator(), "carl@other.example",
                                              "carl's phone", ["imap"])
        s.commit()
    mailbox_sign_in(web, "anna@example.org")
    token = csrf_token(web.get("/me/app-passwords").get_data(as_text=True))
    answer = web.post(f"/me/app-passwords/{carl.row.id}/revoke", data={"csrf_token": token})
    assert answer.status_code == 404
    assert [a.id for a in _apps(session_factory)] == [carl.row.id]
    assert "carl&#39;s phone" not in web.get("/me/app-passwords").get_data(as_text=True)
    # and no panel page of the customer
    assert web.get("/mailboxes/carl@other.example/app-passwords").status_code in (302, 403)


def test_app_passwords_only_still_signs_in_to_me(web: t.Any, session_factory: t.Any) -> None:
    mailbox_sign_in(web, "anna@example.org")
    submit(web, "/me/app-passwords/only", {"app_passwords_only": "y"},
           page="/me/app-passwords")
    assert mailbox(session_factory, "anna@example.org").app_passwords_only
    web.get("/logout")
    fresh = web.application.test_client()
    answer = mailbox_sign_in(fresh, "anna@example.org", PASSWORD)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert fresh.get("/me/").status_code == 200
    # an app password does not sign in to /me
    with session_factory() as s:
        new = app_passwords.add_app_password(s, Actor.operator(), "anna@example.org", "phone",
                                             ["imap"])
        s.commit()
    assert mailbox_sign_in(web.application.test_client(), "anna@example.org",
                           new.password).status_code == 401


def test_customer_manages_app_passwords_and_another_customer_cannot(
        mail_app: t.Any, session_factory: t.Any) -> None:
    alice = mail_app.test_client()
    sign_in(alice, "alice", PANEL_PASSWORD)
    assert "App passwords" in alice.get("/mailboxes/anna@example.org").get_data(as_text=True)
    made = submit(alice, "/mailboxes/anna@example.org/app-passwords",
                  {"label": "scanner", "smtp": "y"})
    assert made.status_code == 200 and SHOWN.search(made.get_data(as_text=True))
    refused = submit(alice, "/mailboxes/nopop@example.org/app-passwords",
                     {"label": "fetcher", "pop3": "y"})
    assert refused.status_code == 422
    assert "may not use POP3" in refused.get_data(as_text=True)
    (app,) = _apps(session_factory)

    bert = mail_app.test_client()
    sign_in(bert, "bert", PANEL_PASSWORD)
    with session_factory() as s:
        events = s.scalar(select(func.count()).select_from(AuditEvent))
    assert bert.get("/mailboxes/anna@example.org/app-passwords").status_code == 404
    token = csrf_token(bert.get("/mailboxes/carl@other.example/app-passwords")
                       .get_data(as_text=True))
    for url in (f"/mailboxes/anna@example.org/app-passwords/{app.id}/revoke",
                f"/mailboxes/carl@other.example/app-passwords/{app.id}/revoke",
                "/mailboxes/anna@example.org/app-passwords/only"):
        assert bert.post(url, data={"csrf_token": token, "app_passwords_only": "y"}
                         ).status_code == 404, url
    assert bert.post("/mailboxes/anna@example.org/app-passwords",
                     data={"csrf_token": token, "label": "mine", "imap": "y"}).status_code == 404
    assert [a.id for a in _apps(session_factory)] == [app.id]
    assert not mailbox(session_factory, "anna@example.org").app_passwords_only
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == events
