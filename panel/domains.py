"""Domains: add, remove, defaults for new mailboxes, the default (catch-all) address."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, StringField
from wtforms.validators import DataRequired, Length, Optional

from mailadmin.errors import MailadminError, NotFound, PermissionDenied
from mailadmin.models import Role
from mailadmin.names import domain_to_unicode
from mailadmin.protocols import Protocol
from mailadmin.services import domain_ownership, domains
from mailadmin.services.scope import get_domain
from mailadmin.sizes import format_size, parse_size, size_for_input

from . import db
from .auth import current_actor
from .forms import attach_error
from .mail import size_field_check
from .paging import page_arg

bp = Blueprint("domains", __name__, url_prefix="/domains")


class AddDomainForm(FlaskForm):  # type: ignore[misc]
    name = StringField(
        "Domain name",
        validators=[DataRequired(), Length(max=253)],
        description="e.g. example.com or bücher.de",
    )
    customer = StringField("Customer", validators=[Optional(), Length(max=64)])


class DefaultsForm(FlaskForm):  # type: ignore[misc]
    quota = StringField(
        "Quota for new mailboxes",
        validators=[Optional(), Length(max=32), size_field_check],
        description="Empty: the package's default.",
    )
    imap = BooleanField(Protocol.IMAP.label)
    pop3 = BooleanField(Protocol.POP3.label)
    smtp = BooleanField(Protocol.SMTP.permission_label)


class CatchAllForm(FlaskForm):  # type: ignore[misc]
    action = RadioField(
        "Mail to addresses that do not exist",
        choices=[
            ("reject", "Reject it (the sender gets a bounce)"),
            ("discard", "Accept and discard it silently"),
            ("deliver", "Deliver it to this address:"),
        ],
        validators=[DataRequired()],
    )
    reject_reason = StringField(
        "Reason given to the sender", validators=[Optional(), Length(max=200)]
    )
    target = StringField("Deliver to", validators=[Optional(), Length(max=320)])


class SelfServiceForm(FlaskForm):  # type: ignore[misc]
    allow_forwarding = BooleanField("Mailbox users may forward their own mail")
    allow_autoresponder = BooleanField("Mailbox users may set their own automatic replies")


class VerifyForm(FlaskForm):  # type: ignore[misc]
    """Check now / approve: no fields, the CSRF token only."""


class RemoveDomainForm(FlaskForm):  # type: ignore[misc]
    confirm = StringField(
        "Type the domain name to confirm", validators=[DataRequired(), Length(max=253)]
    )


@bp.route("/", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def index() -> ResponseReturnValue:
    actor = current_actor()
    form = AddDomainForm()
    status = 200
    if form.validate_on_submit():
        try:
            added = domains.add_domain(
                db.session(), actor, form.name.data, customer=form.customer.data or None
            )
        except MailadminError as exc:
            attach_error(form, exc)
            status = 422
        else:
            flash(f"Domain {domain_to_unicode(added.name)} added."
                  + (" It is waiting for verification: see below." if added.pending else ""),
                  "success")
            return redirect(url_for("domains.detail", name=added.name))
    elif request.method == "POST":
        status = 422
    page_number = page_arg()
    search = (request.args.get("q") or "").strip()[:253] or None
    page = domains.list_domains(db.session(), actor, search=search, page=page_number)
    return render_template(
        "domains/index.html",
        form=form,
        page=page,
        search=search,
        needs_customer=actor.role is not Role.CUSTOMER,
    ), status


def _render_detail(name: str, status: int = 200, **forms: FlaskForm) -> ResponseReturnValue:
    try:
        domain = get_domain(db.session(), current_actor(), name)
    except MailadminError:
        abort(404, description="There is no such domain in your account.")
    defaults = forms.get("defaults") or DefaultsForm(
        formdata=None,
        quota=size_for_input(domain.default_quota) if domain.default_quota is not None else "",
        imap=domain.default_imap,
        pop3=domain.default_pop3,
        smtp=domain.default_smtp,
    )
    catchall = forms.get("catchall") or CatchAllForm(
        formdata=None,
        action=domain.catchall_action,
        reject_reason=domain.catchall_reject_reason or "",
        target=domain.catchall_target or "",
    )
    self_service = forms.get("self_service") or SelfServiceForm(
        formdata=None,
        allow_forwarding=domain.allow_self_forwarding,
        allow_autoresponder=domain.allow_self_autoresponder,
    )
    session, actor = db.session(), current_actor()
    return render_template(
        "domains/detail.html",
        verification=domain_ownership.describe(session, domain),
        may_approve=domain.pending and domain_ownership.may_approve(session, actor, domain),
        verify_form=VerifyForm(formdata=None),
        self_service_form=self_service,
        domain=domain,
        unicode_name=domain_to_unicode(domain.name),
        defaults_form=defaults,
        catchall_form=catchall,
        remove_form=forms.get("remove") or RemoveDomainForm(formdata=None),
        format_size=format_size,
    ), status


@bp.route("/<name>")
@login_required  # type: ignore[misc]
def detail(name: str) -> ResponseReturnValue:
    return _render_detail(name)


@bp.route("/<name>/defaults", methods=["POST"])
@login_required  # type: ignore[misc]
def defaults(name: str) -> ResponseReturnValue:
    form = DefaultsForm()
    if form.validate_on_submit():
        try:
            domains.set_domain_defaults(
                db.session(),
                current_actor(),
                name,
                quota=parse_size(form.quota.data) if form.quota.data else None,
                imap=form.imap.data,
                pop3=form.pop3.data,
                smtp=form.smtp.data,
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash("Defaults for new mailboxes saved.", "success")
            return redirect(url_for("domains.detail", name=name))
    return _render_detail(name, 422, defaults=form)


@bp.route("/<name>/catchall", methods=["POST"])
@login_required  # type: ignore[misc]
def catchall(name: str) -> ResponseReturnValue:
    form = CatchAllForm()
    if form.validate_on_submit():
        try:
            domains.set_catchall(
                db.session(),
                current_actor(),
                name,
                form.action.data,
                reject_reason=form.reject_reason.data or None,
                target=form.target.data or None,
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash("Default address saved.", "success")
            return redirect(url_for("domains.detail", name=name))
    return _render_detail(name, 422, catchall=form)


@bp.route("/<name>/self-service", methods=["POST"])
@login_required  # type: ignore[misc]
def self_service(name: str) -> ResponseReturnValue:
    form = SelfServiceForm()
    if form.validate_on_submit():
        try:
            domains.set_self_service(
                db.session(),
                current_actor(),
                name,
                allow_forwarding=form.allow_forwarding.data,
                allow_autoresponder=form.allow_autoresponder.data,
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash("Self-service settings saved.", "success")
            return redirect(url_for("domains.detail", name=name))
    return _render_detail(name, 422, self_service=form)


@bp.route("/<name>/verify", methods=["POST"])
@login_required  # type: ignore[misc]
def verify(name: str) -> ResponseReturnValue:
    """'Check now': look for the DNS proof at once."""
    if VerifyForm().validate_on_submit():
        try:
            status = domain_ownership.verify_domain(db.session(), current_actor(), name)
        except NotFound:
            abort(404, description="There is no such domain in your account.")
        except MailadminError as exc:
            flash(exc.message, "danger")
        else:
            if status.pending:
                flash(f"Not verified yet. {status.note or ''}".strip(), "warning")
            else:
                flash(f"{domain_to_unicode(status.name)} is verified: {status.note}", "success")
    return redirect(url_for("domains.detail", name=name))


@bp.route("/<name>/approve", methods=["POST"])
@login_required  # type: ignore[misc]
def approve(name: str) -> ResponseReturnValue:
    if VerifyForm().validate_on_submit():
        try:
            status = domain_ownership.approve_domain(db.session(), current_actor(), name)
        except NotFound:
            abort(404, description="There is no such domain in your account.")
        except PermissionDenied as exc:
            abort(403, description=exc.message)
        except MailadminError as exc:
            flash(exc.message, "danger")
        else:
            flash(f"{domain_to_unicode(status.name)} approved.", "success")
    return redirect(url_for("domains.detail", name=name))


@bp.route("/<name>/remove", methods=["POST"])
@login_required  # type: ignore[misc]
def remove(name: str) -> ResponseReturnValue:
    form = RemoveDomainForm()
    if form.validate_on_submit():
        try:
            domains.remove_domain(
                db.session(), current_actor(), name, confirm=form.confirm.data
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash(f"Domain {domain_to_unicode(name)} removed.", "success")
            return redirect(url_for("domains.index"))
    return _render_detail(name, 422, remove=form)
