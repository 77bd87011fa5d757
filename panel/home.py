"""The dashboard each role lands on after signing in."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from mailadmin.services import overview, server
from mailadmin.sizes import format_size

from . import db
from .auth import current_actor

bp = Blueprint("home", __name__)


@bp.route("/")
def index() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("home.dashboard"))
    return redirect(url_for("auth.login"))


@bp.route("/webmail")
def webmail() -> ResponseReturnValue:
    """A stable address for the webmail, wherever the server admin has put it."""
    target = server.webmail_url(db.session())
    if not target:
        abort(404, description="No webmail is configured on this server.")
    return redirect(target)


@bp.route("/dashboard")
@login_required  # type: ignore[misc]
def dashboard() -> ResponseReturnValue:
    summary = overview.dashboard_summary(db.session(), current_actor())
    return render_template("dashboard.html", summary=summary, format_size=format_size)
