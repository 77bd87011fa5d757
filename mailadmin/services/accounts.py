"""Panel accounts: creation, passwords, the first server admin, and sign-in."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import (
    AuthenticationFailed,
    Conflict,
    MailboxAddressAtPanelSignIn,
    NotFound,
    PermissionDenied,
    ValidationError,
    WeakPassword,
)
from ..models import PanelUser, Role
from ..passwords import MIN_PANEL_PASSWORD_LENGTH
from ..security import generate_password, hash_panel_password, verify_panel_password
from ..timezones import check_time_zone
from . import sessions, throttle, twofactor
from .audit import record_event
from .context import Actor

USERNAME_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MAX_PASSWORD_LENGTH = 1024
FIRST_ADMIN_NAME = "admin"


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise ValidationError(
            "A user name is 2 to 64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter.",
            field="username",
        )
    return name


def check_panel_password(password: str, username: str) -> None:
    if len(password) < MIN_PANEL_PASSWORD_LENGTH:
        raise WeakPassword(
            f"The password must be at least {MIN_PANEL_PASSWORD_LENGTH} characters long.",
            field="password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword("The password is too long.", field="password")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        raise WeakPassword("The password may not contain control characters.", field="password")
    if username.lower() in password.lower():
        raise WeakPassword("The password may not contain the user name.", field="password")


def find_user(session: Session, username: str) -> PanelUser | None:
    return session.scalars(
        select(PanelUser).where(PanelUser.username == username.strip().lower())
    ).one_or_none()


def get_user(session: Session, username: str) -> PanelUser:
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"There is no panel user {username!r}.")
    return user


def create_panel_user(
    session: Session,
    actor: Actor,
    username: str,
    password: str,
    role: Role,
    *,
    reseller_name: str | None = None,
    contact_email: str | None = None,
) -> PanelUser:
    """Create a panel account.

    Only the server admin creates admins and resellers; a reseller creates customers under
    itself. Raises ValidationError, WeakPassword, Conflict, NotFound or PermissionDenied.
    """
    name = normalize_username(username)
    check_panel_password(password, name)
    parent: PanelUser | None = None
    if role is not Role.CUSTOMER and reseller_name:
        raise ValidationError("Only a customer belongs to a reseller.", field="reseller")
    if actor.role is Role.RESELLER:
        if role is not Role.CUSTOMER:
            raise PermissionDenied("A reseller can create customers only.")
        if reseller_name and reseller_name.lower() != actor.name:
            raise PermissionDenied("A reseller can create customers only under itself.")
        parent = session.get(PanelUser, actor.user_id)
    elif not actor.is_admin:
        raise PermissionDenied("Only the server admin or a reseller can create panel users.")
    elif reseller_name:
        parent = get_user(session, reseller_name)
        if parent.role != Role.RESELLER:
            raise ValidationError(f"{parent.username!r} is not a reseller.", field="reseller")
    if find_user(session, name) is not None:
        raise Conflict(f"The user name {name!r} is taken.", field="username")
    user = PanelUser(
        username=name,
        role=role.value,
        parent_id=parent.id if parent else None,
        password_hash=hash_panel_password(password),
        contact_email=contact_email,
        is_suspended=False,
        created_at=actor.now(),
        password_changed_at=actor.now(),
    )
    session.add(user)
    session.flush()
    record_event(
        session,
        actor,
        "panel_user.create",
        object_type="panel_user",
        object_id=user.id,
        object_label=name,
        customer_id=user.id if role is Role.CUSTOMER else None,
        reseller_id=parent.id if parent else (user.id if role is Role.RESELLER else None),
        after={
            "username": name,
            "role": role.value,
            "reseller": parent.username if parent else None,
        },
    )
    return user


def _may_manage(actor: Actor, session: Session, user: PanelUser) -> bool:
    if actor.is_admin:
        return True
    if actor.user_id == user.id:
        return True
    return actor.role is Role.RESELLER and user.parent_id == actor.user_id


def set_panel_password(session: Session, actor: Actor, username: str, password: str) -> PanelUser:
    """Replace a panel user's password (admins: anyone; resellers: their customers; self)."""
    user = get_user(session, username)
    if not _may_manage(actor, session, user):
        raise NotFound(f"There is no panel user {username!r}.")
    check_panel_password(password, user.username)
    user.password_hash = hash_panel_password(password)
    user.password_changed_at = actor.now()
    session.flush()
    throttle.clear_failures(session, throttle.ACCOUNT, user.username)
    record_event(
        session,
        actor,
        "panel_user.password",
        object_type="panel_user",
        object_id=user.id,
        object_label=user.username,
        customer_id=user.id if user.role == Role.CUSTOMER else None,
    )
    return user


@dataclass(frozen=True)
class FirstAdmin:
    username: str
    password: str


def ensure_first_admin(session: Session, actor: Actor) -> FirstAdmin | None:
    """Create the server admin with a generated password if no admin exists yet.

    Returns the credentials (to be shown once) or None when an admin already exists.
    """
    admins = session.scalar(
        select(func.count()).select_from(PanelUser).where(PanelUser.role == Role.ADMIN.value)
    )
    if admins:
        return None
    password = generate_password()
    username = FIRST_ADMIN_NAME
    if find_user(session, username) is not None:
        username = f"{FIRST_ADMIN_NAME}-{generate_password(6).lower()}"
    create_panel_user(session, actor, username, password, Role.ADMIN)
    return FirstAdmin(username=username, password=password)


@dataclass(frozen=True)
class PanelSignIn:
    user: PanelUser
    #: None while the second step (`second_step` CODE) is still to come.
    outcome: throttle.SignInOutcome | None
    #: The new server-side session's token (see `sessions`), when one was asked for.
    session_token: str | None = None
    #: CODE: the password was right, but no session exists until `twofactor.complete_sign_in`
    #: accepts a code; ENROL: signed in, but the account must set up a second factor first.
    second_step: twofactor.SecondStep = twofactor.SecondStep.NONE


def sign_in_panel_user(
    session: Session,
    username: str,
    password: str,
    *,
    client_address: str,
    policy: throttle.ThrottlePolicy,
    actor: Actor,
    device_token: str | None = None,
    session_idle_limit: dt.timedelta | None = None,
    remembered_browsers: Sequence[str] = (),
) -> PanelSignIn:
    """Check a sign-in (the rules are `throttle`'s: pair, address and account locks, known places).

    `device_token` is the browser's "known device" token, if it sent one; with
    `session_idle_limit` a server-side session is started (`PanelSignIn.session_token`) unless
    the account uses a second factor and this browser is not one of its remembered ones
    (`remembered_browsers`: the tokens of its "remember this browser" cookie); then the
    result says `SecondStep.CODE` and no session exists yet.
    Raises RateLimited while this attempt's way in is locked (and on the failure that locks
    it), AuthenticationFailed otherwise. Failures are flushed, so the caller must commit even when
    this raises.
    """
    now = actor.now()
    account_key = username.strip().lower()[:320]
    throttle.check_sign_in(session, account_key, client_address, device_token, now)
    user = find_user(session, account_key) if len(password) <= MAX_PASSWORD_LENGTH else None
    ok, new_hash = verify_panel_password(
        password[:MAX_PASSWORD_LENGTH], user.password_hash if user else None
    )
    if not ok or user is None or user.is_suspended:
        refusal = throttle.record_sign_in_failure(
            session, account_key, client_address, device_token, now, policy
        )
        if refusal is not None:
            raise refusal
        if ok and user is not None and user.is_suspended:
            raise AuthenticationFailed("This panel account is suspended. Contact your provider.")
        if "@" in account_key:
            # No panel user name has an "@" (normalize_username), so the answer depends on
            # what was typed only and reveals nothing about the address; the failure above
            # still counted against the rate limits.
            raise MailboxAddressAtPanelSignIn(
                "Panel user names are not mail addresses. To sign in with a mail address "
                "and its mailbox password, use the mailbox sign-in.", field="username")
        raise AuthenticationFailed("The user name or the password is wrong.")
    if new_hash:
        user.password_hash = new_hash
    second_step = twofactor.step_after_password(
        session, twofactor.Owner.panel(user.id), remembered_browsers, now
    )
    if second_step is twofactor.SecondStep.CODE:
        # Nothing counts as a successful sign-in (nor clears the failures) before the code.
        session.flush()
        return PanelSignIn(user=user, outcome=None, second_step=second_step)
    user.last_login_at = now
    outcome = throttle.record_sign_in_success(
        session, account_key, client_address, device_token, now
    )
    token = None
    if session_idle_limit is not None:
        token = sessions.start_session(
            session, panel_user_id=user.id, client_address=client_address, now=now,
            idle_limit=session_idle_limit,
        )
    session.flush()
    return PanelSignIn(user=user, outcome=outcome, session_token=token, second_step=second_step)


def authenticate_panel_user(
    session: Session,
    username: str,
    password: str,
    *,
    client_address: str,
    policy: throttle.ThrottlePolicy,
    actor: Actor,
    device_token: str | None = None,
) -> PanelUser:
    """`sign_in_panel_user` for callers that only need the user; an account that still owes
    its second factor is refused (AuthenticationFailed)."""
    signed_in = sign_in_panel_user(
        session, username, password, client_address=client_address, policy=policy,
        actor=actor, device_token=device_token,
    )
    if signed_in.second_step is twofactor.SecondStep.CODE:
        raise AuthenticationFailed("This account signs in with a second factor.")
    return signed_in.user


def change_own_password(
    session: Session, actor: Actor, current_password: str, new_password: str
) -> PanelUser:
    """A signed-in panel user replaces its own password; the current one is required."""
    if actor.user_id is None:
        raise PermissionDenied("Only a panel user has a panel password.")
    user = session.get(PanelUser, actor.user_id)
    if user is None:
        raise NotFound("Your account no longer exists.")
    ok, _ = verify_panel_password(current_password[:MAX_PASSWORD_LENGTH], user.password_hash)
    if not ok:
        raise AuthenticationFailed("The current password is wrong.", field="current_password")
    if new_password == current_password:
        raise WeakPassword("The new password must differ from the current one.", field="password")
    check_panel_password(new_password, user.username)
    user.password_hash = hash_panel_password(new_password)
    user.password_changed_at = actor.now()
    session.flush()
    record_event(
        session,
        actor,
        "panel_user.password",
        object_type="panel_user",
        object_id=user.id,
        object_label=user.username,
        customer_id=user.id if user.role == Role.CUSTOMER else None,
    )
    return user


def set_own_time_zone(
    session: Session, actor: Actor, zone: str, *, keep_chosen: bool = False
) -> PanelUser:
    """Set the zone the signed-in panel user reads times in (an IANA name).

    A preference of the person, not of the account they may be acting for. `keep_chosen` is
    for the browser's own zone, sent on its own: it never overrides a zone the person chose.
    Raises ValidationError for an unknown zone, NotFound without a signed-in panel user.
    """
    user = session.get(PanelUser, actor.user_id) if actor.user_id is not None else None
    if user is None:
        raise NotFound("Only a signed-in panel user has a time zone to set.")
    zone = check_time_zone(zone)
    if not (keep_chosen and user.time_zone):
        user.time_zone = zone
    session.flush()
    return user
