"""The help centre: who reads which article, search, "was this helpful?" votes, editing.

Articles come from two places: the ones shipped in `mailadmin/help/articles` (copied into the
database by `sync_shipped_articles`, which every reading function runs first, so an upgrade
brings new text in without a manual step) and the ones written here by the server admin or by
a reseller for its own customers. The database holds them all because the search is the
database's own full-text search: FTS5 on SQLite, tsvector on PostgreSQL, FULLTEXT on MariaDB.

Who sees what:

| reader           | audiences                          | owners                          |
|------------------|------------------------------------|---------------------------------|
| anyone           | public                             | the server's                    |
| mailbox user     | public, mailbox                    | the server's + its reseller's   |
| customer         | public, mailbox, customer          | the server's + its reseller's   |
| reseller         | public, mailbox, customer, reseller| the server's + its own          |
| server admin     | all                                | the server's                    |

A hidden article is shown to nobody but the people who may edit it (on the editing pages).
An article out of reach is "not found", never "forbidden".
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup
from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import Conflict, NotFound, PermissionDenied, RateLimited, ValidationError
from ..help import search_index
from ..help.articles import SLUG_PATTERN, ShippedArticle, shipped_articles
from ..help.render import (
    escape_markdown,
    fill_placeholders,
    highlight,
    plain_text,
    query_words,
    render_markdown,
    snippet,
)
from ..models import AUDIENCES, Domain, HelpArticle, HelpVote, Mailbox, PanelUser, Role, utcnow
from ..names import address_to_unicode, normalize_address, split_loosely
from ..sizes import format_size
from . import throttle
from .audit import record_event
from .context import Actor
from .server import get_server_settings

#: Topics in the order /help lists them; topics not named here follow, alphabetically.
TOPIC_ORDER = (
    "Getting started",
    "Setting up a mail program",
    "Sending problems",
    "Receiving problems",
    "Signing in",
    "Your mailbox",
    "Reading a diagnosis",
)

#: Audiences each kind of reader sees.
_AUDIENCES_FOR: dict[str, tuple[str, ...]] = {
    "anonymous": ("public",),
    "mailbox": ("public", "mailbox"),
    "customer": ("public", "mailbox", "customer"),
    "reseller": ("public", "mailbox", "customer", "reseller"),
    "admin": AUDIENCES,
}
#: What a reseller may write for: its customers and their mailbox users.
RESELLER_AUDIENCES = ("customer", "mailbox")

MAX_TITLE = 200
MAX_SUMMARY = 500
MAX_TAGS = 500
MAX_RELATED = 1000
MAX_TOPIC = 64
MAX_BODY = 100_000
MAX_QUERY = 200
MAX_RESULTS = 50

#: Votes from one network address before a pause: plenty for a person reading, too few to
#: stuff the count from one place.
VOTE_POLICY = throttle.ThrottlePolicy(
    max_failures_per_account=1,
    max_failures_per_address=30,
    window=dt.timedelta(minutes=10),
    lock=dt.timedelta(minutes=10),
)
_VOTE_KEY_PREFIX = "helpvote "


# --- readers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """Who is reading: decides the articles in reach, the placeholders and the voter key."""

    kind: str  # anonymous, mailbox, customer, reseller or admin
    user_id: int | None = None
    customer_id: int | None = None
    mailbox_id: int | None = None

    @classmethod
    def anonymous(cls) -> Reader:
        return cls("anonymous")

    @classmethod
    def for_mailbox(cls, mailbox_id: int) -> Reader:
        return cls("mailbox", mailbox_id=mailbox_id)

    @classmethod
    def for_actor(cls, actor: Actor) -> Reader:
        """A panel user, an API token's owner or the CLI (the operator reads as the admin);
        a reseller or admin acting as a customer reads as that customer."""
        if actor.role is Role.CUSTOMER:
            return cls("customer", user_id=actor.user_id, customer_id=actor.customer_id)
        if actor.role is Role.RESELLER:
            return cls("reseller", user_id=actor.user_id)
        return cls("admin", user_id=actor.user_id)

    @property
    def voter(self) -> str | None:
        """The key one vote per article is counted under; None: use the browser's."""
        if self.kind == "mailbox":
            return f"mailbox:{self.mailbox_id}"
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return None


def _reseller_of(session: Session, reader: Reader) -> int | None:
    """The reseller whose own articles this reader sees."""
    if reader.kind == "reseller":
        return reader.user_id
    customer_id = reader.customer_id
    if reader.kind == "mailbox" and reader.mailbox_id is not None:
        customer_id = session.scalar(
            select(Domain.owner_id).join(Mailbox, Mailbox.domain_id == Domain.id)
            .where(Mailbox.id == reader.mailbox_id)
        )
    if customer_id is None:
        return None
    return session.scalar(select(PanelUser.parent_id).where(PanelUser.id == customer_id))


def _in_reach(session: Session, reader: Reader) -> ColumnElement[bool]:
    """The articles this reader may read (hidden ones excluded)."""
    reseller_id = _reseller_of(session, reader)
    owner = (HelpArticle.owner_id.is_(None) if reseller_id is None
             else or_(HelpArticle.owner_id.is_(None), HelpArticle.owner_id == reseller_id))
    return and_(
        HelpArticle.hidden.is_(False),
        HelpArticle.audience.in_(_AUDIENCES_FOR[reader.kind]),
        owner,
    )


# --- shipped articles ------------------------------------------------------------------------


def _set_search_text(article: HelpArticle) -> None:
    article.search_head = " ".join(
        (article.title, article.summary, article.tags, article.slug.replace("-", " "))
    ).lower()
    article.search_body = plain_text(article.body).lower()


def _index(session: Session, article: HelpArticle) -> None:
    """Keep the SQLite FTS5 table in step (the other backends index the columns themselves)."""
    _set_search_text(article)
    session.flush()
    if session.get_bind().dialect.name == "sqlite":
        table = search_index.SQLITE_TABLE
        session.execute(text(f"DELETE FROM {table} WHERE rowid = :id"), {"id": article.id})  # noqa: S608
        session.execute(
            text(f"INSERT INTO {table} (rowid, head, body) VALUES (:id, :head, :body)"),  # noqa: S608
            {"id": article.id, "head": article.search_head, "body": article.search_body},
        )


def _copy_shipped(article: HelpArticle, shipped: ShippedArticle) -> None:
    article.title = shipped.title
    article.summary = shipped.summary
    article.topic = shipped.topic
    article.audience = shipped.audience
    article.tags = " ".join(shipped.tags)
    article.related = " ".join(shipped.related)
    article.families = " ".join(shipped.families)
    article.body = shipped.body
    article.shipped_hash = shipped.content_hash


def sync_shipped_articles(session: Session) -> int:
    """Bring the shipped articles into the database; returns how many rows changed.

    A new shipped article is added; a shipped article nobody edited here takes the new text;
    one edited here keeps the local text (its page then says a newer shipped version exists);
    a slug an article written here already uses is left to that article. Cheap when nothing
    changed: one query.
    """
    shipped = shipped_articles()
    rows = session.execute(
        select(HelpArticle.slug, HelpArticle.origin, HelpArticle.shipped_hash,
               HelpArticle.locally_edited).where(HelpArticle.slug.in_(list(shipped)))
    ).all()
    known = {row.slug: row for row in rows}
    stale = [
        article for slug, article in shipped.items()
        if slug not in known
        or (known[slug].origin == "shipped" and not known[slug].locally_edited
            and known[slug].shipped_hash != article.content_hash)
    ]
    if not stale:
        return 0
    changed = 0
    # A savepoint: another panel process may be bringing the same articles in right now.
    try:
        with session.begin_nested():
            for article in stale:
                row = session.scalars(
                    select(HelpArticle).where(HelpArticle.slug == article.slug)
                ).one_or_none()
                if row is None:
                    row = HelpArticle(slug=article.slug, origin="shipped", owner_id=None,
                                      hidden=False, locally_edited=False)
                    session.add(row)
                _copy_shipped(row, article)
                row.updated_at = utcnow()
                row.updated_by = "mailadmin"
                _index(session, row)
                changed += 1
    except IntegrityError:
        return 0
    return changed


def _newer_shipped(article: HelpArticle) -> bool:
    if article.origin != "shipped" or not article.locally_edited:
        return False
    shipped = shipped_articles().get(article.slug)
    return shipped is not None and shipped.content_hash != article.shipped_hash


# --- placeholders ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MailboxFacts:
    """What an article may say about the reader's mailbox."""

    address: str
    imap: bool
    pop3: bool
    smtp: bool
    quota: int
    usage_bytes: int | None


def _mailbox_facts(mailbox: Mailbox) -> MailboxFacts:
    return MailboxFacts(address=mailbox.address, imap=mailbox.imap, pop3=mailbox.pop3,
                        smtp=mailbox.smtp, quota=mailbox.quota, usage_bytes=mailbox.usage_bytes)


def _mailbox_for(session: Session, reader: Reader, address: str | None) -> MailboxFacts | None:
    """The reader's own mailbox, or the mailbox a panel user named and may manage."""
    if reader.kind == "mailbox" and reader.mailbox_id is not None:
        own = session.get(Mailbox, reader.mailbox_id)
        return _mailbox_facts(own) if own is not None else None
    if not address or reader.kind == "anonymous":
        return None
    try:
        ascii_address = normalize_address(address)
    except ValidationError:
        return None
    local, domain_name = split_loosely(ascii_address)
    query = (select(Mailbox).join(Domain, Mailbox.domain_id == Domain.id)
             .where(Mailbox.local_part == local, Domain.name == domain_name))
    if reader.kind == "customer":
        query = query.where(Domain.owner_id == reader.customer_id)
    elif reader.kind == "reseller":
        query = query.where(Domain.owner_id.in_(
            select(PanelUser.id).where(PanelUser.parent_id == reader.user_id)))
    found = session.scalars(query).one_or_none()
    return _mailbox_facts(found) if found is not None else None


def _protocol_sentence(facts: MailboxFacts | None) -> str:
    if facts is None:
        return ("*Sign in with your mail address (or open this page from a mailbox in the "
                "panel) to see which of these your own mailbox may use.*")
    who = escape_markdown(address_to_unicode(facts.address))
    parts = [f"**Your mailbox {who}:**"]
    parts.append("IMAP is on." if facts.imap else
                 "IMAP is off for this mailbox; ask your host to turn it on or use POP3.")
    parts.append("POP3 is on." if facts.pop3 else
                 "POP3 is off for this mailbox; ask your host or use IMAP.")
    parts.append("Sending through our server (SMTP) is on." if facts.smtp else
                 "Sending through our server (SMTP) is off for this mailbox; ask your host.")
    if not (facts.imap or facts.pop3):
        parts.append("With both IMAP and POP3 off, only webmail can read this mailbox.")
    return " ".join(parts)


def _quota_sentence(facts: MailboxFacts | None) -> str:
    if facts is None:
        return ("*Sign in with your mail address to see your own mailbox's limit and use "
                "here.*")
    who = escape_markdown(address_to_unicode(facts.address))
    limit = f"may hold {format_size(facts.quota)}" if facts.quota else "has no size limit"
    if facts.usage_bytes is None:
        use = "its use has not been read from the mail server yet"
    else:
        used = format_size(facts.usage_bytes) if facts.usage_bytes else "0 B"
        use = f"it uses {used}"
        if facts.quota:
            use += f" ({min(100, round(100 * facts.usage_bytes / facts.quota))}%)"
    return f"**Your mailbox {who}** {limit}; {use}."


def placeholder_values(session: Session, facts: MailboxFacts | None) -> dict[str, str]:
    """Every `{{ name }}` an article may use, as Markdown."""
    settings = get_server_settings(session)
    webmail_url = settings.webmail_url or ""
    values = {
        "mail_hostname": settings.mail_hostname,
        "imap_host": settings.imap_host,
        "imap_port": str(settings.imap_port),
        "imap_starttls_port": str(settings.imap_starttls_port),
        "pop3_host": settings.pop3_host,
        "pop3_port": str(settings.pop3_port),
        "pop3_starttls_port": str(settings.pop3_starttls_port),
        "smtp_host": settings.smtp_host,
        "submission_port": str(settings.submission_port),
        "smtps_port": str(settings.smtps_port),
        "message_size_limit": format_size(settings.message_size_limit),
    }
    out = {name: escape_markdown(value) for name, value in values.items()}
    if webmail_url:
        out["webmail"] = f"[{escape_markdown(webmail_url)}](<{webmail_url.replace('>', '%3E')}>)"
    else:
        out["webmail"] = "the webmail address your host gave you"
    out["your_address"] = (escape_markdown(address_to_unicode(facts.address)) if facts
                           else "your full mail address")
    out["your_protocols"] = _protocol_sentence(facts)
    out["your_quota"] = _quota_sentence(facts)
    return out


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleLink:
    slug: str
    title: str
    summary: str
    topic: str

    def as_dict(self) -> dict[str, str]:
        return {"slug": self.slug, "title": self.title, "summary": self.summary,
                "topic": self.topic}


def _link(article: HelpArticle) -> ArticleLink:
    return ArticleLink(article.slug, article.title, article.summary, article.topic)


@dataclass(frozen=True)
class Topic:
    name: str
    articles: tuple[ArticleLink, ...]


def _topic_key(name: str) -> tuple[int, str]:
    return (TOPIC_ORDER.index(name) if name in TOPIC_ORDER else len(TOPIC_ORDER), name)


def help_index(session: Session, reader: Reader) -> list[Topic]:
    """Every article the reader may read, grouped by topic."""
    sync_shipped_articles(session)
    articles = session.scalars(
        select(HelpArticle).where(_in_reach(session, reader)).order_by(HelpArticle.title)
    ).all()
    topics: dict[str, list[ArticleLink]] = {}
    for article in articles:
        topics.setdefault(article.topic, []).append(_link(article))
    return [Topic(name, tuple(topics[name])) for name in sorted(topics, key=_topic_key)]


@dataclass(frozen=True)
class ArticleView:
    id: int
    slug: str
    title: str
    summary: str
    topic: str
    audience: str
    html: Markup
    body: str
    #: The Markdown with the placeholders filled in (for the command line).
    text: str
    related: tuple[ArticleLink, ...]
    families: tuple[str, ...]
    helpful_count: int
    #: This reader's vote: True (yes), False (no), None (not voted yet).
    my_vote: bool | None
    #: Whose mailbox the placeholders describe, if any.
    mailbox: str | None
    shipped: bool
    locally_edited: bool
    newer_shipped: bool
    updated_at: dt.datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "slug": self.slug, "title": self.title, "summary": self.summary,
            "topic": self.topic, "audience": self.audience, "html": str(self.html),
            "markdown": self.body,
            "related": [link.as_dict() for link in self.related],
            "families": list(self.families), "helpful_count": self.helpful_count,
            "mailbox": self.mailbox,
        }


def browser_voter(token: str | None) -> str | None:
    """The voter key of an anonymous browser: a hash of its random cookie."""
    if not token:
        return None
    return "browser:" + hashlib.sha256(token.encode()).hexdigest()


def _helpful_count(session: Session, article_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(HelpVote)
        .where(HelpVote.article_id == article_id, HelpVote.helpful.is_(True))
    ) or 0


def _find(session: Session, reader: Reader, slug: str) -> HelpArticle:
    article = session.scalars(
        select(HelpArticle).where(HelpArticle.slug == slug, _in_reach(session, reader))
    ).one_or_none()
    if article is None:
        raise NotFound(f"There is no help article {slug!r}.", field="slug")
    return article


def read_article(
    session: Session, reader: Reader, slug: str, *, mailbox_address: str | None = None,
    browser_token: str | None = None,
) -> ArticleView:
    """One article, its placeholders filled for the reader (and, for a panel user, the
    mailbox named by `mailbox_address` when it is theirs). Raises NotFound."""
    sync_shipped_articles(session)
    article = _find(session, reader, slug)
    facts = _mailbox_for(session, reader, mailbox_address)
    related_slugs = [s for s in article.related.split() if s != article.slug]
    related: list[ArticleLink] = []
    if related_slugs:
        found = {a.slug: a for a in session.scalars(
            select(HelpArticle).where(HelpArticle.slug.in_(related_slugs),
                                      _in_reach(session, reader)))}
        related = [_link(found[s]) for s in related_slugs if s in found]
    voter = reader.voter or browser_voter(browser_token)
    my_vote = None
    if voter is not None:
        my_vote = session.scalar(select(HelpVote.helpful).where(
            HelpVote.article_id == article.id, HelpVote.voter == voter))
    values = placeholder_values(session, facts)
    return ArticleView(
        id=article.id, slug=article.slug, title=article.title, summary=article.summary,
        topic=article.topic, audience=article.audience,
        html=render_markdown(article.body, values), body=article.body,
        text=fill_placeholders(article.body, values), related=tuple(related),
        families=tuple(article.families.split()),
        helpful_count=_helpful_count(session, article.id), my_vote=my_vote,
        mailbox=address_to_unicode(facts.address) if facts else None,
        shipped=article.origin == "shipped", locally_edited=article.locally_edited,
        newer_shipped=_newer_shipped(article), updated_at=article.updated_at,
    )


# --- search ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchHit:
    slug: str
    title: str
    summary: str
    score: float
    title_html: Markup
    summary_html: Markup
    snippet_html: Markup

    def as_dict(self) -> dict[str, object]:
        return {"slug": self.slug, "title": self.title, "summary": self.summary,
                "score": round(self.score, 6), "snippet": str(self.snippet_html)}


@dataclass(frozen=True)
class SearchResult:
    query: str
    words: tuple[str, ...]
    hits: tuple[SearchHit, ...] = field(default_factory=tuple)


def _scores(session: Session, words: Sequence[str], *, prefix: bool = False
            ) -> dict[int, float]:
    """Article id -> relevance (higher is better) from the backend's full-text search; with
    `prefix`, each word also matches the words it starts ("thunderb" finds "thunderbird")."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        table = search_index.SQLITE_TABLE
        match = " OR ".join(f'"{w}"' + ("*" if prefix else "") for w in words)
        rows = session.execute(text(
            f"SELECT rowid, bm25({table}, 10.0, 1.0) AS rank FROM {table} "  # noqa: S608
            f"WHERE {table} MATCH :match ORDER BY rank LIMIT 500"), {"match": match})
        # bm25 is lower-is-better (negative); flip it so every backend sorts the same way.
        return {int(row[0]): -float(row[1]) for row in rows}
    if dialect == "postgresql":
        vector = search_index.PG_COLUMN
        rows = session.execute(text(
            f"SELECT id, ts_rank({vector}, q) FROM help_articles, "  # noqa: S608
            f"to_tsquery('english', :query) AS q WHERE {vector} @@ q "
            "ORDER BY 2 DESC LIMIT 500"),
            {"query": " | ".join(w + (":*" if prefix else "") for w in words)})
        return {int(row[0]): float(row[1]) for row in rows}
    if dialect in ("mysql", "mariadb"):
        mode = "BOOLEAN" if prefix else "NATURAL LANGUAGE"
        head = f"MATCH(search_head) AGAINST (:query IN {mode} MODE)"
        body = f"MATCH(search_body) AGAINST (:query IN {mode} MODE)"
        rows = session.execute(text(
            f"SELECT id, {head} * 4 + {body} AS score FROM help_articles "  # noqa: S608
            f"WHERE {head} OR {body} ORDER BY score DESC LIMIT 500"),
            {"query": " ".join(w + ("*" if prefix else "") for w in words)})
        return {int(row[0]): float(row[1]) for row in rows}
    raise NotImplementedError(f"no full-text search for {dialect}")


def search_articles(
    session: Session, reader: Reader, query: str, *, limit: int = 20
) -> SearchResult:
    """Articles matching `query`, best first, with the matching words marked.

    Every backend ranks with its own full-text search (titles, summaries and tags weigh more
    than the body); articles out of the reader's reach never appear.
    """
    sync_shipped_articles(session)
    query = (query or "").strip()[:MAX_QUERY]
    words = query_words(query)
    if not words:
        return SearchResult(query, ())
    # Whole words first; only when nothing matches, words as beginnings of words (someone
    # still typing, or a word the index spells longer), so whole-word ranking stays intact.
    scores = _scores(session, words) or _scores(session, words, prefix=True)
    if not scores:
        return SearchResult(query, tuple(words))
    articles = session.scalars(
        select(HelpArticle).where(HelpArticle.id.in_(list(scores)), _in_reach(session, reader))
    ).all()
    # Snippets read with this server's names in them; the sentences about the reader's own
    # mailbox are left out (a search result is not the place for them).
    values = {name: value for name, value in placeholder_values(session, None).items()
              if name not in ("your_protocols", "your_quota")}
    ranked = sorted(articles, key=lambda a: (-scores[a.id], a.title))[:max(1, min(limit,
                                                                                  MAX_RESULTS))]
    hits = tuple(
        SearchHit(
            slug=a.slug, title=a.title, summary=a.summary, score=scores[a.id],
            title_html=highlight(a.title, words), summary_html=highlight(a.summary, words),
            snippet_html=snippet(plain_text(a.body, values), words),
        )
        for a in ranked
    )
    return SearchResult(query, tuple(words), hits)


# --- votes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoteOutcome:
    counted: bool
    helpful_count: int


def vote(
    session: Session, reader: Reader, slug: str, helpful: bool, *, browser_token: str | None,
    client_address: str, now: dt.datetime, policy: throttle.ThrottlePolicy = VOTE_POLICY,
) -> VoteOutcome:
    """Count the reader's answer to "Was this answer helpful?" once per article.

    A signed-in user votes as itself, anyone else as its browser (a random cookie). A second
    vote from the same reader is not counted. Raises NotFound, ValidationError (no voter
    key) or RateLimited (too many votes from one network address).
    """
    keys = {throttle.ADDRESS: (_VOTE_KEY_PREFIX + client_address)[:320]}
    try:
        throttle.ensure_not_locked(session, keys, now)
    except RateLimited as exc:
        raise RateLimited("Too many votes from your network address; try again later.",
                          retry_after_seconds=exc.retry_after_seconds) from None
    sync_shipped_articles(session)
    article = _find(session, reader, slug)
    voter = reader.voter or browser_voter(browser_token)
    if voter is None:
        raise ValidationError("Your browser did not keep the page's cookie, so the vote "
                              "cannot be counted once. Allow cookies for this site.")
    throttle.record_failure(session, keys, now, policy)
    already = session.scalar(select(HelpVote.id).where(
        HelpVote.article_id == article.id, HelpVote.voter == voter))
    counted = False
    if already is None:
        try:
            with session.begin_nested():
                session.add(HelpVote(article_id=article.id, voter=voter, helpful=helpful,
                                     at=now))
            counted = True
        except IntegrityError:
            counted = False  # the same reader's other request got there first
    return VoteOutcome(counted, _helpful_count(session, article.id))


# --- editing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleInput:
    """An article as typed into the editor (or given to the CLI)."""

    slug: str
    title: str
    summary: str = ""
    topic: str = "General"
    audience: str = "public"
    tags: str = ""
    related: str = ""
    body: str = ""
    hidden: bool = False


@dataclass(frozen=True)
class EditableArticle:
    id: int
    slug: str
    title: str
    summary: str
    topic: str
    audience: str
    tags: str
    related: str
    body: str
    hidden: bool
    shipped: bool
    locally_edited: bool
    newer_shipped: bool
    owner: str | None
    updated_at: dt.datetime
    updated_by: str

    def as_input(self) -> ArticleInput:
        return ArticleInput(self.slug, self.title, self.summary, self.topic, self.audience,
                            self.tags, self.related, self.body, self.hidden)


def _require_editor(actor: Actor) -> None:
    if actor.role not in (Role.ADMIN, Role.RESELLER) or actor.acting_as is not None:
        raise PermissionDenied("Only the server admin and resellers edit help articles.")


def _editable_filter(actor: Actor) -> ColumnElement[bool]:
    """The admin edits (and may hide) every article, resellers' included; a reseller its own."""
    if actor.role is Role.ADMIN:
        return HelpArticle.id.is_not(None)
    return HelpArticle.owner_id == actor.user_id


def _editable(session: Session, actor: Actor, article: HelpArticle) -> EditableArticle:
    owner = None
    if article.owner_id is not None:
        owner = session.scalar(select(PanelUser.username)
                               .where(PanelUser.id == article.owner_id))
    return EditableArticle(
        id=article.id, slug=article.slug, title=article.title, summary=article.summary,
        topic=article.topic, audience=article.audience, tags=article.tags,
        related=article.related, body=article.body, hidden=article.hidden,
        shipped=article.origin == "shipped", locally_edited=article.locally_edited,
        newer_shipped=_newer_shipped(article), owner=owner, updated_at=article.updated_at,
        updated_by=article.updated_by,
    )


def editable_articles(session: Session, actor: Actor) -> list[EditableArticle]:
    """The articles this actor may edit: the admin every one, a reseller its own."""
    _require_editor(actor)
    sync_shipped_articles(session)
    articles = session.scalars(
        select(HelpArticle).where(_editable_filter(actor))
        .order_by(HelpArticle.owner_id.is_not(None), HelpArticle.topic, HelpArticle.title)
    ).all()
    return [_editable(session, actor, a) for a in articles]


def _get_editable(session: Session, actor: Actor, article_id: int) -> HelpArticle:
    _require_editor(actor)
    article = session.scalars(
        select(HelpArticle).where(HelpArticle.id == article_id, _editable_filter(actor))
    ).one_or_none()
    if article is None:
        raise NotFound("There is no such help article in your account.")
    return article


def article_for_editing(session: Session, actor: Actor, article_id: int) -> EditableArticle:
    return _editable(session, actor, _get_editable(session, actor, article_id))


def _words_field(value: str, limit: int, field_name: str) -> str:
    words = " ".join(value.replace(",", " ").split())
    if len(words) > limit:
        raise ValidationError(f"At most {limit} characters.", field=field_name)
    return words


def _clean(actor: Actor, data: ArticleInput) -> ArticleInput:
    """Check an article as typed; raises ValidationError naming the field."""
    slug = data.slug.strip().lower()
    if not SLUG_PATTERN.fullmatch(slug) or len(slug) > 80:
        raise ValidationError(
            "A slug is lowercase letters and digits joined by single hyphens, at most 80 "
            "characters (for example reset-password).", field="slug")
    title = " ".join(data.title.split())
    if not title or len(title) > MAX_TITLE:
        raise ValidationError(f"Give a title of 1 to {MAX_TITLE} characters.", field="title")
    summary = " ".join(data.summary.split())
    if len(summary) > MAX_SUMMARY:
        raise ValidationError(f"At most {MAX_SUMMARY} characters.", field="summary")
    topic = " ".join(data.topic.split()) or "General"
    if len(topic) > MAX_TOPIC:
        raise ValidationError(f"At most {MAX_TOPIC} characters.", field="topic")
    allowed = AUDIENCES if actor.role is Role.ADMIN else RESELLER_AUDIENCES
    if data.audience not in allowed:
        raise ValidationError("Choose who the article is for: " + ", ".join(allowed) + ".",
                              field="audience")
    related = _words_field(data.related, MAX_RELATED, "related")
    for word in related.split():
        if not SLUG_PATTERN.fullmatch(word):
            raise ValidationError(f"{word!r} is not a slug.", field="related")
    body = data.body.replace("\r\n", "\n")
    if not body.strip():
        raise ValidationError("Write the article.", field="body")
    if len(body) > MAX_BODY:
        raise ValidationError(f"At most {MAX_BODY:,} characters.", field="body")
    return ArticleInput(slug=slug, title=title, summary=summary, topic=topic,
                        audience=data.audience, tags=_words_field(data.tags, MAX_TAGS, "tags"),
                        related=related, body=body, hidden=bool(data.hidden))


def _snapshot(article: HelpArticle) -> dict[str, object]:
    return {"title": article.title, "audience": article.audience, "topic": article.topic,
            "hidden": article.hidden,
            "body_sha256": hashlib.sha256(article.body.encode()).hexdigest()[:16]}


def _audit(session: Session, actor: Actor, action: str, article: HelpArticle,
           before: dict[str, object] | None) -> None:
    record_event(session, actor, action, object_type="help_article", object_id=article.id,
                 object_label=article.slug, reseller_id=article.owner_id, before=before,
                 after=_snapshot(article))


def create_article(session: Session, actor: Actor, data: ArticleInput) -> EditableArticle:
    """A new article: the server's when the admin writes it, the reseller's own (for its
    customers) when a reseller does. Raises ValidationError, Conflict (slug taken)."""
    _require_editor(actor)
    sync_shipped_articles(session)
    clean = _clean(actor, data)
    taken = session.scalar(select(HelpArticle.id).where(HelpArticle.slug == clean.slug))
    if taken is not None or (clean.slug in shipped_articles() and actor.role is not Role.ADMIN):
        raise Conflict("That slug is taken; choose another.", field="slug")
    article = HelpArticle(
        slug=clean.slug, origin="local",
        owner_id=None if actor.role is Role.ADMIN else actor.user_id,
        locally_edited=False, shipped_hash=None,
    )
    _apply(article, clean, actor)
    session.add(article)
    _index(session, article)
    _audit(session, actor, "help_article.create", article, None)
    return _editable(session, actor, article)


def _apply(article: HelpArticle, clean: ArticleInput, actor: Actor) -> None:
    article.title = clean.title
    article.summary = clean.summary
    article.topic = clean.topic
    article.audience = clean.audience
    article.tags = clean.tags
    article.related = clean.related
    article.families = article.families or ""
    article.body = clean.body
    article.hidden = clean.hidden
    article.updated_at = actor.now()
    article.updated_by = actor.name


def update_article(
    session: Session, actor: Actor, article_id: int, data: ArticleInput
) -> EditableArticle:
    """Change an article (its slug stays: links point at it). A shipped article changed here
    keeps this text through upgrades. Raises NotFound, ValidationError."""
    article = _get_editable(session, actor, article_id)
    clean = _clean(actor, ArticleInput(**{**data.__dict__, "slug": article.slug}))
    before = _snapshot(article)
    changed_text = (clean.title, clean.summary, clean.topic, clean.audience, clean.tags,
                    clean.related, clean.body) != (
        article.title, article.summary, article.topic, article.audience, article.tags,
        article.related, article.body)
    _apply(article, clean, actor)
    if article.origin == "shipped" and changed_text:
        article.locally_edited = True
    _index(session, article)
    _audit(session, actor, "help_article.update", article, before)
    return _editable(session, actor, article)


def set_article_hidden(
    session: Session, actor: Actor, article_id: int, hidden: bool
) -> EditableArticle:
    article = _get_editable(session, actor, article_id)
    before = _snapshot(article)
    article.hidden = hidden
    article.updated_at = actor.now()
    article.updated_by = actor.name
    session.flush()
    _audit(session, actor, "help_article.hide" if hidden else "help_article.show", article,
           before)
    return _editable(session, actor, article)


def use_shipped_version(session: Session, actor: Actor, article_id: int) -> EditableArticle:
    """Drop the local changes of a shipped article and take the shipped text."""
    article = _get_editable(session, actor, article_id)
    shipped = shipped_articles().get(article.slug)
    if article.origin != "shipped" or shipped is None:
        raise ValidationError("Only an article shipped with mailadmin has a shipped version.")
    before = _snapshot(article)
    _copy_shipped(article, shipped)
    article.locally_edited = False
    article.updated_at = actor.now()
    article.updated_by = actor.name
    _index(session, article)
    _audit(session, actor, "help_article.use_shipped", article, before)
    return _editable(session, actor, article)


def keep_local_version(session: Session, actor: Actor, article_id: int) -> EditableArticle:
    """Keep the local text of a shipped article and stop saying a newer version exists (until
    the next one ships)."""
    article = _get_editable(session, actor, article_id)
    shipped = shipped_articles().get(article.slug)
    if not _newer_shipped(article) or shipped is None:
        raise ValidationError("There is no newer shipped version of this article.")
    before = _snapshot(article)
    article.shipped_hash = shipped.content_hash
    session.flush()
    _audit(session, actor, "help_article.keep_local", article, before)
    return _editable(session, actor, article)


def preview_article(session: Session, actor: Actor, body: str) -> Markup:
    """The HTML an article body would have, for the editor's preview (nothing is stored)."""
    _require_editor(actor)
    if len(body) > MAX_BODY:
        raise ValidationError(f"At most {MAX_BODY:,} characters.", field="body")
    return render_markdown(body.replace("\r\n", "\n"), placeholder_values(session, None))
