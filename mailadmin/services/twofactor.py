"""Two-factor sign-in with TOTP (RFC 6238) for panel users and mailbox users.

- **Enrolment**: `start_enrolment` makes a secret (shown as a QR code and as text) that does
  nothing until `confirm_enrolment` gets a code computed from it; then ten single-use recovery
  codes are made, shown once and stored as SHA-256 hashes (each has 80 random bits).
- **Sign-in**: after the right password, `step_after_password` says whether a code is needed
  (`SecondStep.CODE`), whether the account must enrol first because the server requires it for
  its role (`SecondStep.ENROL`, setting ``two_factor_required_roles``), or neither. No
  server-side session exists until `complete_sign_in` accepts a TOTP code or an unused
  recovery code.
- **Throttling**: a wrong code counts exactly like a wrong password (`throttle`: the pair of
  account and client address, the address, the account), so guessing codes after stealing a
  password is stopped as guessing passwords is; a locked account refuses codes too.
- **A code is good once**: the time step of the last accepted code is kept, and a code of that
  step or an earlier one is refused (RFC 6238, section 5.2).
- **Remember this browser**: for `REMEMBER_FOR`, a browser may skip the code (never the
  password). Its cookie carries a random token whose SHA-256 is kept in `TwoFactorBrowser`;
  signing out everywhere, turning two-factor sign-in off and the admin's reset delete those
  rows, so the cookies stop working.
- **Fresh factor**: each server-side session records when it last proved a second factor;
  creating an API token (`tokens.create_api_token`) asks for one within `FRESH_FOR`.
- **Secrets at rest** are encrypted with the instance secret key (`mailadmin.secretbox`).

Every function acts for the `Owner` it is given, which the entry point takes from the
signed-in principal (never from a URL or a form): nobody reads or changes another's second
factor, except the server admin's `reset_two_factor`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import pyotp
import segno
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..errors import (
    AuthenticationFailed,
    Conflict,
    InvalidName,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from ..models import (
    Domain,
    LoginSession,
    Mailbox,
    PanelUser,
    Role,
    TwoFactorBrowser,
    TwoFactorRecoveryCode,
    TwoFactorSecret,
    utcnow,
)
from ..names import address_to_unicode, split_address
from ..secretbox import SecretBox, SecretUnreadable
from . import sessions, throttle
from .audit import record_event
from .context import Actor
from .scope import require_admin
from .server import get_server_settings

#: The purpose the TOTP secrets' key is derived for (`SecretBox.from_secret_key`).
BOX_PURPOSE = "two-factor secrets"
ISSUER = "mailadmin"
DIGITS = 6
STEP_SECONDS = 30
#: Codes of the step before and after the current one are accepted too (clock drift).
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
#: Letters and digits that cannot be mistaken for each other (no i, l, o, 0, 1): 31 signs,
#: 16 of them make about 79 random bits, so a plain SHA-256 is a safe way to store a code.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_GROUPS = 4
RECOVERY_GROUP_LENGTH = 4
REMEMBER_FOR = dt.timedelta(days=30)
#: Browsers remembered per account; the oldest are forgotten first.
MAX_REMEMBERED = 20
#: How long the password step stays good while the code is awaited.
PENDING_FOR = dt.timedelta(minutes=5)
#: How recent a proved second factor must be to create an API token.
FRESH_FOR = dt.timedelta(minutes=15)
MAX_CODE_LENGTH = 64
PANEL_CHANNEL = "panel"
MAILBOX_CHANNEL = "mailbox"
#: The channel of the machine's own command line: whoever runs it holds the server, its
#: database and its secret key, so a second factor asked there would protect nothing.
CLI_CHANNEL = "cli"
MAILBOX_ROLE = "mailbox"

# ASCII digits only: `\d` would take other scripts' digits, which no app shows.
_DIGITS_ONLY = re.compile(r"^[0-9]{6}$")


class SecondStep(enum.StrEnum):
    """What a sign-in needs after the right password."""

    NONE = "none"
    CODE = "code"
    ENROL = "enrol"


class SecondFactorRequired(PermissionDenied):
    """The action needs a second factor proved in this session within `FRESH_FOR`."""

    code = "second_factor_required"


@dataclass(frozen=True)
class Owner:
    """Whose second factor: exactly one panel user or one mailbox, and where the request came
    from (for the audit trail)."""

    panel_user_id: int | None = None
    mailbox_id: int | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if (self.panel_user_id is None) == (self.mailbox_id is None):
            raise ValueError("a second factor belongs to exactly one panel user or one mailbox")

    @classmethod
    def panel(cls, user_id: int, source: str | None = None) -> Owner:
        return cls(panel_user_id=user_id, source=source)

    @classmethod
    def mailbox(cls, mailbox_id: int, source: str | None = None) -> Owner:
        return cls(mailbox_id=mailbox_id, source=source)

    @property
    def context(self) -> str:
        """What a sealed secret is bound to: a row copied to another owner does not open."""
        if self.panel_user_id is not None:
            return f"panel:{self.panel_user_id}"
        return f"mailbox:{self.mailbox_id}"


def box_for(secret_key: str | bytes) -> SecretBox:
    """The box TOTP secrets are sealed in, from the instance secret key."""
    return SecretBox.from_secret_key(secret_key, BOX_PURPOSE)


# --- the owner's account ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    """What the rules need to know of the owner's account."""

    label: str
    #: The `throttle` account key, the same as at the password step.
    account_key: str
    role: str
    password_hash: str
    actor: Actor
    customer_id: int | None
    reseller_id: int | None
    can_sign_in: bool


def _account(session: Session, owner: Owner, now: dt.datetime | None = None) -> _Account:
    def clock() -> dt.datetime:
        return now if now is not None else utcnow()

    if owner.panel_user_id is not None:
        user = session.get(PanelUser, owner.panel_user_id)
        if user is None:
            raise NotFound("This account no longer exists.")
        actor = dataclasses.replace(
            Actor.for_user(user, channel=PANEL_CHANNEL, source=owner.source), clock=clock
        )
        is_customer = user.role == Role.CUSTOMER.value
        return _Account(
            label=user.username, account_key=user.username, role=user.role,
            password_hash=user.password_hash, actor=actor,
            customer_id=user.id if is_customer else None,
            reseller_id=user.parent_id if is_customer else (
                user.id if user.role == Role.RESELLER.value else None),
            can_sign_in=not user.is_suspended,
        )
    mailbox = session.get(Mailbox, owner.mailbox_id)
    if mailbox is None:
        raise NotFound("This mailbox no longer exists.")
    customer_id = mailbox.domain.owner_id
    actor = Actor(name=mailbox.address, role=Role.CUSTOMER, channel=MAILBOX_CHANNEL,
                  source=owner.source, customer_id=customer_id, clock=clock)
    return _Account(
        label=address_to_unicode(mailbox.address), account_key=mailbox.address,
        role=MAILBOX_ROLE, password_hash=mailbox.password_hash, actor=actor,
        customer_id=customer_id, reseller_id=None, can_sign_in=not mailbox.suspend_login,
    )


def password_fingerprint(password_hash: str) -> str:
    """Ties a pending second step to the password it followed: a new password voids it."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _owner_filter(model: type[TwoFactorSecret] | type[TwoFactorBrowser] | type[LoginSession],
                  owner: Owner) -> object:
    if owner.panel_user_id is not None:
        return model.panel_user_id == owner.panel_user_id
    return model.mailbox_id == owner.mailbox_id


def _secret_row(session: Session, owner: Owner) -> TwoFactorSecret | None:
    return session.scalars(
        select(TwoFactorSecret).where(_owner_filter(TwoFactorSecret, owner))  # type: ignore[arg-type]
    ).one_or_none()


def _confirmed_row(session: Session, owner: Owner) -> TwoFactorSecret | None:
    row = _secret_row(session, owner)
    return row if row is not None and row.confirmed_at is not None else None


def is_enabled(session: Session, owner: Owner) -> bool:
    return _confirmed_row(session, owner) is not None


def required_for_role(session: Session, role: str) -> bool:
    """Whether the server makes this role ("admin", "reseller", "customer", "mailbox") use a
    second factor."""
    return role in get_server_settings(session).two_factor_required_roles.split()


def _audit(session: Session, account: _Account, action: str, actor: Actor | None = None,
           after: dict[str, object] | None = None) -> None:
    record_event(
        session, actor or account.actor, action,
        object_type="two_factor", object_label=account.label,
        customer_id=account.customer_id, reseller_id=account.reseller_id, after=after,
    )


@dataclass(frozen=True)
class Enrolment:
    """A started enrolment, for the page that shows it."""

    #: The base32 secret, for typing into an app that cannot scan.
    secret: str
    #: The otpauth:// URI the QR code holds.
    uri: str
    #: The QR code as an SVG data: URI (an <img> source the panel's CSP allows).
    qr_data_uri: str


def _enrolment(secret: str, label: str) -> Enrolment:
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=label, issuer_name=ISSUER
    )
    qr = segno.make(uri, error="m", micro=False)
    return Enrolment(secret=secret, uri=uri,
                     qr_data_uri=qr.svg_data_uri(scale=5, border=2, title="QR code"))


# --- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactorStatus:
    enabled: bool
    #: An enrolment was started and waits for its confirmation code.
    pending: bool
    confirmed_at: dt.datetime | None
    recovery_codes_left: int
    #: The server makes this account's role use a second factor.
    required: bool
    remembered_browsers: int
    #: The started enrolment (its secret, not in use yet), when `get_status` had the box.
    enrolment: Enrolment | None = None


def get_status(session: Session, owner: Owner, now: dt.datetime,
               box: SecretBox | None = None) -> FactorStatus:
    """The owner's own two-factor state; the secret only of an enrolment not confirmed yet
    (and only with `box`), never of one in use."""
    account = _account(session, owner)
    row = _secret_row(session, owner)
    left = 0
    if row is not None and row.confirmed_at is not None:
        left = session.scalar(select(func.count()).select_from(TwoFactorRecoveryCode).where(
            TwoFactorRecoveryCode.secret_id == row.id, TwoFactorRecoveryCode.used_at.is_(None)
        )) or 0
    remembered = session.scalar(select(func.count()).select_from(TwoFactorBrowser).where(
        _owner_filter(TwoFactorBrowser, owner),  # type: ignore[arg-type]
        TwoFactorBrowser.expires_at > now,
    )) or 0
    return FactorStatus(
        enabled=row is not None and row.confirmed_at is not None,
        pending=row is not None and row.confirmed_at is None,
        confirmed_at=row.confirmed_at if row is not None else None,
        recovery_codes_left=left,
        required=required_for_role(session, account.role),
        remembered_browsers=remembered,
        enrolment=_started_enrolment(box, row, owner, account.label),
    )


def _started_enrolment(box: SecretBox | None, row: TwoFactorSecret | None, owner: Owner,
                       label: str) -> Enrolment | None:
    if box is None or row is None or row.confirmed_at is not None:
        return None
    try:
        return _enrolment(box.open_text(row.secret_encrypted, owner.context), label)
    except SecretUnreadable:
        # Sealed under an earlier secret key: the page offers to start again.
        return None


# --- enrolment --------------------------------------------------------------------------------


def start_enrolment(session: Session, owner: Owner, box: SecretBox, now: dt.datetime) -> Enrolment:
    """Make a new secret for the owner, waiting for its confirmation code.

    A previous unconfirmed secret is replaced. Raises Conflict when two-factor sign-in is on
    already (turn it off first: a second secret must not replace the one in use unseen).
    """
    account = _account(session, owner)
    row = _secret_row(session, owner)
    if row is not None and row.confirmed_at is not None:
        raise Conflict("Two-factor sign-in is on already. Turn it off first to set up "
                       "another device.")
    secret = pyotp.random_base32()
    sealed = box.seal(secret, owner.context)
    if row is None:
        row = TwoFactorSecret(panel_user_id=owner.panel_user_id, mailbox_id=owner.mailbox_id,
                              secret_encrypted=sealed, created_at=now)
        session.add(row)
    else:
        row.secret_encrypted = sealed
        row.created_at = now
        row.last_used_step = None
    session.flush()
    return _enrolment(secret, account.label)


def _open(box: SecretBox, row: TwoFactorSecret, owner: Owner) -> str:
    try:
        return box.open_text(row.secret_encrypted, owner.context)
    except SecretUnreadable:
        raise AuthenticationFailed(
            "The stored two-factor secret cannot be read (the server's secret key changed). "
            "Use a recovery code, or ask the server admin to reset your two-factor sign-in.",
            field="code",
        ) from None


def _matching_step(secret: str, code: str, now: dt.datetime, last_used: int | None) -> int | None:
    if not _DIGITS_ONLY.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_used is not None and step <= last_used:
            continue
        if hmac.compare_digest(totp.generate_otp(step).encode(), code.encode()):
            return step
    return None


def _clean(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").lower()[:MAX_CODE_LENGTH]


def _hash_code(code: str) -> str:
    return hashlib.sha256(_clean(code).encode()).hexdigest()


def _new_recovery_codes(session: Session, row: TwoFactorSecret) -> list[str]:
    session.execute(delete(TwoFactorRecoveryCode).where(TwoFactorRecoveryCode.secret_id == row.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET)
                      for _ in range(RECOVERY_GROUPS * RECOVERY_GROUP_LENGTH))
        code = "-".join(raw[i:i + RECOVERY_GROUP_LENGTH]
                        for i in range(0, len(raw), RECOVERY_GROUP_LENGTH))
        codes.append(code)
        session.add(TwoFactorRecoveryCode(secret_id=row.id, code_hash=_hash_code(code)))
    session.flush()
    return codes


def confirm_enrolment(
    session: Session, owner: Owner, code: str, box: SecretBox, now: dt.datetime, *,
    sign_in_session: str | None = None,
) -> list[str]:
    """Turn two-factor sign-in on with the first code from the new secret; return the ten
    recovery codes (shown now, never again). The current session (`sign_in_session`) counts
    as having just proved the second factor.

    Raises NotFound when no enrolment was started, ValidationError for a wrong code.
    """
    account = _account(session, owner, now)
    row = _secret_row(session, owner)
    if row is None or row.confirmed_at is not None:
        raise NotFound("Start the set-up first: there is no new secret waiting for its code.")
    step = _matching_step(_open(box, row, owner), _clean(code), now, None)
    if step is None:
        raise ValidationError(
            "That code does not match. Check that the device's clock is right and type the "
            "code it shows now.", field="code",
        )
    row.confirmed_at = now
    row.last_used_step = step
    codes = _new_recovery_codes(session, row)
    if sign_in_session:
        sessions.note_second_factor(session, sign_in_session, now)
    _audit(session, account, "two_factor.enable")
    return codes


# --- checking a code (sign-in, confirming presence, turning off) ------------------------------


@dataclass(frozen=True)
class CodeAccepted:
    used_recovery_code: bool
    recovery_codes_left: int


def _check_code(
    session: Session, owner: Owner, account: _Account, code: str, box: SecretBox, *,
    client_address: str, policy: throttle.ThrottlePolicy, device_token: str | None,
    now: dt.datetime,
) -> CodeAccepted:
    """Accept a TOTP code or an unused recovery code, under the sign-in throttle."""
    throttle.check_sign_in(session, account.account_key, client_address, device_token, now)
    row = _confirmed_row(session, owner)
    if row is None:
        raise NotFound("Two-factor sign-in is not on for this account.")
    cleaned = _clean(code)
    accepted: CodeAccepted | None = None
    if _DIGITS_ONLY.fullmatch(cleaned):
        step = _matching_step(_open(box, row, owner), cleaned, now, row.last_used_step)
        if step is not None:
            row.last_used_step = step
            accepted = CodeAccepted(False, _codes_left(session, row))
    elif cleaned:
        recovery = session.scalars(select(TwoFactorRecoveryCode).where(
            TwoFactorRecoveryCode.secret_id == row.id,
            TwoFactorRecoveryCode.code_hash == _hash_code(cleaned),
            TwoFactorRecoveryCode.used_at.is_(None),
        )).first()
        if recovery is not None:
            recovery.used_at = now
            session.flush()
            accepted = CodeAccepted(True, _codes_left(session, row))
            _audit(session, account, "two_factor.recovery_code_used",
                   after={"recovery_codes_left": accepted.recovery_codes_left})
    if accepted is None:
        refusal = throttle.record_sign_in_failure(
            session, account.account_key, client_address, device_token, now, policy
        )
        if refusal is not None:
            raise refusal
        raise AuthenticationFailed(
            "The code is wrong or was used already. Type the code your app shows now, or an "
            "unused recovery code.", field="code",
        )
    session.flush()
    return accepted


def _codes_left(session: Session, row: TwoFactorSecret) -> int:
    return session.scalar(select(func.count()).select_from(TwoFactorRecoveryCode).where(
        TwoFactorRecoveryCode.secret_id == row.id, TwoFactorRecoveryCode.used_at.is_(None)
    )) or 0


# --- sign-in ----------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _is_remembered(session: Session, owner: Owner, tokens: Sequence[str], now: dt.datetime) -> bool:
    hashes = [_token_hash(tk) for tk in tokens[:MAX_REMEMBERED] if tk and len(tk) <= 128]
    if not hashes:
        return False
    found = session.scalar(select(func.count()).select_from(TwoFactorBrowser).where(
        _owner_filter(TwoFactorBrowser, owner),  # type: ignore[arg-type]
        TwoFactorBrowser.token_hash.in_(hashes),
        TwoFactorBrowser.expires_at > now,
    ))
    return bool(found)


def step_after_password(
    session: Session, owner: Owner, remembered: Sequence[str], now: dt.datetime
) -> SecondStep:
    """What the sign-in needs once the password was right: a code (two-factor sign-in is on
    and this browser is not remembered), an enrolment (it is off but the server requires it
    for the account's role), or nothing."""
    account = _account(session, owner)
    if is_enabled(session, owner):
        return SecondStep.NONE if _is_remembered(session, owner, remembered, now) else (
            SecondStep.CODE)
    if required_for_role(session, account.role):
        return SecondStep.ENROL
    return SecondStep.NONE


@dataclass(frozen=True)
class SecondStepSignIn:
    """A sign-in completed with its second factor."""

    outcome: throttle.SignInOutcome
    session_token: str
    #: A new "remember this browser" token for the cookie, when asked for.
    remember_token: str | None
    used_recovery_code: bool
    recovery_codes_left: int
    #: The account now signed in (one of the two).
    panel_user: PanelUser | None = None
    mailbox: Mailbox | None = None


def complete_sign_in(
    session: Session,
    owner: Owner,
    code: str,
    box: SecretBox,
    *,
    password_step_at: dt.datetime,
    fingerprint: str,
    client_address: str,
    policy: throttle.ThrottlePolicy,
    device_token: str | None,
    remember_browser: bool,
    session_idle_limit: dt.timedelta,
    now: dt.datetime,
) -> SecondStepSignIn:
    """The second step of a sign-in whose password was right at `password_step_at` (the hash
    then had `fingerprint`): check the code, then start the server-side session.

    Raises AuthenticationFailed when the password step is older than `PENDING_FOR`, the
    password changed since, the account was suspended, or the code is wrong (wrong codes
    count against the sign-in throttle, so the caller must commit even then); RateLimited
    while this way in is locked.
    """
    account = _account(session, owner, now)
    if (not dt.timedelta(0) <= now - password_step_at <= PENDING_FOR
            or not hmac.compare_digest(fingerprint.encode(),
                                       password_fingerprint(account.password_hash).encode())
            or not account.can_sign_in):
        raise AuthenticationFailed("The sign-in took too long or is no longer valid. "
                                   "Sign in again with your password.")
    accepted = _check_code(session, owner, account, code, box, client_address=client_address,
                           policy=policy, device_token=device_token, now=now)
    outcome = throttle.record_sign_in_success(
        session, account.account_key, client_address, device_token, now
    )
    user = session.get(PanelUser, owner.panel_user_id) if owner.panel_user_id else None
    mailbox = session.get(Mailbox, owner.mailbox_id) if owner.mailbox_id else None
    for signed_in in (user, mailbox):
        if signed_in is not None:
            signed_in.last_login_at = now
    token = sessions.start_session(
        session, panel_user_id=owner.panel_user_id, mailbox_id=owner.mailbox_id,
        client_address=client_address, now=now, idle_limit=session_idle_limit,
        second_factor_at=now,
    )
    remember_token = _remember_browser(session, owner, now) if remember_browser else None
    session.flush()
    return SecondStepSignIn(
        outcome=outcome, session_token=token, remember_token=remember_token,
        used_recovery_code=accepted.used_recovery_code,
        recovery_codes_left=accepted.recovery_codes_left,
        panel_user=user, mailbox=mailbox,
    )


def _remember_browser(session: Session, owner: Owner, now: dt.datetime) -> str:
    session.execute(delete(TwoFactorBrowser).where(TwoFactorBrowser.expires_at <= now))
    token = secrets.token_urlsafe(32)
    session.add(TwoFactorBrowser(
        token_hash=_token_hash(token), panel_user_id=owner.panel_user_id,
        mailbox_id=owner.mailbox_id, created_at=now, expires_at=now + REMEMBER_FOR,
    ))
    session.flush()
    stale = list(session.scalars(
        select(TwoFactorBrowser.id)
        .where(_owner_filter(TwoFactorBrowser, owner))  # type: ignore[arg-type]
        .order_by(TwoFactorBrowser.created_at.desc(), TwoFactorBrowser.id.desc())
        .offset(MAX_REMEMBERED)
    ))
    if stale:
        session.execute(delete(TwoFactorBrowser).where(TwoFactorBrowser.id.in_(stale)))
    return token


def forget_browsers(session: Session, owner: Owner) -> int:
    """Every remembered browser of the owner must type a code again; returns how many."""
    condition = _owner_filter(TwoFactorBrowser, owner)
    count = session.scalar(select(func.count()).select_from(TwoFactorBrowser).where(
        condition))  # type: ignore[arg-type]
    session.execute(delete(TwoFactorBrowser).where(condition))  # type: ignore[arg-type]
    session.flush()
    return count or 0


def sign_out_everywhere(session: Session, owner: Owner) -> int:
    """End every session of the owner and forget its remembered browsers (so a stolen
    "remember this browser" cookie stops skipping the code); returns how many sessions ended."""
    ended = sessions.end_all_sessions(
        session, panel_user_id=owner.panel_user_id, mailbox_id=owner.mailbox_id
    )
    forget_browsers(session, owner)
    return ended


# --- a fresh second factor --------------------------------------------------------------------


def confirm_presence(
    session: Session, owner: Owner, code: str, box: SecretBox, *, sign_in_session: str,
    client_address: str, policy: throttle.ThrottlePolicy, device_token: str | None,
    now: dt.datetime,
) -> CodeAccepted:
    """Prove the second factor again in a signed-in session (before creating an API token).

    Wrong codes count against the sign-in throttle (the caller must commit even when this
    raises AuthenticationFailed or RateLimited).
    """
    account = _account(session, owner, now)
    accepted = _check_code(session, owner, account, code, box, client_address=client_address,
                           policy=policy, device_token=device_token, now=now)
    sessions.note_second_factor(session, sign_in_session, now)
    return accepted


def require_fresh_factor(
    session: Session, actor: Actor, sign_in_session: str | None
) -> None:
    """Refuse (SecondFactorRequired) when the actor's panel account has two-factor sign-in on
    and its session (`sign_in_session`) did not prove it within `FRESH_FOR`.

    The machine's command line (channel "cli") is not asked: see `CLI_CHANNEL`.
    """
    if actor.channel == CLI_CHANNEL or actor.user_id is None:
        return
    owner = Owner.panel(actor.user_id)
    if not is_enabled(session, owner):
        return
    proved = sessions.second_factor_at(session, sign_in_session or "",
                                       panel_user_id=actor.user_id)
    if proved is None or not dt.timedelta(0) <= actor.now() - proved <= FRESH_FOR:
        minutes = int(FRESH_FOR.total_seconds() // 60)
        raise SecondFactorRequired(
            f"Confirm with your authenticator code first: creating an API token needs a "
            f"second factor proved in the last {minutes} minutes.", field="code",
        )


# --- turning it off, new recovery codes, the admin's reset ------------------------------------


def _drop(session: Session, owner: Owner, row: TwoFactorSecret) -> None:
    session.execute(delete(TwoFactorRecoveryCode).where(TwoFactorRecoveryCode.secret_id == row.id))
    session.delete(row)
    forget_browsers(session, owner)
    session.flush()


def disable(
    session: Session, owner: Owner, code: str, box: SecretBox, *, client_address: str,
    policy: throttle.ThrottlePolicy, device_token: str | None, now: dt.datetime,
) -> None:
    """Turn the owner's two-factor sign-in off, with a current code or a recovery code; the
    remembered browsers are forgotten. Refused (PermissionDenied) while the server requires
    a second factor for the owner's role. A started, unconfirmed enrolment is cancelled
    without a code."""
    account = _account(session, owner, now)
    row = _secret_row(session, owner)
    if row is None:
        raise NotFound("Two-factor sign-in is not on for this account.")
    if row.confirmed_at is None:
        _drop(session, owner, row)
        return
    if required_for_role(session, account.role):
        raise PermissionDenied(
            "This server requires two-factor sign-in for your account; it cannot be turned "
            "off. Lost your device? Sign in with a recovery code, or ask the server admin."
        )
    _check_code(session, owner, account, code, box, client_address=client_address,
                policy=policy, device_token=device_token, now=now)
    _drop(session, owner, row)
    _audit(session, account, "two_factor.disable")


def regenerate_recovery_codes(
    session: Session, owner: Owner, code: str, box: SecretBox, *, client_address: str,
    policy: throttle.ThrottlePolicy, device_token: str | None, now: dt.datetime,
) -> list[str]:
    """Replace the recovery codes (the old ones stop working), with a current TOTP code."""
    account = _account(session, owner, now)
    if not _DIGITS_ONLY.fullmatch(_clean(code)):
        raise ValidationError("Type the code your authenticator app shows now.", field="code")
    _check_code(session, owner, account, code, box, client_address=client_address,
                policy=policy, device_token=device_token, now=now)
    row = _confirmed_row(session, owner)
    assert row is not None
    codes = _new_recovery_codes(session, row)
    _audit(session, account, "two_factor.recovery_codes")
    return codes


def reset_two_factor(session: Session, actor: Actor, who: str) -> bool:
    """The server admin's escape hatch: turn off the second factor of the panel user or the
    mailbox (a mail address) `who`, so it signs in with its password alone (and enrols again
    if its role requires it). Returns whether there was one to turn off.

    Raises PermissionDenied for anyone but the server admin, NotFound for an unknown account.
    """
    require_admin(actor, "can reset another account's two-factor sign-in")
    owner = _owner_named(session, who)
    account = _account(session, owner)
    row = _secret_row(session, owner)
    forget_browsers(session, owner)
    if row is None:
        return False
    _drop(session, owner, row)
    _audit(session, account, "two_factor.reset", actor=actor)
    return True


def status_of(session: Session, actor: Actor, who: str) -> FactorStatus:
    """The two-factor state of the panel user or the mailbox `who`, for the server admin only
    (never a secret). Raises PermissionDenied for anyone else, NotFound for an unknown one."""
    require_admin(actor, "can see another account's two-factor sign-in")
    return get_status(session, _owner_named(session, who), actor.now())


def _owner_named(session: Session, who: str) -> Owner:
    """The panel user (a user name) or the mailbox (a mail address) `who`."""
    name = who.strip()
    if "@" in name:
        mailbox = _mailbox_at(session, name)
        if mailbox is None:
            raise NotFound(f"There is no mailbox {name!r}.", field="user")
        return Owner.mailbox(mailbox.id)
    user = session.scalars(
        select(PanelUser).where(PanelUser.username == name.lower())
    ).one_or_none()
    if user is None:
        raise NotFound(f"There is no panel user {name!r}.", field="user")
    return Owner.panel(user.id)


def _mailbox_at(session: Session, address: str) -> Mailbox | None:
    try:
        local, domain_name = split_address(address, hosted=True)
    except InvalidName:
        return None
    return session.scalars(
        select(Mailbox).join(Domain, Domain.id == Mailbox.domain_id)
        .where(Domain.name == domain_name, Mailbox.local_part == local)
    ).one_or_none()
