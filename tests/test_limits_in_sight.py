"""Limits in sight: the customer sees "3 of 5 mailboxes" and "4 GiB of 5 GiB allocated" before
filling a form, "New mailbox" says why it is unavailable at the limit, and a refused form keeps
what was typed (never the passwords) with the refusal beside its field."""

from __future__ import annotations

import typing as t

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import PanelUser
from mailadmin.services import domains, limits, mailboxes, packages
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec

from .web import sign_in, submit

GiB = 1024**3
PASSWORD = "Tr0ub4dor&3-horse"


def _actor(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


@pytest.fixture
def alice(session_factory: sessionmaker[Session], make_user: t.Any) -> Actor:
    """alice on a package of 5 mailboxes, 5 GiB in total, 2 GiB each; 3 mailboxes, 4 GiB."""
    make_user("rita", "reseller")
    make_user("alice", "customer", reseller="rita")
    rita = _actor(session_factory, "rita")
    with transaction(session_factory) as s:
        plan = packages.create_package(s, rita, "Small", PackageSpec(
            max_domains=2, max_mailboxes=5, max_forwarders=3, max_quota_per_mailbox=2 * GiB,
            max_total_quota=5 * GiB, default_quota=GiB))
        packages.assign_package(s, rita, "alice", plan.id)
    actor = _actor(session_factory, "alice")
    with transaction(session_factory) as s:
        domains.add_domain(s, actor, "a.example")
        for name, quota in (("one", 2 * GiB), ("two", GiB), ("three", GiB)):
            mailboxes.create_mailbox(s, actor, f"{name}@a.example", PASSWORD, quota=quota)
    return actor


def test_allowance_counts_use_and_what_a_new_mailbox_can_get(
    session_factory: t.Any, alice: Actor,
) -> None:
    with session_factory() as s:
        a = limits.allowance_for(s, alice)
    assert a is not None
    assert a.mailboxes.text("mailbox", "mailboxes") == "3 of 5 mailboxes"
    assert a.quota.size_text() == "4 GiB of 5 GiB allocated"
    assert a.default_quota == GiB and a.new_mailbox_max_quota == GiB
    assert a.new_mailbox_refusal is None
    with session_factory() as s:
        assert limits.allowance_for(s, Actor.operator()) is None


def test_dashboard_and_new_mailbox_form_show_the_limits(client: t.Any, alice: Actor) -> None:
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "3 of 5 mailboxes" in dashboard and "4 GiB of 5 GiB allocated" in dashboard
    assert "A new mailbox gets 1 GiB" in dashboard
    new = client.get("/mailboxes/new").get_data(as_text=True)
    assert "3 of 5 mailboxes" in new and "4 GiB of 5 GiB allocated" in new
    assert "Default quota for a new mailbox: 1 GiB" in new
    assert "Largest quota now: 1 GiB (2 GiB per mailbox, 1 GiB of the package's 5 GiB left)" \
        in " ".join(new.split())


def test_at_the_limit_new_mailbox_says_why_instead_of_a_form(
    client: t.Any, session_factory: t.Any, alice: Actor,
) -> None:
    with transaction(session_factory) as s:
        mailboxes.create_mailbox(s, alice, "four@a.example", PASSWORD, quota=512 * 1024**2)
        mailboxes.create_mailbox(s, alice, "five@a.example", PASSWORD, quota=512 * 1024**2)
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    listing = client.get("/mailboxes").get_data(as_text=True)
    assert "5 of 5 mailboxes" in listing and 'data-testid="new-mailbox-disabled"' in listing
    page = client.get("/mailboxes/new")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "No new mailbox can be added now." in html
    assert "You have 5 of 5 mailboxes your package allows." in html
    assert BeautifulSoup(html, "html.parser").find("input", attrs={"type": "password"}) is None


def test_a_refused_form_keeps_what_was_typed_but_not_the_password(
    client: t.Any, alice: Actor,
) -> None:
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    refused = submit(client, "/mailboxes/new", {
        "local_part": "sales", "domain": "a.example", "password": PASSWORD,
        "confirm": PASSWORD, "quota": "3G", "imap": "y"})
    assert refused.status_code == 422
    soup = BeautifulSoup(refused.get_data(as_text=True), "html.parser")
    assert soup.find("input", attrs={"name": "local_part"})["value"] == "sales"
    quota = soup.find("input", attrs={"name": "quota"})
    assert quota["value"] == "3G" and "is-invalid" in quota["class"]
    assert "at most 2 GiB per mailbox" in quota.find_next_sibling(class_="invalid-feedback").text
    for box in soup.find_all("input", attrs={"type": "password"}):
        assert not box.get("value")
    assert PASSWORD not in refused.get_data(as_text=True)
    assert soup.find("input", attrs={"name": "imap"}).has_attr("checked")
    assert not soup.find("input", attrs={"name": "pop3"}).has_attr("checked")


def test_the_mailbox_form_says_how_large_its_quota_can_be(client: t.Any, alice: Actor) -> None:
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    page = " ".join(client.get("/mailboxes/two@a.example").get_data(as_text=True).split())
    # 2 GiB per mailbox; 1 GiB left in the package plus the 1 GiB it has now.
    assert ("This mailbox can have up to 2 GiB; your package has 4 GiB of 5 GiB allocated."
            in page)
