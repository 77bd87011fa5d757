"""Is it live? After a change to what the mail servers read, the next pages say whether the
change is already in force on the servers or waiting (and typically for how long), and a small
JSON endpoint lets the page follow it until it is.

The change is the one `panel.db` remembered in the browser's session after its commit; the
rule that decides is `services.stack.change_live_state`. Once a page has said "in force", the
notice is gone from the next page.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from flask import Blueprint, jsonify, session
from flask.typing import ResponseReturnValue
from flask_login import current_user

from mailadmin.services import stack as stack_service

from . import db

bp = Blueprint("live", __name__)

_CSS = {"live": "success", "waiting": "info", "delayed": "warning"}


def _wait_words(seconds: int | None) -> str:
    if seconds is None:
        return "when the server admin next applies changes (on this server that is done by hand)"
    return f"usually within about {seconds} seconds"


def message(state: stack_service.LiveState, subject: str) -> str:
    """The notice in words, for customers and mailbox users alike."""
    password = subject == "password"
    if state.state == "live":
        if password:
            return "Your new password works in your mail programs now."
        if subject == "mailbox_password":
            return "The new password works in mail programs now."
        if state.sql_mode:
            return ("In force: the mail servers read the panel's data directly, so this change "
                    "is live already.")
        return "In force: the mail servers have this change now."
    if state.state == "delayed":
        head = ("Waiting: the last attempt to bring changes to the mail servers failed; the "
                "server admin sees why on the dashboard.")
    else:
        head = f"Waiting: the mail servers get this change {_wait_words(state.expected_seconds)}."
    if password:
        return (f"{head} Until then your mail programs still use the old password; the new "
                "one works for signing in here already.")
    if subject == "mailbox_password":
        return f"{head} Until then mail programs still use the old password."
    return f"{head} This page updates when it is in force."


def _notice() -> dict[str, t.Any] | None:
    """The notice for the browser's last change, or None; forgets it once it is in force."""
    change = session.get(db.LIVE_CHANGE_KEY)
    if not isinstance(change, dict) or not current_user.is_authenticated:
        return None
    try:
        changed_at = dt.datetime.fromisoformat(str(change.get("at")))
    except ValueError:
        session.pop(db.LIVE_CHANGE_KEY, None)
        return None
    state = stack_service.change_live_state(
        db.session(), changed_at, settings_changed=bool(change.get("settings")))
    if state.state == "live":
        session.pop(db.LIVE_CHANGE_KEY, None)
    return {
        "state": state.state,
        "message": message(state, str(change.get("subject", "change"))),
        "expected_seconds": state.expected_seconds,
        "css": _CSS[state.state],
    }


@bp.app_context_processor
def live_notice() -> dict[str, t.Any]:
    return {"live_notice": _notice}


@bp.route("/live-status")
def status() -> ResponseReturnValue:
    """JSON for the notice's script: {"state": live|waiting|delayed|none, "message": ...}."""
    notice = _notice() if current_user.is_authenticated else None
    response = jsonify(notice or {"state": "none", "message": None})
    response.headers["Cache-Control"] = "no-store"
    return response
