"""Resellers and their allocations (server admin only).

Views parse a form, call one service from `mailadmin.services.resellers` and redirect or
render; the service decides who may see and change what (see `panel.selling` for the refusals).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from mailadmin.errors import MailadminError, PermissionDenied
from mailadmin.services import packages, resellers
from mailadmin.services.context import Actor
from mailadmin.services.resellers import AllocationSpec
from mailadmin.sizes import format_size, size_for_input

from . import db
from .forms import NEW_PANEL_PASSWORD, attach_error
from .mail import size_field_check
from .selling import (
    LIMIT,
    ConfirmForm,
    page_number,
    refused,
    search_term,
    seller_actor,
    size_or_none,
)

bp = Blueprint("resellers", __name__, url_prefix="/resellers")


class AllocationForm(FlaskForm):  # type: ignore[misc]
    max_customers = IntegerField("Customers", validators=LIMIT)
    max_domains = IntegerField("Domains", validators=LIMIT)
    max_mailboxes = IntegerField("Mailboxes", validators=LIMIT)
    max_total_quota = StringField("Total quota",
                                  validators=[Optional(), Length(max=32), size_field_check])
    allow_imap = BooleanField("IMAP", default=True)
    allow_pop3 = BooleanField("POP3", default=True)
    allow_smtp = BooleanField("SMTP (sending)", default=True)

    def spec(self) -> AllocationSpec:
        return AllocationSpec(
            max_customers=self.max_customers.data, max_domains=self.max_domains.data,
            max_mailboxes=self.max_mailboxes.data,
            max_total_quota=size_or_none(self.max_total_quota.data),
            allow_imap=self.allow_imap.data, allow_pop3=self.allow_pop3.data,
            allow_smtp=self.allow_smtp.data,
        )


class NewResellerForm(AllocationForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)],
                             render_kw=NEW_PANEL_PASSWORD)
    contact_email = EmailField("Contact address", validators=[Optional(), Email(),
                                                              Length(max=320)])


# --- resellers (server admin) -----------------------------------------------------------------


@bp.route("/", methods=["GET", "POST"], endpoint="index")
@login_required  # type: ignore[misc]
def resellers_index() -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    form = NewResellerForm()
    status = 200
    if form.validate_on_submit():
        try:
            created = resellers.create_reseller(
                db.session(), actor, form.username.data, form.password.data, form.spec(),
                contact_email=form.contact_email.data or None)
        except PermissionDenied as exc:
            refused(exc)
        except MailadminError as exc:
            attach_error(form, exc)
            status = 422
        else:
            flash(f"Reseller {created.username} created.", "success")
            return redirect(url_for("resellers.index"))
    elif request.method == "POST":
        status = 422
    try:
        page = resellers.list_resellers(db.session(), actor, search=search_term(),
                                        page=page_number())
    except MailadminError as exc:
        refused(exc)
    return render_template("admin_users/resellers.html", page=page, form=form, search=search_term(),
                           format_size=format_size), status


@bp.route("/<name>", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def edit(name: str) -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    try:
        reseller = resellers.get_reseller(db.session(), actor, name)
    except MailadminError as exc:
        refused(exc)
    current = AllocationSpec.of(packages.allocation_of(db.session(), reseller.id))
    form = AllocationForm() if request.method == "POST" else AllocationForm(
        formdata=None, **{**current.as_dict(), "max_total_quota": size_for_input(
            current.max_total_quota) if current.max_total_quota else ""})
    status = 200
    if form.validate_on_submit():
        try:
            resellers.set_allocation(db.session(), actor, reseller.username, form.spec())
        except MailadminError as exc:
            attach_error(form, exc)
            status = 422
        else:
            flash(f"Allocation of {reseller.username} saved.", "success")
            return redirect(url_for("resellers.edit", name=reseller.username))
    elif request.method == "POST":
        status = 422
    given = packages.commitments(db.session(), reseller.id)
    return render_template("admin_users/reseller.html", reseller=reseller, form=form,
                           given=given, suspend_form=ConfirmForm(formdata=None),
                           format_size=format_size), status


@bp.route("/<name>/suspension", methods=["POST"])
@login_required  # type: ignore[misc]
def suspension(name: str) -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    suspend = request.form.get("suspend") == "1"
    try:
        changed = resellers.set_reseller_suspended(db.session(), actor, name, suspend)
    except MailadminError as exc:
        refused(exc)
    flash(f"Reseller {changed.username} {'suspended' if suspend else 'resumed'}.", "success")
    return redirect(url_for("resellers.edit", name=changed.username))
