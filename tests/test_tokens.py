"""API tokens: the service (hashing, lifecycle, refusals, audit) and the panel page."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import typing as t

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import (
    AuthenticationFailed,
    NotFound,
    PermissionDenied,
    RateLimited,
    ValidationError,
)
from mailadmin.models import ApiToken, AuditEvent, PanelUser
from mailadmin.services import tokens
from mailadmin.services.context import Actor
from mailadmin.services.throttle import ThrottlePolicy

from .factories import actor
from .web import csrf_token, sign_in, submit

TOKEN_SHAPE = re.compile(r"^[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$")


@pytest.fixture
def people(make_user: t.Any, session_factory: sessionmaker[Session]) -> dict[str, Actor]:
    make_user("rita", "reseller")
    make_user("alice", "customer", reseller="rita")
    make_user("bert", "customer", reseller="rita")
    return {name: actor(session_factory, name) for name in ("rita", "alice", "bert")}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- Service ------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_only_its_hash_is_stored(
    people: dict[str, Actor], session_factory: t.Any
) -> None:
    with transaction(session_factory) as s:
        token, text = tokens.create_api_token(s, people["alice"], "  backup script ")
    assert TOKEN_SHAPE.fullmatch(text)
    prefix, secret = text.split(".")
    assert len(secret) == 43  # 32 random bytes = 256 bits, base64url
    with session_factory() as s:
        stored = s.get(ApiToken, token.id)
        assert stored is not None
        assert stored.name == "backup script"
        assert stored.prefix == prefix
        assert stored.scopes == "read write"
        assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        row = [str(getattr(stored, c.key)) for c in ApiToken.__table__.columns]
        assert not any(secret in value for value in row)
        # Nothing can give the secret back: listing shows the prefix only.
        listed = tokens.list_api_tokens(s, people["alice"])
        assert [t_.prefix for t_ in listed] == [prefix]


def test_authentication_returns_the_owner_and_notes_the_use(
    people: dict[str, Actor], session_factory: t.Any
) -> None:
    with transaction(session_factory) as s:
        _, text = tokens.create_api_token(s, people["alice"], "one")
    moment = _now()
    with transaction(session_factory) as s:
        user = tokens.authenticate_api_token(s, text, moment)
        assert user.username == "alice"
    with session_factory() as s:
        assert s.scalars(select(ApiToken.last_used_at)).one() == moment.replace(
            microsecond=moment.microsecond)


@pytest.mark.parametrize("mangle", [
    lambda text: text[:-1] + ("A" if text[-1] != "A" else "B"),  # wrong secret
    lambda text: "0" * 12 + text[12:],  # unknown prefix
    lambda text: text.replace(".", ":"),  # malformed
    lambda text: text + " x",
    lambda text: text.split(".")[0],
])
def test_wrong_tokens_are_refused(
    people: dict[str, Actor], session_factory: t.Any, mangle: t.Callable[[str], str]
) -> None:
    with transaction(session_factory) as s:
        _, text = tokens.create_api_token(s, people["alice"], "one")
    with session_factory() as s, pytest.raises(AuthenticationFailed):
        tokens.authenticate_api_token(s, mangle(text), _now())


def test_revoked_expired_and_suspended_are_refused(
    people: dict[str, Actor], session_factory: t.Any
) -> None:
    with transaction(session_factory) as s:
        revoked, revoked_text = tokens.create_api_token(s, people["alice"], "old")
        _, expiring_text = tokens.create_api_token(
            s, people["alice"], "short", expires_at=_now() + dt.timedelta(hours=1)
        )
        _, bert_text = tokens.create_api_token(s, people["bert"], "bert")
    with transaction(session_factory) as s:
        tokens.revoke_api_token(s, people["alice"], revoked.id)
    with session_factory() as s:
        with pytest.raises(AuthenticationFailed):
            tokens.authenticate_api_token(s, revoked_text, _now())
        assert tokens.authenticate_api_token(s, expiring_text, _now()).username == "alice"
        with pytest.raises(AuthenticationFailed):
            tokens.authenticate_api_token(s, expiring_text, _now() + dt.timedelta(hours=2))
    with transaction(session_factory) as s:
        s.scalars(select(PanelUser).where(PanelUser.username == "bert")).one().is_suspended = True
    with session_factory() as s, pytest.raises(AuthenticationFailed, match="suspended"):
        tokens.authenticate_api_token(s, bert_text, _now())


def test_scopes_narrow_what_a_token_may_do(
    people: dict[str, Actor], session_factory: t.Any
) -> None:
    with transaction(session_factory) as s:
        token, text = tokens.create_api_token(s, people["alice"], "reader", ["READ"])
    assert tokens.token_scopes(token) == ["read"]
    with session_factory() as s:
        assert tokens.authenticate_api_token(s, text, _now(), required_scope="read")
        with pytest.raises(PermissionDenied):
            tokens.authenticate_api_token(s, text, _now(), required_scope="write")


@pytest.mark.parametrize(("name", "scopes", "expires_in", "field"), [
    ("", None, None, "name"),
    ("x" * 65, None, None, "name"),
    ("two\nlines", None, None, "name"),
    ("ok", ["admin"], None, "scopes"),
    ("ok", [], None, "scopes"),
    ("ok", None, -1, "expires_at"),
])
def test_bad_token_requests_are_refused_and_nothing_is_stored(
    people: dict[str, Actor], session_factory: t.Any, name: str, scopes: list[str] | None,
    expires_in: int | None, field: str,
) -> None:
    expires = _now() + dt.timedelta(days=expires_in) if expires_in is not None else None
    with session_factory() as s:
        with pytest.raises(ValidationError) as refused:
            tokens.create_api_token(s, people["alice"], name, scopes, expires_at=expires)
        s.rollback()
        assert refused.value.field == field
        assert s.scalars(select(ApiToken)).all() == []


def test_only_the_owner_sees_and_revokes_a_token(
    people: dict[str, Actor], session_factory: t.Any
) -> None:
    with transaction(session_factory) as s:
        token, text = tokens.create_api_token(s, people["alice"], "mine")
    for other in ("bert", "rita"):  # not even alice's reseller
        with session_factory() as s:
            assert tokens.list_api_tokens(s, people[other]) == []
            with pytest.raises(NotFound):
                tokens.revoke_api_token(s, people[other], token.id)
    with session_factory() as s:
        assert tokens.authenticate_api_token(s, text, _now()).username == "alice"
    with session_factory() as s, pytest.raises(PermissionDenied):
        tokens.create_api_token(s, Actor.operator(), "machine")


def test_create_and_revoke_are_audited_without_the_secret(
    people: dict[str, Actor], session_factory: t.Any
) -> None:
    with transaction(session_factory) as s:
        token, text = tokens.create_api_token(s, people["alice"], "audited")
    with transaction(session_factory) as s:
        tokens.revoke_api_token(s, people["alice"], token.id)
    with transaction(session_factory) as s:
        tokens.revoke_api_token(s, people["alice"], token.id)  # again: no second event
    with session_factory() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "api_token").order_by(AuditEvent.id)
        ).all()
        assert [e.action for e in events] == ["api_token.create", "api_token.revoke"]
        alice_id = people["alice"].user_id
        assert {e.customer_id for e in events} == {alice_id}
        secret = text.split(".")[1]
        for event in events:
            blob = " ".join(str(v) for v in (event.before, event.after, event.object_label))
            assert secret not in blob
            assert token.secret_hash not in blob


def test_failed_authentications_lock_the_address(
    people: dict[str, Actor], session_factory: t.Any
) -> None:
    policy = ThrottlePolicy(max_failures_per_address=3)
    with transaction(session_factory) as s:
        _, text = tokens.create_api_token(s, people["alice"], "one")
    outcomes = []
    for _ in range(3):
        with transaction(session_factory) as s:
            try:
                tokens.authenticate_api_token(
                    s, "0" * 12 + "." + "x" * 43, _now(), client_address="198.51.100.1",
                    policy=policy,
                )
            except (AuthenticationFailed, RateLimited) as exc:
                outcomes.append(type(exc).__name__)
    assert outcomes == ["AuthenticationFailed", "AuthenticationFailed", "RateLimited"]
    with session_factory() as s, pytest.raises(RateLimited):
        tokens.authenticate_api_token(s, text, _now(), client_address="198.51.100.1",
                                      policy=policy)


# --- Panel page ---------------------------------------------------------------------------


@pytest.fixture
def panel(app: t.Any) -> t.Any:
    """The app with the token page (and the API) registered, until create_app does it."""
    from panel.api import bp as api_bp
    from panel.tokens import bp as tokens_bp

    if "tokens" not in app.blueprints:
        app.register_blueprint(tokens_bp)
    if "api" not in app.blueprints:
        app.register_blueprint(api_bp)
    return app.test_client()


NEW_TOKEN = re.compile(r'id="new-token" type="text" readonly value="([^"]+)"')


def test_the_page_needs_a_signed_in_user(panel: t.Any) -> None:
    response = panel.get("/account/tokens")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_create_use_and_revoke_a_token_in_the_panel(
    panel: t.Any, people: dict[str, Actor], session_factory: t.Any
) -> None:
    assert sign_in(panel, "alice", "correct horse 9").status_code == 302
    empty = panel.get("/account/tokens")
    assert empty.status_code == 200
    assert "You have no API tokens." in empty.get_data(as_text=True)

    created = submit(panel, "/account/tokens", {"name": "deploy", "access": "read write",
                                                "expires": "30"})
    assert created.status_code == 200
    assert created.headers["Cache-Control"] == "no-store"
    html = created.get_data(as_text=True)
    match = NEW_TOKEN.search(html)
    assert match, html
    text = match.group(1)
    assert TOKEN_SHAPE.fullmatch(text)
    assert "shown only this once" in html

    # The token works on the API, with the owner's rights.
    api = panel.application.test_client()
    response = api.get("/api/v1/domains", headers={"Authorization": f"Bearer {text}"})
    assert response.status_code == 200

    # Shown once: the list has the prefix only.
    again = panel.get("/account/tokens").get_data(as_text=True)
    prefix, secret = text.split(".")
    assert secret not in again and prefix in again and "deploy" in again
    with session_factory() as s:
        token = s.scalars(select(ApiToken)).one()
        assert token.expires_at is not None
        assert dt.timedelta(days=29) < token.expires_at - _now() <= dt.timedelta(days=30)

    page = panel.get(f"/account/tokens/{token.id}/revoke").get_data(as_text=True)
    assert "is refused from the next request on" in page
    unticked = panel.post(f"/account/tokens/{token.id}/revoke",
                          data={"csrf_token": csrf_token(page)})
    assert unticked.status_code == 422 and "Tick the box" in unticked.get_data(as_text=True)
    response = api.get("/api/v1/domains", headers={"Authorization": f"Bearer {text}"})
    assert response.status_code == 200
    revoked = panel.post(f"/account/tokens/{token.id}/revoke",
                         data={"csrf_token": csrf_token(page), "confirm": "y"},
                         follow_redirects=True)
    assert revoked.status_code == 200
    assert "is revoked" in revoked.get_data(as_text=True)
    response = api.get("/api/v1/domains", headers={"Authorization": f"Bearer {text}"})
    assert response.status_code == 401


def test_a_refused_name_shows_beside_the_field_and_stores_nothing(
    panel: t.Any, people: dict[str, Actor], session_factory: t.Any
) -> None:
    sign_in(panel, "alice", "correct horse 9")
    refused = submit(panel, "/account/tokens", {"name": "", "access": "read", "expires": "0"})
    assert refused.status_code == 422
    assert 'id="new-token"' not in refused.get_data(as_text=True)
    bad_access = submit(panel, "/account/tokens",
                        {"name": "x", "access": "everything", "expires": "0"})
    assert bad_access.status_code == 422
    with session_factory() as s:
        assert s.scalars(select(ApiToken)).all() == []


def test_another_users_token_cannot_be_revoked_from_the_panel(
    panel: t.Any, people: dict[str, Actor], session_factory: t.Any
) -> None:
    with transaction(session_factory) as s:
        bert_token, _ = tokens.create_api_token(s, people["bert"], "bert's")
    sign_in(panel, "alice", "correct horse 9")
    page = panel.get("/account/tokens").get_data(as_text=True)
    assert "bert&#39;s" not in page and "bert's" not in page
    assert panel.get(f"/account/tokens/{bert_token.id}/revoke").status_code == 404
    response = panel.post(f"/account/tokens/{bert_token.id}/revoke",
                          data={"csrf_token": csrf_token(page), "confirm": "y"},
                          follow_redirects=True)
    assert "There is no such API token" in response.get_data(as_text=True)
    with session_factory() as s:
        assert s.get(ApiToken, bert_token.id).revoked_at is None  # type: ignore[union-attr]


def test_revoking_needs_the_csrf_token(
    panel: t.Any, people: dict[str, Actor], session_factory: t.Any
) -> None:
    with transaction(session_factory) as s:
        token, _ = tokens.create_api_token(s, people["alice"], "mine")
    sign_in(panel, "alice", "correct horse 9")
    response = panel.post(f"/account/tokens/{token.id}/revoke", data={})
    assert response.status_code == 400
    with session_factory() as s:
        assert s.get(ApiToken, token.id).revoked_at is None  # type: ignore[union-attr]


def test_the_page_has_no_inline_styles_or_scripts(
    panel: t.Any, people: dict[str, Actor]
) -> None:
    sign_in(panel, "alice", "correct horse 9")
    html = submit(panel, "/account/tokens", {"name": "x", "access": "read", "expires": "0"}) \
        .get_data(as_text=True)
    assert " style=" not in html and "<style" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+=", html)
