"""Issue 17: a cPanel account backup imported with `mailadmin import cpanel`; once applied, the
real Dovecot accepts every mailbox's old password (IMAP, POP3 and SMTP AUTH through Dovecot),
the real Postfix refuses unknown addresses with the backup's ``:fail:`` message and follows
its forwarders and domain forwarder, and the
messages of the backup's Maildirs are copied in once, however often the import runs."""

from __future__ import annotations

import email.message
import os
import tempfile
import time
from pathlib import Path

import pytest

from mailadmin.db import transaction
from mailadmin.models import Role
from mailadmin.services import accounts
from mailadmin.services.context import Actor

from ..cpanel_backup import FAIL_MESSAGE, OLD_PASSWORDS, build_backup
from .conftest import ServiceStack, eventually

pytestmark = pytest.mark.mailstack
SHOP, BLOG = "shop-imp.test", "blog-imp.test"


def _address(address: str) -> str:
    return address.replace("@shop.test", f"@{SHOP}").replace("@blog.test", f"@{BLOG}")


def _maildir_message(folder: Path, subject: str) -> None:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "old@elsewhere.test", "anna@x", subject
    msg.set_content("kept from the old server")
    (folder / "cur" / f"{int(time.time())}.M1P1.oldhost:2,S").write_bytes(bytes(msg))


def test_imported_mailboxes_keep_their_passwords_on_the_real_servers(
    service_stack: ServiceStack,
) -> None:
    svc = service_stack
    with transaction(svc.factory) as s:
        accounts.create_panel_user(s, Actor.operator(), "impcust", "correct horse 9",
                                   Role.CUSTOMER)
    # a fixed /tmp folder: Dovecot reads the Maildir as the mail user, through every parent
    root = Path(tempfile.mkdtemp(prefix="imp-", dir="/tmp"))
    root.chmod(0o755)
    backup = build_backup(root, domains=(SHOP, BLOG))
    mail_dir = backup.path / "homedir" / "mail"
    _maildir_message(mail_dir / SHOP / "anna", "Old invoice")
    for dirpath, _, filenames in os.walk(root):
        Path(dirpath).chmod(0o755)
        for name in filenames:
            (Path(dirpath) / name).chmod(0o644)

    imported = svc.cli("import", "cpanel", str(backup.path), "--customer", "impcust")
    assert imported.exit_code == 0, imported.output
    assert svc.apply().revision.state == "applied"

    for address, password in OLD_PASSWORDS.items():
        user = _address(address)
        assert eventually(lambda u=user, p=password: svc.imap_login(u, p)[0]), user
        assert svc.pop3_login(user, password)[0], user
        ok, text = svc.imap_login(user, password + "x")
        assert not ok and "AUTHENTICATIONFAILED" in text
    # ben's $1$ hash works for SMTP AUTH too (Postfix asks Dovecot)
    assert svc.submission_login(f"ben@{SHOP}", OLD_PASSWORDS["ben@shop.test"])[0]

    # *: :fail: message -> Postfix refuses at RCPT TO with that message
    with svc.smtp() as client:
        client.mail("someone@elsewhere.test")
        code, reply = client.rcpt(f"nobody@{SHOP}")
    assert code == 550 and FAIL_MESSAGE in reply.decode()
    # a forwarder delivers to the mailbox
    subject = svc.send("someone@elsewhere.test", [f"info@{BLOG}"], subject="to info")
    assert eventually(
        lambda: subject in svc.inbox_subjects(f"carl@{BLOG}", OLD_PASSWORDS["carl@blog.test"]))

    # the domain forwarder old-shop.test -> shop: the same name there
    moved = svc.send("someone@elsewhere.test", ["anna@old-shop.test"], subject="to old shop")
    assert eventually(
        lambda: moved in svc.inbox_subjects(f"anna@{SHOP}", OLD_PASSWORDS["anna@shop.test"]))

    # the Maildir is copied in, and a second run copies nothing again
    for _ in range(2):
        again = svc.cli("import", "cpanel", str(backup.path), "--customer", "impcust",
                        "--mail-dir", str(mail_dir))
        assert again.exit_code == 0, again.output
        assert "Nothing to change." in again.output
        assert f"anna@{SHOP}: mail copied" in again.output, again.output
    anna = svc.inbox_subjects(f"anna@{SHOP}", OLD_PASSWORDS["anna@shop.test"])
    assert anna.count("Old invoice") == 1, anna
    assert f"ben@{SHOP}: no mail folder" in again.output
