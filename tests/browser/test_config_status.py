from __future__ import annotations

import typing as t

from playwright.sync_api import Page, expect

from mailadmin.db import transaction
from mailadmin.models import Role
from mailadmin.services import domains
from mailadmin.services.context import Actor

from .test_sign_in import create_user


def test_revisions_page_notices_a_change_without_reload(
    page: Page, live_panel: tuple[str, t.Any]
) -> None:
    base, app = live_panel
    create_user(app, "root", "correct horse 9", Role.ADMIN)
    create_user(app, "alice", "correct horse 9", Role.CUSTOMER)
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill("root")
    page.get_by_label("Password").fill("correct horse 9")
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{base}/admin/revisions")
    status = page.locator("#config-status")
    expect(status).to_have_class("alert alert-success")
    with transaction(app.extensions["mailadmin"].session_factory) as session:
        domains.add_domain(session, Actor.operator(), "a.example", customer="alice")
    expect(status).to_contain_text("Changes are waiting", timeout=12_000)
    expect(status).to_have_class("alert alert-warning")
