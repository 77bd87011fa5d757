"""Hostile and odd names thrown at the services and the web forms.

Each name is either stored and round-trips exactly (what the list shows is the normalised
form, and it is safe for every config file), or refused with a message and nothing changed.
"""

from __future__ import annotations

import dataclasses
import typing as t

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import InvalidName, MailadminError
from mailadmin.mailstack import DomainSnap, StackSnapshot, UnsafeName, build_snapshot, render
from mailadmin.models import AuditEvent, Domain, Forwarder, Mailbox
from mailadmin.names import RESERVED_DOMAINS, normalize_local_part
from mailadmin.services import domains, forwarders, mailboxes
from mailadmin.services.context import Actor

from .mailstack.test_render import ROOT, SETTINGS
from .web import sign_in, submit

PASSWORD = "Tr0ub4dor&3-horse"
HOSTILE = st.one_of(
    st.text(min_size=0, max_size=80),
    st.text(alphabet=st.sampled_from(list("ab.-_+:;,#@\"'\\ \t\n\r\x00/|$`{}()<>*?!%=ÄéßⅫ\u200b")),
            max_size=20),
    st.sampled_from(["a..b", ".a", "a.", "-a", "a" * 64, "a" * 65, "postmaster", "mailer-daemon",
                     "a\nb", "a:b", "a b", "a\rb", "x\u0000", "../etc", "a;rm -rf /", "${x}",
                     "\"quoted\"", "a@b", "Ⅻ", "ﬁ", "K"]),
)

settings_ = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


def rendered(session: Session) -> dict[str, str]:
    """The database rendered by the real renderers (Dovecot 2.3 and 2.4): their own safety
    check refuses with UnsafeName whatever a service stored that a config file cannot hold."""
    snapshot = build_snapshot(session, SETTINGS)
    files_24 = render(dataclasses.replace(snapshot, settings=dataclasses.replace(
        SETTINGS, dovecot_version="2.4")), ROOT)
    files = render(snapshot, ROOT)
    assert files_24["postfix/valias"] == files["postfix/valias"]
    return files


def state(factory: sessionmaker[Session]) -> tuple[t.Any, ...]:
    with factory() as s:
        return (
            tuple(s.scalars(select(Mailbox.local_part).order_by(Mailbox.id))),
            s.scalar(select(func.count()).select_from(Forwarder)),
            s.scalar(select(func.count()).select_from(Domain)),
            s.scalar(select(func.count()).select_from(AuditEvent)),
        )


@settings_
@given(local=HOSTILE)
def test_services_store_exactly_or_refuse(
    local: str, session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    with transaction(session_factory) as s:
        if not s.scalar(select(func.count()).select_from(Domain)):
            make_user("hostile", "customer")
            domains.add_domain(s, Actor.operator(), "a.example", customer="hostile")
    before = state(session_factory)
    try:
        with transaction(session_factory) as s:
            box = mailboxes.create_mailbox(s, Actor.operator(), f"{local}@a.example", PASSWORD)
            stored = box.local_part
    except MailadminError as refusal:
        assert refusal.message
        assert state(session_factory) == before
        return
    assert stored == normalize_local_part(local)
    with session_factory() as s:
        assert f"{stored}@a.example:" in rendered(s)["dovecot/users"]
        listed = mailboxes.list_mailboxes(s, Actor.operator(), search=stored)
        assert f"{stored}@a.example" in [row.address for row in listed.items]
    with transaction(session_factory) as s:
        mailboxes.delete_mailbox(s, Actor.operator(), f"{stored}@a.example",
                                 confirm=f"{stored}@a.example")


@settings_
@given(local=HOSTILE, destination=HOSTILE)
def test_forwarder_service_stores_exactly_or_refuses(
    local: str, destination: str, session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    with transaction(session_factory) as s:
        if not s.scalar(select(func.count()).select_from(Domain)):
            make_user("hostile", "customer")
            domains.add_domain(s, Actor.operator(), "a.example", customer="hostile")
    before = state(session_factory)
    try:
        with transaction(session_factory) as s:
            forwarder = forwarders.set_forwarder(
                s, Actor.operator(), f"{local}@a.example", [f"{destination}@remote.example"]
            )
            stored = [d.address for d in forwarder.destinations]
            stored_local = forwarder.local_part
    except MailadminError as refusal:
        assert refusal.message
        assert state(session_factory) == before
        return
    with session_factory() as s:
        valias = rendered(s)["postfix/valias"]
    assert f"{stored_local}@a.example {','.join(stored)}" in valias.splitlines()
    with transaction(session_factory) as s:
        forwarders.remove_forwarder(s, Actor.operator(), f"{stored_local}@a.example")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(local=HOSTILE)
def test_web_form_stores_exactly_or_refuses(
    local: str, app: t.Any, session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    client = app.test_client()
    with transaction(session_factory) as s:
        if not s.scalar(select(func.count()).select_from(Domain)):
            make_user("webby", "customer")
            domains.add_domain(s, Actor.operator(), "a.example", customer="webby")
    assert sign_in(client, "webby", "correct horse 9").status_code == 302
    before = state(session_factory)
    response = submit(client, "/mailboxes/new", {
        "local_part": local, "domain": "a.example", "password": PASSWORD, "confirm": PASSWORD})
    if response.status_code == 302:
        after = state(session_factory)
        assert after[0] == (*before[0], normalize_local_part(local))
        with transaction(session_factory) as s:
            stored = after[0][-1]
            mailboxes.delete_mailbox(s, Actor.operator(), f"{stored}@a.example",
                                     confirm=f"{stored}@a.example")
    else:
        assert response.status_code == 422
        assert 'class="invalid-feedback"' in response.get_data(as_text=True)
        assert state(session_factory) == before


def test_reserved_domains_are_refused_by_the_service_and_the_renderer(
    session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    """One list (`names.RESERVED_DOMAINS`): the renderer writes these names itself, so the
    service must not host them (before, adding one succeeded and only apply failed)."""
    make_user("reserver", "customer")
    assert RESERVED_DOMAINS
    for name in sorted(RESERVED_DOMAINS):
        before = state(session_factory)
        with pytest.raises(InvalidName, match="reserved"), transaction(session_factory) as s:
            domains.add_domain(s, Actor.operator(), name.upper(), customer="reserver")
        assert state(session_factory) == before
        snapshot = StackSnapshot(SETTINGS, (DomainSnap(name, "reject", None, None),), (), (), ())
        with pytest.raises(UnsafeName, match="reserved"):
            render(snapshot, ROOT)
