"""Panel sign-in through the real HTTP form, the rate limit, CSRF and the session cookie."""

from __future__ import annotations

import typing as t

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.models import AuditEvent, PanelUser

from .web import sign_in, submit


def test_sign_in_through_the_form_and_out(client: t.Any, make_user: t.Any) -> None:
    make_user("alice", "customer", "correct horse 9")
    response = sign_in(client, "alice", "correct horse 9")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/dashboard")
    dashboard = client.get("/dashboard")
    assert dashboard.status_code == 200
    assert "alice · customer" in dashboard.get_data(as_text=True)

    html = dashboard.get_data(as_text=True)
    from .web import csrf_token

    out = client.post("/logout", data={"csrf_token": csrf_token(html)})
    assert out.status_code == 302
    assert client.get("/dashboard").status_code == 302  # back to the sign-in page


def test_wrong_password_is_refused(client: t.Any, make_user: t.Any) -> None:
    make_user("alice")
    response = sign_in(client, "alice", "wrong password!")
    assert response.status_code == 401
    assert "The user name or the password is wrong." in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302


def test_five_wrong_passwords_lock_the_account(client: t.Any, make_user: t.Any) -> None:
    make_user("alice", password="correct horse 9")
    statuses = [sign_in(client, "alice", f"wrong {i} password").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    locked = sign_in(client, "alice", "correct horse 9")
    assert locked.status_code == 429
    text = locked.get_data(as_text=True)
    assert "Too many failed sign-ins for this account" in text
    assert client.get("/dashboard").status_code == 302


def test_unknown_accounts_are_throttled_too(client: t.Any) -> None:
    statuses = [sign_in(client, "nobody", "whatever pass").status_code for _ in range(6)]
    assert statuses[-2:] == [429, 429]


def test_many_accounts_from_one_address_lock_the_address(app: t.Any, make_user: t.Any) -> None:
    client = app.test_client()
    statuses = [sign_in(client, f"user{i}", "bad password 1").status_code for i in range(20)]
    assert statuses[-1] == 429
    make_user("carol", password="correct horse 9")
    refused = sign_in(client, "carol", "correct horse 9")
    assert refused.status_code == 429
    assert "your network address" in refused.get_data(as_text=True)


def test_form_without_csrf_token_is_refused_and_changes_nothing(
    client: t.Any, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    make_user("alice", password="correct horse 9")
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    with session_factory() as s:
        before = s.scalars(select(PanelUser.password_hash).where(PanelUser.username == "alice")).one()
        events_before = len(s.scalars(select(AuditEvent)).all())
    response = client.post(
        "/account/password",
        data={"current_password": "correct horse 9", "password": "brand new pass 7",
              "confirm": "brand new pass 7"},
    )
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    with session_factory() as s:
        after = s.scalars(select(PanelUser.password_hash).where(PanelUser.username == "alice")).one()
        assert after == before
        assert len(s.scalars(select(AuditEvent)).all()) == events_before


def test_change_own_password_ends_other_sessions(app: t.Any, make_user: t.Any) -> None:
    make_user("alice", password="correct horse 9")
    first, second = app.test_client(), app.test_client()
    assert sign_in(first, "alice", "correct horse 9").status_code == 302
    assert sign_in(second, "alice", "correct horse 9").status_code == 302
    changed = submit(first, "/account/password", {
        "current_password": "correct horse 9", "password": "brand new pass 7",
        "confirm": "brand new pass 7"})
    assert changed.status_code == 302
    assert first.get("/dashboard").status_code == 200
    assert second.get("/dashboard").status_code == 302
    assert sign_in(app.test_client(), "alice", "brand new pass 7").status_code == 302


def test_refused_password_change_shows_inline_error(client: t.Any, make_user: t.Any) -> None:
    make_user("alice", password="correct horse 9")
    sign_in(client, "alice", "correct horse 9")
    response = submit(client, "/account/password", {
        "current_password": "correct horse 9", "password": "short", "confirm": "short"})
    assert response.status_code == 422
    assert "at least 10 characters" in response.get_data(as_text=True)


def test_session_cookie_flags(client: t.Any, make_user: t.Any) -> None:
    make_user("alice", password="correct horse 9")
    response = sign_in(client, "alice", "correct horse 9")
    cookie = session_cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback
    secure_client = client.application.test_client()
    response = sign_in_https(secure_client)
    assert "Secure" in session_cookie(response)


def session_cookie(response: t.Any) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("mailadmin_session=")]
    assert len(cookies) == 1
    return cookies[0]


def sign_in_https(client: t.Any) -> t.Any:
    from .web import csrf_token

    html = client.get("/login", base_url="https://panel.example").get_data(as_text=True)
    return client.post(
        "/login",
        base_url="https://panel.example",
        data={"username": "alice", "password": "correct horse 9", "csrf_token": csrf_token(html)},
    )


def test_open_redirect_is_ignored(client: t.Any, make_user: t.Any) -> None:
    make_user("alice", password="correct horse 9")
    from .web import csrf_token

    html = client.get("/login").get_data(as_text=True)
    response = client.post(
        "/login?next=//evil.example/x",
        data={"username": "alice", "password": "correct horse 9", "csrf_token": csrf_token(html)},
    )
    assert response.headers["Location"].endswith("/dashboard")
