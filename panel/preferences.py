"""A person's preferences in the panel (their time zone) and the password rules that the
password meter on every new-password field applies in the browser."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from mailadmin.errors import MailadminError
from mailadmin.services import accounts, selfservice, server
from mailadmin.timezones import time_zone_names, to_local, to_utc

from . import db
from .auth import MAILBOX_ROLE, current_actor

bp = Blueprint("preferences", __name__)


def current_time_zone() -> str | None:
    """The zone the signed-in person reads times in; None (UTC) when not chosen or signed out."""
    if not current_user or not current_user.is_authenticated:
        return None
    zone = getattr(current_user, "time_zone", None)
    return zone if isinstance(zone, str) else None


def typed_time(value: dt.datetime | None) -> dt.datetime | None:
    """A date-time field's value, typed in the person's zone, as a UTC moment."""
    return to_utc(value, current_time_zone())


def shown_time(value: dt.datetime | None) -> dt.datetime | None:
    """A stored moment as the wall-clock time a date-time field shows the person."""
    return to_local(value, current_time_zone())


def label_period_fields(form: FlaskForm) -> FlaskForm:
    """Name the person's zone beside an autoresponder's From and Until fields."""
    zone = (current_time_zone() or "UTC").replace("_", " ")
    form.starts_at.label.text = f"From (your time, {zone})"
    form.ends_at.label.text = f"Until (your time, {zone})"
    return form


class TimeZoneForm(FlaskForm):  # type: ignore[misc]
    time_zone = SelectField("Time zone", validators=[DataRequired()], validate_choice=False)


@bp.route("/password-rules.json")
def password_rules() -> ResponseReturnValue:
    """Public: the rules are no secret, and the sign-in-free pages may need them too."""
    response = jsonify(server.password_rules(db.session()))
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.route("/preferences/time-zone", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def time_zone() -> ResponseReturnValue:
    """Choose the zone times are shown in. The browser sends its own zone once (`automatic`),
    which never replaces a zone the person chose here."""
    form = TimeZoneForm()
    form.time_zone.choices = [SelectChoice(name, name.replace("_", " "))
                              for name in time_zone_names()]
    automatic = request.form.get("automatic") == "1"
    if form.validate_on_submit():
        try:
            if current_user.role == MAILBOX_ROLE:
                selfservice.set_own_time_zone(
                    db.session(), current_user.as_mailbox_user(), form.time_zone.data,
                    keep_chosen=automatic,
                )
            else:
                accounts.set_own_time_zone(
                    db.session(), current_actor(), form.time_zone.data, keep_chosen=automatic
                )
        except MailadminError as exc:
            if automatic:
                return exc.message, 422
            form.time_zone.errors = [exc.message]
        else:
            if automatic:
                return "", 204
            flash(f"Times are shown in {form.time_zone.data.replace('_', ' ')} now.", "success")
            return redirect(url_for("preferences.time_zone"))
    elif request.method == "POST" and automatic:
        abort(400)
    if request.method == "GET":
        form.time_zone.data = current_time_zone() or "UTC"
    status = 422 if form.errors else 200
    return render_template("preferences/time_zone.html", form=form), status
