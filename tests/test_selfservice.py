"""Mailbox users help themselves: sign-in with the address, password, quota, autoresponder,
forwarding; and the wall between mailbox users and panel pages."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest
from passlib.hash import md5_crypt
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import (
    AuthenticationFailed,
    Conflict,
    NotFound,
    PermissionDenied,
    RateLimited,
    ValidationError,
    WeakPassword,
)
from mailadmin.hashing import hash_scheme, verify_mailbox_password
from mailadmin.models import AuditEvent, Autoresponder, Forwarder, Mailbox
from mailadmin.services import domains, selfservice
from mailadmin.services.context import Actor
from mailadmin.services.throttle import ThrottlePolicy

from .factories import actor, mail_account
from .web import csrf_token, submit

PASSWORD = "Tr0ub4dor&3-horse"
NEW_PASSWORD = "Gl4cier-lantern-77"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def register_blueprints(app: t.Any) -> None:
    """Until the lead registers them in `_register_blueprints`."""
    from panel.clientsetup import bp as clientsetup_bp
    from panel.selfservice import bp as self_bp

    if "self" not in app.blueprints:
        app.register_blueprint(self_bp)
    if "clientsetup" not in app.blueprints:
        app.register_blueprint(clientsetup_bp)


def seed_mail(session_factory: sessionmaker[Session], make_user: t.Any) -> None:
    """Customer alice with example.org: anna (all protocols), nopop (POP3 off), poponly, and
    bert's mailbox at other.example."""
    f = session_factory
    make_user("alice", "customer")
    make_user("bert", "customer")
    mail_account(f, actor(f, "alice", source=None), "example.org", {
        "anna@example.org": {"quota": 1024**3}, "nopop@example.org": {"pop3": False},
        "poponly@example.org": {"imap": False, "smtp": False}}, PASSWORD)
    mail_account(f, actor(f, "bert", source=None), "other.example",
                 {"carl@other.example": {}}, PASSWORD)
    with transaction(f) as s:
        anna = selfservice.find_mailbox_by_address(s, "anna@example.org")
        assert anna is not None
        anna.usage_bytes = 256 * 1024**2
        anna.usage_messages = 1234
        anna.usage_read_at = NOW


@pytest.fixture
def mail_app(app: t.Any, session_factory: sessionmaker[Session], make_user: t.Any) -> t.Any:
    register_blueprints(app)
    seed_mail(session_factory, make_user)
    return app


@pytest.fixture
def web(mail_app: t.Any) -> t.Any:
    return mail_app.test_client()


def mailbox_sign_in(client: t.Any, address: str, password: str = PASSWORD) -> t.Any:
    return submit(client, "/me/login", {"address": address, "password": password})


def mailbox(session_factory: sessionmaker[Session], address: str) -> Mailbox:
    with session_factory() as s:
        box = selfservice.find_mailbox_by_address(s, address)
        assert box is not None
        box.domain  # noqa: B018  (loaded now, so .address works after the session)
        s.expunge_all()
        return box


def set_flags(session_factory: sessionmaker[Session], address: str, **values: t.Any) -> None:
    with transaction(session_factory) as s:
        box = selfservice.find_mailbox_by_address(s, address)
        assert box is not None
        for name, value in values.items():
            setattr(box, name, value)


def events(session_factory: sessionmaker[Session]) -> list[AuditEvent]:
    with session_factory() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


# --- the service ------------------------------------------------------------------------------


def login(session: Session, address: str, password: str, **kw: t.Any) -> selfservice.MailboxUser:
    return selfservice.authenticate_mailbox_user(
        session, address, password, client_address="192.0.2.1",
        policy=kw.pop("policy", ThrottlePolicy()), clock=lambda: NOW, **kw
    )


def test_sign_in_accepts_any_case_and_unicode_domain(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as s:
        user = login(s, " Anna@EXAMPLE.org ", PASSWORD)
    assert user.address == "anna@example.org"
    assert mailbox(session_factory, "anna@example.org").last_login_at == NOW


def test_legacy_hash_is_accepted_and_replaced_by_the_server_scheme(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    set_flags(session_factory, "anna@example.org",
              password_hash="{MD5-CRYPT}" + md5_crypt.hash("old legacy pass"))
    with transaction(session_factory) as s:
        login(s, "anna@example.org", "old legacy pass")
    stored = mailbox(session_factory, "anna@example.org").password_hash
    assert hash_scheme(stored) == "SHA512-CRYPT"
    assert verify_mailbox_password("old legacy pass", stored)


def test_wrong_password_and_unknown_address_get_the_same_answer(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    messages = []
    for address, password in (("anna@example.org", "wrong one 1"),
                              ("nobody@example.org", PASSWORD),
                              ("not an address", PASSWORD)):
        with transaction(session_factory) as s, pytest.raises(AuthenticationFailed) as info:
            login(s, address, password)
        messages.append(info.value.message)
    assert len(set(messages)) == 1
    assert messages[0] == "The mail address or the password is wrong."


def test_fifth_failure_locks_the_address_even_for_the_right_password(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    for i in range(4):
        with transaction(session_factory) as s, pytest.raises(AuthenticationFailed):
            login(s, "anna@example.org", f"wrong {i} pass")
    with transaction(session_factory) as s, pytest.raises(RateLimited):
        login(s, "ANNA@example.org", "wrong 5 pass")
    with transaction(session_factory) as s, pytest.raises(RateLimited) as info:
        login(s, "anna@example.org", PASSWORD)
    assert "this account" in info.value.message


def test_suspended_login_is_refused_and_says_why_only_to_the_right_password(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    set_flags(session_factory, "anna@example.org", suspend_login=True)
    with transaction(session_factory) as s, pytest.raises(selfservice.LoginSuspended) as info:
        login(s, "anna@example.org", PASSWORD)
    assert "suspended" in info.value.message
    with transaction(session_factory) as s, pytest.raises(AuthenticationFailed) as wrong:
        login(s, "anna@example.org", "wrong password 1")
    assert "suspended" not in wrong.value.message


def test_password_change_needs_the_current_one_and_the_policy(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as s:
        user = login(s, "anna@example.org", PASSWORD)
    with transaction(session_factory) as s, pytest.raises(AuthenticationFailed) as wrong:
        selfservice.change_own_mailbox_password(
            s, user, "not my password", NEW_PASSWORD, policy=ThrottlePolicy())
    assert wrong.value.field == "current_password"
    with transaction(session_factory) as s, pytest.raises(WeakPassword) as weak:
        selfservice.change_own_mailbox_password(
            s, user, PASSWORD, "anna-example-2026", policy=ThrottlePolicy())
    assert "may not contain" in weak.value.message
    with transaction(session_factory) as s:
        selfservice.change_own_mailbox_password(
            s, user, PASSWORD, NEW_PASSWORD, policy=ThrottlePolicy())
    stored = mailbox(session_factory, "anna@example.org").password_hash
    assert verify_mailbox_password(NEW_PASSWORD, stored)
    assert not verify_mailbox_password(PASSWORD, stored)
    last = events(session_factory)[-1]
    assert (last.action, last.channel, last.actor) == (
        "mailbox.password", "mailbox", "anna@example.org")


def test_guessing_the_current_password_is_throttled(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as s:
        user = login(s, "anna@example.org", PASSWORD)
    policy = ThrottlePolicy(max_failures_per_pair=3)
    for i in range(2):
        with transaction(session_factory) as s, pytest.raises(AuthenticationFailed):
            selfservice.change_own_mailbox_password(s, user, f"guess {i}", NEW_PASSWORD,
                                                    policy=policy)
    with transaction(session_factory) as s, pytest.raises(RateLimited):
        selfservice.change_own_mailbox_password(s, user, "guess 3", NEW_PASSWORD, policy=policy)


def test_own_autoresponder_and_forwarding_are_audited_on_the_mailbox_channel(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    user = selfservice.MailboxUser(mailbox_id=mailbox(session_factory, "anna@example.org").id,
                                   address="anna@example.org", source="192.0.2.9")
    policy = selfservice.SelfServicePolicy()
    with transaction(session_factory) as s:
        selfservice.set_own_autoresponder(s, user, policy, subject="Away", body="Back Monday.")
        selfservice.set_own_forwarding(s, user, policy, ["me@elsewhere.example"], keep_copy=True)
    with transaction(session_factory) as s:
        assert selfservice.clear_own_forwarding(s, user)
        selfservice.clear_own_autoresponder(s, user, policy)
    trail = [(e.action, e.channel, e.actor, e.source) for e in events(session_factory)[-4:]]
    assert trail == [
        ("autoresponder.set", "mailbox", "anna@example.org", "192.0.2.9"),
        ("forwarder.create", "mailbox", "anna@example.org", "192.0.2.9"),
        ("forwarder.delete", "mailbox", "anna@example.org", "192.0.2.9"),
        ("autoresponder.clear", "mailbox", "anna@example.org", "192.0.2.9"),
    ]


def test_a_mailbox_user_reaches_only_its_own_mailbox(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    anna = mailbox(session_factory, "anna@example.org")
    # A session for anna's id whose address no longer matches (renamed, or forged) is refused.
    forged = selfservice.MailboxUser(mailbox_id=anna.id, address="nopop@example.org")
    with session_factory() as s, pytest.raises(NotFound):
        selfservice.get_own_mailbox(s, forged, selfservice.SelfServicePolicy())
    # Forwarding into a loop through the customer's other addresses is refused as for customers.
    nopop = mailbox(session_factory, "nopop@example.org")
    nopop_user = selfservice.MailboxUser(mailbox_id=nopop.id, address=nopop.address)
    anna_user = selfservice.MailboxUser(mailbox_id=anna.id, address=anna.address)
    policy = selfservice.SelfServicePolicy()
    with transaction(session_factory) as s:
        selfservice.set_own_forwarding(s, nopop_user, policy, ["anna@example.org"], keep_copy=True)
    with transaction(session_factory) as s, pytest.raises(Conflict) as loop:
        selfservice.set_own_forwarding(s, anna_user, policy, ["nopop@example.org"],
                                       keep_copy=False)
    assert "loop" in str(loop.value)


def test_forwarding_is_refused_while_sending_is_suspended_or_not_allowed(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    anna = mailbox(session_factory, "anna@example.org")
    user = selfservice.MailboxUser(mailbox_id=anna.id, address=anna.address)
    with transaction(session_factory) as s, pytest.raises(PermissionDenied):
        selfservice.set_own_forwarding(s, user, selfservice.SelfServicePolicy(
            allow_forwarding=False), ["x@elsewhere.example"], keep_copy=False)
    set_flags(session_factory, "anna@example.org", suspend_outgoing=True)
    with transaction(session_factory) as s, pytest.raises(PermissionDenied) as info:
        selfservice.set_own_forwarding(s, user, selfservice.SelfServicePolicy(),
                                       ["x@elsewhere.example"], keep_copy=False)
    assert "suspended" in info.value.message
    with session_factory() as s:
        assert s.scalars(select(Forwarder)).first() is None


# --- the pages --------------------------------------------------------------------------------


def test_mailbox_user_signs_in_and_sees_quota_and_protocols(web: t.Any) -> None:
    response = mailbox_sign_in(web, "anna@example.org")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/me/")
    html = web.get("/me/").get_data(as_text=True)
    assert '<progress class="usage mb-2" max="100" value="25"' in html
    assert "256 MiB used of 1 GiB (25%), 1234 messages" in html
    assert "Read from the mail server 2026-03-01 12:00 UTC" in html
    assert 'data-protocol="POP3" data-on="yes"' in html
    assert "anna@example.org · mailbox" in html


def test_protocols_off_are_shown_as_off(web: t.Any) -> None:
    mailbox_sign_in(web, "nopop@example.org")
    html = web.get("/me/").get_data(as_text=True)
    assert 'data-protocol="POP3" data-on="no"' in html
    assert "The space used has not been read yet" in html


def test_wrong_password_then_rate_limit_on_the_page(web: t.Any) -> None:
    statuses = [mailbox_sign_in(web, "anna@example.org", f"wrong {i} pw").status_code
                for i in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    locked = mailbox_sign_in(web, "anna@example.org")
    assert locked.status_code == 429
    assert "Too many failed sign-ins for this account" in locked.get_data(as_text=True)
    assert web.get("/me/").status_code == 302


def test_address_limit_is_shared_with_panel_sign_in(mail_app: t.Any) -> None:
    web = mail_app.test_client()
    from .web import sign_in

    for i in range(10):
        sign_in(web, f"user{i}", "bad password 1")
    statuses = [mailbox_sign_in(web, f"x{i}@example.org", "bad pw 1").status_code
                for i in range(10)]
    assert statuses[-1] == 429
    assert "your network address" in mailbox_sign_in(web, "anna@example.org").get_data(
        as_text=True)


def test_suspended_mailbox_cannot_sign_in_and_the_page_says_why(
    web: t.Any, session_factory: sessionmaker[Session]
) -> None:
    set_flags(session_factory, "anna@example.org", suspend_login=True)
    response = mailbox_sign_in(web, "anna@example.org")
    assert response.status_code == 403
    assert "The login of this mailbox is suspended" in response.get_data(as_text=True)
    assert web.get("/me/").status_code == 302


def test_suspending_ends_an_open_session(web: t.Any, session_factory: sessionmaker[Session]) -> None:
    assert mailbox_sign_in(web, "anna@example.org").status_code == 302
    assert web.get("/me/").status_code == 200
    set_flags(session_factory, "anna@example.org", suspend_login=True)
    response = web.get("/me/")
    assert response.status_code == 302
    assert "/me/login" in response.headers["Location"]


def test_change_password_requires_the_old_one(
    web: t.Any, session_factory: sessionmaker[Session]
) -> None:
    mailbox_sign_in(web, "anna@example.org")
    before = mailbox(session_factory, "anna@example.org").password_hash
    wrong = submit(web, "/me/password", {"current_password": "not it at all",
                                         "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert wrong.status_code == 422
    assert "The current password is wrong." in wrong.get_data(as_text=True)
    assert mailbox(session_factory, "anna@example.org").password_hash == before
    weak = submit(web, "/me/password", {"current_password": PASSWORD,
                                        "password": "password123", "confirm": "password123"})
    assert weak.status_code == 422
    assert mailbox(session_factory, "anna@example.org").password_hash == before
    done = submit(web, "/me/password", {"current_password": PASSWORD,
                                        "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 302
    # This session was renewed with the new fingerprint; a fresh one needs the new password.
    assert web.get("/me/").status_code == 200
    other = web.application.test_client()
    assert mailbox_sign_in(other, "anna@example.org").status_code == 401
    assert mailbox_sign_in(other, "anna@example.org", NEW_PASSWORD).status_code == 302


def test_password_change_signs_out_other_sessions(mail_app: t.Any) -> None:
    first, second = mail_app.test_client(), mail_app.test_client()
    mailbox_sign_in(first, "anna@example.org")
    mailbox_sign_in(second, "anna@example.org")
    submit(first, "/me/password", {"current_password": PASSWORD,
                                   "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert first.get("/me/").status_code == 200
    assert second.get("/me/").status_code == 302


def test_forms_need_the_csrf_token(web: t.Any, session_factory: sessionmaker[Session]) -> None:
    mailbox_sign_in(web, "anna@example.org")
    before = mailbox(session_factory, "anna@example.org").password_hash
    response = web.post("/me/password", data={"current_password": PASSWORD,
                                              "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 400
    assert mailbox(session_factory, "anna@example.org").password_hash == before
    assert web.post("/me/forwarding/clear").status_code == 400
    assert web.post("/me/login", data={"address": "anna@example.org",
                                       "password": PASSWORD}).status_code == 400


def test_autoresponder_page_sets_and_clears(
    web: t.Any, session_factory: sessionmaker[Session]
) -> None:
    mailbox_sign_in(web, "anna@example.org")
    saved = submit(web, "/me/autoresponder", {"enabled": "y", "subject": "Away",
                                              "body": "Back on Monday.", "interval_days": "3"})
    assert saved.status_code == 302
    page = web.get("/me/autoresponder").get_data(as_text=True)
    assert "Back on Monday." in page and "Remove automatic reply" in page
    assert "Automatic reply: on" in web.get("/me/").get_data(as_text=True)
    cleared = web.post("/me/autoresponder/clear", data={"csrf_token": csrf_token(page)})
    assert cleared.status_code == 302
    with session_factory() as s:
        assert s.scalars(select(Autoresponder)).first() is None


def test_forwarding_page_sets_refuses_and_clears(
    web: t.Any, session_factory: sessionmaker[Session]
) -> None:
    mailbox_sign_in(web, "anna@example.org")
    to_self = submit(web, "/me/forwarding", {"destinations": "anna@example.org"})
    assert to_self.status_code == 422
    assert "cannot forward to itself" in to_self.get_data(as_text=True)
    saved = submit(web, "/me/forwarding", {"destinations": "me@elsewhere.example\n",
                                           "keep_copy": "y"})
    assert saved.status_code == 302
    page = web.get("/me/forwarding").get_data(as_text=True)
    assert "forwarded to me@elsewhere.example, and a copy stays here" in page
    cleared = web.post("/me/forwarding/clear", data={"csrf_token": csrf_token(page)})
    assert cleared.status_code == 302
    with session_factory() as s:
        assert s.scalars(select(Forwarder)).first() is None


def test_device_page_offers_only_allowed_protocols(web: t.Any) -> None:
    mailbox_sign_in(web, "nopop@example.org")
    html = web.get("/me/devices").get_data(as_text=True)
    assert '<tr data-protocol="IMAP">' in html and '<tr data-protocol="SMTP">' in html
    assert '<tr data-protocol="POP3">' not in html
    assert "Use IMAP" in html and "nopop@example.org" in html
    assert "/me/device.mobileconfig" in html


def test_device_page_warns_a_pop_only_mailbox(mail_app: t.Any) -> None:
    web = mail_app.test_client()
    mailbox_sign_in(web, "poponly@example.org")
    html = web.get("/me/devices").get_data(as_text=True)
    assert '<tr data-protocol="POP3">' in html
    assert '<tr data-protocol="IMAP">' not in html and '<tr data-protocol="SMTP">' not in html
    assert 'data-testid="pop-warning"' in html
    assert "may not send mail" in html


@pytest.mark.parametrize("path", ["/mailboxes", "/domains/", "/forwarders", "/audit/",
                                  "/mailboxes/anna@example.org", "/mailboxes/new",
                                  "/account/tokens", "/admin/settings"])
def test_mailbox_user_cannot_open_panel_pages(web: t.Any, path: str) -> None:
    mailbox_sign_in(web, "anna@example.org")
    response = web.get(path)
    assert response.status_code == 403
    assert "Your own settings are under /me" in response.get_data(as_text=True)


def test_mailbox_user_cannot_post_to_panel_forms(
    web: t.Any, session_factory: sessionmaker[Session]
) -> None:
    mailbox_sign_in(web, "anna@example.org")
    token = csrf_token(web.get("/me/password").get_data(as_text=True))
    response = web.post("/mailboxes/nopop@example.org/password",
                        data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD,
                              "csrf_token": token})
    assert response.status_code == 403
    assert verify_mailbox_password(PASSWORD, mailbox(session_factory, "nopop@example.org")
                                   .password_hash)


def test_current_actor_refuses_a_mailbox_principal(mail_app: t.Any,
                                                   session_factory: sessionmaker[Session]) -> None:
    from flask_login import login_user
    from werkzeug.exceptions import Forbidden

    from panel.auth import MailboxPrincipal, current_actor

    with mail_app.test_request_context("/dashboard"), session_factory() as s:
        box = selfservice.find_mailbox_by_address(s, "anna@example.org")
        assert box is not None
        login_user(MailboxPrincipal(box, "no-such-session"))
        with pytest.raises(Forbidden):
            current_actor()


def test_mailbox_user_is_sent_to_its_own_pages(web: t.Any) -> None:
    mailbox_sign_in(web, "anna@example.org")
    assert web.get("/dashboard").headers["Location"].endswith("/me/")
    assert web.get("/").headers["Location"].endswith("/me/")
    assert web.get("/account/password").headers["Location"].endswith("/me/password")


def test_customer_cannot_open_mailbox_pages(web: t.Any) -> None:
    from .web import sign_in

    assert sign_in(web, "alice", "correct horse 9").status_code == 302
    for path in ("/me/", "/me/password", "/me/devices", "/me/device.mobileconfig",
                 "/me/forwarding"):
        assert web.get(path).status_code == 403, path
    assert web.get("/mailboxes").status_code == 200


def test_anonymous_visitors_are_sent_to_the_mailbox_sign_in(web: t.Any) -> None:
    response = web.get("/me/devices")
    assert response.status_code == 302
    assert "/me/login" in response.headers["Location"]


def test_customer_switches_self_service_off_per_domain(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    """What the customer allows on the domain page binds the mailbox users of that domain."""
    from mailadmin.services.context import Actor

    with transaction(session_factory) as s:
        domains.set_self_service(s, Actor.operator(), "example.org",
                                 allow_forwarding=False, allow_autoresponder=False)
    anna = mailbox(session_factory, "anna@example.org")
    user = selfservice.MailboxUser(mailbox_id=anna.id, address=anna.address)
    with transaction(session_factory) as s, pytest.raises(PermissionDenied):
        selfservice.set_own_forwarding(s, user, selfservice.SelfServicePolicy(),
                                       ["x@elsewhere.example"], keep_copy=False)
    with transaction(session_factory) as s, pytest.raises(PermissionDenied):
        selfservice.set_own_autoresponder(s, user, selfservice.SelfServicePolicy(),
                                          subject="Away", body="Back soon")
    client = mail_app.test_client()
    mailbox_sign_in(client, "anna@example.org")
    refused = submit(client, "/me/forwarding", {"destinations": "me@elsewhere.example"})
    assert refused.status_code in (403, 422)
    with session_factory() as s:
        assert s.scalars(select(Forwarder)).first() is None


def test_webmail_redirects_to_the_configured_address(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    from mailadmin.services import server_settings as settings_service

    client = mail_app.test_client()
    assert client.get("/webmail").status_code == 404
    mailbox_sign_in(client, "anna@example.org")
    assert 'data-testid="webmail-link"' not in client.get("/me/").get_data(as_text=True)
    with transaction(session_factory) as s:
        settings_service.set_setting(s, Actor.operator(), "webmail_url",
                                     "https://webmail.example.net/")
    response = client.get("/webmail")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://webmail.example.net/"
    assert 'data-testid="webmail-link"' in client.get("/me/").get_data(as_text=True)
    with transaction(session_factory) as s, pytest.raises(ValidationError):
        settings_service.set_setting(s, Actor.operator(), "webmail_url", "javascript:alert(1)")


def test_mailbox_user_can_diagnose_its_own_errors(web: t.Any) -> None:
    mailbox_sign_in(web, "anna@example.org")
    page = web.get("/diagnose/")
    assert page.status_code == 200
    result = submit(web, "/diagnose/", {"text": "535 5.7.8 Error: authentication failed"},
                    page="/diagnose/")
    assert result.status_code == 200
    assert "auth" in result.get_data(as_text=True).lower()
