"""CSV import and export on the mailboxes page.

The export is a download of `services.imports.export_rows`. An import is checked and applied by
`workers.importer.run_import` (one transaction per domain) in a background thread, since
hashing thousands of plaintext passwords takes minutes; its page shows the progress and, at
the end, what changed. A job is visible only to the panel user (acting as the same customer)
who started it, and each user runs one import at a time.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField

from mailadmin.imports.csvfile import read_csv, write_csv
from mailadmin.services.context import Actor
from mailadmin.services.imports import export_rows
from mailadmin.workers.importer import ImportReport, run_import, total_records

from . import db
from .auth import current_actor

bp = Blueprint("transfer", __name__)

#: Larger uploads are refused (about 50,000 rows with hashes); the app's MAX_CONTENT_LENGTH
#: (16 MiB) cuts anything far larger before it is read.
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
#: Finished jobs are forgotten after this long.
JOB_SECONDS = 3600


class ImportForm(FlaskForm):  # type: ignore[misc]
    csv_file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])
    dry_run = BooleanField("Only show what would change", default=False)


@dataclasses.dataclass
class ImportJob:
    owner: tuple[int | None, int | None]
    total: int
    dry_run: bool
    started: float = dataclasses.field(default_factory=time.monotonic)
    done: int = 0
    report: ImportReport | None = None
    failure: str | None = None

    @property
    def finished(self) -> bool:
        return self.report is not None or self.failure is not None

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.done / self.total))


#: The running and recent imports by job id (kept in this process: the panel is one process).
JOBS: dict[str, ImportJob] = {}
_jobs_lock = threading.Lock()


def _owner(actor: Actor) -> tuple[int | None, int | None]:
    return actor.user_id, actor.customer_id


def _forget_old_jobs() -> None:
    now = time.monotonic()
    for key in [k for k, job in JOBS.items() if job.finished and now - job.started > JOB_SECONDS]:
        del JOBS[key]


@bp.route("/mailboxes/export.csv")
@login_required  # type: ignore[misc]
def export_csv() -> ResponseReturnValue:
    rows = list(export_rows(db.session(), current_actor()))
    response = Response(stream_with_context(write_csv(rows)), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="mailboxes.csv"'
    # the file holds password hashes: no cache may keep a copy
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/mailboxes/import", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def import_csv() -> ResponseReturnValue:
    form = ImportForm()
    actor = current_actor()
    if form.validate_on_submit():
        data = form.csv_file.data.stream.read(MAX_UPLOAD_BYTES + 1)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if len(data) > MAX_UPLOAD_BYTES:
            form.csv_file.errors.append(
                f"The file is larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MiB.")
        elif text is None:
            form.csv_file.errors.append("The file is not UTF-8 text.")
        else:
            plans = read_csv(text, form.csv_file.data.filename or "upload.csv")
            with _jobs_lock:
                _forget_old_jobs()
                running = [j for j in JOBS.values() if j.owner == _owner(actor)
                           and not j.finished]
                if running:
                    flash("An import of yours is still running; wait for it to finish.",
                          "error")
                    return redirect(url_for("transfer.import_csv"))
                job_id = secrets.token_urlsafe(16)
                job = JOBS[job_id] = ImportJob(_owner(actor), total_records(plans),
                                                bool(form.dry_run.data))
            factory = current_app.extensions["mailadmin"].session_factory

            def work() -> None:
                def progress(count: int) -> None:
                    job.done += count

                try:
                    job.report = run_import(factory, lambda _session: actor, plans,
                                            dry_run=job.dry_run, progress=progress)
                except Exception as exc:  # the page must end, whatever broke
                    current_app.logger.exception("CSV import failed")
                    job.failure = f"The import stopped: {type(exc).__name__}."

            app = current_app._get_current_object()

            def run_in_app() -> None:
                with app.app_context():
                    work()

            threading.Thread(target=run_in_app, name=f"import-{job_id[:6]}", daemon=True).start()
            return redirect(url_for("transfer.import_status", job_id=job_id))
    status = 422 if form.errors else 200
    return render_template("mail/import.html", form=form,
                           max_mib=MAX_UPLOAD_BYTES // 1024 // 1024), status


@bp.route("/mailboxes/import/<job_id>")
@login_required  # type: ignore[misc]
def import_status(job_id: str) -> ResponseReturnValue:
    with _jobs_lock:
        job = JOBS.get(job_id)
    # another user's job is not found, never forbidden
    if job is None or job.owner != _owner(current_actor()):
        abort(404)
    return render_template("mail/import_status.html", job=job, job_id=job_id)

