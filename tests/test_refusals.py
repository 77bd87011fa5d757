"""Refusal facts are decided once (services.refusals): the resolver, which reads the rendered
deny lists, and account diagnosis give the reasons that module gives, for every combination."""

from __future__ import annotations

import itertools
import typing as t

from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.models import PanelUser
from mailadmin.protocols import PROTOCOLS, Protocol
from mailadmin.services import domains, mailboxes
from mailadmin.services.context import Actor
from mailadmin.services.refusals import (
    MailboxFacts,
    Refusal,
    login_refusals,
    receiving_refusals,
    sending_refusals,
)
from mailadmin.services.resolver import resolve_address

PASSWORD = "Tr0ub4dor&3-horse"


def _facts(**changes: t.Any) -> MailboxFacts:
    base: dict[str, t.Any] = dict(login_suspended=False, receiving_suspended=False,
                                  sending_suspended=False, customer_suspended=False,
                                  protocols=frozenset(PROTOCOLS))
    return MailboxFacts(**{**base, **changes})


def test_reasons() -> None:
    assert all(login_refusals(_facts(), p) == () for p in PROTOCOLS)
    off = _facts(protocols=frozenset({Protocol.IMAP}))
    assert login_refusals(off, Protocol.IMAP) == ()
    assert login_refusals(off, Protocol.POP3) == (Refusal.PROTOCOL_OFF,)
    both = _facts(login_suspended=True, customer_suspended=True, protocols=frozenset())
    assert login_refusals(both, Protocol.SMTP) == (
        Refusal.LOGIN_SUSPENDED, Refusal.CUSTOMER_SUSPENDED, Refusal.PROTOCOL_OFF)
    assert sending_refusals(_facts(sending_suspended=True)) == (Refusal.SENDING_SUSPENDED,)
    assert sending_refusals(_facts(protocols=frozenset({Protocol.IMAP}))) == (
        Refusal.PROTOCOL_OFF,)
    # a held login does not stop mail coming in; a suspended customer does
    assert receiving_refusals(_facts(login_suspended=True)) == ()
    assert receiving_refusals(_facts(customer_suspended=True)) == (
        Refusal.CUSTOMER_SUSPENDED,)


def test_resolver_reads_the_same_reasons_from_the_rendered_tables(
    session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    make_user("carol")
    op = Actor.operator()
    with transaction(session_factory) as s:
        domains.add_domain(s, op, "facts.test", customer="carol")
        mailboxes.create_mailbox(s, op, "box@facts.test", PASSWORD)
    seen = set()
    for login, customer, imap, smtp in itertools.product((False, True), repeat=4):
        with transaction(session_factory) as s:
            box = mailboxes.get_mailbox(s, op, "box@facts.test")
            box.suspend_login, box.imap, box.smtp = login, imap, smtp
            owner = s.get(PanelUser, box.domain.owner_id)
            assert owner is not None
            owner.is_suspended = customer
            s.flush()
            facts = MailboxFacts.of(box, owner)
            result = resolve_address(s, op, "box@facts.test")
        assert result.customer_suspended is customer
        for got in result.logins:
            reasons = login_refusals(facts, got.protocol)
            assert got.allowed is (reasons == ()), (login, customer, imap, smtp, got)
            if reasons:
                first = reasons[0]
                want = (f"{got.protocol}_off" if first is Refusal.PROTOCOL_OFF
                        else first.value)
                assert got.reason == want
                seen.add(want)
    assert seen == {"login_suspended", "customer_suspended", "imap_off", "smtp_off"}
