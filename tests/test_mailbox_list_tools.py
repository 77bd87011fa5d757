"""The mailbox list as customers use it: sorting by any column header (in the database),
page sizes, search anywhere in the address, per-domain usage, per-mailbox actions, and bulk
suspend / resume / quota / remove with one confirmation, tenant-checked."""

from __future__ import annotations

import typing as t

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import NotFound, ValidationError
from mailadmin.models import Mailbox, PanelUser, utcnow
from mailadmin.services import counters, domains, mailboxes, server
from mailadmin.services.context import Actor

from .web import csrf_token, sign_in

PASSWORD = "Tr0ub4dor&3-horse"
MiB = 1024**2


def _actor(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any) -> Actor:
    """alice: four mailboxes on two domains with known usage; bob: one mailbox of his own."""
    make_user("alice", "customer", password="correct horse 9")
    make_user("bob", "customer", password="correct horse 9")
    alice, bob = _actor(session_factory, "alice"), _actor(session_factory, "bob")
    with transaction(session_factory) as s:
        domains.add_domain(s, alice, "shop.example")
        domains.add_domain(s, alice, "bakery.example")
        domains.add_domain(s, bob, "bob.example")
        for address, quota in (("anna@shop.example", 100), ("zoe@shop.example", 50),
                               ("sales@bakery.example", 200), ("bread@bakery.example", 10)):
            mailboxes.create_mailbox(s, alice, address, PASSWORD, quota=quota * MiB)
        mailboxes.create_mailbox(s, bob, "bob@bob.example", PASSWORD, quota=10 * MiB)
    with transaction(session_factory) as s:
        for local, used in (("anna", 5), ("zoe", 40), ("sales", 20), ("bread", 1)):
            s.execute(update(Mailbox).where(Mailbox.local_part == local)
                      .values(usage_bytes=used * MiB, usage_read_at=utcnow()))
        # the rows were edited by hand: the per-domain counters are rebuilt from them
        counters.recount(s, Actor.operator())
    return alice


def _order(factory: sessionmaker[Session], actor: Actor, **kw: t.Any) -> list[str]:
    with factory() as s:
        return [r.address for r in mailboxes.list_mailboxes(s, actor, **kw).items]


def test_sorts_by_usage_status_and_quota_both_ways(
    session_factory: sessionmaker[Session], world: Actor
) -> None:
    by_usage = _order(session_factory, world, sort="usage")
    assert by_usage == ["bread@bakery.example", "anna@shop.example", "sales@bakery.example",
                        "zoe@shop.example"]
    assert _order(session_factory, world, sort="usage", descending=True) == by_usage[::-1]
    assert _order(session_factory, world, sort="quota", descending=True)[0] == \
        "sales@bakery.example"
    with transaction(session_factory) as s:
        mailboxes.set_suspensions(s, world, "zoe@shop.example", login=True)
    assert _order(session_factory, world, sort="status")[-1] == "zoe@shop.example"
    assert _order(session_factory, world, sort="status", descending=True)[0] == \
        "zoe@shop.example"


def test_search_matches_anywhere_in_the_address(
    session_factory: sessionmaker[Session], world: Actor
) -> None:
    assert _order(session_factory, world, search="oe") == ["zoe@shop.example"]
    assert set(_order(session_factory, world, search="bakery")) == {
        "sales@bakery.example", "bread@bakery.example"}
    assert _order(session_factory, world, search="es@bak") == ["sales@bakery.example"]
    assert _order(session_factory, world, search="%") == []
    # Another customer's mailboxes never match.
    assert _order(session_factory, world, search="bob") == []


def test_bulk_change_is_all_or_nothing_and_tenant_checked(
    session_factory: sessionmaker[Session], world: Actor
) -> None:
    with transaction(session_factory) as s:
        result = mailboxes.bulk_change(s, world, ["anna@shop.example", "zoe@shop.example"],
                                       "suspend")
    assert result.changed == ("anna@shop.example", "zoe@shop.example")
    with session_factory() as s:
        anna = mailboxes.get_mailbox(s, world, "anna@shop.example")
        assert anna.suspend_login and anna.suspend_incoming and anna.suspend_outgoing
    # One address of another customer: refused, and nothing of alice's changes either.
    with pytest.raises(NotFound), transaction(session_factory) as s:
        mailboxes.bulk_change(s, world, ["anna@shop.example", "bob@bob.example"], "resume")
    with session_factory() as s:
        assert mailboxes.get_mailbox(s, world, "anna@shop.example").suspend_login
        bob = s.scalars(select(Mailbox).where(Mailbox.local_part == "bob")).one()
        assert not bob.suspend_login
    with pytest.raises(ValidationError), transaction(session_factory) as s:
        mailboxes.bulk_change(s, world, [], "resume")
    with pytest.raises(ValidationError), transaction(session_factory) as s:
        mailboxes.bulk_change(s, world, ["anna@shop.example"], "quota")
    with transaction(session_factory) as s:
        mailboxes.bulk_change(s, world, ["anna@shop.example", "bread@bakery.example"], "quota",
                              quota=30 * MiB)
        mailboxes.bulk_change(s, world, ["zoe@shop.example"], "remove")
    assert _order(session_factory, world, sort="quota") == [
        "anna@shop.example", "bread@bakery.example", "sales@bakery.example"]


def _signed_in(client: t.Any) -> t.Any:
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    return client


def test_list_page_headers_sort_and_rows_offer_actions(
    client: t.Any, world: Actor, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as s:
        server.get_server_settings(s).webmail_url = "https://webmail.example/"
    _signed_in(client)
    page = client.get("/mailboxes?sort=usage&desc=1&per_page=25")
    assert page.status_code == 200
    soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    rows = [tr["data-address"] for tr in soup.select("tbody tr[data-address]")]
    assert rows[0] == "zoe@shop.example"
    usage_header = soup.select_one('th a[data-sort="usage"]')
    assert usage_header is not None and "desc=" in usage_header["href"]
    assert usage_header.find_parent("th")["aria-sort"] == "descending"
    assert soup.select_one("#filter-per-page option[selected]").get_text() == "25"
    actions = soup.select_one('tr[data-address="anna@shop.example"] [data-testid=row-actions]')
    labels = [a.get_text(" ", strip=True) for a in actions.select("a")]
    assert any(label.startswith("Manage") for label in labels)
    assert any(label.startswith("Connect devices") for label in labels)
    assert any(label.startswith("Diagnose") for label in labels)
    assert any(label.startswith("Check email") for label in labels)
    assert client.get("/webmail").location == "https://webmail.example/"
    per_domain = soup.select_one("[data-testid=domain-usage]").get_text(" ", strip=True)
    assert "shop.example" in per_domain and "bakery.example" in per_domain
    assert "bob.example" not in per_domain


def test_bulk_suspend_asks_once_then_changes(client: t.Any, world: Actor) -> None:
    _signed_in(client)
    token = csrf_token(client.get("/mailboxes").get_data(as_text=True))
    picked = ["anna@shop.example", "zoe@shop.example"]
    confirm = client.post("/mailboxes/bulk", data={
        "csrf_token": token, "action": "suspend", "addresses": picked})
    assert confirm.status_code == 200
    soup = BeautifulSoup(confirm.get_data(as_text=True), "html.parser")
    assert [li.get_text() for li in soup.select("[data-testid=bulk-targets] li")] == picked
    page = client.get("/mailboxes").get_data(as_text=True)
    assert "login suspended" not in page  # nothing changed before the confirmation
    done = client.post("/mailboxes/bulk", data={
        "csrf_token": token, "action": "suspend", "addresses": picked, "confirm": "y"},
        follow_redirects=True)
    text = done.get_data(as_text=True)
    assert "2 mailboxes suspended." in text
    assert text.count("login suspended") == 2


def test_bulk_with_another_customers_address_changes_nothing(
    client: t.Any, world: Actor, session_factory: sessionmaker[Session]
) -> None:
    _signed_in(client)
    token = csrf_token(client.get("/mailboxes").get_data(as_text=True))
    done = client.post("/mailboxes/bulk", data={
        "csrf_token": token, "action": "remove", "confirm": "y",
        "addresses": ["anna@shop.example", "bob@bob.example"]})
    # another tenant's mailbox is not found; all or nothing
    assert done.status_code == 404
    assert "Nothing was changed" in done.get_data(as_text=True)
    with session_factory() as s:
        assert s.scalars(select(Mailbox).where(Mailbox.local_part == "anna")).one_or_none()
        assert s.scalars(select(Mailbox).where(Mailbox.local_part == "bob")).one_or_none()


def test_connect_devices_page_for_the_customer(client: t.Any, world: Actor) -> None:
    _signed_in(client)
    page = client.get("/mailboxes/anna@shop.example/devices")
    assert page.status_code == 200
    soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    assert soup.select("[data-testid=servers] tbody tr")
    links = [a["href"] for a in soup.select("[data-testid=autoconfig-links] a")]
    assert any("config-v1.1.xml?emailaddress=anna@shop.example" in h for h in links)
    assert client.get("/mailboxes/bob@bob.example/devices").status_code == 404


def test_usage_refresh_speaks_the_customers_words(client: t.Any, world: Actor) -> None:
    """No mail server runs here: the refusal must not show doveadm, a path or a command."""
    _signed_in(client)
    token = csrf_token(client.get("/mailboxes").get_data(as_text=True))
    answer = client.post("/mailboxes/usage/refresh", data={"csrf_token": token},
                         follow_redirects=True)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "could not report usage just now" in text or "Usage read for" in text
    assert "doveadm" not in text and "/etc/" not in text


def test_sorting_across_domains_pages_alike_on_every_backend(
    backend_session_factory: sessionmaker[Session],
) -> None:
    """Each domain gives its first rows in index order and the page is cut from them: pages
    of every sort join up to the whole list in order, on SQLite, PostgreSQL and MariaDB."""
    factory = backend_session_factory
    with factory() as s, s.begin():
        s.add(PanelUser(username="dana", role="customer", password_hash="x"))
    dana = _actor(factory, "dana")
    with factory() as s, s.begin():
        for name in ("one.example", "two.example", "three.example"):
            domains.add_domain(s, dana, name)
        for i in range(9):
            address = f"u{i}@{('one', 'two', 'three')[i % 3]}.example"
            box = mailboxes.create_mailbox(s, dana, address, PASSWORD, quota=(i % 4 + 1) * MiB)
            box.usage_bytes = (i * 7 % 5) * MiB
            box.suspend_login = i in (2, 7)
    for sort in ("usage", "quota", "status"):
        for descending in (False, True):
            with factory() as s:
                whole = [r.address for r in mailboxes.list_mailboxes(
                    s, dana, sort=sort, descending=descending, per_page=50).items]
                pages = [r.address for p in (1, 2, 3) for r in mailboxes.list_mailboxes(
                    s, dana, sort=sort, descending=descending, page=p, per_page=4).items]
            assert pages == whole and len(whole) == 9, (sort, descending)
            key = {"usage": lambda r: r.usage_bytes, "quota": lambda r: r.quota,
                   "status": lambda r: r.suspend_login}[sort]
            with factory() as s:
                rows = mailboxes.list_mailboxes(s, dana, sort=sort, descending=descending).items
            values = [key(r) for r in rows]
            assert values == sorted(values, reverse=descending), (sort, descending, values)
