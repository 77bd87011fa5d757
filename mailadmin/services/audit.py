"""The audit trail: one AuditEvent per change, in the change's own transaction."""

from __future__ import annotations

import json
import typing as t

from sqlalchemy.orm import Session

from ..models import AuditEvent
from .context import Actor


def _to_json(data: t.Mapping[str, t.Any] | None) -> str | None:
    if data is None:
        return None
    return json.dumps(data, sort_keys=True, default=str)


def record_event(
    session: Session,
    actor: Actor,
    action: str,
    *,
    object_type: str,
    object_label: str,
    object_id: int | None = None,
    customer_id: int | None = None,
    reseller_id: int | None = None,
    before: t.Mapping[str, t.Any] | None = None,
    after: t.Mapping[str, t.Any] | None = None,
) -> AuditEvent:
    """Add an audit event; never give it a password or a hash."""
    event = AuditEvent(
        at=actor.now(),
        channel=actor.channel,
        actor=actor.name,
        acting_as=actor.acting_as,
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_label=object_label,
        customer_id=customer_id,
        reseller_id=reseller_id,
        before=_to_json(before),
        after=_to_json(after),
        source=actor.source,
    )
    session.add(event)
    session.flush()
    return event


def list_audit_events(
    session: Session, actor: Actor, *, page: int = 1, per_page: int = 50
) -> t.Any:
    """The audit trail the actor may read: a customer its own objects, a reseller its
    customers', the server admin everything."""
    from sqlalchemy import or_, select

    from ..models import Role
    from .pagination import clamp, paginate

    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if actor.role is Role.CUSTOMER:
        query = query.where(AuditEvent.customer_id == actor.customer_id)
    elif actor.role is Role.RESELLER:
        query = query.where(or_(AuditEvent.reseller_id == actor.user_id,
                                AuditEvent.actor == actor.name))
    page_ = paginate(session, query, *clamp(page, per_page))
    page_.items[:] = [row[0] for row in page_.items]
    return page_
