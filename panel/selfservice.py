"""Pages a mailbox user opens for itself under /me: sign-in with the mail address, overview with
quota, password, autoresponder, forwarding and device settings.

Every page but the sign-in requires a `MailboxPrincipal`; a panel user gets 403 here, as a
mailbox user does on the panel's pages (see `panel.auth.confine_mailbox_users`).
"""

from __future__ import annotations

import functools
import typing as t

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    IntegerField,
    PasswordField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, Optional

from mailadmin import clientsetup
from mailadmin.errors import AuthenticationFailed, MailadminError, RateLimited
from mailadmin.models import utcnow
from mailadmin.services import selfservice, twofactor
from mailadmin.sizes import format_size

from . import db, second_step
from .auth import (
    MailboxPrincipal,
    end_this_session,
    known_device_token,
    login_manager,
    remember_device,
    safe_next,
    session_idle_limit,
)
from .forms import NEW_MAILBOX_PASSWORD, attach_error
from .preferences import label_period_fields, shown_time, typed_time

bp = Blueprint("self", __name__, url_prefix="/me")

F = t.TypeVar("F", bound=t.Callable[..., ResponseReturnValue])


def mailbox_required(view: F) -> F:
    """Only a signed-in mailbox user; anyone else signed in gets 403."""

    @functools.wraps(view)
    def wrapped(*args: t.Any, **kwargs: t.Any) -> ResponseReturnValue:
        if not current_user.is_authenticated:
            return t.cast(ResponseReturnValue, login_manager.unauthorized())
        if not isinstance(current_user._get_current_object(), MailboxPrincipal):
            abort(403, description="These pages are for mailbox users; sign in with a mail "
                                   "address to use them.")
        return view(*args, **kwargs)

    return t.cast(F, wrapped)


def current_mailbox_user() -> selfservice.MailboxUser:
    principal: MailboxPrincipal = current_user._get_current_object()
    return principal.as_mailbox_user()


def self_service_policy() -> selfservice.SelfServicePolicy:
    return selfservice.SelfServicePolicy(
        allow_forwarding=bool(current_app.config.get("MAILBOX_SELF_FORWARDING", True)),
        allow_autoresponder=bool(current_app.config.get("MAILBOX_SELF_AUTORESPONDER", True)),
    )


class MailboxLoginForm(FlaskForm):  # type: ignore[misc]
    address = StringField("Mail address", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class OwnPasswordForm(FlaskForm):  # type: ignore[misc]
    current_password = PasswordField("Current password", validators=[DataRequired()])
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)],
                             render_kw=NEW_MAILBOX_PASSWORD)
    confirm = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
        render_kw=NEW_MAILBOX_PASSWORD,
    )


class OwnAutoresponderForm(FlaskForm):  # type: ignore[misc]
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


class OwnForwardingForm(FlaskForm):  # type: ignore[misc]
    destinations = TextAreaField(
        "Forward to",
        validators=[DataRequired(), Length(max=20_000)],
        description="One address per line.",
    )
    keep_copy = BooleanField("Keep a copy in this mailbox", default=True)


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    """A button that changes something: only the CSRF token."""


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if isinstance(current_user._get_current_object(), MailboxPrincipal):
        return redirect(url_for("self.overview"))
    form = MailboxLoginForm()
    status = 200
    if form.validate_on_submit():
        state = current_app.extensions["mailadmin"]
        # A failed sign-in must still count against the rate limit.
        db.keep_changes_on_error()
        db.no_live_notice()  # a rehash on sign-in is no change of the person's
        try:
            signed_in = selfservice.sign_in_mailbox_user(
                db.session(),
                form.address.data,
                form.password.data,
                client_address=request.remote_addr or "unknown",
                policy=state.throttle_policy,
                source=request.remote_addr,
                device_token=known_device_token(),
                session_idle_limit=session_idle_limit(),
                remembered_browsers=second_step.remembered_browser_tokens(),
            )
        except RateLimited as exc:
            form.form_errors.append(exc.message)
            status = 429
        except selfservice.LoginSuspended as exc:
            form.form_errors.append(exc.message)
            status = 403
        except AuthenticationFailed as exc:
            form.form_errors.append(exc.message)
            status = 401
        else:
            mailbox = selfservice.load_mailbox_user(db.session(), signed_in.user.mailbox_id)
            assert mailbox is not None
            if signed_in.second_step is twofactor.SecondStep.CODE:
                return second_step.begin_second_step(
                    second_step.MAILBOX, mailbox.id, mailbox.password_hash,
                    safe_next(request.args.get("next")),
                )
            assert signed_in.session_token is not None and signed_in.outcome is not None
            # A fresh session on sign-in: nothing planted before (or a panel sign-in) survives.
            session.clear()
            login_user(MailboxPrincipal(mailbox, signed_in.session_token))
            session.permanent = True
            if signed_in.second_step is twofactor.SecondStep.ENROL:
                second_step.require_enrolment()
            if signed_in.outcome.notice is not None:
                flash(signed_in.outcome.notice.message, "warning")
            return remember_device(
                redirect(safe_next(request.args.get("next")) or url_for("self.overview")),
                signed_in.outcome.device_token,
            )
    elif request.method == "POST":
        status = 422
    elif request.method == "GET" and not form.address.data:
        # from the panel's sign-in, where a mail address was typed: keep it (never a password)
        form.address.data = request.args.get("address", "")[:320]
    return render_template("self/login.html", form=form), status


@bp.route("/")
@mailbox_required
def overview() -> ResponseReturnValue:
    box = selfservice.get_own_mailbox(
        db.session(), current_mailbox_user(), self_service_policy()
    )
    return render_template(
        "self/overview.html", box=box, format_size=format_size, everywhere_form=ConfirmForm()
    )


@bp.route("/sign-out-everywhere", methods=["POST"])
@mailbox_required
def sign_out_everywhere() -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    ended = twofactor.sign_out_everywhere(
        db.session(), twofactor.Owner.mailbox(current_user._get_current_object().mailbox_id)
    )
    end_this_session()
    flash(f"Signed out everywhere ({ended} session{'s' if ended != 1 else ''} ended).", "info")
    return redirect(url_for("self.login"))


@bp.route("/password", methods=["GET", "POST"])
@mailbox_required
def password() -> ResponseReturnValue:
    form = OwnPasswordForm()
    if form.validate_on_submit():
        # Wrong current passwords count against the sign-in throttle.
        db.keep_changes_on_error()
        try:
            mailbox = selfservice.change_own_mailbox_password(
                db.session(),
                current_mailbox_user(),
                form.current_password.data,
                form.password.data,
                policy=current_app.extensions["mailadmin"].throttle_policy,
            )
        except RateLimited as exc:
            form.form_errors.append(exc.message)
            return render_template("self/password.html", form=form), 429
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            # The session id carries the password fingerprint; renew this one so it stays valid.
            login_user(MailboxPrincipal(mailbox, current_user.session_token))
            db.describe_change("password")
            flash("Your password has been changed. Other sessions were signed out; "
                  "type the new password in your mail programs too.", "success")
            return redirect(url_for("self.overview"))
    status = 422 if form.errors or form.form_errors else 200
    return render_template("self/password.html", form=form), status


@bp.route("/autoresponder", methods=["GET", "POST"])
@mailbox_required
def autoresponder() -> ResponseReturnValue:
    form = OwnAutoresponderForm()
    if form.validate_on_submit():
        try:
            selfservice.set_own_autoresponder(
                db.session(),
                current_mailbox_user(),
                self_service_policy(),
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
            flash("Automatic reply saved.", "success")
            return redirect(url_for("self.autoresponder"))
    status = 422 if form.errors or form.form_errors else 200
    responder = None
    if request.method == "GET":
        responder = selfservice.get_own_autoresponder(db.session(), current_mailbox_user())
        if responder is not None:
            form.enabled.data = responder.enabled
            form.subject.data = responder.subject
            form.body.data = responder.body
            form.starts_at.data = shown_time(responder.starts_at)
            form.ends_at.data = shown_time(responder.ends_at)
            form.interval_days.data = responder.interval_days
        else:
            # None yet: an unticked box, not one that reads "auto-reply is on".
            form.enabled.data = False
    return render_template(
        "self/autoresponder.html",
        form=label_period_fields(form),
        responder=responder,
        responder_state_now=responder.state(utcnow()) if responder else None,
        clear_form=ConfirmForm(),
        allowed=self_service_policy().allow_autoresponder,
    ), status


@bp.route("/autoresponder/clear", methods=["POST"])
@mailbox_required
def autoresponder_clear() -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        selfservice.clear_own_autoresponder(
            db.session(), current_mailbox_user(), self_service_policy()
        )
    except MailadminError as exc:
        flash(exc.message, "error")
    else:
        flash("Automatic reply removed.", "success")
    return redirect(url_for("self.autoresponder"))


@bp.route("/forwarding", methods=["GET", "POST"])
@mailbox_required
def forwarding() -> ResponseReturnValue:
    form = OwnForwardingForm()
    if form.validate_on_submit():
        try:
            selfservice.set_own_forwarding(
                db.session(),
                current_mailbox_user(),
                self_service_policy(),
                form.destinations.data.splitlines(),
                keep_copy=form.keep_copy.data,
            )
        except MailadminError as exc:
            attach_error(form, exc)
        else:
            flash("Forwarding saved.", "success")
            return redirect(url_for("self.forwarding"))
    status = 422 if form.errors or form.form_errors else 200
    box = selfservice.get_own_mailbox(db.session(), current_mailbox_user(), self_service_policy())
    if request.method == "GET" and box.forwarding:
        form.destinations.data = "\n".join(box.forwarding)
        form.keep_copy.data = box.keep_copy
    return render_template(
        "self/forwarding.html", form=form, box=box, clear_form=ConfirmForm()
    ), status


@bp.route("/forwarding/clear", methods=["POST"])
@mailbox_required
def forwarding_clear() -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if selfservice.clear_own_forwarding(db.session(), current_mailbox_user()):
        flash("Forwarding stopped: mail stays in this mailbox.", "success")
    return redirect(url_for("self.forwarding"))


@bp.route("/devices")
@mailbox_required
def devices() -> ResponseReturnValue:
    setup = selfservice.get_own_device_setup(db.session(), current_mailbox_user())
    return render_template(
        "self/devices.html",
        setup=setup,
        advice=clientsetup.advice_for(setup),
        guides=clientsetup.client_guides(setup),
        pop_vs_imap=clientsetup.POP_VS_IMAP,
    )
