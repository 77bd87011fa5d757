"""Confirm before harm: suspending a customer and deleting a package say what will happen and
need a ticked box, checked on the server (not only in the browser); resuming needs none."""

from __future__ import annotations

import typing as t

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import Package, PanelUser
from mailadmin.services import domains, mailboxes, packages
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec

from .web import sign_in, submit

PASSWORD = "Tr0ub4dor&3-horse"


def _actor(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


@pytest.fixture
def rita(client: t.Any, session_factory: sessionmaker[Session], make_user: t.Any) -> t.Any:
    make_user("rita", "reseller")
    make_user("alice", "customer", reseller="rita")
    seller = _actor(session_factory, "rita")
    with transaction(session_factory) as s:
        plan = packages.create_package(s, seller, "Plan", PackageSpec(max_mailboxes=5))
        packages.create_package(s, seller, "Unused", PackageSpec(max_mailboxes=1))
        packages.assign_package(s, seller, "alice", plan.id)
    alice = _actor(session_factory, "alice")
    with transaction(session_factory) as s:
        domains.add_domain(s, alice, "a.example")
        mailboxes.create_mailbox(s, alice, "info@a.example", PASSWORD)
        mailboxes.create_mailbox(s, alice, "sales@a.example", PASSWORD)
    assert sign_in(client, "rita", "correct horse 9").status_code == 302
    return client


def suspended(factory: sessionmaker[Session], name: str) -> bool:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return bool(user.is_suspended)


def test_suspending_a_customer_says_what_happens_and_needs_the_box(
    rita: t.Any, session_factory: t.Any,
) -> None:
    page = " ".join(rita.get("/customers/alice").get_data(as_text=True).split())
    assert ("they cannot sign in to the panel, their API tokens are refused, and 2 mailboxes "
            "on 1 domain stop receiving") in page
    unticked = submit(rita, "/customers/alice/suspend", {}, page="/customers/alice")
    assert unticked.status_code == 422
    assert "Tick the box to confirm the suspension." in unticked.get_data(as_text=True)
    assert not suspended(session_factory, "alice")
    ticked = submit(rita, "/customers/alice/suspend", {"confirm_suspend": "y"},
                    page="/customers/alice")
    assert ticked.status_code == 302 and suspended(session_factory, "alice")
    resumed = submit(rita, "/customers/alice/resume", {}, page="/customers/alice")
    assert resumed.status_code == 302 and not suspended(session_factory, "alice")


def test_deleting_a_package_needs_the_box(rita: t.Any, session_factory: t.Any) -> None:
    with session_factory() as s:
        unused = s.scalars(select(Package).where(Package.name == "Unused")).one().id
    url = f"/packages/{unused}"
    assert "it cannot be brought back" in rita.get(url).get_data(as_text=True)
    unticked = submit(rita, f"{url}/delete", {}, page=url)
    assert unticked.status_code == 422
    assert "Tick the box to confirm the deletion." in unticked.get_data(as_text=True)
    with session_factory() as s:
        assert s.get(Package, unused) is not None
    assert submit(rita, f"{url}/delete", {"confirm_delete": "y"}, page=url).status_code == 302
    with session_factory() as s:
        assert s.get(Package, unused) is None
