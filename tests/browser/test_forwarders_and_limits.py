"""In Chromium, at desktop (1280 px) and phone (390 px) width: adding a destination to an
existing forwarder keeps the old ones, removing a forwarder asks first, and a customer at the
mailbox limit sees "5 of 5" and no form that could only be refused."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from mailadmin.db import transaction
from mailadmin.models import PanelUser
from mailadmin.services import accounts, domains, forwarders, mailboxes, packages
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec

pytestmark = pytest.mark.browser

PASSWORD = "Tr0ub4dor&3-horse"
WIDTHS = [pytest.param(1280, id="desktop"), pytest.param(390, id="phone")]


def _actor(factory: t.Any, name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


def seed(app: t.Any, mailbox_count: int) -> None:
    """alice on a package of 5 mailboxes with a.example, `mailbox_count` mailboxes and the
    forwarder sales@ -> one@remote.example, two@remote.example."""
    factory = app.extensions["mailadmin"].session_factory
    with transaction(factory) as s:
        accounts.create_panel_user(s, Actor.operator(), "rita", "correct horse 9",
                                   accounts.Role.RESELLER)
        accounts.create_panel_user(s, Actor.operator(), "alice", "correct horse 9",
                                   accounts.Role.CUSTOMER, reseller_name="rita")
    rita = _actor(factory, "rita")
    with transaction(factory) as s:
        plan = packages.create_package(s, rita, "Five", PackageSpec(
            max_mailboxes=5, max_forwarders=5, max_total_quota=5 * 1024**3,
            default_quota=512 * 1024**2))
        packages.assign_package(s, rita, "alice", plan.id)
    alice = _actor(factory, "alice")
    with transaction(factory) as s:
        domains.add_domain(s, alice, "a.example")
        for i in range(mailbox_count):
            mailboxes.create_mailbox(s, alice, f"box{i}@a.example", PASSWORD,
                                     quota=512 * 1024**2)
        forwarders.set_forwarder(s, alice, "sales@a.example",
                                 ["one@remote.example", "two@remote.example"])


def sign_in(page: Page, base: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("correct horse 9")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/dashboard")


def no_sideways_scroll(page: Page) -> None:
    """Nothing wider than the screen: wide tables scroll inside their own box."""
    assert page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"
    ), page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def within_screen(page: Page, cells: t.Any) -> None:
    """Every cell and link is inside the window: none hidden off the right edge."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert cells.count() > 0
    for i in range(cells.count()):
        box = cells.nth(i).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (
            i, box, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_adding_a_destination_keeps_the_old_ones(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path, width: int,
) -> None:
    base, app = live_panel
    seed(app, 1)
    sign_in(page, base, width)
    page.goto(f"{base}/forwarders")
    page.get_by_role("link", name="New forwarder").click()
    expect(page.get_by_text("are added to the ones it has")).to_be_visible()
    page.get_by_label("Address", exact=True).fill("sales")
    page.get_by_label("Domain", exact=True).select_option("a.example")
    page.get_by_label("Deliver to").fill("three@remote.example")
    page.get_by_role("button", name="Add forwarder").click()
    expect(page.get_by_text(
        "Added 1 destination; this forwarder now delivers to one@remote.example, "
        "two@remote.example, three@remote.example.")).to_be_visible()
    row = page.locator("tr", has_text="sales@a.example")
    for address in ("one@remote.example", "two@remote.example", "three@remote.example"):
        expect(row).to_contain_text(address)
    no_sideways_scroll(page)
    page.screenshot(path=tmp_path / f"forwarder-added-{width}.png", full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_removing_a_forwarder_asks_first(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path, width: int,
) -> None:
    base, app = live_panel
    seed(app, 1)
    sign_in(page, base, width)
    page.goto(f"{base}/forwarders")
    within_screen(page, page.locator("tr", has_text="sales@a.example").locator("td, a"))
    page.locator("tr", has_text="sales@a.example").get_by_role("link", name="Remove").click()
    expect(page.get_by_test_id("removal-effect")).to_contain_text(
        "Mail to sales@a.example will no longer be delivered to one@remote.example, "
        "two@remote.example.")
    # The box is checked on the server: an unticked submit changes nothing.
    page.get_by_role("button", name="Remove forwarder").click()
    expect(page.get_by_text("Tick the box to confirm the removal.")).to_be_visible()
    page.goto(f"{base}/forwarders")
    expect(page.locator("tr", has_text="sales@a.example")).to_have_count(1)
    page.locator("tr", has_text="sales@a.example").get_by_role("link", name="Remove").click()
    page.get_by_label("Yes, remove this forwarder").check()
    page.get_by_role("button", name="Remove forwarder").click()
    expect(page.get_by_text("Forwarder sales@a.example removed.")).to_be_visible()
    expect(page.locator("tr", has_text="sales@a.example")).to_have_count(0)
    no_sideways_scroll(page)
    page.screenshot(path=tmp_path / f"forwarder-removed-{width}.png", full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_at_the_mailbox_limit_the_customer_sees_5_of_5_and_no_broken_form(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path, width: int,
) -> None:
    base, app = live_panel
    seed(app, 5)
    sign_in(page, base, width)
    expect(page.get_by_test_id("allowance-mailboxes")).to_have_text("5 of 5 mailboxes")
    expect(page.get_by_test_id("allowance-quota")).to_have_text("2.5 GiB of 5 GiB allocated")
    no_sideways_scroll(page)
    page.goto(f"{base}/mailboxes")
    expect(page.get_by_test_id("allowance-mailboxes")).to_have_text("5 of 5 mailboxes")
    expect(page.get_by_test_id("new-mailbox-unavailable")).to_contain_text(
        "You have 5 of 5 mailboxes your package allows.")
    expect(page.get_by_role("link", name="New mailbox")).to_have_count(0)
    no_sideways_scroll(page)
    page.goto(f"{base}/mailboxes/new")
    expect(page.get_by_test_id("new-mailbox-unavailable")).to_contain_text(
        "No new mailbox can be added now.")
    expect(page.locator("input[type=password]")).to_have_count(0)
    expect(page.get_by_role("button", name="Create mailbox")).to_have_count(0)
    no_sideways_scroll(page)
    page.screenshot(path=tmp_path / f"limit-{width}.png", full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_device_settings_are_readable_without_hidden_columns(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path, width: int,
) -> None:
    base, app = live_panel
    seed(app, 1)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{base}/me/login")
    page.get_by_label("Mail address").fill("box0@a.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{base}/me/devices")
    table = page.get_by_test_id("servers")
    expect(table).to_contain_text("box0@a.example")
    within_screen(page, table.locator("td"))
    no_sideways_scroll(page)
    page.screenshot(path=tmp_path / f"devices-{width}.png", full_page=True)
