"""A mailbox user in a real browser: signs in with its address, reads its quota, changes its
password (which the real `doveadm pw` then accepts), signs in again and opens device settings."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import typing as t
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select

from mailadmin.db import transaction
from mailadmin.models import PanelUser, Role
from mailadmin.services import accounts, domains, mailboxes, selfservice
from mailadmin.services.context import Actor

from ..test_selfservice import register_blueprints

PASSWORD = "Tr0ub4dor&3-horse"
NEW_PASSWORD = "Gl4cier-lantern-77"


def seed(app: t.Any) -> None:
    with transaction(app.extensions["mailadmin"].session_factory) as s:
        accounts.create_panel_user(s, Actor.operator(), "alice", "correct horse 9", Role.CUSTOMER)
        alice = s.scalars(select(PanelUser).where(PanelUser.username == "alice")).one()
        actor = Actor.for_user(alice, channel="panel")
        domains.add_domain(s, actor, "bücher.example")
        box = mailboxes.create_mailbox(
            s, actor, "anna@bücher.example", PASSWORD, quota=2 * 1024**3, pop3=False
        )
        # What the usage reader would have stored.
        box.usage_bytes = 1536 * 1024**2
        box.usage_read_at = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)


def sign_in(page: Page, base: str, address: str, password: str) -> None:
    page.goto(f"{base}/me/login")
    page.get_by_label("Mail address").fill(address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def dovecot_accepts(stored: str, password: str, tmp_path: Path) -> bool | None:
    binary = shutil.which("doveadm")
    if binary is None:
        return None
    config = tmp_path / "dovecot.conf"
    config.write_text("")
    result = subprocess.run([binary, "-c", str(config), "pw", "-t", stored, "-p", password],
                            capture_output=True, text=True, timeout=60, check=False)
    return result.returncode == 0 and "(verified)" in result.stdout


def test_mailbox_user_signs_in_changes_password_and_opens_device_settings(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path
) -> None:
    base, app = live_panel
    register_blueprints(app)
    seed(app)

    sign_in(page, base, "anna@bücher.example", PASSWORD)
    expect(page).to_have_url(re.compile(r"/me/$"))
    expect(page.get_by_role("heading", name="anna@bücher.example")).to_be_visible()
    expect(page.get_by_test_id("usage")).to_contain_text("1.5 GiB used of 2 GiB (75%)")
    expect(page.locator("progress.usage")).to_have_attribute("value", "75")
    expect(page.get_by_text("Read from the mail server 2026-03-01 08:30 UTC")).to_be_visible()
    expect(page.locator("[data-protocol='POP3']")).to_have_attribute("data-on", "no")
    page.screenshot(path=tmp_path / "mailbox-overview.png", full_page=True)

    # The panel's pages are closed to a mailbox user.
    denied = page.goto(f"{base}/mailboxes")
    assert denied is not None and denied.status == 403

    page.goto(f"{base}/me/password")
    page.get_by_label("Current password").fill("not the password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("The current password is wrong.")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password has been changed.")).to_be_visible()

    with app.extensions["mailadmin"].session_factory() as s:
        stored = t.cast(t.Any, selfservice.find_mailbox_by_address(
            s, "anna@xn--bcher-kva.example")).password_hash
    # The hash the mail servers will be given is one Dovecot itself accepts.
    assert dovecot_accepts(stored, NEW_PASSWORD, tmp_path) in (True, None)
    assert dovecot_accepts(stored, PASSWORD, tmp_path) in (False, None)

    page.get_by_role("button", name="Sign out", exact=True).click()
    sign_in(page, base, "anna@bücher.example", PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text("The mail address or the password is wrong")
    sign_in(page, base, "anna@bücher.example", NEW_PASSWORD)
    expect(page).to_have_url(re.compile(r"/me/$"))

    page.get_by_role("link", name="Device settings").first.click()
    expect(page.get_by_role("heading", name="Set up your phone or computer")).to_be_visible()
    servers = page.get_by_test_id("servers")
    expect(servers.locator("tr[data-protocol='IMAP']")).to_contain_text("993")
    expect(servers.locator("tr[data-protocol='SMTP']")).to_contain_text("587")
    expect(servers.locator("tr[data-protocol='POP3']")).to_have_count(0)
    expect(page.get_by_test_id("advice")).to_contain_text("Use IMAP")
    expect(page.get_by_test_id("ascii-note")).to_be_visible()
    expect(page.get_by_role("heading", name="Thunderbird")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download profile for iPhone, iPad and Mac").click()
    download = download_info.value
    assert download.suggested_filename == "anna-at-xn--bcher-kva.example.mobileconfig"
    page.screenshot(path=tmp_path / "mailbox-devices.png", full_page=True)
