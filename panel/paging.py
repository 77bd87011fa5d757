"""`?page=` and `?per_page=` of the panel's list pages: the service's rules, as 400 and 404."""

from __future__ import annotations

from flask import abort, request

from mailadmin.errors import NotFound, ValidationError
from mailadmin.services import pagination


def page_arg() -> int:
    """The requested page: 400 for text that is not a page number, 404 for a page that cannot
    exist (past the database's integer range)."""
    try:
        return pagination.parse_page(request.args.get("page"))
    except NotFound as exc:
        abort(404, description=exc.message)
    except ValidationError as exc:
        abort(400, description=exc.message)


def per_page_arg(default: int) -> int:
    """The requested page size: 400 unless it is from 1 to the most a page shows."""
    try:
        return pagination.parse_per_page(request.args.get("per_page"), default)
    except ValidationError as exc:
        abort(400, description=exc.message)
