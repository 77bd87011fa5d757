"""What the seller pages (resellers, customers, packages) share: who may open them, how a
refusal is answered, paging and search, and the forms' common parts.

A refusal to act at all (a customer opening these pages) is answered 403, an object out of reach
404. While acting as a customer the seller pages send the user to the acting page.
"""

from __future__ import annotations

import typing as t

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms.validators import NumberRange, Optional

from mailadmin.errors import MailadminError, PermissionDenied
from mailadmin.services.context import Actor
from mailadmin.sizes import parse_size

from .auth import current_actor

#: A count limit in a form: blank is unlimited.
LIMIT = [Optional(), NumberRange(min=0, max=10**9)]


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    """A button: the CSRF token is the whole form."""


def seller_actor() -> Actor | ResponseReturnValue:
    """The actor for these pages, or a redirect to the acting page while acting."""
    actor = current_actor()
    if actor.acting_as is not None:
        flash(f"You are acting as {actor.acting_as}. Return to your own account first.", "info")
        return redirect(url_for("customers.acting"))
    return actor


def refused(exc: MailadminError) -> t.NoReturn:
    if isinstance(exc, PermissionDenied):
        abort(403, description=exc.message)
    abort(404, description=exc.message)


def page_number() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


def search_term() -> str | None:
    return (request.args.get("q") or "").strip()[:64] or None


def size_or_none(text: str | None) -> int | None:
    """Blank (or 0, or "unlimited") is no limit."""
    return parse_size(text) or None if text else None
