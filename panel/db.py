"""One database session and one transaction per request.

The transaction commits after the view returns (so a failing commit becomes an error page,
not a silent loss) when the response is a success or a redirect. An error response (a refused
form is answered 422) rolls everything back, unless the view asked with `keep_changes_on_error()`
(a failed sign-in must still count against the rate limit).
"""

from __future__ import annotations

import typing as t

from flask import Flask, current_app, g
from flask import session as browser_session
from sqlalchemy.orm import Session

from mailadmin.services.changes import committed_change

#: Where a signed-in browser keeps the last change it made to what the mail servers read, so
#: the next pages can say whether it is in force yet (`panel.live`).
LIVE_CHANGE_KEY = "live_change"


def session() -> Session:
    if "db_session" not in g:
        g.db_session = current_app.extensions["mailadmin"].session_factory()
    db_session: Session = g.db_session
    return db_session


def discard_changes() -> None:
    """Roll back what this request changed so far (a service refused part-way)."""
    if "db_session" in g:
        g.db_session.rollback()


def keep_changes_on_error() -> None:
    g.keep_changes_on_error = True


def describe_change(subject: str) -> None:
    """Name what this request changes, for the "is it live?" notice ("password": the words
    speak of the new password working in mail programs)."""
    g.live_subject = subject


def no_live_notice() -> None:
    """This request's changes are not the person's own doing (a sign-in that upgrades the
    stored password hash): no "is it live?" notice for them."""
    g.live_subject = None


def _remember_change(db_session: Session) -> None:
    change = committed_change(db_session)
    # only a browser that is signed in (Flask-Login's key): not the API's token requests
    if change is not None and "_user_id" in browser_session and g.get(
            "live_subject", "change") is not None:
        browser_session[LIVE_CHANGE_KEY] = {
            "at": change.stamp.isoformat(), "settings": change.settings,
            "subject": g.get("live_subject", "change"),
        }


def init_app(app: Flask) -> None:
    @app.after_request
    def commit(response: t.Any) -> t.Any:
        db_session: Session | None = g.get("db_session")
        if db_session is not None:
            if response.status_code < 400 or g.get("keep_changes_on_error"):
                db_session.commit()
                _remember_change(db_session)
            else:
                db_session.rollback()
        return response

    @app.teardown_request
    def close(exc: BaseException | None) -> None:
        db_session: Session | None = g.pop("db_session", None)
        if db_session is not None:
            if exc is not None:
                db_session.rollback()
            db_session.close()
