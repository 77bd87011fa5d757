"""The help centre: shipped articles, placeholders, votes, the sanitiser, tenant isolation of
resellers' articles, editing with audit, the API, the CLI and the links from other pages."""

from __future__ import annotations

import json
import re
import typing as t
from urllib.parse import urljoin, urlsplit

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.diagnostics.catalogue import load_catalogue
from mailadmin.errors import Conflict, NotFound, PermissionDenied, ValidationError
from mailadmin.help.articles import family_articles, shipped_articles, slug_for_family
from mailadmin.help.render import PLACEHOLDER
from mailadmin.models import AuditEvent, HelpArticle, PanelUser
from mailadmin.services import domains, help, mailboxes, tokens
from mailadmin.services.context import Actor

from .web import csrf_token, sign_in, submit

PASSWORD = "correct horse 9"
BOX_PASSWORD = "Tr0ub4dor&3-horse"


def actor(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


# --- the shipped articles -------------------------------------------------------------------


def test_at_least_25_articles_and_the_ones_the_issue_names() -> None:
    articles = shipped_articles()
    assert len(articles) >= 25
    for slug in ("pop-vs-imap", "503-valid-rcpt-sender-verification", "webmail",
                 "mailbox-quota", "cant-reach-panel", "cant-sign-in", "outlook-setup",
                 "thunderbird-setup", "apple-mail-setup", "ios-setup", "android-setup"):
        assert slug in articles, slug
    for slug in ("outlook-setup", "thunderbird-setup", "apple-mail-setup", "ios-setup",
                 "android-setup"):
        body = articles[slug].body
        assert "IMAP" in body and "POP" in body, slug
        assert "{{ imap_host }}" in body and "{{ pop3_host }}" in body, slug


def test_every_catalogue_family_has_an_article_of_its_own() -> None:
    """The catalogue walk: each diagnosis family maps to a shipped article, one per family."""
    families = set(load_catalogue().families)
    mapping = family_articles()
    assert families <= set(mapping), families - set(mapping)
    assert set(mapping) <= families, set(mapping) - families  # no article names a ghost
    assert len({mapping[f] for f in families}) == len(families)
    for family in families:
        assert slug_for_family(family) in shipped_articles()


def test_shipped_articles_link_and_fill_only_what_exists() -> None:
    articles = shipped_articles()
    known = {
        "mail_hostname", "imap_host", "imap_port", "imap_starttls_port", "pop3_host",
        "pop3_port", "pop3_starttls_port", "smtp_host", "submission_port", "smtps_port",
        "message_size_limit", "webmail", "your_address", "your_protocols", "your_quota"}
    for article in articles.values():
        for related in article.related:
            assert related in articles, (article.slug, related)
        for name in PLACEHOLDER.findall(article.body):
            assert name in known, (article.slug, name)
        for target in re.findall(r"\]\((/help/[^)#]+)\)", article.body):
            assert target.removeprefix("/help/") in articles, (article.slug, target)


def test_placeholder_names_the_service_fills(session: Session) -> None:
    values = help.placeholder_values(session, None)
    for article in shipped_articles().values():
        for name in PLACEHOLDER.findall(article.body):
            assert name in values, (article.slug, name)


# --- reading, placeholders, the reader's mailbox ---------------------------------------------


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any) -> dict[str, t.Any]:
    """Reseller rita with customer alice (anna@alice.example, POP3 off); reseller rob with
    customer bert (bob@bert.example); the admin root."""
    make_user("root", "admin")
    make_user("rita", "reseller")
    make_user("rob", "reseller")
    make_user("alice", "customer", reseller="rita")
    make_user("bert", "customer", reseller="rob")
    with transaction(session_factory) as s:
        domains.add_domain(s, actor(session_factory, "alice"), "alice.example")
        anna = mailboxes.create_mailbox(s, actor(session_factory, "alice"), "anna@alice.example",
                                        BOX_PASSWORD, quota=2 * 1024**3, pop3=False)
        anna.usage_bytes = 1536 * 1024**2
        domains.add_domain(s, actor(session_factory, "bert"), "bert.example")
        bob = mailboxes.create_mailbox(s, actor(session_factory, "bert"), "bob@bert.example",
                                       BOX_PASSWORD)
        return {"anna": anna.id, "bob": bob.id}


def test_mailbox_user_reads_its_own_switches_and_quota(
    session_factory: sessionmaker[Session], world: dict[str, t.Any]
) -> None:
    anna = help.Reader.for_mailbox(world["anna"])
    with transaction(session_factory) as s:
        view = help.read_article(s, anna, "pop-vs-imap")
        assert "POP3 is off for this mailbox; ask your host or use IMAP." in view.html
        assert "IMAP is on." in view.html
        assert view.mailbox == "anna@alice.example"
        quota = help.read_article(s, anna, "mailbox-quota")
        assert "may hold 2 GiB; it uses 1.5 GiB (75%)" in quota.html
        assert "mail.example.net" in view.html  # the server's host names are filled in


def test_panel_user_reads_a_mailbox_only_of_its_own(
    session_factory: sessionmaker[Session], world: dict[str, t.Any]
) -> None:
    alice = help.Reader.for_actor(actor(session_factory, "alice"))
    bert = help.Reader.for_actor(actor(session_factory, "bert"))
    rita = help.Reader.for_actor(actor(session_factory, "rita"))
    with transaction(session_factory) as s:
        own = help.read_article(s, alice, "pop-vs-imap", mailbox_address="anna@alice.example")
        assert "POP3 is off for this mailbox" in own.html
        via_reseller = help.read_article(s, rita, "pop-vs-imap",
                                         mailbox_address="anna@alice.example")
        assert "POP3 is off for this mailbox" in via_reseller.html
        # Another tenant's mailbox is not described: no address, no switches leak.
        other = help.read_article(s, bert, "pop-vs-imap", mailbox_address="anna@alice.example")
        assert other.mailbox is None
        assert "anna@" not in other.html and "POP3 is off" not in other.html


def test_web_article_for_a_signed_in_mailbox_user(
    client: t.Any, world: dict[str, t.Any]
) -> None:
    submit(client, "/me/login", {"address": "anna@alice.example", "password": BOX_PASSWORD})
    page = client.get("/help/pop-vs-imap")
    assert page.status_code == 200
    assert "POP3 is off for this mailbox; ask your host or use IMAP." in page.get_data(
        as_text=True)
    # The editor is the admin's and the resellers' only.
    assert client.get("/help/manage").status_code == 403


# --- search ------------------------------------------------------------------------------------


def test_search_marks_the_words_and_escapes_the_rest(session_factory: sessionmaker[Session],
                                                     world: dict[str, t.Any]) -> None:
    with transaction(session_factory) as s:
        result = help.search_articles(s, help.Reader.anonymous(), "Outlook POP <script>")
    assert result.hits[0].slug == "outlook-setup"
    assert "<mark>Outlook</mark>" in result.hits[0].title_html
    assert "<script" not in "".join(h.snippet_html + h.title_html for h in result.hits)
    with transaction(session_factory) as s:
        assert help.search_articles(s, help.Reader.anonymous(), "  ").hits == ()
        assert help.search_articles(s, help.Reader.anonymous(), "zzzqqqxxyy").hits == ()
        assert help.search_articles(s, help.Reader.anonymous(), '"*:-()^').hits == ()


def test_search_page_lists_the_best_first(client: t.Any) -> None:
    page = client.get("/help/?q=port+2082+blocked")
    assert page.status_code == 200
    soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    hits = soup.select("[data-testid=help-hit]")
    assert hits and hits[0]["data-slug"] == "cant-reach-panel"
    assert hits[0].find("mark") is not None


# --- votes --------------------------------------------------------------------------------------


def _count(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    return soup.select_one("[data-testid=helpful-count]").get_text(strip=True)


def test_one_vote_per_browser_with_csrf(client: t.Any, app: t.Any) -> None:
    page = client.get("/help/webmail")
    assert _count(page.get_data(as_text=True)) == "0 people found this useful"
    cookies = page.headers.getlist("Set-Cookie")
    assert any(c.startswith("mailadmin_help_voter=") and "HttpOnly" in c for c in cookies)
    # Without the CSRF token nothing is counted.
    assert client.post("/help/webmail/vote", data={"helpful": "yes"}).status_code == 400
    token = csrf_token(page.get_data(as_text=True))
    first = client.post("/help/webmail/vote", data={"helpful": "yes", "csrf_token": token},
                        follow_redirects=True)
    assert "1 person found this useful" in first.get_data(as_text=True)
    assert "Thank you for your answer." in first.get_data(as_text=True)
    second = client.post("/help/webmail/vote", data={"helpful": "yes", "csrf_token": token},
                         follow_redirects=True)
    assert "1 person found this useful" in second.get_data(as_text=True)
    assert "your first answer counts" in second.get_data(as_text=True)
    # Another browser is another voter.
    other = app.test_client()
    other_page = other.get("/help/webmail").get_data(as_text=True)
    other.post("/help/webmail/vote", data={"helpful": "yes",
                                            "csrf_token": csrf_token(other_page)})
    assert _count(other.get("/help/webmail").get_data(as_text=True)) == \
        "2 people found this useful"
    assert client.post("/help/webmail/vote", data={"helpful": "maybe",
                                                     "csrf_token": token}).status_code == 400


def test_one_vote_per_signed_in_user_across_browsers(
    app: t.Any, session_factory: sessionmaker[Session], world: dict[str, t.Any]
) -> None:
    for _ in range(2):
        browser = app.test_client()
        sign_in(browser, "alice", PASSWORD)
        page = browser.get("/help/webmail").get_data(as_text=True)
        if "Was this answer helpful?" in page and 'value="yes"' in page:
            browser.post("/help/webmail/vote",
                         data={"helpful": "yes", "csrf_token": csrf_token(page)})
    with transaction(session_factory) as s:
        outcome = help.vote(s, help.Reader.for_actor(actor(session_factory, "alice")),
                            "webmail", True, browser_token=None, client_address="192.0.2.1",
                            now=help.utcnow())
    assert outcome == help.VoteOutcome(counted=False, helpful_count=1)


def test_votes_are_rate_limited_per_network_address(
    session_factory: sessionmaker[Session], world: dict[str, t.Any]
) -> None:
    from mailadmin.errors import RateLimited
    from mailadmin.services.throttle import ThrottlePolicy

    tight = ThrottlePolicy(max_failures_per_account=1, max_failures_per_address=3)
    with transaction(session_factory) as s:
        for n in range(3):
            help.vote(s, help.Reader.anonymous(), "webmail", True, browser_token=f"b{n}",
                      client_address="198.51.100.7", now=help.utcnow(), policy=tight)
        with pytest.raises(RateLimited, match="Too many votes"):
            help.vote(s, help.Reader.anonymous(), "webmail", True, browser_token="b9",
                      client_address="198.51.100.7", now=help.utcnow(), policy=tight)
        assert help.read_article(s, help.Reader.anonymous(), "webmail").helpful_count == 3
        # Another address is not paused.
        help.vote(s, help.Reader.anonymous(), "webmail", False, browser_token="b10",
                  client_address="198.51.100.8", now=help.utcnow(), policy=tight)
        with pytest.raises(ValidationError):
            help.vote(s, help.Reader.anonymous(), "webmail", True, browser_token=None,
                      client_address="198.51.100.9", now=help.utcnow())


# --- the sanitiser ------------------------------------------------------------------------------

HOSTILE = """# Friendly title

<script>alert('x')</script>
<img src="x" onerror="alert(1)">
<a href="javascript:alert(1)" onclick="alert(2)">click</a>

[markdown link](javascript:alert(3)) and <a href="JaVaScRiPt:alert(7)">mixed case</a>

<iframe src="https://evil.example/"></iframe>
<svg onload="alert(4)"><circle r="1"/></svg>
<p style="background:url(javascript:alert(5))" onmouseover="alert(6)">hover</p>
<object data="x"></object><embed src="x"><form action="/x"><input name="a"></form>
<div><style>body{display:none}</style></div>

[ok](https://example.org/) and <kbd>Ctrl</kbd>
"""


def _assert_inert(html: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(True):
        assert tag.name not in ("script", "iframe", "svg", "object", "embed", "form", "input",
                                "style", "img"), tag
        for name, value in tag.attrs.items():
            assert not name.lower().startswith("on"), tag
            assert name.lower() != "style", tag
            assert "javascript:" not in str(value).lower(), tag
    assert "<script" not in html.lower()


def test_article_html_has_no_script_even_when_an_admin_writes_one(
    client: t.Any, session_factory: sessionmaker[Session], world: dict[str, t.Any]
) -> None:
    root = actor(session_factory, "root")
    with transaction(session_factory) as s:
        help.create_article(s, root, help.ArticleInput(slug="hostile", title="Hostile",
                                                       body=HOSTILE))
        preview = help.preview_article(s, root, HOSTILE)
    _assert_inert(preview)
    assert "<kbd>Ctrl</kbd>" in preview and 'href="https://example.org/"' in preview
    page = client.get("/help/hostile")
    assert page.status_code == 200
    soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    article = soup.select_one("[data-testid=help-article]")
    _assert_inert(str(article))
    # The page's own script tags are only the panel's bundled Bootstrap.
    scripts = [s.get("src") for s in soup.find_all("script")]
    assert all(src and src.startswith("/static/") for src in scripts), scripts


# --- editing, audit, local edits of shipped articles -------------------------------------------


def test_admin_edits_a_shipped_article_and_keeps_it_through_upgrades(
    session_factory: sessionmaker[Session], world: dict[str, t.Any]
) -> None:
    root = actor(session_factory, "root")
    with transaction(session_factory) as s:
        help.sync_shipped_articles(s)
        row = s.scalars(select(HelpArticle).where(HelpArticle.slug == "webmail")).one()
        edited = help.update_article(s, root, row.id, help.ArticleInput(
            slug="ignored", title="Webmail at our company", body="Open **our webmail**.",
            tags="webmail roundcube", audience="public", topic="Getting started"))
        assert edited.locally_edited and not edited.newer_shipped
        assert edited.slug == "webmail"
        # The database as an older release left it: the local text was based on another
        # shipped text than the one in the package now.
        row.shipped_hash = "0" * 64
    with transaction(session_factory) as s:
        assert help.sync_shipped_articles(s) == 0  # the local text is not overwritten
        view = help.read_article(s, help.Reader.anonymous(), "webmail")
        assert view.title == "Webmail at our company" and view.newer_shipped
        listed = {a.slug: a for a in help.editable_articles(s, root)}
        assert listed["webmail"].newer_shipped
        kept = help.keep_local_version(s, root, listed["webmail"].id)
        assert not kept.newer_shipped and kept.title == "Webmail at our company"
        row = s.scalars(select(HelpArticle).where(HelpArticle.slug == "webmail")).one()
        row.shipped_hash = "0" * 64
        restored = help.use_shipped_version(s, root, listed["webmail"].id)
        assert not restored.locally_edited
        assert restored.title == shipped_articles()["webmail"].title
    with session_factory() as s:
        actions = s.scalars(select(AuditEvent.action).where(
            AuditEvent.object_type == "help_article").order_by(AuditEvent.id)).all()
    assert actions == ["help_article.update", "help_article.keep_local",
                       "help_article.use_shipped"]


def test_a_new_shipped_text_replaces_an_unedited_article(
    session_factory: sessionmaker[Session],
) -> None:
    with transaction(session_factory) as s:
        help.sync_shipped_articles(s)
        row = s.scalars(select(HelpArticle).where(HelpArticle.slug == "greylisting")).one()
        row.body, row.shipped_hash = "old text", "0" * 64
    with transaction(session_factory) as s:
        assert help.sync_shipped_articles(s) == 1
        row = s.scalars(select(HelpArticle).where(HelpArticle.slug == "greylisting")).one()
        assert row.body == shipped_articles()["greylisting"].body


def test_hidden_articles_are_read_by_nobody(session_factory: sessionmaker[Session],
                                             world: dict[str, t.Any], client: t.Any) -> None:
    root = actor(session_factory, "root")
    with transaction(session_factory) as s:
        help.sync_shipped_articles(s)
        row_id = s.scalars(select(HelpArticle.id).where(HelpArticle.slug == "greylisting")).one()
        help.set_article_hidden(s, root, row_id, True)
    assert client.get("/help/greylisting").status_code == 404
    assert "greylisting" not in client.get("/help/?q=greylisted").get_data(as_text=True)
    with transaction(session_factory) as s:
        help.set_article_hidden(s, root, row_id, False)
    assert client.get("/help/greylisting").status_code == 200


def test_bad_input_is_refused_and_nothing_changes(session_factory: sessionmaker[Session],
                                                  world: dict[str, t.Any]) -> None:
    root = actor(session_factory, "root")
    bad = [
        (help.ArticleInput(slug="Not A Slug", title="x", body="y"), "slug"),
        (help.ArticleInput(slug="ok-slug", title=" ", body="y"), "title"),
        (help.ArticleInput(slug="ok-slug", title="x", body="  "), "body"),
        (help.ArticleInput(slug="ok-slug", title="x", body="y", audience="everyone"),
         "audience"),
        (help.ArticleInput(slug="ok-slug", title="x", body="y", related="no/slug"), "related"),
        (help.ArticleInput(slug="ok-slug", title="x", body="y" * 100_001), "body"),
    ]
    for data, field in bad:
        with session_factory() as s, pytest.raises(ValidationError) as caught:
            help.create_article(s, root, data)
        assert caught.value.field == field
    with transaction(session_factory) as s, pytest.raises(Conflict):
        help.create_article(s, root, help.ArticleInput(slug="webmail", title="x", body="y"))
    with session_factory() as s:
        assert s.scalar(select(HelpArticle.id).where(HelpArticle.origin == "local")) is None


def test_editor_form_previews_then_saves(client: t.Any, world: dict[str, t.Any],
                                         session_factory: sessionmaker[Session]) -> None:
    sign_in(client, "root", PASSWORD)
    fields = {"slug": "our-office-hours", "title": "Our office hours", "summary": "When we answer",
              "topic": "General", "audience": "public", "tags": "hours support",
              "related": "webmail", "body": "We answer **{{ imap_host }}** questions."}
    preview = submit(client, "/help/manage/new", {**fields, "preview": "1"})
    assert preview.status_code == 200
    assert "<strong>mail.example.net</strong>" in preview.get_data(as_text=True)
    with session_factory() as s:
        assert s.scalar(select(HelpArticle).where(HelpArticle.slug == "our-office-hours")) is None
    saved = submit(client, "/help/manage/new", {**fields, "save": "1"})
    assert saved.status_code == 302
    page = client.get("/help/our-office-hours").get_data(as_text=True)
    assert "Our office hours" in page and "mail.example.net" in page
    refused = submit(client, "/help/manage/new", {**fields, "save": "1"})
    assert refused.status_code == 422
    assert "That slug is taken" in refused.get_data(as_text=True)


# --- resellers' own articles: tenant isolation -------------------------------------------------


def test_reseller_articles_reach_only_its_own_customers(
    app: t.Any, client: t.Any, session_factory: sessionmaker[Session], world: dict[str, t.Any]
) -> None:
    rita, rob = actor(session_factory, "rita"), actor(session_factory, "rob")
    with transaction(session_factory) as s:
        mine = help.create_article(s, rita, help.ArticleInput(
            slug="rita-billing", title="Rita billing portal", audience="mailbox",
            tags="zebracorn", body="Pay at rita's portal."))
        customers_only = help.create_article(s, rita, help.ArticleInput(
            slug="rita-customers", title="Rita customers only", audience="customer",
            tags="zebracorn", body="For customers."))
    readers = {
        "anonymous": help.Reader.anonymous(),
        "rita": help.Reader.for_actor(rita),
        "rob": help.Reader.for_actor(rob),
        "alice": help.Reader.for_actor(actor(session_factory, "alice")),
        "bert": help.Reader.for_actor(actor(session_factory, "bert")),
        "anna": help.Reader.for_mailbox(world["anna"]),
        "bob": help.Reader.for_mailbox(world["bob"]),
        "root": help.Reader.for_actor(actor(session_factory, "root")),
    }
    expected = {"anonymous": set(), "rita": {"rita-billing", "rita-customers"}, "rob": set(),
                "alice": {"rita-billing", "rita-customers"}, "bert": set(),
                "anna": {"rita-billing"}, "bob": set(), "root": set()}
    with transaction(session_factory) as s:
        for name, reader in readers.items():
            found = {h.slug for h in help.search_articles(s, reader, "zebracorn").hits}
            assert found == expected[name], name
            listed = {a.slug for topic in help.help_index(s, reader) for a in topic.articles}
            assert listed & {"rita-billing", "rita-customers"} == expected[name], name
            for slug in ("rita-billing", "rita-customers"):
                if slug in expected[name]:
                    help.read_article(s, reader, slug)
                else:
                    with pytest.raises(NotFound):
                        help.read_article(s, reader, slug)
                    with pytest.raises(NotFound):
                        help.vote(s, reader, slug, True, browser_token="t",
                                  client_address="192.0.2.9", now=help.utcnow())
        # Another reseller cannot see, edit, hide or reset rita's articles.
        assert {a.slug for a in help.editable_articles(s, rob)} == set()
        for attempt in (
            lambda: help.article_for_editing(s, rob, mine.id),
            lambda: help.update_article(s, rob, mine.id, mine.as_input()),
            lambda: help.set_article_hidden(s, rob, customers_only.id, True),
            lambda: help.use_shipped_version(s, rob, mine.id),
        ):
            with pytest.raises(NotFound):
                attempt()
        # A reseller edits neither the server's articles nor writes for everyone.
        shipped_id = s.scalars(select(HelpArticle.id).where(HelpArticle.slug == "webmail")).one()
        with pytest.raises(NotFound):
            help.update_article(s, rita, shipped_id, mine.as_input())
        with pytest.raises(ValidationError):
            help.create_article(s, rita, help.ArticleInput(slug="rita-public", title="x",
                                                           body="y", audience="public"))
        with pytest.raises(Conflict):
            help.create_article(s, rita, help.ArticleInput(slug="pop-vs-imap", title="x",
                                                           body="y", audience="customer"))
        # Customers and mailbox users do not edit; acting as a customer does not either.
        for who in (actor(session_factory, "alice"),):
            with pytest.raises(PermissionDenied):
                help.editable_articles(s, who)
        alice_user = s.scalars(select(PanelUser).where(PanelUser.username == "alice")).one()
        with pytest.raises(PermissionDenied):
            help.create_article(s, rita.acting_for(alice_user), help.ArticleInput(
                slug="sneaky", title="x", body="y", audience="customer"))
    # Over the web: bert's session gets 404 for rita's article; rob's editor 404 too.
    sign_in(client, "bert", PASSWORD)
    assert client.get("/help/rita-billing").status_code == 404
    assert client.get("/help/manage").status_code == 403
    rob_browser = app.test_client()
    sign_in(rob_browser, "rob", PASSWORD)
    assert rob_browser.get(f"/help/manage/{mine.id}").status_code == 404
    page = rob_browser.get("/help/manage").get_data(as_text=True)
    forged = rob_browser.post(f"/help/manage/{mine.id}/hide",
                              data={"csrf_token": csrf_token(page)})
    assert forged.status_code == 404
    with session_factory() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.object_type == "help_article")
                         ).all()
    assert {(e.action, e.object_label, e.actor) for e in rows} == {
        ("help_article.create", "rita-billing", "rita"),
        ("help_article.create", "rita-customers", "rita")}
    assert all(e.reseller_id is not None for e in rows)


# --- links from everywhere, and no dead link --------------------------------------------------


def test_the_diagnosis_page_links_the_article_of_its_family(
    client: t.Any, world: dict[str, t.Any]
) -> None:
    sign_in(client, "alice", PASSWORD)
    bounce = ("This is the mail system at host mx.example.\n\n"
              "<nobody@remote.example>: host mx.remote.example said: 550 5.1.1 "
              "<nobody@remote.example>: Recipient address rejected: User unknown in virtual "
              "mailbox table (in reply to RCPT TO command)\n")
    page = submit(client, "/diagnose/", {"text": bounce, "client": "", "address": ""})
    soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    findings = soup.select("[data-testid=finding]")
    assert findings
    for finding in findings:
        link = finding.select_one("[data-testid=family-help]")
        assert link is not None
        assert link["href"] == f"/help/{slug_for_family(finding['data-family'])}"
        assert client.get(link["href"]).status_code == 200


def test_every_family_the_catalogue_can_produce_links_to_a_live_article(
    app: t.Any, client: t.Any
) -> None:
    """The catalogue walk through the panel: the link the diagnosis page would show for each
    family opens an article that names that family."""
    from panel.help import help_for_family

    for family in load_catalogue().families:
        with app.test_request_context():
            url = help_for_family(family)
        page = client.get(url)
        assert page.status_code == 200, (family, url)
        slug = url.rsplit("/", 1)[1]
        assert family in shipped_articles()[slug].families, (family, slug)


def test_sign_in_device_and_error_pages_link_to_the_help(
    client: t.Any, world: dict[str, t.Any]
) -> None:
    for url in ("/login", "/me/login"):
        assert 'href="/help/cant-sign-in"' in client.get(url).get_data(as_text=True)
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and 'href="/help/"' in missing.get_data(as_text=True)
    submit(client, "/me/login", {"address": "anna@alice.example", "password": BOX_PASSWORD})
    devices = client.get("/me/devices").get_data(as_text=True)
    for slug in ("pop-vs-imap", "outlook-setup", "thunderbird-setup", "apple-mail-setup",
                 "ios-setup", "android-setup"):
        assert f'href="/help/{slug}"' in devices
    forbidden = client.get("/mailboxes")
    assert forbidden.status_code == 403
    assert 'href="/help/cant-sign-in"' in forbidden.get_data(as_text=True)


def _crawl(client: t.Any, start: str) -> dict[str, int]:
    """Every same-site link reachable from `start` within /help, and every link those pages
    point to outside /help (fetched, not followed further)."""
    seen: dict[str, int] = {}
    queue = [start]
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        response = client.get(url, follow_redirects=True)
        seen[url] = response.status_code
        if not urlsplit(url).path.startswith("/help") or response.status_code != 200:
            continue
        soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
        for anchor in soup.find_all("a", href=True):
            target = urljoin(url, anchor["href"])
            parts = urlsplit(target)
            if parts.scheme in ("mailto",) or (parts.netloc and parts.netloc != "localhost"):
                continue
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if path.startswith("/help/manage"):
                continue
            if path not in seen:
                queue.append(path)
    return seen


def test_no_dead_link_in_the_help(client: t.Any, app: t.Any, world: dict[str, t.Any]) -> None:
    anonymous = _crawl(client, "/help/")
    articles = {u for u in anonymous if re.fullmatch(r"/help/[a-z0-9-]+", u)}
    assert len(articles) >= len(shipped_articles())
    dead = {u: code for u, code in anonymous.items() if code >= 400}
    assert dead == {}
    customer = app.test_client()
    sign_in(customer, "alice", PASSWORD)
    dead = {u: code for u, code in _crawl(customer, "/help/").items() if code >= 400}
    assert dead == {}


# --- API and CLI --------------------------------------------------------------------------------


def test_api_search_and_article(client: t.Any, session_factory: sessionmaker[Session],
                                world: dict[str, t.Any]) -> None:
    with transaction(session_factory) as s:
        _, text = tokens.create_api_token(s, actor(session_factory, "bert"), "help", ["read"])
        help.create_article(s, actor(session_factory, "rita"), help.ArticleInput(
            slug="rita-only", title="Rita only", audience="customer", body="x"))
    headers = {"Authorization": f"Bearer {text}"}
    found = client.get("/api/v1/help?q=503", headers=headers)
    assert found.status_code == 200
    body = found.get_json()
    assert body["articles"][0]["slug"] == "503-valid-rcpt-sender-verification"
    assert body["articles"][0]["url"].endswith("/help/503-valid-rcpt-sender-verification")
    everything = client.get("/api/v1/help", headers=headers).get_json()
    assert len(everything["articles"]) >= 25
    assert "rita-only" not in {a["slug"] for a in everything["articles"]}
    article = client.get("/api/v1/help/pop-vs-imap", headers=headers).get_json()
    assert article["title"].startswith("POP3 or IMAP") and "<h2>" in article["html"]
    assert article["related"] and article["helpful_count"] == 0
    assert client.get("/api/v1/help/rita-only", headers=headers).status_code == 404
    assert client.get("/api/v1/help").status_code == 401
    document = client.get("/api/v1/openapi.json").get_json()
    assert {"/api/v1/help", "/api/v1/help/{slug}"} <= set(document["paths"])


def test_cli_list_search_show(app: t.Any, tmp_path: t.Any) -> None:
    from mailadmin.cli import main

    runner = CliRunner()
    env = {"MAILADMIN_DATABASE_URL": app.config["DATABASE_URL"]}
    base = ["--instance", str(tmp_path / "instance")]
    listed = runner.invoke(main, [*base, "help", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.output)
    assert len(entries) >= 25 and {"slug", "title", "url"} <= set(entries[0])
    found = runner.invoke(main, [*base, "help", "search", "mailbox full", "--json"], env=env)
    assert found.exit_code == 0, found.output
    hits = json.loads(found.output)
    assert hits[0]["slug"] == "mailbox-quota" and hits[0]["url"] == "/help/mailbox-quota"
    plain = runner.invoke(main, [*base, "help", "search", "webmail"], env=env)
    assert plain.output.splitlines()[0].startswith("webmail: ")
    shown = runner.invoke(main, [*base, "help", "show", "pop-vs-imap"], env=env)
    assert shown.exit_code == 0 and "mail.example.net" in shown.output
    assert "{{" not in shown.output
    missing = runner.invoke(main, [*base, "help", "show", "nope", "--json"], env=env)
    assert missing.exit_code == 1
    assert json.loads(missing.output)["error"]["code"] == "not_found"


def test_customer_opens_the_help_from_a_mailbox_page(client: t.Any, app: t.Any,
                                                     world: dict[str, t.Any]) -> None:
    sign_in(client, "alice", PASSWORD)
    page = client.get("/mailboxes/anna@alice.example").get_data(as_text=True)
    soup = BeautifulSoup(page, "html.parser")
    links = [a["href"] for a in soup.select("[data-testid=mailbox-help] a")]
    assert links and all("mailbox=anna@alice.example" in href for href in links)
    article = client.get(links[0]).get_data(as_text=True)
    assert "Filled in for the mailbox anna@alice.example." in article
    assert "POP3 is off for this mailbox" in article
    # Another customer's mailbox named in the URL is not described.
    bert = app.test_client()
    sign_in(bert, "bert", PASSWORD)
    other = bert.get("/help/pop-vs-imap?mailbox=anna%40alice.example").get_data(as_text=True)
    assert "anna@alice.example" not in other


def test_reseller_writes_for_its_customers_in_the_editor(
    client: t.Any, app: t.Any, world: dict[str, t.Any]
) -> None:
    sign_in(client, "rita", PASSWORD)
    form = client.get("/help/manage/new").get_data(as_text=True)
    soup = BeautifulSoup(form, "html.parser")
    choices = [o["value"] for o in soup.select("select[name=audience] option")]
    assert choices == ["mailbox", "customer"]  # never the public or other resellers
    saved = submit(client, "/help/manage/new", {
        "slug": "rita-hours", "title": "Rita's opening hours", "audience": "customer",
        "topic": "Support", "body": "Call us on weekdays.", "save": "1"})
    assert saved.status_code == 302
    assert "opening hours" in client.get("/help/manage").get_data(as_text=True)
    refused = submit(client, "/help/manage/new", {
        "slug": "rita-everyone", "title": "For all", "audience": "public", "body": "x",
        "save": "1"})
    assert refused.status_code == 422
    customer = app.test_client()
    sign_in(customer, "alice", PASSWORD)
    index = customer.get("/help/").get_data(as_text=True)
    assert "Rita&#39;s opening hours" in index and "Support" in index
    other = app.test_client()
    sign_in(other, "bert", PASSWORD)
    assert "opening hours" not in other.get("/help/").get_data(as_text=True)
    assert other.get("/help/rita-hours").status_code == 404


def test_the_admin_may_hide_a_resellers_article(session_factory: sessionmaker[Session],
                                                world: dict[str, t.Any]) -> None:
    root, rita = actor(session_factory, "root"), actor(session_factory, "rita")
    alice = help.Reader.for_actor(actor(session_factory, "alice"))
    with transaction(session_factory) as s:
        article = help.create_article(s, rita, help.ArticleInput(
            slug="rita-promo", title="Rita promo", audience="customer", body="Buy more."))
        assert article.id in {a.id for a in help.editable_articles(s, root)}
        help.read_article(s, alice, "rita-promo")
        hidden = help.set_article_hidden(s, root, article.id, True)
        assert hidden.hidden and hidden.owner == "rita"
        with pytest.raises(NotFound):
            help.read_article(s, alice, "rita-promo")
    with session_factory() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "help_article.hide")).one()
    assert (event.actor, event.object_label, event.reseller_id is not None) == (
        "root", "rita-promo", True)
