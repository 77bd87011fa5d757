"""Sign-in and sign-out of panel users; the session principals of panel and mailbox users.

Mailbox users (signed in at /me/login, see `panel.selfservice`) get a `MailboxPrincipal` whose
session id starts with "m"; they are confined to the self-service and client-setup pages, and
`current_actor()` refuses them, so no panel page can act for one by accident.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from urllib.parse import urlsplit

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
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, URLSafeSerializer
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from mailadmin.errors import AuthenticationFailed, MailboxAddressAtPanelSignIn, RateLimited
from mailadmin.models import Mailbox, PanelUser, utcnow
from mailadmin.names import address_to_unicode
from mailadmin.services import accounts, selfservice, sessions, throttle
from mailadmin.services.context import Actor
from mailadmin.services.twofactor import SecondStep

from . import acting, db, second_step

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
login_manager.login_message_category = "info"
login_manager.session_protection = "strong"
login_manager.blueprint_login_views = {"self": "self.login", "clientsetup": "self.login"}

MAILBOX_ROLE = "mailbox"


class PanelPrincipal(UserMixin):  # type: ignore[misc]
    """The signed-in panel user as Flask-Login sees it (the model stays free of Flask)."""

    def __init__(self, user: PanelUser, session_token: str) -> None:
        self.user = user
        self.user_id = user.id
        self.username = user.username
        self.role = user.role
        #: The zone this person reads times in (None: UTC until the browser's zone is saved).
        self.time_zone = user.time_zone
        #: The server-side session (`mailadmin.services.sessions`); signing out deletes it.
        self.session_token = session_token

    def get_id(self) -> str:
        # The id carries a fingerprint of the password hash, so changing the password ends every
        # other session of that account; and the server-side session's token, so signing out
        # ends this one.
        return f"{self.user.id}.{_fingerprint(self.user.password_hash)}.{self.session_token}"


class MailboxPrincipal(UserMixin):  # type: ignore[misc]
    """A signed-in mailbox user (full address + mailbox password); not a panel user."""

    role = MAILBOX_ROLE

    def __init__(self, mailbox: Mailbox, session_token: str) -> None:
        self.mailbox_id = mailbox.id
        self.session_token = session_token
        self.address = mailbox.address
        #: Shown in the navigation bar, as a panel user's name is.
        self.username = address_to_unicode(mailbox.address)
        self.time_zone = mailbox.time_zone
        self._fingerprint = _fingerprint(mailbox.password_hash)

    def get_id(self) -> str:
        # As for panel users: a new password (or a rehash) ends the mailbox's other sessions.
        return f"m{self.mailbox_id}.{self._fingerprint}.{self.session_token}"

    def as_mailbox_user(self) -> selfservice.MailboxUser:
        return selfservice.MailboxUser(
            mailbox_id=self.mailbox_id, address=self.address, source=request.remote_addr
        )


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@login_manager.user_loader
def load_user(session_id: str) -> PanelPrincipal | MailboxPrincipal | None:
    if session_id.startswith("m"):
        return _load_mailbox(session_id[1:])
    user_id, _, rest = session_id.partition(".")
    fingerprint, _, token = rest.partition(".")
    if not user_id.isdigit():
        return None
    user = db.session().get(PanelUser, int(user_id))
    if user is None or user.is_suspended or _fingerprint(user.password_hash) != fingerprint:
        return None
    if not sessions.session_is_live(
        db.session(), token, panel_user_id=user.id, now=utcnow(), idle_limit=session_idle_limit()
    ):
        return None
    principal = PanelPrincipal(user, token)
    if acting.is_acting():
        # While acting as a customer the navigation is the customer's (see panel.acting).
        principal.role = "customer"
        principal.username = f"{user.username} as {acting.acting_name()}"
    return principal


def _load_mailbox(session_id: str) -> MailboxPrincipal | None:
    mailbox_id, _, rest = session_id.partition(".")
    fingerprint, _, token = rest.partition(".")
    if not mailbox_id.isdigit():
        return None
    mailbox = selfservice.load_mailbox_user(db.session(), int(mailbox_id))
    if mailbox is None or _fingerprint(mailbox.password_hash) != fingerprint:
        return None
    if not sessions.session_is_live(
        db.session(), token, mailbox_id=mailbox.id, now=utcnow(), idle_limit=session_idle_limit()
    ):
        return None
    return MailboxPrincipal(mailbox, token)


def session_idle_limit() -> dt.timedelta:
    # The cookie's own lifetime is renewed on each request; the record uses the same limit.
    limit: dt.timedelta = current_app.permanent_session_lifetime
    return limit


#: The "known device" cookie: a random token, signed with the app's secret, that lets this
#: browser sign in with the right password while its account is locked for everyone else.
DEVICE_COOKIE = "mailadmin_device"
DEVICE_COOKIE_MAX_AGE = int(throttle.KNOWN_FOR.total_seconds())


def _device_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="mailadmin-known-device")


def known_device_token() -> str | None:
    """The browser's "known device" token, when its cookie carries a valid signature."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw or len(raw) > 512:
        return None
    try:
        token = _device_serializer().loads(raw)
    except BadSignature:
        return None
    return token if isinstance(token, str) else None


def remember_device(response: ResponseReturnValue, token: str) -> ResponseReturnValue:
    """Set the "known device" cookie on a sign-in's response."""
    from flask import make_response

    out = make_response(response)
    out.set_cookie(
        DEVICE_COOKIE,
        _device_serializer().dumps(token),
        max_age=DEVICE_COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
    )
    return out


def end_this_session() -> None:
    """Sign the current browser out: its server-side session is deleted, so the cookie (or a
    copy of it) is worthless from now on."""
    principal = current_user._get_current_object()
    token = getattr(principal, "session_token", None)
    if token:
        sessions.end_session(db.session(), token)
    logout_user()
    session.clear()


def current_actor() -> Actor:
    """The signed-in panel user as the services' Actor; 403 for a mailbox user."""
    principal = current_user._get_current_object()
    if not isinstance(principal, PanelPrincipal):
        abort(403, description="This page is for panel users. Mailbox users have their own pages.")
    actor = Actor.for_user(principal.user, channel="panel", source=request.remote_addr)
    if acting.is_acting():
        # A reseller or admin acting as one of its customers.
        return acting.acting_actor(actor)
    return actor


#: Where a mailbox user may go: its own pages, client setup, static files, signing out; and the
#: JSON API, which ignores the session and answers only to its bearer tokens.
_MAILBOX_BLUEPRINTS = frozenset({"self", "self_app_passwords", "clientsetup", "api",
                                 "diagnostics", "live", "preferences", "help", "twofactor"})
_MAILBOX_ENDPOINTS = frozenset({"static", "auth.logout", "home.webmail"})
#: Panel pages a mailbox user is sent to its own counterpart of (the shared navigation bar
#: links to these).
_MAILBOX_REDIRECTS = {
    "home.index": "self.overview",
    "home.dashboard": "self.overview",
    "auth.login": "self.overview",
    "account.password": "self.password",
}


@bp.before_app_request
def confine_mailbox_users() -> ResponseReturnValue | None:
    """Keep a mailbox user's session out of every panel page, whether or not the page asks
    for `current_actor()` (many show data before they act)."""
    if request.endpoint is None or not isinstance(
        current_user._get_current_object(), MailboxPrincipal
    ):
        return None
    if request.blueprint in _MAILBOX_BLUEPRINTS or request.endpoint in _MAILBOX_ENDPOINTS:
        return None
    target = _MAILBOX_REDIRECTS.get(request.endpoint)
    if target is not None and target in current_app.view_functions:
        return redirect(url_for(target))
    abort(403, description="This page is for panel users. Your own settings are under /me.")


class LoginForm(FlaskForm):  # type: ignore[misc]
    username = StringField("User name", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def safe_next(target: str | None) -> str | None:
    """Only same-site paths, so the sign-in page cannot be used to redirect elsewhere."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("home.dashboard"))
    form = LoginForm()
    status = 200
    mailbox_address: str | None = None
    if form.validate_on_submit():
        state = current_app.extensions["mailadmin"]
        actor = Actor(name=form.username.data, role=accounts.Role.CUSTOMER, channel="panel",
                      source=request.remote_addr)
        db.keep_changes_on_error()
        db.no_live_notice()  # a rehash on sign-in is no change of the person's
        try:
            signed_in = accounts.sign_in_panel_user(
                db.session(),
                form.username.data,
                form.password.data,
                client_address=request.remote_addr or "unknown",
                policy=state.throttle_policy,
                actor=actor,
                device_token=known_device_token(),
                session_idle_limit=session_idle_limit(),
                remembered_browsers=second_step.remembered_browser_tokens(),
            )
        except RateLimited as exc:
            form.form_errors.append(exc.message)
            status = 429
        except MailboxAddressAtPanelSignIn:
            mailbox_address = form.username.data.strip()
            status = 401
        except AuthenticationFailed as exc:
            form.form_errors.append(exc.message)
            status = 401
        else:
            user = signed_in.user
            if signed_in.second_step is SecondStep.CODE:
                return second_step.begin_second_step(
                    second_step.PANEL, user.id, user.password_hash,
                    safe_next(request.args.get("next")),
                )
            assert signed_in.session_token is not None and signed_in.outcome is not None
            # A fresh session on sign-in: nothing an attacker planted before survives it.
            session.clear()
            login_user(PanelPrincipal(user, signed_in.session_token))
            session.permanent = True
            if signed_in.second_step is SecondStep.ENROL:
                second_step.require_enrolment()
            flash(f"Welcome, {user.username}.", "success")
            if signed_in.outcome.notice is not None:
                flash(signed_in.outcome.notice.message, "warning")
            return remember_device(
                redirect(safe_next(request.args.get("next")) or url_for("home.dashboard")),
                signed_in.outcome.device_token,
            )
    elif request.method == "POST":
        status = 422
    response = render_template("auth/login.html", form=form,
                               mailbox_address=mailbox_address), status
    return response


@bp.route("/logout", methods=["POST"])
@login_required  # type: ignore[misc]
def logout() -> ResponseReturnValue:
    end_this_session()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))
