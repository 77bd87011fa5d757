"""Diagnosis in context: a bounce that our server accepted and a remote server refused gets
advice about the remote side (not the mail program), the account box speaks only of
addresses hosted here, internal labels stay hidden from customers, and the recipient named
in the bounce is shown."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from mailadmin.db import transaction
from mailadmin.services import domains, mailboxes
from mailadmin.services.context import Actor
from panel.diagnostics import REMOTE_FIX

from .factories import actor
from .web import csrf_token, sign_in

BOUNCE = (Path(__file__).parent / "data" / "remote_refused_bounce.eml").read_text()
PASSWORD = "Tr0ub4dor&3-horse"


@pytest.fixture
def alice(client: t.Any, make_user: t.Any, session_factory: t.Any) -> t.Any:
    make_user("alice", "customer")
    owner: Actor = actor(session_factory, "alice")
    with transaction(session_factory) as s:
        domains.add_domain(s, owner, "shop.example")
        mailboxes.create_mailbox(s, owner, "anna@shop.example", PASSWORD)
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    return client


def _diagnose(web: t.Any, text: str, program: str = "") -> BeautifulSoup:
    token = csrf_token(web.get("/diagnose/").get_data(as_text=True))
    answer = web.post("/diagnose/", data={"csrf_token": token, "text": text, "client": program},
                      content_type="multipart/form-data")
    assert answer.status_code == 200
    return BeautifulSoup(answer.get_data(as_text=True), "html.parser")


def test_remote_refusal_gets_remote_advice_and_no_internal_labels(alice: t.Any) -> None:
    page = _diagnose(alice, BOUNCE, "thunderbird")
    finding = page.select_one("[data-testid=finding]")
    assert finding["data-remote-refused"] == "yes"
    where = finding.select_one("[data-testid=where-it-failed]").get_text(" ", strip=True)
    assert "Our server accepted the message" in where
    assert "gmail-smtp-in.l.google.com" in where
    fix = finding.select_one("[data-testid=fix]").get_text(" ", strip=True)
    assert fix == REMOTE_FIX
    assert "SMTP authentication" not in fix
    client_note = finding.select_one("[data-testid=client-fix]").get_text(" ", strip=True)
    assert client_note.startswith("Nothing needs changing in Thunderbird")
    assert finding.select_one("[data-testid=recipient]").get_text(strip=True) == \
        "friend@gmail.com"
    visible = page.get_text(" ", strip=True)
    assert "rcpt_before_data" not in visible and "syntaxerror" not in visible
    summary = page.select_one("[data-testid=account-summary]").get_text(" ", strip=True)
    assert summary == ("The recipient is at gmail.com, not hosted here: nothing to check on "
                       "your side.")
    assert not page.select("[data-testid=account-check]")


def test_a_client_error_keeps_the_mail_program_advice(alice: t.Any) -> None:
    page = _diagnose(alice, "503 valid RCPT command must precede DATA")
    finding = page.select_one("[data-testid=finding]")
    assert finding["data-remote-refused"] == "no"
    assert not finding.select("[data-testid=where-it-failed]")
    assert "SMTP authentication" in finding.select_one("[data-testid=fix]").get_text()


def test_recipient_named_only_in_the_line_is_shown(alice: t.Any) -> None:
    page = _diagnose(alice, "<bob@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1 "
                            "<bob@example.net>: Recipient address rejected: User unknown in "
                            "virtual mailbox table (in reply to RCPT TO command)")
    recipient = page.select_one("[data-testid=recipient]").get_text(strip=True)
    assert recipient == "bob@example.net"


def test_hosted_recipient_is_still_checked(alice: t.Any) -> None:
    bounce = BOUNCE.replace("friend@gmail.com", "anna@shop.example")
    page = _diagnose(alice, bounce)
    summary = page.select_one("[data-testid=account-summary]").get_text(" ", strip=True)
    assert "not hosted here" not in summary


def test_admin_sees_the_internal_labels(client: t.Any, make_user: t.Any) -> None:
    make_user("root", "admin")
    assert sign_in(client, "root", "correct horse 9").status_code == 302
    page = _diagnose(client, BOUNCE)
    assert page.select_one("[data-testid=internal-kind]").get_text(strip=True) == \
        "rcpt_before_data / syntaxerror"
    summary = page.select_one("[data-testid=account-summary]").get_text(" ", strip=True)
    # For the server admin too the remote domain is not "caused by the account".
    assert "not hosted here: nothing to check" in summary
