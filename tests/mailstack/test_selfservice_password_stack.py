"""Issue 9 x issue 4: a mailbox user changes its password on the panel's /me/password page
(test client, real CSRF); once the config is applied, the real Dovecot (IMAP) and Postfix
(submission AUTH through Dovecot) accept the new password and refuse the old one."""

from __future__ import annotations

import time
import typing as t

import pytest

from ..web import submit
from .conftest import SERVICE_PASSWORD, ServiceStack, eventually

pytestmark = pytest.mark.mailstack
USER = "selfpw@svc.test"
NEW_PASSWORD = "Gl4cier-lantern-77"


@pytest.fixture
def web(service_stack: ServiceStack) -> t.Any:
    from panel import create_app

    app = create_app({"INSTANCE_PATH": str(service_stack.instance),
                      "DATABASE_URL": service_stack.url, "TESTING": True})
    return app.test_client()


def test_password_changed_on_me_page_reaches_dovecot(service_stack: ServiceStack,
                                                      web: t.Any) -> None:
    svc = service_stack
    svc.apply()
    assert svc.imap_login(USER, SERVICE_PASSWORD)[0]
    signed_in = submit(web, "/me/login", {"address": USER, "password": SERVICE_PASSWORD})
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)
    done = submit(web, "/me/password", {"current_password": SERVICE_PASSWORD,
                                        "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
                  follow=True)
    assert "Your password has been changed" in done.get_data(as_text=True)
    t0 = time.monotonic()
    report = svc.apply()  # what "Apply now", `mailadmin apply` or the watcher does
    assert report.revision.state == "applied" and not report.already_applied
    assert eventually(lambda: svc.imap_login(USER, NEW_PASSWORD)[0])
    assert eventually(lambda: svc.submission_login(USER, NEW_PASSWORD)[0])
    elapsed = time.monotonic() - t0
    ok, text = svc.imap_login(USER, SERVICE_PASSWORD)
    assert not ok and "AUTHENTICATIONFAILED" in text, text
    assert not svc.submission_login(USER, SERVICE_PASSWORD)[0]
    print(f"/me/password -> apply -> new password accepted by IMAP and SMTP in {elapsed:.2f}s")
