"""The test world, built once here for every test file: panel users, resellers with packages,
customers with domains and mailboxes.

Everything goes through the services, each step in its own committed transaction, as the panel
would do it; the one exception is `small_package`, which writes its row directly because its
limits (no SMTP, two domains) are below what a reseller's allocation check cares about.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import Package, PanelUser
from mailadmin.services import domains, mailboxes, packages, resellers
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec
from mailadmin.services.resellers import AllocationSpec

GiB = 1024**3
#: The panel password `make_user` gives everyone unless told otherwise.
PANEL_PASSWORD = "correct horse 9"
#: A mailbox password strong enough for every policy the tests set.
BOX_PASSWORD = "Tr0ub4dor&3-horse"
#: A reseller's allocation roomy enough for the worlds below.
ALLOCATION = AllocationSpec(max_customers=3, max_domains=6, max_mailboxes=15,
                            max_total_quota=15 * GiB)
#: A package with room for a domain or two and a few mailboxes.
PLAN = PackageSpec(max_domains=2, max_mailboxes=5, max_forwarders=5,
                   max_quota_per_mailbox=GiB, max_total_quota=5 * GiB)

Factory = sessionmaker[Session]


def actor(factory: Factory, name: str, *, channel: str = "panel",
          source: str | None = "127.0.0.1", when: dt.datetime | None = None) -> Actor:
    """The panel user `name` as an actor; `when` pins the clock its audit events are dated by."""
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
    found = Actor.for_user(user, channel=channel, source=source)
    if when is None:
        return found
    return dataclasses.replace(found, clock=lambda: when)


def run(factory: Factory, fn: t.Callable[..., t.Any], *args: t.Any, **kw: t.Any) -> t.Any:
    """`fn(session, *args, **kw)` in a transaction of its own."""
    with transaction(factory) as s:
        return fn(s, *args, **kw)


def user_id(factory: Factory, name: str) -> int:
    with factory() as s:
        return s.scalars(select(PanelUser.id).where(PanelUser.username == name)).one()


def make_reseller(factory: Factory, admin: Actor, name: str,
                  allocation: AllocationSpec = ALLOCATION,
                  password: str = PANEL_PASSWORD) -> Actor:
    run(factory, resellers.create_reseller, admin, name, password, allocation)
    return actor(factory, name)


def make_package(factory: Factory, seller: Actor, name: str = "Plan",
                 spec: PackageSpec = PLAN) -> int:
    package: Package = run(factory, packages.create_package, seller, name, spec)
    return package.id


def make_customer(factory: Factory, seller: Actor, name: str, package_id: int | None = None,
                  *, domain: str | None = None, addresses: Iterable[str] = (),
                  password: str = PANEL_PASSWORD) -> Actor:
    """A customer sold by `seller`, with optionally a domain and mailboxes on it."""
    run(factory, resellers.create_customer, seller, name, password, package_id=package_id)
    customer = actor(factory, name)
    if domain is not None:
        run(factory, domains.add_domain, customer, domain)
    for address in addresses:
        run(factory, mailboxes.create_mailbox, customer, address, BOX_PASSWORD)
    return customer


def reseller_world(factory: Factory, make_user: t.Callable[..., PanelUser],
                   tenants: dict[str, tuple[str, ...]] | None = None) -> dict[str, t.Any]:
    """root (admin); each reseller with a package "Plan" and customers, each customer with
    `<name>.example` and `info@<name>.example`. Default: rita sells to alice and bert, rob to
    carl. Returns the actors by name, "admin", and the package ids as "<reseller>_package"."""
    make_user("root", "admin")
    admin = actor(factory, "root")
    world: dict[str, t.Any] = {"admin": admin}
    for seller_name, customers in (tenants or {"rita": ("alice", "bert"),
                                               "rob": ("carl",)}).items():
        seller = make_reseller(factory, admin, seller_name)
        package_id = make_package(factory, seller)
        world[seller_name], world[f"{seller_name}_package"] = seller, package_id
        for name in customers:
            world[name] = make_customer(factory, seller, name, package_id,
                                        domain=f"{name}.example",
                                        addresses=[f"info@{name}.example"])
    return world


def small_package(factory: Factory, reseller: str, customer: str) -> int:
    """Package "Small" of `reseller` (2 domains, 3 mailboxes, 2 forwarders, no SMTP, 1 GiB
    default quota) given to `customer`."""
    with transaction(factory) as s:
        package = Package(
            owner_id=s.scalars(select(PanelUser.id).where(PanelUser.username == reseller)).one(),
            name="Small", max_domains=2, max_mailboxes=3, max_forwarders=2,
            max_quota_per_mailbox=2 * GiB, max_total_quota=5 * GiB,
            allow_unlimited_quota=False, allow_imap=True, allow_pop3=True, allow_smtp=False,
            default_quota=GiB, default_imap=True, default_pop3=True, default_smtp=True,
        )
        s.add(package)
        s.flush()
        owner = s.scalars(select(PanelUser).where(PanelUser.username == customer)).one()
        owner.package_id = package.id
        return package.id


def small_package_world(factory: Factory, make_user: t.Callable[..., PanelUser]) -> None:
    """Resellers rita and rob; alice (on rita's small package) and bert under rita, carl under
    rob; no domains yet."""
    make_user("rita", "reseller")
    make_user("rob", "reseller")
    make_user("alice", "customer", reseller="rita")
    make_user("bert", "customer", reseller="rita")
    make_user("carl", "customer", reseller="rob")
    small_package(factory, "rita", "alice")


def mail_account(factory: Factory, owner: Actor, domain: str,
                 boxes: dict[str, dict[str, t.Any]], password: str = BOX_PASSWORD) -> None:
    """`domain` for `owner` with the mailboxes `boxes` (address -> create_mailbox options)."""
    with transaction(factory) as s:
        domains.add_domain(s, owner, domain)
        for address, options in boxes.items():
            mailboxes.create_mailbox(s, owner, address, password, **options)
