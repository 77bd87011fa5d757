"""Diagnose a problem: paste or upload a bounce or an error, learn what to change."""

from __future__ import annotations

import typing as t

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField
from werkzeug.datastructures import FileStorage
from wtforms import SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from mailadmin.diagnostics import CLIENTS
from mailadmin.diagnostics.parse import MAX_INPUT
from mailadmin.diagnostics.present import CLIENT_LABELS, diagnose

bp = Blueprint("diagnostics", __name__, url_prefix="/diagnose")

#: Characters accepted in the paste box (the browser enforces it with maxlength too).
MAX_PASTE = 2_000_000
#: Bytes read from an upload; the classifier looks at no more than MAX_INPUT anyway, and the
#: decisive part of a bounce is at its top (below it is usually the returned original).
MAX_UPLOAD_READ = MAX_INPUT
#: Form bytes allowed for this blueprint (the paste box holds up to MAX_PASTE characters of
#: UTF-8). The app-wide MAX_CONTENT_LENGTH still caps the whole request.
MAX_FORM_MEMORY = 4 * MAX_PASTE + 64 * 1024


@bp.url_value_preprocessor
def _allow_large_paste(endpoint: str | None, values: dict[str, t.Any] | None) -> None:
    # URL value preprocessors run before every before_request function, including the CSRF
    # check that reads the form, so the larger limit is in place when the form is parsed.
    request.max_form_memory_size = MAX_FORM_MEMORY


class DiagnoseForm(FlaskForm):  # type: ignore[misc]
    text = TextAreaField(
        "Paste the bounce or the error message",
        validators=[Optional()],
        render_kw={"rows": 12, "maxlength": MAX_PASTE, "spellcheck": "false"},
    )
    upload = FileField(
        "… or upload the bounce as a file",
        validators=[FileAllowed(["eml", "txt"], "Upload an .eml or a .txt file.")],
        render_kw={"accept": ".eml,.txt,message/rfc822,text/plain"},
    )
    client = SelectField(
        "Mail program",
        choices=[SelectChoice("", "I don't know / not a mail program"),
                 *(SelectChoice(key, CLIENT_LABELS[key]) for key in CLIENTS)],
        default="",
        validators=[Optional()],
    )


def _input(form: DiagnoseForm) -> tuple[bytes | str, str | None]:
    """The text to diagnose and a note about what was read."""
    upload = form.upload.data
    if isinstance(upload, FileStorage) and upload.filename:
        data = upload.stream.read(MAX_UPLOAD_READ + 1)
        if len(data) > MAX_UPLOAD_READ:
            return data[:MAX_UPLOAD_READ], (
                f"Only the first {MAX_UPLOAD_READ // 1_000_000} MB of the file was read; "
                "the reason for a bounce is at its top."
            )
        return data, None
    text = form.text.data or ""
    if len(text) > MAX_PASTE:
        return text[:MAX_PASTE], "Only the first 2 MB of the pasted text was read."
    return text, None


@bp.route("/", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def index() -> ResponseReturnValue:
    form = DiagnoseForm()
    if request.method == "GET":
        return render_template("diagnostics/index.html", form=form, results=None, note=None)
    if not form.validate_on_submit():
        return render_template("diagnostics/index.html", form=form, results=None, note=None), 422
    data, note = _input(form)
    results = diagnose(data, form.client.data or None)
    return render_template(
        "diagnostics/index.html",
        form=form,
        results=results,
        note=note,
        empty=not (data.strip() if isinstance(data, str) else data.strip(b" \t\r\n\0")),
        client_labels=CLIENT_LABELS,
    )
