"""Resellers and their customers: allocations, creating customers, suspension, acting as.

Who may do what:

- The server admin creates resellers and sets their allocations (customers, domains, mailboxes,
  total quota, protocols), suspends and resumes them, and manages every customer.
- A reseller creates customers under itself, each on one of its packages; its customers'
  packages together never promise more than its allocation (see `packages`).
- Both may "act as" one of their customers: `start_acting_as` returns an Actor whose changes are
  audited as the reseller (`actor`) acting as the customer (`acting_as`).

Suspension: a suspended panel user cannot sign in, and its API tokens are refused. For a
customer the suspension also covers its mail (login, receiving and sending): the mailboxes keep
their own flags, untouched, and the mail stack treats every mailbox of a customer in
`scope.suspended_customer_ids_query()` as suspended, so resuming brings back exactly the
per-mailbox settings that were there before. Suspending a reseller locks out the reseller only;
its customers and their mail keep working (the server admin suspends them one by one if needed).

Every lookup is scoped in the query itself (`scope.customer_ids_query`); anything outside the
actor's reach is reported as not found.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import Conflict, LimitReached, NotFound, ValidationError
from ..models import Domain, Package, PanelUser, ResellerAllocation, Role
from . import accounts, packages
from . import limits as package_limits
from .audit import record_event
from .context import Actor
from .pagination import Page, clamp, paginate
from .scope import customer_ids_query, get_customer, require_admin, require_seller


@dataclass(frozen=True)
class AllocationSpec:
    """What the server admin grants a reseller; None means unlimited. Quota in bytes."""

    max_customers: int | None = None
    max_domains: int | None = None
    max_mailboxes: int | None = None
    max_total_quota: int | None = None
    allow_imap: bool = True
    allow_pop3: bool = True
    allow_smtp: bool = True

    @classmethod
    def of(cls, allocation: ResellerAllocation | None) -> AllocationSpec:
        if allocation is None:
            return cls()
        return cls(
            max_customers=allocation.max_customers,
            max_domains=allocation.max_domains,
            max_mailboxes=allocation.max_mailboxes,
            max_total_quota=allocation.max_total_quota,
            allow_imap=allocation.allow_imap,
            allow_pop3=allocation.allow_pop3,
            allow_smtp=allocation.allow_smtp,
        )

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ResellerRow:
    id: int
    username: str
    is_suspended: bool
    allocation: AllocationSpec
    given: packages.Commitments
    domains: int
    mailboxes: int


@dataclass(frozen=True)
class CustomerRow:
    id: int
    username: str
    reseller: str | None
    package_id: int | None
    package: str | None
    is_suspended: bool
    domains: int
    mailboxes: int
    quota_used: int
    max_domains: int | None
    max_mailboxes: int | None
    max_total_quota: int | None


# --- helpers ----------------------------------------------------------------------------------


def get_reseller(session: Session, actor: Actor, name: str) -> PanelUser:
    require_admin(actor, "manages resellers")
    reseller = session.scalars(
        select(PanelUser).where(
            PanelUser.username == name.strip().lower(), PanelUser.role == Role.RESELLER.value
        )
    ).one_or_none()
    if reseller is None:
        raise NotFound(f"There is no reseller {name!r}.", field="reseller")
    return reseller


def _check_allocation_spec(spec: AllocationSpec) -> None:
    for key in ("max_customers", "max_domains", "max_mailboxes", "max_total_quota"):
        value = getattr(spec, key)
        if value is not None and value < 0:
            raise ValidationError("A limit cannot be negative.", field=key)


def _customer_audit(session: Session, actor: Actor, action: str, customer: PanelUser,
                    before: t.Mapping[str, object] | None,
                    after: t.Mapping[str, object] | None) -> None:
    record_event(
        session, actor, action,
        object_type="panel_user", object_id=customer.id, object_label=customer.username,
        customer_id=customer.id, reseller_id=customer.parent_id, before=before, after=after,
    )


# --- resellers --------------------------------------------------------------------------------


def create_reseller(
    session: Session,
    actor: Actor,
    username: str,
    password: str,
    allocation: AllocationSpec,
    *,
    contact_email: str | None = None,
) -> PanelUser:
    """The server admin creates a reseller with its allocation."""
    require_admin(actor, "manages resellers")
    _check_allocation_spec(allocation)
    reseller = accounts.create_panel_user(
        session, actor, username, password, Role.RESELLER, contact_email=contact_email
    )
    session.add(ResellerAllocation(reseller_id=reseller.id, **allocation.as_dict()))
    session.flush()
    record_event(
        session, actor, "reseller.allocation",
        object_type="panel_user", object_id=reseller.id, object_label=reseller.username,
        reseller_id=reseller.id, before=None, after=allocation.as_dict(),
    )
    return reseller


def set_allocation(
    session: Session, actor: Actor, reseller_name: str, allocation: AllocationSpec
) -> ResellerAllocation:
    """Change a reseller's allocation; lowering it below what is given out is refused."""
    reseller = get_reseller(session, actor, reseller_name)
    _check_allocation_spec(allocation)
    packages.lock_reseller(session, reseller.id)
    given = packages.commitments(session, reseller.id)
    checks = (
        ("max_customers", "customers", allocation.max_customers, given.customers),
        ("max_domains", "domains", allocation.max_domains, given.domains),
        ("max_mailboxes", "mailboxes", allocation.max_mailboxes, given.mailboxes),
        ("max_total_quota", "total quota", allocation.max_total_quota, given.total_quota),
    )
    for key, label, new, used in checks:
        if new is None:
            continue
        if used is None:
            raise LimitReached(
                f"{reseller.username} has customers with unlimited {label}; give them packages "
                f"with a limit before limiting the allocation.",
                field=key,
            )
        if used > new:
            raise LimitReached(
                f"{reseller.username} has given out {packages._show(key, used)} {label}; the "
                f"new limit of {packages._show(key, new)} is lower.",
                field=key,
            )
    candidate = ResellerAllocation(reseller_id=reseller.id, **allocation.as_dict())
    for row in session.scalars(select(Package).where(Package.owner_id == reseller.id)):
        try:
            packages.check_package_within_allocation(
                candidate, packages.PackageSpec.of(row), reseller.username
            )
        except LimitReached as exc:
            raise LimitReached(f"Package {row.name}: {exc.message}", field=exc.field) from None
    current = session.get(ResellerAllocation, reseller.id)
    before = AllocationSpec.of(current).as_dict()
    if current is None:
        current = ResellerAllocation(reseller_id=reseller.id)
        session.add(current)
    for key, value in allocation.as_dict().items():
        setattr(current, key, value)
    session.flush()
    record_event(
        session, actor, "reseller.allocation",
        object_type="panel_user", object_id=reseller.id, object_label=reseller.username,
        reseller_id=reseller.id, before=before, after=allocation.as_dict(),
    )
    return current


def set_reseller_suspended(
    session: Session, actor: Actor, reseller_name: str, suspended: bool
) -> PanelUser:
    """Suspend (or resume) a reseller's panel access; its customers are not touched."""
    reseller = get_reseller(session, actor, reseller_name)
    before = {"is_suspended": reseller.is_suspended}
    reseller.is_suspended = suspended
    session.flush()
    record_event(
        session, actor, "reseller.suspend" if suspended else "reseller.resume",
        object_type="panel_user", object_id=reseller.id, object_label=reseller.username,
        reseller_id=reseller.id, before=before, after={"is_suspended": suspended},
    )
    return reseller


def _use_by_owner() -> tuple[t.Any, t.Any]:
    domains = (
        select(func.count()).select_from(Domain)
        .where(Domain.owner_id == PanelUser.id).correlate(PanelUser).scalar_subquery()
    )
    # the domains' mailbox counters (services.counters), not a count of every mailbox row
    mailboxes = (
        select(func.coalesce(func.sum(Domain.mailbox_count), 0))
        .where(Domain.owner_id == PanelUser.id)
        .correlate(PanelUser).scalar_subquery()
    )
    return domains, mailboxes


def list_resellers(
    session: Session, actor: Actor, *, search: str | None = None, page: int = 1,
    per_page: int = 50,
) -> Page[ResellerRow]:
    """Resellers with their allocations and what they have given out and use (admin only)."""
    require_admin(actor, "manages resellers")
    query = select(PanelUser).where(PanelUser.role == Role.RESELLER.value).order_by(
        PanelUser.username)
    if search:
        query = query.where(PanelUser.username.startswith(search.strip().lower(),
                                                          autoescape=True))
    page_ = paginate(session, query, *clamp(page, per_page))
    rows = []
    for (reseller,) in page_.items:
        of_reseller = select(PanelUser.id).where(PanelUser.parent_id == reseller.id)
        domains = session.scalar(
            select(func.count()).select_from(Domain).where(
                Domain.owner_id.in_(of_reseller.scalar_subquery()))) or 0
        mailboxes = int(session.scalar(
            select(func.coalesce(func.sum(Domain.mailbox_count), 0)).where(
                Domain.owner_id.in_(of_reseller.scalar_subquery()))) or 0)
        rows.append(ResellerRow(
            id=reseller.id, username=reseller.username, is_suspended=reseller.is_suspended,
            allocation=AllocationSpec.of(session.get(ResellerAllocation, reseller.id)),
            given=packages.commitments(session, reseller.id),
            domains=domains, mailboxes=mailboxes,
        ))
    return Page(items=rows, page=page_.page, per_page=page_.per_page, total=page_.total)


# --- customers --------------------------------------------------------------------------------


def create_customer(
    session: Session,
    actor: Actor,
    username: str,
    password: str,
    *,
    package_id: int | None = None,
    package_name: str | None = None,
    reseller_name: str | None = None,
    contact_email: str | None = None,
) -> PanelUser:
    """A reseller (or the server admin, optionally for a reseller) creates a customer.

    The package (by id or by name) must be the seller's own. Raises PermissionDenied,
    ValidationError, WeakPassword, Conflict, NotFound, LimitReached (allocation).
    """
    require_seller(actor)
    if actor.role is Role.RESELLER:
        seller_id = actor.user_id
        if reseller_name and reseller_name.strip().lower() != actor.name:
            raise NotFound(f"There is no reseller {reseller_name!r}.", field="reseller")
    elif reseller_name:
        seller_id = get_reseller(session, actor, reseller_name).id
    else:
        seller_id = None
    package: Package | None = None
    if package_id is not None:
        package = packages.get_package(session, actor, package_id)
    elif package_name:
        owner = None
        if seller_id is not None and actor.is_admin:
            seller = session.get(PanelUser, seller_id)
            owner = seller.username if seller else None
        package = packages.find_package(session, actor, package_name, owner=owner)
    if package is not None and seller_id is None and actor.is_admin:
        # The server admin picking a reseller's package means a customer of that reseller.
        owner_user = session.get(PanelUser, package.owner_id)
        if owner_user is not None and owner_user.role == Role.RESELLER.value:
            seller_id = owner_user.id
    if seller_id is not None:
        packages.lock_reseller(session, seller_id)
        allocation = packages.allocation_of(session, seller_id)
        if package is None and packages.requires_package(allocation):
            raise ValidationError("Choose a package for the customer.", field="package")
        others = packages.commitments(session, seller_id)
        packages.check_commitments_fit(
            allocation, others, packages.PackageSpec.of(package) if package else None,
            new_customers=1,
        )
    seller_user = session.get(PanelUser, seller_id) if seller_id is not None else None
    customer = accounts.create_panel_user(
        session, actor, username, password, Role.CUSTOMER,
        reseller_name=seller_user.username if seller_user and actor.is_admin else None,
        contact_email=contact_email,
    )
    packages.apply_package(session, actor, customer, package)
    _customer_audit(session, actor, "customer.package", customer, None,
                    {"package": package.name if package else None})
    return customer


def list_customers(
    session: Session, actor: Actor, *, search: str | None = None, page: int = 1,
    per_page: int = 50,
) -> Page[CustomerRow]:
    """The actor's customers with their use against their package, one page, searchable."""
    require_seller(actor)
    reseller = PanelUser.__table__.alias("reseller")
    domains, mailboxes = _use_by_owner()
    quota = (  # the domains' quota counters (services.counters)
        select(func.coalesce(func.sum(Domain.quota_total), 0))
        .where(Domain.owner_id == PanelUser.id)
        .correlate(PanelUser).scalar_subquery()
    )
    query = (
        select(PanelUser, reseller.c.username, Package, domains, mailboxes, quota)
        .outerjoin(reseller, reseller.c.id == PanelUser.parent_id)
        .outerjoin(Package, Package.id == PanelUser.package_id)
        .where(PanelUser.id.in_(customer_ids_query(actor).scalar_subquery()))
        .order_by(PanelUser.username)
    )
    if search:
        query = query.where(PanelUser.username.startswith(search.strip().lower(),
                                                          autoescape=True))
    page_ = paginate(session, query, *clamp(page, per_page))
    rows = [
        CustomerRow(
            id=user.id, username=user.username, reseller=reseller_name,
            package_id=package.id if package else None,
            package=package.name if package else None, is_suspended=user.is_suspended,
            domains=n_domains or 0, mailboxes=n_mailboxes or 0, quota_used=int(used or 0),
            max_domains=package.max_domains if package else None,
            max_mailboxes=package.max_mailboxes if package else None,
            max_total_quota=package.max_total_quota if package else None,
        )
        for user, reseller_name, package, n_domains, n_mailboxes, used in page_.items
    ]
    return Page(items=rows, page=page_.page, per_page=page_.per_page, total=page_.total)


def set_customer_suspended(
    session: Session, actor: Actor, customer_name: str, suspended: bool
) -> PanelUser:
    """Suspend (or resume) a customer: panel sign-in, API tokens and its mail (module doc)."""
    customer = get_customer(session, actor, customer_name)
    before = {"is_suspended": customer.is_suspended}
    customer.is_suspended = suspended
    session.flush()
    _customer_audit(session, actor, "customer.suspend" if suspended else "customer.resume",
                    customer, before, {"is_suspended": suspended})
    return customer


def delete_customer(session: Session, actor: Actor, customer_name: str) -> None:
    """Delete a customer that has no domains left."""
    customer = get_customer(session, actor, customer_name)
    domains = package_limits.count_domains(session, customer.id)
    if domains:
        raise Conflict(
            f"{customer.username} still has {domains} domain(s); remove them first.",
            field="customer",
        )
    _customer_audit(session, actor, "customer.delete", customer,
                    {"username": customer.username,
                     "package": customer.package.name if customer.package else None}, None)
    session.delete(customer)
    session.flush()


# --- acting as a customer ---------------------------------------------------------------------


def acting_actor(session: Session, actor: Actor, customer_id: int) -> Actor:
    """The actor acting as one of its customers (checked again on every request, not audited).

    Raises NotFound when the customer is gone or no longer the actor's.
    """
    require_seller(actor)
    customer = session.scalars(
        select(PanelUser).where(
            PanelUser.id == customer_id,
            PanelUser.id.in_(customer_ids_query(actor).scalar_subquery()),
        )
    ).one_or_none()
    if customer is None:
        raise NotFound("There is no such customer among yours.", field="customer")
    return actor.acting_for(customer)


def start_acting_as(session: Session, actor: Actor, customer_name: str) -> Actor:
    """Begin acting as one of the actor's customers; audited as who acted as whom."""
    customer = get_customer(session, actor, customer_name)
    acting = actor.acting_for(customer)
    record_event(
        session, acting, "customer.act_as",
        object_type="panel_user", object_id=customer.id, object_label=customer.username,
        customer_id=customer.id, reseller_id=customer.parent_id,
        after={"actor": actor.name, "acting_as": customer.username},
    )
    return acting


def stop_acting_as(session: Session, acting: Actor) -> None:
    """End acting as a customer; audited like the start."""
    if acting.acting_as is None or acting.customer_id is None:
        raise ValidationError("You are not acting as a customer.")
    customer = session.get(PanelUser, acting.customer_id)
    record_event(
        session, acting, "customer.act_as_end",
        object_type="panel_user", object_id=acting.customer_id, object_label=acting.acting_as,
        customer_id=acting.customer_id, reseller_id=customer.parent_id if customer else None,
        before={"actor": acting.name, "acting_as": acting.acting_as},
    )


def change_allocation(
    session: Session, actor: Actor, reseller_name: str, changes: t.Mapping[str, t.Any]
) -> ResellerAllocation:
    """`set_allocation`, changing only the limits in `changes` (field name: value)."""
    reseller = get_reseller(session, actor, reseller_name)
    unknown = set(changes) - set(AllocationSpec().as_dict())
    if unknown:
        raise ValidationError(f"Unknown allocation setting {sorted(unknown)[0]!r}.")
    current = AllocationSpec.of(session.get(ResellerAllocation, reseller.id)).as_dict()
    return set_allocation(session, actor, reseller.username,
                          AllocationSpec(**{**current, **changes}))
