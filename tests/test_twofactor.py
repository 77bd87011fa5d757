"""Two-factor sign-in, service level: enrolment, the code step under the sign-in throttle,
single-use codes, remembered browsers and their revocation, the fresh factor API tokens ask
for, the required roles, the admin's reset and tenant isolation."""

from __future__ import annotations

import datetime as dt
import typing as t

import pyotp
import pytest
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
)
from mailadmin.models import LoginSession, PanelUser, TwoFactorRecoveryCode, TwoFactorSecret
from mailadmin.secretbox import SecretBox, SecretUnreadable
from mailadmin.services import accounts, selfservice, sessions, tokens, twofactor
from mailadmin.services import server_settings as settings_service
from mailadmin.services.context import Actor
from mailadmin.services.throttle import ThrottlePolicy

from .factories import BOX_PASSWORD, PANEL_PASSWORD, reseller_world, run

NOW = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.UTC)
KEY = "0123456789abcdef" * 4
BOX = twofactor.box_for(KEY)
POLICY = ThrottlePolicy()
IDLE = dt.timedelta(hours=8)
CLIENT = "192.0.2.7"
Factory = sessionmaker[Session]


def later(**delta: float) -> dt.datetime:
    return NOW + dt.timedelta(**delta)


def code_at(secret: str, when: dt.datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def owner_of(factory: Factory, name: str) -> twofactor.Owner:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return twofactor.Owner.panel(user.id)


def mailbox_owner(factory: Factory, address: str) -> twofactor.Owner:
    with factory() as s:
        box = selfservice.find_mailbox_by_address(s, address)
        assert box is not None
        return twofactor.Owner.mailbox(box.id)


def enrol(factory: Factory, owner: twofactor.Owner, when: dt.datetime = NOW
          ) -> tuple[str, list[str]]:
    """Turn two-factor sign-in on; returns the secret and the recovery codes."""
    started = run(factory, twofactor.start_enrolment, owner, BOX, when)
    codes = run(factory, twofactor.confirm_enrolment, owner, code_at(started.secret, when),
                BOX, when)
    return started.secret, codes


def fingerprint(factory: Factory, owner: twofactor.Owner) -> str:
    with factory() as s:
        if owner.panel_user_id is not None:
            user = s.get(PanelUser, owner.panel_user_id)
            assert user is not None
            return twofactor.password_fingerprint(user.password_hash)
        from mailadmin.models import Mailbox

        box = s.get(Mailbox, owner.mailbox_id)
        assert box is not None
        return twofactor.password_fingerprint(box.password_hash)


def second_step(factory: Factory, owner: twofactor.Owner, code: str, *,
                when: dt.datetime = NOW, remember: bool = False,
                client: str = CLIENT) -> twofactor.SecondStepSignIn:
    fp = fingerprint(factory, owner)
    with transaction(factory) as s:
        return twofactor.complete_sign_in(
            s, owner, code, BOX, password_step_at=when - dt.timedelta(seconds=20),
            fingerprint=fp, client_address=client, policy=POLICY, device_token=None,
            remember_browser=remember, session_idle_limit=IDLE, now=when,
        )


def failing_second_step(factory: Factory, owner: twofactor.Owner, code: str,
                        when: dt.datetime = NOW) -> Exception:
    """A refused code step whose failure counts are committed (as the panel does)."""
    fp = fingerprint(factory, owner)
    with factory() as s:
        try:
            twofactor.complete_sign_in(
                s, owner, code, BOX, password_step_at=when - dt.timedelta(seconds=20),
                fingerprint=fp, client_address=CLIENT, policy=POLICY, device_token=None,
                remember_browser=False, session_idle_limit=IDLE, now=when,
            )
        except (AuthenticationFailed, RateLimited) as exc:
            s.commit()
            return exc
    raise AssertionError("the code was accepted")


@pytest.fixture
def world(session_factory: Factory, make_user: t.Any) -> dict[str, t.Any]:
    return reseller_world(session_factory, make_user)


# --- the secret at rest -----------------------------------------------------------------------


def test_secret_box_needs_the_key_and_the_owner() -> None:
    sealed = BOX.seal("JBSWY3DPEHPK3PXP", "panel:1")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert BOX.open_text(sealed, "panel:1") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretUnreadable):
        BOX.open_text(sealed, "panel:2")
    with pytest.raises(SecretUnreadable):
        twofactor.box_for("another instance key, long enough").open_text(sealed, "panel:1")
    with pytest.raises(SecretUnreadable):
        BOX.open_text(sealed[:-4] + "AAAA", "panel:1")
    with pytest.raises(ValueError):
        SecretBox.from_secret_key("short", "x")


def test_enrolment_needs_a_code_from_the_new_secret(world: dict[str, t.Any],
                                                    session_factory: Factory) -> None:
    alice = owner_of(session_factory, "alice")
    started = run(session_factory, twofactor.start_enrolment, alice, BOX, NOW)
    assert started.uri.startswith("otpauth://totp/mailadmin:alice?secret=")
    assert started.qr_data_uri.startswith("data:image/svg+xml")
    status = run(session_factory, twofactor.get_status, alice, NOW)
    assert status.pending and not status.enabled and status.enrolment is None
    shown = run(session_factory, twofactor.get_status, alice, NOW, BOX).enrolment
    assert shown is not None and shown.secret == started.secret
    # Under another instance key the started secret is not shown (the page offers a new one).
    assert run(session_factory, twofactor.get_status, alice, NOW,
               twofactor.box_for(KEY[::-1])).enrolment is None
    # An unconfirmed secret asks nothing at sign-in.
    assert run(session_factory, twofactor.step_after_password, alice, [], NOW) == "none"
    with pytest.raises(ValidationError), transaction(session_factory) as s:
        twofactor.confirm_enrolment(s, alice, "000000", BOX, NOW)
    assert not run(session_factory, twofactor.is_enabled, alice)
    codes = run(session_factory, twofactor.confirm_enrolment, alice,
                code_at(started.secret, NOW), BOX, NOW)
    assert len(codes) == 10 and len(set(codes)) == 10
    with session_factory() as s:
        row = s.scalars(select(TwoFactorSecret)).one()
        assert started.secret not in row.secret_encrypted
        stored = [c.code_hash for c in s.scalars(select(TwoFactorRecoveryCode))]
        assert len(stored) == 10 and not set(codes) & set(stored)
    status = run(session_factory, twofactor.get_status, alice, NOW)
    assert status.enabled and status.recovery_codes_left == 10
    # A second device cannot replace the one in use unseen.
    with pytest.raises(Conflict), transaction(session_factory) as s:
        twofactor.start_enrolment(s, alice, BOX, NOW)


# --- sign-in ----------------------------------------------------------------------------------


def test_password_alone_no_longer_signs_in(world: dict[str, t.Any],
                                           session_factory: Factory) -> None:
    alice = owner_of(session_factory, "alice")
    secret, _ = enrol(session_factory, alice)
    with transaction(session_factory) as s:
        signed = accounts.sign_in_panel_user(
            s, "alice", PANEL_PASSWORD, client_address=CLIENT, policy=POLICY,
            actor=Actor.operator(), session_idle_limit=IDLE,
        )
        assert signed.second_step == "code"
        assert signed.session_token is None and signed.outcome is None
        assert s.scalars(select(LoginSession)).all() == []
    with pytest.raises(AuthenticationFailed), transaction(session_factory) as s:
        accounts.authenticate_panel_user(s, "alice", PANEL_PASSWORD, client_address=CLIENT,
                                         policy=POLICY, actor=Actor.operator())
    done = second_step(session_factory, alice, code_at(secret, later(seconds=40)),
                       when=later(seconds=40))
    assert done.panel_user is not None and done.panel_user.username == "alice"
    with session_factory() as s:
        row = s.scalars(select(LoginSession)).one()
        assert row.second_factor_at == later(seconds=40)
        assert sessions.session_is_live(s, done.session_token, panel_user_id=alice.panel_user_id,
                                        now=later(seconds=41), idle_limit=IDLE)


def test_codes_in_other_scripts_or_shapes_are_refused_cleanly(
    world: dict[str, t.Any], session_factory: Factory
) -> None:
    alice = owner_of(session_factory, "alice")
    secret, _ = enrol(session_factory, alice)
    when = later(minutes=1)
    right = code_at(secret, when)
    arabic = right.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for code in (arabic, "", " ", "\x00" * 6, right + "0", "x" * 5000, "ǅ" * 6):
        with transaction(session_factory) as s:
            s.execute(update_throttles_cleared())
        refused = failing_second_step(session_factory, alice, code, when)
        assert isinstance(refused, AuthenticationFailed), code
    with transaction(session_factory) as s:
        s.execute(update_throttles_cleared())
    second_step(session_factory, alice, f" {right[:3]} {right[3:]} ", when=when)


def update_throttles_cleared() -> t.Any:
    from sqlalchemy import delete

    from mailadmin.models import LoginThrottle

    return delete(LoginThrottle)


def test_a_code_is_good_once(world: dict[str, t.Any], session_factory: Factory) -> None:
    alice = owner_of(session_factory, "alice")
    secret, _ = enrol(session_factory, alice)
    when = later(minutes=2)
    second_step(session_factory, alice, code_at(secret, when), when=when)
    refused = failing_second_step(session_factory, alice, code_at(secret, when), when)
    assert "used already" in str(refused)
    # The code of the enrolment itself was used as well.
    refused = failing_second_step(session_factory, alice, code_at(secret, NOW), NOW)
    assert isinstance(refused, AuthenticationFailed)


def test_recovery_code_signs_in_once(world: dict[str, t.Any], session_factory: Factory) -> None:
    alice = owner_of(session_factory, "alice")
    _, codes = enrol(session_factory, alice)
    done = second_step(session_factory, alice, codes[3].upper().replace("-", " "))
    assert done.used_recovery_code and done.recovery_codes_left == 9
    assert isinstance(failing_second_step(session_factory, alice, codes[3]), AuthenticationFailed)
    assert run(session_factory, twofactor.get_status, alice, NOW).recovery_codes_left == 9


def test_wrong_codes_lock_the_second_step_like_wrong_passwords(
    world: dict[str, t.Any], session_factory: Factory
) -> None:
    alice = owner_of(session_factory, "alice")
    secret, _ = enrol(session_factory, alice)
    for attempt in range(POLICY.max_failures_per_pair):
        refused = failing_second_step(session_factory, alice, "123456")
        expected = RateLimited if attempt == POLICY.max_failures_per_pair - 1 else (
            AuthenticationFailed)
        assert type(refused) is expected, (attempt, refused)
    # The right code is refused while locked; so is the password from this address.
    when = later(minutes=1)
    assert isinstance(failing_second_step(session_factory, alice, code_at(secret, when), when),
                      RateLimited)
    with pytest.raises(RateLimited), transaction(session_factory) as s:
        accounts.sign_in_panel_user(s, "alice", PANEL_PASSWORD, client_address=CLIENT,
                                    policy=POLICY, actor=Actor.operator())
    # After the lock, the right code signs in.
    when = later(minutes=20)
    second_step(session_factory, alice, code_at(secret, when), when=when)


def test_the_password_step_expires_and_dies_with_a_new_password(
    world: dict[str, t.Any], session_factory: Factory
) -> None:
    alice = owner_of(session_factory, "alice")
    secret, _ = enrol(session_factory, alice)
    fp = fingerprint(session_factory, alice)
    when = later(minutes=10)
    with pytest.raises(AuthenticationFailed, match="too long"), \
            transaction(session_factory) as s:
        twofactor.complete_sign_in(
            s, alice, code_at(secret, when), BOX, password_step_at=when - dt.timedelta(minutes=6),
            fingerprint=fp, client_address=CLIENT, policy=POLICY, device_token=None,
            remember_browser=False, session_idle_limit=IDLE, now=when,
        )
    run(session_factory, accounts.set_panel_password, world["admin"], "alice",
        "a brand new password 7")
    with pytest.raises(AuthenticationFailed, match="no longer valid"), \
            transaction(session_factory) as s:
        twofactor.complete_sign_in(
            s, alice, code_at(secret, when), BOX, password_step_at=when - dt.timedelta(seconds=5),
            fingerprint=fp, client_address=CLIENT, policy=POLICY, device_token=None,
            remember_browser=False, session_idle_limit=IDLE, now=when,
        )


def test_remembered_browser_skips_the_code_until_revoked(
    world: dict[str, t.Any], session_factory: Factory
) -> None:
    alice = owner_of(session_factory, "alice")
    bert = owner_of(session_factory, "bert")
    secret, _ = enrol(session_factory, alice)
    enrol(session_factory, bert)
    when = later(minutes=1)
    token = second_step(session_factory, alice, code_at(secret, when), when=when,
                        remember=True).remember_token
    assert token
    step = twofactor.step_after_password
    assert run(session_factory, step, alice, [token], later(days=29)) == "none"
    assert run(session_factory, step, alice, [token], later(days=31)) == "code"
    # Another account's browser token is not this account's.
    assert run(session_factory, step, bert, [token], later(days=1)) == "code"
    assert run(session_factory, step, alice, ["forged"], later(days=1)) == "code"
    # Signing out everywhere forgets it.
    assert run(session_factory, twofactor.sign_out_everywhere, alice) == 1
    assert run(session_factory, step, alice, [token], later(days=1)) == "code"
    # And so does turning two-factor sign-in off (and on again).
    when = later(minutes=3)
    token = second_step(session_factory, alice, code_at(secret, when), when=when,
                        remember=True).remember_token
    when = later(minutes=4)
    with transaction(session_factory) as s:
        twofactor.disable(s, alice, code_at(secret, when), BOX, client_address=CLIENT,
                          policy=POLICY, device_token=None, now=when)
    assert run(session_factory, twofactor.get_status, alice, when).remembered_browsers == 0
    enrol(session_factory, alice, later(minutes=5))
    assert run(session_factory, step, alice, [token], later(days=1)) == "code"


def test_mailbox_user_signs_in_with_a_code(world: dict[str, t.Any],
                                           session_factory: Factory) -> None:
    info = mailbox_owner(session_factory, "info@alice.example")
    _, codes = enrol(session_factory, info)
    with transaction(session_factory) as s:
        signed = selfservice.sign_in_mailbox_user(
            s, "info@alice.example", BOX_PASSWORD, client_address=CLIENT, policy=POLICY,
            session_idle_limit=IDLE,
        )
        assert signed.second_step == "code" and signed.session_token is None
    done = second_step(session_factory, info, codes[0])
    assert done.mailbox is not None and done.mailbox.id == info.mailbox_id


# --- required roles ---------------------------------------------------------------------------


def test_required_roles_setting(world: dict[str, t.Any], session_factory: Factory) -> None:
    admin = world["admin"]
    with pytest.raises(ValidationError), transaction(session_factory) as s:
        settings_service.set_setting(s, admin, "two_factor_required_roles", "admin, root")
    with pytest.raises(PermissionDenied), transaction(session_factory) as s:
        settings_service.set_setting(s, world["rita"], "two_factor_required_roles", "")
    run(session_factory, settings_service.set_setting, admin, "two_factor_required_roles",
        "Reseller,  admin")
    assert run(session_factory, settings_service.get_setting, admin,
               "two_factor_required_roles") == "admin reseller"
    rita = owner_of(session_factory, "rita")
    alice = owner_of(session_factory, "alice")
    assert run(session_factory, twofactor.step_after_password, rita, [], NOW) == "enrol"
    assert run(session_factory, twofactor.step_after_password, alice, [], NOW) == "none"
    with transaction(session_factory) as s:
        signed = accounts.sign_in_panel_user(
            s, "rita", PANEL_PASSWORD, client_address=CLIENT, policy=POLICY,
            actor=Actor.operator(), session_idle_limit=IDLE,
        )
        # Signed in, but told to enrol.
        assert signed.second_step == "enrol" and signed.session_token
    secret, _ = enrol(session_factory, rita)
    assert run(session_factory, twofactor.step_after_password, rita, [], NOW) == "code"
    # Required: it cannot be turned off.
    when = later(minutes=1)
    with pytest.raises(PermissionDenied), transaction(session_factory) as s:
        twofactor.disable(s, rita, code_at(secret, when), BOX, client_address=CLIENT,
                          policy=POLICY, device_token=None, now=when)
    assert run(session_factory, twofactor.is_enabled, rita)


# --- API tokens need a fresh second factor ----------------------------------------------------


def test_creating_an_api_token_needs_a_fresh_second_factor(
    world: dict[str, t.Any], session_factory: Factory
) -> None:
    alice_owner = owner_of(session_factory, "alice")
    # Without two-factor sign-in nothing changes.
    run(session_factory, tokens.create_api_token, world["alice"], "before")
    secret, _ = enrol(session_factory, alice_owner)
    with transaction(session_factory) as s:
        session_token = sessions.start_session(
            s, panel_user_id=alice_owner.panel_user_id, client_address=CLIENT, now=NOW,
            idle_limit=IDLE,
        )

    def alice_at(when: dt.datetime) -> Actor:
        return Actor(name="alice", role=world["alice"].role, channel="panel",
                     user_id=alice_owner.panel_user_id, customer_id=world["alice"].customer_id,
                     clock=lambda: when)

    for session_arg in (None, session_token, "not a session"):
        with pytest.raises(twofactor.SecondFactorRequired), transaction(session_factory) as s:
            tokens.create_api_token(s, alice_at(NOW), "script", sign_in_session=session_arg)
    when = later(minutes=1)
    with transaction(session_factory) as s:
        twofactor.confirm_presence(s, alice_owner, code_at(secret, when), BOX,
                                   sign_in_session=session_token, client_address=CLIENT,
                                   policy=POLICY, device_token=None, now=when)
    run(session_factory, tokens.create_api_token, alice_at(later(minutes=10)), "fresh",
        sign_in_session=session_token)
    with pytest.raises(twofactor.SecondFactorRequired), transaction(session_factory) as s:
        tokens.create_api_token(s, alice_at(later(minutes=17)), "stale",
                                sign_in_session=session_token)
    # Another account's fresh session does not count for alice.
    bert_owner = owner_of(session_factory, "bert")
    with transaction(session_factory) as s:
        bert_session = sessions.start_session(
            s, panel_user_id=bert_owner.panel_user_id, client_address=CLIENT, now=NOW,
            idle_limit=IDLE, second_factor_at=later(minutes=9),
        )
    with pytest.raises(twofactor.SecondFactorRequired), transaction(session_factory) as s:
        tokens.create_api_token(s, alice_at(later(minutes=10)), "borrowed",
                                sign_in_session=bert_session)
    # The machine's command line is not asked (it holds the database and the key).
    cli = Actor(name="alice", role=world["alice"].role, channel="cli",
                user_id=alice_owner.panel_user_id, customer_id=world["alice"].customer_id)
    run(session_factory, tokens.create_api_token, cli, "from the shell")


# --- the admin's reset and isolation ----------------------------------------------------------


def test_only_the_admin_resets_another_accounts_second_factor(
    world: dict[str, t.Any], session_factory: Factory
) -> None:
    alice = owner_of(session_factory, "alice")
    info = mailbox_owner(session_factory, "info@alice.example")
    enrol(session_factory, alice)
    enrol(session_factory, info)
    for who in ("alice", "rita", "bert", "rob", "carl"):
        for target in ("alice", "info@alice.example", "rita"):
            with pytest.raises(PermissionDenied), transaction(session_factory) as s:
                twofactor.reset_two_factor(s, world[who], target)
    # Acting as the customer gives no more right.
    with session_factory() as s:
        alice_user = s.scalars(select(PanelUser).where(PanelUser.username == "alice")).one()
        acting = world["rita"].acting_for(alice_user)
    with pytest.raises(PermissionDenied), transaction(session_factory) as s:
        twofactor.reset_two_factor(s, acting, "alice")
    assert run(session_factory, twofactor.is_enabled, alice)
    assert run(session_factory, twofactor.is_enabled, info)
    with pytest.raises(NotFound), transaction(session_factory) as s:
        twofactor.reset_two_factor(s, world["admin"], "nobody")
    assert run(session_factory, twofactor.reset_two_factor, world["admin"], "alice") is True
    assert run(session_factory, twofactor.reset_two_factor, Actor.operator(),
               "info@alice.example") is True
    assert not run(session_factory, twofactor.is_enabled, alice)
    assert not run(session_factory, twofactor.is_enabled, info)
    assert run(session_factory, twofactor.reset_two_factor, world["admin"], "alice") is False
    with session_factory() as s:
        assert s.scalars(select(TwoFactorRecoveryCode)).all() == []


def test_a_secret_copied_to_another_account_does_not_work(
    world: dict[str, t.Any], session_factory: Factory
) -> None:
    alice = owner_of(session_factory, "alice")
    bert = owner_of(session_factory, "bert")
    secret, _ = enrol(session_factory, alice)
    enrol(session_factory, bert)
    with transaction(session_factory) as s:
        rows = {r.panel_user_id: r for r in s.scalars(select(TwoFactorSecret))}
        rows[bert.panel_user_id].secret_encrypted = rows[alice.panel_user_id].secret_encrypted
    when = later(minutes=1)
    refused = failing_second_step(session_factory, bert, code_at(secret, when), when)
    assert "cannot be read" in str(refused)


# --- the command line -------------------------------------------------------------------------


def test_cli_reset_is_the_admins_escape_hatch(
    tmp_path: t.Any, sqlite_engine: t.Any, monkeypatch: pytest.MonkeyPatch,
    session_factory: Factory, make_user: t.Any,
) -> None:
    from click.testing import CliRunner

    from mailadmin.cli import main
    from mailadmin.models import AuditEvent

    reseller_world(session_factory, make_user)
    alice = owner_of(session_factory, "alice")
    enrol(session_factory, alice)
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))

    def cli(*args: str) -> t.Any:
        return CliRunner().invoke(main, ["--instance", str(tmp_path / "inst"), *args])

    for who in ("rita", "alice", "bert"):
        refused = cli("--as", who, "user", "2fa", "reset", "alice")
        assert refused.exit_code != 0 and "Only the server admin" in refused.output
    assert run(session_factory, twofactor.is_enabled, alice)
    missing = cli("user", "2fa", "reset", "nobody")
    assert missing.exit_code != 0 and "no panel user" in missing.output
    for who in ("rita", "alice"):
        refused = cli("--as", who, "user", "2fa", "status", "alice")
        assert refused.exit_code != 0 and "Only the server admin" in refused.output
    shown = cli("user", "2fa", "status", "alice", "--json")
    assert shown.exit_code == 0, shown.output
    assert '"enabled": true' in shown.output and '"recovery_codes_left": 10' in shown.output
    assert "secret" not in shown.output
    done = cli("--as", "root", "user", "2fa", "reset", "alice")
    assert done.exit_code == 0 and "is reset" in done.output, done.output
    assert not run(session_factory, twofactor.is_enabled, alice)
    again = cli("user", "2fa", "reset", "alice")
    assert again.exit_code == 0 and "nothing to reset" in again.output
    assert cli("user", "2fa", "status", "info@alice.example").output.strip() == (
        "info@alice.example: off.")
    with session_factory() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "two_factor.reset")).one()
        assert (event.actor, event.channel, event.object_label) == ("root", "cli", "alice")
