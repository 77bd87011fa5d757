"""Why the mail servers refuse a mailbox: the facts, decided once.

The renderer writes these facts into the deny lists and access maps (with a suspended
customer folded into each mailbox's flags by `mailstack.snapshot.build_snapshot`); the
resolver explains what those rendered tables say, and account diagnosis explains a refusal a
user saw. Both read the reasons from here, so they cannot disagree about what refuses what.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..models import Mailbox, PanelUser
from ..protocols import PROTOCOLS, Protocol


class Refusal(enum.StrEnum):
    LOGIN_SUSPENDED = "login_suspended"
    CUSTOMER_SUSPENDED = "customer_suspended"
    #: The protocol is switched off for the mailbox.
    PROTOCOL_OFF = "protocol_off"
    SENDING_SUSPENDED = "sending_suspended"
    RECEIVING_SUSPENDED = "receiving_suspended"


@dataclass(frozen=True)
class MailboxFacts:
    """A mailbox's own switches and its customer's state: what the refusals follow from."""

    login_suspended: bool
    receiving_suspended: bool
    sending_suspended: bool
    customer_suspended: bool
    protocols: frozenset[Protocol]

    @classmethod
    def of(cls, mailbox: Mailbox, owner: PanelUser | None) -> MailboxFacts:
        return cls(
            login_suspended=bool(mailbox.suspend_login),
            receiving_suspended=bool(mailbox.suspend_incoming),
            sending_suspended=bool(mailbox.suspend_outgoing),
            customer_suspended=owner is not None and owner.mail_suspended,
            protocols=frozenset(p for p in PROTOCOLS if getattr(mailbox, p)),
        )


def login_refusals(facts: MailboxFacts, protocol: Protocol) -> tuple[Refusal, ...]:
    """Every reason a login over `protocol` is refused, the mailbox's own first; empty: the
    password decides."""
    reasons = []
    if facts.login_suspended:
        reasons.append(Refusal.LOGIN_SUSPENDED)
    if facts.customer_suspended:
        reasons.append(Refusal.CUSTOMER_SUSPENDED)
    if protocol not in facts.protocols:
        reasons.append(Refusal.PROTOCOL_OFF)
    return tuple(reasons)


def sending_refusals(facts: MailboxFacts) -> tuple[Refusal, ...]:
    """Why mail the mailbox sends is refused: it cannot log in to submit, or sending is held."""
    reasons = list(login_refusals(facts, Protocol.SMTP))
    if facts.sending_suspended:
        reasons.append(Refusal.SENDING_SUSPENDED)
    return tuple(reasons)


def receiving_refusals(facts: MailboxFacts) -> tuple[Refusal, ...]:
    """Why mail to the mailbox is refused at RCPT TO."""
    reasons = []
    if facts.receiving_suspended:
        reasons.append(Refusal.RECEIVING_SUSPENDED)
    if facts.customer_suspended:
        reasons.append(Refusal.CUSTOMER_SUSPENDED)
    return tuple(reasons)
