"""Tenant boundaries: which customers, domains and addresses an actor may see and change.

An object outside the actor's reach is reported as not found, never as forbidden, so that a
customer cannot learn which domains or addresses other customers have.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ..errors import NotFound, PermissionDenied, ValidationError
from ..models import Domain, PanelUser, Role
from ..names import normalize_domain
from .context import Actor


def customer_ids_query(actor: Actor) -> Select[int]:
    """The ids of the customers whose mail the actor manages."""
    query = select(PanelUser.id).where(PanelUser.role == Role.CUSTOMER.value)
    if actor.role is Role.CUSTOMER:
        return query.where(PanelUser.id == actor.customer_id)
    if actor.role is Role.RESELLER:
        return query.where(PanelUser.parent_id == actor.user_id)
    return query


def suspended_customer_ids_query() -> Select[int]:
    """Customers whose mail is suspended as a whole (the customer itself is suspended).

    The mail stack treats every mailbox of these customers as suspended for login, receiving and
    sending, without touching the mailboxes' own flags (see `resellers`).
    """
    return select(PanelUser.id).where(PanelUser.mail_suspended)


def require_admin(actor: Actor, doing: str) -> None:
    """Refuse everybody but the server admin (a reseller or admin acting as a customer has a
    customer's role, so it is refused too); `doing` ends "Only the server admin ..."."""
    if actor.role is not Role.ADMIN:
        raise PermissionDenied(f"Only the server admin {doing}.")


def require_seller(actor: Actor) -> None:
    """Only resellers and the server admin, not acting as a customer, manage customers."""
    if actor.role not in (Role.ADMIN, Role.RESELLER) or actor.acting_as is not None:
        raise PermissionDenied("Only resellers and the server admin manage customers.")


def get_customer(session: Session, actor: Actor, name: str) -> PanelUser:
    """One of the actor's customers by user name; every other name is not found."""
    require_seller(actor)
    customer = session.scalars(
        select(PanelUser).where(
            PanelUser.username == name.strip().lower(),
            PanelUser.id.in_(customer_ids_query(actor).scalar_subquery()),
        )
    ).one_or_none()
    if customer is None:
        raise NotFound(f"There is no customer {name!r}.", field="customer")
    return customer


def may_manage_customer(actor: Actor, customer: PanelUser) -> bool:
    if customer.role != Role.CUSTOMER.value:
        return False
    if actor.role is Role.ADMIN:
        return True
    if actor.role is Role.RESELLER:
        return customer.parent_id == actor.user_id
    return customer.id == actor.customer_id


def resolve_customer(session: Session, actor: Actor, customer_name: str | None) -> PanelUser:
    """The customer a new domain belongs to.

    A customer acts for itself; a reseller or the server admin must name one of their customers.
    """
    if actor.role is Role.CUSTOMER:
        if customer_name and customer_name.strip().lower() != actor.customer_name:
            raise NotFound(f"There is no customer {customer_name!r}.", field="customer")
        customer = session.get(PanelUser, actor.customer_id)
        if customer is None:
            raise NotFound("Your account no longer exists.")
        return customer
    if not customer_name:
        raise ValidationError("Name the customer the domain belongs to.", field="customer")
    # Scoped in the query itself: a customer out of reach is never loaded, only not found.
    customer = session.scalars(
        select(PanelUser).where(
            PanelUser.username == customer_name.strip().lower(),
            PanelUser.id.in_(customer_ids_query(actor).scalar_subquery()),
        )
    ).one_or_none()
    if customer is None:
        raise NotFound(f"There is no customer {customer_name!r}.", field="customer")
    return customer


def get_domain(session: Session, actor: Actor, name: str, *, field: str = "domain") -> Domain:
    """A domain the actor may manage, by name (Unicode or ASCII)."""
    ascii_name = normalize_domain(name, field=field)
    # Scoped in the query itself: another tenant's domain is never loaded, only not found.
    domain = session.scalars(
        select(Domain).where(
            Domain.name == ascii_name,
            Domain.owner_id.in_(customer_ids_query(actor).scalar_subquery()),
        )
    ).one_or_none()
    if domain is None:
        raise NotFound(f"There is no domain {name!r} in your account.", field=field)
    return domain


def may_manage_domain(session: Session, actor: Actor, domain: Domain) -> bool:
    if actor.role is Role.ADMIN:
        return True
    if actor.role is Role.CUSTOMER:
        return domain.owner_id == actor.customer_id
    owner = session.get(PanelUser, domain.owner_id)
    return owner is not None and owner.parent_id == actor.user_id


def require_mail_manager(actor: Actor) -> None:
    if actor.role not in (Role.ADMIN, Role.RESELLER, Role.CUSTOMER):
        raise PermissionDenied("You may not manage mail.")
