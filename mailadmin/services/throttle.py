"""Failed sign-in counting per account and per client address.

Kept in the database so that every panel process (and the API) shares one count.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import RateLimited
from ..models import LoginThrottle

ACCOUNT = "account"
ADDRESS = "address"


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures_per_account: int = 5
    max_failures_per_address: int = 20
    window: dt.timedelta = dt.timedelta(minutes=15)
    lock: dt.timedelta = dt.timedelta(minutes=15)

    def limit_for(self, scope: str) -> int:
        return self.max_failures_per_account if scope == ACCOUNT else self.max_failures_per_address


def _row(session: Session, scope: str, key: str) -> LoginThrottle | None:
    return session.scalars(
        select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key)
    ).one_or_none()


def _refusal(scope: str, locked_until: dt.datetime, now: dt.datetime) -> RateLimited:
    seconds = max(1, math.ceil((locked_until - now).total_seconds()))
    minutes = math.ceil(seconds / 60)
    what = "this account" if scope == ACCOUNT else "your network address"
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
