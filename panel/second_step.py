"""What the sign-in pages hand over to the second step of a two-factor sign-in.

Kept apart from `panel.twofactor` (which needs `panel.auth`'s principals) so that the two
sign-in pages, `panel.auth` and `panel.selfservice`, can use it without an import cycle.

Between the password and the code nothing is signed in: the (signed) Flask session holds
which account passed its password, when, and a fingerprint of its password hash; the code
page hands these to `twofactor.complete_sign_in`, which refuses them after
`twofactor.PENDING_FOR` or once the password changed.
"""

from __future__ import annotations

import datetime as dt

from flask import current_app, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from mailadmin.models import utcnow
from mailadmin.secretbox import SecretBox
from mailadmin.services import twofactor

PENDING_KEY = "twofactor_pending"
#: Set at sign-in when the server requires a second factor the account has not set up yet:
#: until it has, every page leads to the set-up (`panel.twofactor.enforce_enrolment`).
ENROL_KEY = "twofactor_enrol"
PANEL = "panel"
MAILBOX = "mailbox"

#: "Remember this browser": a signed list of random tokens, one per account remembered here.
REMEMBER_COOKIE = "mailadmin_2fa_browser"
REMEMBER_MAX_AGE = int(twofactor.REMEMBER_FOR.total_seconds())
MAX_COOKIE_TOKENS = 8


def box() -> SecretBox:
    return twofactor.box_for(current_app.secret_key or "")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="mailadmin-2fa-browser")


def remembered_browser_tokens() -> list[str]:
    """The tokens of this browser's "remember this browser" cookie, when validly signed."""
    raw = request.cookies.get(REMEMBER_COOKIE)
    if not raw or len(raw) > 2048:
        return []
    try:
        tokens = _serializer().loads(raw, max_age=REMEMBER_MAX_AGE)
    except BadSignature:
        return []
    if not isinstance(tokens, list):
        return []
    return [tk for tk in tokens if isinstance(tk, str)][:MAX_COOKIE_TOKENS]


def set_remember_cookie(response: Response, token: str) -> None:
    tokens = [token, *[tk for tk in remembered_browser_tokens() if tk != token]]
    response.set_cookie(
        REMEMBER_COOKIE, _serializer().dumps(tokens[:MAX_COOKIE_TOKENS]),
        max_age=REMEMBER_MAX_AGE, httponly=True, samesite="Lax", secure=request.is_secure,
    )


def begin_second_step(kind: str, account_id: int, password_hash: str,
                      next_url: str | None) -> ResponseReturnValue:
    """The password was right and a code is owed: remember that (only that) and ask for it."""
    session.clear()
    session[PENDING_KEY] = {
        "kind": kind,
        "id": account_id,
        "fp": twofactor.password_fingerprint(password_hash),
        "at": utcnow().isoformat(),
        "next": next_url,
    }
    return redirect(url_for("twofactor.code"))


def pending() -> dict[str, object] | None:
    value = session.get(PENDING_KEY)
    return value if isinstance(value, dict) else None


def pending_started_at(value: dict[str, object]) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(value.get("at")))
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.UTC)


def require_enrolment() -> None:
    """After a sign-in that returned `SecondStep.ENROL` (call after the session was renewed)."""
    session[ENROL_KEY] = True
