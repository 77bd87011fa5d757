"""Two requests racing for a reseller's last allocation slot, for real, on PostgreSQL.

Each contender runs in its own thread with its own session and transaction. A barrier starts
them together, and the allocation check is slowed down (`packages.check_commitments_fit` sleeps
first) so that without the reseller lock both would read the same "one slot left" and both
would win. With the lock exactly one wins and the other is refused with LimitReached, every
round. `test_the_race_is_real_without_the_lock` shows that the set-up does catch a missing lock.
"""

from __future__ import annotations

import threading
import time
import typing as t
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.errors import LimitReached
from mailadmin.models import Package, PanelUser, Role
from mailadmin.services import accounts, packages, resellers
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec
from mailadmin.services.resellers import AllocationSpec

from .databases import throwaway_database

GiB = 1024**3
PASSWORD = "correct horse 9"
ROUNDS = 4
#: How long each contender dawdles between taking the lock and checking the allocation.
WINDOW_SECONDS = 0.15

Attempt = Callable[[Session, Actor], object]


@pytest.fixture
def pg_engine(tmp_path: Path) -> Iterator[Engine]:
    with throwaway_database("postgresql", tmp_path) as url:
        engine = make_engine(url, pool_size=4)
        migrate.upgrade(engine)
        yield engine
        engine.dispose()


@pytest.fixture
def factory(pg_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(pg_engine)


@pytest.fixture
def slow_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen the window between reading what is given out and writing the new promise."""
    original = packages.check_commitments_fit

    def dawdle(*args: t.Any, **kwargs: t.Any) -> None:
        time.sleep(WINDOW_SECONDS)
        original(*args, **kwargs)

    monkeypatch.setattr(packages, "check_commitments_fit", dawdle)


def actor_of(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="api", source="127.0.0.1")


def setup_reseller(factory: sessionmaker[Session], name: str, allocation: AllocationSpec,
                   package_specs: dict[str, PackageSpec]) -> tuple[Actor, dict[str, int]]:
    with transaction(factory) as s:
        if accounts.find_user(s, "root") is None:
            accounts.create_panel_user(s, Actor.operator(), "root", PASSWORD, Role.ADMIN)
    admin = actor_of(factory, "root")
    with transaction(factory) as s:
        resellers.create_reseller(s, admin, name, PASSWORD, allocation)
    seller = actor_of(factory, name)
    ids = {}
    for package_name, spec in package_specs.items():
        with transaction(factory) as s:
            ids[package_name] = packages.create_package(s, seller, package_name, spec).id
    return seller, ids


def race(factory: sessionmaker[Session], actor: Actor,
         attempts: tuple[Attempt, Attempt]) -> list[str]:
    """Run both attempts at once, each in its own transaction; 'won' or the refusal's class."""
    barrier = threading.Barrier(len(attempts))
    outcomes: list[str] = ["unfinished"] * len(attempts)

    def contender(index: int, attempt: Attempt) -> None:
        try:
            with factory() as s, s.begin():
                # Open the transaction (and a connection) before the start signal.
                s.execute(select(1))
                barrier.wait(timeout=30)
                attempt(s, actor)
            outcomes[index] = "won"
        except LimitReached:
            outcomes[index] = "LimitReached"
        except Exception as exc:  # any other outcome fails the test, named
            outcomes[index] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=contender, args=(i, a)) for i, a in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


def new_customer(name: str, package_id: int) -> Attempt:
    def attempt(s: Session, actor: Actor) -> object:
        return resellers.create_customer(s, actor, name, PASSWORD, package_id=package_id)
    return attempt


def customers_of(factory: sessionmaker[Session], reseller: Actor) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(PanelUser).where(
            PanelUser.parent_id == reseller.user_id)) or 0


TINY = PackageSpec(max_domains=1, max_mailboxes=1, max_quota_per_mailbox=GiB,
                   max_total_quota=GiB)


@pytest.mark.usefixtures("slow_check")
def test_last_customer_slot(factory: sessionmaker[Session]) -> None:
    """max_customers: each round leaves one slot, two requests want it."""
    seller, ids = setup_reseller(
        factory, "rita", AllocationSpec(max_customers=1, max_domains=100,
                                        max_mailboxes=100, max_total_quota=100 * GiB),
        {"Tiny": TINY})
    for round_ in range(ROUNDS):
        outcome = race(factory, seller, (new_customer(f"a{round_}", ids["Tiny"]),
                                         new_customer(f"b{round_}", ids["Tiny"])))
        assert outcome == ["LimitReached", "won"], (round_, outcome)
        assert customers_of(factory, seller) == round_ + 1
        # Free the slot for the next round: raise the limit by one.
        with transaction(factory) as s:
            resellers.set_allocation(s, actor_of(factory, "root"), "rita", AllocationSpec(
                max_customers=round_ + 2, max_domains=100, max_mailboxes=100,
                max_total_quota=100 * GiB))


@pytest.mark.usefixtures("slow_check")
def test_last_mailboxes_of_the_allocation(factory: sessionmaker[Session]) -> None:
    """The sum of the packages' mailboxes: two customers on different packages want the last
    3 mailboxes of the allocation; a package assignment races a new customer too."""
    seller, ids = setup_reseller(
        factory, "rob", AllocationSpec(max_customers=100, max_domains=100, max_mailboxes=3,
                                       max_total_quota=100 * GiB),
        {"Three": TINY.replace(max_mailboxes=3, max_total_quota=3 * GiB),
         "Two": TINY.replace(max_mailboxes=2, max_total_quota=2 * GiB),
         "One": TINY})
    admin = actor_of(factory, "root")
    for round_ in range(ROUNDS):
        outcome = race(factory, seller, (new_customer(f"x{round_}", ids["Three"]),
                                         new_customer(f"y{round_}", ids["Two"])))
        assert outcome == ["LimitReached", "won"], (round_, outcome)
        assert customers_of(factory, seller) == 1
        # Start the next round empty again.
        with transaction(factory) as s:
            winner = s.scalars(select(PanelUser.username).where(
                PanelUser.parent_id == seller.user_id)).one()
        with transaction(factory) as s:
            resellers.delete_customer(s, seller, winner)
    # One customer on One holds 1 of 3; moving it to Three races a newcomer on Two.
    with transaction(factory) as s:
        resellers.create_customer(s, seller, "holder", PASSWORD, package_id=ids["One"])

    def move_holder(s: Session, actor: Actor) -> object:
        return packages.assign_package(s, actor, "holder", ids["Three"])

    outcome = race(factory, seller, (move_holder, new_customer("newcomer", ids["Two"])))
    assert outcome == ["LimitReached", "won"], outcome
    with factory() as s:
        given = packages.commitments(s, seller.user_id or 0)
        assert given.mailboxes is not None and given.mailboxes <= 3
        assert s.scalar(select(func.count()).select_from(Package)) == 3
    assert admin.role is Role.ADMIN


@pytest.mark.usefixtures("slow_check")
def test_raising_a_package_races_a_new_customer(factory: sessionmaker[Session]) -> None:
    """Editing a package that a customer is on promises more: it competes for the same slot."""
    seller, ids = setup_reseller(
        factory, "ron", AllocationSpec(max_customers=100, max_domains=100, max_mailboxes=4,
                                       max_total_quota=100 * GiB),
        {"Plan": TINY.replace(max_mailboxes=2, max_total_quota=2 * GiB), "One": TINY})
    with transaction(factory) as s:
        resellers.create_customer(s, seller, "first", PASSWORD, package_id=ids["Plan"])
    for round_ in range(ROUNDS):
        def grow(s: Session, actor: Actor) -> object:
            return packages.update_package(
                s, actor, ids["Plan"], TINY.replace(max_mailboxes=4, max_total_quota=4 * GiB))

        outcome = race(factory, seller, (grow, new_customer(f"n{round_}", ids["One"])))
        assert outcome == ["LimitReached", "won"], (round_, outcome)
        with factory() as s:
            given = packages.commitments(s, seller.user_id or 0)
            assert given.mailboxes is not None and given.mailboxes <= 4
            newcomer = s.scalars(select(PanelUser.username).where(
                PanelUser.username == f"n{round_}")).one_or_none()
        # Back to the start: Plan at 2 mailboxes, only "first" on it.
        with transaction(factory) as s:
            if newcomer is not None:
                resellers.delete_customer(s, seller, newcomer)
            packages.update_package(s, seller, ids["Plan"],
                                    TINY.replace(max_mailboxes=2, max_total_quota=2 * GiB))


@pytest.mark.usefixtures("slow_check")
def test_the_race_is_real_without_the_lock(factory: sessionmaker[Session],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The control experiment: with the lock taken out, both contenders win (the allocation
    is overrun), so the tests above would notice a missing or broken lock."""
    seller, ids = setup_reseller(
        factory, "rex", AllocationSpec(max_customers=1, max_domains=100, max_mailboxes=100,
                                       max_total_quota=100 * GiB),
        {"Tiny": TINY})
    monkeypatch.setattr(packages, "lock_reseller", lambda session, reseller_id: None)
    outcome = race(factory, seller, (new_customer("pat", ids["Tiny"]),
                                     new_customer("quinn", ids["Tiny"])))
    assert outcome == ["won", "won"]
    assert customers_of(factory, seller) == 2
