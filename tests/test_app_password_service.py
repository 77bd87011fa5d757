"""The app-password service's rules, without servers or HTTP: names, protocols, slots, the
mailbox's own protocols, the audit trail."""

from __future__ import annotations

import typing as t

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import Conflict, ValidationError
from mailadmin.models import AuditEvent
from mailadmin.protocols import Protocol
from mailadmin.services import app_passwords, mailboxes

from .factories import actor, mail_account


@pytest.fixture
def alice(session_factory: sessionmaker[Session], make_user: t.Any) -> t.Any:
    make_user("alice", "customer")
    owner = actor(session_factory, "alice")
    mail_account(session_factory, owner, "example.org", {"anna@example.org": {}})
    return owner


@pytest.mark.parametrize(("label", "message"), [
    ("", "Give the app password a name"),
    ("   \t ", "Give the app password a name"),
    ("x" * 65, "at most 64 characters"),
    ("phone\u0000", "control characters"),
    ("phone\u200e", "control characters"),
])
def test_bad_names_are_refused(session_factory: t.Any, alice: t.Any, label: str,
                               message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err, transaction(session_factory) as s:
        app_passwords.add_app_password(s, alice, "anna@example.org", label, ["imap"])
    assert err.value.field == "label"
    with session_factory() as s:
        assert app_passwords.list_app_passwords(s, alice, "anna@example.org") == []


def test_names_are_trimmed_and_unique_per_mailbox(session_factory: t.Any, alice: t.Any) -> None:
    with transaction(session_factory) as s:
        new = app_passwords.add_app_password(s, alice, "anna@example.org", "  Anna's   phone ",
                                             ["IMAP", " smtp "])
    assert new.row.label == "Anna's phone"
    assert new.row.protocols == (Protocol.IMAP, Protocol.SMTP)
    with pytest.raises(Conflict), transaction(session_factory) as s:
        app_passwords.add_app_password(s, alice, "anna@example.org", "Anna's phone", ["pop3"])


@pytest.mark.parametrize("protocols", [[], [""], ["ftp"], ["imap", "sieve"]])
def test_protocols_must_be_known_and_given(session_factory: t.Any, alice: t.Any,
                                           protocols: list[str]) -> None:
    with pytest.raises(ValidationError) as err, transaction(session_factory) as s:
        app_passwords.add_app_password(s, alice, "anna@example.org", "x", protocols)
    assert err.value.field == "protocols"


def test_a_protocol_off_on_the_mailbox_is_off_for_its_app_passwords(
        session_factory: t.Any, alice: t.Any) -> None:
    with transaction(session_factory) as s:
        app_passwords.add_app_password(s, alice, "anna@example.org", "laptop", ["imap", "smtp"])
        mailboxes.update_mailbox(s, alice, "anna@example.org", imap=False)
    with session_factory() as s:
        (row,) = app_passwords.list_app_passwords(s, alice, "anna@example.org")
        overview = app_passwords.app_passwords_overview(s, alice, "anna@example.org")
    assert row.protocols == (Protocol.IMAP, Protocol.SMTP)
    assert row.effective_protocols == (Protocol.SMTP,)
    assert overview.mailbox_protocols == (Protocol.POP3, Protocol.SMTP)
    # and a new one cannot be given IMAP while the mailbox may not use it
    with pytest.raises(ValidationError, match="may not use IMAP"), \
            transaction(session_factory) as s:
        app_passwords.add_app_password(s, alice, "anna@example.org", "phone", ["imap"])


def test_app_passwords_only_is_audited_once_per_change(session_factory: t.Any,
                                                       alice: t.Any) -> None:
    for value in (True, True, False):
        with transaction(session_factory) as s:
            app_passwords.set_app_passwords_only(s, alice, "anna@example.org", value)
    with session_factory() as s:
        events = list(s.scalars(select(AuditEvent.after).where(
            AuditEvent.action == "mailbox.app_passwords_only").order_by(AuditEvent.id)))
    assert events == ['{"app_passwords_only": true}', '{"app_passwords_only": false}']
