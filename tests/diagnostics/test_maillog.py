"""The mail log: sample Postfix and Dovecot lines (plain, rotated, gzip'd) joined by queue id."""

from __future__ import annotations

import datetime as dt
import gzip
import typing as t
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mailadmin.diagnostics.maillog import (
    MASKED,
    build_stories,
    log_files,
    parse_since,
    read_lines,
    search_log,
)
from mailadmin.models import Domain, PanelUser
from mailadmin.services.context import Actor
from mailadmin.services.selfservice import MailboxUser

NOW = dt.datetime(2026, 11, 26, 12, 0, 0)
LMTP = "relay=mail.example.net[/run/dovecot/lmtp]"

# Yesterday, rotated and compressed: a delivery to a local mailbox, joined to Dovecot's lines by
# the session id in the 250 reply.
OLD_POSTFIX = f"""\
Nov 25 09:00:00 mail postfix/smtpd[10]: 1A2B3C4D5E: client=mx.remote.test[192.0.2.1]
Nov 25 09:00:00 mail postfix/cleanup[11]: 1A2B3C4D5E: message-id=<m1@remote.test>
Nov 25 09:00:00 mail postfix/qmgr[12]: 1A2B3C4D5E: from=<ann@remote.test>, size=900, nrcpt=1 (queue active)
Nov 25 09:00:01 mail postfix/lmtp[13]: 1A2B3C4D5E: to=<alice@one.test>, {LMTP}, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <alice@one.test> SeSsIoN1 Saved)
Nov 25 09:00:01 mail postfix/qmgr[12]: 1A2B3C4D5E: removed
"""
OLD_DOVECOT = """\
Nov 25 09:00:01 lmtp(alice@one.test)<14><SeSsIoN1>: Info: msgid=<m1@remote.test>: saved mail to INBOX
Nov 25 09:00:05 imap-login: Info: Login: user=<alice@one.test>, method=PLAIN, rip=192.0.2.9
"""
# Earlier today, rotated (.1): a bounce from a remote server and a deferral.
ROTATED_POSTFIX = """\
Nov 26 08:00:00 mail postfix/submission/smtpd[20]: 2B3C4D5E6F: client=unknown[192.0.2.7], sasl_method=PLAIN, sasl_username=alice@one.test
Nov 26 08:00:00 mail postfix/qmgr[12]: 2B3C4D5E6F: from=<alice@one.test>, size=1200, nrcpt=2 (queue active)
Nov 26 08:00:02 mail postfix/smtp[21]: 2B3C4D5E6F: to=<nobody@remote.test>, relay=mx.remote.test[192.0.2.1]:25, delay=2, delays=0/0/1/1, dsn=5.1.1, status=bounced (host mx.remote.test[192.0.2.1] said: 550 5.1.1 <nobody@remote.test>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))
Nov 26 08:00:02 mail postfix/bounce[22]: 2B3C4D5E6F: sender non-delivery notification: 3C4D5E6F7A
Nov 26 08:00:03 mail postfix/smtp[21]: 2B3C4D5E6F: to=<bob@two.test>, relay=none, delay=3, delays=0/0/3/0, dsn=4.4.1, status=deferred (connect to mx.two.test[192.0.2.2]:25: Connection refused)
"""
# Now: a rejection before queueing, and a message to both customers through a forwarder.
LIVE_POSTFIX = f"""\
Nov 26 10:30:00 mail postfix/submission/smtpd[31]: warning: unknown[192.0.2.9]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=alice@one.test
Nov 26 11:00:00 mail postfix/smtpd[30]: NOQUEUE: reject: RCPT from unknown[192.0.2.8]: 552 5.2.2 <alice@one.test>: Recipient address rejected: Mailbox is full; from=<ann@remote.test> to=<alice@one.test> proto=ESMTP helo=<x>
Nov 26 11:30:00 mail postfix/smtpd[30]: 4D5E6F7A8B: client=unknown[192.0.2.8]
Nov 26 11:30:00 mail postfix/qmgr[12]: 4D5E6F7A8B: from=<ann@remote.test>, size=500, nrcpt=2 (queue active)
Nov 26 11:30:01 mail postfix/lmtp[13]: 4D5E6F7A8B: to=<alice@one.test>, orig_to=<team@one.test>, {LMTP}, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <alice@one.test> SeSsIoN2 Saved)
Nov 26 11:30:01 mail postfix/lmtp[13]: 4D5E6F7A8B: to=<bob@two.test>, orig_to=<team@one.test>, {LMTP}, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <bob@two.test> SeSsIoN2:R2 Saved)
Nov 26 11:30:01 mail postfix/qmgr[12]: 4D5E6F7A8B: removed
"""
LIVE_DOVECOT = """\
Nov 26 10:00:00 auth: Info: passwd-file(alice@one.test,192.0.2.9,<AbCd>): Password mismatch
Nov 26 10:00:01 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 1 secs): user=<alice@one.test>, method=PLAIN, rip=192.0.2.9, lip=192.0.2.10, session=<AbCd>
Nov 26 10:00:02 imap-login: Info: Login: user=<bob@two.test>, method=PLAIN, rip=192.0.2.9, lip=192.0.2.10, mpid=7, session=<EfGh>
Nov 26 11:30:01 lmtp(alice@one.test)<14><SeSsIoN2>: Info: msgid=<m4@remote.test>: saved mail to INBOX
Nov 26 11:30:01 lmtp(bob@two.test)<14><SeSsIoN2:R2>: Info: msgid=<m4@remote.test>: saved mail to INBOX
"""


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    with gzip.open(tmp_path / "postfix.log.2.gz", "wt") as fh:
        fh.write(OLD_POSTFIX)
    with gzip.open(tmp_path / "dovecot.log.2.gz", "wt") as fh:
        fh.write(OLD_DOVECOT)
    (tmp_path / "postfix.log.1").write_text(ROTATED_POSTFIX)
    (tmp_path / "postfix.log").write_text(LIVE_POSTFIX + "garbage line\n")
    (tmp_path / "dovecot.log").write_text(LIVE_DOVECOT)
    return tmp_path


@pytest.fixture
def actors(session: Session) -> dict[str, t.Any]:
    c1 = PanelUser(username="c1", role="customer", password_hash="x")
    c2 = PanelUser(username="c2", role="customer", password_hash="x")
    session.add_all([c1, c2])
    session.flush()
    session.add_all([Domain(name="one.test", owner_id=c1.id),
                     Domain(name="two.test", owner_id=c2.id)])
    session.flush()
    return {"admin": Actor.operator(), "c1": Actor.for_user(c1, "panel"),
            "c2": Actor.for_user(c2, "panel")}


def search(session: Session, actor: t.Any, query: str, log_dir: Path,
           since: str | None = None) -> t.Any:
    return search_log(session, actor, query, log_dir=log_dir, since=parse_since(since),
                      now=NOW)


def test_reads_plain_rotated_and_gzip_files(log_dir: Path) -> None:
    names = [p.name for p in log_files(log_dir)]
    assert names.index("postfix.log.2.gz") < names.index("postfix.log.1") < names.index(
        "postfix.log")
    lines = read_lines(log_files(log_dir), NOW)
    assert {x.file for x in lines} >= {"postfix.log.2.gz", "postfix.log.1", "dovecot.log"}
    assert all(x.at.year == 2026 for x in lines)


def test_delivery_story_joins_dovecot_by_session(session: Session, actors: t.Any,
                                                 log_dir: Path) -> None:
    story = search(session, actors["admin"], "1A2B3C4D5E", log_dir).stories[0]
    assert story.outcome == "delivered"
    assert story.steps == ["received", "queued", "delivered", "removed"]
    assert story.sender == "ann@remote.test" and story.size == 900
    assert any("saved mail to INBOX" in x.text for x in story.lines)
    assert not any("imap-login" in x.text for x in story.lines)


def test_bounce_and_deferral_are_classified(session: Session, actors: t.Any,
                                            log_dir: Path) -> None:
    story = search(session, actors["admin"], "2B3C4D5E6F", log_dir).stories[0]
    assert story.outcome == "bounced" and story.children == ["3C4D5E6F7A"]
    assert story.sasl_username == "alice@one.test"
    by = {d.to: d for d in story.deliveries}
    assert by["nobody@remote.test"].findings[0].family == "user_unknown"
    assert "550 5.1.1" in by["nobody@remote.test"].reply
    deferred = by["bob@two.test"]
    assert deferred.status == "deferred" and "Connection refused" in deferred.reply
    assert deferred.findings and deferred.findings[0].hard is False


def test_by_address_and_since(session: Session, actors: t.Any, log_dir: Path) -> None:
    found = search(session, actors["admin"], "alice@one.test", log_dir)
    assert [(s.kind, s.queue_id, s.outcome) for s in found.stories] == [
        ("message", "1A2B3C4D5E", "delivered"),
        ("login", None, "logged in"),
        ("message", "2B3C4D5E6F", "bounced"),
        ("login", None, "login failed"),  # Dovecot: auth lookup and imap-login, one session
        ("login", None, "login failed"),  # Postfix SASL
        ("message", None, "rejected"),
        ("message", "4D5E6F7A8B", "delivered"),
    ]
    dovecot_failure = found.stories[3]
    assert len(dovecot_failure.lines) == 2
    assert found.stories[4].findings[0].family == "auth_failed"
    rejected = found.stories[5]
    assert rejected.findings[0].family == "quota_full"
    recent = search(session, actors["admin"], "alice@one.test", log_dir, since="2h")
    assert [s.outcome for s in recent.stories] == [
        "login failed", "login failed", "rejected", "delivered"]
    assert search(session, actors["admin"], "nobody@nowhere.test", log_dir).note


def test_customer_sees_only_its_own_lines(session: Session, actors: t.Any,
                                          log_dir: Path) -> None:
    c2 = actors["c2"]
    result = search(session, c2, "alice@one.test", log_dir)
    assert result.stories == [] and "not hosted in your account" in (result.note or "")
    assert search(session, c2, "1A2B3C4D5E", log_dir).stories == []
    shared = search(session, c2, "4D5E6F7A8B", log_dir).stories[0]
    text = "\n".join(x.text for x in shared.lines)
    assert "bob@two.test" in text
    assert "alice@one.test" not in text and "team@one.test" not in text and MASKED in text
    assert [d.to for d in shared.deliveries] == ["bob@two.test"]
    assert shared.deliveries[0].orig_to == MASKED
    # the bounce sent by alice also deferred for bob: bob's owner sees that delivery only
    bounce = search(session, c2, "2B3C4D5E6F", log_dir).stories[0]
    assert [d.to for d in bounce.deliveries] == ["bob@two.test"]
    assert "alice@one.test" not in str(bounce.as_dict())
    # bob's login is customer 2's, alice's failed logins are customer 1's
    logins = [x for x in search(session, c2, "bob@two.test", log_dir).stories
              if x.kind == "login"]
    assert [x.outcome for x in logins] == ["logged in"]
    assert not any("alice" in line.text for x in logins for line in x.lines)
    # customer 1 sees its side in full
    own = search(session, actors["c1"], "4D5E6F7A8B", log_dir).stories[0]
    assert {d.to for d in own.deliveries} == {"alice@one.test"}


def test_mailbox_user_sees_only_its_own_address(session: Session, actors: t.Any,
                                                log_dir: Path) -> None:
    me = MailboxUser(mailbox_id=1, address="alice@one.test")
    assert len(search(session, me, "alice@one.test", log_dir).stories) == 7
    assert search(session, me, "team@one.test", log_dir).stories == []


def test_the_default_settings_log_to_a_folder(session: Session, actors: t.Any) -> None:
    """Issue 15: out of the box the servers log to files the page reads (not to syslog);
    with syslog chosen the page reads the journal (test_maillog_journal.py)."""
    from mailadmin.services.server import get_server_settings

    assert get_server_settings(session).log_dir == "/var/log/mailadmin"


def test_parse_since() -> None:
    assert parse_since("24h") == dt.timedelta(hours=24)
    assert parse_since("30m") == dt.timedelta(minutes=30)
    assert parse_since("7d") == dt.timedelta(days=7)
    assert parse_since(None) is None
    with pytest.raises(ValueError):
        parse_since("yesterday")


def test_build_stories_ignores_unknown_lines() -> None:
    assert build_stories([]) == []
