"""App passwords: a second password per device for a mailbox, limited to some protocols.

An app password is generated here (never chosen), shown once and stored as a Dovecot hash. It
may use a protocol only when both its own switch and the mailbox's are on: switching IMAP off
on the mailbox switches it off for every app password, and on again restores what each had.
A mailbox set to "app passwords only" keeps its main password for the panel (``/me``), while
the mail servers refuse it over IMAP, POP3 and SMTP.

The mail servers check one hash per passdb lookup, so every app password of a mailbox takes a
numbered slot (the lowest free one) with a passdb of its own: a mailbox has at most
`APP_PASSWORD_SLOTS`. See `mailadmin.mailstack.render.dovecot`.

When one was last used: the servers do not say which of a user's passwords a login matched
(Dovecot logs a successful login with the user name only), so no time is recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Conflict, LimitReached, NotFound, ValidationError
from ..hashing import generate_app_password, hash_app_password
from ..models import APP_PASSWORD_SLOTS, AppPassword, Mailbox, PanelUser
from ..models.mail import APP_PASSWORD_LABEL_MAX
from ..protocols import PROTOCOLS, Protocol
from .audit import record_event
from .context import Actor
from .mailboxes import get_mailbox


@dataclass(frozen=True)
class AppPasswordRow:
    """An app password as its owner sees it (never the password or its hash)."""

    id: int
    label: str
    #: What it was given.
    protocols: tuple[Protocol, ...]
    #: What it may use now: its protocols that the mailbox allows too.
    effective_protocols: tuple[Protocol, ...]
    created_at: dt.datetime

    @property
    def protocol_labels(self) -> str:
        return ", ".join(p.label for p in self.protocols)


@dataclass(frozen=True)
class NewAppPassword:
    """A created app password with its text, which is shown this once and never again."""

    row: AppPasswordRow
    password: str


def _mailbox_protocols(mailbox: Mailbox) -> dict[Protocol, bool]:
    return {Protocol.IMAP: mailbox.imap, Protocol.POP3: mailbox.pop3, Protocol.SMTP: mailbox.smtp}


def _row(app: AppPassword, mailbox: Mailbox) -> AppPasswordRow:
    own = {Protocol.IMAP: app.imap, Protocol.POP3: app.pop3, Protocol.SMTP: app.smtp}
    allowed = _mailbox_protocols(mailbox)
    return AppPasswordRow(
        id=app.id,
        label=app.label,
        protocols=tuple(p for p in PROTOCOLS if own[p]),
        effective_protocols=tuple(p for p in PROTOCOLS if own[p] and allowed[p]),
        created_at=app.created_at,
    )


def parse_protocols(value: str | Iterable[str], *, field: str = "protocols") -> set[Protocol]:
    """Protocol names from "imap,pop3" or a list; refuses an unknown name or none at all."""
    names = value.split(",") if isinstance(value, str) else list(value)
    chosen: set[Protocol] = set()
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        try:
            chosen.add(Protocol(name))
        except ValueError:
            raise ValidationError(
                f"Unknown protocol {name[:20]!r}; choose from "
                f"{', '.join(p.value for p in PROTOCOLS)}.", field=field) from None
    if not chosen:
        raise ValidationError("Choose at least one protocol for the app password.", field=field)
    return chosen


def clean_label(label: str) -> str:
    """The label as stored: trimmed, 1-64 characters, no control characters."""
    label = " ".join(label.split())
    if not label:
        raise ValidationError("Give the app password a name, such as \"Anna's phone\".",
                              field="label")
    if len(label) > APP_PASSWORD_LABEL_MAX:
        raise ValidationError(f"The name may have at most {APP_PASSWORD_LABEL_MAX} characters.",
                              field="label")
    if not label.isprintable():
        raise ValidationError("The name may not contain control characters.", field="label")
    return label


def _audit(session: Session, actor: Actor, action: str, mailbox: Mailbox,
           before: Mapping[str, object] | None, after: Mapping[str, object] | None) -> None:
    owner = session.get(PanelUser, mailbox.domain.owner_id)
    assert owner is not None
    record_event(
        session, actor, action,
        object_type="mailbox",
        object_id=mailbox.id,
        object_label=mailbox.address,
        customer_id=owner.id,
        reseller_id=owner.parent_id,
        before=before,
        after=after,
    )


def _apps(session: Session, mailbox: Mailbox) -> list[AppPassword]:
    return list(session.scalars(
        select(AppPassword).where(AppPassword.mailbox_id == mailbox.id)
        .order_by(AppPassword.created_at, AppPassword.id)
    ))


@dataclass(frozen=True)
class AppPasswordsOverview:
    """What the app-password pages show for one mailbox."""

    address: str
    rows: tuple[AppPasswordRow, ...]
    app_passwords_only: bool
    #: The protocols the mailbox may use, which its app passwords may be given.
    mailbox_protocols: tuple[Protocol, ...]
    slots: int = APP_PASSWORD_SLOTS

    @property
    def full(self) -> bool:
        return len(self.rows) >= self.slots


def app_passwords_overview(session: Session, actor: Actor, address: str) -> AppPasswordsOverview:
    """The app passwords of a mailbox the actor manages, with the mailbox's settings for them.

    Raises InvalidName, NotFound.
    """
    mailbox = get_mailbox(session, actor, address)
    allowed = _mailbox_protocols(mailbox)
    return AppPasswordsOverview(
        address=mailbox.address,
        rows=tuple(_row(app, mailbox) for app in _apps(session, mailbox)),
        app_passwords_only=mailbox.app_passwords_only,
        mailbox_protocols=tuple(p for p in PROTOCOLS if allowed[p]),
    )


def list_app_passwords(session: Session, actor: Actor, address: str) -> list[AppPasswordRow]:
    """The app passwords of a mailbox the actor manages, oldest first.

    Raises InvalidName, NotFound.
    """
    mailbox = get_mailbox(session, actor, address)
    return [_row(app, mailbox) for app in _apps(session, mailbox)]


def add_app_password(
    session: Session, actor: Actor, address: str, label: str, protocols: Iterable[str],
) -> NewAppPassword:
    """Create an app password for the protocols given, each of which the mailbox must allow.

    Raises InvalidName, NotFound, ValidationError (label, protocols), Conflict (the name is
    taken on this mailbox), LimitReached (every slot is taken).
    """
    mailbox = get_mailbox(session, actor, address)
    label = clean_label(label)
    chosen = parse_protocols(list(protocols))
    allowed = _mailbox_protocols(mailbox)
    refused = [p for p in PROTOCOLS if p in chosen and not allowed[p]]
    if refused:
        raise ValidationError(
            f"This mailbox may not use {', '.join(p.permission_label for p in refused)}, so "
            "its app passwords may not either.", field="protocols")
    existing = _apps(session, mailbox)
    if any(app.label == label for app in existing):
        raise Conflict(f"This mailbox has an app password named {label!r} already.",
                       field="label")
    taken = {app.slot for app in existing}
    free = [slot for slot in range(1, APP_PASSWORD_SLOTS + 1) if slot not in taken]
    if not free:
        raise LimitReached(
            f"A mailbox may have {APP_PASSWORD_SLOTS} app passwords; this one has "
            f"{len(existing)}. Revoke one first.")
    password = generate_app_password()
    app = AppPassword(
        mailbox_id=mailbox.id,
        slot=free[0],
        label=label,
        password_hash=hash_app_password(password),
        imap=Protocol.IMAP in chosen,
        pop3=Protocol.POP3 in chosen,
        smtp=Protocol.SMTP in chosen,
        created_at=actor.now(),
    )
    session.add(app)
    session.flush()
    row = _row(app, mailbox)
    _audit(session, actor, "mailbox.app_password.add", mailbox, None,
           {"app_password": app.id, "label": label,
            "protocols": [p.value for p in row.protocols]})
    return NewAppPassword(row=row, password=password)


def revoke_app_password(session: Session, actor: Actor, address: str, app_password_id: int) -> str:
    """Delete one app password of the mailbox; returns its label.

    Raises InvalidName, NotFound (also for an id of another mailbox).
    """
    mailbox = get_mailbox(session, actor, address)
    app = session.scalars(
        select(AppPassword).where(AppPassword.id == app_password_id,
                                  AppPassword.mailbox_id == mailbox.id)
    ).one_or_none()
    if app is None:
        raise NotFound(f"This mailbox has no app password {app_password_id}.", field="id")
    label = app.label
    _audit(session, actor, "mailbox.app_password.revoke", mailbox,
           {"app_password": app.id, "label": label}, None)
    session.delete(app)
    session.flush()
    return label


def set_app_passwords_only(session: Session, actor: Actor, address: str, enabled: bool) -> Mailbox:
    """Refuse (True) or accept again (False) the main password over IMAP, POP3 and SMTP.

    Raises InvalidName, NotFound.
    """
    mailbox = get_mailbox(session, actor, address)
    if mailbox.app_passwords_only != enabled:
        before = {"app_passwords_only": mailbox.app_passwords_only}
        mailbox.app_passwords_only = enabled
        mailbox.updated_at = actor.now()
        session.flush()
        _audit(session, actor, "mailbox.app_passwords_only", mailbox, before,
               {"app_passwords_only": enabled})
    return mailbox
