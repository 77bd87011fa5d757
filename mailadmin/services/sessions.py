"""Server-side records of signed-in browser sessions (panel users and mailbox users).

A signed cookie alone stays valid until it expires, whatever the user does; so each sign-in
gets a random session token, the cookie carries it, and the database keeps its SHA-256
(`LoginSession`). Every request checks the record; signing out deletes it, "sign out
everywhere" deletes all of the principal's records, and a session idle for longer than the
configured lifetime is refused and purged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from ..models import LoginSession

#: `last_seen_at` is written at most this often, so that reading pages does not write each time.
TOUCH_EVERY = dt.timedelta(minutes=1)
MAX_TOKEN_LENGTH = 128


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _owner_filter(panel_user_id: int | None, mailbox_id: int | None) -> ColumnElement[bool]:
    if (panel_user_id is None) == (mailbox_id is None):
        raise ValueError("a session belongs to exactly one panel user or one mailbox")
    if panel_user_id is not None:
        return LoginSession.panel_user_id == panel_user_id
    return LoginSession.mailbox_id == mailbox_id


def start_session(
    session: Session,
    *,
    panel_user_id: int | None = None,
    mailbox_id: int | None = None,
    client_address: str | None,
    now: dt.datetime,
    idle_limit: dt.timedelta,
    second_factor_at: dt.datetime | None = None,
) -> str:
    """Record a new session and return its token (for the cookie only; the database keeps the
    hash). Sessions idle for longer than `idle_limit` are purged on the way. `second_factor_at`:
    when the sign-in proved a second factor (`twofactor`)."""
    _owner_filter(panel_user_id, mailbox_id)
    session.execute(delete(LoginSession).where(LoginSession.last_seen_at < now - idle_limit))
    token = secrets.token_urlsafe(32)
    session.add(LoginSession(
        token_hash=_hash(token),
        panel_user_id=panel_user_id,
        mailbox_id=mailbox_id,
        created_at=now,
        last_seen_at=now,
        client_address=(client_address or "")[:64] or None,
        second_factor_at=second_factor_at,
    ))
    session.flush()
    return token


def session_is_live(
    session: Session,
    token: str,
    *,
    panel_user_id: int | None = None,
    mailbox_id: int | None = None,
    now: dt.datetime,
    idle_limit: dt.timedelta,
) -> bool:
    """Whether `token` is a live session of this panel user (or mailbox); notes the use."""
    owner = _owner_filter(panel_user_id, mailbox_id)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return False
    row = session.scalars(
        select(LoginSession).where(LoginSession.token_hash == _hash(token), owner)
    ).one_or_none()
    if row is None:
        return False
    if now - row.last_seen_at > idle_limit:
        session.delete(row)
        session.flush()
        return False
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.flush()
    return True


def note_second_factor(session: Session, token: str, now: dt.datetime) -> None:
    """Record that the session with `token` has just proved a second factor."""
    if token and len(token) <= MAX_TOKEN_LENGTH:
        row = session.scalars(
            select(LoginSession).where(LoginSession.token_hash == _hash(token))
        ).one_or_none()
        if row is not None:
            row.second_factor_at = now
            session.flush()


def second_factor_at(
    session: Session, token: str, *, panel_user_id: int | None = None,
    mailbox_id: int | None = None,
) -> dt.datetime | None:
    """When this principal's session with `token` last proved a second factor (None: never,
    or no such session)."""
    owner = _owner_filter(panel_user_id, mailbox_id)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return session.scalars(
        select(LoginSession.second_factor_at).where(LoginSession.token_hash == _hash(token), owner)
    ).one_or_none()


def end_session(session: Session, token: str) -> None:
    """Sign one session out: its cookie is worthless from now on."""
    if token and len(token) <= MAX_TOKEN_LENGTH:
        session.execute(delete(LoginSession).where(LoginSession.token_hash == _hash(token)))
        session.flush()


def end_all_sessions(
    session: Session, *, panel_user_id: int | None = None, mailbox_id: int | None = None
) -> int:
    """Sign a panel user (or a mailbox user) out everywhere; returns how many sessions ended."""
    owner = _owner_filter(panel_user_id, mailbox_id)
    ended = len(list(session.scalars(select(LoginSession.id).where(owner))))
    session.execute(delete(LoginSession).where(owner))
    session.flush()
    return ended
