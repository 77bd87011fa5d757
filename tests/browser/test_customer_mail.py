from __future__ import annotations

import re
import typing as t
from pathlib import Path

from playwright.sync_api import Page, expect

from mailadmin.models import Role

from .test_sign_in import create_user

PASSWORD = "Tr0ub4dor&3-horse"


def test_customer_creates_mailbox_turns_pop3_off_sets_quota(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path
) -> None:
    base, app = live_panel
    create_user(app, "alice", "correct horse 9", Role.CUSTOMER)
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("correct horse 9")
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("link", name="Domains").click()
    page.get_by_label("Domain name").fill("bücher.example")
    page.get_by_role("button", name="Add domain").click()
    expect(page.get_by_text("Domain bücher.example added.")).to_be_visible()

    page.get_by_role("link", name="Mailboxes").first.click()
    page.get_by_role("link", name="New mailbox").click()
    page.get_by_label("Name").fill("info")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create mailbox").click()
    expect(page.get_by_text("Mailbox info@bücher.example created.")).to_be_visible()

    page.get_by_role("link", name="info@bücher.example", exact=True).click()
    expect(page).to_have_url(re.compile(r"/mailboxes/info@xn--bcher-kva\.example$"))
    page.get_by_label("POP3", exact=True).uncheck()
    page.get_by_label("Quota", exact=True).fill("750M")
    page.get_by_role("button", name="Save quota and protocols").click()
    expect(page.get_by_text("Quota and protocols saved.")).to_be_visible()

    page.get_by_role("link", name="Mailboxes").first.click()
    row = page.locator("tr[data-address='info@xn--bcher-kva.example']")
    expect(row.locator("[data-protocol='POP3']")).to_have_attribute("data-on", "no")
    expect(row.locator("[data-protocol='IMAP']")).to_have_attribute("data-on", "yes")
    expect(row.get_by_test_id("quota")).to_contain_text("750 MiB")
    page.screenshot(path=tmp_path / "mailboxes.png", full_page=True)

    # A refusal is shown beside the field, and nothing changes.
    page.get_by_role("link", name="New mailbox").click()
    page.get_by_label("Name").fill("info")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create mailbox").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("exists already")
