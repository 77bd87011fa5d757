"""The customer's mail pages, driven through real forms with CSRF tokens."""

from __future__ import annotations

import typing as t

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.models import (
    AuditEvent,
    Autoresponder,
    Domain,
    Forwarder,
    ForwarderDestination,
    Mailbox,
)

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


def tenant_state(session_factory: sessionmaker[Session]) -> dict[str, t.Any]:
    """Every mail row a customer owns, catch-all and autoresponder included, to compare whole."""
    with session_factory() as s:
        return {
            "domains": s.execute(select(
                Domain.name, Domain.owner_id, Domain.catchall_action,
                Domain.catchall_reject_reason, Domain.catchall_target).order_by(Domain.id)).all(),
            "mailboxes": s.execute(select(
                Mailbox.local_part, Mailbox.domain_id, Mailbox.quota, Mailbox.imap, Mailbox.pop3,
                Mailbox.smtp, Mailbox.password_hash, Mailbox.suspend_login,
                Mailbox.suspend_outgoing).order_by(Mailbox.id)).all(),
            "forwarders": s.execute(select(
                Forwarder.local_part, Forwarder.domain_id, ForwarderDestination.address)
                .join(ForwarderDestination).order_by(ForwarderDestination.id)).all(),
            "autoresponders": s.execute(select(
                Autoresponder.mailbox_id, Autoresponder.enabled, Autoresponder.subject,
                Autoresponder.body, Autoresponder.interval_days)
                .order_by(Autoresponder.id)).all(),
        }


def mail_events(session_factory: sessionmaker[Session], actor: str) -> list[str]:
    """What `actor` changed, as audited (signing in aside)."""
    with session_factory() as s:
        return list(s.scalars(select(AuditEvent.action).where(
            AuditEvent.actor == actor, ~AuditEvent.action.startswith("auth."))))


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


ATTACKS = [
    ("/mailboxes/info@a.example/settings", {"quota": "1G"}),
    ("/mailboxes/info@a.example/password", {"password": PASSWORD + "1", "confirm": PASSWORD + "1"}),
    ("/mailboxes/info@a.example/suspensions", {"suspend_login": "y"}),
    ("/mailboxes/info@a.example/delete", {"confirm": "info@a.example"}),
    ("/mailboxes/info@a.example/autoresponder", {"subject": "x", "body": "y", "interval_days": "1"}),
    ("/domains/a.example/catchall", {"action": "discard"}),
    ("/domains/a.example/remove", {"confirm": "a.example"}),
    ("/forwarders/fw@a.example/delete", {}),
]


def test_another_customer_cannot_see_or_change_it(app: t.Any, alice: t.Any, session_factory: t.Any) -> None:
    submit(alice, "/domains/", {"name": "a.example"})
    submit(alice, "/mailboxes/new", {"local_part": "info", "domain": "a.example",
                                    "password": PASSWORD, "confirm": PASSWORD})
    submit(alice, "/forwarders/edit", {"local_part": "fw", "domain": "a.example",
                                      "destinations": "z@z.example"})
    bert = app.test_client()
    assert sign_in(bert, "bert", "correct horse 9").status_code == 302
    # A domain of his own, so that the new-mailbox form is processed rather than redirected.
    assert submit(bert, "/domains/", {"name": "b.example"}).status_code == 302
    before = tenant_state(session_factory)
    assert before["autoresponders"] == []
    assert [row.catchall_action for row in before["domains"]] == ["reject", "reject"]
    token = csrf_token(bert.get("/dashboard").get_data(as_text=True))
    bert_events = mail_events(session_factory, "bert")
    assert bert.get("/mailboxes/info@a.example").status_code == 404
    assert bert.get("/domains/a.example").status_code == 404
    assert "info@a.example" not in bert.get("/mailboxes").get_data(as_text=True)
    assert "info@a.example" not in bert.get("/mailboxes?domain=a.example", follow_redirects=True).get_data(as_text=True)
    assert "a.example" not in bert.get("/audit/").get_data(as_text=True)
    for url, data in ATTACKS:
        response = bert.post(url, data={**data, "csrf_token": token})
        assert response.status_code == 404, url
    made = bert.post("/mailboxes/new", data={"local_part": "evil", "domain": "a.example",
                                             "password": PASSWORD, "confirm": PASSWORD, "csrf_token": token})
    assert made.status_code == 422
    assert tenant_state(session_factory) == before
    assert mail_events(session_factory, "bert") == bert_events


def test_owner_changes_autoresponder_and_catchall(alice: t.Any, session_factory: t.Any) -> None:
    """The same forms the attack above sends do change the state when the owner sends them, so
    that comparison would see a change that got through."""
    submit(alice, "/domains/", {"name": "a.example"})
    submit(alice, "/mailboxes/new", {"local_part": "info", "domain": "a.example",
                                    "password": PASSWORD, "confirm": PASSWORD})
    before = tenant_state(session_factory)
    page = "/mailboxes/info@a.example"
    away = submit(alice, "/mailboxes/info@a.example/autoresponder",
                  {"subject": "Away", "body": "Back Monday", "interval_days": "3",
                   "enabled": "y"}, page=page)
    assert away.status_code == 302, away.get_data(as_text=True)[-2000:]
    catchall = submit(alice, "/domains/a.example/catchall", {"action": "discard"},
                      page="/domains/a.example")
    assert catchall.status_code == 302, catchall.get_data(as_text=True)[-2000:]
    after = tenant_state(session_factory)
    assert [tuple(row)[1:] for row in after["autoresponders"]] == [
        (True, "Away", "Back Monday", 3)]
    assert [row.catchall_action for row in after["domains"]] == ["discard"]
    assert after["mailboxes"] == before["mailboxes"]
    assert mail_events(session_factory, "alice")[-2:] == ["autoresponder.set",
                                                          "domain.catchall"]


def test_forwarding_link_from_a_mailbox(alice: t.Any) -> None:
    submit(alice, "/domains/", {"name": "a.example"})
    submit(alice, "/mailboxes/new", {"local_part": "info", "domain": "a.example",
                                    "password": PASSWORD, "confirm": PASSWORD})
    page = alice.get("/forwarders/edit?address=info@a.example")
    assert page.status_code == 200 and 'value="info"' in page.get_data(as_text=True)
    for address in ("nope@a.example", "x@other.example", "a:b@x", ""):
        if address:
            assert alice.get(f"/forwarders/edit?address={address}").status_code == 404
