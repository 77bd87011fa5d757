"""The API's app-password operations: list, create (the password is in the answer once),
revoke, and "app passwords only" per mailbox."""

from __future__ import annotations

from mailadmin.errors import NotFound
from mailadmin.models import MAX_ROW_ID
from mailadmin.services import app_passwords

from .. import db
from . import schemas as s
from .blueprint import bp
from .routing import current_api_actor, operation


def _out(row: app_passwords.AppPasswordRow) -> s.AppPasswordOut:
    return s.AppPasswordOut(
        id=row.id, label=row.label, protocols=[p.value for p in row.protocols],
        effective_protocols=[p.value for p in row.effective_protocols],
        created_at=row.created_at)


def _list(overview: app_passwords.AppPasswordsOverview) -> s.AppPasswordList:
    return s.AppPasswordList(items=[_out(r) for r in overview.rows],
                             app_passwords_only=overview.app_passwords_only,
                             max_app_passwords=overview.slots)


@operation(bp, "/mailboxes/<address>/app-passwords", "GET", summary="List app passwords",
           tag="app passwords", response=s.AppPasswordList)
def list_app_passwords(address: str) -> s.AppPasswordList:
    """The mailbox's app passwords (never the passwords) and whether it takes app passwords
    only."""
    return _list(app_passwords.app_passwords_overview(db.session(), current_api_actor(), address))


@operation(bp, "/mailboxes/<address>/app-passwords", "POST", summary="Create an app password",
           tag="app passwords", body=s.AppPasswordCreate, response=s.AppPasswordCreated,
           status=201)
def create_app_password(address: str, body: s.AppPasswordCreate) -> s.AppPasswordCreated:
    """The password is generated and returned in this answer only; it is stored as a hash.
    409 when the name is taken on this mailbox, 422 limit_reached when every slot is."""
    new = app_passwords.add_app_password(db.session(), current_api_actor(), address, body.label,
                                         body.protocols)
    return s.AppPasswordCreated(**_out(new.row).model_dump(), password=new.password)


def _row_id(text: str) -> int:
    """A row id from the path; anything else names no app password (404)."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ROW_ID:
        raise NotFound(f"There is no app password {text[:20]!r}.", field="app_password_id")
    return int(text)


@operation(bp, "/mailboxes/<address>/app-passwords/<app_password_id>", "DELETE",
           summary="Revoke an app password", tag="app passwords", status=204)
def revoke_app_password(address: str, app_password_id: str) -> None:
    """The device using it can no longer log in."""
    app_passwords.revoke_app_password(db.session(), current_api_actor(), address,
                                      _row_id(app_password_id))


@operation(bp, "/mailboxes/<address>/app-passwords-only", "PUT",
           summary="Take app passwords only", tag="app passwords", body=s.AppPasswordsOnly,
           response=s.AppPasswordList)
def set_app_passwords_only(address: str, body: s.AppPasswordsOnly) -> s.AppPasswordList:
    """With enabled true the mail servers refuse the main password over IMAP, POP3 and SMTP;
    it still signs in to the panel."""
    mailbox = app_passwords.set_app_passwords_only(db.session(), current_api_actor(), address,
                                                   body.enabled)
    return _list(app_passwords.app_passwords_overview(db.session(), current_api_actor(),
                                                      mailbox.address))
