"""axe-core in Chromium on every page of the panel for every role: no serious or critical
violation anywhere.

The pages are the form crawler's: every GET route of the app, its URL variables filled with
the seeded world's names and ids (`tests.test_form_crawler.seed` and `get_pages`); each role
(server admin, reseller, customer, a reseller acting as its customer, mailbox user) visits all
of them, and every page that role may see (200, HTML) is checked after its scripts ran.
axe-core is the axe.min.js shipped in the axe-playwright-python wheel.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page

from mailadmin.db import transaction
from mailadmin.models import Role
from mailadmin.services import accounts
from mailadmin.services.context import Actor

from ..dnsserver import LocalDns
from ..test_form_crawler import (  # noqa: F401  (dns: the loopback DNS fixture)
    BOX_PASSWORD,
    PASSWORD,
    ROLES,
    dns,
    get_pages,
    seed,
)

pytestmark = pytest.mark.browser

#: Answers that are not pages a person reads: files, JSON, XML, redirects to other sites.
NOT_PAGES = ("/.well-known/", "/mail/config-v1.1.xml", "/autodiscover/", "/Autodiscover/",
             "/audit/export.csv", "/me/device.mobileconfig", "/password-rules.json",
             "/admin/config/status", "/webmail", "/mailboxes/export.csv", "/live-status")
SEVERE = {"serious", "critical"}


def _sign_in(page: Page, base: str, role: str) -> None:
    if role == "mailbox":
        page.goto(f"{base}/me/login")
        page.get_by_label("Mail address").fill("info@alice.example")
        page.get_by_label("Password").fill(BOX_PASSWORD)
    else:
        page.goto(f"{base}/login")
        name = {"admin": "root", "reseller": "rita", "acting": "rita", "customer": "alice"}[role]
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_load_state()
    assert "/login" not in page.url, (role, page.url)
    if role == "acting":
        page.goto(f"{base}/customers/alice")
        page.locator("form[action$='/act'] button[type=submit]").click()
        page.wait_for_load_state()


def test_axe_finds_no_serious_violation_on_any_page(
    live_panel: tuple[str, t.Any], browser: Browser, tmp_path: Path,
    dns: LocalDns,  # noqa: F811
) -> None:
    base, app = live_panel
    factory = app.extensions["mailadmin"].session_factory

    def make_user(username: str, role: str = "customer", password: str = PASSWORD,
                  reseller: str | None = None) -> t.Any:
        with transaction(factory) as session:
            return accounts.create_panel_user(session, Actor.operator(), username, password,
                                              Role(role), reseller_name=reseller)

    values = seed(factory, make_user, tmp_path / "server", dns.resolver)
    urls = [u for u in get_pages(app, values) if not u.startswith(NOT_PAGES)]
    axe = Axe()
    problems: list[str] = []
    checked: dict[str, int] = {}
    # Every role at desktop width; the customer and the mailbox user on a phone too.
    for role, width in [*((r, 1280) for r in ROLES), ("customer", 390), ("mailbox", 390)]:
        # bypass_csp: the panel allows only its own script files; axe is injected by the test.
        context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
        page = context.new_page()
        _sign_in(page, base, role)
        label = f"{role}@{width}"
        checked[label] = 0
        for url in urls:
            response = page.goto(base + url)
            if response is None or response.status != 200 or "text/html" not in (
                    response.headers.get("content-type", "")):
                continue
            if "/login" in page.url and not url.endswith("/login"):
                continue  # signed out by the page (e.g. "sign out everywhere" is POST only)
            page.wait_for_load_state("networkidle")
            checked[label] += 1
            result = axe.run(page)
            for violation in result.response["violations"]:
                if violation["impact"] in SEVERE:
                    targets = [", ".join(n["target"]) for n in violation["nodes"][:3]]
                    problems.append(f"{label} {url}: {violation['id']} ({violation['impact']}): "
                                    f"{violation['help']} at {targets}")
        context.close()
    assert all(count >= 5 for count in checked.values()), checked
    assert not problems, "\n".join(problems)
