"""The audit trail: one AuditEvent per change, in the change's own transaction."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Select, func, insert, or_, select
from sqlalchemy.orm import Session

from ..errors import PermissionDenied, ValidationError
from ..models import AuditEvent, Role
from .context import Actor
from .pagination import Page, clamp, paginate


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


@dataclass(frozen=True)
class AuditFilter:
    """What to show of the audit trail; every part is optional and they combine with AND.

    `actor` matches the actor or the customer acted as, `object` the object's type or label,
    `action` the action name (all case-insensitive substrings); `since` and `until` bound the
    time (`until` exclusive).
    """

    actor: str = ""
    object: str = ""
    action: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @classmethod
    def from_text(
        cls, *, actor: str = "", object: str = "", action: str = "", since: str = "",
        until: str = "",
    ) -> AuditFilter:
        """From form text: dates as YYYY-MM-DD (whole days, UTC; `until` includes its day) or
        YYYY-MM-DDTHH:MM. Raises ValidationError naming the field."""
        return cls(
            actor=_clip(actor), object=_clip(object), action=_clip(action),
            since=_parse_time(since, "since", end_of_day=False),
            until=_parse_time(until, "until", end_of_day=True),
        )

    def as_args(self) -> dict[str, str]:
        """The filter as query-string values (for links to other pages and the export)."""
        args = {"actor": self.actor, "object": self.object, "action": self.action,
                "since": _format_time(self.since), "until": _format_time(self.until)}
        return {key: value for key, value in args.items() if value}


_FILTER_MAX = 320


def _clip(text: str) -> str:
    return (text or "").strip()[:_FILTER_MAX]


def _parse_time(text: str, field: str, *, end_of_day: bool) -> dt.datetime | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return start + dt.timedelta(days=1) if end_of_day else start
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            "Give a date as YYYY-MM-DD or a time as YYYY-MM-DDTHH:MM (UTC).", field=field
        ) from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _format_time(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M") if value is not None else ""


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _visible_query(actor: Actor, filters: AuditFilter | None) -> Select[t.Any]:
    """The actor's part of the trail, filtered, newest first: scoped in the query itself."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if actor.role is Role.CUSTOMER:
        query = query.where(AuditEvent.customer_id == actor.customer_id)
    elif actor.role is Role.RESELLER:
        query = query.where(or_(AuditEvent.reseller_id == actor.user_id,
                                AuditEvent.actor == actor.name))
    elif not actor.is_admin:  # pragma: no cover - every role is handled above
        raise PermissionDenied("You may not read the audit log.")
    f = filters or AuditFilter()
    if f.actor:
        pattern = _like(f.actor)
        query = query.where(or_(func.lower(AuditEvent.actor).like(pattern, escape="\\"),
                                func.lower(AuditEvent.acting_as).like(pattern, escape="\\")))
    if f.object:
        pattern = _like(f.object)
        query = query.where(or_(func.lower(AuditEvent.object_type).like(pattern, escape="\\"),
                                func.lower(AuditEvent.object_label).like(pattern, escape="\\")))
    if f.action:
        query = query.where(func.lower(AuditEvent.action).like(_like(f.action), escape="\\"))
    if f.since is not None:
        query = query.where(AuditEvent.at >= f.since)
    if f.until is not None:
        query = query.where(AuditEvent.at < f.until)
    return query


def list_audit_events(
    session: Session, actor: Actor, *, page: int = 1, per_page: int = 50,
    filters: AuditFilter | None = None,
) -> Page[AuditEvent]:
    """The audit trail the actor may read: a customer its own objects, a reseller its
    customers' and its own, the server admin everything; narrowed by `filters`."""
    page_ = paginate(session, _visible_query(actor, filters), *clamp(page, per_page))
    page_.items[:] = [row[0] for row in page_.items]
    return page_


def iter_audit_events(
    session: Session, actor: Actor, filters: AuditFilter | None = None, *, batch: int = 500
) -> Iterator[AuditEvent]:
    """Every event `list_audit_events` would show, newest first, read in batches (for export)."""
    query = _visible_query(actor, filters).execution_options(yield_per=batch)
    yield from session.scalars(query)


#: Columns of the CSV export, in order.
CSV_COLUMNS = ("at", "channel", "actor", "acting_as", "action", "object_type", "object_id",
               "object_label", "source", "before", "after")
#: A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """A cell's text that a spreadsheet will show, never run: a leading quote defuses it."""
    text = "" if value is None else (
        _format_time(value) if isinstance(value, dt.datetime) else str(value)
    )
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_row(event: AuditEvent) -> list[str]:
    return [csv_safe(getattr(event, column)) for column in CSV_COLUMNS]


def changes(event: AuditEvent) -> list[tuple[str, object, object]]:
    """The fields an event's before and after differ in (or all of them, for a creation or a
    removal): (field, before, after), missing values as None."""
    before = _from_json(event.before)
    after = _from_json(event.after)
    keys = sorted(set(before) | set(after))
    return [(key, before.get(key), after.get(key)) for key in keys
            if before.get(key) != after.get(key) or not (before and after)]


def _from_json(text: str | None) -> dict[str, t.Any]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {"value": text}
    return data if isinstance(data, dict) else {"value": data}


API_CALL = "api.call"
#: `object_label` holds "METHOD /path"; longer paths are cut to fit the column.
_LABEL_MAX = 320


def api_caller(session: Session, token_prefix: str, source: str | None) -> Actor | None:
    """The owner of the token with this prefix, as an API actor, to audit a call that the token
    authenticated but that was refused before an actor was made (a read-only token writing).

    Only call this after the token's secret was verified: the prefix alone proves nothing.
    """
    from ..models import ApiToken, PanelUser

    owner = session.scalars(
        select(PanelUser).join(ApiToken, ApiToken.owner_id == PanelUser.id)
        .where(ApiToken.prefix == token_prefix)
    ).one_or_none()
    return Actor.for_user(owner, channel="api", source=source) if owner is not None else None


def record_api_call(
    session: Session,
    actor: Actor,
    *,
    method: str,
    path: str,
    status: int,
    token_prefix: str | None = None,
) -> AuditEvent:
    """Note one API request made with a valid token, successful or refused.

    The event belongs to the token owner's tenant: a customer's call is visible to the customer
    and its reseller, a reseller's to the reseller, everyone's to the server admin.
    """
    from ..models import PanelUser

    customer_id: int | None = None
    reseller_id: int | None = None
    if actor.customer_id is not None:
        customer_id = actor.customer_id
        customer = session.get(PanelUser, actor.customer_id)
        reseller_id = customer.parent_id if customer is not None else None
    elif actor.role is Role.RESELLER:
        reseller_id = actor.user_id
    label = f"{method} {path}"
    return record_event(
        session, actor, API_CALL,
        object_type="api", object_label=label[:_LABEL_MAX],
        customer_id=customer_id, reseller_id=reseller_id,
        after={"method": method, "path": path, "status": status, "token": token_prefix},
    )


def record_events(
    session: Session,
    actor: Actor,
    action: str,
    *,
    object_type: str,
    objects: t.Sequence[tuple[int, str, t.Mapping[str, t.Any] | None]],
    customer_id: int | None = None,
    reseller_id: int | None = None,
) -> None:
    """One audit event per `(object id, label, after)`, written in one statement: an import
    records thousands of objects at once. Never give it a password or a hash."""
    if not objects:
        return
    now = actor.now()
    session.execute(insert(AuditEvent), [
        {"at": now, "channel": actor.channel, "actor": actor.name, "acting_as": actor.acting_as,
         "action": action, "object_type": object_type, "object_id": object_id,
         "object_label": label, "customer_id": customer_id, "reseller_id": reseller_id,
         "before": None, "after": _to_json(after), "source": actor.source}
        for object_id, label, after in objects
    ])
