"""DKIM signing through the real Postfix and the real OpenDKIM milter.

A mailbox submits a message (SMTP AUTH on the submission port); Postfix hands it to OpenDKIM,
which signs it with the key the panel made; the delivered copy is read back over IMAP and its
signature checked with dkimpy against the record a real dnsmasq serves. After a rotation the
next message carries the new selector once DNS shows the new key, and the old key is removed
when its grace period is over. Everything goes through the services and the renderer; the
OpenDKIM process runs from the applied release (``current/opendkim/opendkim.conf``).
"""

from __future__ import annotations

import datetime as dt
import email
import email.message
import os
import shutil
import socket
import subprocess
import tempfile
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import dkim as dkimpy
import pytest
from sqlalchemy.orm import Session

from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.dnscheck import Resolver
from mailadmin.dnshealth import Lookup
from mailadmin.lab.sandbox import (
    ensure_vmail_user,
    free_port_base,
    sandbox_apply,
    sandbox_settings,
    start_sandbox,
    stop_sandbox,
)
from mailadmin.mailstack import build_snapshot
from mailadmin.models import Role
from mailadmin.services import accounts, dkim_keys, domains, mailboxes
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings

from ..dnsserver import IN_CI, LocalDns, free_udp_tcp_port
from .conftest import Stack, eventually, imap_connection, require_stack

pytestmark = pytest.mark.mailstack
OP = Actor.operator()
PASSWORD = "Tr0ub4dor&3-horse"
SENDER, RCPT = "writer@signed.test", "reader@signed.test"


def require_opendkim() -> str:
    path = shutil.which("opendkim") or "/usr/sbin/opendkim"
    if not Path(path).exists():
        if IN_CI:
            pytest.fail("opendkim is needed in CI (Debian package opendkim)")
        pytest.skip("opendkim not installed (Debian package opendkim)")
    return path


class World(t.NamedTuple):
    stack: Stack
    factory: t.Any
    dns: LocalDns
    directory: Path
    key_dir: Path


@pytest.fixture
def world() -> Iterator[World]:
    require_stack()
    opendkim = require_opendkim()
    directory = Path(tempfile.mkdtemp(prefix="mdk-", dir="/tmp"))
    directory.chmod(0o755)
    dns = LocalDns(directory, zones=("test",))
    dns.serve()
    engine = make_engine(f"sqlite:///{directory}/panel.sqlite")
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    milter_port = free_udp_tcp_port(40000, 44999)
    # OpenDKIM refuses a key below a world-writable folder such as /tmp ("unsafe
    # permissions", even with the sticky bit), as it should: the keys go under /run.
    key_dir = Path(tempfile.mkdtemp(prefix="mailadmin-dkim-", dir="/run"))
    with transaction(factory) as s:
        accounts.create_panel_user(s, OP, "signer", "correct horse 9", Role.CUSTOMER)
        domains.add_domain(s, OP, "signed.test", customer="signer")
        for address in (SENDER, RCPT):
            mailboxes.create_mailbox(s, OP, address, PASSWORD)
        row = get_server_settings(s)
        row.dns_resolvers = dns.resolver
        row.dkim_key_dir = str(key_dir)
    settings = sandbox_settings(directory, free_port_base(), dkim_key_dir=str(key_dir),
                                dkim_milter_port=milter_port)
    ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
    with Session(engine) as s:
        sandbox_apply(build_snapshot(s, settings))
    info = start_sandbox(directory, settings.ports.smtp - 25)
    signer: subprocess.Popen[bytes] | None = None

    def start_signer() -> None:
        nonlocal signer
        conf = directory / "config" / "current" / "opendkim" / "opendkim.conf"
        signer = subprocess.Popen([opendkim, "-f", "-x", str(conf)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", milter_port), 0.2):
                    return
            except OSError:
                assert signer.poll() is None, signer.stderr.read() if signer.stderr else b""
                time.sleep(0.05)
        raise RuntimeError("opendkim did not listen")

    stack = Stack(info, settings, engine, directory / "log")
    stack.start_signer = start_signer  # type: ignore[attr-defined]
    try:
        yield World(stack, factory, dns, directory, key_dir)
    finally:
        if signer is not None:
            signer.terminate()
            signer.wait(10)
            if signer.stderr is not None:
                signer.stderr.close()
        stop_sandbox(directory)
        dns.stop()
        engine.dispose()
        shutil.rmtree(key_dir, ignore_errors=True)
        if os.environ.get("MAILSTACK_KEEP") is None:
            shutil.rmtree(directory, ignore_errors=True)


def at(when: dt.datetime) -> Actor:
    return Actor(OP.name, OP.role, OP.channel, OP.user_id, OP.source, clock=lambda: when)


def submit(stack: Stack, subject: str) -> None:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, RCPT, subject
    msg["Message-ID"] = f"<{subject}@signed.test>"
    msg.set_content("A signed message.\n")
    s, code, text = stack.submission(SENDER, PASSWORD)
    try:
        assert code == 235, text
        s.send_message(msg, SENDER, [RCPT])
    finally:
        s.quit()


def fetch(stack: Stack, subject: str) -> bytes:
    def find() -> bytes:
        with imap_connection(stack.ports.imap) as c:
            c.login(RCPT, PASSWORD)
            c.select("INBOX", readonly=True)
            _, data = c.search(None, "SUBJECT", f'"{subject}"')
            nums = data[0].split()
            if not nums:
                return b""
            _, parts = c.fetch(nums[-1], "(BODY.PEEK[])")
            c.logout()
            return parts[0][1] if isinstance(parts[0], tuple) else b""

    raw = eventually(find, timeout=15)
    assert raw, f"{subject} was not delivered"
    return raw


def verify(dns: LocalDns, raw: bytes) -> tuple[bool, str]:
    """dkimpy's verdict and the signing selector, with keys read from the test DNS server."""
    lookup = Lookup([Resolver("127.0.0.1", dns.port)], timeout=3)

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        texts = lookup(name.decode().rstrip("."), "TXT")
        return texts[0].encode() if texts else None

    signature = email.message_from_bytes(raw)["DKIM-Signature"] or ""
    tags = {k.strip(): v.strip() for k, _, v in
            (p.partition("=") for p in signature.replace("\r\n", "").split(";"))}
    return dkimpy.verify(raw, dnsfunc=txt), tags.get("s", "")


def publish(dns: LocalDns, keys: list[dkim_keys.KeyInfo]) -> None:
    dns.serve(txt={k.record_name: [k.record_value] for k in keys})


def reapply(world: World, *, changes: bool = True) -> str:
    with Session(world.stack.engine) as s:
        result = sandbox_apply(build_snapshot(s, world.stack.settings))
    assert result.changed == changes
    if changes:
        assert "opendkim -n: ok" in result.validation_output, result.validation_output
    return result.validation_output


def test_submitted_mail_is_signed_and_rotation_switches_and_retires(world: World) -> None:
    stack, factory, dns = world.stack, world.factory, world.dns
    day1 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with transaction(factory) as s:
        first = dkim_keys.rotate_key(s, at(day1), "signed.test")
    publish(dns, [first])
    with transaction(factory) as s:
        assert [k.state for k in dkim_keys.advance_keys(s, at(day1), "signed.test")] == [
            "active"]
    reapply(world)
    stack.start_signer()  # type: ignore[attr-defined]
    # Postfix's smtpd processes pick up the new main.cf (the milter) after the reload
    time.sleep(1.5)
    submit(stack, "first-key")
    ok, selector = verify(dns, fetch(stack, "first-key"))
    assert (ok, selector) == (True, first.selector)

    # rotation: the new key waits for DNS, mail stays signed with the old one
    day2 = dt.datetime(2026, 12, 20, tzinfo=dt.UTC)
    with transaction(factory) as s:
        second = dkim_keys.rotate_key(s, at(day2), "signed.test")
        dkim_keys.advance_keys(s, at(day2), "signed.test")
    reapply(world, changes=False)  # a waiting key is not in OpenDKIM's tables
    submit(stack, "still-first")
    assert verify(dns, fetch(stack, "still-first")) == (True, first.selector)

    publish(dns, [first, second])
    with transaction(factory) as s:
        states = {k.selector: k.state for k in dkim_keys.advance_keys(s, at(day2),
                                                                       "signed.test")}
    assert states == {first.selector: "retiring", second.selector: "active"}
    # SIGUSR1: OpenDKIM re-reads its tables through `current`
    assert "opendkim reload: ok" in reapply(world)

    def signed_with_new() -> bool:
        subject = f"second-key-{time.monotonic_ns()}"
        submit(stack, subject)
        return verify(dns, fetch(stack, subject)) == (True, second.selector)

    assert eventually(signed_with_new, timeout=10, interval=0.5)
    # mail signed with the old key just before the switch still verifies while retiring
    assert verify(dns, fetch(stack, "still-first")) == (True, first.selector)

    # the grace period ends: the old key's row and file go; DNS may drop its record
    old_file = world.key_dir / "signed.test" / f"{first.selector}.private"
    assert old_file.exists()
    with transaction(factory) as s:
        keys = dkim_keys.advance_keys(s, at(day2 + dkim_keys.RETIRE_AFTER), "signed.test")
    assert [(k.selector, k.state) for k in keys] == [(second.selector, "active")]
    assert not old_file.exists()
    publish(dns, [second])
    reapply(world, changes=False)  # the retiring key was not signing any more
    submit(stack, "after-retirement")
    assert verify(dns, fetch(stack, "after-retirement")) == (True, second.selector)
    key_table = (world.directory / "config" / "current" / "opendkim" / "KeyTable").read_text()
    assert first.selector not in key_table and second.selector in key_table


def test_a_signer_that_is_down_does_not_hold_mail(world: World) -> None:
    """milter_default_action = accept: without OpenDKIM the mail goes out unsigned."""
    stack, factory, dns = world.stack, world.factory, world.dns
    with transaction(factory) as s:
        key = dkim_keys.rotate_key(s, OP, "signed.test")
    publish(dns, [key])
    with transaction(factory) as s:
        dkim_keys.advance_keys(s, OP, "signed.test")
    reapply(world)
    time.sleep(1.5)
    submit(stack, "unsigned")
    raw = fetch(stack, "unsigned")
    assert b"DKIM-Signature" not in raw
