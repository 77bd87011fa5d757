"""Customer mail services: domains, mailboxes, forwarders, limits, tenancy, audit."""

from __future__ import annotations

import typing as t

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import (
    Conflict,
    InvalidName,
    LimitReached,
    NotFound,
    ValidationError,
    WeakPassword,
)
from mailadmin.hashing import verify_mailbox_password
from mailadmin.models import AuditEvent, Domain, Forwarder, Mailbox
from mailadmin.services import autoresponders, counters, domains, forwarders, mailboxes
from mailadmin.services.context import Actor

from .factories import actor, run, small_package_world

PASSWORD = "Tr0ub4dor&3-horse"


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any) -> dict[str, Actor]:
    """Two resellers, their customers, one package with small limits for alice."""
    small_package_world(session_factory, make_user)
    actors = {name: actor(session_factory, name, source=None)
              for name in ("rita", "rob", "alice", "bert", "carl")}
    actors["operator"] = Actor.operator()
    return actors


def counts(session_factory: sessionmaker[Session]) -> tuple[int, ...]:
    with session_factory() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (Domain, Mailbox, Forwarder, AuditEvent)
        )


def test_customer_builds_its_mail(world: dict[str, Actor], session_factory: t.Any) -> None:
    alice = world["alice"]
    domain = run(session_factory, domains.add_domain, alice, "Bücher.example")
    assert domain.name == "xn--bcher-kva.example"
    box = run(session_factory, mailboxes.create_mailbox, alice, "Info@bücher.example", PASSWORD)
    assert box.local_part == "info"
    assert box.quota == 1024**3
    # The package has no SMTP, so the default leaves it off rather than refusing.
    assert (box.imap, box.pop3, box.smtp) == (True, True, False)
    assert box.password_hash.startswith("{SHA512-CRYPT}$6$")
    assert verify_mailbox_password(PASSWORD, box.password_hash)
    run(session_factory, mailboxes.update_mailbox, alice, "info@xn--bcher-kva.example",
        pop3=False, quota=2 * 1024**3)
    run(session_factory, mailboxes.set_suspensions, alice, "info@bücher.example", outgoing=True)
    page = run(session_factory, mailboxes.list_mailboxes, alice)
    assert page.total == 1
    row = page.items[0]
    assert row.unicode_address == "info@bücher.example"
    assert (row.pop3, row.quota, row.suspend_outgoing, row.suspend_login) == (False, 2 * 1024**3, True, False)
    with session_factory() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.customer_id == alice.customer_id)
                            .order_by(AuditEvent.id)).all()
    assert actions[-4:] == ["domain.create", "mailbox.create", "mailbox.update", "mailbox.suspension"]


def test_limits_are_refused_with_limit_and_use(world: dict[str, Actor], session_factory: t.Any) -> None:
    alice = world["alice"]
    run(session_factory, domains.add_domain, alice, "a.example")
    run(session_factory, domains.add_domain, alice, "b.example")
    before = counts(session_factory)
    with pytest.raises(LimitReached, match="Package allows 2 domains; you have 2"):
        run(session_factory, domains.add_domain, alice, "c.example")
    for name in ("one", "two", "three"):
        run(session_factory, mailboxes.create_mailbox, alice, f"{name}@a.example", PASSWORD,
            quota=1024**3)
    with pytest.raises(LimitReached, match="Package allows 3 mailboxes; you have 3"):
        run(session_factory, mailboxes.create_mailbox, alice, "four@a.example", PASSWORD)
    with pytest.raises(LimitReached, match="at most 2 GiB per mailbox"):
        run(session_factory, mailboxes.update_mailbox, alice, "one@a.example", quota=3 * 1024**3)
    run(session_factory, mailboxes.update_mailbox, alice, "one@a.example", quota=2 * 1024**3)
    run(session_factory, mailboxes.update_mailbox, alice, "two@a.example", quota=2 * 1024**3)
    with pytest.raises(LimitReached, match="5 GiB of quota in total; your other mailboxes use 4 GiB"):
        run(session_factory, mailboxes.update_mailbox, alice, "three@a.example", quota=2 * 1024**3)
    with pytest.raises(LimitReached, match="does not include SMTP"):
        run(session_factory, mailboxes.update_mailbox, alice, "two@a.example", smtp=True)
    with pytest.raises(LimitReached, match="without a quota"):
        run(session_factory, mailboxes.update_mailbox, alice, "two@a.example", quota=0)
    after_refusals = counts(session_factory)
    assert after_refusals[0] == before[0]


def test_duplicates_and_hostile_names_change_nothing(world: dict[str, Actor], session_factory: t.Any) -> None:
    alice, carl = world["alice"], world["carl"]
    run(session_factory, domains.add_domain, alice, "a.example")
    run(session_factory, mailboxes.create_mailbox, alice, "info@a.example", PASSWORD)
    before = counts(session_factory)
    with pytest.raises(Conflict, match="exists already"):
        run(session_factory, mailboxes.create_mailbox, alice, "INFO@a.example", PASSWORD)
    with pytest.raises(Conflict, match="already hosted"):
        run(session_factory, domains.add_domain, carl, "A.EXAMPLE.")
    for hostile in ("x:y@a.example", "a\nb@a.example", 'q"@a.example', "a b@a.example",
                    "../../etc@a.example", "a@a.example\n", "é@a.example", "a;@a.example"):
        with pytest.raises((InvalidName, NotFound)):
            run(session_factory, mailboxes.create_mailbox, alice, hostile, PASSWORD)
    with pytest.raises(InvalidName):
        run(session_factory, domains.add_domain, alice, "evil\n.example")
    with pytest.raises(WeakPassword):
        run(session_factory, mailboxes.create_mailbox, alice, "new@a.example", "password1")
    assert counts(session_factory) == before


def test_forwarder_loops_are_refused_naming_the_loop(world: dict[str, Actor], session_factory: t.Any) -> None:
    alice = world["alice"]
    run(session_factory, domains.add_domain, alice, "a.example")
    run(session_factory, forwarders.set_forwarder, alice, "sales@a.example", ["team@a.example"])
    run(session_factory, forwarders.set_forwarder, alice, "team@a.example",
        ["boss@remote.example", "x@a.example"])
    before = counts(session_factory)
    with pytest.raises(Conflict) as refused:
        run(session_factory, forwarders.set_forwarder, alice, "x@a.example", ["sales@a.example"])
    assert "x@a.example → sales@a.example → team@a.example → x@a.example" in refused.value.message
    with pytest.raises(Conflict, match="cannot forward to itself"):
        run(session_factory, forwarders.set_forwarder, alice, "y@a.example", ["y@a.example"])
    with pytest.raises(LimitReached, match="Package allows 2 forwarders; you have 2"):
        run(session_factory, forwarders.set_forwarder, alice, "z@a.example", ["a@b.example"])
    assert counts(session_factory) == before


def test_mailbox_forwarding_keeps_a_copy_and_does_not_count(world: dict[str, Actor], session_factory: t.Any) -> None:
    alice = world["alice"]
    run(session_factory, domains.add_domain, alice, "a.example")
    run(session_factory, mailboxes.create_mailbox, alice, "me@a.example", PASSWORD)
    run(session_factory, forwarders.set_forwarder, alice, "f1@a.example", ["a@b.example"])
    run(session_factory, forwarders.set_forwarder, alice, "f2@a.example", ["a@b.example"])
    forwarding = run(session_factory, forwarders.set_forwarder, alice, "me@a.example",
                     ["me@home.example"], keep_copy=True)
    assert forwarding.keep_copy
    with pytest.raises(ValidationError, match="Only a mailbox can keep a copy"):
        run(session_factory, forwarders.set_forwarder, alice, "f1@a.example", ["c@d.example"], keep_copy=True)
    with pytest.raises(Conflict, match="is a forwarder"):
        run(session_factory, mailboxes.create_mailbox, alice, "f1@a.example", PASSWORD)


def test_tenants_cannot_reach_each_other(world: dict[str, Actor], session_factory: t.Any) -> None:
    alice, bert, carl, rita, rob = (world[n] for n in ("alice", "bert", "carl", "rita", "rob"))
    run(session_factory, domains.add_domain, alice, "alice.example")
    run(session_factory, mailboxes.create_mailbox, alice, "boss@alice.example", PASSWORD)
    before = counts(session_factory)
    attempts: list[t.Callable[[Actor], t.Any]] = [
        lambda a: run(session_factory, mailboxes.create_mailbox, a, "evil@alice.example", PASSWORD),
        lambda a: run(session_factory, mailboxes.set_mailbox_password, a, "boss@alice.example", PASSWORD + "x"),
        lambda a: run(session_factory, mailboxes.update_mailbox, a, "boss@alice.example", imap=False),
        lambda a: run(session_factory, mailboxes.set_suspensions, a, "boss@alice.example", login=True),
        lambda a: run(session_factory, mailboxes.delete_mailbox, a, "boss@alice.example", confirm="boss@alice.example"),
        lambda a: run(session_factory, forwarders.set_forwarder, a, "x@alice.example", ["a@b.example"]),
        lambda a: run(session_factory, domains.remove_domain, a, "alice.example"),
        lambda a: run(session_factory, domains.set_catchall, a, "alice.example", "discard"),
        lambda a: run(session_factory, autoresponders.set_autoresponder, a, "boss@alice.example",
                      subject="Away", body="Gone"),
    ]
    for intruder in (bert, carl, rob):
        for attempt in attempts:
            with pytest.raises(NotFound):
                attempt(intruder)
        assert run(session_factory, mailboxes.list_mailboxes, intruder).total == 0
        assert run(session_factory, domains.list_domains, intruder).total == 0
    # A customer cannot put a domain under another customer.
    with pytest.raises(NotFound):
        run(session_factory, domains.add_domain, alice, "x.example", customer="bert")
    with pytest.raises(NotFound):
        run(session_factory, domains.add_domain, rob, "x.example", customer="alice")
    assert counts(session_factory) == before
    # alice's reseller and the server admin do reach it.
    assert run(session_factory, mailboxes.list_mailboxes, rita).total == 1
    assert run(session_factory, mailboxes.list_mailboxes, world["operator"]).total == 1


def test_catchall_and_delete_confirmation(world: dict[str, Actor], session_factory: t.Any) -> None:
    alice = world["alice"]
    run(session_factory, domains.add_domain, alice, "a.example")
    run(session_factory, mailboxes.create_mailbox, alice, "info@a.example", PASSWORD)
    d = run(session_factory, domains.set_catchall, alice, "a.example", "deliver", target="info@a.example")
    assert (d.catchall_action, d.catchall_target) == ("deliver", "info@a.example")
    with pytest.raises(ValidationError):
        run(session_factory, domains.set_catchall, alice, "a.example", "reject",
            reject_reason="bad\nreason")
    d = run(session_factory, domains.set_catchall, alice, "a.example", "reject", reject_reason="Gone fishing")
    assert d.catchall_reject_reason == "Gone fishing"
    with pytest.raises(ValidationError, match="to confirm"):
        run(session_factory, mailboxes.delete_mailbox, alice, "info@a.example", confirm="other@a.example")
    with pytest.raises(Conflict, match="still has 1 mailbox"):
        run(session_factory, domains.remove_domain, alice, "a.example")
    run(session_factory, mailboxes.delete_mailbox, alice, "info@a.example", confirm="INFO@a.example")
    run(session_factory, domains.remove_domain, alice, "a.example")
    assert counts(session_factory)[:3] == (0, 0, 0)


def test_list_paginates_searches_and_sorts(world: dict[str, Actor], session_factory: t.Any) -> None:
    op = world["operator"]
    run(session_factory, domains.add_domain, op, "big.example", customer="bert")
    with transaction(session_factory) as s:
        domain = s.scalars(select(Domain)).one()
        for i in range(120):
            s.add(Mailbox(domain_id=domain.id, local_part=f"user{i:03d}", password_hash="{X}",
                          quota=(i % 7) * 1024**2))
        # rows added by hand: the per-domain counters are rebuilt from them
        s.flush()
        counters.recount(s, op)
    page = run(session_factory, mailboxes.list_mailboxes, world["bert"], page=3, per_page=50)
    assert (page.total, page.pages, len(page.items)) == (120, 3, 20)
    assert page.items[0].address == "user100@big.example"
    found = run(session_factory, mailboxes.list_mailboxes, world["bert"], search="user11")
    assert [r.address for r in found.items] == [f"user11{i}@big.example" for i in range(10)]
    by_quota = run(session_factory, mailboxes.list_mailboxes, world["bert"], sort="quota", descending=True)
    assert by_quota.items[0].quota == 6 * 1024**2
    with pytest.raises(ValidationError):
        run(session_factory, mailboxes.list_mailboxes, world["bert"], sort="password_hash")


def test_domain_removal_confirmation_lives_in_the_service(
    world: dict[str, Actor], session_factory: t.Any
) -> None:
    alice = world["alice"]
    run(session_factory, domains.add_domain, alice, "bücher.example")
    with pytest.raises(ValidationError, match=r"Type bücher\.example to confirm"):
        run(session_factory, domains.remove_domain, alice, "bücher.example", confirm="other.example")
    run(session_factory, domains.remove_domain, alice, "bücher.example", confirm="BÜCHER.example.")
    assert counts(session_factory)[0] == 0
