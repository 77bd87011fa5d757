"""Mailbox list pages read from the counters: every page of every sort, both ways, cut from one
order (deep address pages skip whole domains by their counters); a search past the count cap
says "more than" and still pages to its end. On each backend."""

from __future__ import annotations

import typing as t

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.hashing import hash_mailbox_password
from mailadmin.models import Role
from mailadmin.services import accounts, domains, mailboxes, pagination
from mailadmin.services.context import Actor

from . import factories

OP = Actor.operator()
MiB = 1024**2
#: Mailboxes per domain: uneven, one empty, so page edges fall inside and between domains.
SIZES = {"a.example": 7, "b.example": 0, "c.example": 13, "d.example": 1, "e.example": 9}


@pytest.fixture
def world(backend_session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    factory = backend_session_factory
    hashed = hash_mailbox_password("Tr0ub4dor&3-horse")
    with transaction(factory) as s:
        accounts.create_panel_user(s, OP, "lena", "correct horse 9", Role.CUSTOMER)
        for name in SIZES:
            domains.add_domain(s, OP, name, customer="lena")
    with transaction(factory) as s:
        for name, size in SIZES.items():
            if size:
                mailboxes.create_mailboxes(s, OP, name, [
                    mailboxes.NewMailbox(f"box{i:02d}", password_hash=hashed,
                                         quota=(i % 4 + 1) * MiB)
                    for i in range(size)])
    return factory


def _all_pages(factory: sessionmaker[Session], actor: Actor, per_page: int,
               **kw: object) -> tuple[list[str], int]:
    found: list[str] = []
    page_number = 1
    with factory() as s:
        while True:
            page = mailboxes.list_mailboxes(s, actor, page=page_number, per_page=per_page,
                                            **kw)  # type: ignore[arg-type]
            found += [r.address for r in page.items]
            if not page.has_next:
                return found, page.total
            page_number += 1


@pytest.mark.parametrize("sort", ["address", "quota", "status"])
@pytest.mark.parametrize("descending", [False, True])
def test_pages_cut_one_order(world: sessionmaker[Session], sort: str, descending: bool) -> None:
    lena = factories.actor(world, "lena")
    with world() as s:
        whole = mailboxes.list_mailboxes(s, lena, sort=sort, descending=descending,
                                         per_page=200)
    everything = [r.address for r in whole.items]
    assert whole.total == len(everything) == sum(SIZES.values())
    if sort == "address":
        by_domain = sorted(everything, key=lambda a: (list(SIZES).index(a.split("@")[1]),
                                                      a.split("@")[0]))
        assert everything == (by_domain[::-1] if descending else by_domain)
    for per_page in (1, 4, 7, 13):
        paged, total = _all_pages(world, lena, per_page, sort=sort, descending=descending)
        assert paged == everything, (per_page, sort, descending)
        assert total == len(everything)


def test_a_page_past_the_end_is_empty(world: sessionmaker[Session]) -> None:
    lena = factories.actor(world, "lena")
    with world() as s:
        page = mailboxes.list_mailboxes(s, lena, page=50, per_page=10)
    assert page.items == [] and page.total == 30 and page.pages == 3


def test_search_counts_up_to_the_cap(world: sessionmaker[Session],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    lena = factories.actor(world, "lena")
    with world() as s:
        exact = mailboxes.list_mailboxes(s, lena, search="box0", per_page=5)
    # box00 to box09 of each domain
    assert exact.exact and exact.total == sum(min(size, 10) for size in SIZES.values())
    monkeypatch.setattr(pagination, "COUNT_CAP", 6)
    paged: list[str] = []
    for number in range(1, 10):
        with world() as s:
            page = mailboxes.list_mailboxes(s, lena, search="box0", page=number, per_page=5)
        assert not page.exact and page.total == 6
        paged += [r.address for r in page.items]
        assert page.has_next == page.more
        if not page.more:
            break
    assert len(paged) == exact.total and page.pages == number


def test_many_domains_page(app: object, session_factory: sessionmaker[Session],
                           make_user: t.Any) -> None:
    """Past 100 domains the list's domain filter is a text field and the usage bars stop at
    the first 24 by name; the counters give the total."""
    from .web import sign_in

    make_user("mona", "customer")
    with transaction(session_factory) as s:
        for i in range(101):
            domains.add_domain(s, OP, f"m{i:03d}.example", customer="mona")
        for i in range(30):
            mailboxes.create_mailbox(s, OP, f"box@m{i:03d}.example", "Tr0ub4dor&3-horse",
                                     quota=MiB)
    client = app.test_client()  # type: ignore[attr-defined]
    sign_in(client, "mona", "correct horse 9")
    html = client.get("/mailboxes").get_data(as_text=True)
    assert 'data-testid="domain-field"' in html and 'id="filter-domain" name="domain">' not in html
    assert 'data-testid="more-domain-usage"' in html
    assert html.count('data-domain="m0') == 24 and 'data-domain="m024.example"' not in html
    assert "30 mailboxes" in html
    one = client.get("/mailboxes?domain=m029.example").get_data(as_text=True)
    assert "box@m029.example" in one and "1 mailbox<" in one
