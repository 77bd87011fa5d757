"""Two-factor sign-in pages: the code step of a sign-in, and each account's own set-up.

Panel users manage theirs under /account/two-factor, mailbox users under /me/two-factor; the
same views serve both, and each acts only for the signed-in principal (never for an id from
the URL or a form). The rules are `mailadmin.services.twofactor`'s.
"""

from __future__ import annotations

import typing as t

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length

from mailadmin.errors import AuthenticationFailed, MailadminError, NotFound, RateLimited
from mailadmin.models import utcnow
from mailadmin.services import twofactor

from . import db, second_step
from .auth import (
    MailboxPrincipal,
    PanelPrincipal,
    known_device_token,
    login_manager,
    remember_device,
    safe_next,
    session_idle_limit,
)
from .forms import attach_error

bp = Blueprint("twofactor", __name__)

#: URL prefix and endpoint prefix of each kind of account's set-up pages.
KINDS = {second_step.PANEL: "/account/two-factor", second_step.MAILBOX: "/me/two-factor"}
#: What a signed-in account that must still enrol may open.
_ENROLMENT_ENDPOINTS = frozenset({"static", "auth.logout"})


def _code_field(field_id: str, description: str) -> StringField:
    # Several code forms share the set-up page: each field gets its own id for its label.
    return StringField(
        "Code", validators=[DataRequired(), Length(max=twofactor.MAX_CODE_LENGTH)],
        id=field_id, description=description,
        render_kw={"autocomplete": "one-time-code", "spellcheck": "false"},
    )


_ANY_CODE = "The 6-digit code your authenticator app shows now, or a recovery code."
_APP_CODE = "The 6-digit code your authenticator app shows now."


class CodeForm(FlaskForm):  # type: ignore[misc]
    code = _code_field("code", _ANY_CODE)


class SignInCodeForm(CodeForm):
    remember = BooleanField("Remember this browser for 30 days")


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    code = _code_field("confirm_code", "The 6-digit code the app shows after adding mailadmin.")


class DisableForm(FlaskForm):  # type: ignore[misc]
    code = _code_field("disable_code", _ANY_CODE)


class RecoveryCodesForm(FlaskForm):  # type: ignore[misc]
    code = _code_field("recovery_code", _APP_CODE)


class StartForm(FlaskForm):  # type: ignore[misc]
    """Only the CSRF token."""


def _throttle_policy() -> t.Any:
    return current_app.extensions["mailadmin"].throttle_policy


def _client() -> str:
    return request.remote_addr or "unknown"


# --- the code step of a sign-in ---------------------------------------------------------------


@bp.route("/sign-in/code", methods=["GET", "POST"])
def code() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    waiting = second_step.pending()
    if waiting is None:
        flash("Sign in with your password first.", "info")
        return redirect(url_for("auth.login"))
    kind = waiting.get("kind")
    account_id = waiting.get("id")
    if kind not in KINDS or not isinstance(account_id, int):
        session.pop(second_step.PENDING_KEY, None)
        return redirect(url_for("auth.login"))
    form = SignInCodeForm()
    status = 200
    if form.validate_on_submit():
        owner = (twofactor.Owner.panel(account_id, request.remote_addr)
                 if kind == second_step.PANEL
                 else twofactor.Owner.mailbox(account_id, request.remote_addr))
        # Wrong codes count against the sign-in throttle.
        db.keep_changes_on_error()
        try:
            done = twofactor.complete_sign_in(
                db.session(), owner, form.code.data, second_step.box(),
                password_step_at=second_step.pending_started_at(waiting),
                fingerprint=str(waiting.get("fp", "")),
                client_address=_client(),
                policy=_throttle_policy(),
                device_token=known_device_token(),
                remember_browser=bool(form.remember.data),
                session_idle_limit=session_idle_limit(),
                now=utcnow(),
            )
        except RateLimited as exc:
            form.form_errors.append(exc.message)
            status = 429
        except AuthenticationFailed as exc:
            attach_error(form, exc)
            status = 401
        except NotFound as exc:
            session.pop(second_step.PENDING_KEY, None)
            flash(exc.message, "error")
            return redirect(url_for("auth.login"))
        else:
            return _signed_in(done, waiting)
    elif request.method == "POST":
        status = 422
    return render_template("twofactor/code.html", form=form, kind=kind), status


def _signed_in(done: twofactor.SecondStepSignIn, waiting: dict[str, object]) -> ResponseReturnValue:
    next_url = safe_next(str(waiting["next"])) if waiting.get("next") else None
    # A fresh session on sign-in: nothing of the password step (or planted before) survives.
    session.clear()
    principal: PanelPrincipal | MailboxPrincipal
    if done.panel_user is not None:
        principal = PanelPrincipal(done.panel_user, done.session_token)
        flash(f"Welcome, {done.panel_user.username}.", "success")
        target = next_url or url_for("home.dashboard")
    else:
        assert done.mailbox is not None
        principal = MailboxPrincipal(done.mailbox, done.session_token)
        target = next_url or url_for("self.overview")
    login_user(principal)
    session.permanent = True
    if done.outcome.notice is not None:
        flash(done.outcome.notice.message, "warning")
    if done.used_recovery_code:
        flash(f"You signed in with a recovery code; it cannot be used again. "
              f"{done.recovery_codes_left} recovery codes are left"
              + (": make new ones on your two-factor page." if done.recovery_codes_left < 4
                 else "."), "warning")
    response = make_response(remember_device(redirect(target), done.outcome.device_token))
    if done.remember_token is not None:
        second_step.set_remember_cookie(response, done.remember_token)
    return response


# --- an account's own set-up ------------------------------------------------------------------


def _owner(kind: str) -> twofactor.Owner:
    """The signed-in principal as the owner of a second factor; 403 on the other kind's pages."""
    principal = current_user._get_current_object()
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    if kind == second_step.PANEL and isinstance(principal, PanelPrincipal):
        # The signed-in person's own, also while acting as a customer.
        return twofactor.Owner.panel(principal.user_id, request.remote_addr)
    if kind == second_step.MAILBOX and isinstance(principal, MailboxPrincipal):
        return twofactor.Owner.mailbox(principal.mailbox_id, request.remote_addr)
    abort(403, description="This page is for the other kind of account: panel users set up "
                           "two-factor sign-in under /account/two-factor, mailbox users under "
                           "/me/two-factor.")


def _settings_url(kind: str) -> str:
    return url_for(f"twofactor.{kind}_settings")


def _page(kind: str, *, refused: FlaskForm | None = None,
          recovery_codes: list[str] | None = None, status: int = 200) -> ResponseReturnValue:
    owner = _owner(kind)
    state = twofactor.get_status(db.session(), owner, utcnow(), second_step.box())
    forms = {
        name: refused if isinstance(refused, cls) else cls(formdata=None)
        for name, cls in (("confirm_form", ConfirmForm), ("disable_form", DisableForm),
                          ("recovery_form", RecoveryCodesForm))
    }
    body = render_template(
        "twofactor/settings.html", kind=kind, state=state, enrolment=state.enrolment,
        start_form=StartForm(), **forms,
        recovery_codes=recovery_codes,
        must_enrol=bool(session.get(second_step.ENROL_KEY)),
    )
    # The page may show a secret or recovery codes: no copy in any cache.
    return body, status, {"Cache-Control": "no-store"}


def _settings(kind: str) -> ResponseReturnValue:
    return _page(kind)


def _start(kind: str) -> ResponseReturnValue:
    owner = _owner(kind)
    if not StartForm().validate_on_submit():
        abort(400)
    try:
        twofactor.start_enrolment(db.session(), owner, second_step.box(), utcnow())
    except MailadminError as exc:
        db.discard_changes()
        flash(exc.message, "error")
    return redirect(_settings_url(kind))


def _confirm(kind: str) -> ResponseReturnValue:
    owner = _owner(kind)
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _page(kind, refused=form, status=422)
    try:
        codes = twofactor.confirm_enrolment(
            db.session(), owner, form.code.data, second_step.box(), utcnow(),
            sign_in_session=current_user.session_token,
        )
    except MailadminError as exc:
        db.discard_changes()
        attach_error(form, exc)
        return _page(kind, refused=form, status=422)
    session.pop(second_step.ENROL_KEY, None)
    flash("Two-factor sign-in is on. Keep the recovery codes below somewhere safe.", "success")
    # Rendered, not redirected: the codes must not pass through the session cookie.
    return _page(kind, recovery_codes=codes)


def _with_code(kind: str, form: FlaskForm, action: t.Callable[..., t.Any],
               done: str) -> ResponseReturnValue:
    """Run `action` (turn off, new recovery codes) with the code typed in `form`."""
    owner = _owner(kind)
    if not form.validate_on_submit():
        return _page(kind, refused=form, status=422)
    # Wrong codes count against the sign-in throttle, as at sign-in.
    db.keep_changes_on_error()
    try:
        result = action(
            db.session(), owner, form.code.data, second_step.box(), client_address=_client(),
            policy=_throttle_policy(), device_token=known_device_token(), now=utcnow(),
        )
    except RateLimited as exc:
        form.form_errors.append(exc.message)
        return _page(kind, refused=form, status=429)
    except AuthenticationFailed as exc:
        attach_error(form, exc)
        return _page(kind, refused=form, status=401)
    except MailadminError as exc:
        db.discard_changes()
        attach_error(form, exc)
        return _page(kind, refused=form, status=422)
    flash(done, "success")
    if isinstance(result, list):
        return _page(kind, recovery_codes=result)
    return redirect(_settings_url(kind))


def _disable(kind: str) -> ResponseReturnValue:
    return _with_code(kind, DisableForm(), twofactor.disable,
                      "Two-factor sign-in is off; remembered browsers were forgotten.")


def _recovery_codes(kind: str) -> ResponseReturnValue:
    return _with_code(kind, RecoveryCodesForm(), twofactor.regenerate_recovery_codes,
                      "New recovery codes made; the old ones no longer work.")


def _verify(kind: str) -> ResponseReturnValue:
    """Prove the second factor again in this session (creating an API token asks for it)."""
    owner = _owner(kind)
    form = CodeForm()
    next_url = safe_next(request.args.get("next"))
    status = 200
    if form.validate_on_submit():
        db.keep_changes_on_error()
        try:
            twofactor.confirm_presence(
                db.session(), owner, form.code.data, second_step.box(),
                sign_in_session=current_user.session_token, client_address=_client(),
                policy=_throttle_policy(), device_token=known_device_token(), now=utcnow(),
            )
        except RateLimited as exc:
            form.form_errors.append(exc.message)
            status = 429
        except AuthenticationFailed as exc:
            attach_error(form, exc)
            status = 401
        except MailadminError as exc:
            db.discard_changes()
            attach_error(form, exc)
            status = 422
        else:
            flash("Second factor confirmed.", "success")
            return redirect(next_url or _settings_url(kind))
    elif request.method == "POST":
        status = 422
    enabled = True
    if request.method == "GET":
        enabled = twofactor.get_status(db.session(), owner, utcnow()).enabled
    return render_template("twofactor/verify.html", form=form, kind=kind,
                           enabled=enabled), status


for _kind, _prefix in KINDS.items():
    for _path, _view, _methods in (
        ("", _settings, ["GET"]),
        ("/start", _start, ["POST"]),
        ("/confirm", _confirm, ["POST"]),
        ("/disable", _disable, ["POST"]),
        ("/recovery-codes", _recovery_codes, ["POST"]),
        ("/verify", _verify, ["GET", "POST"]),
    ):
        _name = _view.__name__.lstrip("_")
        bp.add_url_rule(
            _prefix + _path, f"{_kind}_{_name}",
            (lambda view, kind: lambda: view(kind))(_view, _kind),
            methods=_methods,
        )
        _ENROLMENT_ENDPOINTS = _ENROLMENT_ENDPOINTS | {f"twofactor.{_kind}_{_name}"}


@bp.before_app_request
def enforce_enrolment() -> ResponseReturnValue | None:
    """An account the server requires a second factor of, signed in without one, sees only the
    set-up page until it is done (or signs out)."""
    if not session.get(second_step.ENROL_KEY) or request.endpoint in _ENROLMENT_ENDPOINTS:
        return None
    principal = current_user._get_current_object()
    if isinstance(principal, PanelPrincipal):
        return redirect(url_for("twofactor.panel_settings"))
    if isinstance(principal, MailboxPrincipal):
        return redirect(url_for("twofactor.mailbox_settings"))
    session.pop(second_step.ENROL_KEY, None)
    return None
