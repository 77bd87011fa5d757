"""The password generator and strength meter in Chromium: the same refusals as the server
(mailadmin.passwords), a suggested password the server accepts, on the mailbox form."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from mailadmin.passwords import check_password_policy

from .test_accessibility_axe import _sign_in
from .test_layout import dns, world  # noqa: F401  (the seeded panel and its loopback DNS)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [1280, 390])
def test_meter_refuses_like_the_server_and_suggests_an_accepted_password(
    world: tuple[str, t.Any], page: Page, width: int, tmp_path: Path,  # noqa: F811
) -> None:
    base, _ = world
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, base, "customer")
    page.goto(base + "/mailboxes/new")
    password = page.locator("#password")
    verdict = page.locator(".password-verdict")
    page.locator("#local_part").fill("sam")
    password.fill("P@ssw0rd1234")
    expect(verdict).to_contain_text("Not accepted: This password is a very common password")
    password.fill("sam-likes-cake")
    expect(verdict).to_contain_text("may not contain the name before '@'")
    password.fill("abababababab")
    expect(verdict).to_contain_text("only one or two different characters")
    page.get_by_role("button", name="Suggest a strong password").click()
    expect(verdict).to_contain_text("Accepted; strength: strong")
    suggested = password.input_value()
    assert page.locator("#confirm").input_value() == suggested
    check_password_policy(suggested, min_length=10, address="sam@alice.example")
    page.screenshot(path=tmp_path / f"password-{width}.png", full_page=True)
    page.get_by_role("button", name="Create mailbox").click()
    expect(page.get_by_role("alert").filter(has_text="sam@alice.example created")).to_be_visible()
