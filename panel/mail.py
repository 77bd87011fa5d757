"""Mailboxes and forwarders: the pages a hosting customer uses most."""

from __future__ import annotations

import typing as t

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms import ValidationError as FormValidationError
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, Optional

from mailadmin import clientsetup
from mailadmin.errors import MailadminError, NotFound, ValidationError
from mailadmin.mailstack.usage import UsageUnavailable
from mailadmin.models import utcnow
from mailadmin.names import address_to_unicode, split_partial
from mailadmin.protocols import Protocol
from mailadmin.services import autoresponders, domains, forwarders, limits, mailboxes, usage
from mailadmin.sizes import format_size, parse_size, size_for_input
from mailadmin.timezones import format_time

from . import db
from .auth import current_actor
from .forms import NEW_MAILBOX_PASSWORD, attach_error
from .paging import page_arg, per_page_arg
from .preferences import current_time_zone, label_period_fields, shown_time, typed_time

bp = Blueprint("mail", __name__)

USAGE_UNAVAILABLE = (
    "The mail server could not report usage just now, so the figures shown are from the last "
    "reading. Try again in a few minutes; if it keeps failing, tell your provider."
)


def size_field_check(form: FlaskForm, field: t.Any) -> None:
    if field.data:
        try:
            parse_size(field.data)
        except MailadminError as exc:
            raise FormValidationError(exc.message) from None


class NewMailboxForm(FlaskForm):  # type: ignore[misc]
    local_part = StringField("Name", validators=[DataRequired(), Length(max=64)])
    # The service decides which domains are the actor's, with the same message as the API and CLI.
    domain = SelectField("Domain", validators=[DataRequired()], validate_choice=False)
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)],
                             render_kw=NEW_MAILBOX_PASSWORD)
    confirm = PasswordField(
        "Password again",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
        render_kw=NEW_MAILBOX_PASSWORD,
    )
    quota = StringField(
        "Quota",
        validators=[Optional(), Length(max=32), size_field_check],
        description="e.g. 500M or 2G; empty for the domain's default",
    )
    imap = BooleanField(Protocol.IMAP.label, default=True)
    pop3 = BooleanField(Protocol.POP3.label, default=True)
    smtp = BooleanField(Protocol.SMTP.permission_label, default=True)


class MailboxSettingsForm(FlaskForm):  # type: ignore[misc]
    quota = StringField("Quota", validators=[DataRequired(), Length(max=32), size_field_check])
    imap = BooleanField(Protocol.IMAP.label)
    pop3 = BooleanField(Protocol.POP3.label)
    smtp = BooleanField(Protocol.SMTP.permission_label)


class SuspensionsForm(FlaskForm):  # type: ignore[misc]
    suspend_login = BooleanField("Suspend login (IMAP, POP3, SMTP and webmail refuse the password)")
    suspend_incoming = BooleanField("Suspend receiving (senders get a refusal)")
    suspend_outgoing = BooleanField("Suspend sending (the server refuses to send for it)")


class PasswordForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)],
                             render_kw=NEW_MAILBOX_PASSWORD)
    confirm = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
        render_kw=NEW_MAILBOX_PASSWORD,
    )


class DeleteForm(FlaskForm):  # type: ignore[misc]
    # Its own id: the password form on the same page has a "confirm" field too.
    confirm = StringField(
        "Type the address to confirm", validators=[DataRequired(), Length(max=320)],
        id="delete-confirm",
    )


class AutoresponderForm(FlaskForm):  # type: ignore[misc]
    enabled = BooleanField("Answer incoming mail automatically", default=True)
    subject = StringField("Subject", validators=[DataRequired(), Length(max=200)])
    body = TextAreaField("Message", validators=[DataRequired(), Length(max=10_000)])
    # Labelled with the person's zone when shown (preferences.label_period_fields).
    starts_at = DateTimeLocalField("From", validators=[Optional()], format="%Y-%m-%dT%H:%M")
    ends_at = DateTimeLocalField("Until", validators=[Optional()], format="%Y-%m-%dT%H:%M")
    interval_days = IntegerField(
        "Answer the same sender once every … days",
        default=1,
        validators=[DataRequired(), NumberRange(min=1, max=365)],
    )


class ForwarderForm(FlaskForm):  # type: ignore[misc]
    local_part = StringField("Address", validators=[DataRequired(), Length(max=64)])
    # The service decides which domains are the actor's, with the same message as the API and CLI.
    domain = SelectField("Domain", validators=[DataRequired()], validate_choice=False)
    destinations = TextAreaField(
        "Deliver to",
        validators=[DataRequired(), Length(max=20_000)],
        description="One address per line; local or at any other provider.",
    )
    keep_copy = BooleanField("Keep a copy in the mailbox (only when the address is a mailbox)")


#: The mailbox list offers its domains in a drop-down up to this many; past it, a text field.
DOMAIN_SELECT_MAX = 100


def _domain_choices(limit: int | None = None) -> list[tuple[str, str]]:
    from mailadmin.names import shown_domain

    if limit is None:
        names = domains.domain_names_for(db.session(), current_actor())
    else:
        names = domains.domain_names_for(db.session(), current_actor(), limit=limit)
    return [(n, shown_domain(n)) for n in names]


def _list_filters() -> dict[str, t.Any]:
    sort = request.args.get("sort", "address")
    if sort not in mailboxes.SORTS:
        sort = "address"
    return {
        "domain": request.args.get("domain") or None,
        "search": (request.args.get("q") or "").strip()[:320] or None,
        "sort": sort,
        "descending": request.args.get("desc") == "1",
    }


@bp.route("/mailboxes")
@login_required  # type: ignore[misc]
def mailboxes_index() -> ResponseReturnValue:
    filters = _list_filters()
    per_page = per_page_arg(50)
    page_number = page_arg()
    try:
        page = mailboxes.list_mailboxes(
            db.session(),
            current_actor(),
            page=page_number,
            per_page=per_page,
            **filters,
        )
    except MailadminError as exc:
        flash(exc.message, "error")
        return redirect(url_for("mail.mailboxes_index"))
    return render_template(
        "mail/mailboxes.html",
        page=page,
        filters=filters,
        page_sizes=mailboxes.PAGE_SIZES,
        bulk_actions=list(mailboxes.BulkAction),
        domain_choices=_domain_choices(DOMAIN_SELECT_MAX + 1),
        domain_select_max=DOMAIN_SELECT_MAX,
        format_size=format_size,
        allowance=limits.allowance_for(db.session(), current_actor()),
        domain_usage=usage.domain_usage(db.session(), current_actor(), domain=filters["domain"],
                                        limit=usage.USAGE_BARS + 1),
        usage_bars=usage.USAGE_BARS,
    )


@bp.route("/mailboxes/usage/refresh", methods=["POST"])
@login_required  # type: ignore[misc]
def usage_refresh() -> ResponseReturnValue:
    """Read the usage of every mailbox of the actor from the mail server now."""
    if not FlaskForm().validate_on_submit():
        abort(400)
    try:
        report = usage.refresh_usage(db.session(), current_actor())
    except UsageUnavailable:
        flash(USAGE_UNAVAILABLE, "error")
    else:
        message = f"Usage read for {report.updated} mailbox{'es' if report.updated != 1 else ''}."
        if report.not_known:
            message += (f" {len(report.not_known)} new mailbox"
                        f"{'es are' if len(report.not_known) != 1 else ' is'} not on the mail "
                        "server yet, so there is nothing to read for "
                        f"{'them' if len(report.not_known) != 1 else 'it'} yet.")
        flash(message, "success")
    return redirect(_back_to_list())


def _back_to_list() -> str:
    """The list the form was sent from (only a path of this panel, never another site)."""
    target = request.form.get("next", "")
    if target.startswith("/mailboxes") and not target.startswith("//"):
        return target
    return url_for("mail.mailboxes_index")


class BulkForm(FlaskForm):  # type: ignore[misc]
    action = SelectField(
        "With the selected mailboxes",
        choices=[SelectChoice(a.value, a.label) for a in mailboxes.BulkAction],
        validators=[DataRequired()],
    )
    quota = StringField(
        "Quota (for “Set the quota”)",
        validators=[Optional(), Length(max=32), size_field_check],
        description="e.g. 2G",
    )
    # Ticked on the confirmation page, which lists every selected mailbox and what will happen.
    confirm = BooleanField("Yes, do this to every mailbox listed above", id="bulk-confirm")
    next = HiddenField()


@bp.route("/mailboxes/bulk", methods=["POST"])
@login_required  # type: ignore[misc]
def mailboxes_bulk() -> ResponseReturnValue:
    """Suspend, resume, set the quota of or remove several mailboxes: first a page that lists
    them and what will happen, then (with its box ticked) the change, all or nothing."""
    form = BulkForm()
    addresses = request.form.getlist("addresses")[: mailboxes.BULK_MAX + 1]
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return render_template(
            "mail/mailboxes_bulk.html", form=form, action=None, targets=[],
            error=" ".join(e for errors in form.errors.values() for e in errors),
            back=_back_to_list(),
        ), 422
    quota = parse_size(form.quota.data) if form.quota.data else None
    try:
        if not form.confirm.data:
            targets = mailboxes.bulk_targets(db.session(), current_actor(), addresses)
            if form.action.data == mailboxes.BulkAction.QUOTA and quota is None:
                raise ValidationError("Give the quota to set, e.g. 2G.", field="quota")
            return render_template(
                "mail/mailboxes_bulk.html", form=form,
                action=mailboxes.BulkAction(form.action.data), quota=quota,
                targets=[(f"{m.local_part}@{m.domain.name}",
                          address_to_unicode(f"{m.local_part}@{m.domain.name}"))
                         for m in targets],
                format_size=format_size, back=_back_to_list(),
            )
        result = mailboxes.bulk_change(
            db.session(), current_actor(), addresses, form.action.data, quota=quota
        )
    except MailadminError as exc:
        return render_template(
            "mail/mailboxes_bulk.html", form=form, action=None, error=exc.message, targets=[],
            back=_back_to_list(),
        ), 404 if isinstance(exc, NotFound) else 422
    flash(result.summary(), "success")
    return redirect(_back_to_list())


@bp.route("/mailboxes/<address>/devices")
@login_required  # type: ignore[misc]
def mailbox_devices(address: str) -> ResponseReturnValue:
    """The settings a mailbox's mail programs need, for the customer to pass on."""
    try:
        setup = mailboxes.device_setup(db.session(), current_actor(), address)
    except MailadminError as exc:
        abort(404, description=exc.message)
    return render_template(
        "mail/mailbox_devices.html",
        setup=setup,
        address=address,
        unicode_address=address_to_unicode(address),
        advice=clientsetup.advice_for(setup),
        guides=clientsetup.client_guides(setup),
        pop_vs_imap=clientsetup.POP_VS_IMAP,
    )


@bp.route("/mailboxes/new", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def mailbox_new() -> ResponseReturnValue:
    form = NewMailboxForm()
    form.domain.choices = _domain_choices()
    if not form.domain.choices:
        flash("Add a domain first: every mailbox belongs to one of your domains.", "info")
        return redirect(url_for("domains.index"))
    if request.method == "GET" and request.args.get("domain"):
        form.domain.data = request.args["domain"]
    if form.validate_on_submit():
        try:
            box = mailboxes.create_mailbox(
                db.session(),
                current_actor(),
                f"{form.local_part.data.strip()}@{form.domain.data}",
                form.password.data,
                quota=parse_size(form.quota.data) if form.quota.data else None,
                imap=form.imap.data,
                pop3=form.pop3.data,
                smtp=form.smtp.data,
            )
        except MailadminError as exc:
            attach_error(form, exc if exc.field != "address" else _refield(exc, "local_part"))
        else:
            flash(f"Mailbox {address_to_unicode(box.address)} created.", "success")
            return redirect(url_for("mail.mailboxes_index"))
    status = 422 if form.errors or form.form_errors else 200
    allowance = limits.allowance_for(db.session(), current_actor())
    # At the limit the page says why instead of offering a form that can only be refused.
    refusal = allowance.new_mailbox_refusal if allowance and request.method == "GET" else None
    return render_template("mail/mailbox_new.html", form=form, allowance=allowance,
                           refusal=refusal, format_size=format_size), status


def _refield(exc: MailadminError, field: str) -> MailadminError:
    exc.field = field
    return exc


def _mailbox_or_404(address: str) -> t.Any:
    try:
        return mailboxes.get_mailbox(db.session(), current_actor(), address)
    except MailadminError as exc:
        abort(404, description=exc.message)


def _with_identity(form: FlaskForm, address: str) -> FlaskForm:
    """The password meter also refuses a password containing the mailbox's address."""
    form.password.render_kw = {**NEW_MAILBOX_PASSWORD, "data-password-identity": address}
    return form


def _render_mailbox(address: str, status: int = 200, **forms: FlaskForm) -> ResponseReturnValue:
    box = _mailbox_or_404(address)
    responder = autoresponders.get_autoresponder(db.session(), current_actor(), address)
    settings_form = forms.get("settings") or MailboxSettingsForm(
        formdata=None,
        quota=size_for_input(box.quota),
        imap=box.imap,
        pop3=box.pop3,
        smtp=box.smtp,
    )
    suspensions_form = forms.get("suspensions") or SuspensionsForm(
        formdata=None,
        suspend_login=box.suspend_login,
        suspend_incoming=box.suspend_incoming,
        suspend_outgoing=box.suspend_outgoing,
    )
    responder_form = forms.get("autoresponder") or AutoresponderForm(
        formdata=None,
        **(
            {
                "enabled": responder.enabled,
                "subject": responder.subject,
                "body": responder.body,
                "starts_at": shown_time(responder.starts_at),
                "ends_at": shown_time(responder.ends_at),
                "interval_days": responder.interval_days,
            }
            if responder
            # No autoresponder yet: the box unticked, or the page reads "auto-reply is on".
            else {"enabled": False}
        ),
    )
    return render_template(
        "mail/mailbox.html",
        box=box,
        address=box.address,
        unicode_address=address_to_unicode(box.address),
        responder=responder,
        settings_form=settings_form,
        suspensions_form=suspensions_form,
        password_form=_with_identity(forms.get("password") or PasswordForm(formdata=None),
                                     box.address),
        delete_form=forms.get("delete") or DeleteForm(formdata=None),
        responder_form=label_period_fields(responder_form),
        responder_state_now=responder.state(utcnow()) if responder else None,
        format_size=format_size,
        allowance=limits.allowance_for(db.session(), current_actor()),
        usage_percent=(min(100, round(100 * box.usage_bytes / box.quota))
                       if box.usage_bytes is not None and box.quota else None),
    ), status


@bp.route("/mailboxes/<address>")
@login_required  # type: ignore[misc]
def mailbox_detail(address: str) -> ResponseReturnValue:
    return _render_mailbox(address)


@bp.route("/mailboxes/<address>/settings", methods=["POST"])
@login_required  # type: ignore[misc]
def mailbox_settings(address: str) -> ResponseReturnValue:
    _mailbox_or_404(address)
    form = MailboxSettingsForm()
    if form.validate_on_submit():
        try:
            mailboxes.update_mailbox(
                db.session(),
                current_actor(),
                address,
                quota=parse_size(form.quota.data),
                imap=form.imap.data,
                pop3=form.pop3.data,
                smtp=form.smtp.data,
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash("Quota and protocols saved.", "success")
            return redirect(url_for("mail.mailbox_detail", address=address))
    return _render_mailbox(address, 422, settings=form)


@bp.route("/mailboxes/<address>/suspensions", methods=["POST"])
@login_required  # type: ignore[misc]
def mailbox_suspensions(address: str) -> ResponseReturnValue:
    _mailbox_or_404(address)
    form = SuspensionsForm()
    if form.validate_on_submit():
        try:
            mailboxes.set_suspensions(
                db.session(),
                current_actor(),
                address,
                login=form.suspend_login.data,
                incoming=form.suspend_incoming.data,
                outgoing=form.suspend_outgoing.data,
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash("Suspensions saved.", "success")
            return redirect(url_for("mail.mailbox_detail", address=address))
    return _render_mailbox(address, 422, suspensions=form)


@bp.route("/mailboxes/<address>/password", methods=["POST"])
@login_required  # type: ignore[misc]
def mailbox_password(address: str) -> ResponseReturnValue:
    _mailbox_or_404(address)
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            mailboxes.set_mailbox_password(
                db.session(), current_actor(), address, form.password.data
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            # whether mail programs take it yet is the "is it live?" notice's to say
            db.describe_change("mailbox_password")
            flash("Password changed. Mail programs need the new password once the mail "
                  "servers have it (see below).", "success")
            return redirect(url_for("mail.mailbox_detail", address=address))
    return _render_mailbox(address, 422, password=form)


@bp.route("/mailboxes/<address>/delete", methods=["POST"])
@login_required  # type: ignore[misc]
def mailbox_delete(address: str) -> ResponseReturnValue:
    _mailbox_or_404(address)
    form = DeleteForm()
    if form.validate_on_submit():
        try:
            mailboxes.delete_mailbox(
                db.session(), current_actor(), address, confirm=form.confirm.data
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash(
                f"Mailbox {address_to_unicode(address)} deleted from the panel. The mail stored on "
                "the server was not touched; ask your provider if it should be removed.",
                "success",
            )
            return redirect(url_for("mail.mailboxes_index"))
    return _render_mailbox(address, 422, delete=form)


@bp.route("/mailboxes/<address>/usage/recalculate", methods=["POST"])
@login_required  # type: ignore[misc]
def mailbox_recalculate(address: str) -> ResponseReturnValue:
    """Dovecot recounts the mailbox from its files; the fresh usage is stored."""
    _mailbox_or_404(address)
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        box = usage.recalculate(db.session(), current_actor(), address)
    except UsageUnavailable:
        # The tool's own message names commands and server folders: not for customers.
        flash(USAGE_UNAVAILABLE, "error")
    except NotFound:
        flash("This mailbox is not on the mail server yet, so there is nothing to count. "
              "New mailboxes reach it within a few minutes.", "error")
    except MailadminError as exc:
        flash(f"The usage could not be recalculated: {exc.message}", "error")
    else:
        flash(f"Usage recalculated: {box.usage_messages} message(s), read "
              f"{format_time(box.usage_read_at, current_time_zone())}.", "success")
    return redirect(url_for("mail.mailbox_detail", address=address))


@bp.route("/mailboxes/<address>/autoresponder", methods=["POST"])
@login_required  # type: ignore[misc]
def mailbox_autoresponder(address: str) -> ResponseReturnValue:
    _mailbox_or_404(address)
    if request.form.get("clear"):
        form = FlaskForm()
        if form.validate_on_submit():
            autoresponders.clear_autoresponder(db.session(), current_actor(), address)
            flash("Autoresponder removed.", "success")
            return redirect(url_for("mail.mailbox_detail", address=address))
        abort(400)
    form = AutoresponderForm()
    if form.validate_on_submit():
        try:
            autoresponders.set_autoresponder(
                db.session(),
                current_actor(),
                address,
                subject=form.subject.data,
                body=form.body.data,
                starts_at=typed_time(form.starts_at.data),
                ends_at=typed_time(form.ends_at.data),
                interval_days=form.interval_days.data,
                enabled=form.enabled.data,
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash("Autoresponder saved.", "success")
            return redirect(url_for("mail.mailbox_detail", address=address))
    return _render_mailbox(address, 422, autoresponder=form)


@bp.route("/autoresponders")
@login_required  # type: ignore[misc]
def autoresponders_index() -> ResponseReturnValue:
    """Every autoresponder of the customer at a glance: which answer now, which are waiting."""
    return render_template(
        "mail/autoresponders.html",
        rows=autoresponders.list_autoresponders(db.session(), current_actor()),
    )


@bp.route("/forwarders")
@login_required  # type: ignore[misc]
def forwarders_index() -> ResponseReturnValue:
    domain = request.args.get("domain") or None
    search = (request.args.get("q") or "").strip()[:320] or None
    page_number = page_arg()
    try:
        page = forwarders.list_forwarders(
            db.session(),
            current_actor(),
            domain=domain,
            search=search,
            page=page_number,
            per_page=50,
        )
    except MailadminError as exc:
        flash(exc.message, "error")
        return redirect(url_for("mail.forwarders_index"))
    return render_template(
        "mail/forwarders.html",
        page=page,
        filters={"domain": domain, "search": search},
        domain_choices=_domain_choices(),
    )


def _forwarder_or_mailbox(address: str) -> t.Any:
    """The forwarder at `address`, None for a mailbox without one; 404 for anything else."""
    try:
        return forwarders.get_forwarder(db.session(), current_actor(), address)
    except NotFound:
        pass
    except MailadminError as exc:
        abort(404, description=exc.message)
    try:
        mailboxes.get_mailbox(db.session(), current_actor(), address)
    except MailadminError as exc:
        abort(404, description=exc.message)
    return None


class ReplaceForwarderForm(FlaskForm):  # type: ignore[misc]
    destinations = TextAreaField(
        "Deliver to",
        validators=[DataRequired(), Length(max=20_000)],
        description="One address per line. This list replaces the current one.",
    )
    keep_copy = BooleanField("Keep a copy in the mailbox")
    # Asked for only when saving would remove destinations; checked here, on the server,
    # against the list the page showed (`removal_shown`), so a box ticked for one list does
    # not confirm removing another.
    confirm_removal = BooleanField("Yes, stop delivering to the destinations listed above")
    removal_shown = HiddenField()


class RemoveForwarderForm(FlaskForm):  # type: ignore[misc]
    confirm = BooleanField(
        "Yes, remove this forwarder",
        validators=[DataRequired(message="Tick the box to confirm the removal.")],
    )


def _lines(text: str) -> list[str]:
    return text.replace(",", "\n").splitlines()


@bp.route("/forwarders/new", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def forwarder_new() -> ResponseReturnValue:
    """A new forwarder, or more destinations for an existing one (never fewer)."""
    form = ForwarderForm()
    form.domain.choices = _domain_choices()
    if not form.domain.choices:
        flash("Add a domain first: every forwarder belongs to one of your domains.", "info")
        return redirect(url_for("domains.index"))
    prefill = request.args.get("address")
    if request.method == "GET" and prefill:
        local, domain_name = split_partial(prefill)
        form.local_part.data, form.domain.data = local, domain_name
        # A mailbox's forwarding keeps a copy unless the customer says otherwise.
        form.keep_copy.data = _is_mailbox(prefill)
    if form.validate_on_submit():
        try:
            _, change = forwarders.add_destinations(
                db.session(),
                current_actor(),
                f"{form.local_part.data.strip()}@{form.domain.data}",
                _lines(form.destinations.data),
                # Unticked leaves an existing forwarder's setting alone: adding never removes.
                keep_copy=True if form.keep_copy.data else None,
            )
        except MailadminError as exc:
            attach_error(form, exc if exc.field != "address" else _refield(exc, "local_part"))
        else:
            flash(change.summary(), "success")
            return redirect(url_for("mail.forwarders_index"))
    status = 422 if form.errors or form.form_errors else 200
    return render_template("mail/forwarder_new.html", form=form), status


@bp.route("/forwarders/edit", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def forwarder_edit() -> ResponseReturnValue:
    """Replace a forwarder's destinations, showing what will be removed before saving it.

    Without an existing forwarder (no address, or a mailbox that does not forward yet) this is
    the new-forwarder form.
    """
    address = request.args.get("address")
    current = _forwarder_or_mailbox(address) if address else None
    if current is None:
        return forwarder_new()
    assert address is not None
    is_mailbox = _is_mailbox(address)
    form = ReplaceForwarderForm()
    if request.method == "GET":
        form.destinations.data = "\n".join(
            address_to_unicode(d.address) for d in current.destinations
        )
        form.keep_copy.data = current.keep_copy
    change = None
    if form.validate_on_submit():
        destinations = _lines(form.destinations.data)
        keep_copy = bool(form.keep_copy.data) if is_mailbox else False
        try:
            change = forwarders.preview_replacement(
                db.session(), current_actor(), address, destinations, keep_copy=keep_copy
            )
            shown = "\n".join(change.removed)
            if change.removed and not (form.confirm_removal.data
                                       and form.removal_shown.data == shown):
                # Nothing saved yet: the page lists what would go and asks again.
                form.removal_shown.data = shown
                form.confirm_removal.data = False
                return render_template(
                    "mail/forwarder_edit.html", form=form, current=current, change=change,
                    is_mailbox=is_mailbox, address=address,
                ), 200
            _, change = forwarders.replace_destinations(
                db.session(), current_actor(), address, destinations, keep_copy=keep_copy
            )
        except MailadminError as exc:
            attach_error(form, exc)
            change = None
        else:
            flash(change.summary(), "success")
            return redirect(url_for("mail.forwarders_index"))
    status = 422 if form.errors or form.form_errors else 200
    return render_template(
        "mail/forwarder_edit.html", form=form, current=current, change=None,
        is_mailbox=is_mailbox, address=address,
    ), status


def _is_mailbox(address: str) -> bool:
    try:
        mailboxes.get_mailbox(db.session(), current_actor(), address)
    except MailadminError:
        return False
    return True


@bp.route("/forwarders/<address>/delete", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def forwarder_delete(address: str) -> ResponseReturnValue:
    """A page saying what removing the forwarder does; the removal needs its box ticked."""
    try:
        current = forwarders.get_forwarder(db.session(), current_actor(), address)
    except MailadminError:
        abort(404, description="There is no such forwarder in your account.")
    form = RemoveForwarderForm()
    if form.validate_on_submit():
        forwarders.remove_forwarder(db.session(), current_actor(), address)
        flash(f"Forwarder {address_to_unicode(address)} removed.", "success")
        return redirect(url_for("mail.forwarders_index"))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "mail/forwarder_delete.html", form=form, current=current,
        address=f"{current.local_part}@{current.domain.name}", is_mailbox=_is_mailbox(address),
    ), status
