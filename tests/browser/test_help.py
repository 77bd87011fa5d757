"""The help centre in a real browser: a mailbox user with POP3 off opens "POP3 or IMAP" from
the device page and reads that POP3 is off for its mailbox, searches "503" and gets the
bounce article first, answers "Yes" once and sees the count go up by one; a second answer
(from another tab that still shows the buttons) is not counted."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select

from mailadmin.db import transaction
from mailadmin.models import PanelUser, Role
from mailadmin.services import accounts, domains, mailboxes
from mailadmin.services.context import Actor

from ..test_selfservice import register_blueprints

PASSWORD = "Tr0ub4dor&3-horse"


def seed(app: t.Any) -> None:
    with transaction(app.extensions["mailadmin"].session_factory) as s:
        accounts.create_panel_user(s, Actor.operator(), "alice", "correct horse 9", Role.CUSTOMER)
        alice = s.scalars(select(PanelUser).where(PanelUser.username == "alice")).one()
        actor = Actor.for_user(alice, channel="panel")
        domains.add_domain(s, actor, "alice.example")
        mailboxes.create_mailbox(s, actor, "anna@alice.example", PASSWORD, pop3=False)


def test_mailbox_user_reads_searches_and_votes(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path
) -> None:
    base, app = live_panel
    register_blueprints(app)
    seed(app)

    page.goto(f"{base}/me/login")
    page.get_by_role("link", name="Can't sign in?").wait_for()
    page.get_by_label("Mail address").fill("anna@alice.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/me/$"))

    page.goto(f"{base}/me/devices")
    page.get_by_role("link", name="POP3 or IMAP: which one should I choose?").click()
    expect(page).to_have_url(re.compile(r"/help/pop-vs-imap$"))
    article = page.get_by_test_id("help-article")
    expect(article.get_by_role("heading", level=1)).to_have_text(
        "POP3 or IMAP: which one should I choose?")
    expect(article).to_contain_text("POP3 is off for this mailbox; ask your host or use IMAP.")
    expect(article).to_contain_text("Your mailbox anna@alice.example:")
    page.screenshot(path=tmp_path / "help-pop-vs-imap.png", full_page=True)

    page.get_by_label("Search the help").fill("503")
    page.get_by_role("button", name="Search").click()
    hits = page.get_by_test_id("help-hit")
    expect(hits.first).to_have_attribute("data-slug", "503-valid-rcpt-sender-verification")
    expect(hits.first.locator("mark").first).to_have_text("503")
    page.screenshot(path=tmp_path / "help-search.png", full_page=True)

    # A second tab opened before voting still shows the buttons.
    second = page.context.new_page()
    hits.first.locator("a").click()
    expect(page).to_have_url(re.compile(r"/help/503-valid-rcpt-sender-verification$"))
    second.goto(page.url)
    count = page.get_by_test_id("helpful-count")
    expect(count).to_have_text("0 people found this useful")
    page.get_by_test_id("helpful").get_by_role("button", name="Yes").click()
    expect(page.get_by_text("Thank you for your answer.")).to_be_visible()
    expect(count).to_have_text("1 person found this useful")
    expect(page.get_by_test_id("helpful").get_by_role("button", name="Yes")).to_have_count(0)

    second.get_by_test_id("helpful").get_by_role("button", name="Yes").click()
    expect(second.get_by_text("your first answer counts")).to_be_visible()
    expect(second.get_by_test_id("helpful-count")).to_have_text("1 person found this useful")
    page.reload()
    expect(count).to_have_text("1 person found this useful")
    second.screenshot(path=tmp_path / "help-voted.png", full_page=True)


def test_admin_edits_a_shipped_article_with_preview(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path
) -> None:
    base, app = live_panel
    factory = app.extensions["mailadmin"].session_factory
    with transaction(factory) as s:
        accounts.create_panel_user(s, Actor.operator(), "root", "correct horse 9", Role.ADMIN)

    page.goto(f"{base}/login")
    page.get_by_label("User name").fill("root")
    page.get_by_label("Password").fill("correct horse 9")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Help articles").first.click()
    page.get_by_role("link", name="How do I read my mail in a web browser (webmail)?").click()
    page.get_by_label("Text (Markdown)").fill(
        "Open **our webmail** at {{ webmail }}.\n\n<script>alert(1)</script>")
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_test_id("preview")
    expect(preview.locator("strong")).to_have_text("our webmail")
    expect(preview).not_to_contain_text("alert(1)")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Article 'webmail' saved.")).to_be_visible()
    expect(page.get_by_text("Edited here: upgrades keep this text.")).to_be_visible()

    # As after an upgrade that ships a newer text: the local one stays, the page says so.
    from mailadmin.models import HelpArticle

    with transaction(factory) as s:
        row = s.scalars(select(HelpArticle).where(HelpArticle.slug == "webmail")).one()
        row.shipped_hash = "0" * 64
    page.reload()
    expect(page.get_by_test_id("newer-shipped")).to_contain_text("A newer version")
    page.screenshot(path=tmp_path / "help-edit.png", full_page=True)
    page.get_by_role("button", name="Use the shipped version (drops my changes)").click()
    expect(page.get_by_test_id("newer-shipped")).to_have_count(0)
    page.goto(f"{base}/help/webmail")
    expect(page.get_by_test_id("help-article")).to_contain_text("Webmail lets you read")
