"""Lockout without denial of service, and sessions that end when the user says so.

Driven through the real sign-in forms with the client address set per browser: wrong passwords
lock one account from one address; only a much higher count locks the account everywhere, and
even then a known address or a browser with the signed "known device" cookie gets in with the
right password; the owner is told about the failures. Signing out (or "sign out everywhere")
makes a copied session cookie worthless.
"""

from __future__ import annotations

import typing as t

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.models import LoginSession, LoginThrottle
from mailadmin.services.throttle import ThrottlePolicy

from .test_selfservice import PASSWORD, register_blueprints, seed_mail
from .web import csrf_token, submit

OWNER_PASSWORD = "correct horse 9"
SESSION_COOKIE = "mailadmin_session"
DEVICE_COOKIE = "mailadmin_device"


def browser(app: t.Any, address: str) -> t.Any:
    """A test client whose requests come from `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def panel_sign_in(client: t.Any, username: str, password: str) -> t.Any:
    return submit(client, "/login", {"username": username, "password": password})


def mailbox_sign_in(client: t.Any, address: str, password: str) -> t.Any:
    return submit(client, "/me/login", {"address": address, "password": password})


def sign_out(client: t.Any, page: str = "/dashboard") -> t.Any:
    html = client.get(page).get_data(as_text=True)
    return client.post("/logout", data={"csrf_token": csrf_token(html)})


@pytest.fixture
def mail_app(app: t.Any, session_factory: sessionmaker[Session], make_user: t.Any) -> t.Any:
    register_blueprints(app)
    seed_mail(session_factory, make_user)
    return app


# --- lockout --------------------------------------------------------------------------------


def test_twenty_wrong_passwords_from_one_address_do_not_stop_the_owner(
    app: t.Any, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    make_user("admin", "admin", OWNER_PASSWORD)
    attacker = browser(app, "203.0.113.66")
    statuses = [panel_sign_in(attacker, "admin", f"guess {i} password").status_code
                for i in range(20)]
    assert statuses[:4] == [401] * 4
    assert set(statuses[4:]) == {429}
    # The attacker's address is locked for this account, even with the right password...
    refused = panel_sign_in(attacker, "admin", OWNER_PASSWORD)
    assert refused.status_code == 429
    assert "this account from your network address" in refused.get_data(as_text=True)
    assert attacker.get("/dashboard").status_code == 302

    # ...and the owner, from an address that never signed in before, is not.
    owner = browser(app, "198.51.100.7")
    response = panel_sign_in(owner, "admin", OWNER_PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/dashboard")
    page = owner.get("/dashboard").get_data(as_text=True)
    assert "admin · admin" in page
    # The owner is told what happened while away, once.
    assert "Since your last sign-in, 21 sign-in attempts" in page
    assert "from 203.0.113.66" in page
    sign_out(owner)
    again = browser(app, "198.51.100.7")
    panel_sign_in(again, "admin", OWNER_PASSWORD)
    assert "Since your last sign-in" not in again.get("/dashboard").get_data(as_text=True)


def test_an_address_guessing_at_many_accounts_is_locked_for_all_of_them(
    app: t.Any, make_user: t.Any
) -> None:
    make_user("carol", password=OWNER_PASSWORD)
    spray = browser(app, "203.0.113.70")
    statuses = [panel_sign_in(spray, f"user{i}", "bad password 1").status_code for i in range(20)]
    assert statuses[-1] == 429
    refused = panel_sign_in(spray, "carol", OWNER_PASSWORD)
    assert refused.status_code == 429
    assert "your network address" in refused.get_data(as_text=True)
    assert panel_sign_in(browser(app, "198.51.100.8"), "carol", OWNER_PASSWORD).status_code == 302


def _lock_account_everywhere(app: t.Any, sign_in: t.Callable[[t.Any], t.Any]) -> None:
    """Wrong passwords from many addresses until the account-wide lock is reached."""
    policy: ThrottlePolicy = app.extensions["mailadmin"].throttle_policy
    per_address = policy.max_failures_per_pair - 1  # no address locks itself
    sent = 0
    host = 1
    while sent < policy.max_failures_per_account:
        attacker = browser(app, f"203.0.113.{host}")
        for _ in range(min(per_address, policy.max_failures_per_account - sent)):
            sign_in(attacker)
            sent += 1
        host += 1


def test_an_account_wide_lock_still_lets_in_known_addresses_and_browsers(
    app: t.Any, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    app.extensions["mailadmin"].throttle_policy = ThrottlePolicy(
        max_failures_per_account=12, max_failures_per_pair=4, max_failures_per_address=1000)
    make_user("admin", "admin", OWNER_PASSWORD)
    # The owner signed in before from the office (198.51.100.7), in this browser.
    laptop = browser(app, "198.51.100.7")
    assert panel_sign_in(laptop, "admin", OWNER_PASSWORD).status_code == 302
    assert laptop.get_cookie(DEVICE_COOKIE) is not None
    sign_out(laptop)

    _lock_account_everywhere(app, lambda c: panel_sign_in(c, "admin", "not the password"))
    with session_factory() as s:
        row = s.scalars(select(LoginThrottle).where(LoginThrottle.scope == "account",
                                                    LoginThrottle.key == "admin")).one()
        assert row.locked_until is not None

    # A new browser at a new address: refused even with the right password.
    stranger = browser(app, "192.0.2.200")
    refused = panel_sign_in(stranger, "admin", OWNER_PASSWORD)
    assert refused.status_code == 429
    assert "Too many failed sign-ins for this account." in refused.get_data(as_text=True)
    assert stranger.get("/dashboard").status_code == 302

    # The laptop on a hotel network: a new address, but the known-device cookie.
    laptop.environ_base["REMOTE_ADDR"] = "192.0.2.201"
    assert panel_sign_in(laptop, "admin", OWNER_PASSWORD).status_code == 302
    page = laptop.get("/dashboard").get_data(as_text=True)
    assert "Since your last sign-in, 13 sign-in attempts" in page

    # Another browser at the office: a known address.
    desk = browser(app, "198.51.100.7")
    assert panel_sign_in(desk, "admin", OWNER_PASSWORD).status_code == 302

    # A forged device cookie does not count; nor does the cookie of another account.
    forger = browser(app, "192.0.2.202")
    forger.set_cookie(DEVICE_COOKIE, "forged.value")
    assert panel_sign_in(forger, "admin", OWNER_PASSWORD).status_code == 429
    make_user("mallory", password=OWNER_PASSWORD)
    mallory = browser(app, "192.0.2.203")
    assert panel_sign_in(mallory, "mallory", OWNER_PASSWORD).status_code == 302
    sign_out(mallory)
    assert panel_sign_in(mallory, "admin", OWNER_PASSWORD).status_code == 429

    # A known place with the wrong password is still only a failure.
    sign_out(desk)
    assert panel_sign_in(desk, "admin", "still not it").status_code == 401


def test_mailbox_users_get_the_same_protection(
    mail_app: t.Any, session_factory: sessionmaker[Session]
) -> None:
    attacker = browser(mail_app, "203.0.113.66")
    statuses = [mailbox_sign_in(attacker, "anna@example.org", f"guess {i}").status_code
                for i in range(20)]
    assert set(statuses[4:]) == {429}
    assert mailbox_sign_in(attacker, "anna@example.org", PASSWORD).status_code == 429

    owner = browser(mail_app, "198.51.100.7")
    assert mailbox_sign_in(owner, "anna@example.org", PASSWORD).status_code == 302
    page = owner.get("/me/").get_data(as_text=True)
    assert "Since your last sign-in, 21 sign-in attempts" in page

    # Another mailbox locked account-wide leaves anna alone.
    mail_app.extensions["mailadmin"].throttle_policy = ThrottlePolicy(
        max_failures_per_account=12, max_failures_per_pair=4, max_failures_per_address=1000)
    _lock_account_everywhere(
        mail_app, lambda c: mailbox_sign_in(c, "nopop@example.org", "not the password"))
    assert mailbox_sign_in(browser(mail_app, "192.0.2.9"), "nopop@example.org",
                           PASSWORD).status_code == 429
    phone = browser(mail_app, "192.0.2.10")
    assert mailbox_sign_in(phone, "anna@example.org", PASSWORD).status_code == 302
    # anna's device cookie is for anna only: it does not open nopop's lock.
    sign_out(phone, "/me/")
    assert mailbox_sign_in(phone, "nopop@example.org", PASSWORD).status_code == 429


def test_mailbox_known_device_cookie_opens_an_account_wide_lock(mail_app: t.Any) -> None:
    mail_app.extensions["mailadmin"].throttle_policy = ThrottlePolicy(
        max_failures_per_account=12, max_failures_per_pair=4, max_failures_per_address=1000)
    phone = browser(mail_app, "198.51.100.20")
    assert mailbox_sign_in(phone, "nopop@example.org", PASSWORD).status_code == 302
    sign_out(phone, "/me/")
    _lock_account_everywhere(
        mail_app, lambda c: mailbox_sign_in(c, "nopop@example.org", "not the password"))
    assert mailbox_sign_in(browser(mail_app, "192.0.2.9"), "nopop@example.org",
                           PASSWORD).status_code == 429
    phone.environ_base["REMOTE_ADDR"] = "192.0.2.77"
    assert mailbox_sign_in(phone, "nopop@example.org", PASSWORD).status_code == 302
    page = phone.get("/me/").get_data(as_text=True)
    assert "Since your last sign-in, 13 sign-in attempts" in page


# --- sessions ---------------------------------------------------------------------------------


def _replay(app: t.Any, cookie: str) -> t.Any:
    thief = app.test_client()
    thief.set_cookie(SESSION_COOKIE, cookie)
    return thief


def test_after_sign_out_the_old_panel_cookie_gets_the_sign_in_page(
    app: t.Any, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    make_user("alice", password=OWNER_PASSWORD)
    client = app.test_client()
    assert panel_sign_in(client, "alice", OWNER_PASSWORD).status_code == 302
    cookie = client.get_cookie(SESSION_COOKIE).value
    assert _replay(app, cookie).get("/dashboard").status_code == 200  # the copy works while live
    assert sign_out(client).status_code == 302
    replayed = _replay(app, cookie).get("/dashboard")
    assert replayed.status_code == 302
    assert "/login" in replayed.headers["Location"]
    with session_factory() as s:
        assert s.scalars(select(LoginSession)).all() == []


def test_after_sign_out_the_old_mailbox_cookie_gets_the_sign_in_page(mail_app: t.Any) -> None:
    client = mail_app.test_client()
    assert mailbox_sign_in(client, "anna@example.org", PASSWORD).status_code == 302
    cookie = client.get_cookie(SESSION_COOKIE).value
    assert _replay(mail_app, cookie).get("/me/").status_code == 200
    assert sign_out(client, "/me/").status_code == 302
    replayed = _replay(mail_app, cookie).get("/me/")
    assert replayed.status_code == 302
    assert "/me/login" in replayed.headers["Location"]


def test_sign_out_everywhere_ends_every_session_of_the_account_only(
    app: t.Any, make_user: t.Any
) -> None:
    make_user("alice", password=OWNER_PASSWORD)
    make_user("bob", password=OWNER_PASSWORD)
    office, home, bob = app.test_client(), app.test_client(), app.test_client()
    for client, name in ((office, "alice"), (home, "alice"), (bob, "bob")):
        assert panel_sign_in(client, name, OWNER_PASSWORD).status_code == 302
    # Without the CSRF token nothing happens.
    assert office.post("/account/sign-out-everywhere").status_code == 400
    assert home.get("/dashboard").status_code == 200
    page = office.get("/account/password").get_data(as_text=True)
    assert "Sign out everywhere" in page
    done = office.post("/account/sign-out-everywhere", data={"csrf_token": csrf_token(page)})
    assert done.status_code == 302 and "/login" in done.headers["Location"]
    assert office.get("/dashboard").status_code == 302
    assert home.get("/dashboard").status_code == 302
    assert bob.get("/dashboard").status_code == 200


def test_mailbox_sign_out_everywhere(mail_app: t.Any) -> None:
    phone, laptop = mail_app.test_client(), mail_app.test_client()
    for client in (phone, laptop):
        assert mailbox_sign_in(client, "anna@example.org", PASSWORD).status_code == 302
    page = phone.get("/me/").get_data(as_text=True)
    done = phone.post("/me/sign-out-everywhere", data={"csrf_token": csrf_token(page)})
    assert done.status_code == 302
    assert laptop.get("/me/").status_code == 302


def test_password_change_still_ends_the_other_sessions(app: t.Any, make_user: t.Any) -> None:
    make_user("alice", password=OWNER_PASSWORD)
    here, there = app.test_client(), app.test_client()
    for client in (here, there):
        assert panel_sign_in(client, "alice", OWNER_PASSWORD).status_code == 302
    changed = submit(here, "/account/password", {
        "current_password": OWNER_PASSWORD, "password": "brand new pass 7",
        "confirm": "brand new pass 7"})
    assert changed.status_code == 302
    assert here.get("/dashboard").status_code == 200
    assert there.get("/dashboard").status_code == 302
