from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from mailadmin.diagnostics import family
from mailadmin.models import Role
from panel.diagnostics import REMOTE_FIX

from .test_sign_in import create_user

# An Exim bounce as a customer receives it: our server (mail.hosting.example) accepted the
# message, and the supplier's server refused it (its RCPT refusal then made DATA get 503). The
# advice is about the remote side; nothing in the customer's mail program needs changing.
EXIM_BOUNCE = """\
Return-path: <>
Envelope-to: shop@customer.example
Delivery-date: Tue, 04 Mar 2025 09:12:44 +0100
Received: from mailnull by mail.hosting.example with local (Exim 4.97.1)
\tid 1tpQ2K-0003xY-2B
\tfor shop@customer.example; Tue, 04 Mar 2025 09:12:44 +0100
X-Failed-Recipients: orders@supplier.example
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@mail.hosting.example>
To: shop@customer.example
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1tpQ2K-0003xY-2B@mail.hosting.example>
Date: Tue, 04 Mar 2025 09:12:44 +0100

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  orders@supplier.example
    host mx1.supplier.example [198.51.100.25]
    SMTP error from remote mail server after pipelined end of data:
    503 valid RCPT command must precede DATA

------ This is a copy of the message, including all the headers. ------

Return-path: <shop@customer.example>
Received: from [203.0.113.77] (port=51544 helo=shopserver)
\tby mail.hosting.example with esmtp (Exim 4.97.1)
\tid 1tpQ2K-0003xW-1V
\tfor orders@supplier.example; Tue, 04 Mar 2025 09:12:44 +0100
From: Shop <shop@customer.example>
To: orders@supplier.example
Subject: Order 10442

Please ship order 10442.
"""


@pytest.fixture
def panel(live_panel: tuple[str, t.Any]) -> tuple[str, t.Any]:
    base, app = live_panel
    # Until create_app registers the blueprint itself (before the first request).
    if "diagnostics" not in app.blueprints:
        from panel.diagnostics import bp

        app.register_blueprint(bp)
    return base, app


def test_customer_diagnoses_a_503_bounce(
    page: Page, panel: tuple[str, t.Any], tmp_path: Path
) -> None:
    base, app = panel
    create_user(app, "alice", "correct horse 9", Role.CUSTOMER)
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("correct horse 9")
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("link", name="Diagnose a problem").click()
    expect(page.get_by_role("heading", name="Diagnose a problem")).to_be_visible()
    page.get_by_label("Paste the bounce or the error message").fill(EXIM_BOUNCE)
    page.get_by_label("Mail program").select_option(label="Thunderbird")
    page.get_by_role("button", name="Diagnose").click()

    entry = family("rcpt_before_data")
    finding = page.get_by_test_id("finding")
    expect(finding).to_have_count(1)
    expect(finding.get_by_role("heading", name=entry.title)).to_be_visible()
    expect(finding.get_by_test_id("cause")).to_have_text(entry.cause)
    expect(finding.get_by_test_id("where-it-failed")).to_contain_text(
        "Our server accepted the message and passed it on; the receiving server "
        "mx1.supplier.example refused it")
    expect(finding.get_by_test_id("fix")).to_have_text(REMOTE_FIX)
    expect(finding.get_by_test_id("client-fix")).to_contain_text(
        "Nothing needs changing in Thunderbird")
    # The classifier's internal labels are not shown to the customer.
    expect(page.get_by_text("rcpt_before_data")).to_have_count(0)
    expect(page.get_by_test_id("account-summary")).to_have_text(
        "The recipient is at supplier.example, not hosted here: nothing to check on your side.")
    expect(finding.get_by_test_id("recipient")).to_have_text("orders@supplier.example")
    expect(finding.get_by_test_id("replycode")).to_have_text("503")
    mark = finding.get_by_test_id("excerpt").locator("mark")
    expect(mark).to_have_count(1)
    expect(mark).to_have_text("503 valid RCPT command must precede DATA")
    expect(mark).to_be_visible()
    # The excerpt shows the context of the bounce around the decisive line.
    expect(finding.get_by_test_id("excerpt")).to_contain_text("host mx1.supplier.example")
    page.screenshot(path=tmp_path / "diagnose.png", full_page=True)

    # A phone-sized screen shows the same without horizontal scrolling.
    page.set_viewport_size({"width": 375, "height": 800})
    expect(mark).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
