"""The JSON API under /api/v1: bearer tokens, one service call per operation, JSON errors.

Requests authenticate with `Authorization: Bearer <prefix>.<secret>` only. The panel's session
cookie is ignored here and CSRF protection is off for this blueprint: with no cookie accepted,
a third-party page cannot make the browser send a credential.

Errors are `{"error": {"code", "message", "field"}}`. Service refusals map by class:
ValidationError, InvalidName, WeakPassword and LimitReached 422 (a package limit is a property of
the request against the account, not a missing right, so it is not 403), NotFound 404,
PermissionDenied 403, Conflict 409, AuthenticationFailed 401, RateLimited 429 with Retry-After.
An error response rolls the request's transaction back (panel.db).

Every request made with a valid token is audited (`audit.record_api_call`: channel "api",
action "api.call", method, path and status). A successful call's event is written in the
request's own transaction, so the change and its record commit or vanish together. A refused
call (status 400 or more) has its transaction rolled back, which would take the record with it;
so the request's changes are discarded first and the event is written in a separate short
transaction from the session factory. Discarding first matters: the request's session may hold
a write lock (the token's last use), which SQLite would make the second transaction wait for.
A valid token refused for its scope (a read-only token writing) is audited as its owner's call.
Requests whose token did not authenticate are not audited here: they carry no actor, and they
already count against the client address (see `tokens.authenticate_api_token`). Nor are
requests that match no API route (404/405 before any API view or hook runs).
"""

from __future__ import annotations

import typing as t

import pydantic
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from mailadmin.db import transaction
from mailadmin.errors import (
    AuthenticationFailed,
    Conflict,
    LimitReached,
    MailadminError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ValidationError,
)
from mailadmin.models import utcnow
from mailadmin.services import audit, tokens
from mailadmin.services.context import Actor

from .. import db as request_db
from ..extensions import csrf
from .routing import OPERATIONS

URL_PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=URL_PREFIX)
csrf.exempt(bp)

#: HTTP status per refusal class; the most specific class wins (InvalidName is a ValidationError).
STATUS: tuple[tuple[type[MailadminError], int], ...] = (
    (RateLimited, 429),
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (LimitReached, 422),
    (ValidationError, 422),
)

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    500: "internal_error",
}


def error_response(
    status: int, code: str, message: str, field: str | None = None
) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message, "field": field}}), status


def _status_of(error: MailadminError) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 400


@bp.errorhandler(MailadminError)
def _refusal(error: MailadminError) -> tuple[Response, int]:
    response, status = error_response(_status_of(error), error.code, error.message, error.field)
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, AuthenticationFailed):
        response.headers["WWW-Authenticate"] = 'Bearer realm="mailadmin"'
    return response, status


def _problem_text(problem: t.Mapping[str, t.Any]) -> str:
    # Our own validators raise ValueError; pydantic prefixes their text with "Value error, ".
    return str(problem["msg"]).removeprefix("Value error, ")


def _problem_field(problem: t.Mapping[str, t.Any]) -> str | None:
    return ".".join(str(part) for part in problem["loc"]) or None


@bp.errorhandler(pydantic.ValidationError)
def _invalid(error: pydantic.ValidationError) -> tuple[Response, int]:
    """422 naming the first problem's field; `details` lists every problem."""
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    field = _problem_field(first)
    message = f"{field}: {_problem_text(first)}" if field else _problem_text(first)
    body = {"error": {
        "code": "invalid", "message": message, "field": field,
        "details": [
            {"field": _problem_field(p), "message": _problem_text(p), "type": p["type"]}
            for p in problems
        ],
    }}
    return jsonify(body), 422


def _http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    # A 500's description could echo internals; give the generic text only.
    message = "The server failed to answer this request." if status >= 500 else (
        error.description or error.name
    )
    response, status = error_response(status, HTTP_CODES.get(status, f"http_{status}"), message)
    valid_methods = getattr(error, "valid_methods", None)
    if status == 405 and valid_methods:
        response.headers["Allow"] = ", ".join(valid_methods)
    return response, status


bp.register_error_handler(HTTPException, _http_error)


def _is_api_path() -> bool:
    return request.path == URL_PREFIX or request.path.startswith(URL_PREFIX + "/")


@bp.record_once
def _json_for_unrouted(state: BlueprintSetupState) -> None:
    """Answer in JSON when no API route matched (404, 405), which blueprint handlers never see.

    Elsewhere the app's own handler for the error is used, so the panel's pages are unchanged.
    """
    app = t.cast(Flask, state.app)

    def handler(error: HTTPException) -> t.Any:
        if _is_api_path():
            return _http_error(error)
        for cls in type(error).__mro__:
            fallback = app.error_handler_spec[None][None].get(cls)
            if fallback is not None:
                return fallback(error)
        return error

    app.register_error_handler(404, handler)
    app.register_error_handler(405, handler)


def _is_public(endpoint: str | None) -> bool:
    """An operation declared public (the OpenAPI document): no token needed."""
    return any(op.public and f"{bp.name}.{op.endpoint}" == endpoint for op in OPERATIONS)


@bp.before_request
def _authenticate() -> None:
    if _is_public(request.endpoint):
        return
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else ""
    session = request_db.session()
    try:
        user = tokens.authenticate_api_token(
            session,
            token,
            utcnow(),
            required_scope=tokens.READ if request.method in ("GET", "HEAD") else tokens.WRITE,
            client_address=request.remote_addr or "unknown",
            policy=current_app.extensions["mailadmin"].throttle_policy,
        )
    except (AuthenticationFailed, RateLimited):
        # The failure count must survive the error response's rollback.
        request_db.keep_changes_on_error()
        raise
    except PermissionDenied:
        # A valid token without the scope the method needs: still a call with a token.
        g.api_refused_token = _token_prefix()
        raise
    g.api_actor = Actor.for_user(user, channel="api", source=request.remote_addr)


@bp.after_request
def _audit_call(response: Response) -> Response:
    """Audit a call made with a valid token (see the module docstring for the transactions)."""
    actor: Actor | None = g.get("api_actor")
    refused_token: str | None = g.get("api_refused_token")
    if actor is None and refused_token is None:
        return response
    call: dict[str, t.Any] = {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "token_prefix": _token_prefix(),
    }
    if actor is not None and (response.status_code < 400 or g.get("keep_changes_on_error")):
        audit.record_api_call(request_db.session(), actor, **call)
        return response
    request_db.discard_changes()
    factory = current_app.extensions["mailadmin"].session_factory
    with transaction(factory) as session:
        if actor is None and refused_token is not None:
            actor = audit.api_caller(session, refused_token, request.remote_addr)
        if actor is not None:
            audit.record_api_call(session, actor, **call)
    return response


def _token_prefix() -> str | None:
    """The public prefix of the bearer token sent (never the secret)."""
    _, _, credentials = request.headers.get("Authorization", "").partition(" ")
    match = tokens.TOKEN_PATTERN.fullmatch(credentials.strip())
    return match.group(1) if match else None
