"""A customer opens Deliverability, makes a DKIM key, copies the recommended records, and once
the test DNS server (dnsmasq on loopback) serves them, "Check again" turns every line green."""

from __future__ import annotations

import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from mailadmin.db import transaction
from mailadmin.dnshealth import RECORDS
from mailadmin.models import Role
from mailadmin.services import server_settings
from mailadmin.services.context import Actor
from mailadmin.services.deliverability import RECHECK_SECONDS

from ..dnsserver import LocalDns, zone_records
from .test_sign_in import create_user

HOST, SERVER_IP = "mx.hoster.test", "192.0.2.25"


@pytest.fixture
def dns(tmp_path: Path) -> Iterator[LocalDns]:
    server = LocalDns(tmp_path, zones=("test", "in-addr.arpa"))
    server.serve()
    yield server
    server.stop()


def test_customer_copies_the_records_and_check_again_turns_green(
        page: Page, live_panel: tuple[str, t.Any], tmp_path: Path, dns: LocalDns) -> None:
    base, app = live_panel
    with transaction(app.extensions["mailadmin"].session_factory) as s:
        server_settings.update_settings(s, Actor.operator(), {
            "mail_hostname": HOST, "smtp_host": HOST, "imap_host": HOST, "pop3_host": HOST,
            "mail_server_addresses": SERVER_IP, "dns_resolvers": dns.resolver,
            "dkim_key_dir": str(tmp_path / "dkim")})
    create_user(app, "alice", "correct horse 9", Role.CUSTOMER)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("correct horse 9")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Domains").click()
    page.get_by_label("Domain name").fill("shop.test")
    page.get_by_role("button", name="Add domain").click()
    expect(page.get_by_role("heading", name="shop.test")).to_be_visible()
    page.get_by_role("link", name="Deliverability").click()
    expect(page.get_by_role("heading", name="Deliverability of shop.test")).to_be_visible()
    expect(page.get_by_test_id("checked-at")).to_have_text("Not checked yet")

    page.get_by_role("button", name="Create a DKIM key").click()
    expect(page.get_by_test_id("dkim-keys")).to_contain_text("waiting for DNS")
    page.get_by_role("button", name="Check now").click()
    rows = page.locator("table[data-testid=verdicts] tbody tr")
    expect(rows).to_have_count(len(RECORDS))
    expect(page.locator("tr[data-record=mx]")).to_have_attribute("data-status", "missing")

    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "_domainkey.shop.test. 3600 IN TXT" in copied and "IN MX 10 mx.hoster.test." in copied

    txt, mx, extra = zone_records(copied)
    dns.serve(txt=txt, mx=mx, extra=[*extra, f"host-record={HOST},{SERVER_IP}",
                                     f"ptr-record=25.2.0.192.in-addr.arpa,{HOST}"])
    time.sleep(RECHECK_SECONDS)
    page.get_by_role("button", name="Check again").click()
    expect(page.get_by_text("Every record is in order.")).to_be_visible()
    for record in RECORDS:
        expect(page.locator(f"tr[data-record='{record}'] .badge")).to_have_class(
            "badge text-bg-success")
    expect(page.get_by_test_id("dkim-keys")).to_contain_text("signs mail since")
    page.screenshot(path=tmp_path / "deliverability.png", full_page=True)
