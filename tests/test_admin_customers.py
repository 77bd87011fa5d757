"""The server admin's "all customers" page: every reseller's customers and its own, with the
reseller, package and use; searchable and paginated. Resellers see only their own there."""

from __future__ import annotations

import typing as t

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.services import domains, packages, resellers
from mailadmin.services.packages import PackageSpec
from mailadmin.services.resellers import AllocationSpec

from .factories import actor, make_customer, make_package, make_reseller
from .web import sign_in

PASSWORD = "correct horse 9"
GiB = 1024**3


@pytest.fixture
def shop(make_user: t.Any, session_factory: sessionmaker[Session]) -> None:
    """root sells to dora directly; rita to alice and bert; rob to carl."""
    f = session_factory
    make_user("root", "admin")
    root = actor(f, "root")
    with transaction(f) as s:
        gold = packages.create_package(s, root, "Gold", PackageSpec(max_mailboxes=9))
        resellers.create_customer(s, root, "dora", PASSWORD, package_id=gold.id)
    for seller, names in (("rita", ("alice", "bert")), ("rob", ("carl",))):
        seller_actor = make_reseller(f, root, seller, AllocationSpec(
            max_customers=5, max_domains=10, max_mailboxes=20, max_total_quota=20 * GiB))
        plan = make_package(f, seller_actor, f"{seller.title()} Plan", PackageSpec(
            max_domains=2, max_mailboxes=4, max_quota_per_mailbox=GiB, max_total_quota=4 * GiB))
        for name in names:
            make_customer(f, seller_actor, name, plan)
    with transaction(f) as s:
        domains.add_domain(s, actor(f, "carl"), "carl.example")


def signed_in(app: t.Any, name: str) -> t.Any:
    client = app.test_client()
    assert sign_in(client, name, PASSWORD).status_code == 302
    return client


def rows(html: str) -> list[str]:
    import re

    return re.findall(r'data-customer="([^"]+)"', html)


@pytest.mark.usefixtures("shop")
def test_admin_sees_all_customers_with_their_reseller(app: t.Any) -> None:
    root = signed_in(app, "root")
    page = root.get("/customers/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert rows(html) == ["alice", "bert", "carl", "dora"]
    assert "<th>Reseller</th>" in html
    for text in ("rita", "rob", "Rita Plan", "Rob Plan", "Gold"):
        assert text in html, text
    assert rows(root.get("/customers/?q=ca").get_data(as_text=True)) == ["carl"]
    assert root.get("/customers/carl").status_code == 200
    # The navigation links the page for the admin.
    assert 'href="/customers/"' in root.get("/dashboard").get_data(as_text=True)


@pytest.mark.usefixtures("shop")
def test_resellers_see_only_their_own_customers_there(app: t.Any) -> None:
    html = signed_in(app, "rita").get("/customers/").get_data(as_text=True)
    assert rows(html) == ["alice", "bert"]
    assert "<th>Reseller</th>" not in html
    assert rows(signed_in(app, "rob").get("/customers/").get_data(as_text=True)) == ["carl"]
    assert signed_in(app, "dora").get("/customers/").status_code == 403


def test_admin_list_is_paginated(app: t.Any, make_user: t.Any) -> None:
    make_user("root", "admin")
    for n in range(55):
        make_user(f"c{n:02d}", "customer")
    root = signed_in(app, "root")
    first = root.get("/customers/").get_data(as_text=True)
    assert len(rows(first)) == 50 and "Page 1 of 2" in first
    second = root.get("/customers/?page=2").get_data(as_text=True)
    assert rows(second) == [f"c{n:02d}" for n in range(50, 55)]
