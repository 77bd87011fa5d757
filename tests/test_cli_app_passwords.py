"""`mailadmin mailbox app-password add|list|revoke|only`: shown once, hashed, scoped by --as."""

from __future__ import annotations

import json
import typing as t

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.hashing import verify_mailbox_password
from mailadmin.models import AppPassword, AuditEvent

from .test_cli_mail import PASSWORD, Run, as_json, mailbox, ok, refused, refused_json, run, world

__all__ = ["run", "world"]  # fixtures


def _apps(session_factory: sessionmaker[Session]) -> list[AppPassword]:
    with session_factory() as s:
        return list(s.scalars(select(AppPassword).order_by(AppPassword.id)))


def test_add_list_revoke(run: Run, world: None, session_factory: t.Any) -> None:
    ok(run("--as", "alice", "domain", "add", "alice.example"))
    ok(run("mailbox", "add", "anna@alice.example", "--password-stdin", "--no-pop3",
           stdin=PASSWORD + "\n"))
    created = as_json(run("--as", "alice", "mailbox", "app-password", "add", "anna@alice.example",
                          "Anna's phone", "--protocols", "imap", "--json"))
    assert created["label"] == "Anna's phone" and created["protocols"] == ["imap"]
    stored = _apps(session_factory)
    assert [a.id for a in stored] == [created["id"]]
    # stored hashed, never in the clear
    assert stored[0].password_hash.startswith("{SHA512-CRYPT}$6$")
    assert created["password"] not in stored[0].password_hash
    assert verify_mailbox_password(created["password"], stored[0].password_hash)

    text = ok(run("mailbox", "app-password", "add", "anna@alice.example", "tablet",
                  "--protocols", "imap")).stdout
    password = text.splitlines()[1]
    assert len(password) == 27 and password.count("-") == 3
    assert verify_mailbox_password(password, _apps(session_factory)[1].password_hash)

    listed = as_json(run("--as", "alice", "mailbox", "app-password", "list", "anna@alice.example",
                         "--json"))["items"]
    assert [a["label"] for a in listed] == ["Anna's phone", "tablet"]
    assert all("password" not in a and "password_hash" not in a for a in listed)
    table = ok(run("mailbox", "app-password", "list", "anna@alice.example")).stdout
    assert "Anna's phone" in table and created["password"] not in table

    # the mailbox may not use POP3, so neither may an app password; a taken name; bad input
    refused_json(run("mailbox", "app-password", "add", "anna@alice.example", "x",
                     "--protocols", "pop3", "--json"), "may not use POP3", "invalid")
    refused_json(run("mailbox", "app-password", "add", "anna@alice.example", "tablet",
                     "--protocols", "imap", "--json"), "named 'tablet' already", "conflict")
    refused(run("mailbox", "app-password", "add", "anna@alice.example", "y",
                "--protocols", "ftp"), "Unknown protocol 'ftp'")
    refused(run("mailbox", "app-password", "add", "anna@alice.example", "   ",
                "--protocols", "imap"), "Give the app password a name")
    assert len(_apps(session_factory)) == 2

    revoked = as_json(run("--as", "alice", "mailbox", "app-password", "revoke",
                          "anna@alice.example", str(created["id"]), "--json"))
    assert revoked == {"id": created["id"], "label": "Anna's phone", "revoked": True}
    refused(run("mailbox", "app-password", "revoke", "anna@alice.example", str(created["id"])),
            f"no app password {created['id']}")
    assert [a.label for a in _apps(session_factory)] == ["tablet"]

    assert as_json(run("mailbox", "app-password", "only", "anna@alice.example", "--json")) == {
        "address": "anna@alice.example", "app_passwords_only": True}
    assert mailbox(session_factory, "anna@alice.example").app_passwords_only
    ok(run("mailbox", "app-password", "only", "anna@alice.example", "--off"))
    assert not mailbox(session_factory, "anna@alice.example").app_passwords_only
    with session_factory() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(
            AuditEvent.action.like("mailbox.app_password%"))))
        assert actions == ["mailbox.app_password.add", "mailbox.app_password.add",
                           "mailbox.app_password.revoke", "mailbox.app_passwords_only",
                           "mailbox.app_passwords_only"]
        # no secret reaches the audit trail
        for before, after in s.execute(select(AuditEvent.before, AuditEvent.after)):
            assert "$6$" not in f"{before}{after}"
            assert created["password"] not in f"{before}{after}"


def test_another_tenant_cannot_see_or_touch_app_passwords(run: Run, world: None,
                                                          session_factory: t.Any) -> None:
    ok(run("--as", "alice", "domain", "add", "alice.example"))
    ok(run("--as", "rob", "domain", "add", "carl.example", "--customer", "carl"))
    ok(run("mailbox", "add", "anna@alice.example", "--password-stdin", stdin=PASSWORD + "\n"))
    ok(run("mailbox", "add", "info@carl.example", "--password-stdin", stdin=PASSWORD + "\n"))
    anna = as_json(run("mailbox", "app-password", "add", "anna@alice.example", "phone",
                       "--protocols", "imap", "--json"))
    with session_factory() as s:
        before = (s.scalar(select(func.count()).select_from(AppPassword)),
                  s.scalar(select(func.count()).select_from(AuditEvent)))
    for who in (("--as", "carl"), ("--as", "rob"), ("--as", "bert")):
        refused(run(*who, "mailbox", "app-password", "list", "anna@alice.example"),
                "There is no domain")
        refused(run(*who, "mailbox", "app-password", "add", "anna@alice.example", "mine",
                    "--protocols", "imap"), "There is no domain")
        refused(run(*who, "mailbox", "app-password", "revoke", "anna@alice.example",
                    str(anna["id"])), "There is no domain")
        refused(run(*who, "mailbox", "app-password", "only", "anna@alice.example"),
                "There is no domain")
    # an id of another mailbox, through a mailbox carl does manage: not found either
    refused(run("--as", "carl", "mailbox", "app-password", "revoke", "info@carl.example",
                str(anna["id"])), f"no app password {anna['id']}")
    with session_factory() as s:
        after = (s.scalar(select(func.count()).select_from(AppPassword)),
                 s.scalar(select(func.count()).select_from(AuditEvent)))
    assert after == before
    # alice's reseller manages them
    listed = as_json(run("--as", "rita", "mailbox", "app-password", "list", "anna@alice.example",
                         "--json"))
    assert [a["id"] for a in listed["items"]] == [anna["id"]]


def test_slots_run_out(run: Run, world: None, session_factory: t.Any) -> None:
    from mailadmin.models import APP_PASSWORD_SLOTS

    ok(run("domain", "add", "alice.example", "--customer", "alice"))
    ok(run("mailbox", "add", "anna@alice.example", "--password-stdin", stdin=PASSWORD + "\n"))
    for n in range(APP_PASSWORD_SLOTS):
        ok(run("mailbox", "app-password", "add", "anna@alice.example", f"d{n}",
               "--protocols", "imap"))
    refused_json(run("mailbox", "app-password", "add", "anna@alice.example", "one more",
                     "--protocols", "imap", "--json"),
                 f"may have {APP_PASSWORD_SLOTS} app passwords", "limit_reached")
    # a revoked slot is used again
    first = json.loads(ok(run("mailbox", "app-password", "list", "anna@alice.example",
                              "--json")).stdout)["items"][2]
    ok(run("mailbox", "app-password", "revoke", "anna@alice.example", str(first["id"])))
    ok(run("mailbox", "app-password", "add", "anna@alice.example", "again", "--protocols",
           "imap"))
    assert sorted(a.slot for a in _apps(session_factory)) == list(range(1, APP_PASSWORD_SLOTS + 1))


def test_removing_the_mailbox_removes_its_app_passwords(run: Run, world: None,
                                                        session_factory: t.Any) -> None:
    ok(run("domain", "add", "alice.example", "--customer", "alice"))
    ok(run("mailbox", "add", "anna@alice.example", "--password-stdin", stdin=PASSWORD + "\n"))
    ok(run("mailbox", "app-password", "add", "anna@alice.example", "phone", "--protocols",
           "imap"))
    ok(run("mailbox", "remove", "anna@alice.example", "--yes"))
    assert _apps(session_factory) == []
