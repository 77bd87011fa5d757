"""App passwords over the JSON API: created once with the password in the answer, listed
without it, revoked; another tenant's token gets 404 and changes nothing."""

from __future__ import annotations

import typing as t

from sqlalchemy import select

from mailadmin.hashing import verify_mailbox_password
from mailadmin.models import AppPassword
from mailadmin.services import domains, mailboxes

from .test_api import PASSWORD, World, api, api_app, call, error_of, world

__all__ = ["api", "api_app", "world"]  # fixtures


def _apps(world: World) -> list[AppPassword]:
    with world.session_factory() as s:
        return list(s.scalars(select(AppPassword).order_by(AppPassword.id)))


def test_app_passwords_over_the_api(api: t.Any, world: World) -> None:
    world.run(domains.add_domain, "alice", "alice.example")
    world.run(mailboxes.create_mailbox, "alice", "anna@alice.example", PASSWORD, pop3=False)
    token = world.token("alice")
    path = "/mailboxes/anna@alice.example/app-passwords"
    made = call(api, "POST", path, token, {"label": "Anna's phone", "protocols": ["imap"]})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert set(body) == {"id", "label", "protocols", "effective_protocols", "created_at",
                         "password"}
    (stored,) = _apps(world)
    assert stored.id == body["id"]
    assert verify_mailbox_password(body["password"], stored.password_hash)

    listed = call(api, "GET", path, token).get_json()
    assert [a["label"] for a in listed["items"]] == ["Anna's phone"]
    assert "password" not in listed["items"][0]
    assert listed["app_passwords_only"] is False and listed["max_app_passwords"] == 8

    refused = call(api, "POST", path, token, {"label": "x", "protocols": ["pop3"]})
    assert refused.status_code == 422 and "may not use POP3" in error_of(refused)["message"]
    taken = call(api, "POST", path, token, {"label": "Anna's phone", "protocols": ["imap"]})
    assert taken.status_code == 409
    unknown = call(api, "POST", path, token, {"label": "x", "protocols": ["ftp"]})
    assert unknown.status_code == 422

    only = call(api, "PUT", "/mailboxes/anna@alice.example/app-passwords-only", token,
                {"enabled": True})
    assert only.status_code == 200 and only.get_json()["app_passwords_only"] is True

    # another customer's token (carl, another reseller's) and bert (same reseller) see nothing
    for other in ("carl", "bert"):
        other_token = world.token(other)
        assert call(api, "GET", path, other_token).status_code == 404
        assert call(api, "POST", path, other_token,
                    {"label": "mine", "protocols": ["imap"]}).status_code == 404
        assert call(api, "DELETE", f"{path}/{body['id']}", other_token).status_code == 404
        assert call(api, "PUT", "/mailboxes/anna@alice.example/app-passwords-only", other_token,
                    {"enabled": False}).status_code == 404
    assert [a.id for a in _apps(world)] == [body["id"]]

    assert call(api, "DELETE", f"{path}/{body['id']}", token).status_code == 204
    assert call(api, "DELETE", f"{path}/{body['id']}", token).status_code == 404
    assert _apps(world) == []
