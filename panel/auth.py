"""Sign-in and sign-out of panel users."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from flask import (
    Blueprint,
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
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from mailadmin.errors import AuthenticationFailed, RateLimited
from mailadmin.models import PanelUser
from mailadmin.services import accounts
from mailadmin.services.context import Actor

from . import db

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
login_manager.login_message_category = "info"
login_manager.session_protection = "strong"


class PanelPrincipal(UserMixin):  # type: ignore[misc]
    """The signed-in panel user as Flask-Login sees it (the model stays free of Flask)."""

    def __init__(self, user: PanelUser) -> None:
        self.user = user
        self.user_id = user.id
        self.username = user.username
        self.role = user.role

    def get_id(self) -> str:
        # The id carries a fingerprint of the password hash, so changing the password ends every
        # other session of that account.
        return f"{self.user.id}.{_fingerprint(self.user.password_hash)}"


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@login_manager.user_loader
def load_user(session_id: str) -> PanelPrincipal | None:
    user_id, _, fingerprint = session_id.partition(".")
    if not user_id.isdigit():
        return None
    user = db.session().get(PanelUser, int(user_id))
    if user is None or user.is_suspended or _fingerprint(user.password_hash) != fingerprint:
        return None
    return PanelPrincipal(user)


def current_actor() -> Actor:
    """The signed-in panel user as the services' Actor."""
    principal: PanelPrincipal = current_user._get_current_object()
    return Actor.for_user(principal.user, channel="panel", source=request.remote_addr)


class LoginForm(FlaskForm):  # type: ignore[misc]
    username = StringField("User name", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def _safe_next(target: str | None) -> str | None:
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
    if form.validate_on_submit():
        state = current_app.extensions["mailadmin"]
        actor = Actor(name=form.username.data, role=accounts.Role.CUSTOMER, channel="panel",
                      source=request.remote_addr)
        db.keep_changes_on_error()
        try:
            user = accounts.authenticate_panel_user(
                db.session(),
                form.username.data,
                form.password.data,
                client_address=request.remote_addr or "unknown",
                policy=state.throttle_policy,
                actor=actor,
            )
        except RateLimited as exc:
            form.form_errors.append(exc.message)
            status = 429
        except AuthenticationFailed as exc:
            form.form_errors.append(exc.message)
            status = 401
        else:
            # A fresh session on sign-in: nothing an attacker planted before survives it.
            session.clear()
            login_user(PanelPrincipal(user))
            session.permanent = True
            flash(f"Welcome, {user.username}.", "success")
            return redirect(_safe_next(request.args.get("next")) or url_for("home.dashboard"))
    elif request.method == "POST":
        status = 422
    response = render_template("auth/login.html", form=form), status
    return response


@bp.route("/logout", methods=["POST"])
@login_required  # type: ignore[misc]
def logout() -> ResponseReturnValue:
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))
