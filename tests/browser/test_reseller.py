"""A reseller's day: the admin creates it, it makes a package and a customer, acts as the customer."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

from playwright.sync_api import Page, expect

from mailadmin.models import Role

from .test_sign_in import create_user

ADMIN_PASSWORD = "correct horse 9"
RESELLER_PASSWORD = "staple battery 42"
CUSTOMER_PASSWORD = "purple monkey 77"


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))


def test_reseller_sells_a_package_and_acts_as_the_customer(
    page: Page, live_panel: tuple[str, t.Any], tmp_path: Path
) -> None:
    base, app = live_panel
    if "customers" not in app.blueprints:
        from panel.customers import bp as customers_bp
        from panel.packages import bp as packages_bp
        from panel.resellers import bp as resellers_bp

        for blueprint in (resellers_bp, customers_bp, packages_bp):
            app.register_blueprint(blueprint)
    create_user(app, "root", ADMIN_PASSWORD, Role.ADMIN)

    # The server admin creates a reseller with an allocation.
    sign_in(page, base, "root", ADMIN_PASSWORD)
    page.get_by_role("link", name="Resellers").click()
    page.get_by_label("User name").fill("rita")
    page.get_by_label("Password").fill(RESELLER_PASSWORD)
    page.get_by_label("Customers", exact=True).fill("5")
    page.get_by_label("Mailboxes", exact=True).fill("50")
    page.get_by_label("Total quota").fill("50G")
    page.get_by_role("button", name="Create reseller").click()
    expect(page.get_by_text("Reseller rita created.")).to_be_visible()
    expect(page.locator("tr[data-reseller='rita']")).to_contain_text("0 / 5")
    page.get_by_role("button", name="Sign out").click()

    # The reseller makes a package; one that would exceed its allocation is refused.
    sign_in(page, base, "rita", RESELLER_PASSWORD)
    page.get_by_role("link", name="Packages").click()
    page.get_by_label("Name", exact=True).fill("Huge")
    page.get_by_label("Mailboxes", exact=True).fill("51")
    page.get_by_label("Quota per mailbox").fill("1G")
    page.get_by_role("button", name="Create package").click()
    expect(page.locator(".invalid-feedback, .alert-danger").first).to_contain_text(
        "allocation allows 50 mailboxes")
    page.get_by_label("Name", exact=True).fill("Starter")
    page.get_by_label("Mailboxes", exact=True).fill("10")
    page.get_by_label("Quota per mailbox").fill("1G")
    page.get_by_role("button", name="Create package").click()
    expect(page.get_by_text("Package Starter created.")).to_be_visible()

    # ... and a customer on it.
    page.get_by_role("link", name="Customers").click()
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(CUSTOMER_PASSWORD)
    page.get_by_label("Package").select_option(label="Starter")
    page.get_by_role("button", name="Create customer").click()
    expect(page.get_by_text("Customer alice created.")).to_be_visible()

    # Acting as the customer: a banner, the customer's navigation, a domain added.
    page.get_by_role("button", name="Act as alice").click()
    expect(page.get_by_test_id("acting-banner")).to_contain_text("acting as customer alice")
    page.get_by_role("link", name="Domains").first.click()
    page.get_by_label("Domain name").fill("alice-shop.example")
    page.get_by_role("button", name="Add domain").click()
    expect(page.get_by_text("Domain alice-shop.example added.")).to_be_visible()
    page.get_by_role("link", name="Mailboxes").first.click()
    page.get_by_role("link", name="New mailbox").click()
    page.get_by_label("Name", exact=True).fill("sales")
    page.get_by_label("Password", exact=True).fill("Tr0ub4dor&3-horse")
    page.get_by_label("Password again").fill("Tr0ub4dor&3-horse")
    page.get_by_role("button", name="Create mailbox").click()
    expect(page.get_by_text("Mailbox sales@alice-shop.example created.")).to_be_visible()
    page.screenshot(path=tmp_path / "acting.png", full_page=True)

    # Back to the reseller's own account; the audit log shows who did it as whom.
    page.goto(f"{base}/customers/-/acting")
    page.get_by_role("button", name="Return to my account").first.click()
    expect(page.get_by_text("You are back in your own account (rita).")).to_be_visible()
    expect(page.locator("tr[data-customer='alice']")).to_contain_text("Starter")
    page.get_by_role("link", name="Audit log").click()
    row = page.locator("tr", has_text="domain.create")
    expect(row).to_contain_text("rita")
    expect(row).to_contain_text("as alice")
    mailbox_row = page.locator("tr", has_text="mailbox.create")
    expect(mailbox_row).to_contain_text("rita")
    expect(mailbox_row).to_contain_text("as alice")
    expect(page.locator("tr", has_text="customer.act_as").first).to_contain_text("as alice")
