"""Forwarders: an address handing mail on to one or more destinations, local or remote.

A forwarder at the address of a mailbox is that mailbox's forwarding; `keep_copy` then says
whether the mailbox keeps the message too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..errors import Conflict, NotFound, ValidationError
from ..models import Domain, Forwarder, ForwarderDestination, Mailbox, PanelUser
from ..names import address_to_unicode, domain_to_unicode, normalize_address, split_address
from . import limits as package_limits
from .audit import record_event
from .context import Actor
from .pagination import Page, clamp, paginate
from .scope import customer_ids_query, get_domain

MAX_DESTINATIONS = 50


@dataclass(frozen=True)
class ForwarderRow:
    id: int
    address: str
    unicode_address: str
    destinations: list[str]
    keep_copy: bool
    is_mailbox: bool


def _state(forwarder: Forwarder) -> dict[str, object]:
    return {
        "destinations": [d.address for d in forwarder.destinations],
        "keep_copy": forwarder.keep_copy,
    }


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    forwarder: Forwarder,
    domain: Domain,
    before: dict[str, object] | None,
    after: dict[str, object] | None,
) -> None:
    owner = session.get(PanelUser, domain.owner_id)
    record_event(
        session,
        actor,
        action,
        object_type="forwarder",
        object_id=forwarder.id,
        object_label=f"{forwarder.local_part}@{domain.name}",
        customer_id=domain.owner_id,
        reseller_id=owner.parent_id if owner else None,
        before=before,
        after=after,
    )


def _normalize_destinations(destinations: Sequence[str]) -> list[str]:
    cleaned: list[str] = []
    for raw in destinations:
        if not raw.strip():
            continue
        address = normalize_address(raw, field="destinations")
        if address not in cleaned:
            cleaned.append(address)
    if not cleaned:
        raise ValidationError("Give at least one destination address.", field="destinations")
    if len(cleaned) > MAX_DESTINATIONS:
        raise ValidationError(
            f"A forwarder has at most {MAX_DESTINATIONS} destinations.", field="destinations"
        )
    return cleaned


def find_forwarding_loop(
    session: Session, customer_id: int, source: str, destinations: list[str]
) -> list[str] | None:
    """The chain of the customer's forwarders that would lead from `source` back to itself."""
    rows = session.execute(
        select(Forwarder.local_part, Domain.name, ForwarderDestination.address)
        .join(Domain, Domain.id == Forwarder.domain_id)
        .join(ForwarderDestination, ForwarderDestination.forwarder_id == Forwarder.id)
        .where(Domain.owner_id == customer_id)
    ).all()
    graph: dict[str, list[str]] = {}
    for local, domain, destination in rows:
        graph.setdefault(f"{local}@{domain}", []).append(destination)
    graph[source] = list(destinations)
    path = [source]
    seen: set[str] = set()

    def walk(node: str) -> list[str] | None:
        for nxt in graph.get(node, []):
            if nxt == source:
                return [*path, source]
            if nxt in seen:
                continue
            seen.add(nxt)
            path.append(nxt)
            found = walk(nxt)
            if found:
                return found
            path.pop()
        return None

    return walk(source)


def _check_loop(session: Session, domain: Domain, source: str, destinations: list[str]) -> None:
    loop = find_forwarding_loop(session, domain.owner_id, source, destinations)
    if loop:
        chain = " → ".join(address_to_unicode(a) for a in loop)
        raise Conflict(f"That would make a forwarding loop: {chain}.", field="destinations")


def get_forwarder(session: Session, actor: Actor, address: str) -> Forwarder:
    local, domain_name = split_address(address, hosted=True)
    domain = get_domain(session, actor, domain_name)
    forwarder = session.scalars(
        select(Forwarder).where(Forwarder.domain_id == domain.id, Forwarder.local_part == local)
    ).one_or_none()
    if forwarder is None:
        raise NotFound(f"There is no forwarder {address!r} in your account.", field="address")
    return forwarder


def set_forwarder(
    session: Session,
    actor: Actor,
    address: str,
    destinations: Sequence[str],
    *,
    keep_copy: bool = False,
) -> Forwarder:
    """Create a forwarder, or replace the destinations of an existing one.

    At a mailbox's address this sets the mailbox's forwarding (with `keep_copy`); elsewhere it
    is a forwarder of its own and counts against the package. Raises InvalidName, Conflict
    (a loop), LimitReached, NotFound, ValidationError.
    """
    local, domain_name = split_address(address, hosted=True)
    domain = get_domain(session, actor, domain_name)
    source = f"{local}@{domain.name}"
    cleaned = _normalize_destinations(destinations)
    is_mailbox = (
        session.scalars(
            select(Mailbox.id).where(Mailbox.domain_id == domain.id, Mailbox.local_part == local)
        ).first()
        is not None
    )
    if not is_mailbox and keep_copy:
        raise ValidationError(
            "Only a mailbox can keep a copy; this address has no mailbox.", field="keep_copy"
        )
    if source in cleaned:
        raise Conflict(
            f"{address_to_unicode(source)} cannot forward to itself"
            + ("; tick 'keep a copy' instead." if is_mailbox else "."),
            field="destinations",
        )
    _check_loop(session, domain, source, cleaned)
    forwarder = session.scalars(
        select(Forwarder).where(Forwarder.domain_id == domain.id, Forwarder.local_part == local)
    ).one_or_none()
    before = _state(forwarder) if forwarder else None
    if forwarder is None:
        if not is_mailbox:
            owner = session.get(PanelUser, domain.owner_id)
            assert owner is not None
            package_limits.check_new_forwarder(
                session, owner, package_limits.limits_for(session, owner)
            )
        forwarder = Forwarder(domain_id=domain.id, local_part=local, created_at=actor.now())
        session.add(forwarder)
    forwarder.keep_copy = keep_copy if is_mailbox else False
    forwarder.destinations = [
        ForwarderDestination(address=dest, position=i) for i, dest in enumerate(cleaned)
    ]
    session.flush()
    _audit(
        session,
        actor,
        "forwarder.update" if before else "forwarder.create",
        forwarder,
        domain,
        before,
        _state(forwarder),
    )
    return forwarder


def remove_forwarder(session: Session, actor: Actor, address: str) -> None:
    forwarder = get_forwarder(session, actor, address)
    domain = forwarder.domain
    _audit(session, actor, "forwarder.delete", forwarder, domain, _state(forwarder), None)
    session.delete(forwarder)
    session.flush()


def list_forwarders(
    session: Session,
    actor: Actor,
    *,
    domain: str | None = None,
    search: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page[ForwarderRow]:
    mailbox_exists = (
        select(Mailbox.id)
        .where(Mailbox.domain_id == Forwarder.domain_id, Mailbox.local_part == Forwarder.local_part)
        .exists()
    )
    query = (
        select(Forwarder, Domain.name, mailbox_exists)
        .join(Domain, Domain.id == Forwarder.domain_id)
        .options(selectinload(Forwarder.destinations))
    )
    if domain:
        query = query.where(Forwarder.domain_id == get_domain(session, actor, domain).id)
    else:
        query = query.where(Domain.owner_id.in_(customer_ids_query(actor).scalar_subquery()))
    if search:
        local_prefix = search.strip().lower().partition("@")[0]
        if local_prefix:
            query = query.where(Forwarder.local_part.startswith(local_prefix, autoescape=True))
    query = query.order_by(Domain.name, Forwarder.local_part)
    page_ = paginate(session, query, *clamp(page, per_page))
    rows = [
        ForwarderRow(
            id=f.id,
            address=f"{f.local_part}@{name}",
            unicode_address=f"{f.local_part}@{domain_to_unicode(name)}",
            destinations=[address_to_unicode(d.address) for d in f.destinations],
            keep_copy=f.keep_copy,
            is_mailbox=bool(is_mailbox),
        )
        for f, name, is_mailbox in page_.items
    ]
    return Page(items=rows, page=page_.page, per_page=page_.per_page, total=page_.total)
