"""The admin's mail server config page: list, apply, roll back, diff and the status JSON,
driven through the panel (real CSRF) against real Dovecot + Postfix."""

from __future__ import annotations

import typing as t

import pytest
from sqlalchemy import func, select

from mailadmin.db import transaction
from mailadmin.models import ConfigRevision, Mailbox, Role
from mailadmin.services import accounts, mailboxes
from mailadmin.services.context import Actor

from .mailstack import conftest as mailstack
from .mailstack.conftest import SERVICE_PASSWORD, ServiceStack, eventually
from .web import csrf_token, sign_in

#: The real servers shared with tests/mailstack (one session-scoped instance).
service_stack = mailstack.service_stack

pytestmark = pytest.mark.mailstack
ADMIN = "svc-admin"
ADMIN_PASSWORD = "correct horse 9"


@pytest.fixture
def panel(service_stack: ServiceStack) -> t.Any:
    from panel import create_app

    with transaction(service_stack.factory) as s:
        if accounts.find_user(s, ADMIN) is None:
            accounts.create_panel_user(s, Actor.operator(), ADMIN, ADMIN_PASSWORD, Role.ADMIN)
    return create_app({"INSTANCE_PATH": str(service_stack.instance),
                       "DATABASE_URL": service_stack.url, "TESTING": True})


def admin_client(panel: t.Any) -> t.Any:
    client = panel.test_client()
    assert sign_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
    return client


def post_form(client: t.Any, url: str) -> t.Any:
    token = csrf_token(client.get("/admin/revisions").get_data(as_text=True))
    return client.post(url, data={"csrf_token": token}, follow_redirects=True)


def count(svc: ServiceStack) -> int:
    with svc.factory() as s:
        return s.scalar(select(func.count()).select_from(ConfigRevision)) or 0


def test_only_the_admin_sees_the_pages(panel: t.Any) -> None:
    client = panel.test_client()
    assert sign_in(client, "svc-cust", "correct horse 9").status_code == 302
    assert client.get("/admin/revisions").status_code == 403
    assert client.get("/admin/config/status").status_code == 403
    assert client.post("/admin/config/apply").status_code in (400, 403)
    anonymous = panel.test_client()
    assert anonymous.get("/admin/config/status").status_code in (302, 401)
    admin = admin_client(panel)
    assert b"Mail server config" in admin.get("/admin/settings").data  # navigation entry


def test_apply_now_shows_caught_up(panel: t.Any, service_stack: ServiceStack) -> None:
    svc = service_stack
    client = admin_client(panel)
    with svc.unit() as s:
        mailboxes.create_mailbox(s, Actor.operator(), "web@svc.test", SERVICE_PASSWORD)
    status = client.get("/admin/config/status").get_json()
    assert status["caught_up"] is False and status["changed_at"] > (status["applied_at"] or "")
    page = client.get("/admin/revisions").get_data(as_text=True)
    assert "Changes are waiting" in page and "Apply now" in page
    before = count(svc)
    # without the CSRF token nothing happens
    assert client.post("/admin/config/apply").status_code == 400
    assert count(svc) == before
    done = post_form(client, "/admin/config/apply")
    assert done.status_code == 200 and "Applied revision" in done.get_data(as_text=True)
    assert count(svc) == before + 1
    status = client.get("/admin/config/status").get_json()
    assert status["caught_up"] is True and status["in_force"]["rollback_of"] is None
    assert "up to date" in client.get("/admin/revisions").get_data(as_text=True)
    assert eventually(lambda: svc.imap_login("web@svc.test", SERVICE_PASSWORD)[0])
    again = post_form(client, "/admin/config/apply")
    assert "Already applied" in again.get_data(as_text=True) and count(svc) == before + 1


def test_roll_back_from_the_page_and_diff(panel: t.Any, service_stack: ServiceStack) -> None:
    svc = service_stack
    client = admin_client(panel)
    post_form(client, "/admin/config/apply")
    good = client.get("/admin/config/status").get_json()["in_force"]["id"]
    with svc.unit() as s:
        s.scalars(select(Mailbox).where(Mailbox.local_part == "ben")).one().smtp = False
    post_form(client, "/admin/config/apply")
    bad = client.get("/admin/config/status").get_json()["in_force"]["id"]
    assert bad != good
    assert eventually(lambda: not svc.submission_login("ben@svc.test", SERVICE_PASSWORD)[0])
    diff = client.get(f"/admin/revisions/{bad}/diff").get_data(as_text=True)
    assert "+ben@svc.test:::::::nodelay" in diff and "deny.smtp" in diff
    listing = client.get("/admin/revisions").get_data(as_text=True)
    assert f'action="/admin/revisions/{good}/rollback"' in listing
    done = post_form(client, f"/admin/revisions/{good}/rollback")
    assert "Rolled back to revision" in done.get_data(as_text=True)
    status = client.get("/admin/config/status").get_json()
    assert status["caught_up"] is False and status["in_force"]["rollback_of"] == good
    assert eventually(lambda: svc.submission_login("ben@svc.test", SERVICE_PASSWORD)[0])
    assert "Rolled back:" in client.get("/admin/revisions").get_data(as_text=True)
    with svc.unit() as s:
        s.scalars(select(Mailbox).where(Mailbox.local_part == "ben")).one().smtp = True
    post_form(client, "/admin/config/apply")
    assert client.get("/admin/config/status").get_json()["caught_up"] is True


def test_failed_apply_is_shown_with_the_tools_message(panel: t.Any,
                                                       service_stack: ServiceStack) -> None:
    svc = service_stack
    client = admin_client(panel)
    post_form(client, "/admin/config/apply")
    in_force = client.get("/admin/config/status").get_json()["in_force"]["id"]
    missing = f"{svc.info.dir}/nowhere/cert.pem"
    svc.set_settings(tls_cert_file=missing, tls_key_file=f"{svc.info.dir}/nowhere/key.pem")
    try:
        page = post_form(client, "/admin/config/apply").get_data(as_text=True)
        assert "Apply failed" in page and "text-bg-danger" in page
        assert "doveconf" in page and missing in page
        assert client.get("/admin/config/status").get_json()["in_force"]["id"] == in_force
    finally:
        svc.set_settings(tls_cert_file="", tls_key_file="")
    assert svc.imap_login("anna@svc.test", SERVICE_PASSWORD)[0]
