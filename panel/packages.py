"""Packages (plans) of the server admin and of resellers: create, change, delete.

Views parse a form, call one service from `mailadmin.services.packages` and redirect or render.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, StringField
from wtforms.validators import DataRequired, Length, Optional

from mailadmin.errors import MailadminError, NotFound, PermissionDenied
from mailadmin.services import packages
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec
from mailadmin.sizes import parse_size, size_for_input

from . import db
from .forms import attach_error
from .mail import size_field_check
from .selling import (
    LIMIT,
    ConfirmForm,
    refused,
    seller_actor,
    size_or_none,
)

bp = Blueprint("packages", __name__, url_prefix="/packages")


class PackageForm(FlaskForm):  # type: ignore[misc]
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    max_domains = IntegerField("Domains", validators=LIMIT)
    max_mailboxes = IntegerField("Mailboxes", validators=LIMIT)
    max_forwarders = IntegerField("Forwarders", validators=LIMIT)
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
            max_quota_per_mailbox=size_or_none(self.max_quota_per_mailbox.data),
            max_total_quota=size_or_none(self.max_total_quota.data),
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


# --- packages (server admin and resellers) ----------------------------------------------------


@bp.route("/", methods=["GET", "POST"], endpoint="index")
@login_required  # type: ignore[misc]
def packages_index() -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    form = PackageForm()
    status = 200
    if form.validate_on_submit():
        try:
            created = packages.create_package(db.session(), actor, form.name.data, form.spec())
        except PermissionDenied as exc:
            refused(exc)
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
        refused(exc)
    return render_template("admin_users/packages.html", rows=rows, form=form,
                           is_admin=actor.is_admin), status


@bp.route("/<int:package_id>", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def edit_package(package_id: int) -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    try:
        package = packages.get_package(db.session(), actor, package_id)
    except MailadminError as exc:
        refused(exc)
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


@bp.route("/<int:package_id>/delete", methods=["POST"])
@login_required  # type: ignore[misc]
def delete_package(package_id: int) -> ResponseReturnValue:
    actor = seller_actor()
    if not isinstance(actor, Actor):
        return actor
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        packages.delete_package(db.session(), actor, package_id)
    except (NotFound, PermissionDenied) as exc:
        refused(exc)
    except MailadminError as exc:
        flash(exc.message, "danger")
        db.discard_changes()
        return redirect(url_for("packages.edit_package", package_id=package_id))
    flash("Package deleted.", "success")
    return redirect(url_for("packages.index"))
