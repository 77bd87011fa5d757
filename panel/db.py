"""One database session and one transaction per request.

The transaction commits after the view returns (so a failing commit becomes an error page,
not a silent loss) when the response is a success or a redirect. An error response (a refused
form is answered 422) rolls everything back, unless the view asked with `keep_changes_on_error()`
(a failed sign-in must still count against the rate limit).
"""

from __future__ import annotations

import typing as t

from flask import Flask, current_app, g
from sqlalchemy.orm import Session


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


def init_app(app: Flask) -> None:
    @app.after_request
    def commit(response: t.Any) -> t.Any:
        db_session: Session | None = g.get("db_session")
        if db_session is not None:
            if response.status_code < 400 or g.get("keep_changes_on_error"):
                db_session.commit()
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
