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
