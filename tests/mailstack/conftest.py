"""One real Dovecot + Postfix for all mail-stack tests, rendered and applied by mailadmin.

The fixture installs nothing by hand: it creates a SQLite file database with the ORM, builds
a snapshot, applies it with `mailadmin.mailstack` into a scratch folder and starts the servers
from exactly those files on 127.0.0.1 high ports. Every client connection uses its own
127.x source address because Dovecot delays the next login from an address after a failed
one by 4-15 s (lab section 4d), which would otherwise leak between tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.message
import imaplib
import os
import poplib
import shutil
import smtplib
import socket
import tempfile
import time
import typing as t
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from passlib.hash import sha512_crypt
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from mailadmin.lab.sandbox import (
    SandboxInfo,
    ensure_vmail_user,
    free_port_base,
    sandbox_apply,
    sandbox_settings,
    start_sandbox,
    stop_sandbox,
)
from mailadmin.mailstack import StackSettings, build_snapshot
from mailadmin.mailstack.apply import ApplyResult
from mailadmin.models import (
    Autoresponder,
    Base,
    Domain,
    Forwarder,
    ForwarderDestination,
    Mailbox,
    PanelUser,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TOOLS = ("dovecot", "doveconf", "doveadm", "postfix", "postmap", "postconf", "sievec")
PASSWORD = "secret-pw-1"  # every fixture mailbox starts with this one
MESSAGE_SIZE_LIMIT = 1024 * 1024


def stack_unavailable() -> str | None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"not installed: {', '.join(missing)}"
    if os.geteuid() != 0:
        return "the mail-stack sandbox runs the servers as root"
    return None


def require_stack() -> None:
    """In CI a missing mail stack is a failure, never a skip."""
    why = stack_unavailable()
    if why is None:
        return
    if IN_CI:
        pytest.fail(f"mail stack needed in CI: {why}")
    pytest.skip(why)


def dovecot_hash(password: str) -> str:
    # rounds=5000: passlib's default 656000 costs ~0.2 s of Dovecot CPU per login
    return "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash(password)


# --------------------------------------------------------------------------- clients

_source_ips = (f"127.{a}.{b}.{c}" for a in range(10, 250) for b in range(256)
               for c in range(1, 255))


def fresh_ip() -> str:
    return next(_source_ips)


class IMAP(imaplib.IMAP4):
    def __init__(self, port: int) -> None:
        self.source_ip = fresh_ip()
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source_ip, 0))


@contextlib.contextmanager
def imap_connection(port: int) -> Iterator[IMAP]:
    c = IMAP(port)
    try:
        yield c
    finally:
        with contextlib.suppress(Exception):
            c.shutdown()


class POP3(poplib.POP3):
    def __init__(self, port: int) -> None:
        self.source_ip = fresh_ip()
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source_ip, 0))


@dataclasses.dataclass
class Stack:
    info: SandboxInfo
    settings: StackSettings
    engine: Engine
    log_dir: Path

    @property
    def ports(self) -> t.Any:
        return self.info.ports

    def imap_login(self, user: str, password: str = PASSWORD) -> tuple[bool, str]:
        with imap_connection(self.ports.imap) as c:
            try:
                typ, data = c.login(user, password)
            except imaplib.IMAP4.error as exc:
                return False, str(exc)
            c.logout()
            return typ == "OK", data[0].decode()

    def pop3_login(self, user: str, password: str = PASSWORD) -> tuple[bool, str]:
        c = POP3(self.ports.pop3)
        try:
            c.user(user)
            reply = c.pass_(password)
        except poplib.error_proto as exc:
            return False, str(exc)
        finally:
            with contextlib.suppress(Exception):
                c.quit()
        return True, reply.decode()

    def smtp(self, port: str = "smtp") -> smtplib.SMTP:
        s = smtplib.SMTP("127.0.0.1", getattr(self.ports, port), timeout=15,
                         source_address=(fresh_ip(), 0), local_hostname="client.test")
        s.ehlo()
        return s

    def submission(self, user: str, password: str = PASSWORD) -> tuple[smtplib.SMTP, int, str]:
        """Connect to submission and AUTH PLAIN once (smtplib.login would retry with LOGIN)."""
        s = self.smtp("submission")
        s.user, s.password = user, password
        try:
            code, resp = s.auth("PLAIN", s.auth_plain)
        except smtplib.SMTPAuthenticationError as exc:
            code, resp = exc.smtp_code, exc.smtp_error
        return s, code, resp.decode(errors="replace")

    def submission_login(self, user: str, password: str = PASSWORD) -> tuple[bool, str]:
        s, code, text = self.submission(user, password)
        with contextlib.suppress(Exception):
            s.quit()
        return code == 235, f"{code} {text}"

    def send(self, sender: str, rcpts: list[str], *, subject: str = "test",
             port: str = "smtp", size: int = 0, body: str = "hello") -> str:
        msg = email.message.EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(rcpts), subject
        msg.set_content(body + ("x" * size))
        with contextlib.closing(self.smtp(port)) as s:
            s.send_message(msg, sender, rcpts)
            s.quit()
        return str(msg["Subject"])

    def inbox_subjects(self, user: str, password: str = PASSWORD) -> list[str]:
        with imap_connection(self.ports.imap) as c:
            c.login(user, password)
            c.select("INBOX", readonly=True)
            _, data = c.search(None, "ALL")
            subjects = []
            for num in data[0].split():
                _, parts = c.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                raw = parts[0][1] if isinstance(parts[0], tuple) else b""
                subjects.append(raw.decode().strip().removeprefix("Subject: "))
            c.logout()
            return subjects

    def wait_for_subject(self, user: str, subject: str, timeout: float = 10.0) -> list[str]:
        return eventually(lambda: [s for s in self.inbox_subjects(user) if subject in s],
                          timeout=timeout)

    def postfix_log(self) -> str:
        return (self.log_dir / "postfix.log").read_text(errors="replace")

    def session(self) -> Session:
        return Session(self.engine)

    def mailbox(self, s: Session, address: str) -> Mailbox:
        local, _, dom = address.partition("@")
        return s.scalars(
            select(Mailbox).join(Domain).where(Mailbox.local_part == local, Domain.name == dom)
        ).one()

    def reapply(self, *, restart: bool = False) -> ApplyResult:
        """Render the database as it is now and apply it to the running servers."""
        with self.session() as s:
            snapshot = build_snapshot(s, self.settings)
        return sandbox_apply(snapshot, restart=restart)


T = t.TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll until `check` returns something truthy; return it (or its last value on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --------------------------------------------------------------------------- data


def populate(s: Session) -> None:
    """The accounts the matrix uses; one mailbox per behaviour so tests do not interfere."""
    owner = PanelUser(username="customer1", role="customer", password_hash="x")
    other = PanelUser(username="customer2", role="customer", password_hash="x")
    s.add_all([owner, other])
    s.flush()
    doms = {
        "example.test": Domain(name="example.test", owner_id=owner.id, catchall_action="reject"),
        "other.test": Domain(name="other.test", owner_id=other.id, catchall_action="reject"),
        "reject.test": Domain(name="reject.test", owner_id=owner.id, catchall_action="reject",
                              catchall_reject_reason="Nobody by that name at reject.test"),
        "discard.test": Domain(name="discard.test", owner_id=owner.id,
                               catchall_action="discard"),
        "deliver.test": Domain(name="deliver.test", owner_id=owner.id,
                               catchall_action="deliver",
                               catchall_target="catchall@deliver.test"),
        "flip.test": Domain(name="flip.test", owner_id=owner.id, catchall_action="deliver",
                            catchall_target="known@flip.test"),
    }
    s.add_all(doms.values())
    s.flush()
    pw = dovecot_hash(PASSWORD)

    def mb(address: str, **kw: t.Any) -> Mailbox:
        local, _, dom = address.partition("@")
        m = Mailbox(domain_id=doms[dom].id, local_part=local, password_hash=pw, **kw)
        s.add(m)
        return m

    for addr in ("alice@example.test", "bob@example.test", "carol@other.test",
                 "sender@example.test", "keeper@example.test", "pwchange@example.test",
                 "catchall@deliver.test", "known@discard.test", "known@reject.test",
                 "crash@example.test", "known@flip.test"):
        mb(addr)
    mb("noimap@example.test", imap=False)
    mb("nopop@example.test", pop3=False)
    mb("nosmtp@example.test", smtp=False)
    mb("suspended@example.test", suspend_login=True)
    mb("noreceive@example.test", suspend_incoming=True)
    mb("nosend@example.test", suspend_outgoing=True)
    mb("small@example.test", quota=2048)
    responder = mb("responder@example.test")
    # the "flip" mailboxes start allowed and are all switched off by one change
    for addr in ("f-imap@flip.test", "f-pop3@flip.test", "f-smtp@flip.test",
                 "f-login@flip.test", "f-in@flip.test", "f-out@flip.test",
                 "f-quota@flip.test"):
        mb(addr)
    s.flush()

    def fwd(address: str, dests: list[str], keep_copy: bool = False) -> None:
        local, _, dom = address.partition("@")
        f = Forwarder(domain_id=doms[dom].id, local_part=local, keep_copy=keep_copy)
        f.destinations = [ForwarderDestination(address=d, position=i)
                          for i, d in enumerate(dests)]
        s.add(f)

    fwd("team@example.test", ["alice@example.test", "carol@other.test",
                              "someone@elsewhere.test"])
    fwd("keeper@example.test", ["bob@example.test"], keep_copy=True)
    fwd("to-noreceive@example.test", ["noreceive@example.test"])
    fwd("f-fwd@flip.test", ["f-in@flip.test"])
    s.add(Autoresponder(mailbox_id=responder.id, subject="Out of office",
                        body="I am away until Monday.\n.Dot lines survive.", interval_days=1))


# --------------------------------------------------------------------------- fixture


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    require_stack()
    # A fixed /tmp folder, not tmp_path: pytest's folders are 0700 and Postfix's master
    # (user postfix) must traverse every parent (lab section 2).
    directory = Path(tempfile.mkdtemp(prefix="mst-", dir="/tmp"))
    directory.chmod(0o755)
    settings = sandbox_settings(directory, free_port_base(),
                                message_size_limit=MESSAGE_SIZE_LIMIT)
    ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
    engine = create_engine(f"sqlite:///{directory}/panel.sqlite")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        populate(s)
        s.commit()
        snapshot = build_snapshot(s, settings)
    sandbox_apply(snapshot)
    info = start_sandbox(directory, settings.ports.smtp - 25)
    print(f"\nmail stack up in {info.startup_seconds:.2f}s on {info.ports.as_dict()}")
    try:
        yield Stack(info, settings, engine, directory / "log")
    finally:
        t0 = time.monotonic()
        stop_sandbox(directory)
        print(f"\nmail stack down in {time.monotonic() - t0:.2f}s")
        engine.dispose()
        if os.environ.get("MAILSTACK_KEEP") is None:
            shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- service stack

#: Mailbox password of every mailbox the service stack's data creates through the services.
SERVICE_PASSWORD = "Tr0ub4dor&3-horse"


@dataclasses.dataclass
class ServiceStack(Stack):
    """Real servers run from what `mailadmin apply` (services.stack) wrote for a migrated
    panel database whose *server settings* point at a scratch folder and loopback ports.

    Unlike `stack`, nothing here bypasses the product: the settings are set through the
    settings service, the data through the mail services, the config by `apply_config`.
    """

    factory: t.Any = None
    instance: Path = Path()
    url: str = ""
    port_base: int = 0

    def cli(self, *args: str, input: str | None = None) -> t.Any:
        from click.testing import CliRunner

        from mailadmin.cli import main

        return CliRunner().invoke(main, ["--instance", str(self.instance), *args], input=input,
                                  env={"MAILADMIN_DATABASE_URL": self.url},
                                  catch_exceptions=False)

    def unit(self) -> t.Any:
        from mailadmin.db import transaction

        return transaction(self.factory)

    def set_settings(self, **values: str) -> None:
        from mailadmin.services import settings as settings_service
        from mailadmin.services.context import Actor

        with self.unit() as s:
            settings_service.update_settings(s, Actor.operator(), values)

    def apply(self) -> t.Any:
        from mailadmin.services import stack as stack_service
        from mailadmin.services.context import Actor

        with self.unit() as s:
            report = stack_service.apply_config_report(s, Actor.operator())
        return report


def service_populate(factory: t.Any) -> None:
    from mailadmin.db import transaction
    from mailadmin.models import Role
    from mailadmin.services import accounts, domains, mailboxes
    from mailadmin.services.context import Actor

    op = Actor.operator()
    with transaction(factory) as s:
        for name in ("svc-cust", "svc-susp"):
            accounts.create_panel_user(s, op, name, "correct horse 9", Role.CUSTOMER)
        domains.add_domain(s, op, "svc.test", customer="svc-cust")
        domains.add_domain(s, op, "susp.test", customer="svc-susp")
        for address in ("anna@svc.test", "ben@svc.test", "selfpw@svc.test",
                        "sam@susp.test", "sue@susp.test"):
            mailboxes.create_mailbox(s, op, address, SERVICE_PASSWORD)


@pytest.fixture(scope="session")
def service_stack() -> Iterator[ServiceStack]:
    from mailadmin import migrate
    from mailadmin.db import make_engine, make_session_factory, transaction
    from mailadmin.lab.sandbox import prepare_dirs
    from mailadmin.mailstack import settings_from_server_settings
    from mailadmin.services import settings as settings_service
    from mailadmin.services.context import Actor
    from mailadmin.services.server import get_server_settings

    require_stack()
    directory = Path(tempfile.mkdtemp(prefix="msv-", dir="/tmp"))
    directory.chmod(0o755)
    instance = directory / "instance"
    instance.mkdir()
    url = f"sqlite:///{instance}/mailadmin.db"
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    base = free_port_base()
    ports = {"imap": 143, "pop3": 110, "submission": 587, "smtp": 25, "lmtp": 24,
             "reinject": 26}
    with transaction(factory) as s:
        settings_service.update_settings(s, Actor.operator(), {
            "mail_hostname": "mail.svc.test",
            "postmaster_address": "postmaster@svc.test",
            "config_output_dir": f"{directory}/config",
            "run_dir": f"{directory}/run",
            "state_dir": f"{directory}/state",
            "queue_dir": f"{directory}/spool/postfix",
            "mail_root": f"{directory}/mail",
            "log_dir": f"{directory}/log",
            "listen_address": "127.0.0.1",
            "message_size_limit": str(MESSAGE_SIZE_LIMIT),
            **{f"{name}_listen_port": str(base + port) for name, port in ports.items()},
        })
    service_populate(factory)
    with factory() as s:
        settings = settings_from_server_settings(get_server_settings(s))
    ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
    prepare_dirs(settings)
    from mailadmin.services import stack as stack_service

    with transaction(factory) as s:
        first = stack_service.apply_config(s, Actor.operator())
        assert first.state == "applied", first.validation_output
    info = start_sandbox(directory, base)
    print(f"\nservice stack up in {info.startup_seconds:.2f}s on {info.ports.as_dict()}")
    try:
        yield ServiceStack(info, settings, engine, directory / "log", factory=factory,
                           instance=instance, url=url, port_base=base)
    finally:
        stop_sandbox(directory)
        engine.dispose()
        if os.environ.get("MAILSTACK_KEEP") is None:
            shutil.rmtree(directory, ignore_errors=True)
