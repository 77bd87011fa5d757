"""The Flask web layer of mailadmin: pages, the JSON API and public client-setup endpoints.

Views parse input, call one `mailadmin.services` function and render or redirect; every rule
lives in the services.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Request, render_template
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map

from mailadmin.config import load_config
from mailadmin.db import make_engine, make_session_factory
from mailadmin.models import MAX_ROW_ID
from mailadmin.services.throttle import ThrottlePolicy

from . import db as request_db
from .auth import login_manager
from .extensions import csrf

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def templates_dir() -> Path:
    """The page templates: inside the package in an installed wheel (the build maps them
    there), at the top of the repository in a checkout or an editable install."""
    packaged = Path(__file__).resolve().parent / "templates"
    return packaged if packaged.is_dir() else PROJECT_ROOT / "templates"


@dataclass
class PanelState:
    engine: Engine
    session_factory: sessionmaker[Session]
    throttle_policy: ThrottlePolicy


class AutoSecureSessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the request arrived over HTTPS.

    The panel binds to 127.0.0.1:2082 over plain HTTP for local use and sits behind a TLS
    proxy in production; a fixed Secure flag would break the first and a fixed non-Secure
    flag would weaken the second.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        setting = app.config.get("SESSION_COOKIE_SECURE_MODE", "auto")
        if setting == "auto":
            from flask import request

            return bool(request) and request.is_secure
        return bool(setting)


class RowIdConverter(IntegerConverter):
    """`<int:...>` in a URL: a row id, so 1 to 2**31 - 1 (ids are 32-bit on every backend).

    Past that the URL matches no route (404) instead of reaching the database, where the
    number would overflow its integer type (a server error on SQLite and PostgreSQL).
    """

    def __init__(self, map: Map, *args: t.Any, **kwargs: t.Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)


def create_app(overrides: Mapping[str, t.Any] | None = None) -> Flask:
    """Create the panel. `overrides` win over the instance file and the environment."""
    instance_path = None
    if overrides and "INSTANCE_PATH" in overrides:
        instance_path = Path(overrides["INSTANCE_PATH"])
    config = load_config(instance_path, overrides)
    app = Flask(
        __name__,
        instance_path=config["INSTANCE_PATH"],
        template_folder=str(templates_dir()),
        static_folder="static",
    )
    secure_mode = config.pop("SESSION_COOKIE_SECURE", "auto")
    app.config.update(config)
    app.config.update(
        SESSION_COOKIE_SECURE_MODE=secure_mode if isinstance(secure_mode, bool) else "auto",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="mailadmin_session",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(seconds=int(config["SESSION_LIFETIME_SECONDS"])),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
    )
    app.session_interface = AutoSecureSessionInterface()
    # Before any route is added: rules pick their converters when they are compiled.
    app.url_map.converters["int"] = RowIdConverter
    if int(config["TRUSTED_PROXY_COUNT"]) > 0:
        hops = int(config["TRUSTED_PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    engine = make_engine(config["DATABASE_URL"])
    app.extensions["mailadmin"] = PanelState(
        engine=engine,
        session_factory=make_session_factory(engine),
        throttle_policy=ThrottlePolicy(
            max_failures_per_account=int(config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
            max_failures_per_address=int(config["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
            max_failures_per_pair=int(config["LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS"]),
            window=dt.timedelta(seconds=int(config["LOGIN_FAILURE_WINDOW_SECONDS"])),
            lock=dt.timedelta(seconds=int(config["LOGIN_LOCK_SECONDS"])),
        ),
    )

    csrf.init_app(app)
    login_manager.init_app(app)
    request_db.init_app(app)
    _register_blueprints(app)
    _register_error_handlers(app)
    _register_template_helpers(app)
    _register_security_headers(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from .account import bp as account_bp
    from .admin import bp as admin_bp
    from .api import bp as api_bp
    from .app_passwords import bp as app_passwords_bp
    from .app_passwords import self_bp as self_app_passwords_bp
    from .audit import bp as audit_bp
    from .auth import bp as auth_bp
    from .clientsetup import bp as clientsetup_bp
    from .customers import bp as customers_bp
    from .deliverability import bp as deliverability_bp
    from .diagnostics import bp as diagnostics_bp
    from .domains import bp as domains_bp
    from .help import bp as help_bp
    from .home import bp as home_bp
    from .live import bp as live_bp
    from .mail import bp as mail_bp
    from .packages import bp as packages_bp
    from .preferences import bp as preferences_bp
    from .resellers import bp as resellers_bp
    from .resolver import bp as resolver_bp
    from .selfservice import bp as self_bp
    from .tokens import bp as tokens_bp
    from .transfer import bp as transfer_bp
    from .twofactor import bp as twofactor_bp

    for blueprint in (
        auth_bp,
        home_bp,
        account_bp,
        domains_bp,
        deliverability_bp,
        mail_bp,
        audit_bp,
        api_bp,
        tokens_bp,
        admin_bp,
        diagnostics_bp,
        resellers_bp,
        customers_bp,
        packages_bp,
        self_bp,
        self_app_passwords_bp,
        app_passwords_bp,
        clientsetup_bp,
        resolver_bp,
        live_bp,
        preferences_bp,
        help_bp,
        twofactor_bp,
        transfer_bp,
    ):
        app.register_blueprint(blueprint)


#: The help article an error page links to, by status; other errors link to the help index.
ERROR_HELP: dict[int, str] = {
    401: "cant-sign-in",
    403: "cant-sign-in",
    429: "cant-sign-in",
    502: "cant-reach-panel",
    503: "cant-reach-panel",
    504: "cant-reach-panel",
}


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> tuple[str, int]:
        return (
            render_template(
                "error.html",
                title="The form expired",
                message="The form was missing its security token or it had expired. "
                "Nothing was changed. Go back, reload the page and try again.",
                help_slug="cant-sign-in",
            ),
            400,
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        code = error.code or 500
        return (
            render_template("error.html", title=f"{code} {error.name}", message=error.description,
                            help_slug=ERROR_HELP.get(code)),
            code,
        )


NAVIGATION: dict[str, list[tuple[str, str]]] = {
    # (endpoint, label); an entry shows only once its endpoint exists.
    "admin": [
        ("home.dashboard", "Dashboard"),
        ("resellers.index", "Resellers"),
        ("customers.index", "Customers"),
        ("packages.index", "Packages"),
        # short labels: the admin's menu has the most entries and stays on one line at 1280 px
        ("admin.settings", "Settings"),
        ("admin.revisions", "Mail server config"),
        ("resolver.index", "Resolve"),
        ("tokens.index", "API tokens"),
        ("audit.index", "Audit log"),
        # The editor links to the help itself.
        ("help.manage", "Help articles"),
    ],
    "reseller": [
        ("home.dashboard", "Dashboard"),
        ("customers.index", "Customers"),
        ("packages.index", "Packages"),
        ("resolver.index", "Resolve an address"),
        ("tokens.index", "API tokens"),
        ("audit.index", "Audit log"),
        ("help.manage", "Help articles"),
    ],
    "customer": [
        ("home.dashboard", "Dashboard"),
        ("domains.index", "Domains"),
        ("mail.mailboxes_index", "Mailboxes"),
        ("mail.forwarders_index", "Forwarders"),
        ("diagnostics.index", "Diagnose a problem"),
        ("resolver.index", "Resolve an address"),
        ("tokens.index", "API tokens"),
        ("audit.index", "Audit log"),
        ("help.index", "Help"),
    ],
    "mailbox": [
        ("self.overview", "My mailbox"),
        ("self.devices", "Device settings"),
        ("diagnostics.index", "Diagnose a problem"),
        ("help.index", "Help"),
    ],
}


def _register_template_helpers(app: Flask) -> None:
    @app.context_processor
    def navigation() -> dict[str, t.Any]:
        from flask_login import current_user

        items: list[tuple[str, str]] = []
        if current_user.is_authenticated:
            items = [
                (endpoint, label)
                for endpoint, label in NAVIGATION.get(current_user.role, [])
                if endpoint in app.view_functions
            ]
        return {"navigation": items}

    @app.context_processor
    def webmail() -> dict[str, t.Any]:
        # A callable, so only the pages that show the webmail link query the setting.
        from mailadmin.services import server

        from . import db

        return {"webmail_url": lambda: server.webmail_url(db.session())}

    @app.template_global("url_pattern")
    def url_pattern(endpoint: str, argument: str, **values: t.Any) -> t.Callable[[str], str]:
        """`url_for(endpoint, **{argument: value}, **values)` for many values (the rows of a
        list): the URL is built once around a marker, and each value, quoted by the routing's
        own converter, takes the marker's place. A row's URLs cost a string join instead of a
        route build (~6 µs each, four per row)."""
        from flask import url_for

        marker = "urlpatternmarker7f3a"
        built = url_for(endpoint, **{argument: marker}, **values)
        if built.count(marker) != 1:  # pragma: no cover - a marker in a fixed part
            return lambda value: url_for(endpoint, **{argument: value}, **values)
        before, after = built.split(marker)
        to_url = app.url_map.converters["default"](app.url_map).to_url
        return lambda value: f"{before}{to_url(value)}{after}"

    @app.template_filter("unicode_address")
    def unicode_address(value: str) -> str:
        from mailadmin.names import address_to_unicode

        return address_to_unicode(value)

    @app.template_filter("datetime")
    def format_datetime(value: dt.datetime | None, never: str = "never") -> str:
        """A moment in the signed-in person's time zone (mailadmin.display.format_time)."""
        from mailadmin.display import format_time

        from .preferences import current_time_zone

        return format_time(value, current_time_zone(), never=never)

    @app.template_global("readable")
    def readable(key: str, value: t.Any) -> str:
        from mailadmin.display import readable_value

        from .preferences import current_time_zone

        return readable_value(key, value, current_time_zone())

    @app.context_processor
    def time_zone() -> dict[str, t.Any]:
        from .preferences import current_time_zone

        return {"current_time_zone": current_time_zone}


def _register_security_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response: t.Any) -> t.Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
        )
        return response


def client_address(request: Request) -> str:
    return request.remote_addr or "unknown"
