"""The help centre: /help (topics and search), /help/<slug> (article and vote) and the editor
for the server admin and resellers (/help/manage). Every rule is in `mailadmin.services.help`.
"""

from __future__ import annotations

import secrets

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from mailadmin.errors import MailadminError, NotFound, PermissionDenied, RateLimited
from mailadmin.help.articles import slug_for_family
from mailadmin.models import AUDIENCES, Role, utcnow
from mailadmin.services import help as help_service

from . import db
from .auth import MailboxPrincipal, current_actor
from .forms import attach_error

bp = Blueprint("help", __name__, url_prefix="/help")

#: The anonymous browser's random id for "one vote per browser" (only its hash is stored).
VOTER_COOKIE = "mailadmin_help_voter"
VOTER_COOKIE_SECONDS = 2 * 365 * 24 * 3600
AUDIENCE_LABELS = {
    "public": "Everyone (also without signing in)",
    "mailbox": "Mailbox users",
    "customer": "Customers",
    "reseller": "Resellers",
}


@bp.app_template_global("help_for_family")
def help_for_family(family: str) -> str:
    """The URL of the article that explains a diagnosis family (for the diagnosis page)."""
    return url_for("help.article", slug=slug_for_family(family))


def reader() -> help_service.Reader:
    user = current_user._get_current_object()
    if not user.is_authenticated:
        return help_service.Reader.anonymous()
    if isinstance(user, MailboxPrincipal):
        return help_service.Reader.for_mailbox(user.mailbox_id)
    return help_service.Reader.for_actor(current_actor())


class SearchForm(FlaskForm):  # type: ignore[misc]
    class Meta:
        csrf = False  # a read-only search by GET

    q = StringField("Search the help", validators=[Optional(), Length(max=200)],
                    render_kw={"type": "search", "placeholder": "For example: outlook pop"})


@bp.route("/")
def index() -> ResponseReturnValue:
    form = SearchForm(request.args)
    query = (request.args.get("q") or "").strip()
    if query and form.validate():
        result = help_service.search_articles(db.session(), reader(), query)
        return render_template("help/search.html", form=form, result=result)
    topics = help_service.help_index(db.session(), reader())
    return render_template("help/index.html", form=form, topics=topics)


class VoteForm(FlaskForm):  # type: ignore[misc]
    """Only the CSRF token: the answer is the button pressed."""


@bp.route("/<slug>")
def article(slug: str) -> ResponseReturnValue:
    token = request.cookies.get(VOTER_COOKIE)
    try:
        view = help_service.read_article(
            db.session(), reader(), slug, mailbox_address=request.args.get("mailbox"),
            browser_token=token,
        )
    except NotFound:
        abort(404, description="There is no such help article. Search the help for "
                               "what you were looking for.")
    response = make_response(render_template(
        "help/article.html", article=view, form=VoteForm(), search=SearchForm(),
    ))
    if token is None and not current_user.is_authenticated:
        response.set_cookie(VOTER_COOKIE, secrets.token_urlsafe(24),
                            max_age=VOTER_COOKIE_SECONDS, httponly=True, samesite="Lax",
                            secure=request.is_secure)
    return response


@bp.route("/<slug>/vote", methods=["POST"])
def vote(slug: str) -> ResponseReturnValue:
    if not VoteForm().validate_on_submit():
        abort(400)
    answer = request.form.get("helpful")
    if answer not in ("yes", "no"):
        abort(400, description="Answer yes or no.")
    db.keep_changes_on_error()  # refused votes still count against the rate limit
    try:
        outcome = help_service.vote(
            db.session(), reader(), slug, answer == "yes",
            browser_token=request.cookies.get(VOTER_COOKIE),
            client_address=request.remote_addr or "unknown", now=utcnow(),
        )
    except NotFound:
        abort(404)
    except RateLimited as exc:
        return render_template("error.html", title="Too many votes", message=exc.message,
                               help_slug=None), 429
    except MailadminError as exc:
        flash(exc.message, "error")
        return redirect(url_for("help.article", slug=slug))
    if outcome.counted:
        flash("Thank you for your answer.", "success")
    else:
        flash("You have already answered for this article; your first answer counts.", "info")
    return redirect(url_for("help.article", slug=slug) + "#helpful")


# --- editing (server admin and resellers) ----------------------------------------------------


class ArticleForm(FlaskForm):  # type: ignore[misc]
    slug = StringField("Slug (the address: /help/<slug>)",
                       validators=[DataRequired(), Length(max=80)])
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    summary = StringField("Summary", validators=[Optional(), Length(max=500)])
    topic = StringField("Topic", validators=[Optional(), Length(max=64)], default="General")
    audience = SelectField("Who it is for",
                           choices=[SelectChoice(k, v) for k, v in AUDIENCE_LABELS.items()],
                           default="public")
    tags = StringField("Search words", validators=[Optional(), Length(max=500)])
    related = StringField("Related articles (slugs)", validators=[Optional(), Length(max=1000)])
    body = TextAreaField("Text (Markdown)", validators=[DataRequired(), Length(max=100_000)],
                         render_kw={"rows": 18, "spellcheck": "true"})
    hidden = BooleanField("Hidden (nobody reads it until shown)")


def _audiences_for_editor() -> list[SelectChoice]:
    user = current_user._get_current_object()
    allowed = (AUDIENCES if getattr(user, "role", None) == Role.ADMIN.value
               else help_service.RESELLER_AUDIENCES)
    return [SelectChoice(key, AUDIENCE_LABELS[key]) for key in AUDIENCES if key in allowed]


def _input(form: ArticleForm) -> help_service.ArticleInput:
    return help_service.ArticleInput(
        slug=form.slug.data or "", title=form.title.data or "", summary=form.summary.data or "",
        topic=form.topic.data or "", audience=form.audience.data or "",
        tags=form.tags.data or "", related=form.related.data or "", body=form.body.data or "",
        hidden=bool(form.hidden.data),
    )


@bp.route("/manage")
@login_required  # type: ignore[misc]
def manage() -> ResponseReturnValue:
    try:
        articles = help_service.editable_articles(db.session(), current_actor())
    except PermissionDenied as exc:
        abort(403, description=exc.message)
    return render_template("help/manage.html", articles=articles, form=VoteForm())


@bp.route("/manage/new", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def new_article() -> ResponseReturnValue:
    form = ArticleForm()
    form.audience.choices = _audiences_for_editor()
    preview = None
    if form.validate_on_submit():
        try:
            if "preview" in request.form:
                preview = help_service.preview_article(db.session(), current_actor(),
                                                       form.body.data or "")
            else:
                saved = help_service.create_article(db.session(), current_actor(), _input(form))
                flash(f"Article {saved.slug!r} saved.", "success")
                return redirect(url_for("help.edit_article", article_id=saved.id))
        except PermissionDenied as exc:
            abort(403, description=exc.message)
        except MailadminError as exc:
            db.discard_changes()
            attach_error(form, exc)
            return render_template("help/edit.html", form=form, article=None,
                                   preview=None), 422
    elif request.method == "POST":
        return render_template("help/edit.html", form=form, article=None, preview=None), 422
    return render_template("help/edit.html", form=form, article=None, preview=preview)


@bp.route("/manage/<int:article_id>", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def edit_article(article_id: int) -> ResponseReturnValue:
    form = ArticleForm()
    form.audience.choices = _audiences_for_editor()
    preview = None
    try:
        if request.method == "GET":
            existing = help_service.article_for_editing(db.session(), current_actor(),
                                                        article_id)
            form.process(data=existing.as_input().__dict__)
            form.audience.choices = _audiences_for_editor()
            return render_template("help/edit.html", form=form, article=existing,
                                   preview=None)
        if not form.validate_on_submit():
            existing = help_service.article_for_editing(db.session(), current_actor(),
                                                        article_id)
            return render_template("help/edit.html", form=form, article=existing,
                                   preview=None), 422
        if "preview" in request.form:
            preview = help_service.preview_article(db.session(), current_actor(),
                                                   form.body.data or "")
            existing = help_service.article_for_editing(db.session(), current_actor(),
                                                        article_id)
            return render_template("help/edit.html", form=form, article=existing,
                                   preview=preview)
        saved = help_service.update_article(db.session(), current_actor(), article_id,
                                            _input(form))
    except NotFound:
        abort(404)
    except PermissionDenied as exc:
        abort(403, description=exc.message)
    except MailadminError as exc:
        db.discard_changes()
        attach_error(form, exc)
        existing = help_service.article_for_editing(db.session(), current_actor(), article_id)
        return render_template("help/edit.html", form=form, article=existing,
                               preview=None), 422
    flash(f"Article {saved.slug!r} saved.", "success")
    return redirect(url_for("help.edit_article", article_id=saved.id))


_ACTIONS = {
    "hide": ("Hidden: nobody reads it until you show it again.",
             lambda s, a, i: help_service.set_article_hidden(s, a, i, True)),
    "show": ("Shown again.", lambda s, a, i: help_service.set_article_hidden(s, a, i, False)),
    "use-shipped": ("The shipped version replaced your local changes.",
                    help_service.use_shipped_version),
    "keep-local": ("Your version stays; the newer shipped version is set aside.",
                   help_service.keep_local_version),
}


@bp.route("/manage/<int:article_id>/<any(hide, show, 'use-shipped', 'keep-local'):action>",
          methods=["POST"])
@login_required  # type: ignore[misc]
def article_action(article_id: int, action: str) -> ResponseReturnValue:
    if not VoteForm().validate_on_submit():
        abort(400)
    message, run = _ACTIONS[action]
    try:
        run(db.session(), current_actor(), article_id)
    except NotFound:
        abort(404)
    except PermissionDenied as exc:
        abort(403, description=exc.message)
    except MailadminError as exc:
        flash(exc.message, "error")
        return redirect(url_for("help.edit_article", article_id=article_id))
    flash(message, "success")
    return redirect(url_for("help.edit_article", article_id=article_id))
