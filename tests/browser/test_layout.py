"""Layout in Chromium: the top menu on one line at 1280 px for every role, visible focus on
the controls, the device settings table and the mailbox list readable at 390 px without
hidden columns, sorting by usage and bulk-suspending two mailboxes at both widths."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from mailadmin.db import transaction
from mailadmin.models import Mailbox, Role, utcnow
from mailadmin.services import accounts, counters
from mailadmin.services.context import Actor

from ..dnsserver import LocalDns
from ..test_form_crawler import BOX_PASSWORD, PASSWORD, dns, seed  # noqa: F401  (dns: fixture)
from .test_accessibility_axe import _sign_in

pytestmark = pytest.mark.browser

WIDTHS = [pytest.param(1280, id="desktop"), pytest.param(390, id="phone")]


@pytest.fixture
def world(live_panel: tuple[str, t.Any], tmp_path: Path,
          dns: LocalDns) -> tuple[str, t.Any]:  # noqa: F811
    base, app = live_panel
    factory = app.extensions["mailadmin"].session_factory

    def make_user(username: str, role: str = "customer", password: str = PASSWORD,
                  reseller: str | None = None) -> t.Any:
        with transaction(factory) as session:
            return accounts.create_panel_user(session, Actor.operator(), username, password,
                                              Role(role), reseller_name=reseller)

    seed(factory, make_user, tmp_path / "server", dns.resolver)
    with transaction(factory) as s:
        for local, used in (("info", 700), ("plain", 20)):
            s.execute(update(Mailbox).where(Mailbox.local_part == local)
                      .values(usage_bytes=used * 1024**2, usage_read_at=utcnow()))
        # the rows were edited by hand: the per-domain counters are rebuilt from them
        counters.recount(s, Actor.operator())
    return base, app


@pytest.mark.parametrize("role", ["admin", "reseller", "customer", "acting", "mailbox"])
def test_top_menu_is_one_line_at_desktop_width(
    world: tuple[str, t.Any], browser: Browser, role: str, tmp_path: Path,
) -> None:
    base, _ = world
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _sign_in(page, base, role)
    page.goto(base + ("/me/" if role == "mailbox" else "/dashboard"))
    tops = page.locator("#mainnav .nav-link, #mainnav .navbar-text, #mainnav button").evaluate_all(
        "els => els.map(e => Math.round(e.getBoundingClientRect().top))")
    page.screenshot(path=tmp_path / f"menu-{role}.png")
    assert tops and max(tops) - min(tops) < 12, (role, tops)
    rights = page.locator("nav.navbar a, nav.navbar button").evaluate_all(
        "els => els.filter(e => e.offsetParent).map(e => e.getBoundingClientRect().right)")
    assert max(rights) <= 1280, (role, max(rights))
    height = page.locator("nav.navbar").evaluate("e => e.getBoundingClientRect().height")
    assert height < 80, (role, height)
    context.close()


def test_focus_is_visible_on_controls(world: tuple[str, t.Any], page: Page) -> None:
    base, _ = world
    page.set_viewport_size({"width": 1280, "height": 900})
    _sign_in(page, base, "customer")
    page.goto(base + "/mailboxes")
    page.keyboard.press("Tab")  # the skip link first
    for _ in range(4):
        page.keyboard.press("Tab")
        outline = page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return [s.outlineStyle, parseFloat(s.outlineWidth), s.boxShadow]; }")
        style, width, shadow = outline
        assert (style != "none" and width >= 2) or shadow != "none", outline


@pytest.mark.parametrize("width", WIDTHS)
def test_sort_by_usage_and_bulk_suspend_two(
    world: tuple[str, t.Any], page: Page, width: int,
) -> None:
    base, _ = world
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, base, "customer")
    page.goto(base + "/mailboxes")
    # Just after a navigation the style sheets may not apply yet, so the phone's sort links and
    # the table header's can both count as visible for a moment: they lead to the same page.
    page.locator('a[data-sort="usage"]:visible').first.click()
    page.wait_for_load_state("load")
    expect(page.locator("tbody tr[data-address]").first).to_have_attribute(
        "data-address", "plain@alice.example")
    page.locator('a[data-sort="usage"]:visible').first.click()  # again: the other way round
    page.wait_for_load_state("load")
    expect(page.locator("tbody tr[data-address]").first).to_have_attribute(
        "data-address", "info@alice.example")
    if width > 575:
        expect(page.locator('th[aria-sort="descending"]')).to_contain_text("Usage")
    # the table header's box on a desktop, the one above the cards on a phone (either ticks all)
    page.locator("input[data-select-all]:visible").first.check()
    expect(page.get_by_label("Select info@alice.example")).to_be_checked()
    page.get_by_label("With the selected mailboxes").select_option("suspend")
    page.get_by_test_id("bulk-submit").click()
    expect(page.get_by_test_id("bulk-targets").locator("li")).to_have_count(2)
    page.get_by_label("Yes, suspend these 2 mailboxes").check()
    page.get_by_test_id("bulk-confirm-submit").click()
    expect(page.get_by_role("alert").filter(has_text="2 mailboxes suspended.")).to_be_visible()
    expect(page.locator('[data-testid="status"]').filter(has_text="login suspended")
           ).to_have_count(2)
    # Sorting by status puts the suspended ones last, and the list still reads on a phone.
    page.locator('a[data-sort="status"]:visible').first.click()
    page.wait_for_load_state("load")
    rows = page.locator("tbody tr[data-address]")
    expect(rows.first.locator('[data-testid="status"]')).to_contain_text("login suspended")
    _no_hidden_columns(page, '[data-testid="mailbox-table"]')


def _no_hidden_columns(page: Page, table: str) -> None:
    """Every cell of the table lies within the window, and the page does not scroll sideways."""
    viewport = page.viewport_size
    assert viewport is not None
    overflow = page.locator(f"{table} tbody td").evaluate_all(
        f"cells => cells.filter(c => c.getBoundingClientRect().right > {viewport['width']} + 1"
        " || c.getBoundingClientRect().left < -1).length")
    assert overflow == 0
    assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"] + 1


@pytest.mark.parametrize("width", WIDTHS)
def test_device_settings_read_on_a_phone(
    world: tuple[str, t.Any], page: Page, width: int, tmp_path: Path,
) -> None:
    base, _ = world
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, base, "customer")
    page.goto(base + "/mailboxes/info@alice.example/devices")
    servers = page.get_by_test_id("servers")
    expect(servers).to_be_visible()
    _no_hidden_columns(page, '[data-testid="servers"]')
    for label in ("Server", "Port", "Security", "User name"):
        cells = servers.locator(f'td[data-label="{label}"]')
        expect(cells.first).to_be_visible()
    page.screenshot(path=tmp_path / f"devices-{width}.png", full_page=True)
    # The mailbox user's own device page is the same table.
    context = page.context.browser.new_context(viewport={"width": width, "height": 900})
    own = context.new_page()
    own.goto(base + "/me/login")
    own.get_by_label("Mail address").fill("info@alice.example")
    own.get_by_label("Password").fill(BOX_PASSWORD)
    own.locator("main form button[type=submit]").first.click()
    own.goto(base + "/me/devices")
    _no_hidden_columns(own, '[data-testid="servers"]')
    context.close()
