"""The audit log: who changed what, as whom, from where; filtered, and exportable as CSV.

Each role sees its own part of the trail (the service scopes the query): a customer its own
objects, a reseller its customers' and its own, the server admin everything. The export takes
the same filters as the page and streams its rows, so a long trail is never held in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask.typing import ResponseReturnValue
from flask_login import login_required

from mailadmin.errors import ValidationError
from mailadmin.services import audit

from . import db
from .auth import current_actor
from .paging import page_arg

bp = Blueprint("audit", __name__, url_prefix="/audit")

FILTER_FIELDS = ("actor", "object", "action", "since", "until")


def _filters() -> tuple[audit.AuditFilter, ValidationError | None]:
    text = {name: request.args.get(name, "") for name in FILTER_FIELDS}
    try:
        return audit.AuditFilter.from_text(**text), None
    except ValidationError as exc:
        return audit.AuditFilter(), exc


@bp.route("/")
@login_required  # type: ignore[misc]
def index() -> ResponseReturnValue:
    page_number = page_arg()
    filters, problem = _filters()
    values = {name: request.args.get(name, "")[:320] for name in FILTER_FIELDS}
    if problem is not None:
        return render_template("audit/index.html", page=None, values=values, problem=problem,
                               args={}, changes=audit.changes), 422
    page = audit.list_audit_events(db.session(), current_actor(), page=page_number,
                                   filters=filters)
    return render_template("audit/index.html", page=page, values=values, problem=None,
                           args=filters.as_args(), changes=audit.changes)


@bp.get("/export.csv")
@login_required  # type: ignore[misc]
def export() -> ResponseReturnValue:
    filters, problem = _filters()
    if problem is not None:
        return Response(f"{problem.field}: {problem.message}\n", status=422,
                        mimetype="text/plain")
    actor = current_actor()
    session = db.session()

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(audit.CSV_COLUMNS)
        for event in audit.iter_audit_events(session, actor, filters):
            writer.writerow(audit.csv_row(event))
            if buffer.tell() > 8192:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(
        stream_with_context(rows()), mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="audit-log.csv"',
                 "Cache-Control": "no-store"},
    )
