"""Packages (plans) and the reseller allocations they must fit in.

A package belongs to a reseller (or to a server admin) and bounds the mail of the customers it is
assigned to. A reseller's allocation bounds the sum of what its customers' packages promise
(Plesk's rule: the parent's limit wins). We count promises rather than use: a package is a
promise to a customer, and a reseller that could promise more than it was given would have to
break one of those promises later. Because every customer's use is bounded by its package, the
use of all of a reseller's customers together is then bounded by the allocation as well.

Every check that compares against an allocation first locks the reseller's row (``SELECT ... FOR
UPDATE`` on PostgreSQL and MariaDB; SQLite serialises writers anyway), so two requests racing for
the last slot are decided one after the other.

Hosting people know cPanel's names for these limits (``MAXPOP``, ``MAX_EMAILACCT_QUOTA``, ...);
`CPANEL_ALIASES` maps them onto ours. The panel shows the plain words of `LIMIT_LABELS`.
"""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from ..errors import Conflict, LimitReached, NotFound, PermissionDenied, ValidationError
from ..models import Package, PanelUser, ResellerAllocation, Role
from ..sizes import format_size
from . import limits as package_limits
from .audit import record_event
from .context import Actor
from .scope import get_customer

PACKAGE_NAME_MAX = 64

#: Plain words for each limit, as the panel and the messages show them.
LIMIT_LABELS: dict[str, str] = {
    "max_domains": "domains",
    "max_mailboxes": "mailboxes",
    "max_forwarders": "forwarders",
    "max_quota_per_mailbox": "quota per mailbox",
    "max_total_quota": "total quota",
}

#: cPanel package keys accepted as aliases (values as cPanel writes them: sizes in MiB).
CPANEL_ALIASES: dict[str, str] = {
    "MAXPOP": "max_mailboxes",
    "MAXADDON": "max_domains",
    "MAXFWD": "max_forwarders",
    "MAX_EMAILACCT_QUOTA": "max_quota_per_mailbox",
    "QUOTA": "max_total_quota",
}
_CPANEL_SIZES = {"MAX_EMAILACCT_QUOTA", "QUOTA"}
_SIZE_FIELDS = {"max_quota_per_mailbox", "max_total_quota"}
PROTOCOLS = ("imap", "pop3", "smtp")


@dataclass(frozen=True)
class PackageSpec:
    """What a package allows; None means unlimited. Sizes in bytes."""

    max_domains: int | None = None
    max_mailboxes: int | None = None
    max_forwarders: int | None = None
    max_quota_per_mailbox: int | None = None
    max_total_quota: int | None = None
    allow_unlimited_quota: bool = False
    allow_imap: bool = True
    allow_pop3: bool = True
    allow_smtp: bool = True
    default_quota: int = 1024**3
    default_imap: bool = True
    default_pop3: bool = True
    default_smtp: bool = True

    @classmethod
    def of(cls, package: Package) -> PackageSpec:
        return cls(**{f.name: getattr(package, f.name) for f in dataclasses.fields(cls)})

    def replace(self, **changes: t.Any) -> PackageSpec:
        return dataclasses.replace(self, **changes)

    @property
    def effective_total_quota(self) -> int | None:
        """The most quota a customer on this package can ever hold (None: no bound)."""
        return effective_total_quota(
            self.max_total_quota, self.max_mailboxes, self.max_quota_per_mailbox,
            self.allow_unlimited_quota,
        )


def effective_total_quota(
    total: int | None, mailboxes: int | None, per_mailbox: int | None, unlimited_ok: bool
) -> int | None:
    bounds = []
    if total is not None:
        bounds.append(total)
    if mailboxes is not None and per_mailbox is not None and not unlimited_ok:
        bounds.append(mailboxes * per_mailbox)
    return min(bounds) if bounds else None


def spec_from_cpanel(values: t.Mapping[str, str | int | None]) -> dict[str, int | None]:
    """cPanel package keys (``MAXPOP=10``, ``MAX_EMAILACCT_QUOTA=1024`` in MiB) as our fields.

    "unlimited", an empty value or None means unlimited. Unknown keys are refused.
    """
    out: dict[str, int | None] = {}
    for key, raw in values.items():
        name = CPANEL_ALIASES.get(key.upper())
        if name is None:
            raise ValidationError(f"Unknown package key {key!r}.", field="package")
        if raw is None or str(raw).strip().lower() in {"", "unlimited"}:
            out[name] = None
            continue
        try:
            number = int(str(raw).strip())
        except ValueError:
            raise ValidationError(f"{key} must be a number or 'unlimited'.", field=name) from None
        out[name] = number * 1024**2 if key.upper() in _CPANEL_SIZES else number
    return out


@dataclass(frozen=True)
class PackageRow:
    id: int
    name: str
    owner: str
    customers: int
    spec: PackageSpec

    def label(self, field: str) -> str:
        """A limit in plain words ("10", "2 GiB", "unlimited")."""
        value = getattr(self.spec, field)
        if value is None:
            return "unlimited"
        return format_size(value) if field in _SIZE_FIELDS else str(value)

    @property
    def protocols(self) -> list[str]:
        return [
            package_limits.PROTOCOL_LABELS[p] for p in PROTOCOLS if getattr(self.spec, f"allow_{p}")
        ]


# --- shape ------------------------------------------------------------------------------------


def normalize_package_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > PACKAGE_NAME_MAX or not cleaned.isprintable():
        raise ValidationError(
            f"A package name is 1 to {PACKAGE_NAME_MAX} printable characters.", field="name"
        )
    return cleaned


def check_spec(spec: PackageSpec) -> None:
    """Numbers are not negative, defaults fit the package's own limits."""
    for field_name, label in LIMIT_LABELS.items():
        value = getattr(spec, field_name)
        if value is not None and value < 0:
            raise ValidationError(f"The limit on {label} cannot be negative.", field=field_name)
    if spec.default_quota < 0:
        raise ValidationError("The default quota cannot be negative.", field="default_quota")
    if spec.default_quota == 0 and (not spec.allow_unlimited_quota or spec.max_total_quota):
        raise ValidationError(
            "A default quota of 0 (unlimited) needs a package that allows unlimited mailboxes "
            "and has no total quota.",
            field="default_quota",
        )
    if spec.max_quota_per_mailbox is not None and spec.default_quota > spec.max_quota_per_mailbox:
        raise ValidationError(
            f"The default quota ({format_size(spec.default_quota)}) is larger than the quota "
            f"per mailbox ({format_size(spec.max_quota_per_mailbox)}).",
            field="default_quota",
        )
    for protocol in PROTOCOLS:
        if getattr(spec, f"default_{protocol}") and not getattr(spec, f"allow_{protocol}"):
            raise ValidationError(
                f"New mailboxes cannot get {package_limits.PROTOCOL_LABELS[protocol]} by default "
                "when the package does not allow it.",
                field=f"default_{protocol}",
            )


def _show(field_name: str, value: int | None) -> str:
    if value is None:
        return "unlimited"
    return format_size(value) if field_name in _SIZE_FIELDS or field_name == "quota" else str(value)


# --- scope ------------------------------------------------------------------------------------


def package_owner_ids(actor: Actor) -> Select[int]:
    """Whose packages the actor manages: a reseller its own, a server admin everybody's."""
    if actor.role is Role.RESELLER and actor.acting_as is None:
        return select(PanelUser.id).where(PanelUser.id == actor.user_id)
    if actor.role is Role.ADMIN:
        return select(PanelUser.id).where(
            PanelUser.role.in_([Role.ADMIN.value, Role.RESELLER.value])
        )
    raise PermissionDenied("Only resellers and the server admin manage packages.")


def get_package(session: Session, actor: Actor, package_id: int) -> Package:
    """A package the actor manages, by id; any other id is not found."""
    package = session.scalars(
        select(Package).where(
            Package.id == package_id,
            Package.owner_id.in_(package_owner_ids(actor).scalar_subquery()),
        )
    ).one_or_none()
    if package is None:
        raise NotFound("There is no such package among yours.", field="package")
    return package


def find_package(
    session: Session, actor: Actor, name: str, *, owner: str | None = None
) -> Package:
    """A package the actor manages, by name (and owner, for a server admin naming a reseller's).

    Without `owner` a reseller means its own packages and a server admin the admins' packages.
    """
    query = select(Package).where(
        Package.name == " ".join(name.split()),
        Package.owner_id.in_(package_owner_ids(actor).scalar_subquery()),
    )
    if owner:
        query = query.join(PanelUser, PanelUser.id == Package.owner_id).where(
            PanelUser.username == owner.strip().lower()
        )
    elif actor.role is Role.ADMIN:
        query = query.join(PanelUser, PanelUser.id == Package.owner_id).where(
            PanelUser.role == Role.ADMIN.value
        )
    found = session.scalars(query).all()
    if not found:
        raise NotFound(f"There is no package {name!r} among yours.", field="package")
    if len(found) > 1:
        raise ValidationError(f"Several packages are called {name!r}; give the owner.",
                              field="package")
    return found[0]


def _resolve_owner(session: Session, actor: Actor, owner: str | None) -> PanelUser:
    if actor.role is Role.RESELLER and actor.acting_as is None:
        if owner and owner.strip().lower() != actor.name:
            raise NotFound(f"There is no reseller {owner!r}.", field="owner")
        me = session.get(PanelUser, actor.user_id)
        if me is None:
            raise NotFound("Your account no longer exists.")
        return me
    if actor.role is not Role.ADMIN:
        raise PermissionDenied("Only resellers and the server admin manage packages.")
    if owner:
        user = session.scalars(
            select(PanelUser).where(
                PanelUser.username == owner.strip().lower(),
                PanelUser.role.in_([Role.ADMIN.value, Role.RESELLER.value]),
            )
        ).one_or_none()
        if user is None:
            raise NotFound(f"There is no reseller or admin {owner!r}.", field="owner")
        return user
    if actor.user_id is None:
        raise ValidationError("Name the reseller or admin who offers the package.", field="owner")
    me = session.get(PanelUser, actor.user_id)
    if me is None:
        raise NotFound("Your account no longer exists.")
    return me


# --- allocations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Commitments:
    """What a reseller has given out: the sums of its customers' package limits.

    A sum is None when some customer has no bound on it (no package, or an unlimited limit).
    """

    customers: int
    domains: int | None
    mailboxes: int | None
    total_quota: int | None


def lock_reseller(session: Session, reseller_id: int) -> None:
    """Serialise allocation checks of one reseller (see the module docstring)."""
    session.execute(
        select(PanelUser.id).where(PanelUser.id == reseller_id).with_for_update()
    ).all()


def _quota_expr() -> t.Any:
    product = Package.max_mailboxes * Package.max_quota_per_mailbox
    bounded_product = case(
        (Package.allow_unlimited_quota.is_(False), product), else_=None
    )
    return case(
        (Package.max_total_quota.is_(None), bounded_product),
        (bounded_product.is_(None), Package.max_total_quota),
        (Package.max_total_quota <= bounded_product, Package.max_total_quota),
        else_=bounded_product,
    )


def commitments(
    session: Session,
    reseller_id: int,
    *,
    without_customer: int | None = None,
    without_package: int | None = None,
) -> Commitments:
    """Sum the packages of the reseller's customers, leaving out one customer or one package."""

    def unbounded(column: t.Any) -> t.Any:
        return func.sum(case((column.is_(None), 1), else_=0))

    quota = _quota_expr()
    query = (
        select(
            func.count(PanelUser.id),
            func.sum(Package.max_domains),
            unbounded(Package.max_domains),
            func.sum(Package.max_mailboxes),
            unbounded(Package.max_mailboxes),
            func.sum(quota),
            unbounded(quota),
        )
        .select_from(PanelUser)
        .outerjoin(Package, Package.id == PanelUser.package_id)
        .where(PanelUser.parent_id == reseller_id, PanelUser.role == Role.CUSTOMER.value)
    )
    if without_customer is not None:
        query = query.where(PanelUser.id != without_customer)
    if without_package is not None:
        query = query.where(or_(PanelUser.package_id.is_(None),
                                PanelUser.package_id != without_package))
    row = session.execute(query).one()
    count, domains, open_domains, mailboxes, open_mailboxes, total, open_total = row
    return Commitments(
        customers=int(count or 0),
        domains=None if open_domains else int(domains or 0),
        mailboxes=None if open_mailboxes else int(mailboxes or 0),
        total_quota=None if open_total else int(total or 0),
    )


def requires_package(allocation: ResellerAllocation | None) -> bool:
    """A reseller with limits can only give out bounded customers, so each needs a package."""
    return allocation is not None and any(
        v is not None
        for v in (allocation.max_domains, allocation.max_mailboxes, allocation.max_total_quota)
    )


def allocation_of(session: Session, reseller_id: int) -> ResellerAllocation | None:
    return session.get(ResellerAllocation, reseller_id)


def check_package_within_allocation(
    allocation: ResellerAllocation | None, spec: PackageSpec, reseller: str
) -> None:
    """One package alone may not promise more than the whole allocation."""
    if allocation is None:
        return
    pairs = (
        ("max_domains", allocation.max_domains, spec.max_domains),
        ("max_mailboxes", allocation.max_mailboxes, spec.max_mailboxes),
        ("max_total_quota", allocation.max_total_quota, spec.effective_total_quota),
    )
    for field_name, allowed, offered in pairs:
        if allowed is None:
            continue
        if offered is None:
            raise LimitReached(
                f"Your allocation allows {_show(field_name, allowed)} "
                f"{LIMIT_LABELS[field_name]}; a package cannot offer unlimited "
                f"{LIMIT_LABELS[field_name]}.",
                field=field_name,
            )
        if offered > allowed:
            raise LimitReached(
                f"Your allocation allows {_show(field_name, allowed)} "
                f"{LIMIT_LABELS[field_name]}; the package offers {_show(field_name, offered)}.",
                field=field_name,
            )
    for protocol in PROTOCOLS:
        if getattr(spec, f"allow_{protocol}") and not getattr(allocation, f"allow_{protocol}"):
            raise LimitReached(
                f"The allocation of {reseller} does not include "
                f"{package_limits.PROTOCOL_LABELS[protocol]}.",
                field=f"allow_{protocol}",
            )


def check_commitments_fit(
    allocation: ResellerAllocation | None,
    others: Commitments,
    added: PackageSpec | None,
    *,
    times: int = 1,
    new_customers: int = 0,
) -> None:
    """The other customers' packages plus `times` customers on `added` must fit the allocation.

    `added` None stands for customers without a package (unbounded).
    """
    if allocation is None:
        return
    if (
        allocation.max_customers is not None
        and new_customers
        and others.customers + new_customers > allocation.max_customers
    ):
        raise LimitReached(
            f"Your allocation allows {allocation.max_customers} customers; you have "
            f"{others.customers}.",
            field="username",
        )
    sums = (
        ("max_domains", allocation.max_domains, others.domains,
         added.max_domains if added else None),
        ("max_mailboxes", allocation.max_mailboxes, others.mailboxes,
         added.max_mailboxes if added else None),
        ("max_total_quota", allocation.max_total_quota, others.total_quota,
         added.effective_total_quota if added else None),
    )
    for field_name, allowed, given, extra in sums:
        if allowed is None or times == 0:
            continue
        label = LIMIT_LABELS[field_name]
        if given is None or extra is None:
            raise LimitReached(
                f"Your allocation allows {_show(field_name, allowed)} {label}; every customer "
                f"needs a package with a limit on {label}.",
                field="package",
            )
        if given + extra * times > allowed:
            raise LimitReached(
                f"Your allocation allows {_show(field_name, allowed)} {label}; your customers' "
                f"packages already give out {_show(field_name, given)}, and this would add "
                f"{_show(field_name, extra * times)}.",
                field="package",
            )


# --- customer use against a package -----------------------------------------------------------


def check_use_fits(session: Session, customer: PanelUser, spec: PackageSpec, package: str) -> None:
    """Refuse a package smaller than what the customer already uses, naming limit and use."""
    cid = customer.id
    uses: list[tuple[str, int | None, int]] = [
        ("max_domains", spec.max_domains, package_limits.count_domains(session, cid)),
        ("max_mailboxes", spec.max_mailboxes, package_limits.count_mailboxes(session, cid)),
        ("max_forwarders", spec.max_forwarders, package_limits.count_forwarders(session, cid)),
        ("max_total_quota", spec.max_total_quota, package_limits.total_quota(session, cid)),
    ]
    for field_name, allowed, used in uses:
        if allowed is not None and used > allowed:
            raise LimitReached(
                f"Package {package} allows {_show(field_name, allowed)} "
                f"{LIMIT_LABELS[field_name]}; {customer.username} has {_show(field_name, used)}.",
                field="package",
            )
    from ..models import Domain, Mailbox

    in_customer = Mailbox.domain_id.in_(
        select(Domain.id).where(Domain.owner_id == cid).scalar_subquery()
    )
    if spec.max_quota_per_mailbox is not None:
        largest = session.scalar(
            select(func.max(Mailbox.quota)).where(in_customer)
        ) or 0
        unlimited = session.scalar(
            select(func.count()).select_from(Mailbox).where(in_customer, Mailbox.quota == 0)
        ) or 0
        if largest > spec.max_quota_per_mailbox or (unlimited and not spec.allow_unlimited_quota):
            shown = "a mailbox without a quota" if unlimited else (
                f"a mailbox of {format_size(largest)}")
            raise LimitReached(
                f"Package {package} allows {format_size(spec.max_quota_per_mailbox)} per "
                f"mailbox; {customer.username} has {shown}.",
                field="package",
            )
    for protocol in PROTOCOLS:
        if getattr(spec, f"allow_{protocol}"):
            continue
        using = session.scalar(
            select(func.count()).select_from(Mailbox).where(
                in_customer, getattr(Mailbox, protocol).is_(True)
            )
        ) or 0
        if using:
            raise LimitReached(
                f"Package {package} does not include {package_limits.PROTOCOL_LABELS[protocol]}; "
                f"{customer.username} has {using} mailbox(es) using it.",
                field="package",
            )


# --- audit ------------------------------------------------------------------------------------


def _state(package: Package) -> dict[str, object]:
    return {"name": package.name, **dataclasses.asdict(PackageSpec.of(package))}


def _audit(session: Session, actor: Actor, action: str, package: Package,
           before: dict[str, object] | None, after: dict[str, object] | None) -> None:
    owner = session.get(PanelUser, package.owner_id)
    record_event(
        session, actor, action,
        object_type="package", object_id=package.id, object_label=package.name,
        reseller_id=owner.id if owner is not None and owner.role == Role.RESELLER else None,
        before=before, after=after,
    )


# --- operations -------------------------------------------------------------------------------


def create_package(
    session: Session, actor: Actor, name: str, spec: PackageSpec, *, owner: str | None = None
) -> Package:
    """Create a package offered by the actor (a server admin may name a reseller as `owner`).

    Raises ValidationError, Conflict (the owner has a package of that name), LimitReached (it
    does not fit the reseller's allocation), PermissionDenied, NotFound.
    """
    clean = normalize_package_name(name)
    check_spec(spec)
    seller = _resolve_owner(session, actor, owner)
    if seller.role == Role.RESELLER:
        lock_reseller(session, seller.id)
        check_package_within_allocation(allocation_of(session, seller.id), spec, seller.username)
    taken = session.scalars(
        select(Package.id).where(Package.owner_id == seller.id, Package.name == clean)
    ).first()
    if taken is not None:
        raise Conflict(f"There is a package called {clean!r} already.", field="name")
    package = Package(owner_id=seller.id, name=clean, created_at=actor.now(),
                      **dataclasses.asdict(spec))
    session.add(package)
    session.flush()
    _audit(session, actor, "package.create", package, None, _state(package))
    return package


def update_package(
    session: Session, actor: Actor, package_id: int, spec: PackageSpec, *, name: str | None = None
) -> Package:
    """Change a package's limits (and name). Every customer on it must still fit, and the
    reseller's customers together must still fit its allocation."""
    package = get_package(session, actor, package_id)
    check_spec(spec)
    clean = normalize_package_name(name) if name is not None else package.name
    seller = session.get(PanelUser, package.owner_id)
    assert seller is not None
    if clean != package.name and session.scalars(
        select(Package.id).where(Package.owner_id == seller.id, Package.name == clean)
    ).first() is not None:
        raise Conflict(f"There is a package called {clean!r} already.", field="name")
    customers = list(session.scalars(
        select(PanelUser).where(PanelUser.package_id == package.id).order_by(PanelUser.username)
    ))
    for customer in customers:
        check_use_fits(session, customer, spec, clean)
    if seller.role == Role.RESELLER:
        lock_reseller(session, seller.id)
        allocation = allocation_of(session, seller.id)
        check_package_within_allocation(allocation, spec, seller.username)
        on_it = [c for c in customers if c.parent_id == seller.id]
        others = commitments(session, seller.id, without_package=package.id)
        check_commitments_fit(allocation, others, spec, times=len(on_it))
    before = _state(package)
    package.name = clean
    for key, value in dataclasses.asdict(spec).items():
        setattr(package, key, value)
    session.flush()
    _audit(session, actor, "package.update", package, before, _state(package))
    return package


def delete_package(session: Session, actor: Actor, package_id: int) -> None:
    """Delete a package no customer is on."""
    package = get_package(session, actor, package_id)
    users = session.scalar(
        select(func.count()).select_from(PanelUser).where(PanelUser.package_id == package.id)
    ) or 0
    if users:
        raise Conflict(
            f"{users} customer(s) are on the package {package.name}; give them another first."
        )
    _audit(session, actor, "package.delete", package, _state(package), None)
    session.delete(package)
    session.flush()


def list_packages(session: Session, actor: Actor) -> list[PackageRow]:
    """The packages the actor manages, with how many customers are on each."""
    on_it = (
        select(func.count())
        .select_from(PanelUser)
        .where(PanelUser.package_id == Package.id)
        .correlate(Package)
        .scalar_subquery()
    )
    owner = select(PanelUser.username).where(PanelUser.id == Package.owner_id).correlate(
        Package).scalar_subquery()
    rows = session.execute(
        select(Package, owner, on_it)
        .where(Package.owner_id.in_(package_owner_ids(actor).scalar_subquery()))
        .order_by(owner, Package.name)
        .limit(1000)
    ).all()
    return [
        PackageRow(id=p.id, name=p.name, owner=o, customers=n or 0, spec=PackageSpec.of(p))
        for p, o, n in rows
    ]


def packages_for_customer_of(session: Session, actor: Actor,
                             reseller: PanelUser | None) -> list[PackageRow]:
    """The packages a customer of `reseller` (None: of the server admin) may be put on."""
    return [row for row in list_packages(session, actor)
            if _may_offer(session, row.id, reseller)]


def _may_offer(session: Session, package_id: int, reseller: PanelUser | None) -> bool:
    package = session.get(Package, package_id)
    if package is None:
        return False
    if reseller is not None:
        return package.owner_id == reseller.id
    owner = session.get(PanelUser, package.owner_id)
    return owner is not None and owner.role == Role.ADMIN


def apply_package(
    session: Session, actor: Actor, customer: PanelUser, package: Package | None
) -> None:
    """Put a customer the caller has already scoped on `package` (None: no package).

    The package must be offered by the customer's reseller (by a server admin for the admin's
    own customers), the customer's use must fit it, and the reseller's allocation must hold.
    """
    reseller = session.get(PanelUser, customer.parent_id) if customer.parent_id else None
    if package is not None and not _may_offer(session, package.id, reseller):
        raise NotFound("There is no such package among yours.", field="package")
    if (
        package is None
        and reseller is not None
        and requires_package(allocation_of(session, reseller.id))
    ):
        raise ValidationError("Choose a package for the customer.", field="package")
    spec = PackageSpec.of(package) if package is not None else None
    if spec is not None and package is not None:
        check_use_fits(session, customer, spec, package.name)
    if reseller is not None:
        lock_reseller(session, reseller.id)
        allocation = allocation_of(session, reseller.id)
        others = commitments(session, reseller.id, without_customer=customer.id)
        check_commitments_fit(allocation, others, spec)
    customer.package_id = package.id if package is not None else None
    session.flush()


def assign_package(
    session: Session, actor: Actor, customer_name: str, package_id: int | None
) -> PanelUser:
    """Put one of the actor's customers on another package (None: no package, admin's only).

    Raises NotFound (customer or package out of reach), LimitReached (the customer uses more
    than the package allows, or the reseller's allocation would be exceeded).
    """
    customer = get_customer(session, actor, customer_name)
    before = {"package": customer.package.name if customer.package else None}
    package = None
    if package_id is not None:
        package = session.scalars(
            select(Package).where(
                Package.id == package_id,
                Package.owner_id.in_(package_owner_ids(actor).scalar_subquery()),
            )
        ).one_or_none()
        if package is None:
            raise NotFound("There is no such package among yours.", field="package")
    apply_package(session, actor, customer, package)
    record_event(
        session, actor, "customer.package",
        object_type="panel_user", object_id=customer.id, object_label=customer.username,
        customer_id=customer.id, reseller_id=customer.parent_id,
        before=before, after={"package": package.name if package else None},
    )
    return customer


def change_package(
    session: Session,
    actor: Actor,
    name: str,
    changes: t.Mapping[str, t.Any],
    *,
    owner: str | None = None,
    rename: str | None = None,
) -> Package:
    """`update_package` by name, changing only the limits in `changes` (field name: value)."""
    package = find_package(session, actor, name, owner=owner)
    unknown = set(changes) - {f.name for f in dataclasses.fields(PackageSpec)}
    if unknown:
        raise ValidationError(f"Unknown package setting {sorted(unknown)[0]!r}.")
    spec = PackageSpec.of(package).replace(**changes)
    return update_package(session, actor, package.id, spec, name=rename)


def remove_package(session: Session, actor: Actor, name: str, *, owner: str | None = None) -> None:
    """`delete_package` by name."""
    delete_package(session, actor, find_package(session, actor, name, owner=owner).id)


def assign_package_by_name(
    session: Session, actor: Actor, customer_name: str, package_name: str,
    *, owner: str | None = None,
) -> PanelUser:
    """`assign_package` with the package given by name (the customer's seller's package)."""
    if owner is None and actor.is_admin:
        customer = get_customer(session, actor, customer_name)
        parent = session.get(PanelUser, customer.parent_id) if customer.parent_id else None
        owner = parent.username if parent else None
    return assign_package(
        session, actor, customer_name, find_package(session, actor, package_name, owner=owner).id
    )
