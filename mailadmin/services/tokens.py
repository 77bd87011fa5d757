"""API tokens: bearer credentials a panel user creates and revokes for the JSON API.

A token reads "<prefix>.<secret>". The prefix is a public, random lookup key; the secret is
256 random bits of which only a SHA-256 hash is stored, so the token is shown once, when it
is made. A token acts with exactly its owner's rights (an Actor built from the owner), and
its scopes can only narrow them: "read" allows looking, "write" allows changing.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import AuthenticationFailed, LimitReached, NotFound, PermissionDenied, ValidationError
from ..models import ApiToken, PanelUser, Role
from ..security import hash_token_secret, token_secret_matches
from . import throttle, twofactor
from .audit import record_event
from .context import Actor

READ = "read"
WRITE = "write"
SCOPES = (READ, WRITE)
NAME_MAX = 64
MAX_ACTIVE_TOKENS = 50
PREFIX_BYTES = 6  # 12 hex characters: the column holds 16
SECRET_BYTES = 32  # 256 bits
# A printable single line: the name is shown in lists and in the audit trail.
NAME_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
TOKEN_PATTERN = re.compile(r"^([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$")

# Compared against when no token has the given prefix, so that an unknown prefix takes as long
# to refuse as a wrong secret.
_DUMMY_HASH = hash_token_secret(secrets.token_urlsafe(SECRET_BYTES))

_REFUSAL = "The API token is missing, malformed, unknown, revoked or expired."

#: `last_used_at` is written at most this often. Writing it on every call would take the
#: database's write lock (SQLite: the whole database; the others: the token's row) at the start
#: of every request and hold it while the request works, e.g. hashes a new mailbox's password
#: for ~50 ms: every client of the same token, and on SQLite every writer, would wait in line.
TOUCH_EVERY = dt.timedelta(minutes=1)


def _normalize_scopes(scopes: Iterable[str] | None) -> list[str]:
    if scopes is None:
        return list(SCOPES)
    chosen = {scope.strip().lower() for scope in scopes if scope.strip()}
    unknown = sorted(chosen - set(SCOPES))
    if unknown:
        raise ValidationError(
            f"Unknown scope {unknown[0]!r}: choose from {', '.join(SCOPES)}.", field="scopes"
        )
    if not chosen:
        raise ValidationError("Give the token at least one scope.", field="scopes")
    return [scope for scope in SCOPES if scope in chosen]


def token_scopes(token: ApiToken) -> list[str]:
    return [scope for scope in token.scopes.split() if scope in SCOPES]


def _owner(session: Session, actor: Actor) -> PanelUser:
    if actor.user_id is None:
        raise PermissionDenied("Only a panel user can hold API tokens.")
    owner = session.get(PanelUser, actor.user_id)
    if owner is None:
        raise NotFound("Your account no longer exists.")
    return owner


def _audit(session: Session, actor: Actor, action: str, token: ApiToken, owner: PanelUser,
           before: dict[str, object] | None, after: dict[str, object] | None) -> None:
    is_customer = owner.role == Role.CUSTOMER.value
    record_event(
        session, actor, action,
        object_type="api_token", object_id=token.id,
        object_label=f"{owner.username}: {token.name} ({token.prefix})",
        customer_id=owner.id if is_customer else None,
        reseller_id=owner.parent_id if is_customer else (
            owner.id if owner.role == Role.RESELLER.value else None
        ),
        before=before, after=after,
    )


def _state(token: ApiToken) -> dict[str, object]:
    # Never the hash: the audit trail is readable by the owner and the server admin.
    return {
        "name": token.name,
        "prefix": token.prefix,
        "scopes": token_scopes(token),
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
    }


def create_api_token(
    session: Session,
    actor: Actor,
    name: str,
    scopes: Iterable[str] | None = None,
    *,
    expires_at: dt.datetime | None = None,
    sign_in_session: str | None = None,
) -> tuple[ApiToken, str]:
    """Make a token for the acting panel user; return it and the token text, shown only now.

    A token outlives the browser session and skips the second factor, so an owner with
    two-factor sign-in must have proved it recently in this session (`sign_in_session`, the
    server-side session's token; see `twofactor.require_fresh_factor`).

    Raises ValidationError (name, scopes, expiry in the past), LimitReached (too many active
    tokens), SecondFactorRequired (no fresh second factor) or PermissionDenied (the operator
    has no panel account to own a token).
    """
    owner = _owner(session, actor)
    twofactor.require_fresh_factor(session, actor, sign_in_session)
    label = name.strip()
    if not NAME_PATTERN.fullmatch(label):
        raise ValidationError(
            f"Name the token in 1 to {NAME_MAX} characters on one line.", field="name"
        )
    chosen = _normalize_scopes(scopes)
    now = actor.now()
    if expires_at is not None and expires_at <= now:
        raise ValidationError("The expiry must lie in the future.", field="expires_at")
    active = session.scalar(
        select(func.count()).select_from(ApiToken).where(
            ApiToken.owner_id == owner.id,
            ApiToken.revoked_at.is_(None),
            (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now),
        )
    ) or 0
    if active >= MAX_ACTIVE_TOKENS:
        raise LimitReached(
            f"You may have {MAX_ACTIVE_TOKENS} active API tokens; you have {active}. "
            "Revoke one first."
        )
    prefix = secrets.token_hex(PREFIX_BYTES)
    while session.scalars(select(ApiToken.id).where(ApiToken.prefix == prefix)).first():
        prefix = secrets.token_hex(PREFIX_BYTES)  # pragma: no cover - 48 random bits
    secret = secrets.token_urlsafe(SECRET_BYTES)
    token = ApiToken(
        owner_id=owner.id,
        name=label,
        prefix=prefix,
        secret_hash=hash_token_secret(secret),
        scopes=" ".join(chosen),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    _audit(session, actor, "api_token.create", token, owner, None, _state(token))
    return token, f"{prefix}.{secret}"


def list_api_tokens(session: Session, actor: Actor) -> list[ApiToken]:
    """The acting user's tokens, newest first, revoked and expired ones included."""
    owner = _owner(session, actor)
    return list(session.scalars(
        select(ApiToken)
        .where(ApiToken.owner_id == owner.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ))


def revoke_api_token(session: Session, actor: Actor, token_id: int) -> ApiToken:
    """Revoke one of the acting user's tokens; anyone else's is reported as not found.

    Revoking a revoked token changes nothing and writes no audit event.
    """
    owner = _owner(session, actor)
    token = session.get(ApiToken, token_id)
    if token is None or token.owner_id != owner.id:
        raise NotFound("There is no such API token in your account.", field="token")
    if token.revoked_at is None:
        before = _state(token)
        token.revoked_at = actor.now()
        session.flush()
        _audit(session, actor, "api_token.revoke", token, owner, before, _state(token))
    return token


def authenticate_api_token(
    session: Session,
    token_string: str,
    now: dt.datetime,
    *,
    required_scope: str | None = None,
    client_address: str | None = None,
    policy: throttle.ThrottlePolicy | None = None,
) -> PanelUser:
    """The owner of a valid token, after noting when the token was last used (to the
    minute: see `TOUCH_EVERY`).

    With `client_address` and `policy`, failures count against the address (as failed sign-ins
    do) and a locked address is refused with RateLimited before the token is looked at; the
    caller must then keep this transaction even though the request fails.
    An empty `token_string` is refused without counting as a failure.
    Raises AuthenticationFailed (missing, malformed, unknown, wrong, revoked, expired, owner
    suspended), RateLimited, or PermissionDenied (the token lacks `required_scope`).
    """
    if not token_string.strip():
        # A client that forgot the header is not guessing; it is not counted as a failure.
        raise AuthenticationFailed("Send an API token: 'Authorization: Bearer <token>'.")
    keys = {throttle.ADDRESS: client_address} if client_address and policy else {}
    if keys:
        throttle.ensure_not_locked(session, keys, now)
    match = TOKEN_PATTERN.fullmatch(token_string.strip())
    token: ApiToken | None = None
    if match:
        prefix, secret = match.groups()
        token = session.scalars(select(ApiToken).where(ApiToken.prefix == prefix)).one_or_none()
        # Always compare, in constant time, so an unknown prefix is not answered faster.
        ok = token_secret_matches(secret, token.secret_hash if token else _DUMMY_HASH)
    else:
        ok = False
    owner = session.get(PanelUser, token.owner_id) if token is not None and ok else None
    usable = (
        token is not None and owner is not None and not owner.is_suspended
        and token.revoked_at is None
        and (token.expires_at is None or token.expires_at > now)
    )
    if not usable or token is None or owner is None:
        if keys and policy is not None:
            refusal = throttle.record_failure(session, keys, now, policy)
            if refusal is not None:
                raise refusal
        if owner is not None and owner.is_suspended:
            raise AuthenticationFailed("The panel account that owns this token is suspended.")
        raise AuthenticationFailed(_REFUSAL)
    if required_scope is not None and required_scope not in token_scopes(token):
        raise PermissionDenied(f"This API token does not have the {required_scope!r} scope.")
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        token.last_used_at = now
        session.flush()
    return owner
