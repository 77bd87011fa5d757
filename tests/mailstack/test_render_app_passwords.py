"""App passwords in the renderers, without servers: what reaches which file, and what is
refused (the real-server behaviour is in test_app_passwords.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from mailadmin.hashing import verify_mailbox_password
from mailadmin.mailstack import AppPasswordSnap, UnsafeName, build_snapshot, render
from mailadmin.mailstack.render.dovecot import LOCKED_HASH
from mailadmin.models import APP_PASSWORD_SLOTS, AppPassword, Base, Domain, Mailbox

from .conftest import populate
from .test_render import APP_HASH, ROOT, SETTINGS, SNAPSHOT


def test_each_app_password_is_listed_for_its_protocols_only() -> None:
    files = render(SNAPSHOT, ROOT)
    app_files = {rel: text for rel, text in files.items() if "/app-passwords/" in rel}
    assert len(app_files) == 3 * APP_PASSWORD_SLOTS
    listed = {rel.removeprefix("dovecot/app-passwords/"): [
        line.split(":")[0] for line in text.splitlines()[1:]] for rel, text in app_files.items()}
    assert {k: v for k, v in listed.items() if v} == {
        "imap.1": ["alice@example.com"], "smtp.1": ["alice@example.com"],
        "pop3.2": ["alice@example.com"],
        "imap.8": ["bob@example.com"], "smtp.8": ["bob@example.com"],
    }
    # alice takes app passwords only: her passwd-file line keeps no usable hash
    (alice,) = [line for line in files["dovecot/users"].splitlines()
                if line.startswith("alice@")]
    assert alice.split(":")[1] == LOCKED_HASH


def test_the_locked_hash_matches_no_password() -> None:
    assert not verify_mailbox_password("", LOCKED_HASH)
    assert not verify_mailbox_password("apppasswordsonly", LOCKED_HASH)


@pytest.mark.parametrize("bad", [
    {"password_hash": "{SHA512-CRYPT}x:y"},
    {"password_hash": "{SHA512-CRYPT}x\nmallory@example.com:{PLAIN}x"},
    {"slot": 0},
    {"slot": APP_PASSWORD_SLOTS + 1},
    {"local_part": "nobody"},
])
def test_unsafe_or_inconsistent_app_passwords_are_refused(bad: dict[str, object]) -> None:
    app = dataclasses.replace(
        AppPasswordSnap("alice", "example.com", 1, APP_HASH, True, True, True), **bad)
    # RenderError is an UnsafeName
    with pytest.raises(UnsafeName):
        render(dataclasses.replace(SNAPSHOT, app_passwords=(app,)), ROOT)


def test_snapshot_narrows_app_passwords_to_the_mailbox_protocols(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/db.sqlite")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        populate(s)
        s.flush()
        noimap = s.scalars(select(Mailbox).join(Domain).where(
            Mailbox.local_part == "noimap", Domain.name == "example.test")).one()
        s.add(AppPassword(mailbox_id=noimap.id, slot=3, label="phone", password_hash=APP_HASH,
                          imap=True, pop3=False, smtp=True))
        s.flush()
        snap = build_snapshot(s, SETTINGS)
    assert snap.app_passwords == (
        AppPasswordSnap("noimap", "example.test", 3, APP_HASH, imap=False, pop3=False,
                        smtp=True),)
