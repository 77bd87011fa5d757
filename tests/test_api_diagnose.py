"""POST /api/v1/diagnose explains an error with the same classifier as the page and the CLI."""

from __future__ import annotations

import typing as t

from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.services import tokens
from mailadmin.services.accounts import get_user
from mailadmin.services.context import Actor

BOUNCE = """This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  friend@remote.example
    SMTP error from remote mail server after end of data:
    503 valid RCPT command must precede DATA
"""


def token_for(factory: sessionmaker[Session], name: str) -> str:
    with transaction(factory) as s:
        _, text = tokens.create_api_token(s, Actor.for_user(get_user(s, name), "panel"), "diag")
    return text


def test_diagnose_explains_503(client: t.Any, make_user: t.Any, session_factory: t.Any) -> None:
    make_user("alice")
    headers = {"Authorization": f"Bearer {token_for(session_factory, 'alice')}"}
    response = client.post("/api/v1/diagnose", headers=headers,
                           json={"text": BOUNCE, "client": "thunderbird"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["recognised"] is True
    finding = body["findings"][0]
    assert finding["family"] == "rcpt_before_data"
    assert finding["replycode"] == "503"
    assert finding["client_fix"]
    assert any(line["decisive"] for line in finding["excerpt"]["lines"])

    odd = client.post("/api/v1/diagnose", headers=headers, json={"text": "\x00\x01 nothing"})
    assert odd.status_code == 200 and odd.get_json() == {"recognised": False, "findings": []}
    bad = client.post("/api/v1/diagnose", headers=headers, json={"text": "x", "client": "lynx"})
    assert bad.status_code == 422
    assert client.post("/api/v1/diagnose", json={"text": BOUNCE}).status_code == 401
    assert "/diagnose" in str(client.get("/api/v1/openapi.json").get_json()["paths"])
