"""Times in each person's zone (panel and mailbox users, the browser's zone by default, a
chosen zone never replaced by it), one formatter for every page, and autoresponders that say
"scheduled from ..." before they start, with an overview of all of a customer's replies."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import ValidationError
from mailadmin.models import Mailbox, PanelUser, utcnow
from mailadmin.services import accounts, autoresponders, domains, mailboxes
from mailadmin.services.context import Actor
from mailadmin.timezones import check_time_zone, format_time, to_local, to_utc

from .test_selfservice import PASSWORD, mailbox_sign_in, register_blueprints
from .web import csrf_token, sign_in

NOON_UTC = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def test_format_time_in_a_zone_and_back() -> None:
    assert format_time(NOON_UTC, "Europe/Berlin") == "2026-12-06 13:00 CET"
    assert format_time(NOON_UTC, None) == "2026-12-06 12:00 UTC"
    assert format_time(NOON_UTC.replace(tzinfo=None), "Asia/Kolkata") == "2026-12-06 17:30 IST"
    assert format_time(None, "Europe/Berlin") == "never"
    typed = dt.datetime(2026, 7, 1, 9, 0)  # summer time in Berlin: UTC+2
    assert to_utc(typed, "Europe/Berlin") == dt.datetime(2026, 7, 1, 7, 0, tzinfo=dt.UTC)
    assert to_local(to_utc(typed, "Europe/Berlin"), "Europe/Berlin") == typed
    with pytest.raises(ValidationError):
        check_time_zone("Mars/Olympus_Mons")
    with pytest.raises(ValidationError):
        check_time_zone("../../etc/passwd")


def _actor(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


@pytest.fixture
def alice(session_factory: sessionmaker[Session], make_user: t.Any) -> Actor:
    make_user("alice", "customer", password="correct horse 9")
    make_user("bob", "customer", password="correct horse 9")
    alice, bob = _actor(session_factory, "alice"), _actor(session_factory, "bob")
    now = utcnow()
    with transaction(session_factory) as s:
        domains.add_domain(s, alice, "shop.example")
        domains.add_domain(s, bob, "bob.example")
        for local in ("anna", "ben", "carl"):
            mailboxes.create_mailbox(s, alice, f"{local}@shop.example", PASSWORD)
        mailboxes.create_mailbox(s, bob, "bob@bob.example", PASSWORD)
        autoresponders.set_autoresponder(s, alice, "anna@shop.example", subject="Holiday",
                                         body="Back soon", starts_at=now + dt.timedelta(days=3),
                                         ends_at=now + dt.timedelta(days=10))
        autoresponders.set_autoresponder(s, alice, "ben@shop.example", subject="Away",
                                         body="Away now")
        autoresponders.set_autoresponder(s, alice, "carl@shop.example", subject="Gone",
                                         body="Was away", starts_at=now - dt.timedelta(days=9),
                                         ends_at=now - dt.timedelta(days=2))
        autoresponders.set_autoresponder(s, bob, "bob@bob.example", subject="Bob's",
                                         body="not alice's")
    return alice


def test_overview_lists_the_customers_replies_with_their_state(
    session_factory: sessionmaker[Session], alice: Actor
) -> None:
    with session_factory() as s:
        rows = autoresponders.list_autoresponders(s, alice)
    assert [(r.address, r.state) for r in rows] == [
        ("anna@shop.example", "scheduled"), ("ben@shop.example", "on"),
        ("carl@shop.example", "ended")]


def test_pages_say_scheduled_from_in_the_users_zone(
    client: t.Any, alice: Actor, session_factory: sessionmaker[Session]
) -> None:
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    token = csrf_token(client.get("/mailboxes").get_data(as_text=True))
    # The browser's zone is saved once...
    saved = client.post("/preferences/time-zone", data={
        "csrf_token": token, "time_zone": "Asia/Tokyo", "automatic": "1"})
    assert saved.status_code == 204
    # ...a zone chosen by hand wins, and a later automatic one does not replace it.
    chosen = client.post("/preferences/time-zone", data={
        "csrf_token": token, "time_zone": "America/New_York"})
    assert chosen.status_code == 302
    assert client.post("/preferences/time-zone", data={
        "csrf_token": token, "time_zone": "Asia/Tokyo", "automatic": "1"}).status_code == 204
    with session_factory() as s:
        assert s.scalars(select(PanelUser.time_zone).where(
            PanelUser.username == "alice")).one() == "America/New_York"
    bad = client.post("/preferences/time-zone", data={"csrf_token": token, "time_zone": "Nowhere"})
    assert bad.status_code == 422

    overview = BeautifulSoup(client.get("/autoresponders").get_data(as_text=True), "html.parser")
    states = {tr["data-address"]: tr.get_text(" ", strip=True)
              for tr in overview.select("[data-testid=autoresponders] tbody tr")}
    assert set(states) == {"anna@shop.example", "ben@shop.example", "carl@shop.example"}
    assert "scheduled from" in states["anna@shop.example"]
    assert " ES" in states["anna@shop.example"] or "EST" in states["anna@shop.example"]
    assert "ended" in states["carl@shop.example"]

    page = BeautifulSoup(client.get("/mailboxes/anna@shop.example").get_data(as_text=True),
                         "html.parser")
    state = page.select_one("[data-testid=responder-state]").get_text(" ", strip=True)
    assert "scheduled from" in state and " on" not in state.split(":", 1)[1].split("from")[0]
    assert "America/New York" in page.select_one('label[for="starts_at"]').get_text()


def test_autoresponder_times_are_typed_in_the_users_zone(
    client: t.Any, alice: Actor, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as s:
        accounts.set_own_time_zone(s, alice, "Europe/Berlin")
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    token = csrf_token(client.get("/mailboxes/ben@shop.example").get_data(as_text=True))
    answer = client.post("/mailboxes/ben@shop.example/autoresponder", data={
        "csrf_token": token, "enabled": "y", "subject": "Away", "body": "Away now",
        "starts_at": "2027-07-01T09:00", "ends_at": "", "interval_days": "1"})
    assert answer.status_code == 302
    with session_factory() as s:
        responder = autoresponders.get_autoresponder(s, alice, "ben@shop.example")
        assert responder is not None and responder.starts_at is not None
        assert responder.starts_at.astimezone(dt.UTC) == dt.datetime(
            2027, 7, 1, 7, 0, tzinfo=dt.UTC)
    form = BeautifulSoup(client.get("/mailboxes/ben@shop.example").get_data(as_text=True),
                         "html.parser")
    assert form.select_one("#starts_at")["value"] == "2027-07-01T09:00"


def test_mailbox_user_has_a_zone_of_their_own(
    app: t.Any, alice: Actor, session_factory: sessionmaker[Session]
) -> None:
    register_blueprints(app)
    web = app.test_client()
    assert mailbox_sign_in(web, "anna@shop.example").status_code == 302
    token = csrf_token(web.get("/me/").get_data(as_text=True))
    assert web.post("/preferences/time-zone", data={
        "csrf_token": token, "time_zone": "Australia/Sydney", "automatic": "1"}
    ).status_code == 204
    with session_factory() as s:
        assert s.scalars(select(Mailbox.time_zone).where(
            Mailbox.local_part == "anna")).one() == "Australia/Sydney"
        alice_zone = s.scalars(select(PanelUser.time_zone).where(
            PanelUser.username == "alice")).one()
    assert alice_zone is None  # the mailbox user's choice is theirs alone
    overview = web.get("/me/").get_data(as_text=True)
    assert "scheduled from" in overview and ("AEDT" in overview or "AEST" in overview)


def test_password_rules_match_the_servers(client: t.Any, alice: Actor) -> None:
    rules = client.get("/password-rules.json").get_json()
    assert rules["mailbox"]["min_length"] >= 8
    assert "password" in rules["mailbox"]["common"]
    assert rules["panel"]["min_length"] == accounts.MIN_PANEL_PASSWORD_LENGTH
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    page = BeautifulSoup(client.get("/mailboxes/new").get_data(as_text=True), "html.parser")
    assert page.select_one("#password")["autocomplete"] == "new-password"
    assert page.select_one('script[src$="js/passwords.js"]') is not None
