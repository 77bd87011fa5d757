"""Diagnose a problem: paste or upload a bounce or an error, learn what to change."""

from __future__ import annotations

import re
import typing as t
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField
from werkzeug.datastructures import FileStorage
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from mailadmin.diagnostics import CLIENTS
from mailadmin.diagnostics.account import (
    AccountCheck,
    AccountReport,
    Principal,
    check_account,
)
from mailadmin.diagnostics.live import LiveReport, run_live_test
from mailadmin.diagnostics.maillog import LogSearch, parse_since, search_log
from mailadmin.diagnostics.parse import MAX_INPUT
from mailadmin.diagnostics.present import CLIENT_LABELS, Presented, diagnose
from mailadmin.errors import NotFound, RateLimited
from mailadmin.names import domain_of
from mailadmin.services import domains, server

from . import db
from .auth import MailboxPrincipal, current_actor

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
    address = StringField(
        "Your mailbox or the address it is about (optional)",
        validators=[Optional(), Length(max=320)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )


# --------------------------------------------------------------------------- in context
# How the classifier's findings are put to a customer: where the message failed, who it was
# for, and an account box about the addresses hosted here only. The classifier itself
# (mailadmin.diagnostics) is not changed; these read its fields.

_FINAL_RECIPIENT = re.compile(
    r"(?im)^\s*(?:final|original)-recipient\s*:[^;\n]*;\s*<?([^>\s]+@[^>\s]+?)>?\s*$"
)
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)
_STAGE_WORDS = {"CONN": "when our server connected", "MAIL": "at the sender address",
                "RCPT": "at the recipient address", "DATA": "after receiving the message"}
#: Advice when a remote server refused what ours had accepted: nothing in the sender's mail
#: program or in this panel changes that.
REMOTE_FIX = (
    "Check the recipient's address for typing mistakes. If it is right, the recipient's mail "
    "provider has to act: tell the recipient another way (phone, another address) that their "
    "server refuses your mail, and pass on the reply quoted below; their provider can see why."
)


@dataclass(frozen=True)
class InContext:
    """One finding as the page shows it."""

    result: Presented
    #: The recipient the bounce names (the classifier's, else the report's or the line's).
    recipient: str | None
    #: A remote server refused a message our server had accepted: advice about that side.
    remote_refused: bool
    where: str | None
    fix: str
    show_client_advice: bool


def named_recipient(result: Presented, text: str) -> str | None:
    """The recipient a bounce names: the finding's own, else a Final-Recipient field, else the
    first address in the decisive line."""
    if result.finding.recipient:
        return result.finding.recipient
    match = _FINAL_RECIPIENT.search(text)
    if match:
        return match.group(1)
    found = _ADDRESS.search(result.finding.line or "")
    return found.group(0) if found else None


def in_context(results: Sequence[Presented], text: str, own_hosts: set[str]) -> list[InContext]:
    out = []
    for r in results:
        host = (r.finding.remote_host or "").strip().lower().rstrip(".")
        remote = bool(host) and host not in own_hosts and not host.startswith(
            ("127.", "localhost", "[127.", "::1"))
        where = None
        if remote:
            stage = _STAGE_WORDS.get(r.finding.stage, "")
            where = (f"Our server accepted the message and passed it on; the receiving server "
                     f"{host} refused it{' ' + stage if stage else ''}.")
        fix = REMOTE_FIX if remote and r.family.client_side else r.family.fix
        out.append(InContext(r, named_recipient(r, text), remote, where, fix,
                             show_client_advice=not remote))
    return out


@dataclass(frozen=True)
class AccountBox:
    """The account report put to a customer: only addresses hosted here are checked."""

    address: str | None
    summary: str
    checks: tuple[AccountCheck, ...]
    account_caused: tuple[AccountCheck, ...]
    elsewhere: tuple[str, ...]


def account_box(report: AccountReport, is_hosted: Callable[[str], bool]) -> AccountBox:
    """`report` without its checks of addresses whose domain is not hosted on this server:
    those are said in one sentence ("the recipient is at gmail.com, not hosted here")."""
    elsewhere: list[str] = []
    kept: list[AccountCheck] = []
    for check in report.checks:
        domain = domain_of(check.address) if check.address else ""
        if check.cause in {"not_in_your_account", "domain_not_hosted"} and domain and \
                not is_hosted(domain):
            if domain not in elsewhere:
                elsewhere.append(domain)
            continue
        kept.append(check)
    if elsewhere and not any(c.cause not in {"account_fine"} for c in kept):
        places = ", ".join(elsewhere)
        summary = (f"The recipient is at {places}, not hosted here: nothing to check on your "
                   "side." if len(elsewhere) == 1 else
                   f"The recipients are at {places}, not hosted here: nothing to check on "
                   "your side.")
        kept = []
    else:
        summary = report.summary if not elsewhere else AccountReport(
            report.address, tuple(kept)).summary
    return AccountBox(report.address, summary, tuple(kept),
                      tuple(c for c in kept if c.account_caused), tuple(elsewhere))


def principal() -> Principal:
    """The signed-in panel user's Actor, or the mailbox user's own principal."""
    user = current_user._get_current_object()
    if isinstance(user, MailboxPrincipal):
        return user.as_mailbox_user()
    return current_actor()


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
    address = (form.address.data or "").strip() or None
    if address is None and isinstance(current_user._get_current_object(), MailboxPrincipal):
        address = current_user.address
    account: AccountBox | None = None
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    if results:
        report = check_account(db.session(), principal(), [r.finding for r in results],
                               address=address)
        account = account_box(report, lambda name: domains.is_hosted(db.session(), name))
    return render_template(
        "diagnostics/index.html",
        form=form,
        results=in_context(results, text, server.own_host_names(db.session())),
        account=account,
        show_labels=not isinstance(current_user._get_current_object(), MailboxPrincipal)
        and current_user.role == "admin",
        note=note,
        empty=not (data.strip() if isinstance(data, str) else data.strip(b" \t\r\n\0")),
        client_labels=CLIENT_LABELS,
    )


class LoginTestForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField(
        "Mailbox password", validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "off"},
    )


@bp.route("/login-test/<address>", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def login_test(address: str) -> ResponseReturnValue:
    """Log in as the mailbox over SMTP, IMAP and POP3 now, step by step. The password is used
    for the test only: the form field is never filled back in, stored or logged."""
    form = LoginTestForm()
    who = principal()
    try:
        from mailadmin.diagnostics.account import mailbox_in_scope

        mailbox_in_scope(db.session(), who, address)
    except NotFound:
        abort(404)
    report: LiveReport | None = None
    error: str | None = None
    status = 200
    if form.validate_on_submit():
        db.keep_changes_on_error()  # the rate-limit counter counts refused tests too
        try:
            report = run_live_test(db.session(), who, address, form.password.data)
        except RateLimited as exc:
            error = exc.message
            status = 429
        form.password.data = ""
    elif request.method == "POST":
        status = 422
    return render_template("diagnostics/login_test.html", form=form, address=address,
                           report=report, error=error), status


class LogForm(FlaskForm):  # type: ignore[misc]
    class Meta:
        csrf = False  # a read-only search by GET

    q = StringField("Address or queue id", validators=[Optional(), Length(max=320)])
    since = StringField("Within", validators=[Optional(), Length(max=16)], default="24h")


@bp.route("/log")
@login_required  # type: ignore[misc]
def mail_log() -> ResponseReturnValue:
    """The mail log for an address or a queue id: one story per message."""
    form = LogForm(request.args)
    result: LogSearch | None = None
    error: str | None = None
    query = (form.q.data or "").strip()
    if query and form.validate():
        try:
            since = parse_since(form.since.data)
        except ValueError as exc:
            error = str(exc)
        else:
            result = search_log(db.session(), principal(), query, since=since)
    return render_template("diagnostics/log.html", form=form, result=result, error=error)
