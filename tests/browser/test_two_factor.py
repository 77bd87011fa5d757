"""Two-factor sign-in in a real browser: a panel user enrols by the page's QR code and key
(codes computed with pyotp from the key shown), signs out, signs in with password and code,
signs in once with a recovery code, which then no longer works. The same for a mailbox user
at /me, and "remember this browser"."""

from __future__ import annotations

import datetime as dt
import re
import time
import typing as t
from pathlib import Path

import pyotp
from playwright.sync_api import Page, expect

from mailadmin.db import transaction
from mailadmin.models import Role
from mailadmin.services import accounts, domains, mailboxes
from mailadmin.services.context import Actor

from ..test_selfservice import register_blueprints

PASSWORD = "correct horse 9"
BOX_PASSWORD = "Tr0ub4dor&3-horse"


def code_for(secret: str, steps_from_now: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(dt.datetime.now(dt.UTC)) + steps_from_now)


def steady() -> None:
    """Keep away from the end of a 30-second step, so a code typed is still current."""
    while 30 - time.time() % 30 < 5:
        time.sleep(0.5)


def seed(app: t.Any) -> None:
    with transaction(app.extensions["mailadmin"].session_factory) as s:
        alice = accounts.create_panel_user(s, Actor.operator(), "alice", PASSWORD,
                                           Role.CUSTOMER)
        actor = Actor.for_user(alice, channel="panel")
        domains.add_domain(s, actor, "alice.example")
        mailboxes.create_mailbox(s, actor, "anna@alice.example", BOX_PASSWORD)


def sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def enrol(page: Page, settings_url: str, tmp_path: Path, name: str) -> tuple[str, list[str]]:
    page.goto(settings_url)
    page.get_by_role("button", name="Set up two-factor sign-in").click()
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    # The QR code is drawn by the server and really loads under the strict CSP.
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    page.screenshot(path=tmp_path / f"{name}-enrol.png", full_page=True)
    steady()
    # The previous step's code: the current and the next one stay unused for signing in.
    page.get_by_label("Code").fill(code_for(secret, -1))
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_text("Two-factor sign-in is on.")).to_be_visible()
    codes = [c.strip() for c in page.get_by_test_id("recovery-codes").locator("li").all_inner_texts()]
    assert len(codes) == 10
    return secret, codes


def test_panel_user_enrols_signs_in_with_a_code_and_once_with_a_recovery_code(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path
) -> None:
    base, app = live_panel
    seed(app)
    sign_in(page, base)
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    secret, codes = enrol(page, f"{base}/account/two-factor", tmp_path, "panel")
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()

    # Password, then the code from the app.
    sign_in(page, base)
    expect(page).to_have_url(re.compile(r"/sign-in/code$"))
    page.screenshot(path=tmp_path / "code-step.png", full_page=True)
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").or_(page.locator(".invalid-feedback"))).to_contain_text(
        "The code is wrong")
    steady()
    page.get_by_label("Code").fill(code_for(secret))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    page.get_by_role("button", name="Sign out", exact=True).click()

    # Password, then a recovery code: it works once.
    sign_in(page, base)
    page.get_by_label("Code").fill(codes[4])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.get_by_text("9 recovery codes are left")).to_be_visible()
    page.get_by_role("button", name="Sign out", exact=True).click()
    sign_in(page, base)
    page.get_by_label("Code").fill(codes[4])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/sign-in/code$"))
    expect(page.locator(".invalid-feedback")).to_contain_text("used already")
    page.screenshot(path=tmp_path / "recovery-code-reused.png", full_page=True)


def test_mailbox_user_enrols_at_me_and_a_remembered_browser_skips_the_code(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path
) -> None:
    base, app = live_panel
    register_blueprints(app)
    seed(app)

    def sign_in_mailbox() -> None:
        page.goto(f"{base}/me/login")
        page.get_by_label("Mail address").fill("anna@alice.example")
        page.get_by_label("Password").fill(BOX_PASSWORD)
        page.get_by_role("button", name="Sign in").click()

    sign_in_mailbox()
    expect(page).to_have_url(re.compile(r"/me/$"))
    page.get_by_role("link", name="Two-factor sign-in").click()
    secret, _ = enrol(page, page.url, tmp_path, "mailbox")
    page.get_by_role("button", name="Sign out", exact=True).click()

    sign_in_mailbox()
    expect(page).to_have_url(re.compile(r"/sign-in/code$"))
    steady()
    page.get_by_label("Code").fill(code_for(secret))
    page.get_by_label("Remember this browser for 30 days").check()
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/me/$"))
    page.get_by_role("button", name="Sign out", exact=True).click()
    # Remembered: the password alone signs in on this browser ...
    sign_in_mailbox()
    expect(page).to_have_url(re.compile(r"/me/$"))
    # ... until the user signs out everywhere.
    page.get_by_test_id("sign-out-everywhere").click()
    sign_in_mailbox()
    expect(page).to_have_url(re.compile(r"/sign-in/code$"))
