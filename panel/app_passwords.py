"""App passwords: the mailbox user's page under /me and the customer's page of a mailbox.

A new app password is shown on the answer to the POST that made it and nowhere else (not in a
flash message, which would keep it in the session cookie); the page says so.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length

from mailadmin.errors import MailadminError
from mailadmin.models.mail import APP_PASSWORD_LABEL_MAX
from mailadmin.names import address_to_unicode
from mailadmin.protocols import PROTOCOLS
from mailadmin.services import app_passwords, selfservice

from . import db
from .auth import current_actor
from .forms import attach_error
from .selfservice import current_mailbox_user, mailbox_required

#: The customer's pages (panel users).
bp = Blueprint("app_passwords", __name__)
#: The mailbox user's own page (allowed to mailbox users, see `panel.auth`).
self_bp = Blueprint("self_app_passwords", __name__, url_prefix="/me")


class AppPasswordForm(FlaskForm):  # type: ignore[misc]
    label = StringField("Name of the device", validators=[
        DataRequired(), Length(max=APP_PASSWORD_LABEL_MAX)])
    imap = BooleanField("IMAP (read mail, kept on the server)")
    pop3 = BooleanField("POP3 (download mail)")
    smtp = BooleanField("SMTP (send mail)")

    def protocols(self) -> list[str]:
        return [p.value for p in PROTOCOLS if getattr(self, p.value).data]


class AppPasswordsOnlyForm(FlaskForm):  # type: ignore[misc]
    app_passwords_only = BooleanField(
        "App passwords only: mail programs must use an app password; the main password signs "
        "in to this page only")


class RevokeForm(FlaskForm):  # type: ignore[misc]
    """A button: only the CSRF token."""


def _page(template: str, overview: app_passwords.AppPasswordsOverview, *,
          form: AppPasswordForm | None = None, only_form: AppPasswordsOnlyForm | None = None,
          new: app_passwords.NewAppPassword | None = None, status: int = 200,
          **urls: str) -> ResponseReturnValue:
    if form is None:
        form = AppPasswordForm(formdata=None, **{p.value: True for p in overview.mailbox_protocols
                                                 if p.value == "imap"})
    response = make_response(render_template(
        template,
        overview=overview,
        unicode_address=address_to_unicode(overview.address),
        form=form,
        only_form=only_form or AppPasswordsOnlyForm(
            formdata=None, app_passwords_only=overview.app_passwords_only),
        revoke_form=RevokeForm(formdata=None),
        new=new,
        **urls,
    ), status)
    if new is not None:
        # the page holds a password: no browser or proxy may keep a copy
        response.headers["Cache-Control"] = "no-store"
    return response


# --- the mailbox user -------------------------------------------------------------------------


def _own_page(**kwargs: object) -> ResponseReturnValue:
    overview = selfservice.own_app_passwords(db.session(), current_mailbox_user())
    return _page("self/app_passwords.html", overview, **kwargs)  # type: ignore[arg-type]


@self_bp.route("/app-passwords", methods=["GET", "POST"])
@mailbox_required
def own() -> ResponseReturnValue:
    form = AppPasswordForm()
    if form.validate_on_submit():
        try:
            new = selfservice.add_own_app_password(
                db.session(), current_mailbox_user(), form.label.data, form.protocols())
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            return _own_page(new=new)
    elif not form.is_submitted():
        return _own_page()
    return _own_page(form=form, status=422)


@self_bp.route("/app-passwords/<int:app_password_id>/revoke", methods=["POST"])
@mailbox_required
def own_revoke(app_password_id: int) -> ResponseReturnValue:
    if not RevokeForm().validate_on_submit():
        abort(400)
    try:
        label = selfservice.revoke_own_app_password(
            db.session(), current_mailbox_user(), app_password_id)
    except MailadminError as exc:
        abort(404, description=exc.message)
    flash(f"App password \"{label}\" revoked: the device using it can no longer log in.",
          "success")
    return redirect(url_for("self_app_passwords.own"))


@self_bp.route("/app-passwords/only", methods=["POST"])
@mailbox_required
def own_only() -> ResponseReturnValue:
    form = AppPasswordsOnlyForm()
    if not form.validate_on_submit():
        abort(400)
    selfservice.set_own_app_passwords_only(
        db.session(), current_mailbox_user(), form.app_passwords_only.data)
    flash("Saved.", "success")
    return redirect(url_for("self_app_passwords.own"))


# --- the customer -----------------------------------------------------------------------------


def _overview_or_404(address: str) -> app_passwords.AppPasswordsOverview:
    try:
        return app_passwords.app_passwords_overview(db.session(), current_actor(), address)
    except MailadminError as exc:
        abort(404, description=exc.message)


@bp.route("/mailboxes/<address>/app-passwords", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def mailbox(address: str) -> ResponseReturnValue:
    overview = _overview_or_404(address)
    form = AppPasswordForm()
    if not form.is_submitted():
        return _page("mail/app_passwords.html", overview)
    if form.validate_on_submit():
        try:
            new = app_passwords.add_app_password(
                db.session(), current_actor(), address, form.label.data, form.protocols())
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            return _page("mail/app_passwords.html", _overview_or_404(address), new=new)
    return _page("mail/app_passwords.html", overview, form=form, status=422)


@bp.route("/mailboxes/<address>/app-passwords/<int:app_password_id>/revoke", methods=["POST"])
@login_required  # type: ignore[misc]
def mailbox_revoke(address: str, app_password_id: int) -> ResponseReturnValue:
    if not RevokeForm().validate_on_submit():
        abort(400)
    try:
        label = app_passwords.revoke_app_password(
            db.session(), current_actor(), address, app_password_id)
    except MailadminError as exc:
        abort(404, description=exc.message)
    flash(f"App password \"{label}\" revoked.", "success")
    return redirect(url_for("app_passwords.mailbox", address=address))


@bp.route("/mailboxes/<address>/app-passwords/only", methods=["POST"])
@login_required  # type: ignore[misc]
def mailbox_only(address: str) -> ResponseReturnValue:
    form = AppPasswordsOnlyForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        app_passwords.set_app_passwords_only(
            db.session(), current_actor(), address, form.app_passwords_only.data)
    except MailadminError as exc:
        abort(404, description=exc.message)
    flash("Saved.", "success")
    return redirect(url_for("app_passwords.mailbox", address=address))
