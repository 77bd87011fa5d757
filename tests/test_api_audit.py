"""Every API call made with a token is audited: successful ones in the request's transaction,
refused ones in a short transaction of their own (the request's is rolled back)."""

from __future__ import annotations

import json
import typing as t
from collections.abc import Iterator

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import ApiToken, AuditEvent, Domain, Role
from mailadmin.services import audit, domains, tokens

from .factories import actor

API = "/api/v1"


@pytest.fixture
def api(app: t.Any) -> t.Any:
    return app.test_client()


@pytest.fixture
def people(make_user: t.Any, session_factory: sessionmaker[Session]) -> dict[str, t.Any]:
    """rita (reseller) with alice; rob (reseller) with carl; alice owns alice.example."""
    make_user("root", "admin")
    make_user("rita", "reseller")
    make_user("rob", "reseller")
    make_user("alice", "customer", reseller="rita")
    make_user("carl", "customer", reseller="rob")
    with transaction(session_factory) as s:
        domains.add_domain(s, actor(session_factory, "alice"), "alice.example")
        domains.add_domain(s, actor(session_factory, "carl"), "carl.example")
    found: dict[str, t.Any] = {}
    for name in ("root", "rita", "rob", "alice", "carl"):
        found[name] = actor(session_factory, name)
        with transaction(session_factory) as s:
            found[f"{name}_token"] = tokens.create_api_token(s, found[name], "t")[1]
    with transaction(session_factory) as s:
        found["alice_read"] = tokens.create_api_token(s, found["alice"], "ro", ["read"])[1]
    return found


def call(client: t.Any, method: str, path: str, token: str | None, body: t.Any = None) -> t.Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kw: dict[str, t.Any] = {}
    if body is not None:
        kw = {"data": json.dumps(body), "content_type": "application/json"}
    return client.open(API + path, method=method, headers=headers, **kw)


def api_events(factory: sessionmaker[Session]) -> list[AuditEvent]:
    with factory() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == "api.call")
                              .order_by(AuditEvent.id)))


@pytest.fixture
def commits(app: t.Any) -> Iterator[list[str]]:
    """Each COMMIT on the panel's engine, in order."""
    engine = app.extensions["mailadmin"].engine
    seen: list[str] = []

    def on_commit(connection: t.Any) -> None:
        seen.append("commit")

    event.listen(engine, "commit", on_commit)
    yield seen
    event.remove(engine, "commit", on_commit)


def test_a_successful_call_is_audited_in_its_own_transaction(
    api: t.Any, people: dict[str, t.Any], session_factory: t.Any, commits: list[str]
) -> None:
    token = people["alice_token"]
    created = call(api, "POST", "/domains", token, {"name": "shop.example"})
    assert created.status_code == 201
    # One commit carried both the new domain and the record of the call.
    assert commits == ["commit"]
    listed = call(api, "GET", "/domains?per_page=10", token)
    assert listed.status_code == 200
    events = api_events(session_factory)
    assert [(e.object_label, json.loads(e.after or "{}")["status"]) for e in events] == [
        ("POST /api/v1/domains", 201), ("GET /api/v1/domains", 200)]
    first = events[0]
    assert (first.channel, first.actor, first.object_type) == ("api", "alice", "api")
    assert first.customer_id == people["alice"].customer_id
    assert first.reseller_id == people["rita"].user_id
    after = json.loads(first.after or "{}")
    assert after == {"method": "POST", "path": "/api/v1/domains", "status": 201,
                     "token": token.split(".")[0]}
    assert token.split(".")[1] not in (first.after or "")  # never the secret
    # The change itself was audited too, by the service, in the same transaction.
    with session_factory() as s:
        assert s.scalars(select(AuditEvent.channel).where(
            AuditEvent.action == "domain.create", AuditEvent.object_label == "shop.example"
        )).one() == "api"


@pytest.mark.parametrize(("who", "method", "path", "body", "status"), [
    ("alice", "GET", "/mailboxes/info@carl.example", None, 404),
    ("alice", "DELETE", "/domains/carl.example", None, 404),
    ("alice", "PUT", "/domains/carl.example/catchall", {"action": "discard"}, 404),
    ("alice", "POST", "/domains", {"name": "x.example", "customer": "carl"}, 404),
    ("alice", "POST", "/domains", {"name": "bad name!"}, 422),
    ("alice_read", "POST", "/domains", {"name": "ro.example"}, 403),
    ("rita", "DELETE", "/domains/carl.example", None, 404),
])
def test_a_refused_call_is_audited_and_changes_nothing_else(
    api: t.Any, people: dict[str, t.Any], session_factory: t.Any, who: str, method: str,
    path: str, body: t.Any, status: int,
) -> None:
    with session_factory() as s:
        domains_before = sorted(s.scalars(select(Domain.name)))
        used_before = sorted(map(str, s.scalars(select(ApiToken.last_used_at))))
    response = call(api, method, path, people[f"{who}_token" if who != "alice_read" else who],
                    body)
    assert response.status_code == status, response.get_json()
    events = api_events(session_factory)
    assert len(events) == 1
    owner = "alice" if who.startswith("alice") else who
    assert events[0].actor == owner
    assert json.loads(events[0].after or "{}")["status"] == status
    assert events[0].object_label == f"{method} {API}{path}"
    with session_factory() as s:
        assert sorted(s.scalars(select(Domain.name))) == domains_before
        # The request's own transaction (which noted the token's use) was rolled back.
        assert sorted(map(str, s.scalars(select(ApiToken.last_used_at)))) == used_before


def test_a_failing_call_is_rolled_back_but_its_record_is_kept(
    app: t.Any, api: t.Any, people: dict[str, t.Any], session_factory: t.Any,
    monkeypatch: pytest.MonkeyPatch, commits: list[str],
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    real = domains.add_domain

    def broken(*args: t.Any, **kw: t.Any) -> t.Any:
        real(*args, **kw)  # flushed, then the view fails
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(domains, "add_domain", broken)
    response = call(api, "POST", "/domains", people["alice_token"], {"name": "fire.example"})
    assert response.status_code == 500
    assert commits == ["commit"]  # the audit record's own short transaction, nothing else
    with session_factory() as s:
        assert s.scalar(select(Domain.id).where(Domain.name == "fire.example")) is None
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "domain.create", AuditEvent.object_label == "fire.example")) == 0
    [record] = api_events(session_factory)
    assert json.loads(record.after or "{}")["status"] == 500


def test_calls_without_a_valid_token_are_not_audited_as_calls(
    api: t.Any, people: dict[str, t.Any], session_factory: t.Any
) -> None:
    revoked = people["carl_token"]
    with transaction(session_factory) as s:
        token_id = s.scalars(select(ApiToken.id).where(
            ApiToken.prefix == revoked.split(".")[0])).one()
        tokens.revoke_api_token(s, people["carl"], token_id)
    for token in (None, "nonsense", revoked):
        assert call(api, "GET", "/domains", token).status_code == 401
    # The public document needs no token and is not a token call either.
    assert call(api, "GET", "/openapi.json", None).status_code == 200
    assert api_events(session_factory) == []


def test_who_sees_which_api_calls(api: t.Any, people: dict[str, t.Any],
                                  session_factory: t.Any) -> None:
    for name in ("alice", "carl", "rita", "rob", "root"):
        assert call(api, "GET", "/domains", people[f"{name}_token"]).status_code == 200

    def seen_by(name: str) -> list[str]:
        with session_factory() as s:
            page = audit.list_audit_events(s, people[name], per_page=100)
            return sorted(e.actor for e in page.items if e.action == "api.call")

    assert seen_by("alice") == ["alice"]
    assert seen_by("carl") == ["carl"]
    assert seen_by("rita") == ["alice", "rita"]
    assert seen_by("rob") == ["carl", "rob"]
    assert seen_by("root") == ["alice", "carl", "rita", "rob", "root"]
    assert people["root"].role is Role.ADMIN
