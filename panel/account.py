"""The signed-in panel user's own account."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, login_user
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from mailadmin.errors import MailadminError
from mailadmin.services import accounts, twofactor

from . import db
from .auth import PanelPrincipal, current_actor, end_this_session
from .forms import NEW_PANEL_PASSWORD, attach_error

bp = Blueprint("account", __name__, url_prefix="/account")


class ChangePasswordForm(FlaskForm):  # type: ignore[misc]
    current_password = PasswordField("Current password", validators=[DataRequired()])
    password = PasswordField(
        "New password", validators=[DataRequired(), Length(max=1024)],
        render_kw=NEW_PANEL_PASSWORD,
    )
    confirm = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
        render_kw=NEW_PANEL_PASSWORD,
    )


@bp.route("/password", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def password() -> ResponseReturnValue:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            user = accounts.change_own_password(
                db.session(), current_actor(), form.current_password.data, form.password.data
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            # The session id carries the password fingerprint; renew this session so it stays valid.
            login_user(PanelPrincipal(user, current_user.session_token))
            flash("Your password has been changed. Other sessions were signed out.", "success")
            return redirect(url_for("home.dashboard"))
    status = 422 if form.errors or form.form_errors else 200
    form.password.render_kw = {**NEW_PANEL_PASSWORD,
                               "data-password-username": current_user.username}
    return render_template(
        "account/password.html", form=form, everywhere_form=SignOutEverywhereForm()
    ), status


class SignOutEverywhereForm(FlaskForm):  # type: ignore[misc]
    """Only the CSRF token."""


@bp.route("/sign-out-everywhere", methods=["POST"])
@login_required  # type: ignore[misc]
def sign_out_everywhere() -> ResponseReturnValue:
    if not SignOutEverywhereForm().validate_on_submit():
        abort(400)
    principal = current_user._get_current_object()
    if not isinstance(principal, PanelPrincipal):
        abort(403)
    # The signed-in user's own sessions, also while acting as a customer.
    ended = twofactor.sign_out_everywhere(db.session(), twofactor.Owner.panel(principal.user_id))
    end_this_session()
    flash(f"Signed out everywhere ({ended} session{'s' if ended != 1 else ''} ended).", "info")
    return redirect(url_for("auth.login"))
