"""Small accessibility rules every page keeps: a skip link to the content, and a turned-off
protocol said in words (not only struck through)."""

from __future__ import annotations

import typing as t

from bs4 import BeautifulSoup
from sqlalchemy import select

from mailadmin.db import transaction
from mailadmin.models import PanelUser
from mailadmin.services import domains, mailboxes
from mailadmin.services.context import Actor

from .web import sign_in

PASSWORD = "Tr0ub4dor&3-horse"


def test_skip_link_and_protocols_in_words(client: t.Any, make_user: t.Any,
                                          session_factory: t.Any) -> None:
    make_user("rita", "reseller")
    make_user("alice", "customer", reseller="rita")
    with session_factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == "alice")).one()
        alice = Actor.for_user(user, channel="panel", source="127.0.0.1")
    with transaction(session_factory) as s:
        domains.add_domain(s, alice, "a.example")
        mailboxes.create_mailbox(s, alice, "info@a.example", PASSWORD, pop3=False)
    pages = [client.get("/login")]
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    pages += [client.get("/dashboard"), client.get("/mailboxes")]
    for url, page in zip(("/login", "/dashboard", "/mailboxes"), pages, strict=True):
        assert page.status_code == 200, url
        soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
        first_link = soup.body.find("a")
        assert first_link["href"] == "#main" and "Skip" in first_link.text, url
        assert soup.find(id="main").name == "main", url
    soup = BeautifulSoup(client.get("/mailboxes").get_data(as_text=True), "html.parser")
    pop3 = soup.find(attrs={"data-protocol": "POP3"})
    imap = soup.find(attrs={"data-protocol": "IMAP"})
    assert pop3.get_text(" ", strip=True) == "POP3 off"
    assert imap.get_text(" ", strip=True) == "IMAP"
