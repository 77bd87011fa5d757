"""The audit log: who changed what, as whom, from where."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import login_required

from mailadmin.services import audit

from . import db
from .auth import current_actor

bp = Blueprint("audit", __name__, url_prefix="/audit")


@bp.route("/")
@login_required  # type: ignore[misc]
def index() -> ResponseReturnValue:
    try:
        page_number = max(1, int(request.args.get("page", 1)))
    except ValueError:
        page_number = 1
    page = audit.list_audit_events(db.session(), current_actor(), page=page_number)
    return render_template("audit/index.html", page=page)
