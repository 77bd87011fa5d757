"""Resellers (server admin), customers and packages (server admin and resellers), acting as.

Views parse a form, call one service from `mailadmin.services.resellers` or `.packages` and
redirect or render; the services decide who may see and change what. A refusal to act at all
(a customer opening these pages) is answered 403, an object out of reach 404.

Acting as a customer: the session holds the customer's id under `auth.ACTING_AS_KEY`, and
`auth.current_actor()` turns the signed-in reseller into `resellers.acting_actor(...)` for every
request (re-checked each time). While acting, these pages send the user to the acting page,
which says whom it is acting as and has the button back.
"""

from __future__ import annotations

import typing as t

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional

from mailadmin.errors import MailadminError, NotFound, PermissionDenied
from mailadmin.services import packages, resellers
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec
from mailadmin.services.resellers import AllocationSpec
from mailadmin.sizes import format_size, parse_size, size_for_input

from . import db
from .auth import ACTING_AS_KEY, ACTING_AS_NAME_KEY, PanelPrincipal, current_actor
from .forms import attach_error
from .mail import size_field_check
from .paging import page_arg

resellers_bp = Blueprint("resellers", __name__, url_prefix="/resellers")
customers_bp = Blueprint("customers", __name__, url_prefix="/customers")
packages_bp = Blueprint("packages", __name__, url_prefix="/packages")
BLUEPRINTS = (resellers_bp, customers_bp, packages_bp)


# --- the acting-as hook (called by auth.current_actor) ----------------------------------------


def acting_actor(actor: Actor) -> Actor:
    """`actor` acting as the customer in the session; back to itself if that is no longer
    allowed (the customer was deleted or moved)."""
    customer_id = session.get(ACTING_AS_KEY)
    if not isinstance(customer_id, int):
        return actor
    try:
        return resellers.acting_actor(db.session(), actor, customer_id)
    except MailadminError:
        session.pop(ACTING_AS_KEY, None)
        session.pop(ACTING_AS_NAME_KEY, None)
        return actor


def _base_actor() -> Actor:
    """The signed-in reseller or admin itself, even while acting as a customer."""
    principal = current_user._get_current_object()
    if not isinstance(principal, PanelPrincipal):
        abort(403)
    return Actor.for_user(principal.user, channel="panel", source=request.remote_addr)


def _seller() -> Actor | ResponseReturnValue:
    """The actor for these pages, or a redirect to the acting page while acting."""
    actor = current_actor()
    if actor.acting_as is not None:
        flash(f"You are acting as {actor.acting_as}. Return to your own account first.", "info")
        return redirect(url_for("customers.acting"))
    return actor


def _refused(exc: MailadminError) -> t.NoReturn:
    if isinstance(exc, PermissionDenied):
        abort(403, description=exc.message)
    abort(404, description=exc.message)


def _page_number() -> int:
    return page_arg()


def _search() -> str | None:
    return (request.args.get("q") or "").strip()[:64] or None


def _size_or_none(text: str | None) -> int | None:
    """Blank (or 0, or "unlimited") is no limit."""
    return parse_size(text) or None if text else None


# --- forms ------------------------------------------------------------------------------------

_LIMIT = [Optional(), NumberRange(min=0, max=10**9)]


class PackageForm(FlaskForm):  # type: ignore[misc]
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    max_domains = IntegerField("Domains", validators=_LIMIT)
    max_mailboxes = IntegerField("Mailboxes", validators=_LIMIT)
    max_forwarders = IntegerField("Forwarders", validators=_LIMIT)
    max_quota_per_mailbox = StringField("Quota per mailbox",
                                        validators=[Optional(), Length(max=32), size_field_check])
    max_total_quota = StringField("Total quota",
                                  validators=[Optional(), Length(max=32), size_field_check])
    allow_unlimited_quota = BooleanField("Mailboxes may have no quota")
    allow_imap = BooleanField("IMAP allowed", default=True)
    allow_pop3 = BooleanField("POP3 allowed", default=True)
    allow_smtp = BooleanField("SMTP (sending) allowed", default=True)
    default_quota = StringField("Quota of new mailboxes", default="1G",
                                validators=[DataRequired(), Length(max=32), size_field_check])
    default_imap = BooleanField("New mailboxes get IMAP", default=True)
    default_pop3 = BooleanField("New mailboxes get POP3", default=True)
    default_smtp = BooleanField("New mailboxes get SMTP", default=True)

    def spec(self) -> PackageSpec:
        return PackageSpec(
            max_domains=self.max_domains.data,
            max_mailboxes=self.max_mailboxes.data,
            max_forwarders=self.max_forwarders.data,
            max_quota_per_mailbox=_size_or_none(self.max_quota_per_mailbox.data),
            max_total_quota=_size_or_none(self.max_total_quota.data),
            allow_unlimited_quota=self.allow_unlimited_quota.data,
            allow_imap=self.allow_imap.data,
            allow_pop3=self.allow_pop3.data,
            allow_smtp=self.allow_smtp.data,
            default_quota=parse_size(self.default_quota.data),
            default_imap=self.default_imap.data,
            default_pop3=self.default_pop3.data,
            default_smtp=self.default_smtp.data,
        )

    @classmethod
    def filled(cls, name: str, spec: PackageSpec) -> PackageForm:
        def size(value: int | None) -> str:
            return size_for_input(value) if value else ""

        return cls(
            formdata=None, name=name, max_domains=spec.max_domains,
            max_mailboxes=spec.max_mailboxes, max_forwarders=spec.max_forwarders,
            max_quota_per_mailbox=size(spec.max_quota_per_mailbox),
            max_total_quota=size(spec.max_total_quota),
            allow_unlimited_quota=spec.allow_unlimited_quota, allow_imap=spec.allow_imap,
            allow_pop3=spec.allow_pop3, allow_smtp=spec.allow_smtp,
            default_quota=size_for_input(spec.default_quota), default_imap=spec.default_imap,
            default_pop3=spec.default_pop3, default_smtp=spec.default_smtp,
        )


class AllocationForm(FlaskForm):  # type: ignore[misc]
    max_customers = IntegerField("Customers", validators=_LIMIT)
    max_domains = IntegerField("Domains", validators=_LIMIT)
    max_mailboxes = IntegerField("Mailboxes", validators=_LIMIT)
    max_total_quota = StringField("Total quota",
                                  validators=[Optional(), Length(max=32), size_field_check])
    allow_imap = BooleanField("IMAP", default=True)
    allow_pop3 = BooleanField("POP3", default=True)
    allow_smtp = BooleanField("SMTP (sending)", default=True)

    def spec(self) -> AllocationSpec:
        return AllocationSpec(
            max_customers=self.max_customers.data, max_domains=self.max_domains.data,
            max_mailboxes=self.max_mailboxes.data,
            max_total_quota=_size_or_none(self.max_total_quota.data),
            allow_imap=self.allow_imap.data, allow_pop3=self.allow_pop3.data,
            allow_smtp=self.allow_smtp.data,
        )


class NewResellerForm(AllocationForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    contact_email = EmailField("Contact address", validators=[Optional(), Email(),
                                                              Length(max=320)])


class NewCustomerForm(FlaskForm):  # type: ignore[misc]
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    contact_email = EmailField("Contact address", validators=[Optional(), Email(),
                                                              Length(max=320)])
    # The service decides which packages are the actor's; a tampered id is not found there.
    package = SelectField("Package", coerce=int, validate_choice=False,
                          validators=[DataRequired()])


class PackageChoiceForm(FlaskForm):  # type: ignore[misc]
    package = SelectField("Package", coerce=int, validate_choice=False,
                          validators=[DataRequired()])


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    """A button: the CSRF token is the whole form."""


class DeleteCustomerForm(FlaskForm):  # type: ignore[misc]
    confirm = StringField("Type the user name to confirm",
                          validators=[DataRequired(), Length(max=64)])


def _package_choices(actor: Actor) -> list[tuple[int, str]]:
    rows = packages.list_packages(db.session(), actor)
    if actor.is_admin:
        return [(r.id, f"{r.owner} / {r.name}") for r in rows]
    return [(r.id, r.name) for r in rows]


# --- resellers (server admin) -----------------------------------------------------------------


@resellers_bp.route("/", methods=["GET", "POST"], endpoint="index")
@login_required  # type: ignore[misc]
def resellers_index() -> ResponseReturnValue:
    actor = _seller()
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
            _refused(exc)
        except MailadminError as exc:
            attach_error(form, exc)
            status = 422
        else:
            flash(f"Reseller {created.username} created.", "success")
            return redirect(url_for("resellers.index"))
    elif request.method == "POST":
        status = 422
    try:
        page = resellers.list_resellers(db.session(), actor, search=_search(),
                                        page=_page_number())
    except MailadminError as exc:
        _refused(exc)
    return render_template("admin_users/resellers.html", page=page, form=form, search=_search(),
                           format_size=format_size), status


@resellers_bp.route("/<name>", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def edit(name: str) -> ResponseReturnValue:
    actor = _seller()
    if not isinstance(actor, Actor):
        return actor
    try:
        reseller = resellers.get_reseller(db.session(), actor, name)
    except MailadminError as exc:
        _refused(exc)
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


@resellers_bp.route("/<name>/suspension", methods=["POST"])
@login_required  # type: ignore[misc]
def suspension(name: str) -> ResponseReturnValue:
    actor = _seller()
    if not isinstance(actor, Actor):
        return actor
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    suspend = request.form.get("suspend") == "1"
    try:
        changed = resellers.set_reseller_suspended(db.session(), actor, name, suspend)
    except MailadminError as exc:
        _refused(exc)
    flash(f"Reseller {changed.username} {'suspended' if suspend else 'resumed'}.", "success")
    return redirect(url_for("resellers.edit", name=changed.username))


# --- customers (server admin and resellers) ---------------------------------------------------


@customers_bp.route("/", methods=["GET", "POST"], endpoint="index")
@login_required  # type: ignore[misc]
def customers_index() -> ResponseReturnValue:
    actor = _seller()
    if not isinstance(actor, Actor):
        return actor
    form = NewCustomerForm()
    status = 200
    try:
        form.package.choices = _package_choices(actor)
    except MailadminError as exc:
        _refused(exc)
    if form.validate_on_submit():
        try:
            created = resellers.create_customer(
                db.session(), actor, form.username.data, form.password.data,
                package_id=form.package.data, contact_email=form.contact_email.data or None)
        except PermissionDenied as exc:
            _refused(exc)
        except MailadminError as exc:
            attach_error(form, exc)
            status = 422
        else:
            flash(f"Customer {created.username} created.", "success")
            return redirect(url_for("customers.detail", name=created.username))
    elif request.method == "POST":
        status = 422
    page = resellers.list_customers(db.session(), actor, search=_search(), page=_page_number())
    return render_template("admin_users/customers.html", page=page, form=form, search=_search(),
                           is_admin=actor.is_admin, format_size=format_size), status


def _render_customer(name: str, status: int = 200, **forms: FlaskForm) -> ResponseReturnValue:
    actor = _seller()
    if not isinstance(actor, Actor):
        return actor
    try:
        customer = resellers.get_customer(db.session(), actor, name)
    except MailadminError as exc:
        _refused(exc)
    package_form = forms.get("package") or PackageChoiceForm(
        formdata=None, package=customer.package_id)
    package_form.package.choices = _package_choices(actor)
    row = resellers.list_customers(db.session(), actor, search=customer.username).items
    usage = next((r for r in row if r.id == customer.id), None)
    return render_template(
        "admin_users/customer.html", customer=customer, usage=usage,
        package_form=package_form, button_form=ConfirmForm(formdata=None),
        delete_form=forms.get("delete") or DeleteCustomerForm(formdata=None),
        format_size=format_size,
    ), status


@customers_bp.route("/<name>")
@login_required  # type: ignore[misc]
def detail(name: str) -> ResponseReturnValue:
    return _render_customer(name)


@customers_bp.route("/<name>/package", methods=["POST"])
@login_required  # type: ignore[misc]
def change_package(name: str) -> ResponseReturnValue:
    actor = _seller()
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
                _refused(exc)
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash(f"{changed.username} is on the new package.", "success")
            return redirect(url_for("customers.detail", name=changed.username))
    return _render_customer(name, 422, package=form)


def _set_suspended(name: str, suspended: bool) -> ResponseReturnValue:
    actor = _seller()
    if not isinstance(actor, Actor):
        return actor
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        changed = resellers.set_customer_suspended(db.session(), actor, name, suspended)
    except MailadminError as exc:
        _refused(exc)
    flash(f"Customer {changed.username} {'suspended' if suspended else 'resumed'}.", "success")
    return redirect(url_for("customers.detail", name=changed.username))


@customers_bp.route("/<name>/suspend", methods=["POST"])
@login_required  # type: ignore[misc]
def suspend(name: str) -> ResponseReturnValue:
    return _set_suspended(name, True)


@customers_bp.route("/<name>/resume", methods=["POST"])
@login_required  # type: ignore[misc]
def resume(name: str) -> ResponseReturnValue:
    return _set_suspended(name, False)


@customers_bp.route("/<name>/delete", methods=["POST"])
@login_required  # type: ignore[misc]
def delete(name: str) -> ResponseReturnValue:
    actor = _seller()
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
                _refused(exc)
            except MailadminError as exc:
                attach_error(form, exc)
            else:
                flash(f"Customer {name} deleted.", "success")
                return redirect(url_for("customers.index"))
    return _render_customer(name, 422, delete=form)


@customers_bp.route("/<name>/act", methods=["POST"])
@login_required  # type: ignore[misc]
def act(name: str) -> ResponseReturnValue:
    actor = _seller()
    if not isinstance(actor, Actor):
        return actor
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        acting = resellers.start_acting_as(db.session(), actor, name)
    except MailadminError as exc:
        _refused(exc)
    session[ACTING_AS_KEY] = acting.customer_id
    session[ACTING_AS_NAME_KEY] = acting.acting_as
    flash(f"You are now acting as {acting.acting_as}. Everything you do is recorded as "
          f"{actor.name} acting as {acting.acting_as}.", "warning")
    return redirect(url_for("customers.acting"))


@customers_bp.route("/-/acting", methods=["GET"])
@login_required  # type: ignore[misc]
def acting() -> ResponseReturnValue:
    actor = current_actor()
    if actor.acting_as is None:
        return redirect(url_for("customers.index"))
    return render_template("admin_users/acting.html", acting=actor,
                           form=ConfirmForm(formdata=None))


@customers_bp.route("/-/acting/stop", methods=["POST"])
@login_required  # type: ignore[misc]
def stop_acting() -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    actor = current_actor()
    if actor.acting_as is not None:
        try:
            resellers.stop_acting_as(db.session(), actor)
        except MailadminError as exc:
            _refused(exc)
        flash(f"You are back in your own account ({actor.name}).", "success")
    session.pop(ACTING_AS_KEY, None)
    session.pop(ACTING_AS_NAME_KEY, None)
    return redirect(url_for("customers.index"))


# --- packages (server admin and resellers) ----------------------------------------------------


@packages_bp.route("/", methods=["GET", "POST"], endpoint="index")
@login_required  # type: ignore[misc]
def packages_index() -> ResponseReturnValue:
    actor = _seller()
    if not isinstance(actor, Actor):
        return actor
    form = PackageForm()
    status = 200
    if form.validate_on_submit():
        try:
            created = packages.create_package(db.session(), actor, form.name.data, form.spec())
        except PermissionDenied as exc:
            _refused(exc)
        except MailadminError as exc:
            attach_error(form, exc)
            status = 422
        else:
            flash(f"Package {created.name} created.", "success")
            return redirect(url_for("packages.index"))
    elif request.method == "POST":
        status = 422
    try:
        rows = packages.list_packages(db.session(), actor)
    except MailadminError as exc:
        _refused(exc)
    return render_template("admin_users/packages.html", rows=rows, form=form,
                           is_admin=actor.is_admin), status


@packages_bp.route("/<int:package_id>", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def edit_package(package_id: int) -> ResponseReturnValue:
    actor = _seller()
    if not isinstance(actor, Actor):
        return actor
    try:
        package = packages.get_package(db.session(), actor, package_id)
    except MailadminError as exc:
        _refused(exc)
    form = PackageForm() if request.method == "POST" else PackageForm.filled(
        package.name, PackageSpec.of(package))
    status = 200
    if form.validate_on_submit():
        try:
            packages.update_package(db.session(), actor, package_id, form.spec(),
                                    name=form.name.data)
        except MailadminError as exc:
            attach_error(form, exc)
            status = 422
        else:
            flash(f"Package {form.name.data} saved.", "success")
            return redirect(url_for("packages.index"))
    elif request.method == "POST":
        status = 422
    return render_template("admin_users/package.html", package=package, form=form,
                           delete_form=ConfirmForm(formdata=None)), status


@packages_bp.route("/<int:package_id>/delete", methods=["POST"])
@login_required  # type: ignore[misc]
def delete_package(package_id: int) -> ResponseReturnValue:
    actor = _seller()
    if not isinstance(actor, Actor):
        return actor
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        packages.delete_package(db.session(), actor, package_id)
    except (NotFound, PermissionDenied) as exc:
        _refused(exc)
    except MailadminError as exc:
        flash(exc.message, "danger")
        db.discard_changes()
        return redirect(url_for("packages.edit_package", package_id=package_id))
    flash("Package deleted.", "success")
    return redirect(url_for("packages.index"))
