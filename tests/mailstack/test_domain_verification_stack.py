"""Domain claims against the real servers: refused claims change nothing; a pending domain is
unknown to Postfix until the local DNS server serves its token, then mail is accepted.

Everything goes through the services (as the panel, API and CLI do); the servers run from
what the renderer made of the database; the DNS proof is read from a real dnsmasq on a
loopback port. Outbound mail is discarded by the sandbox, so no traffic leaves the machine.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.errors import Conflict, ValidationError
from mailadmin.lab.sandbox import (
    ensure_vmail_user,
    free_port_base,
    sandbox_apply,
    sandbox_settings,
    start_sandbox,
    stop_sandbox,
)
from mailadmin.mailstack import build_snapshot
from mailadmin.models import AuditEvent, Domain, Mailbox, PanelUser, Role
from mailadmin.services import accounts, domain_ownership, domains, mailboxes
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings

from ..dnsserver import LocalDns
from .conftest import Stack, eventually, require_stack

pytestmark = pytest.mark.mailstack
OP = Actor.operator()
PASSWORD = "Tr0ub4dor&3-horse"
MAIL_HOSTNAME = "mx.hoster.test"


@pytest.fixture
def world() -> Iterator[tuple[Stack, t.Any, LocalDns]]:
    require_stack()
    directory = Path(tempfile.mkdtemp(prefix="mdv-", dir="/tmp"))
    directory.chmod(0o755)
    dns = LocalDns(directory, zones=("test",))
    dns.serve()
    engine = make_engine(f"sqlite:///{directory}/panel.sqlite")
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        for name in ("acme", "mallory"):
            accounts.create_panel_user(s, OP, name, "correct horse 9", Role.CUSTOMER)
        domains.add_domain(s, OP, "acme.test", customer="acme")
        mailboxes.create_mailbox(s, OP, "boss@acme.test", PASSWORD)
        row = get_server_settings(s)
        row.domain_verification = "dns"
        row.dns_resolvers = dns.resolver
        row.mail_hostname = MAIL_HOSTNAME
    settings = sandbox_settings(directory, free_port_base())
    ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
    with Session(engine) as s:
        sandbox_apply(build_snapshot(s, settings))
    info = start_sandbox(directory, settings.ports.smtp - 25)
    try:
        yield Stack(info, settings, engine, directory / "log"), factory, dns
    finally:
        stop_sandbox(directory)
        dns.stop()
        engine.dispose()
        shutil.rmtree(directory, ignore_errors=True)


def _actor(factory: t.Any, name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


def _state(factory: t.Any) -> tuple[int, ...]:
    with factory() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) or 0
                     for m in (Domain, Mailbox, AuditEvent))


def _rcpt(stack: Stack, address: str) -> tuple[int, str]:
    with stack.smtp() as s:
        s.mail("someone@outside.test")
        code, text = s.rcpt(address)
        return code, text.decode(errors="replace")


def test_claims_refused_then_pending_until_dns_proves_it(
        world: tuple[Stack, t.Any, LocalDns]) -> None:
    stack, factory, dns = world
    mallory = _actor(factory, "mallory")

    # each refused with a clear message, nothing changed
    for name, kind, words in (
        ("mail.acme.test", Conflict, "below acme.test, which another customer hosts"),
        ("gmail.com", ValidationError, "cannot be added here"),
        ("relay.gmx.de", ValidationError, "below gmx.*"),
        ("printer.local", ValidationError, "can never receive mail"),
        ("x.invalid", ValidationError, "can never receive mail"),
        ("discard.mailadmin.invalid", ValidationError, "reserved"),
    ):
        before = _state(factory)
        with pytest.raises(kind) as info, transaction(factory) as s:
            domains.add_domain(s, mallory, name)
        assert words in info.value.message, info.value.message
        assert _state(factory) == before

    # a claim of a new domain: pending, its mailbox can be prepared
    with transaction(factory) as s:
        domains.add_domain(s, mallory, "mallory.test")
        mailboxes.create_mailbox(s, mallory, "pat@mallory.test", PASSWORD)
        status = domain_ownership.verification_for(s, mallory, "mallory.test")
    assert status.pending and status.token
    stack.reapply(restart=True)

    # Postfix does not know the domain: refused at RCPT from outside ...
    code, text = _rcpt(stack, "pat@mallory.test")
    assert code == 554 and "Relay access denied" in text, (code, text)
    # ... and local mail is not delivered to it: it goes the way of outbound mail (the
    # sandbox discards that), never into pat's mailbox, which cannot even log in
    subject = f"local-{time.time_ns()}"
    smtp, auth, _ = stack.submission("boss@acme.test", PASSWORD)
    with smtp:
        smtp.sendmail("boss@acme.test", ["pat@mallory.test"],
                      f"Subject: {subject}\r\n\r\nhello\r\n")
    eventually(lambda: "outbound mail discarded by the sandbox" in stack.postfix_log()
               and "pat@mallory.test" in stack.postfix_log())
    assert not stack.imap_login("pat@mallory.test", PASSWORD)[0]

    # a wrong token keeps it pending
    dns.serve(txt={"_mailadmin-challenge.mallory.test": ["mailadmin-not-the-token"]})
    with transaction(factory) as s:
        again = domain_ownership.verify_domain(s, mallory, "mallory.test", timeout=3)
    assert again.pending
    stack.reapply(restart=True)
    assert _rcpt(stack, "pat@mallory.test")[0] == 554

    # the DNS server serves the token: verify, apply, and mail is accepted and delivered
    dns.serve(txt={"_mailadmin-challenge.mallory.test": [status.token or ""]})
    with transaction(factory) as s:
        done = domain_ownership.verify_domain(s, mallory, "mallory.test", timeout=3)
    assert not done.pending
    stack.reapply(restart=True)
    code, text = _rcpt(stack, "pat@mallory.test")
    assert code == 250, (code, text)
    subject = stack.send("someone@outside.test", ["pat@mallory.test"],
                         subject=f"after-{time.time_ns()}")
    assert eventually(lambda: subject in stack.inbox_subjects("pat@mallory.test", PASSWORD))
    assert auth == 235
