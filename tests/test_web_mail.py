"""The customer's mail pages, driven through real forms with CSRF tokens."""

from __future__ import annotations

import typing as t

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.models import AuditEvent, Domain, Forwarder, Mailbox

from .web import csrf_token, sign_in, submit

PASSWORD = "Tr0ub4dor&3-horse"


@pytest.fixture
def alice(client: t.Any, make_user: t.Any) -> t.Any:
    make_user("rita", "reseller")
    make_user("alice", "customer", reseller="rita")
    make_user("bert", "customer", reseller="rita")
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    return client


def snapshot(session_factory: sessionmaker[Session]) -> tuple[t.Any, ...]:
    with session_factory() as s:
        return (
            s.scalar(select(func.count()).select_from(Domain)),
            tuple(s.execute(select(Mailbox.local_part, Mailbox.quota, Mailbox.imap, Mailbox.pop3,
                                   Mailbox.smtp, Mailbox.password_hash, Mailbox.suspend_login)
                            .order_by(Mailbox.id)).all()),
            s.scalar(select(func.count()).select_from(Forwarder)),
            s.scalar(select(func.count()).select_from(AuditEvent)),
        )


def test_customer_manages_mail_in_the_browser(alice: t.Any, session_factory: t.Any) -> None:
    added = submit(alice, "/domains/", {"name": "bücher.example"})
    assert added.status_code == 302
    made = submit(alice, "/mailboxes/new", {
        "local_part": "info", "domain": "xn--bcher-kva.example", "password": PASSWORD,
        "confirm": PASSWORD, "quota": "500M", "imap": "y", "pop3": "y", "smtp": "y"})
    assert made.status_code == 302, made.get_data(as_text=True)
    listing = alice.get("/mailboxes").get_data(as_text=True)
    assert "info@bücher.example" in listing and "500 MiB" in listing
    address = "info@xn--bcher-kva.example"
    saved = submit(alice, f"/mailboxes/{address}/settings",
                   {"quota": "2G", "imap": "y", "smtp": "y"}, page=f"/mailboxes/{address}")
    assert saved.status_code == 302
    suspended = submit(alice, f"/mailboxes/{address}/suspensions", {"suspend_outgoing": "y"},
                       page=f"/mailboxes/{address}")
    assert suspended.status_code == 302
    listing = alice.get("/mailboxes").get_data(as_text=True)
    assert 'data-protocol="POP3" data-on="no"' in listing
    assert "2 GiB" in listing and "sending suspended" in listing
    forwarded = submit(alice, "/forwarders/edit", {
        "local_part": "sales", "domain": "xn--bcher-kva.example",
        "destinations": "info@bücher.example\nboss@elsewhere.example"})
    assert forwarded.status_code == 302
    assert "boss@elsewhere.example" in alice.get("/forwarders").get_data(as_text=True)
    audit = alice.get("/audit/").get_data(as_text=True)
    assert "mailbox.suspension" in audit and "forwarder.create" in audit


def test_refusals_show_inline_and_change_nothing(alice: t.Any, session_factory: t.Any) -> None:
    submit(alice, "/domains/", {"name": "a.example"})
    submit(alice, "/mailboxes/new", {"local_part": "info", "domain": "a.example",
                                    "password": PASSWORD, "confirm": PASSWORD})
    before = snapshot(session_factory)
    cases = [
        ({"local_part": "info", "domain": "a.example", "password": PASSWORD, "confirm": PASSWORD},
         "exists already"),
        ({"local_part": "a:b", "domain": "a.example", "password": PASSWORD, "confirm": PASSWORD},
         "may not contain"),
        ({"local_part": "new", "domain": "a.example", "password": "password", "confirm": "password"},
         "password"),
        ({"local_part": "new", "domain": "a.example", "password": PASSWORD, "confirm": PASSWORD,
          "quota": "lots"}, "is not a size"),
    ]
    for data, message in cases:
        response = submit(alice, "/mailboxes/new", data)
        assert response.status_code == 422, data
        assert message in response.get_data(as_text=True), (data, response.get_data(as_text=True)[-3000:])
    loop1 = submit(alice, "/forwarders/edit", {"local_part": "x", "domain": "a.example",
                                               "destinations": "y@a.example"})
    assert loop1.status_code == 302
    before = snapshot(session_factory)
    loop = submit(alice, "/forwarders/edit", {"local_part": "y", "domain": "a.example",
                                              "destinations": "x@a.example"})
    assert loop.status_code == 422
    assert "forwarding loop: y@a.example → x@a.example → y@a.example" in loop.get_data(as_text=True)
    assert snapshot(session_factory) == before


def test_delete_needs_the_address_and_a_csrf_token(alice: t.Any, session_factory: t.Any) -> None:
    submit(alice, "/domains/", {"name": "a.example"})
    submit(alice, "/mailboxes/new", {"local_part": "info", "domain": "a.example",
                                    "password": PASSWORD, "confirm": PASSWORD})
    before = snapshot(session_factory)
    no_token = alice.post("/mailboxes/info@a.example/delete", data={"confirm": "info@a.example"})
    assert no_token.status_code == 400
    wrong = submit(alice, "/mailboxes/info@a.example/delete", {"confirm": "other@a.example"},
                   page="/mailboxes/info@a.example")
    assert wrong.status_code == 422
    assert snapshot(session_factory) == before
    page = alice.get("/mailboxes/info@a.example").get_data(as_text=True)
    assert "not deleted by the panel" in page
    done = submit(alice, "/mailboxes/info@a.example/delete", {"confirm": "info@a.example"},
                  page="/mailboxes/info@a.example")
    assert done.status_code == 302
    assert snapshot(session_factory)[1] == ()


def test_another_customer_cannot_see_or_change_it(app: t.Any, alice: t.Any, session_factory: t.Any) -> None:
    submit(alice, "/domains/", {"name": "a.example"})
    submit(alice, "/mailboxes/new", {"local_part": "info", "domain": "a.example",
                                    "password": PASSWORD, "confirm": PASSWORD})
    submit(alice, "/forwarders/edit", {"local_part": "fw", "domain": "a.example",
                                      "destinations": "z@z.example"})
    before = snapshot(session_factory)
    bert = app.test_client()
    assert sign_in(bert, "bert", "correct horse 9").status_code == 302
    token = csrf_token(bert.get("/dashboard").get_data(as_text=True))
    assert bert.get("/mailboxes/info@a.example").status_code == 404
    assert bert.get("/domains/a.example").status_code == 404
    assert "info@a.example" not in bert.get("/mailboxes").get_data(as_text=True)
    assert "info@a.example" not in bert.get("/mailboxes?domain=a.example", follow_redirects=True).get_data(as_text=True)
    assert "a.example" not in bert.get("/audit/").get_data(as_text=True)
    for url, data in [
        ("/mailboxes/info@a.example/settings", {"quota": "1G"}),
        ("/mailboxes/info@a.example/password", {"password": PASSWORD + "1", "confirm": PASSWORD + "1"}),
        ("/mailboxes/info@a.example/suspensions", {"suspend_login": "y"}),
        ("/mailboxes/info@a.example/delete", {"confirm": "info@a.example"}),
        ("/mailboxes/info@a.example/autoresponder", {"subject": "x", "body": "y", "interval_days": "1"}),
        ("/domains/a.example/catchall", {"action": "discard"}),
        ("/domains/a.example/remove", {"confirm": "a.example"}),
        ("/forwarders/fw@a.example/delete", {}),
    ]:
        response = bert.post(url, data={**data, "csrf_token": token})
        assert response.status_code in (302, 404), url
    made = bert.post("/mailboxes/new", data={"local_part": "evil", "domain": "a.example",
                                             "password": PASSWORD, "confirm": PASSWORD, "csrf_token": token})
    assert made.status_code in (302, 422)
    assert snapshot(session_factory)[:3] == before[:3]


def test_forwarding_link_from_a_mailbox(alice: t.Any) -> None:
    submit(alice, "/domains/", {"name": "a.example"})
    submit(alice, "/mailboxes/new", {"local_part": "info", "domain": "a.example",
                                    "password": PASSWORD, "confirm": PASSWORD})
    page = alice.get("/forwarders/edit?address=info@a.example")
    assert page.status_code == 200 and 'value="info"' in page.get_data(as_text=True)
    for address in ("nope@a.example", "x@other.example", "a:b@x", ""):
        if address:
            assert alice.get(f"/forwarders/edit?address={address}").status_code == 404
