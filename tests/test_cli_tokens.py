"""`mailadmin --as NAME token create|list|revoke`: the token is printed once and works."""

from __future__ import annotations

import datetime as dt
import json
import re
import typing as t

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from mailadmin.models import ApiToken, AuditEvent

TOKEN_SHAPE = re.compile(r"^[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$", re.MULTILINE)


@pytest.fixture
def cli(tmp_path: t.Any, sqlite_engine: t.Any, monkeypatch: pytest.MonkeyPatch) -> t.Any:
    from mailadmin.cli import main

    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()

    def _run(*args: str) -> t.Any:
        return runner.invoke(main, ["--instance", str(tmp_path / "inst"), *args])

    return _run


@pytest.fixture
def people(make_user: t.Any) -> None:
    make_user("rita", "reseller")
    make_user("alice", "customer", reseller="rita")
    make_user("bert", "customer", reseller="rita")


@pytest.mark.usefixtures("people")
def test_create_prints_the_token_once_and_it_works_on_the_api(
    cli: t.Any, client: t.Any, session_factory: t.Any
) -> None:
    made = cli("--as", "alice", "token", "create", "backup script")
    assert made.exit_code == 0, made.output
    printed = TOKEN_SHAPE.findall(made.output)
    assert len(printed) == 1
    assert "shown only now" in made.output
    token = printed[0]
    answer = client.get("/api/v1/domains", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    # Only the hash is kept, and list never shows the secret again.
    listed = cli("--as", "alice", "token", "list")
    assert listed.exit_code == 0
    assert "backup script" in listed.output and "active" in listed.output
    assert token.split(".")[1] not in listed.output
    with session_factory() as s:
        row = s.scalars(select(ApiToken)).one()
        assert token.split(".")[1] not in row.secret_hash
        assert row.scopes == "read write" and row.expires_at is None
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.create")).one()
        assert (event.actor, event.channel) == ("alice", "cli")


@pytest.mark.usefixtures("people")
def test_read_only_and_expiry(cli: t.Any, client: t.Any, session_factory: t.Any) -> None:
    made = cli("--as", "rita", "token", "create", "monitor", "--read-only", "--expires-days",
               "30", "--json")
    assert made.exit_code == 0, made.output
    data = json.loads(made.output)
    assert data["scopes"] == ["read"] and data["state"] == "active"
    assert TOKEN_SHAPE.fullmatch(data["token"])
    expires = dt.datetime.fromisoformat(data["expires_at"])
    assert dt.timedelta(days=29, hours=23) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(
        days=30)
    auth = {"Authorization": f"Bearer {data['token']}"}
    assert client.get("/api/v1/domains", headers=auth).status_code == 200
    refused = client.post("/api/v1/domains", json={"name": "x.example", "customer": "alice"},
                          headers=auth)
    assert refused.status_code == 403
    listed = json.loads(cli("--as", "rita", "token", "list", "--json").output)
    assert [(i["name"], i["scopes"]) for i in listed["items"]] == [("monitor", ["read"])]
    assert "token" not in listed["items"][0]
    # Expiry bounds and a bad name are refused before anything is stored.
    assert cli("--as", "rita", "token", "create", "x", "--expires-days", "0").exit_code == 2
    bad = cli("--as", "rita", "token", "create", "two\nlines", "--json")
    assert bad.exit_code == 1 and json.loads(bad.output)["error"]["field"] == "name"
    with session_factory() as s:
        assert len(s.scalars(select(ApiToken)).all()) == 1


@pytest.mark.usefixtures("people")
def test_revoke_own_token_only(cli: t.Any, client: t.Any, session_factory: t.Any) -> None:
    alice = json.loads(cli("--as", "alice", "token", "create", "a", "--json").output)
    bert = json.loads(cli("--as", "bert", "token", "create", "b", "--json").output)
    # Another customer's token id, and a guessed one, are not found; nothing changes.
    for who, token_id in (("bert", alice["id"]), ("rita", alice["id"]), ("alice", 999)):
        refused = cli("--as", who, "token", "revoke", str(token_id), "--json")
        assert refused.exit_code == 1, (who, refused.output)
        assert json.loads(refused.output)["error"]["code"] == "not_found"
    with session_factory() as s:
        assert s.scalars(select(ApiToken.revoked_at)).all() == [None, None]
    revoked = cli("--as", "alice", "token", "revoke", str(alice["id"]))
    assert revoked.exit_code == 0, revoked.output
    assert "Revoked API token 'a'" in revoked.output
    assert client.get("/api/v1/domains", headers={
        "Authorization": f"Bearer {alice['token']}"}).status_code == 401
    assert client.get("/api/v1/domains", headers={
        "Authorization": f"Bearer {bert['token']}"}).status_code == 200
    listed = json.loads(cli("--as", "alice", "token", "list", "--json").output)
    assert [i["state"] for i in listed["items"]] == ["revoked"]
    with session_factory() as s:
        assert s.scalars(select(AuditEvent.actor).where(
            AuditEvent.action == "api_token.revoke")).all() == ["alice"]


def test_a_token_needs_a_panel_user(cli: t.Any, make_user: t.Any) -> None:
    make_user("alice", "customer")
    for args in (("token", "create", "x"), ("token", "list"), ("token", "revoke", "1")):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "--as NAME" in result.output
    unknown = cli("--as", "nobody", "token", "create", "x", "--json")
    assert unknown.exit_code == 1
    assert "nobody" in json.loads(unknown.output)["error"]["message"]
    assert "No API tokens." in cli("--as", "alice", "token", "list").output
