"""The address resolver page: where mail for an address goes and who may log in with it."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import login_required

from mailadmin.errors import MailadminError, NotFound
from mailadmin.services import resolver

from . import db
from .auth import current_actor

bp = Blueprint("resolver", __name__)


@bp.route("/resolve")
@login_required  # type: ignore[misc]
def index() -> ResponseReturnValue:
    """A GET form (it changes nothing), so the answer has a URL that can be shared."""
    address = (request.args.get("address") or "").strip()[:320]
    answer = None
    error = None
    status = 200
    if address:
        try:
            answer = resolver.resolve_address(db.session(), current_actor(), address)
        except MailadminError as exc:
            error = exc.message
            status = 404 if isinstance(exc, NotFound) else 422
    return render_template("resolver/index.html", address=address, answer=answer,
                           error=error), status
