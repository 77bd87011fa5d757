"""The server admin's pages: server settings, and the mail servers' configuration revisions
(apply, roll back, diffs, and whether the servers have caught up with the panel)."""

from __future__ import annotations

import typing as t
from functools import wraps

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from mailadmin.display import format_time
from mailadmin.errors import InvalidFields, MailadminError, NotFound, PermissionDenied
from mailadmin.server_settings_table import GROUPS, TABLE, Check
from mailadmin.services import nodes as nodes_service
from mailadmin.services import server_settings as settings_service
from mailadmin.services import stack as stack_service

from . import db
from .auth import current_actor
from .paging import page_arg
from .preferences import current_time_zone

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
    values = settings_service.settings_for_editing(db.session(), current_actor())
    status = 200
    if form.validate_on_submit():
        # a field the form did not send stays as it is; an unticked box is sent as nothing
        submitted = {
            setting.name: ("true" if request.form.get(setting.name) else "false")
            if setting.check is Check.BOOL else request.form[setting.name]
            for setting in TABLE
            if setting.check is Check.BOOL or setting.name in request.form
        }
        try:
            settings_service.update_settings(db.session(), current_actor(), submitted)
        except InvalidFields as exc:
            errors = exc.errors
        except MailadminError as exc:
            errors[exc.field or ""] = exc.message
        else:
            flash("Server settings saved.", "success")
            return redirect(url_for("admin.settings"))
        # every refused field is marked; what was typed stays in the form
        values.update(submitted)
        status = 422
    elif request.method == "POST":
        status = 400
    groups = [(group, [s for s in TABLE if s.group == group]) for group in GROUPS]
    return render_template(
        "admin/settings.html", form=form, values=values, groups=groups, errors=errors,
        check=Check,
    ), status


def _iso(value: t.Any) -> str | None:
    return value.isoformat() if value is not None else None


def _status_payload() -> dict[str, t.Any]:
    session = db.session()
    status = stack_service.config_status(session)
    in_force = stack_service.in_force_revision(session)
    return {
        "changed_at": _iso(status.changed_at),
        "applied_at": _iso(status.applied_at),
        # as people read them (the page shows these; the ISO times are for programs)
        "changed_at_text": format_time(status.changed_at, current_time_zone()),
        "applied_at_text": format_time(status.applied_at, current_time_zone()),
        "caught_up": status.caught_up,
        "in_force": None if in_force is None else {
            "id": in_force.id, "checksum": in_force.checksum,
            "rollback_of": in_force.rollback_of_id, "applied_at": _iso(in_force.applied_at),
        },
    }


@bp.route("/revisions")
@login_required  # type: ignore[misc]
@admin_required
def revisions() -> ResponseReturnValue:
    session = db.session()
    try:
        page = stack_service.list_revisions(session, current_actor(), page_arg())
    except PermissionDenied as exc:
        abort(403, description=exc.message)
    previous = {rev.id: stack_service.previous_revision_id(session, rev) for rev in page.items}
    return render_template(
        "admin/revisions.html", page=page, previous=previous, status=_status_payload(),
        form=FlaskForm(),
    )


@bp.route("/revisions/<int:revision_id>/diff")
@login_required  # type: ignore[misc]
@admin_required
def revision_diff(revision_id: int) -> ResponseReturnValue:
    session = db.session()
    actor = current_actor()
    try:
        revision = stack_service.get_revision(session, actor, revision_id)
        against = request.args.get("against", type=int)
        if against is None:
            against = stack_service.previous_revision_id(session, revision)
        diff = (stack_service.diff_revisions(session, actor, against, revision_id)
                if against is not None else None)
    except NotFound as exc:
        abort(404, description=exc.message)
    except PermissionDenied as exc:
        abort(403, description=exc.message)
    return render_template("admin/revision_diff.html", revision=revision, against=against,
                           diff=diff)


@bp.route("/config/apply", methods=["POST"])
@login_required  # type: ignore[misc]
@admin_required
def apply_now() -> ResponseReturnValue:
    if not FlaskForm().validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")
    try:
        report = nodes_service.apply_from_panel(db.session(), current_actor())
    except MailadminError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("admin.revisions"))
    rev = report.revision
    if rev.state == "failed":
        flash(f"Apply failed (revision {rev.id}); the configuration in force is unchanged. "
              f"The tools said: {_tool_words(rev.validation_output)}", "danger")
    elif report.already_applied:
        flash(f"Already applied: revision {rev.id} is in force.", "info")
    else:
        flash(f"Applied revision {rev.id}; the mail servers were reloaded.", "success")
    return redirect(url_for("admin.revisions"))


#: How much of the tools' output a flash message quotes (the revision keeps all of it).
FLASH_OUTPUT_CHARS = 1500


def _tool_words(output: str | None) -> str:
    text = (output or "(no output)").strip()
    return text if len(text) <= FLASH_OUTPUT_CHARS else text[:FLASH_OUTPUT_CHARS] + " …"


@bp.route("/revisions/<int:revision_id>/rollback", methods=["POST"])
@login_required  # type: ignore[misc]
@admin_required
def rollback(revision_id: int) -> ResponseReturnValue:
    if not FlaskForm().validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")
    try:
        rev = stack_service.rollback_to(db.session(), current_actor(), revision_id)
    except NotFound as exc:
        abort(404, description=exc.message)
    except MailadminError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("admin.revisions"))
    if rev.state == "failed":
        flash(f"Rollback failed (revision {rev.id}); the configuration in force is unchanged. "
              f"The tools said: {_tool_words(rev.validation_output)}", "danger")
    else:
        flash(f"Rolled back to revision {revision_id}'s files (new revision {rev.id}). The "
              "panel's data still says otherwise: the next apply brings it back.", "warning")
    return redirect(url_for("admin.revisions"))


@bp.route("/config/status")
@login_required  # type: ignore[misc]
@admin_required
def config_status() -> ResponseReturnValue:
    """JSON for a page to poll: have the mail servers caught up with the panel's changes?"""
    return jsonify(_status_payload())


@bp.route("/nodes")
@login_required  # type: ignore[misc]
@admin_required
def mail_nodes() -> ResponseReturnValue:
    try:
        found = nodes_service.list_nodes(db.session(), current_actor())
    except PermissionDenied as exc:
        abort(403, description=exc.message)
    return render_template("admin/nodes.html", nodes=found)
