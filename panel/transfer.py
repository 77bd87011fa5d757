"""CSV import and export on the mailboxes page.

The export is a download of `services.imports.export_rows`. An import is checked and applied by
`workers.importer.run_import` (one transaction per domain) in a background thread, since
hashing thousands of plaintext passwords takes minutes; its page shows the progress and, at
the end, what changed. The job's progress and outcome live in the database
(`services.import_jobs`), so the page works whichever of several panel processes answers it.
A job is visible only to the panel user (acting as the same customer) who started it, and each
user runs one import at a time.
"""

from __future__ import annotations

import threading

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

from mailadmin.db import transaction
from mailadmin.errors import MailadminError
from mailadmin.imports.csvfile import read_csv, write_csv
from mailadmin.services import import_jobs
from mailadmin.services.imports import export_rows
from mailadmin.workers.importer import run_import, total_records

from . import db
from .auth import current_actor

bp = Blueprint("transfer", __name__)

#: Larger uploads are refused (about 50,000 rows with hashes); the app's MAX_CONTENT_LENGTH
#: (16 MiB) cuts anything far larger before it is read.
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
class ImportForm(FlaskForm):  # type: ignore[misc]
    csv_file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])
    dry_run = BooleanField("Only show what would change", default=False)


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
            dry_run = bool(form.dry_run.data)
            factory = current_app.extensions["mailadmin"].session_factory
            try:
                # committed at once, in a transaction of its own: the import's thread and the
                # status page (perhaps in another panel process) must find the job
                with transaction(factory) as session:
                    job_id = import_jobs.start_import_job(
                        session, actor, total_records(plans), dry_run).id
            except MailadminError as exc:
                flash(exc.message, "error")
                return redirect(url_for("transfer.import_csv"))

            def work() -> None:
                def progress(count: int) -> None:
                    with transaction(factory) as session:
                        import_jobs.advance_import_job(session, job_id, count)

                try:
                    report = run_import(factory, lambda _session: actor, plans,
                                        dry_run=dry_run, progress=progress)
                except Exception as exc:  # the page must end, whatever broke
                    current_app.logger.exception("CSV import failed")
                    with transaction(factory) as session:
                        import_jobs.finish_import_job(
                            session, job_id,
                            failure=f"The import stopped: {type(exc).__name__}.")
                    return
                with transaction(factory) as session:
                    import_jobs.finish_import_job(session, job_id, results=report.results)

            app = current_app._get_current_object()

            def run_in_app() -> None:
                with app.app_context():
                    work()

            threading.Thread(target=run_in_app, name=f"import-{job_id}", daemon=True).start()
            return redirect(url_for("transfer.import_status", job_id=job_id))
    status = 422 if form.errors else 200
    return render_template("mail/import.html", form=form,
                           max_mib=MAX_UPLOAD_BYTES // 1024 // 1024), status


@bp.route("/mailboxes/import/<int:job_id>")
@login_required  # type: ignore[misc]
def import_status(job_id: int) -> ResponseReturnValue:
    try:
        job = import_jobs.get_import_job(db.session(), current_actor(), job_id)
    except MailadminError:
        # another user's job is not found, never forbidden
        abort(404)
    return render_template("mail/import_status.html", job=job, job_id=job_id)
