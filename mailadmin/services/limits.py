"""Package limits. Every service that adds or grows something asks here first.

Messages name the limit and the current use ("Package allows 10 mailboxes; you have 10"), so
the customer knows what to remove or which package to ask for.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import LimitReached
from ..models import Domain, Forwarder, Mailbox, Package, PanelUser
from ..protocols import PROTOCOLS, Protocol
from ..sizes import format_size
from .context import Actor

#: {protocol: its name in limits and refusals}
PROTOCOL_LABELS: dict[Protocol, str] = {p: p.permission_label for p in PROTOCOLS}


@dataclass(frozen=True)
class Limits:
    """What a customer's package allows; None means unlimited."""

    package_name: str | None
    max_domains: int | None
    max_mailboxes: int | None
    max_forwarders: int | None
    max_quota_per_mailbox: int | None
    max_total_quota: int | None
    allow_unlimited_quota: bool
    protocols: frozenset[Protocol]
    default_quota: int
    default_protocols: frozenset[Protocol]

    @classmethod
    def unlimited(cls) -> Limits:
        return cls(
            package_name=None,
            max_domains=None,
            max_mailboxes=None,
            max_forwarders=None,
            max_quota_per_mailbox=None,
            max_total_quota=None,
            allow_unlimited_quota=True,
            protocols=frozenset(PROTOCOLS),
            default_quota=1024**3,
            default_protocols=frozenset(PROTOCOLS),
        )

    @classmethod
    def of_package(cls, package: Package) -> Limits:
        allowed = {p for p in PROTOCOLS if getattr(package, p.allow_field)}
        defaults = {p for p in PROTOCOLS if getattr(package, p.default_field)}
        return cls(
            package_name=package.name,
            max_domains=package.max_domains,
            max_mailboxes=package.max_mailboxes,
            max_forwarders=package.max_forwarders,
            max_quota_per_mailbox=package.max_quota_per_mailbox,
            max_total_quota=package.max_total_quota,
            allow_unlimited_quota=package.allow_unlimited_quota,
            protocols=frozenset(allowed),
            default_quota=package.default_quota,
            default_protocols=frozenset(defaults & allowed),
        )


def limits_for(session: Session, customer: PanelUser) -> Limits:
    """A customer without a package is bounded only by its reseller's checks (server admin's)."""
    if customer.package_id is None:
        return Limits.unlimited()
    package = session.get(Package, customer.package_id)
    return Limits.of_package(package) if package else Limits.unlimited()


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


def _customer_domains(customer_id: int) -> t.Any:
    return select(Domain.id).where(Domain.owner_id == customer_id).scalar_subquery()


def count_domains(session: Session, customer_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Domain).where(Domain.owner_id == customer_id)
        )
        or 0
    )


def count_mailboxes(session: Session, customer_id: int) -> int:
    """The customer's mailboxes, from its domains' counters (see `counters`)."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Domain.mailbox_count), 0))
            .where(Domain.owner_id == customer_id)
        )
        or 0
    )


def count_forwarders(session: Session, customer_id: int) -> int:
    """Forwarders that are addresses of their own (a mailbox's forwarding does not count)."""
    mailbox_at_same_address = (
        select(Mailbox.id)
        .where(Mailbox.domain_id == Forwarder.domain_id, Mailbox.local_part == Forwarder.local_part)
        .exists()
    )
    return (
        session.scalar(
            select(func.count())
            .select_from(Forwarder)
            .where(
                Forwarder.domain_id.in_(_customer_domains(customer_id)), ~mailbox_at_same_address
            )
        )
        or 0
    )


def total_quota(session: Session, customer_id: int, *, excluding_mailbox: int | None = None) -> int:
    """The quotas of the customer's mailboxes added up (from its domains' counters), less
    `excluding_mailbox`'s own."""
    total = int(
        session.scalar(
            select(func.coalesce(func.sum(Domain.quota_total), 0))
            .where(Domain.owner_id == customer_id)
        )
        or 0
    )
    if excluding_mailbox is not None:
        total -= session.scalar(
            select(Mailbox.quota).where(Mailbox.id == excluding_mailbox)
        ) or 0
    return total


def check_new_domain(session: Session, customer: PanelUser, limits: Limits) -> None:
    if limits.max_domains is not None:
        used = count_domains(session, customer.id)
        if used >= limits.max_domains:
            raise LimitReached(
                f"Package allows {_plural(limits.max_domains, 'domain')}; you have {used}."
            )


def check_new_mailbox(
    session: Session, customer: PanelUser, limits: Limits, *, adding: int = 1
) -> None:
    """Room for `adding` more mailboxes (an import adds many at once)."""
    if limits.max_mailboxes is not None:
        used = count_mailboxes(session, customer.id)
        if used + adding > limits.max_mailboxes:
            more = "" if adding == 1 else f" and would add {adding}"
            raise LimitReached(
                f"Package allows {_plural(limits.max_mailboxes, 'mailbox', 'mailboxes')}; "
                f"you have {used}{more}."
            )


def check_new_forwarder(session: Session, customer: PanelUser, limits: Limits) -> None:
    if limits.max_forwarders is not None:
        used = count_forwarders(session, customer.id)
        if used >= limits.max_forwarders:
            raise LimitReached(
                f"Package allows {_plural(limits.max_forwarders, 'forwarder')}; you have {used}."
            )


def check_quota(
    session: Session,
    customer: PanelUser,
    limits: Limits,
    quota: int,
    *,
    mailbox_id: int | None = None,
    others_total: int | None = None,
) -> None:
    """A mailbox quota (0 = unlimited) must fit the per-mailbox and the total limit.

    `others_total`, when given, is what the customer's other mailboxes take (an import that
    adds many mailboxes sums them once instead of asking the database per mailbox).
    """
    if quota == 0:
        if not limits.allow_unlimited_quota or limits.max_total_quota is not None:
            raise LimitReached(
                "Your package does not allow mailboxes without a quota; set a size.", field="quota"
            )
        return
    if limits.max_quota_per_mailbox is not None and quota > limits.max_quota_per_mailbox:
        raise LimitReached(
            f"Package allows at most {format_size(limits.max_quota_per_mailbox)} per mailbox; "
            f"you asked for {format_size(quota)}.",
            field="quota",
        )
    if limits.max_total_quota is not None:
        others = (
            total_quota(session, customer.id, excluding_mailbox=mailbox_id)
            if others_total is None
            else others_total
        )
        if others + quota > limits.max_total_quota:
            free = max(0, limits.max_total_quota - others)
            raise LimitReached(
                f"Package allows {format_size(limits.max_total_quota)} of quota in total; your "
                f"other mailboxes use {format_size(others) if others else '0 B'}, so "
                f"{format_size(free) if free else 'nothing'} is left for this one.",
                field="quota",
            )


def check_protocols(limits: Limits, requested: t.Mapping[Protocol, bool]) -> None:
    refused = [
        PROTOCOL_LABELS[p] for p, on in requested.items() if on and p not in limits.protocols
    ]
    if refused:
        raise LimitReached(
            f"Your package does not include {', '.join(refused)}.",
            field=next(p for p, on in requested.items() if on and p not in limits.protocols),
        )


# --- what is left: limits shown before a form is filled, not only after it is refused ---------


@dataclass(frozen=True)
class Use:
    """`used` of `limit` (None: no limit); sizes in bytes."""

    used: int
    limit: int | None

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    @property
    def full(self) -> bool:
        return self.limit is not None and self.used >= self.limit

    def text(self, noun: str, plural: str | None = None) -> str:
        """'3 of 5 mailboxes', '2 mailboxes (no limit)'."""
        word = noun if (self.limit if self.limit is not None else self.used) == 1 else (
            plural or noun + "s")
        if self.limit is None:
            return f"{self.used} {word} (no limit)"
        return f"{self.used} of {self.limit} {word}"

    def size_text(self) -> str:
        """'4 GiB of 5 GiB allocated'."""
        used = format_size(self.used) if self.used else "0 B"
        if self.limit is None:
            return f"{used} allocated (no limit)"
        return f"{used} of {format_size(self.limit)} allocated"


@dataclass(frozen=True)
class Allowance:
    """A customer's package, what it has used of it, and what a new mailbox would get."""

    package_name: str | None
    domains: Use
    mailboxes: Use
    forwarders: Use
    quota: Use
    max_quota_per_mailbox: int | None
    default_quota: int
    #: The largest quota a new mailbox can have now (None: no limit).
    new_mailbox_max_quota: int | None
    #: Why no mailbox can be added now, in the customer's words; None when one can.
    new_mailbox_refusal: str | None
    new_forwarder_refusal: str | None
    new_domain_refusal: str | None

    def largest_quota_for(self, current: int) -> int | None:
        """The largest quota an existing mailbox (now `current` bytes) can be given; None when
        the package sets no bound."""
        caps = [c for c in (
            self.max_quota_per_mailbox,
            None if self.quota.left is None else self.quota.left + current,
        ) if c is not None]
        return min(caps) if caps else None


def allowance(session: Session, customer: PanelUser) -> Allowance:
    limits = limits_for(session, customer)
    # domains, mailboxes and quota in one pass over the customer's domains' counters
    domain_count, mailbox_count, allocated = session.execute(
        select(func.count(Domain.id), func.coalesce(func.sum(Domain.mailbox_count), 0),
               func.coalesce(func.sum(Domain.quota_total), 0))
        .where(Domain.owner_id == customer.id)
    ).one()
    quota = Use(int(allocated), limits.max_total_quota)
    boxes = Use(int(mailbox_count), limits.max_mailboxes)
    forwarders = Use(count_forwarders(session, customer.id), limits.max_forwarders)
    domain_use = Use(int(domain_count), limits.max_domains)
    caps = [c for c in (limits.max_quota_per_mailbox, quota.left) if c is not None]
    new_max = min(caps) if caps else None
    ask = "Remove one, or ask your provider for a larger package."
    refusal = None
    if boxes.full:
        refusal = f"You have {boxes.text('mailbox', 'mailboxes')} your package allows. {ask}"
    elif quota.left == 0:
        refusal = (
            f"All {format_size(limits.max_total_quota or 0)} of quota in your package are given "
            "to your mailboxes. Lower a mailbox's quota first, or ask your provider for a "
            "larger package."
        )
    return Allowance(
        package_name=limits.package_name,
        domains=domain_use,
        mailboxes=boxes,
        forwarders=forwarders,
        quota=quota,
        max_quota_per_mailbox=limits.max_quota_per_mailbox,
        default_quota=limits.default_quota,
        new_mailbox_max_quota=new_max,
        new_mailbox_refusal=refusal,
        new_forwarder_refusal=(
            f"You have {forwarders.text('forwarder')} your package allows. {ask}"
            if forwarders.full else None
        ),
        new_domain_refusal=(
            f"You have {domain_use.text('domain')} your package allows. {ask}"
            if domain_use.full else None
        ),
    )


def allowance_for(session: Session, actor: Actor) -> Allowance | None:
    """The allowance of the customer the actor is (or acts as); None for a reseller or server
    admin working across customers, whose limits differ per customer."""
    if actor.customer_id is None:
        return None
    customer = session.get(PanelUser, actor.customer_id)
    return allowance(session, customer) if customer is not None else None
