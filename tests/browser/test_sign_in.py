from __future__ import annotations

import re
import typing as t
from pathlib import Path

from playwright.sync_api import Page, expect

from mailadmin.db import transaction
from mailadmin.models import Role
from mailadmin.services import accounts
from mailadmin.services.context import Actor


def create_user(app: t.Any, username: str, password: str, role: Role = Role.ADMIN) -> None:
    with transaction(app.extensions["mailadmin"].session_factory) as session:
        accounts.create_panel_user(session, Actor.operator(), username, password, role)


def test_admin_signs_in_and_is_locked_after_five_failures(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path
) -> None:
    base, app = live_panel
    create_user(app, "admin", "correct horse 9")
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("correct horse 9")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_test_id("count-resellers")).to_have_text("0")
    page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()

    for attempt in range(5):
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password").fill(f"wrong password {attempt}")
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins for this account")


def test_phone_screen_collapses_the_navigation(page: Page, live_panel: tuple[str, t.Any]) -> None:
    base, app = live_panel
    create_user(app, "admin", "correct horse 9")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("correct horse 9")
    page.get_by_role("button", name="Sign in").click()
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_hidden()
    menu.click()
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
