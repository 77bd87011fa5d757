"""The server admin's pages: server settings."""

from __future__ import annotations

import typing as t
from functools import wraps

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from mailadmin.errors import MailadminError
from mailadmin.services import settings as settings_service

from . import db
from .auth import current_actor

bp = Blueprint("admin", __name__, url_prefix="/admin")


def admin_required(
    view: t.Callable[..., ResponseReturnValue],
) -> t.Callable[..., ResponseReturnValue]:
    @wraps(view)
    def wrapped(*args: t.Any, **kwargs: t.Any) -> ResponseReturnValue:
        if getattr(current_user, "role", None) != "admin":
            abort(403, description="Only the server admin can open this page.")
        return view(*args, **kwargs)

    return wrapped


@bp.route("/settings", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
@admin_required
def settings() -> ResponseReturnValue:
    form = FlaskForm()
    errors: dict[str, str] = {}
    values = settings_service.list_settings(db.session(), current_actor())
    status = 200
    if form.validate_on_submit():
        submitted = {
            name: request.form.get(name, "")
            for name in settings_service.SPECS
            if name != "apply_automatically"
        }
        submitted["apply_automatically"] = (
            "true" if request.form.get("apply_automatically") else "false"
        )
        try:
            settings_service.update_settings(db.session(), current_actor(), submitted)
        except MailadminError as exc:
            errors[exc.field or ""] = exc.message
            values.update(submitted)
            status = 422
        else:
            flash("Server settings saved.", "success")
            return redirect(url_for("admin.settings"))
    elif request.method == "POST":
        status = 400
    return render_template(
        "admin/settings.html",
        form=form,
        values=values,
        specs=settings_service.SPECS,
        errors=errors,
    ), status
