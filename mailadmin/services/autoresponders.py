"""Autoresponders (out-of-office replies), rendered as Sieve vacation scripts per mailbox."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import ValidationError
from ..models import Autoresponder, Domain, Mailbox, PanelUser
from ..names import address_to_unicode
from .audit import record_event
from .context import Actor
from .mailboxes import get_mailbox, scoped_domain_ids

MAX_SUBJECT = 200
MAX_BODY = 10_000
MAX_INTERVAL_DAYS = 365


def _clean_text(value: str, *, field: str, limit: int, multiline: bool) -> str:
    text = value.replace("\r\n", "\n").strip()
    if not text:
        raise ValidationError("This may not be empty.", field=field)
    if len(text) > limit:
        raise ValidationError(f"At most {limit} characters.", field=field)
    allowed = {"\n", "\t"} if multiline else set()
    if any((ord(ch) < 32 and ch not in allowed) or ord(ch) == 127 for ch in text):
        raise ValidationError("Control characters are not allowed.", field=field)
    return text


def set_autoresponder(
    session: Session,
    actor: Actor,
    address: str,
    *,
    subject: str,
    body: str,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    interval_days: int = 1,
    enabled: bool = True,
) -> Autoresponder:
    """Set a mailbox's out-of-office reply. Text is stored as given; the Sieve renderer
    encodes it as a Sieve string, so quotes and backslashes are safe there."""
    mailbox = get_mailbox(session, actor, address)
    subject = _clean_text(subject, field="subject", limit=MAX_SUBJECT, multiline=False)
    body = _clean_text(body, field="body", limit=MAX_BODY, multiline=True)
    if not 1 <= interval_days <= MAX_INTERVAL_DAYS:
        raise ValidationError(
            f"Answer the same sender at most once every 1 to {MAX_INTERVAL_DAYS} days.",
            field="interval_days",
        )
    if starts_at and ends_at and ends_at <= starts_at:
        raise ValidationError("The end must come after the start.", field="ends_at")
    responder = session.scalars(
        select(Autoresponder).where(Autoresponder.mailbox_id == mailbox.id)
    ).one_or_none()
    before = None
    if responder is None:
        responder = Autoresponder(mailbox_id=mailbox.id)
        session.add(responder)
    else:
        before = {"subject": responder.subject, "enabled": responder.enabled,
                  "starts_at": responder.starts_at, "ends_at": responder.ends_at,
                  "interval_days": responder.interval_days}
    responder.subject, responder.body = subject, body
    responder.starts_at, responder.ends_at = starts_at, ends_at
    responder.interval_days, responder.enabled = interval_days, enabled
    responder.updated_at = actor.now()
    session.flush()
    owner = session.get(PanelUser, mailbox.domain.owner_id)
    record_event(
        session, actor, "autoresponder.set", object_type="autoresponder", object_id=responder.id,
        object_label=f"{mailbox.local_part}@{mailbox.domain.name}",
        customer_id=mailbox.domain.owner_id, reseller_id=owner.parent_id if owner else None,
        before=before,
        after={"subject": subject, "enabled": enabled, "starts_at": starts_at,
               "ends_at": ends_at, "interval_days": interval_days},
    )
    return responder


def clear_autoresponder(session: Session, actor: Actor, address: str) -> None:
    mailbox = get_mailbox(session, actor, address)
    responder = session.scalars(
        select(Autoresponder).where(Autoresponder.mailbox_id == mailbox.id)
    ).one_or_none()
    if responder is None:
        return
    owner = session.get(PanelUser, mailbox.domain.owner_id)
    record_event(
        session, actor, "autoresponder.clear", object_type="autoresponder", object_id=responder.id,
        object_label=f"{mailbox.local_part}@{mailbox.domain.name}",
        customer_id=mailbox.domain.owner_id, reseller_id=owner.parent_id if owner else None,
        before={"subject": responder.subject}, after=None,
    )
    session.delete(responder)
    session.flush()


def get_autoresponder(session: Session, actor: Actor, address: str) -> Autoresponder | None:
    mailbox = get_mailbox(session, actor, address)
    return session.scalars(
        select(Autoresponder).where(Autoresponder.mailbox_id == mailbox.id)
    ).one_or_none()


@dataclass(frozen=True)
class AutoresponderRow:
    address: str
    unicode_address: str
    subject: str
    #: Autoresponder.state: "on", "scheduled", "ended" or "off".
    state: str
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    interval_days: int


def list_autoresponders(session: Session, actor: Actor) -> list[AutoresponderRow]:
    """Every autoresponder of the actor's mailboxes, by address, with its state now."""
    now = actor.now()
    rows = session.execute(
        select(Autoresponder, Mailbox.local_part, Domain.name)
        .join(Mailbox, Mailbox.id == Autoresponder.mailbox_id)
        .join(Domain, Domain.id == Mailbox.domain_id)
        .where(Mailbox.domain_id.in_(scoped_domain_ids(session, actor)))
        .order_by(Domain.name, Mailbox.local_part)
    ).all()
    return [
        AutoresponderRow(
            address=f"{local}@{domain}",
            unicode_address=address_to_unicode(f"{local}@{domain}"),
            subject=responder.subject,
            state=responder.state(now),
            starts_at=responder.starts_at,
            ends_at=responder.ends_at,
            interval_days=responder.interval_days,
        )
        for responder, local, domain in rows
    ]
