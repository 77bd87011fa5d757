"""The JSON API under /api/v1, driven over HTTP with real bearer tokens and a real database."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import (
    ApiToken,
    AuditEvent,
    Autoresponder,
    Domain,
    Forwarder,
    ForwarderDestination,
    Mailbox,
    PanelUser,
)
from mailadmin.services import domains, mailboxes, tokens
from mailadmin.services.context import Actor
from mailadmin.services.throttle import ThrottlePolicy

from .factories import actor, small_package_world
from .web import sign_in

PASSWORD = "Tr0ub4dor&3-horse"
API = "/api/v1"


@pytest.fixture
def api_app(app: t.Any) -> t.Any:
    """The app with the API registered (until create_app does it; then this is a no-op)."""
    from panel.api import bp

    if "api" not in app.blueprints:
        app.register_blueprint(bp)
    return app


@pytest.fixture
def api(api_app: t.Any) -> t.Any:
    return api_app.test_client()


class World:
    """Panel users and a way to mint their API tokens through the service."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def actor(self, name: str) -> Actor:
        return actor(self.session_factory, name)

    def token(self, name: str, scopes: list[str] | None = None, **kw: t.Any) -> str:
        with transaction(self.session_factory) as s:
            _, text = tokens.create_api_token(s, self.actor(name), f"{name} test", scopes, **kw)
        return text

    def run(self, fn: t.Callable[..., t.Any], name: str, *args: t.Any, **kw: t.Any) -> t.Any:
        with transaction(self.session_factory) as s:
            return fn(s, self.actor(name), *args, **kw)

    def counts(self) -> tuple[int, ...]:
        with self.session_factory() as s:
            # Every API call is audited ("api.call"), refused ones too: count the other events.
            return (*(
                s.scalar(select(func.count()).select_from(model)) or 0
                for model in (Domain, Mailbox, Forwarder, ForwarderDestination, Autoresponder)
            ), s.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action != "api.call")) or 0)


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any, api_app: t.Any) -> World:
    """rita (reseller) sells to alice (small package) and bert; rob (reseller) to carl."""
    small_package_world(session_factory, make_user)
    return World(session_factory)


def call(client: t.Any, method: str, path: str, token: str | None, body: t.Any = None,
         **kw: t.Any) -> t.Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        kw["data"] = body if isinstance(body, str | bytes) else json.dumps(body)
        kw["content_type"] = "application/json"
    return client.open(API + path, method=method, headers=headers, **kw)


def error_of(response: t.Any) -> dict[str, t.Any]:
    assert response.is_json, response.get_data(as_text=True)
    error: dict[str, t.Any] = response.get_json()["error"]
    assert set(error) >= {"code", "message", "field"}
    return error


# --- Happy paths --------------------------------------------------------------------------


def test_domains_end_to_end(api: t.Any, world: World) -> None:
    token = world.token("alice")
    created = call(api, "POST", "/domains", token, {"name": "Bücher.example"})
    assert created.status_code == 201, created.get_json()
    assert created.get_json() == {
        "name": "xn--bcher-kva.example", "unicode_name": "bücher.example", "owner": "alice",
        "default_quota": None, "default_imap": True, "default_pop3": True, "default_smtp": False,
        "catchall_action": "reject", "catchall_reject_reason": None, "catchall_target": None,
        "pending": False,
        "verification": {"pending": False, "mode": "none", "record_name": None, "token": None,
                         "checked_at": None, "note": None, "instructions": ""},
    }

    listed = call(api, "GET", "/domains", token).get_json()
    assert listed["total"] == 1 and listed["page"] == 1 and listed["pages"] == 1
    assert listed["per_page"] == 50
    assert [d["unicode_name"] for d in listed["items"]] == ["bücher.example"]

    defaults = call(api, "PUT", "/domains/bücher.example/defaults", token,
                    {"quota": "500M", "imap": True, "pop3": False, "smtp": False})
    assert defaults.status_code == 200, defaults.get_json()
    assert defaults.get_json()["default_quota"] == 500 * 1024**2
    assert defaults.get_json()["default_pop3"] is False

    reject = call(api, "PUT", "/domains/xn--bcher-kva.example/catchall", token,
                  {"action": "reject", "reject_reason": "Nobody by that name here"})
    assert reject.get_json()["catchall_reject_reason"] == "Nobody by that name here"
    deliver = call(api, "PUT", "/domains/bücher.example/catchall", token,
                   {"action": "deliver", "target": "Office@Elsewhere.example"})
    assert deliver.status_code == 200
    assert deliver.get_json()["catchall_action"] == "deliver"
    assert deliver.get_json()["catchall_target"] == "office@elsewhere.example"

    assert call(api, "DELETE", "/domains/bücher.example", token).status_code == 204
    assert call(api, "GET", "/domains", token).get_json()["total"] == 0


def test_mailboxes_end_to_end(api: t.Any, world: World, session_factory: t.Any) -> None:
    token = world.token("alice")
    assert call(api, "POST", "/domains", token, {"name": "example.org"}).status_code == 201
    created = call(api, "POST", "/mailboxes", token,
                   {"address": "Info@example.org", "password": PASSWORD, "quota": "1G"})
    assert created.status_code == 201, created.get_json()
    box = created.get_json()
    assert box["address"] == "info@example.org"
    assert box["quota"] == 1024**3
    assert (box["imap"], box["pop3"], box["smtp"]) == (True, True, False)
    assert call(api, "GET", "/mailboxes/info@example.org", token).get_json() == box

    patched = call(api, "PATCH", "/mailboxes/info@example.org", token,
                   {"quota": 2 * 1024**3, "pop3": False})
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["quota"] == 2 * 1024**3
    assert patched.get_json()["pop3"] is False and patched.get_json()["imap"] is True

    with session_factory() as s:
        old_hash = s.scalars(select(Mailbox.password_hash)).one()
    new_password = "An0ther-long-passphrase"
    assert call(api, "PUT", "/mailboxes/info@example.org/password", token,
                {"password": new_password}).status_code == 204
    with session_factory() as s:
        new_hash = s.scalars(select(Mailbox.password_hash)).one()
    assert new_hash != old_hash and new_password not in new_hash
    assert new_hash.startswith("{SHA512-CRYPT}")

    suspended = call(api, "POST", "/mailboxes/info@example.org/suspend", token,
                     {"login": True, "outgoing": True}).get_json()
    assert (suspended["suspend_login"], suspended["suspend_incoming"],
            suspended["suspend_outgoing"]) == (True, False, True)
    resumed = call(api, "POST", "/mailboxes/info@example.org/resume", token,
                   {"login": True}).get_json()
    assert (resumed["suspend_login"], resumed["suspend_incoming"],
            resumed["suspend_outgoing"]) == (False, False, True)

    responder = call(api, "PUT", "/mailboxes/info@example.org/autoresponder", token, {
        "subject": "Away", "body": "Back on Monday.\nRegards",
        "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-08T00:00:00+00:00",
        "interval_days": 3,
    })
    assert responder.status_code == 200, responder.get_json()
    assert responder.get_json()["address"] == "info@example.org"
    assert responder.get_json()["interval_days"] == 3
    assert responder.get_json()["starts_at"].startswith("2030-01-01T00:00:00")
    assert call(api, "DELETE", "/mailboxes/info@example.org/autoresponder",
                token).status_code == 204

    call(api, "POST", "/mailboxes", token, {"address": "sales@example.org", "password": PASSWORD,
                                            "quota": "500M"})
    page = call(api, "GET", "/mailboxes?sort=quota&per_page=1&domain=example.org", token)
    assert page.status_code == 200
    data = page.get_json()
    assert (data["total"], data["pages"], data["per_page"]) == (2, 2, 1)
    assert [m["address"] for m in data["items"]] == ["sales@example.org"]
    searched = call(api, "GET", "/mailboxes?search=inf", token).get_json()
    assert [m["address"] for m in searched["items"]] == ["info@example.org"]
    descending = call(api, "GET", "/mailboxes?sort=address&descending=true", token).get_json()
    assert [m["address"] for m in descending["items"]] == ["sales@example.org", "info@example.org"]

    wrong = call(api, "DELETE", "/mailboxes/info@example.org", token,
                 {"confirm": "sales@example.org"})
    assert wrong.status_code == 422 and error_of(wrong)["field"] == "confirm"
    assert call(api, "DELETE", "/mailboxes/info@example.org", token,
                {"confirm": "info@example.org"}).status_code == 204
    gone = call(api, "GET", "/mailboxes/info@example.org", token)
    assert gone.status_code == 404 and error_of(gone)["code"] == "not_found"


def test_forwarders_end_to_end(api: t.Any, world: World) -> None:
    token = world.token("alice")
    call(api, "POST", "/domains", token, {"name": "example.org"})
    call(api, "POST", "/mailboxes", token, {"address": "info@example.org", "password": PASSWORD})
    made = call(api, "PUT", "/forwarders/team@example.org", token,
                {"destinations": ["info@example.org", "Boss@Bücher.example"]})
    assert made.status_code == 200, made.get_json()
    assert made.get_json() == {
        "address": "team@example.org", "unicode_address": "team@example.org",
        "destinations": ["info@example.org", "boss@bücher.example"], "keep_copy": False,
    }
    own = call(api, "PUT", "/forwarders/info@example.org", token,
               {"destinations": ["me@elsewhere.example"], "keep_copy": True})
    assert own.status_code == 200 and own.get_json()["keep_copy"] is True

    listed = call(api, "GET", "/forwarders", token).get_json()
    assert [(f["address"], f["is_mailbox"]) for f in listed["items"]] == [
        ("info@example.org", True), ("team@example.org", False)]
    assert listed["total"] == 2

    assert call(api, "DELETE", "/forwarders/team@example.org", token).status_code == 204
    assert call(api, "GET", "/forwarders?search=team", token).get_json()["total"] == 0


# --- Refusals: stable codes, database unchanged -------------------------------------------


def _prepare_alice(api: t.Any, token: str) -> None:
    for name in ("one.example", "two.example"):
        assert call(api, "POST", "/domains", token, {"name": name}).status_code == 201
    assert call(api, "POST", "/mailboxes", token,
                {"address": "info@one.example", "password": PASSWORD}).status_code == 201
    assert call(api, "PUT", "/forwarders/a@one.example", token,
                {"destinations": ["b@one.example"]}).status_code == 200


REFUSALS = [
    pytest.param("POST", "/domains", {"name": "three.example"}, 422, "limit_reached",
                 "Package allows 2 domains; you have 2", id="package-limit"),
    pytest.param("POST", "/mailboxes", {"address": "x;rm -rf ~@one.example", "password": PASSWORD},
                 422, "invalid_name", "may not contain", id="hostile-name"),
    pytest.param("POST", "/domains", {"name": "ex$ample.org"}, 422, "invalid_name",
                 "domain may not contain", id="hostile-domain"),
    pytest.param("POST", "/mailboxes", {"address": "INFO@one.example", "password": PASSWORD},
                 409, "conflict", "exists already", id="duplicate"),
    pytest.param("PUT", "/forwarders/b@one.example", {"destinations": ["a@one.example"]},
                 409, "conflict", "forwarding loop", id="forwarder-loop"),
    pytest.param("POST", "/mailboxes", {"address": "new@one.example", "password": "short"},
                 422, "weak_password", "", id="weak-password"),
    pytest.param("PATCH", "/mailboxes/info@one.example", {"smtp": True}, 422, "limit_reached",
                 "does not include SMTP", id="protocol-not-in-package"),
    pytest.param("PATCH", "/mailboxes/info@one.example", {"quota": "3G"}, 422, "limit_reached",
                 "at most 2 GiB per mailbox", id="quota-limit"),
    pytest.param("DELETE", "/domains/one.example", None, 409, "conflict", "remove them first",
                 id="domain-in-use"),
    pytest.param("GET", "/mailboxes?sort=size", None, 422, "invalid", "", id="bad-sort"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "message"), REFUSALS)
def test_refusals_have_stable_codes_and_change_nothing(
    api: t.Any, world: World, method: str, path: str, body: t.Any, status: int, code: str,
    message: str,
) -> None:
    token = world.token("alice")
    _prepare_alice(api, token)
    before = world.counts()
    response = call(api, method, path, token, body)
    assert response.status_code == status, response.get_json()
    error = error_of(response)
    assert error["code"] == code
    assert message in error["message"]
    assert world.counts() == before


@pytest.mark.parametrize(("body", "field"), [
    ({"address": "a@one.example", "password": PASSWORD, "colour": "blue"}, "colour"),
    ({"address": "a@one.example", "password": PASSWORD, "quota": True}, "quota"),
    ({"address": "a@one.example", "password": PASSWORD, "quota": 1.5}, "quota"),
    ({"address": "a@one.example", "password": PASSWORD, "quota": "lots"}, "quota"),
    ({"address": "a@one.example", "password": PASSWORD, "imap": "yes"}, "imap"),
    ({"address": 42, "password": PASSWORD}, "address"),
    ({"password": PASSWORD}, "address"),
])
def test_malformed_bodies_are_422_with_the_field(
    api: t.Any, world: World, body: dict[str, t.Any], field: str
) -> None:
    token = world.token("alice")
    call(api, "POST", "/domains", token, {"name": "one.example"})
    before = world.counts()
    response = call(api, "POST", "/mailboxes", token, body)
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("invalid", field)
    assert error["details"][0]["field"] == field
    assert world.counts() == before


def test_invalid_json_and_empty_suspension_are_refused(api: t.Any, world: World) -> None:
    token = world.token("alice")
    broken = call(api, "POST", "/domains", token, b"{not json")
    assert broken.status_code == 422 and error_of(broken)["code"] == "invalid"
    call(api, "POST", "/domains", token, {"name": "one.example"})
    call(api, "POST", "/mailboxes", token, {"address": "a@one.example", "password": PASSWORD})
    nothing = call(api, "POST", "/mailboxes/a@one.example/suspend", token, {})
    assert nothing.status_code == 422
    assert "at least one" in error_of(nothing)["message"]


# --- Tenancy ------------------------------------------------------------------------------


def test_a_customer_cannot_reach_another_customers_mail(api: t.Any, world: World) -> None:
    alice = world.token("alice")
    carl = world.token("carl")
    bert = world.token("bert")
    call(api, "POST", "/domains", alice, {"name": "alice.example"})
    call(api, "POST", "/mailboxes", alice, {"address": "info@alice.example", "password": PASSWORD})
    before = world.counts()
    for token in (carl, bert):
        attempts = [
            call(api, "GET", "/mailboxes/info@alice.example", token),
            call(api, "PATCH", "/mailboxes/info@alice.example", token, {"quota": "1M"}),
            call(api, "DELETE", "/mailboxes/info@alice.example", token,
                 {"confirm": "info@alice.example"}),
            call(api, "DELETE", "/domains/alice.example", token),
            call(api, "PUT", "/forwarders/x@alice.example", token,
                 {"destinations": ["thief@evil.example"]}),
            call(api, "POST", "/mailboxes", token,
                 {"address": "new@alice.example", "password": PASSWORD}),
            call(api, "GET", "/mailboxes?domain=alice.example", token),
            call(api, "POST", "/domains", token, {"name": "x.example", "customer": "alice"}),
        ]
        assert [r.status_code for r in attempts] == [404] * len(attempts)
        assert {error_of(r)["code"] for r in attempts} == {"not_found"}
        assert call(api, "GET", "/mailboxes", token).get_json()["total"] == 0
        assert call(api, "GET", "/domains", token).get_json()["total"] == 0
        # Taking an existing name is a conflict, which says only that the name is in use.
        taken = call(api, "POST", "/domains", token, {"name": "alice.example"})
        assert taken.status_code == 409
    assert world.counts() == before


def test_a_reseller_token_reaches_only_its_customers(api: t.Any, world: World) -> None:
    rita = world.token("rita")
    rob = world.token("rob")
    assert call(api, "POST", "/domains", rita,
                {"name": "alice.example", "customer": "alice"}).status_code == 201
    assert call(api, "POST", "/domains", rob,
                {"name": "carl.example", "customer": "carl"}).status_code == 201
    mine = call(api, "POST", "/domains", rita, {"name": "x.example", "customer": "carl"})
    assert mine.status_code == 404 and error_of(mine)["field"] == "customer"
    unnamed = call(api, "POST", "/domains", rita, {"name": "y.example"})
    assert unnamed.status_code == 422
    assert (error_of(unnamed)["code"], error_of(unnamed)["field"]) == ("invalid", "customer")

    assert [d["name"] for d in call(api, "GET", "/domains", rita).get_json()["items"]] == [
        "alice.example"]
    assert call(api, "POST", "/mailboxes", rita,
                {"address": "info@alice.example", "password": PASSWORD}).status_code == 201
    assert call(api, "GET", "/mailboxes/info@alice.example", rob).status_code == 404
    assert call(api, "DELETE", "/domains/alice.example", rob).status_code == 404
    assert call(api, "GET", "/mailboxes", rob).get_json()["total"] == 0


# --- Authentication -----------------------------------------------------------------------


def test_requests_without_a_valid_token_are_401(
    api: t.Any, world: World, session_factory: t.Any
) -> None:
    good = world.token("alice")
    prefix = good.split(".")[0]
    for token in (None, "", "nonsense", good + "x", prefix + "." + "A" * 43, "abc.def"):
        response = call(api, "GET", "/domains", token)
        assert response.status_code == 401, token
        assert error_of(response)["code"] == "authentication_failed"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    basic = api.get(API + "/domains", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert basic.status_code == 401
    assert call(api, "GET", "/domains", good).status_code == 200


def test_revoked_expired_and_suspended_tokens_are_refused(
    api: t.Any, world: World, session_factory: t.Any
) -> None:
    revoked = world.token("alice")
    assert call(api, "GET", "/domains", revoked).status_code == 200
    with session_factory() as s:
        token_id = s.scalars(select(ApiToken.id)).one()
    world.run(tokens.revoke_api_token, "alice", token_id)
    response = call(api, "GET", "/domains", revoked)
    assert response.status_code == 401 and error_of(response)["code"] == "authentication_failed"

    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    expiring = world.token("bert", expires_at=soon)
    with transaction(session_factory) as s:
        s.scalars(select(ApiToken).where(ApiToken.prefix == expiring.split(".")[0])).one() \
            .expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    assert call(api, "GET", "/domains", expiring).status_code == 401

    carl = world.token("carl")
    with transaction(session_factory) as s:
        s.scalars(select(PanelUser).where(PanelUser.username == "carl")).one().is_suspended = True
    suspended = call(api, "GET", "/domains", carl)
    assert suspended.status_code == 401 and "suspended" in error_of(suspended)["message"]


def test_the_session_cookie_alone_is_not_accepted(api: t.Any, world: World) -> None:
    assert sign_in(api, "alice", "correct horse 9").status_code == 302
    assert api.get("/dashboard").status_code == 200  # signed in for the panel
    response = api.get(API + "/domains")
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    posted = api.post(API + "/domains", json={"name": "cookie.example"})
    assert posted.status_code == 401
    assert world.counts()[0] == 0


def test_posts_need_no_csrf_token_with_a_bearer_token(api: t.Any, world: World) -> None:
    # CSRF protection is on in this app: a panel form posted without its token is refused...
    assert api.post("/logout", data={}).status_code == 400
    # ...while the API, which accepts no cookie, is exempt.
    response = call(api, "POST", "/domains", world.token("alice"), {"name": "one.example"})
    assert response.status_code == 201


def test_a_read_only_token_cannot_change_anything(api: t.Any, world: World) -> None:
    reader = world.token("alice", ["read"])
    assert call(api, "GET", "/domains", reader).status_code == 200
    before = world.counts()
    refused = call(api, "POST", "/domains", reader, {"name": "one.example"})
    assert refused.status_code == 403 and error_of(refused)["code"] == "forbidden"
    assert world.counts() == before


def test_last_use_is_recorded_and_changes_are_audited_as_api(
    api: t.Any, world: World, session_factory: t.Any
) -> None:
    token = world.token("alice")
    with session_factory() as s:
        assert s.scalars(select(ApiToken.last_used_at)).one() is None
    call(api, "POST", "/domains", token, {"name": "one.example"})
    with session_factory() as s:
        assert s.scalars(select(ApiToken.last_used_at)).one() is not None
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "domain.create")).one()
        assert (event.channel, event.actor, event.source) == ("api", "alice", "127.0.0.1")


def test_failed_authentications_are_rate_limited_per_address(
    api_app: t.Any, api: t.Any, world: World
) -> None:
    api_app.extensions["mailadmin"].throttle_policy = ThrottlePolicy(max_failures_per_address=3)
    good = world.token("alice")
    statuses = [call(api, "GET", "/domains", f"{'0' * 12}.{'x' * 43}").status_code
                for _ in range(3)]
    assert statuses == [401, 401, 429]
    locked = call(api, "GET", "/domains", good)
    assert locked.status_code == 429
    assert error_of(locked)["code"] == "rate_limited"
    assert int(locked.headers["Retry-After"]) > 0
    # Another address is not affected.
    other = call(api, "GET", "/domains", good, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200


def test_missing_header_does_not_count_as_a_failure(api_app: t.Any, api: t.Any,
                                                    world: World) -> None:
    api_app.extensions["mailadmin"].throttle_policy = ThrottlePolicy(max_failures_per_address=2)
    for _ in range(5):
        assert call(api, "GET", "/domains", None).status_code == 401
    assert call(api, "GET", "/domains", world.token("alice")).status_code == 200


# --- Errors outside the operations ----------------------------------------------------------


def test_unknown_routes_and_methods_answer_in_json(api: t.Any, world: World) -> None:
    token = world.token("alice")
    missing = call(api, "GET", "/nothing-here", token)
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong = call(api, "PATCH", "/domains", token, {})
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"
    # The panel's own pages keep their HTML error page.
    page = api.get("/no-such-page")
    assert page.status_code == 404 and not page.is_json
    assert "<html" in page.get_data(as_text=True)


def test_an_unexpected_failure_is_a_json_500_and_rolls_back(
    api_app: t.Any, api: t.Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = world.token("alice")
    api_app.config["PROPAGATE_EXCEPTIONS"] = False
    real = domains.add_domain

    def broken(*args: t.Any, **kw: t.Any) -> t.Any:
        real(*args, **kw)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(domains, "add_domain", broken)
    before = world.counts()
    response = call(api, "POST", "/domains", token, {"name": "one.example"})
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error" and "fire" not in error["message"]
    assert world.counts() == before


# --- OpenAPI ------------------------------------------------------------------------------


def _resolve(document: dict[str, t.Any], ref: str) -> t.Any:
    node: t.Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: t.Any) -> t.Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_openapi_document_is_generated_from_the_schemas(api_app: t.Any, api: t.Any) -> None:
    from panel.api import schemas
    from panel.api.routing import OPERATIONS

    response = api.get(API + "/openapi.json")  # public: no token
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "<prefix>.<secret>",
        "description": "An API token made in the panel; shown once when created.",
    }
    assert document["security"] == [{"bearer": []}]
    expected = {
        ("/api/v1/domains", "get"), ("/api/v1/domains", "post"),
        ("/api/v1/domains/{name}", "delete"), ("/api/v1/domains/{name}/catchall", "put"),
        ("/api/v1/domains/{name}", "get"), ("/api/v1/domains/{name}/verify", "post"),
        ("/api/v1/domains/{name}/approve", "post"),
        ("/api/v1/domains/{name}/dns", "get"), ("/api/v1/domains/{name}/dns/check", "post"),
        ("/api/v1/domains/{name}/defaults", "put"),
        ("/api/v1/mailboxes", "get"), ("/api/v1/mailboxes", "post"),
        ("/api/v1/mailboxes/{address}", "get"), ("/api/v1/mailboxes/{address}", "patch"),
        ("/api/v1/mailboxes/{address}", "delete"),
        ("/api/v1/mailboxes/{address}/password", "put"),
        ("/api/v1/mailboxes/{address}/suspend", "post"),
        ("/api/v1/mailboxes/{address}/resume", "post"),
        ("/api/v1/mailboxes/{address}/autoresponder", "put"),
        ("/api/v1/mailboxes/{address}/autoresponder", "delete"),
        ("/api/v1/forwarders", "get"), ("/api/v1/forwarders/{address}", "put"),
        ("/api/v1/forwarders/{address}", "delete"),
        ("/api/v1/forwarders/{address}/destinations", "post"), ("/api/v1/openapi.json", "get"),
        ("/api/v1/diagnose", "post"),
        ("/api/v1/mailboxes/{address}/usage/recalculate", "post"),
        ("/api/v1/resolve/{address}", "get"),
        ("/api/v1/help", "get"), ("/api/v1/help/{slug}", "get"),
        ("/api/v1/mailboxes/{address}/app-passwords", "get"),
        ("/api/v1/mailboxes/{address}/app-passwords", "post"),
        ("/api/v1/mailboxes/{address}/app-passwords/{app_password_id}", "delete"),
        ("/api/v1/mailboxes/{address}/app-passwords-only", "put"),
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == expected
    # Every documented operation is a real route, and every API route is documented.
    routes = {
        (rule.rule, method.lower()) for rule in api_app.url_map.iter_rules()
        if rule.endpoint.startswith("api.") for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert {(p.replace("{", "<").replace("}", ">"), m) for p, m in documented} == routes
    assert len(OPERATIONS) == len(expected)

    components = document["components"]["schemas"]
    # The components are pydantic's own schemas of the request models, not hand-written.
    assert components["MailboxCreate"] == schemas.MailboxCreate.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    assert components["MailboxCreate"]["additionalProperties"] is False
    create = document["paths"]["/api/v1/mailboxes"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MailboxCreate"}
    assert "201" in create["responses"] and "422" in create["responses"]
    listing = document["paths"]["/api/v1/mailboxes"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "page", "per_page", "search", "domain", "sort", "descending"}
    sort = next(p for p in listing["parameters"] if p["name"] == "sort")
    assert sort["schema"]["enum"] == ["address", "quota", "usage", "status", "created"]
    assert document["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    for ref in _refs(document):
        assert _resolve(document, ref) is not None, ref


# --- Hostile and odd addresses ------------------------------------------------------------

HOSTILE = st.text(
    alphabet=st.sampled_from(
        list("abcXYZ019.-_+") + list(" \t\n\r\x00\"'`$;|&<>(){}[]*?!#%\\/:,=@~^")
        + ["é", "ß", "\u212a", "\u0130", "\u200b", "\uff41", "🙂", "\ufeff"]
    ),
    min_size=0, max_size=70,
)
# Plausible names too, so that a good share is accepted and round-trips (or hits a duplicate).
PLAUSIBLE = st.from_regex(r"[ \t]?[A-Za-z0-9_][A-Za-z0-9._+-]{0,70}[ \t]?", fullmatch=True)


@pytest.fixture
def bert_token(world: World) -> str:
    """bert with example.org; made once per test, before hypothesis starts its examples."""
    token = world.token("bert")
    world.run(domains.add_domain, "bert", "example.org")
    return token


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    local=st.one_of(PLAUSIBLE, HOSTILE),
    domain=st.sampled_from(
        ["example.org", "EXAMPLE.org", "example.org.", "xn--nxasmq6b.example", "other.example"]
    ),
)
def test_hostile_addresses_are_stored_exactly_or_refused_cleanly(
    api: t.Any, world: World, bert_token: str, local: str, domain: str
) -> None:
    token = bert_token
    address = f"{local}@{domain}"
    before = world.counts()
    response = call(api, "POST", "/mailboxes", token, {"address": address, "password": PASSWORD})
    event(f"HTTP {response.status_code}")
    if response.status_code == 201:
        created = response.get_json()
        stored_local, _, stored_domain = created["address"].partition("@")
        assert stored_local == local.strip(" \t").lower()
        assert stored_domain == "example.org"
        fetched = call(api, "GET", "/mailboxes/" + quote(created["address"], safe="@"), token)
        assert fetched.status_code == 200
        assert fetched.get_json() == created
        assert world.counts()[1] == before[1] + 1
    else:
        assert 400 <= response.status_code < 500, response.status_code
        error = error_of(response)
        assert error["code"] in {"invalid", "invalid_name", "conflict", "not_found"}
        assert error["message"]
        assert world.counts() == before


def test_service_and_api_agree_on_a_mailbox(api: t.Any, world: World) -> None:
    """The API shows what the service stored, field for field."""
    token = world.token("alice")
    world.run(domains.add_domain, "alice", "one.example")
    box = world.run(mailboxes.create_mailbox, "alice", "Post@one.example", PASSWORD, quota=12345)
    shown = call(api, "GET", "/mailboxes/post@one.example", token).get_json()
    assert (shown["address"], shown["quota"], shown["imap"], shown["pop3"], shown["smtp"]) == (
        "post@one.example", box.quota, box.imap, box.pop3, box.smtp)


def test_openapi_document_passes_the_validator(api: t.Any) -> None:
    # A test dependency (pyproject [test]): imported, never skipped, so CI always validates.
    import openapi_spec_validator

    openapi_spec_validator.validate(api.get(API + "/openapi.json").get_json())
