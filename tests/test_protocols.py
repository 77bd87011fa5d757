"""The Protocol enum is the one list of protocols: models, labels and the CLI agree with it."""

from __future__ import annotations

from mailadmin.models import Domain, Mailbox, Package, ResellerAllocation
from mailadmin.protocols import PROTOCOLS, Protocol
from mailadmin.services.limits import PROTOCOL_LABELS, Limits


def test_members_are_their_stored_text() -> None:
    assert [p.value for p in PROTOCOLS] == ["imap", "pop3", "smtp"]
    assert Protocol("pop3") is Protocol.POP3
    assert {Protocol.IMAP: 1}["imap"] == 1  # dict keys from JSON or forms still match


def test_labels() -> None:
    assert [p.label for p in PROTOCOLS] == ["IMAP", "POP3", "SMTP"]
    # limits and refusals say "sending" so SMTP is not read as receiving
    assert PROTOCOL_LABELS == {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP (sending)"}


def test_every_protocol_has_its_columns() -> None:
    for protocol in PROTOCOLS:
        assert protocol.value in Mailbox.__table__.c
        assert protocol.default_field in Domain.__table__.c
        assert protocol.allow_field in Package.__table__.c
        assert protocol.default_field in Package.__table__.c
        assert protocol.allow_field in ResellerAllocation.__table__.c
    flags = {c.name for c in Mailbox.__table__.c if c.name in {"imap", "pop3", "smtp", "submission"}}
    assert flags == {p.value for p in PROTOCOLS}


def test_unlimited_limits_allow_every_protocol() -> None:
    assert Limits.unlimited().protocols == frozenset(PROTOCOLS)
