"""Failed sign-in counting per account, per client address and per (account, address) pair.

Kept in the database so that every panel process (and the API) shares one count.

Why three counters: a lock on the account alone lets anyone lock its owner out by typing wrong
passwords (a denial of service on the well-known `admin`). So wrong passwords first lock the
*pair* of account and client address, which stops a guesser without touching the owner; an
address guessing at many accounts is locked on its own; only a much higher count locks the
account for every address, and even then the account may still sign in, with the right
password, from a place it signed in from before: a client address or a browser carrying a
"known device" token (`KnownSignIn`). Failures are also kept until the owner's next successful
sign-in, which is told about them (`FailureNotice`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import RateLimited
from ..models import KnownSignIn, LoginThrottle

ACCOUNT = "account"
ADDRESS = "address"
PAIR = "pair"

KNOWN_ADDRESS = "address"
KNOWN_DEVICE = "device"
#: Known places kept per account and kind; the least recently used ones are forgotten first.
MAX_KNOWN_PER_ACCOUNT = 20
#: A known place not used for this long is forgotten.
KNOWN_FOR = dt.timedelta(days=180)


@dataclass(frozen=True)
class ThrottlePolicy:
    #: Failures on one account from all addresses that lock it for every address but the
    #: known ones; much higher than the per-pair count, so that only a wide attack gets there.
    max_failures_per_account: int = 100
    #: Failures from one client address over all accounts.
    max_failures_per_address: int = 20
    #: Failures on one account from one client address.
    max_failures_per_pair: int = 5
    window: dt.timedelta = dt.timedelta(minutes=15)
    lock: dt.timedelta = dt.timedelta(minutes=15)

    def limit_for(self, scope: str) -> int:
        if scope == ACCOUNT:
            return self.max_failures_per_account
        if scope == PAIR:
            return self.max_failures_per_pair
        return self.max_failures_per_address


def _row(session: Session, scope: str, key: str) -> LoginThrottle | None:
    return session.scalars(
        select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key)
    ).one_or_none()


def _refusal(scope: str, locked_until: dt.datetime, now: dt.datetime) -> RateLimited:
    seconds = max(1, math.ceil((locked_until - now).total_seconds()))
    minutes = math.ceil(seconds / 60)
    what = {
        ACCOUNT: "this account",
        PAIR: "this account from your network address",
    }.get(scope, "your network address")
    return RateLimited(
        f"Too many failed sign-ins for {what}. For your safety, sign-in is paused; "
        f"try again in {minutes} minute{'s' if minutes != 1 else ''} "
        f"(at {locked_until:%H:%M} UTC).",
        retry_after_seconds=seconds,
    )


def ensure_not_locked(session: Session, keys: dict[str, str], now: dt.datetime) -> None:
    """Raise RateLimited if any of the (scope -> key) counters is locked."""
    for scope, key in keys.items():
        row = _row(session, scope, key)
        if row and row.locked_until and row.locked_until > now:
            raise _refusal(scope, row.locked_until, now)


def record_failure(
    session: Session, keys: dict[str, str], now: dt.datetime, policy: ThrottlePolicy
) -> RateLimited | None:
    """Count one failure on each counter; return the refusal if this failure locked one."""
    refusal: RateLimited | None = None
    for scope, key in keys.items():
        row = _row(session, scope, key)
        if row is None:
            row = LoginThrottle(scope=scope, key=key, failures=0, window_started_at=now)
            session.add(row)
        if now - row.window_started_at > policy.window:
            row.failures = 0
            row.window_started_at = now
            row.locked_until = None
        row.failures += 1
        if row.failures >= policy.limit_for(scope):
            row.locked_until = now + policy.lock
            refusal = refusal or _refusal(scope, row.locked_until, now)
    session.flush()
    return refusal


def clear_failures(session: Session, scope: str, key: str) -> None:
    row = _row(session, scope, key)
    if row is not None:
        session.delete(row)
        session.flush()


# --- sign-in: pair, address and account counters, known places, the owner's notice ----------


def pair_key(account_key: str, client_address: str) -> str:
    """The counter key of one account from one client address (hashed: both parts are long)."""
    return hashlib.sha256(f"{account_key}\0{client_address}".encode()).hexdigest()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class FailureNotice:
    """Failed (or, while paused, refused) sign-ins on an account since its last successful one,
    told to the owner."""

    count: int
    last_at: dt.datetime | None
    last_from: str | None

    @property
    def message(self) -> str:
        times = "1 sign-in attempt with a wrong password was" if self.count == 1 else (
            f"{self.count} sign-in attempts with a wrong password (or while paused) were"
        )
        latest = ""
        if self.last_at is not None:
            latest = f" The latest was at {self.last_at:%Y-%m-%d %H:%M} UTC"
            latest += f" from {self.last_from}." if self.last_from else "."
        return (
            f"Since your last sign-in, {times} made on your account.{latest} "
            "If that was not you: an address that keeps guessing is paused after a few wrong "
            "passwords; change your password if it is short or used elsewhere."
        )


@dataclass(frozen=True)
class SignInOutcome:
    """What a successful sign-in reports besides the principal."""

    #: Failures since the previous sign-in, or None when there were none.
    notice: FailureNotice | None
    #: The browser's "known device" token to keep (in a cookie): the one it presented when
    #: that was valid, else a new one.
    device_token: str


def _sign_in_keys(account_key: str, client_address: str) -> dict[str, str]:
    return {
        PAIR: pair_key(account_key, client_address),
        ADDRESS: client_address,
        ACCOUNT: account_key,
    }


def _is_known(
    session: Session, account_key: str, client_address: str, device_token: str | None,
    now: dt.datetime,
) -> bool:
    wanted = [(KNOWN_ADDRESS, client_address)]
    if device_token:
        wanted.append((KNOWN_DEVICE, _hash(device_token)))
    for kind, value in wanted:
        row = session.scalars(select(KnownSignIn).where(
            KnownSignIn.account_key == account_key, KnownSignIn.kind == kind,
            KnownSignIn.value == value[:64],
        )).one_or_none()
        if row is not None and now - row.last_seen_at <= KNOWN_FOR:
            return True
    return False


def check_sign_in(
    session: Session, account_key: str, client_address: str, device_token: str | None,
    now: dt.datetime,
) -> None:
    """Raise RateLimited when this attempt must be refused before the password is checked.

    The pair and the address locks always apply; the account-wide lock does not apply to a
    client address or browser the account signed in from before.
    """
    for scope, key in _sign_in_keys(account_key, client_address).items():
        row = _row(session, scope, key)
        if row is None or row.locked_until is None or row.locked_until <= now:
            continue
        if scope == ACCOUNT and _is_known(session, account_key, client_address, device_token, now):
            continue
        # A refused attempt is still one the owner should hear about.
        _note_for_owner(session, account_key, client_address, now)
        session.flush()
        raise _refusal(scope, row.locked_until, now)


def _note_for_owner(
    session: Session, account_key: str, client_address: str, now: dt.datetime
) -> None:
    account = _row(session, ACCOUNT, account_key)
    if account is None:
        account = LoginThrottle(scope=ACCOUNT, key=account_key, failures=0, window_started_at=now)
        session.add(account)
    account.unseen_failures = (account.unseen_failures or 0) + 1
    account.last_failure_at = now
    account.last_failure_from = client_address[:64]


def record_sign_in_failure(
    session: Session, account_key: str, client_address: str, device_token: str | None,
    now: dt.datetime, policy: ThrottlePolicy,
) -> RateLimited | None:
    """Count one wrong password; return the refusal if this failure locked this attempt's way in.

    The failure is also kept for the owner's next sign-in (`FailureNotice`).
    """
    keys = _sign_in_keys(account_key, client_address)
    refusal = record_failure(session, keys, now, policy)
    _note_for_owner(session, account_key, client_address, now)
    session.flush()
    for scope in (PAIR, ADDRESS):
        row = _row(session, scope, keys[scope])
        if row is not None and row.locked_until is not None and row.locked_until > now:
            return _refusal(scope, row.locked_until, now)
    if refusal is not None and not _is_known(
        session, account_key, client_address, device_token, now
    ):
        return refusal
    return None


def _remember(session: Session, account_key: str, kind: str, value: str, now: dt.datetime) -> None:
    row = session.scalars(select(KnownSignIn).where(
        KnownSignIn.account_key == account_key, KnownSignIn.kind == kind,
        KnownSignIn.value == value,
    )).one_or_none()
    if row is None:
        session.add(KnownSignIn(account_key=account_key, kind=kind, value=value, last_seen_at=now))
    else:
        row.last_seen_at = now
    session.flush()
    stale = list(session.scalars(
        select(KnownSignIn.id)
        .where(KnownSignIn.account_key == account_key, KnownSignIn.kind == kind)
        .order_by(KnownSignIn.last_seen_at.desc(), KnownSignIn.id.desc())
        .offset(MAX_KNOWN_PER_ACCOUNT)
    ))
    if stale:
        session.execute(delete(KnownSignIn).where(KnownSignIn.id.in_(stale)))


def record_sign_in_success(
    session: Session, account_key: str, client_address: str, device_token: str | None,
    now: dt.datetime,
) -> SignInOutcome:
    """Note a successful sign-in: forget this pair's failures, remember the address and the
    browser, and hand over (once) what failed since the previous sign-in.

    The account-wide counter and its lock stay until they expire: the owner signing in from a
    known place must not reopen the account to a guesser spread over many addresses.
    """
    clear_failures(session, PAIR, pair_key(account_key, client_address))
    notice: FailureNotice | None = None
    account = _row(session, ACCOUNT, account_key)
    if account is not None and account.unseen_failures:
        notice = FailureNotice(
            count=account.unseen_failures,
            last_at=account.last_failure_at,
            last_from=account.last_failure_from,
        )
        account.unseen_failures = 0
    token = device_token if device_token and len(device_token) <= 128 else None
    if token is None:
        token = secrets.token_urlsafe(32)
    _remember(session, account_key, KNOWN_ADDRESS, client_address[:64], now)
    _remember(session, account_key, KNOWN_DEVICE, _hash(token), now)
    session.flush()
    return SignInOutcome(notice=notice, device_token=token)

