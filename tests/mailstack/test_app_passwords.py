"""App passwords against the real servers: Dovecot (IMAP, POP3) and Postfix submission (SASL
through Dovecot) accept an app password only for its protocols.

The same tests run in files mode (here, and tests/mailstack24 on Dovecot 2.4) and in SQL mode
(tests/mailstack_sql, tests/mailstack_sql24, on SQLite, PostgreSQL and MariaDB): every change
goes through the services into the database; `sync` applies it in files mode and does nothing
in SQL mode, where the servers must see it at the next lookup.
"""

from __future__ import annotations

import grp
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from mailadmin.errors import AuthenticationFailed
from mailadmin.models import APP_PASSWORD_SLOTS, AppPassword, Domain, Mailbox
from mailadmin.services import app_passwords, mailboxes, selfservice
from mailadmin.services.context import Actor
from mailadmin.services.throttle import ThrottlePolicy
from tests.mailstack.conftest import PASSWORD, Stack, dovecot_hash, eventually

pytestmark = pytest.mark.mailstack

OPERATOR = Actor.operator()


def sync(stack: Stack) -> None:
    """Make the servers see the database: an apply in files mode, nothing in SQL mode."""
    if stack.settings.mode != "sql":
        stack.reapply(restart=True)


def new_mailbox(stack: Stack, address: str) -> None:
    local, _, domain = address.partition("@")
    with stack.session() as s:
        domain_id = s.scalars(select(Domain.id).where(Domain.name == domain)).one()
        s.add(Mailbox(domain_id=domain_id, local_part=local,
                      password_hash=dovecot_hash(PASSWORD)))
        s.commit()


def add(stack: Stack, address: str, label: str, protocols: str) -> tuple[int, str]:
    with stack.session() as s:
        new = app_passwords.add_app_password(s, OPERATOR, address, label, protocols.split(","))
        s.commit()
    return new.row.id, new.password


def change(stack: Stack, fn: object, *args: object, **kwargs: object) -> None:
    with stack.session() as s:
        fn(s, OPERATOR, *args, **kwargs)  # type: ignore[operator]
        s.commit()
    sync(stack)


def logins(stack: Stack, user: str, password: str) -> dict[str, bool]:
    return {
        "imap": stack.imap_login(user, password)[0],
        "pop3": stack.pop3_login(user, password)[0],
        "smtp": stack.submission_login(user, password)[0],
    }


def test_an_imap_app_password_logs_in_over_imap_only(stack: Stack) -> None:
    user = "apw-imap@example.test"
    new_mailbox(stack, user)
    app_id, phone = add(stack, user, "Anna's phone", "imap")
    sync(stack)
    assert eventually(lambda: stack.imap_login(user, phone)[0])
    assert logins(stack, user, phone) == {"imap": True, "pop3": False, "smtp": False}
    _, reply = stack.submission_login(user, phone)
    assert reply.startswith("535"), reply
    # the main password is untouched
    assert logins(stack, user, PASSWORD) == {"imap": True, "pop3": True, "smtp": True}

    # IMAP off on the mailbox: off for its app password too; back on: back
    change(stack, mailboxes.update_mailbox, user, imap=False)
    assert eventually(lambda: not stack.imap_login(user, phone)[0])
    change(stack, mailboxes.update_mailbox, user, imap=True)
    assert eventually(lambda: stack.imap_login(user, phone)[0])

    # revoked: refused everywhere, the main password still works
    change(stack, app_passwords.revoke_app_password, user, app_id)
    assert eventually(lambda: not stack.imap_login(user, phone)[0])
    assert logins(stack, user, phone) == {"imap": False, "pop3": False, "smtp": False}
    assert stack.imap_login(user, PASSWORD)[0]


def test_each_app_password_keeps_its_own_protocols(stack: Stack) -> None:
    user = "apw-many@example.test"
    new_mailbox(stack, user)
    _, fetch = add(stack, user, "fetcher", "pop3")
    _, send = add(stack, user, "scanner", "smtp")
    _, both = add(stack, user, "laptop", "imap,smtp")
    sync(stack)
    assert eventually(lambda: stack.pop3_login(user, fetch)[0])
    assert logins(stack, user, fetch) == {"imap": False, "pop3": True, "smtp": False}
    assert logins(stack, user, send) == {"imap": False, "pop3": False, "smtp": True}
    assert logins(stack, user, both) == {"imap": True, "pop3": False, "smtp": True}
    # another mailbox's name with this one's app password: refused
    assert not stack.imap_login("alice@example.test", both)[0]


def test_app_passwords_only_refuses_the_main_password(stack: Stack) -> None:
    user = "apw-only@example.test"
    new_mailbox(stack, user)
    _, phone = add(stack, user, "phone", "imap,pop3,smtp")
    change(stack, app_passwords.set_app_passwords_only, user, True)
    assert eventually(lambda: not stack.imap_login(user, PASSWORD)[0])
    assert logins(stack, user, PASSWORD) == {"imap": False, "pop3": False, "smtp": False}
    assert logins(stack, user, phone) == {"imap": True, "pop3": True, "smtp": True}
    # the main password still signs in to /me (the service behind its sign-in form), the app
    # password does not
    with stack.session() as s:
        signed_in = selfservice.sign_in_mailbox_user(
            s, user, PASSWORD, client_address="127.0.0.1", policy=ThrottlePolicy())
        assert signed_in.user.address == user
        with pytest.raises(AuthenticationFailed):
            selfservice.sign_in_mailbox_user(s, user, phone, client_address="127.0.0.1",
                                             policy=ThrottlePolicy())
        s.rollback()
    change(stack, app_passwords.set_app_passwords_only, user, False)
    assert eventually(lambda: stack.imap_login(user, PASSWORD)[0])
    assert stack.submission_login(user, PASSWORD)[0]


def test_every_slot_is_checked(stack: Stack) -> None:
    """The last slot's passdb answers as the first one does (each slot is its own passdb)."""
    user = "apw-slots@example.test"
    new_mailbox(stack, user)
    passwords = [add(stack, user, f"device {n}", "imap")[1] for n in range(APP_PASSWORD_SLOTS)]
    sync(stack)
    with stack.session() as s:
        slots = sorted(s.scalars(select(AppPassword.slot).join(Mailbox).where(
            Mailbox.local_part == "apw-slots")))
    assert slots == list(range(1, APP_PASSWORD_SLOTS + 1))
    assert eventually(lambda: stack.imap_login(user, passwords[-1])[0])
    assert stack.imap_login(user, passwords[0])[0]
    assert not stack.pop3_login(user, passwords[-1])[0]


def test_app_password_files_are_as_private_as_the_users_file(stack: Stack) -> None:
    release = Path(stack.settings.config_dir) / "current" / "dovecot"
    if stack.settings.mode == "sql":
        assert not (release / "app-passwords").exists()
        return
    users = (release / "users").stat()
    files = sorted((release / "app-passwords").iterdir())
    assert len(files) == 3 * APP_PASSWORD_SLOTS
    for path in files:
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(users.st_mode) == 0o640, path
        assert (st.st_uid, st.st_gid) == (users.st_uid, users.st_gid) == (
            0, grp.getgrnam("dovecot").gr_gid), path
