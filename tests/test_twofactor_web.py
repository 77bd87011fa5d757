"""Two-factor sign-in over HTTP, with real forms and CSRF tokens: enrolment, the code step,
its lockout, single-use recovery codes, remembered browsers and their revocation, the roles
the server requires it of, API tokens, and who may open whose pages."""

from __future__ import annotations

import datetime as dt
import re
import time
import typing as t

import pyotp
import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import LoginSession, TwoFactorSecret
from mailadmin.services import server_settings as settings_service
from mailadmin.services.context import Actor

from .factories import BOX_PASSWORD, PANEL_PASSWORD, reseller_world
from .test_selfservice import register_blueprints
from .web import csrf_token, sign_in, submit

Factory = sessionmaker[Session]


def steady() -> None:
    """Wait while the current 30-second TOTP step is about to end, so that a code computed
    now is still in the server's window when it checks it."""
    while 30 - time.time() % 30 < 4:
        time.sleep(0.5)


def code_for(secret: str, steps_from_now: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(dt.datetime.now(dt.UTC)) + steps_from_now)


def page_text(response: t.Any, testid: str) -> str:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    element = soup.find(attrs={"data-testid": testid})
    assert element is not None, response.get_data(as_text=True)[-3000:]
    return element.get_text(" ", strip=True)


def recovery_codes(response: t.Any) -> list[str]:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    return [li.get_text(strip=True) for li in soup.select("[data-testid=recovery-codes] li")]


def enrol(client: t.Any, base: str = "/account/two-factor") -> tuple[str, list[str]]:
    """Set up two-factor sign-in through the pages; the enrolment uses the previous step's
    code, so the current and the next one are left for signing in."""
    steady()
    started = submit(client, f"{base}/start", {}, page=base)
    assert started.status_code == 302, started.get_data(as_text=True)[-2000:]
    page = client.get(base)
    assert page.headers["Cache-Control"] == "no-store"
    secret = page_text(page, "totp-secret")
    confirmed = submit(client, f"{base}/confirm", {"code": code_for(secret, -1)}, page=base)
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)[-2000:]
    assert confirmed.headers["Cache-Control"] == "no-store"
    codes = recovery_codes(confirmed)
    assert len(codes) == 10
    return secret, codes


def sign_out(client: t.Any) -> None:
    page = client.get("/account/password")
    client.post("/logout", data={"csrf_token": csrf_token(page.get_data(as_text=True))})


def code_step(client: t.Any, code: str, *, remember: bool = False) -> t.Any:
    data: dict[str, str] = {"code": code}
    if remember:
        data["remember"] = "y"
    return submit(client, "/sign-in/code", data)


@pytest.fixture
def world(session_factory: Factory, make_user: t.Any) -> dict[str, t.Any]:
    return reseller_world(session_factory, make_user)


def test_panel_user_enrols_and_signs_in_with_password_and_code(
    app: t.Any, client: t.Any, world: dict[str, t.Any]
) -> None:
    assert sign_in(client, "alice", PANEL_PASSWORD).status_code == 302
    assert "Set up two-factor sign-in" in client.get("/account/two-factor").get_data(as_text=True)
    assert "is off" in page_text(client.get("/account/two-factor/verify"), "two-factor-off")
    secret, codes = enrol(client)
    assert "is on since" in page_text(client.get("/account/two-factor"), "two-factor-state")
    sign_out(client)

    response = sign_in(client, "alice", PANEL_PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in/code"
    # Between the two steps nothing is signed in.
    assert client.get("/domains/").status_code == 302
    assert client.get("/domains/").headers["Location"].startswith("/login")
    wrong = code_step(client, "000000")
    assert wrong.status_code == 401 and "code is wrong" in wrong.get_data(as_text=True)
    done = code_step(client, code_for(secret))
    assert done.status_code == 302 and done.headers["Location"] == "/dashboard"
    assert client.get("/domains/").status_code == 200
    # The page asked for before signing in is where the code step leads (same site only).
    sign_out(client)
    page = client.get("/login?next=/domains/")
    client.post("/login?next=/domains/", data={
        "username": "alice", "password": PANEL_PASSWORD,
        "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert code_step(client, codes[0]).headers["Location"] == "/domains/"


def test_forms_need_their_csrf_token(app: t.Any, client: t.Any, world: dict[str, t.Any]) -> None:
    sign_in(client, "alice", PANEL_PASSWORD)
    for url in ("/account/two-factor/start", "/account/two-factor/confirm",
                "/account/two-factor/disable", "/account/two-factor/recovery-codes",
                "/account/two-factor/verify"):
        assert client.post(url, data={"code": "123456"}).status_code == 400, url
    secret, _ = enrol(client)
    sign_out(client)
    sign_in(client, "alice", PANEL_PASSWORD)
    assert client.post("/sign-in/code", data={"code": code_for(secret)}).status_code == 400


def test_wrong_codes_lock_the_second_step(app: t.Any, client: t.Any,
                                          world: dict[str, t.Any]) -> None:
    sign_in(client, "alice", PANEL_PASSWORD)
    secret, codes = enrol(client)
    sign_out(client)
    sign_in(client, "alice", PANEL_PASSWORD)
    statuses = [code_step(client, f"{n:06d}").status_code for n in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    locked = code_step(client, code_for(secret))
    assert locked.status_code == 429 and "paused" in locked.get_data(as_text=True)
    assert code_step(client, codes[0]).status_code == 429
    # The password step from this address is paused too.
    fresh = app.test_client()
    assert sign_in(fresh, "alice", PANEL_PASSWORD).status_code == 429


def test_recovery_code_works_once(app: t.Any, client: t.Any, world: dict[str, t.Any]) -> None:
    sign_in(client, "alice", PANEL_PASSWORD)
    _, codes = enrol(client)
    sign_out(client)
    sign_in(client, "alice", PANEL_PASSWORD)
    done = code_step(client, codes[0])
    assert done.status_code == 302
    assert "9 recovery codes are left" in client.get(done.headers["Location"]).get_data(
        as_text=True)
    sign_out(client)
    sign_in(client, "alice", PANEL_PASSWORD)
    again = code_step(client, codes[0])
    assert again.status_code == 401


def test_remembered_browser_is_revoked_by_signing_out_everywhere(
    app: t.Any, client: t.Any, world: dict[str, t.Any]
) -> None:
    sign_in(client, "alice", PANEL_PASSWORD)
    secret, codes = enrol(client)
    sign_out(client)
    sign_in(client, "alice", PANEL_PASSWORD)
    assert code_step(client, code_for(secret), remember=True).status_code == 302
    assert client.get_cookie("mailadmin_2fa_browser") is not None
    sign_out(client)
    # This browser skips the code; another one does not.
    assert sign_in(client, "alice", PANEL_PASSWORD).headers["Location"] == "/dashboard"
    other = app.test_client()
    assert sign_in(other, "alice", PANEL_PASSWORD).headers["Location"] == "/sign-in/code"
    # A stolen copy of the cookie stops working once the owner signs out everywhere.
    stolen = client.get_cookie("mailadmin_2fa_browser").value
    done = submit(client, "/account/sign-out-everywhere", {}, page="/account/password")
    assert done.status_code == 302
    thief = app.test_client()
    thief.set_cookie("mailadmin_2fa_browser", stolen)
    assert sign_in(thief, "alice", PANEL_PASSWORD).headers["Location"] == "/sign-in/code"
    assert sign_in(client, "alice", PANEL_PASSWORD).headers["Location"] == "/sign-in/code"
    # Turning two-factor sign-in off forgets them too.
    assert code_step(client, codes[1], remember=True).status_code == 302
    turned_off = submit(client, "/account/two-factor/disable", {"code": codes[2]},
                        page="/account/two-factor")
    assert turned_off.status_code == 302
    assert "Set up two-factor sign-in" in client.get("/account/two-factor").get_data(as_text=True)


def test_a_role_the_server_requires_it_of_must_enrol_at_next_sign_in(
    app: t.Any, client: t.Any, world: dict[str, t.Any], session_factory: Factory
) -> None:
    with transaction(session_factory) as s:
        settings_service.set_setting(s, Actor.operator(), "two_factor_required_roles",
                                     "admin reseller")
    response = sign_in(client, "rita", PANEL_PASSWORD)
    assert response.status_code == 302
    blocked = client.get("/customers/")
    assert blocked.status_code == 302 and blocked.headers["Location"] == "/account/two-factor"
    page = client.get("/account/two-factor")
    assert "requires two-factor sign-in" in page_text(page, "must-enrol")
    secret, _ = enrol(client)
    assert client.get("/customers/").status_code == 200
    # It cannot be turned off while required.
    assert "cannot be turned off" in client.get("/account/two-factor").get_data(as_text=True)
    # A customer is not asked.
    customer = app.test_client()
    assert sign_in(customer, "alice", PANEL_PASSWORD).headers["Location"] == "/dashboard"
    assert customer.get("/domains/").status_code == 200
    sign_out(client)
    assert sign_in(client, "rita", PANEL_PASSWORD).headers["Location"] == "/sign-in/code"
    assert code_step(client, code_for(secret)).status_code == 302


def test_api_token_needs_a_fresh_second_factor(
    app: t.Any, client: t.Any, world: dict[str, t.Any], session_factory: Factory
) -> None:
    sign_in(client, "alice", PANEL_PASSWORD)
    _, codes = enrol(client)
    # Enrolling proved the factor: a token now is fine.
    made = submit(client, "/account/tokens", {"name": "backup", "access": "read write",
                                              "expires": "0"})
    assert made.status_code == 200, made.get_data(as_text=True)[-2000:]
    # Later, the proof is stale.
    with transaction(session_factory) as s:
        s.execute(update(LoginSession).values(
            second_factor_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)))
    refused = submit(client, "/account/tokens", {"name": "later", "access": "read",
                                                 "expires": "0"})
    assert refused.status_code == 403
    assert "Confirm with your authenticator code" in refused.get_data(as_text=True)
    verify = "/account/two-factor/verify?next=/account/tokens"
    assert client.get(verify).status_code == 200
    confirmed = submit(client, verify, {"code": codes[0]})
    assert confirmed.status_code == 302 and confirmed.headers["Location"] == "/account/tokens"
    again = submit(client, "/account/tokens", {"name": "later", "access": "read",
                                               "expires": "0"})
    assert again.status_code == 200


def test_mailbox_user_enrols_at_me_and_signs_in_with_a_code(
    app: t.Any, client: t.Any, world: dict[str, t.Any]
) -> None:
    register_blueprints(app)
    response = submit(client, "/me/login", {"address": "info@alice.example",
                                            "password": BOX_PASSWORD})
    assert response.status_code == 302
    secret, _ = enrol(client, "/me/two-factor")
    page = client.get("/me/")
    client.post("/logout", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    response = submit(client, "/me/login", {"address": "info@alice.example",
                                            "password": BOX_PASSWORD})
    assert response.headers["Location"] == "/sign-in/code"
    done = code_step(client, code_for(secret))
    assert done.status_code == 302 and done.headers["Location"] == "/me/"
    assert client.get("/me/").status_code == 200


def test_nobody_reaches_another_accounts_second_factor(
    app: t.Any, world: dict[str, t.Any], session_factory: Factory
) -> None:
    register_blueprints(app)
    panel = app.test_client()
    sign_in(panel, "alice", PANEL_PASSWORD)
    mailbox = app.test_client()
    submit(mailbox, "/me/login", {"address": "info@alice.example", "password": BOX_PASSWORD})
    # Each kind of account has its own pages; the other kind's answer 403.
    assert panel.get("/me/two-factor").status_code == 403
    assert mailbox.get("/account/two-factor").status_code == 403
    # Alice's set-up belongs to alice: the pages take no account from the URL or the form.
    enrol(panel)
    bert = app.test_client()
    sign_in(bert, "bert", PANEL_PASSWORD)
    assert "Set up two-factor sign-in" in bert.get("/account/two-factor").get_data(as_text=True)
    with session_factory() as s:
        rows = s.scalars(select(TwoFactorSecret)).all()
        assert len(rows) == 1
    turned_off = submit(bert, "/account/two-factor/disable", {"code": "123456"},
                        page="/account/two-factor")
    assert turned_off.status_code in (404, 422)
    with session_factory() as s:
        assert s.scalars(select(TwoFactorSecret)).one().confirmed_at is not None
    # Nor can the code page be reached without a password step.
    anonymous = app.test_client()
    assert anonymous.get("/sign-in/code").headers["Location"].startswith("/login")
    assert re.search(r"/login", anonymous.get("/account/two-factor").headers["Location"])
