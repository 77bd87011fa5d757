"""GET /api/v1/help and /api/v1/help/<slug>: the help centre for the token's owner."""

from __future__ import annotations

from flask import url_for
from pydantic import Field

from mailadmin.services import help as help_service

from .. import db
from .blueprint import bp
from .routing import current_api_actor, operation
from .schemas import LineText, Output, Query


class HelpQuery(Query):
    q: LineText | None = Field(None, max_length=200,
                               description="Words to search for; without it, every article.")


class HelpEntryOut(Output):
    slug: str
    title: str
    summary: str
    topic: str | None = Field(description="The article's topic (listing only).")
    url: str = Field(description="The article's page in the panel.")
    score: float | None = Field(description="Relevance from the database's full-text search "
                                            "(search only; higher is better).")
    snippet: str | None = Field(description="HTML: a piece of the text with the matching "
                                            "words in <mark> (search only).")


class HelpListOut(Output):
    query: str | None
    articles: list[HelpEntryOut] = Field(description="Best match first when searching; by "
                                                     "topic and title otherwise.")


class HelpLinkOut(Output):
    slug: str
    title: str
    url: str


class HelpArticleOut(Output):
    slug: str
    title: str
    summary: str
    topic: str
    audience: str
    url: str
    html: str = Field(description="The article as sanitised HTML, placeholders filled in.")
    markdown: str = Field(description="The article's source text.")
    related: list[HelpLinkOut]
    families: list[str] = Field(description="Diagnosis families the article explains.")
    helpful_count: int = Field(description="Readers who answered that it helped.")


def _url(slug: str) -> str:
    return url_for("help.article", slug=slug, _external=True)


@operation(bp, "/help", "GET", summary="List or search the help articles", tag="help",
           query=HelpQuery, response=HelpListOut)
def help_search(query: HelpQuery) -> HelpListOut:
    """Without `q`, every article the token's owner may read; with `q`, the articles that
    match, best first, ranked by the database's full-text search."""
    reader = help_service.Reader.for_actor(current_api_actor())
    words = (query.q or "").strip()
    if words:
        result = help_service.search_articles(db.session(), reader, words)
        return HelpListOut(query=result.query, articles=[
            HelpEntryOut(slug=h.slug, title=h.title, summary=h.summary, topic=None,
                         url=_url(h.slug), score=h.score, snippet=str(h.snippet_html))
            for h in result.hits
        ])
    topics = help_service.help_index(db.session(), reader)
    return HelpListOut(query=None, articles=[
        HelpEntryOut(slug=a.slug, title=a.title, summary=a.summary, topic=a.topic,
                     url=_url(a.slug), score=None, snippet=None)
        for topic in topics for a in topic.articles
    ])


@operation(bp, "/help/<slug>", "GET", summary="Read a help article", tag="help",
           response=HelpArticleOut)
def help_article(slug: str) -> HelpArticleOut:
    """One article, its placeholders filled from the server settings. An article the token's
    owner may not read is 404, like one that does not exist."""
    view = help_service.read_article(db.session(), help_service.Reader.for_actor(
        current_api_actor()), slug)
    return HelpArticleOut(
        slug=view.slug, title=view.title, summary=view.summary, topic=view.topic,
        audience=view.audience, url=_url(view.slug), html=str(view.html), markdown=view.body,
        related=[HelpLinkOut(slug=r.slug, title=r.title, url=_url(r.slug))
                 for r in view.related],
        families=list(view.families), helpful_count=view.helpful_count,
    )
