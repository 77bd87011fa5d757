"""The signed-in panel user's API tokens: list, create (shown once) and revoke."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from mailadmin.errors import MailadminError, NotFound
from mailadmin.services import tokens
from mailadmin.services.twofactor import SecondFactorRequired

from . import db
from .auth import current_actor
from .forms import attach_error

bp = Blueprint("tokens", __name__, url_prefix="/account/tokens")

ACCESS_CHOICES = [SelectChoice("read write", "Read and change"), SelectChoice("read", "Read only")]
EXPIRY_CHOICES = [
    SelectChoice("0", "Never"), SelectChoice("30", "In 30 days"),
    SelectChoice("90", "In 90 days"), SelectChoice("365", "In a year"),
]


class CreateTokenForm(FlaskForm):  # type: ignore[misc]
    name = StringField(
        "Name", validators=[DataRequired(), Length(max=tokens.NAME_MAX)],
        description="What the token is for, e.g. 'backup script'.",
    )
    access = SelectField("Access", choices=ACCESS_CHOICES, default="read write")
    expires = SelectField("Expires", choices=EXPIRY_CHOICES, default="0")


class RevokeTokenForm(FlaskForm):  # type: ignore[misc]
    """The token to revoke is in the URL; the box says the person read what revoking does."""

    confirm = BooleanField(
        "Yes, revoke this token",
        validators=[DataRequired(message="Tick the box to confirm: revoking cannot be undone.")],
    )


def _render(form: CreateTokenForm, *, new_token: str | None = None,
            status: int = 200, needs_second_factor: bool = False) -> ResponseReturnValue:
    items = tokens.list_api_tokens(db.session(), current_actor())
    response = render_template(
        "tokens/index.html", form=form, tokens=items,
        new_token=new_token, scopes_of=tokens.token_scopes, now=current_actor().now(),
        needs_second_factor=needs_second_factor,
    )
    headers = {"Cache-Control": "no-store"} if new_token else {}
    return response, status, headers


@bp.get("")
@login_required  # type: ignore[misc]
def index() -> ResponseReturnValue:
    return _render(CreateTokenForm())


@bp.post("")
@login_required  # type: ignore[misc]
def create() -> ResponseReturnValue:
    form = CreateTokenForm()
    needs_second_factor = False
    if form.validate_on_submit():
        actor = current_actor()
        days = int(form.expires.data)
        try:
            _, secret = tokens.create_api_token(
                db.session(), actor, form.name.data, form.access.data.split(),
                expires_at=actor.now() + dt.timedelta(days=days) if days else None,
                sign_in_session=getattr(current_user, "session_token", None),
            )
        except SecondFactorRequired as exc:
            form.form_errors.append(exc.message)
            needs_second_factor = True
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            # Rendered, not redirected: the token must not pass through the session cookie,
            # and it is never shown again.
            return _render(CreateTokenForm(formdata=None), new_token=secret)
    db.discard_changes()
    return _render(form, status=403 if needs_second_factor else 422,
                   needs_second_factor=needs_second_factor)


@bp.route("/<int:token_id>/revoke", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def revoke(token_id: int) -> ResponseReturnValue:
    """A page saying what revoking does; the revocation needs its box ticked."""
    token = next((tk for tk in tokens.list_api_tokens(db.session(), current_actor())
                  if tk.id == token_id), None)
    if token is None:
        abort(404, description="There is no such API token in your account.")
    form = RevokeTokenForm()
    if form.validate_on_submit():
        try:
            token = tokens.revoke_api_token(db.session(), current_actor(), token_id)
        except NotFound as exc:
            abort(404, description=exc.message)
        except MailadminError as exc:
            db.discard_changes()
            flash(exc.message, "error")
            return redirect(url_for("tokens.index"))
        flash(f"The token {token.name!r} is revoked; requests with it are refused.", "success")
        return redirect(url_for("tokens.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("tokens/revoke.html", form=form, token=token,
                           scopes_of=tokens.token_scopes), status
