"""What a dashboard shows: counts scoped to what the actor may see."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Domain, Forwarder, PanelUser, Role
from .context import Actor
from .limits import Allowance, allowance_for
from .stack import ApplyOverview, apply_overview
from .usage import UsageSum, largest_usage

USAGE_ROWS = 10


@dataclass(frozen=True)
class DashboardSummary:
    role: Role
    resellers: int | None = None
    customers: int | None = None
    domains: int = 0
    mailboxes: int = 0
    forwarders: int = 0
    #: Stored mail usage summed per domain (customers) or per customer (resellers, admin),
    #: largest first; the page shows the first few.
    usage: tuple[UsageSum, ...] = ()
    #: The package's limits and their use, for a customer (or someone acting as one).
    allowance: Allowance | None = None
    #: For the server admin: changes waiting for the mail servers, the last apply's result.
    mail_servers: ApplyOverview | None = None


def dashboard_summary(session: Session, actor: Actor) -> DashboardSummary:
    domain_filter = select(Domain.id)
    if actor.role is Role.CUSTOMER:
        domain_filter = domain_filter.where(Domain.owner_id == actor.customer_id)
    elif actor.role is Role.RESELLER:
        domain_filter = domain_filter.join(PanelUser, PanelUser.id == Domain.owner_id).where(
            PanelUser.parent_id == actor.user_id
        )
    domain_ids = domain_filter.scalar_subquery()
    domains = session.scalar(
        select(func.count()).select_from(Domain).where(Domain.id.in_(domain_ids))
    ) or 0
    # the domains' counters (services.counters), not a count of every mailbox row
    mailboxes = int(session.scalar(
        select(func.coalesce(func.sum(Domain.mailbox_count), 0)).where(Domain.id.in_(domain_ids))
    ) or 0)
    forwarders = session.scalar(
        select(func.count()).select_from(Forwarder).where(Forwarder.domain_id.in_(domain_ids))
    ) or 0
    resellers = customers = None
    if actor.role is Role.ADMIN:
        resellers = session.scalar(
            select(func.count()).select_from(PanelUser).where(PanelUser.role == Role.RESELLER.value)
        )
        customers = session.scalar(
            select(func.count()).select_from(PanelUser).where(PanelUser.role == Role.CUSTOMER.value)
        )
    elif actor.role is Role.RESELLER:
        customers = session.scalar(
            select(func.count()).select_from(PanelUser).where(PanelUser.parent_id == actor.user_id)
        )
    usage = largest_usage(session, actor, USAGE_ROWS)
    return DashboardSummary(
        allowance=allowance_for(session, actor),
        mail_servers=apply_overview(session, actor) if actor.role is Role.ADMIN else None,
        usage=usage,
        role=actor.role,
        resellers=resellers,
        customers=customers,
        domains=domains,
        mailboxes=mailboxes,
        forwarders=forwarders,
    )
