"""check_account: each finding held against the hosted account's state (no servers needed)."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest
from sqlalchemy.orm import Session

from mailadmin.diagnostics import classify
from mailadmin.diagnostics.account import check_account, mailbox_in_scope
from mailadmin.diagnostics.live import LIVE_TEST_POLICY, THROTTLE_PREFIX, run_live_test
from mailadmin.errors import NotFound, RateLimited
from mailadmin.models import (
    Domain,
    Forwarder,
    ForwarderDestination,
    LoginThrottle,
    Mailbox,
    Package,
    PanelUser,
)
from mailadmin.services.context import Actor
from mailadmin.services.selfservice import MailboxUser
from mailadmin.services.throttle import ThrottlePolicy


@pytest.fixture
def data(session: Session) -> dict[str, t.Any]:
    admin = PanelUser(username="root", role="admin", password_hash="x")
    pkg_owner = admin
    session.add(admin)
    session.flush()
    package = Package(owner_id=pkg_owner.id, name="small", allow_pop3=False,
                      max_quota_per_mailbox=4096)
    session.add(package)
    session.flush()
    c1 = PanelUser(username="c1", role="customer", password_hash="x", package_id=package.id)
    c2 = PanelUser(username="c2", role="customer", password_hash="x")
    c3 = PanelUser(username="c3", role="customer", password_hash="x", is_suspended=True)
    session.add_all([c1, c2, c3])
    session.flush()
    d1 = Domain(name="one.test", owner_id=c1.id)
    d2 = Domain(name="two.test", owner_id=c2.id)
    d3 = Domain(name="three.test", owner_id=c3.id)
    session.add_all([d1, d2, d3])
    session.flush()

    def mb(domain: Domain, local: str, **kw: t.Any) -> Mailbox:
        m = Mailbox(domain_id=domain.id, local_part=local, password_hash="x", **kw)
        session.add(m)
        return m

    mb(d1, "ok")
    mb(d1, "apponly", app_passwords_only=True)
    mb(d1, "noimap", imap=False)
    mb(d1, "nopop", pop3=False)
    mb(d1, "locked", suspend_login=True)
    mb(d1, "noin", suspend_incoming=True)
    mb(d1, "noout", suspend_outgoing=True)
    mb(d1, "full", quota=4096, usage_bytes=5000,
       usage_read_at=dt.datetime(2026, 3, 4, 5, 6, tzinfo=dt.UTC))
    mb(d1, "roomy", quota=100_000, usage_bytes=1000,
       usage_read_at=dt.datetime(2026, 3, 4, 5, 6, tzinfo=dt.UTC))
    mb(d2, "carol")
    mb(d3, "held")
    session.flush()
    for local, dest in (("a", "b@one.test"), ("b", "a@one.test")):
        f = Forwarder(domain_id=d1.id, local_part=local)
        f.destinations = [ForwarderDestination(address=dest, position=0)]
        session.add(f)
    session.flush()
    return {"admin": Actor.for_user(admin, "panel"), "c1": Actor.for_user(c1, "panel"),
            "c2": Actor.for_user(c2, "panel"), "c3": Actor.for_user(c3, "panel")}


def causes(session: Session, actor: Actor | MailboxUser, text: str, address: str | None = None,
           protocol: str | None = None) -> tuple[str, ...]:
    findings = classify(text)
    assert findings, text
    report = check_account(session, actor, findings, address=address, protocol=protocol)
    return report.causes


AUTH_SMTP = "535 5.7.8 Error: authentication failed: authentication failure"
AUTH_IMAP = "a1 NO [AUTHENTICATIONFAILED] Authentication failed."
AUTH_POP3 = "-ERR [AUTH] Authentication failed."


def test_auth_failure_always_checks_the_protocol_flags(session: Session, data: t.Any) -> None:
    c1 = data["c1"]
    assert causes(session, c1, AUTH_IMAP, "noimap@one.test") == ("protocol_off",)
    assert causes(session, c1, AUTH_SMTP, "noimap@one.test") == ("password_wrong",)
    # POP3 off, and the package does not allow it at all
    assert causes(session, c1, AUTH_POP3, "nopop@one.test") == ("protocol_off", "package_limit")
    # with the protocol named explicitly (the live test knows it)
    assert causes(session, c1, AUTH_SMTP, "noimap@one.test", protocol="imap") == (
        "protocol_off",)


def test_a_refused_login_of_an_app_passwords_only_mailbox_says_so(session: Session,
                                                                   data: t.Any) -> None:
    report = check_account(session, data["c1"], classify(AUTH_IMAP), address="apponly@one.test")
    assert report.causes == ("app_passwords_only",)
    assert "app password" in report.checks[0].next_step


def test_wrong_password_on_a_healthy_mailbox(session: Session, data: t.Any) -> None:
    report = check_account(session, data["c1"], classify(AUTH_SMTP), address="ok@one.test")
    assert report.causes == ("password_wrong",) and report.account_fine
    assert "password is wrong" in report.checks[0].title.lower()


def test_login_and_customer_suspended(session: Session, data: t.Any) -> None:
    assert causes(session, data["c1"], AUTH_IMAP, "locked@one.test") == ("login_suspended",)
    assert causes(session, data["admin"], AUTH_IMAP, "held@three.test") == (
        "customer_suspended",)


def test_sending_and_receiving_suspended(session: Session, data: t.Any) -> None:
    assert "sending_suspended" in causes(
        session, data["c1"], "554 5.5.1 Error: no valid recipients", "noout@one.test")
    assert causes(session, data["c1"], "550 5.2.1 <noin@one.test>: Recipient address "
                  "rejected: This mailbox is suspended and does not accept mail") == (
        "receiving_suspended",)


def test_over_quota_with_usage_and_when_read(session: Session, data: t.Any) -> None:
    report = check_account(session, data["c1"], classify(
        "552 5.2.2 <full@one.test>: Recipient address rejected: Mailbox is full"))
    check = report.checks[0]
    assert check.cause == "over_quota" and "2026-03-04 05:06" in check.detail
    assert "most the package allows" in check.next_step  # quota == package maximum
    report = check_account(session, data["c1"], classify(
        "552 5.2.2 <roomy@one.test>: Recipient address rejected: Mailbox is full"))
    assert report.checks[0].cause == "over_quota" and "free" in report.checks[0].detail


def test_forwarder_loop_and_unknown_address(session: Session, data: t.Any) -> None:
    assert "forwarder_loop" in causes(session, data["c1"], "554 5.4.6 <a@one.test>: Too many "
                                      "hops")
    assert causes(session, data["c1"], "550 5.1.1 <nobody@one.test>: Recipient address "
                  "rejected: User unknown in virtual mailbox table") == ("no_such_address",)


def test_sender_not_owned(session: Session, data: t.Any) -> None:
    report = check_account(session, data["c1"], classify(
        "553 5.7.1 <carol@two.test>: Sender address rejected: not owned by user ok@one.test"),
        address="ok@one.test")
    assert report.causes == ("sender_not_owned",)
    assert report.checks[0].title == "ok@one.test may not send as carol@two.test"


def test_domain_not_hosted_and_scope(session: Session, data: t.Any) -> None:
    assert causes(session, data["admin"], AUTH_SMTP, "x@nowhere.test") == ("domain_not_hosted",)
    foreign = check_account(session, data["c1"], classify(AUTH_SMTP), address="carol@two.test")
    missing = check_account(session, data["c1"], classify(AUTH_SMTP), address="x@nowhere.test")
    assert foreign.causes == missing.causes == ("not_in_your_account",)
    assert [c.detail for c in foreign.checks] == [c.detail for c in missing.checks]
    assert "carol" not in foreign.summary
    # a mailbox user: only its own address
    me = MailboxUser(mailbox_id=1, address="ok@one.test")
    assert causes(session, me, AUTH_SMTP, "ok@one.test") == ("password_wrong",)
    assert causes(session, me, AUTH_SMTP, "noimap@one.test") == ("not_in_your_account",)
    with pytest.raises(NotFound):
        mailbox_in_scope(session, data["c2"], "ok@one.test")


def test_account_fine_elsewhere(session: Session, data: t.Any) -> None:
    report = check_account(session, data["c1"], classify(
        "550 5.7.1 Service unavailable; client [1.2.3.4] blocked using zen.spamhaus.org"),
        address="ok@one.test")
    assert report.causes == ("account_fine",) and report.account_fine
    assert report.checks[0].next_step


def test_live_test_is_rate_limited_per_mailbox(session: Session, data: t.Any) -> None:
    policy = ThrottlePolicy(max_failures_per_account=2)
    for _ in range(2):
        report = run_live_test(session, data["c1"], "ok@one.test", "pw", targets=[],
                               policy=policy)
        assert report.results == []
    with pytest.raises(RateLimited, match="tested 2 times recently; try again in 15 minutes"):
        run_live_test(session, data["c1"], "ok@one.test", "pw", targets=[], policy=policy)
    # another mailbox is not affected, and nothing but the address is kept
    run_live_test(session, data["c1"], "roomy@one.test", "pw", targets=[], policy=policy)
    rows = session.query(LoginThrottle).all()
    assert {r.key for r in rows} == {THROTTLE_PREFIX + "ok@one.test",
                                     THROTTLE_PREFIX + "roomy@one.test"}
    assert all(r.scope == "account" for r in rows)
    assert LIVE_TEST_POLICY.max_failures_per_account >= 5
    with pytest.raises(NotFound):
        run_live_test(session, data["c2"], "ok@one.test", "pw", targets=[])



def test_a_refused_login_without_an_address_asks_for_one(session: Session, data: t.Any) -> None:
    report = check_account(session, data["c1"], classify(AUTH_SMTP))
    assert report.causes == ("address_needed",) and not report.account_fine
