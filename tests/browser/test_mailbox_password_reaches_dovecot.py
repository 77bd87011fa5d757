"""Issue 9, end to end: in the browser a mailbox user changes its password, signs in with the
new one, and after the apply the real Dovecot of the mail-stack tests accepts it over IMAP."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from ..mailstack.conftest import (  # noqa: F401  (service_stack is a fixture used below)
    SERVICE_PASSWORD,
    ServiceStack,
    eventually,
    service_stack,
)

pytestmark = pytest.mark.mailstack
USER = "selfpw@svc.test"
NEW_PASSWORD = "Gl4cier-lantern-77"


@pytest.fixture
def stack_panel(service_stack: ServiceStack) -> Iterator[str]:  # noqa: F811
    from panel import create_app

    app = create_app({"INSTANCE_PATH": str(service_stack.instance),
                      "DATABASE_URL": service_stack.url})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def sign_in(page: Page, base: str, password: str) -> None:
    page.goto(f"{base}/me/login")
    page.get_by_label("Mail address").fill(USER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def old_password(service_stack: ServiceStack) -> Iterator[None]:  # noqa: F811
    """The mailbox starts (and ends) with the stack's password, in force on the servers."""

    def reset() -> None:
        from mailadmin.services import mailboxes
        from mailadmin.services.context import Actor

        with service_stack.unit() as s:
            mailboxes.set_mailbox_password(s, Actor.operator(), USER, SERVICE_PASSWORD)
        assert service_stack.apply().revision.state == "applied"

    reset()
    yield
    reset()


@pytest.mark.parametrize("width", [1280, 390])
def test_new_password_from_the_browser_works_in_dovecot(
    page: Page, stack_panel: str, service_stack: ServiceStack,  # noqa: F811
    old_password: None, width: int,
) -> None:
    """Issue 15: the page says "waiting" until the apply and "works now" after it, and both
    are true of the real Dovecot."""
    svc = service_stack
    page.set_viewport_size({"width": width, "height": 900})
    assert eventually(lambda: svc.imap_login(USER, SERVICE_PASSWORD)[0])
    sign_in(page, stack_panel, SERVICE_PASSWORD)
    expect(page).to_have_url(f"{stack_panel}/me/")
    page.goto(f"{stack_panel}/me/password")
    page.get_by_label("Current password").fill(SERVICE_PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password has been changed")).to_be_visible()
    notice = page.locator("#live-status")
    expect(notice).to_contain_text("Waiting")
    expect(notice).to_contain_text("your mail programs still use the old password")
    expect(notice).to_have_attribute("role", "status")
    # "waiting" is true: Dovecot still takes the old password, not the new one
    assert svc.imap_login(USER, SERVICE_PASSWORD)[0]
    assert not svc.imap_login(USER, NEW_PASSWORD)[0]

    report = svc.apply()
    assert report.revision.state == "applied"
    # the page follows /live-status by itself, without a reload
    expect(notice).to_contain_text("Your new password works in your mail programs now.",
                                   timeout=15_000)
    assert eventually(lambda: svc.imap_login(USER, NEW_PASSWORD)[0])
    ok, text = svc.imap_login(USER, SERVICE_PASSWORD)
    assert not ok and "AUTHENTICATIONFAILED" in text, text
    # once said, the notice is gone from the next page
    page.goto(f"{stack_panel}/me/")
    expect(page.locator("#live-status")).to_have_count(0)

    if width < 992:  # the phone layout folds the navigation (sign-out included) away
        page.get_by_role("button", name="Menu").click()
    page.get_by_role("button", name="Sign out", exact=True).click()
    # the sign-out must have landed before the next sign-in page is asked for (a signed-in
    # browser is sent from /me/login to /me/)
    expect(page).to_have_url(f"{stack_panel}/login")
    sign_in(page, stack_panel, NEW_PASSWORD)
    expect(page).to_have_url(f"{stack_panel}/me/")
