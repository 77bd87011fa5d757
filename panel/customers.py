"""Customers (server admin and resellers): create, change package, suspend, delete.

Views parse a form, call one service from `mailadmin.services.resellers` and redirect or
render. Acting as a customer: the routes are here, the session side in `panel.acting`.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from mailadmin.errors import MailadminError, NotFound, PermissionDenied
from mailadmin.services import packages, resellers, scope
from mailadmin.services.context import Actor
from mailadmin.sizes import format_size

from . import acting as acting_session
from . import db
from .auth import current_actor
from .forms import NEW_PANEL_PASSWORD, attach_error
from .selling import (
    ConfirmForm,
    page_number,
    refused,
    search_term,
    seller_actor,
)

bp = Blueprint("customers", __name__, url_prefix="/customers")


class NewCustomerForm(FlaskForm):  # type: ignore[misc]
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)],
                             render_kw=NEW_PANEL_PASSWORD)
    contact_email = EmailField("Contact address", validators=[Optional(), Email(),
                                                              Length(max=320)])
    # The service decides which packages are the actor's; a tampered id is not found there.
    package = SelectField("Package", coerce=int, validate_choice=False,
                          validators=[DataRequired()])


class PackageChoiceForm(FlaskForm):  # type: ignore[misc]
    package = SelectField("Package", coerce=int, validate_choice=False,
                          validators=[DataRequired()])


class SuspendCustomerForm(FlaskForm):  # type: ignore[misc]
    # Suspending stops a customer's sign-in, API tokens and all of its mail at once: the box
    # says the person read what the page lists.
    confirm_suspend = BooleanField(
        "Yes, suspend this customer and all of its mail",
        validators=[DataRequired(message="Tick the box to confirm the suspension.")],
    )


class DeleteCustomerForm(FlaskForm):  # type: ignore[misc]
    confirm = StringField("Type the user name to confirm",
                          validators=[DataRequired(), Length(max=64)])


def _package_choices(actor: Actor) -> list[tuple[int, str]]:
    rows = packages.list_packages(db.session(), actor)
    if actor.is_admin:
        return [(r.id, f"{r.owner} / {r.name}") for r in rows]
    return [(r.id, r.name) for r in rows]


# --- customers (server admin and resellers) ---------------------------------------------------


@bp.route("/", methods=["GET", "POST"], endpoint="index")
@login_required  # type: ignore[misc]
def customers_index() -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    form = NewCustomerForm()
    status = 200
    try:
        form.package.choices = _package_choices(actor)
    except MailadminError as exc:
        refused(exc)
    if form.validate_on_submit():
        try:
            created = resellers.create_customer(
                db.session(), actor, form.username.data, form.password.data,
                package_id=form.package.data, contact_email=form.contact_email.data or None)
        except PermissionDenied as exc:
            refused(exc)
        except MailadminError as exc:
            attach_error(form, exc)
            status = 422
        else:
            flash(f"Customer {created.username} created.", "success")
            return redirect(url_for("customers.detail", name=created.username))
    elif request.method == "POST":
        status = 422
    page = resellers.list_customers(db.session(), actor, search=search_term(), page=page_number())
    return render_template("admin_users/customers.html", page=page, form=form, search=search_term(),
                           is_admin=actor.is_admin, format_size=format_size), status


def _render_customer(name: str, status: int = 200, **forms: FlaskForm) -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    try:
        customer = scope.get_customer(db.session(), actor, name)
    except MailadminError as exc:
        refused(exc)
    package_form = forms.get("package") or PackageChoiceForm(
        formdata=None, package=customer.package_id)
    package_form.package.choices = _package_choices(actor)
    row = resellers.list_customers(db.session(), actor, search=customer.username).items
    usage = next((r for r in row if r.id == customer.id), None)
    return render_template(
        "admin_users/customer.html", customer=customer, usage=usage,
        package_form=package_form, button_form=ConfirmForm(formdata=None),
        suspend_form=forms.get("suspend") or SuspendCustomerForm(formdata=None),
        delete_form=forms.get("delete") or DeleteCustomerForm(formdata=None),
        format_size=format_size,
    ), status


@bp.route("/<name>")
@login_required  # type: ignore[misc]
def detail(name: str) -> ResponseReturnValue:
    return _render_customer(name)


@bp.route("/<name>/package", methods=["POST"])
@login_required  # type: ignore[misc]
def change_package(name: str) -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    form = PackageChoiceForm()
    form.package.choices = []
    if form.validate_on_submit():
        try:
            changed = packages.assign_package(db.session(), actor, name, form.package.data)
        except (NotFound, PermissionDenied) as exc:
            if exc.field == "package":
                attach_error(form, exc)
            else:
                refused(exc)
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash(f"{changed.username} is on the new package.", "success")
            return redirect(url_for("customers.detail", name=changed.username))
    return _render_customer(name, 422, package=form)


def _set_suspended(name: str, suspended: bool) -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    if suspended:
        form: FlaskForm = SuspendCustomerForm()
        if not form.validate_on_submit():
            return _render_customer(name, 422, suspend=form)
    elif not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        changed = resellers.set_customer_suspended(db.session(), actor, name, suspended)
    except MailadminError as exc:
        refused(exc)
    flash(f"Customer {changed.username} {'suspended' if suspended else 'resumed'}.", "success")
    return redirect(url_for("customers.detail", name=changed.username))


@bp.route("/<name>/suspend", methods=["POST"])
@login_required  # type: ignore[misc]
def suspend(name: str) -> ResponseReturnValue:
    return _set_suspended(name, True)


@bp.route("/<name>/resume", methods=["POST"])
@login_required  # type: ignore[misc]
def resume(name: str) -> ResponseReturnValue:
    return _set_suspended(name, False)


@bp.route("/<name>/delete", methods=["POST"])
@login_required  # type: ignore[misc]
def delete(name: str) -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    form = DeleteCustomerForm()
    if form.validate_on_submit():
        if form.confirm.data.strip().lower() != name.lower():
            form.confirm.errors = [*form.confirm.errors, f"Type {name} to confirm."]
        else:
            try:
                resellers.delete_customer(db.session(), actor, name)
            except (NotFound, PermissionDenied) as exc:
                refused(exc)
            except MailadminError as exc:
                attach_error(form, exc)
            else:
                flash(f"Customer {name} deleted.", "success")
                return redirect(url_for("customers.index"))
    return _render_customer(name, 422, delete=form)


# --- acting as a customer (the session side is panel.acting) ------------------------------


@bp.route("/<name>/act", methods=["POST"])
@login_required  # type: ignore[misc]
def act(name: str) -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        acting = resellers.start_acting_as(db.session(), actor, name)
    except MailadminError as exc:
        refused(exc)
    acting_session.begin(acting)
    flash(f"You are now acting as {acting.acting_as}. Everything you do is recorded as "
          f"{actor.name} acting as {acting.acting_as}.", "warning")
    return redirect(url_for("customers.acting"))


@bp.route("/-/acting", methods=["GET"])
@login_required  # type: ignore[misc]
def acting() -> ResponseReturnValue:
    actor = current_actor()
    if actor.acting_as is None:
        return redirect(url_for("customers.index"))
    return render_template("admin_users/acting.html", acting=actor,
                           form=ConfirmForm(formdata=None))


@bp.route("/-/acting/stop", methods=["POST"])
@login_required  # type: ignore[misc]
def stop_acting() -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    actor = current_actor()
    if actor.acting_as is not None:
        try:
            resellers.stop_acting_as(db.session(), actor)
        except MailadminError as exc:
            refused(exc)
        flash(f"You are back in your own account ({actor.name}).", "success")
    acting_session.end()
    return redirect(url_for("customers.index"))
