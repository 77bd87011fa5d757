"""`mailadmin domain move`: a domain's mail copied between two real mail nodes, then switched.

Two sandboxed nodes on one machine: each runs Dovecot + Postfix from the files mailadmin
rendered for it (its own folder and port base), and each Dovecot's doveadm server listens
on the node's own loopback address (node-a 127.0.3.1, node-b 127.0.3.2) at the same
doveadm port, with one shared password file. The panel database (migrated SQLite) names
both nodes; the domain starts on node-a. Mail is put on node-a over IMAP (flags, a keyword,
a subfolder) and read back over node-b's IMAP after the move.
"""

from __future__ import annotations

import dataclasses
import grp
import json
import os
import re
import shutil
import socket
import tempfile
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from mailadmin import migrate
from mailadmin.cli import main
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.errors import Conflict, NotFound, PermissionDenied, ValidationError
from mailadmin.lab.sandbox import (
    ensure_vmail_user,
    free_port_base,
    sandbox_apply,
    start_sandbox,
    stop_sandbox,
)
from mailadmin.mailstack import build_snapshot, settings_from_server_settings
from mailadmin.mailstack.doveadm import DoveadmMover, Endpoint
from mailadmin.mailstack.snapshot import StackPorts, StackSettings
from mailadmin.models import AuditEvent, Domain, Mailbox, MailNode, PanelUser
from mailadmin.models.users import Role
from mailadmin.services import accounts, domains, mailboxes, nodes, usage
from mailadmin.services import server_settings as settings_service
from mailadmin.services.context import Actor
from mailadmin.services.domain_move import MoveFailed, plan_move
from mailadmin.services.server import get_server_settings
from mailadmin.workers.domain_mover import move_domain

from .conftest import SERVICE_PASSWORD, imap_connection, require_stack

pytestmark = pytest.mark.mailstack
OP = Actor.operator()
DOMAIN = "move.test"
ADDRESSES = {"a": "127.0.3.1", "b": "127.0.3.2"}


@dataclasses.dataclass
class Node:
    name: str
    dir: Path
    base: int
    settings: StackSettings

    @property
    def imap(self) -> int:
        return self.base + 143


@dataclasses.dataclass
class Nodes:
    factory: t.Any
    instance: Path
    url: str
    a: Node
    b: Node
    doveadm_port: int

    def node_of(self, domain: str = DOMAIN) -> str | None:
        with self.factory() as s:
            row = s.scalars(select(Domain).where(Domain.name == domain)).one()
            node = s.get(MailNode, row.node_id) if row.node_id else None
            return node.name if node else None

    def move_events(self) -> list[AuditEvent]:
        with self.factory() as s:
            events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "domain.move")
                                    .order_by(AuditEvent.id)))
            s.expunge_all()
            return events


def _node_settings(row_settings: StackSettings, directory: Path, base: int, address: str,
                   secret: Path, name: str) -> StackSettings:
    return dataclasses.replace(
        row_settings,
        config_dir=f"{directory}/config", run_dir=f"{directory}/run",
        state_dir=f"{directory}/state", queue_dir=f"{directory}/spool/postfix",
        mail_root=f"{directory}/mail", log_dir=f"{directory}/log",
        ports=StackPorts.from_base(base), instance_name=f"mailadmin-{name}",
        doveadm_address=address, doveadm_secret_file=str(secret))


def _wait_listening(address: str, port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((address, port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Nodes]:
    require_stack()
    directory = Path(tempfile.mkdtemp(prefix="mmv-", dir="/tmp"))
    directory.chmod(0o755)
    instance = directory / "instance"
    instance.mkdir()
    url = f"sqlite:///{instance}/mailadmin.db"
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    base_a = free_port_base()
    doveadm_port = base_a + 345
    dir_a, dir_b = directory / "a", directory / "b"
    secret = directory / "doveadm" / "doveadm-password.conf.ext"
    ports = {"imap": 143, "pop3": 110, "submission": 587, "smtp": 25, "lmtp": 24,
             "reinject": 26}
    started: list[Path] = []
    try:
        with transaction(factory) as s:
            # the panel runs beside node-a: its doveadm client reads node-a's dovecot.conf
            settings_service.update_settings(s, OP, {
                "mail_hostname": "mail.move.test",
                "postmaster_address": "postmaster@move.test",
                "config_output_dir": f"{dir_a}/config",
                "run_dir": f"{dir_a}/run",
                "state_dir": f"{dir_a}/state",
                "queue_dir": f"{dir_a}/spool/postfix",
                "mail_root": f"{dir_a}/mail",
                "log_dir": f"{dir_a}/log",
                "listen_address": "127.0.0.1",
                "doveadm_port": str(doveadm_port),
                **{f"{name}_listen_port": str(base_a + port) for name, port in ports.items()},
            })
            accounts.create_panel_user(s, OP, "mover", "correct horse 9", Role.CUSTOMER)
            domains.add_domain(s, OP, DOMAIN, customer="mover")
            domains.add_domain(s, OP, "pending.move.test", customer="mover")
            for address in (f"ann@{DOMAIN}", f"bob@{DOMAIN}"):
                mailboxes.create_mailbox(s, OP, address, SERVICE_PASSWORD)
            for name, address in (("node-a", ADDRESSES["a"]), ("node-b", ADDRESSES["b"])):
                nodes.node_checkin(s, OP, name, address)
            s.flush()
            node_a = s.scalars(select(MailNode).where(MailNode.name == "node-a")).one()
            s.scalars(select(Domain).where(Domain.name == DOMAIN)).one().node_id = node_a.id
            s.scalars(select(Domain).where(Domain.name == "pending.move.test")
                      ).one().pending = True
        with factory() as s:
            row = settings_from_server_settings(get_server_settings(s))
            ensure_vmail_user(row.vmail_uid, row.vmail_gid)
            made = {}
            for key, folder in (("a", dir_a), ("b", dir_b)):
                # node-b's base is chosen once node-a holds its ports
                base = base_a if key == "a" else free_port_base()
                folder.mkdir(mode=0o755)
                settings = _node_settings(row, folder, base, ADDRESSES[key], secret, key)
                # both nodes render every mailbox (placement per node is not this test's)
                result = sandbox_apply(build_snapshot(s, settings))
                made[key] = Node(f"node-{key}", folder, base, settings)
                start_sandbox(folder, base, release=result.release_dir)
                started.append(folder)
                _wait_listening(ADDRESSES[key], doveadm_port)
        assert oct(secret.stat().st_mode & 0o777) == "0o640"
        yield Nodes(factory, instance, url, made["a"], made["b"], doveadm_port)
    finally:
        for folder in started:
            stop_sandbox(folder)
        engine.dispose()
        if os.environ.get("MAILSTACK_KEEP") is None:
            shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- IMAP


def _append(port: int, address: str, folder: str, flags: str, subject: str) -> None:
    with imap_connection(port) as c:
        c.login(address, SERVICE_PASSWORD)
        if folder != "INBOX":
            c.create(folder)  # "already exists" is fine
        message = (f"From: someone@elsewhere.test\r\nTo: {address}\r\nSubject: {subject}\r\n"
                   f"\r\n{subject} body\r\n").encode()
        typ, data = c.append(folder, flags, None, message)
        assert typ == "OK", data
        c.logout()


_FETCH = re.compile(rb"FLAGS \(([^)]*)\)")


def _mailbox(port: int, address: str) -> dict[str, set[tuple[str, frozenset[str]]]]:
    """{folder: {(subject, flags without \\Recent)}} read over IMAP."""
    out: dict[str, set[tuple[str, frozenset[str]]]] = {}
    with imap_connection(port) as c:
        c.login(address, SERVICE_PASSWORD)
        _, listed = c.list()
        folders = [line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in listed
                   if isinstance(line, bytes) and b"\\Noselect" not in line]
        for folder in folders:
            typ, _ = c.select(f'"{folder}"', readonly=True)
            assert typ == "OK"
            found: set[tuple[str, frozenset[str]]] = set()
            _, nums = c.search(None, "ALL")
            for num in nums[0].split():
                _, parts = c.fetch(num, "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                head = parts[0]
                assert isinstance(head, tuple)
                flags = _FETCH.search(head[0])
                assert flags is not None
                subject = head[1].decode().strip().removeprefix("Subject: ")
                found.add((subject, frozenset(flags.group(1).decode().split()) - {"\\Recent"}))
            out[folder] = found
        c.logout()
    return out


@pytest.fixture(scope="module")
def mail_on_a(two_nodes: Nodes) -> dict[str, dict[str, set[tuple[str, frozenset[str]]]]]:
    port = two_nodes.a.imap
    ann, bob = f"ann@{DOMAIN}", f"bob@{DOMAIN}"
    _append(port, ann, "INBOX", r"(\Seen)", "read one")
    _append(port, ann, "INBOX", r"(\Flagged)", "flagged one")
    _append(port, ann, "INBOX", "($Work)", "keyword one")
    _append(port, ann, "INBOX", "", "new one")
    _append(port, ann, "Projects/2026", r"(\Seen \Answered)", "in a subfolder")
    _append(port, bob, "INBOX", r"(\Seen $Label1)", "for bob")
    return {a: _mailbox(port, a) for a in (ann, bob)}


# --------------------------------------------------------------------------- tests


def test_refusals(two_nodes: Nodes) -> None:
    with transaction(two_nodes.factory) as s:
        with pytest.raises(Conflict, match="already on node-a"):
            plan_move(s, OP, DOMAIN, "node-a")
        with pytest.raises(NotFound, match="node-z"):
            plan_move(s, OP, DOMAIN, "node-z")
        with pytest.raises(ValidationError, match="pending"):
            plan_move(s, OP, "pending.move.test", "node-b")
        customer = s.scalars(select(PanelUser).where(PanelUser.username == "mover")).one()
        with pytest.raises(PermissionDenied):
            plan_move(s, Actor.for_user(customer, "cli"), DOMAIN, "node-b")
        plan = plan_move(s, OP, DOMAIN, "node-b")
    assert plan.mailboxes == (f"ann@{DOMAIN}", f"bob@{DOMAIN}")
    assert plan.source_endpoint == Endpoint(ADDRESSES["a"], two_nodes.doveadm_port)
    assert plan.target_endpoint == Endpoint(ADDRESSES["b"], two_nodes.doveadm_port)


def test_a_failed_copy_switches_nothing(two_nodes: Nodes, mail_on_a: t.Any) -> None:
    stop_sandbox(two_nodes.b.dir)
    try:
        with pytest.raises(MoveFailed) as failed:
            move_domain(two_nodes.factory, lambda _s: OP, DOMAIN, "node-b", wait_seconds=0)
    finally:
        start_sandbox(two_nodes.b.dir, two_nodes.b.base)
        _wait_listening(ADDRESSES["b"], two_nodes.doveadm_port)
    message = failed.value.message
    assert f"ann@{DOMAIN}" in message and "nothing was switched" in message, message
    assert "stays on node-a" in message
    assert two_nodes.node_of() == "node-a"
    assert two_nodes.move_events() == []


class LateMail:
    """The doveadm mover, plus one message that reaches node-a after the switch committed
    (before the last pass), as mail in flight during a move does, while node-b already
    takes a new message of its own."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes
        self.inner = DoveadmMover(nodes.a.settings.config_dir)
        self.sent = False
        self.pulls: list[str] = []

    def pull(self, address: str, source: Endpoint, target: Endpoint, *,
             full: bool = True) -> None:
        if not self.sent and self.nodes.node_of() == "node-b":
            # as many new messages on each side: the folders' summaries (next UID, ...) match,
            # and only a full sync sees that they hold different messages under one UID
            _append(self.nodes.a.imap, f"ann@{DOMAIN}", "INBOX", r"(\Flagged)", "late one")
            _append(self.nodes.b.imap, f"ann@{DOMAIN}", "INBOX", "", "first on b")
            self.sent = True
        self.pulls.append(address)
        self.inner.pull(address, source, target, full=full)

    def state(self, address: str, node: Endpoint) -> tuple[tuple[str, ...], ...]:
        return self.inner.state(address, node)


def test_move_copies_every_message_folder_and_flag(two_nodes: Nodes, mail_on_a: t.Any) -> None:
    mover = LateMail(two_nodes)
    told: list[tuple[str, str]] = []
    report = move_domain(two_nodes.factory, lambda _s: OP, DOMAIN, "node-b", mover=mover,
                         progress=lambda a, step: told.append((a, step)), wait_seconds=0)
    assert report.final_errors == ()
    assert report.source == "node-a" and report.target == "node-b"
    # a pass that copied nothing new ended each mailbox's copy, then one pass after the switch
    assert report.passes >= 2
    assert told == [(f"ann@{DOMAIN}", "copied"), (f"bob@{DOMAIN}", "copied"),
                    (f"ann@{DOMAIN}", "final"), (f"bob@{DOMAIN}", "final")]
    assert mover.sent
    assert two_nodes.node_of() == "node-b"
    for address, before in mail_on_a.items():
        on_b = _mailbox(two_nodes.b.imap, address)
        expected = {folder: set(msgs) for folder, msgs in before.items()}
        if address.startswith("ann@"):
            # the message that reached node-a during the switch came along in the last pass,
            # and node-b's own new message stayed
            expected["INBOX"] |= {("late one", frozenset({"\\Flagged"})),
                                  ("first on b", frozenset())}
        assert on_b == expected, address
    assert ("keyword one", frozenset({"$Work"})) in _mailbox(two_nodes.b.imap,
                                                             f"ann@{DOMAIN}")["INBOX"]
    (event,) = two_nodes.move_events()
    assert event.object_label == DOMAIN and event.actor == OP.name
    assert json.loads(event.before or "{}") == {"node": "node-a"}
    after = json.loads(event.after or "{}")
    assert after["node"] == "node-b" and after["mailboxes"] == 2


def test_usage_is_read_from_the_node_that_holds_the_domain(two_nodes: Nodes) -> None:
    """After the move ann's mail on node-b has messages node-a's copy lacks: the reading
    must come from node-b's doveadm server."""
    if two_nodes.node_of() != "node-b":
        pytest.skip("needs the move above")
    ann = f"ann@{DOMAIN}"
    _append(two_nodes.b.imap, ann, "INBOX", "", "only on b")
    on_b = sum(len(m) for m in _mailbox(two_nodes.b.imap, ann).values())
    on_a = sum(len(m) for m in _mailbox(two_nodes.a.imap, ann).values())
    assert on_b == on_a + 2  # "first on b" (during the move) and "only on b"
    with transaction(two_nodes.factory) as s:
        report = usage.refresh_usage(s, OP, address=ann)
        assert report.updated == 1
        box = s.scalars(select(Mailbox).join(Domain).where(
            Mailbox.local_part == "ann", Domain.name == DOMAIN)).one()
        assert box.usage_messages == on_b
    with transaction(two_nodes.factory) as s:  # the admin's full refresh, one -A per node
        usage.refresh_usage(s, OP)
        box = s.scalars(select(Mailbox).join(Domain).where(
            Mailbox.local_part == "ann", Domain.name == DOMAIN)).one()
        assert box.usage_messages == on_b


def test_cli_moves_it_back(two_nodes: Nodes) -> None:
    if two_nodes.node_of() != "node-b":
        pytest.skip("needs the move above")
    ann = f"ann@{DOMAIN}"
    result = CliRunner().invoke(
        main, ["--instance", str(two_nodes.instance), "domain", "move", DOMAIN,
               "--to", "node-a", "--wait", "0"],
        env={"MAILADMIN_DATABASE_URL": two_nodes.url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Moved {DOMAIN} from node-b to node-a: 2 mailboxes" in result.output
    assert two_nodes.node_of() == "node-a"
    assert _mailbox(two_nodes.a.imap, ann) == _mailbox(two_nodes.b.imap, ann)
    again = CliRunner().invoke(
        main, ["--instance", str(two_nodes.instance), "domain", "move", DOMAIN,
               "--to", "node-a", "--json"],
        env={"MAILADMIN_DATABASE_URL": two_nodes.url}, catch_exceptions=False)
    assert again.exit_code == 1
    assert json.loads(again.output)["error"]["code"] == "conflict"
    assert len(two_nodes.move_events()) == 2



def test_node_runner_apply_renders_the_doveadm_server(two_nodes: Nodes) -> None:
    """With two nodes, `apply_on_node` renders this node's doveadm server at its address;
    the password file is 0640 root:dovecot and no revision holds the password. (Last: it
    re-applies node-a with the production password file.)"""
    with transaction(two_nodes.factory) as s:
        report = nodes.apply_on_node(s, OP, "node-a")
        assert report.revision.state == "applied", report.revision.validation_output
        files = json.loads(report.revision.files or "{}")
    conf = (two_nodes.a.dir / "config/current/dovecot/dovecot.conf").read_text()
    secret = two_nodes.a.dir / "config/doveadm/doveadm-password.conf.ext"
    assert (f"service doveadm {{\n  inet_listener doveadm {{\n    address = {ADDRESSES['a']}\n"
            f"    port = {two_nodes.doveadm_port}\n") in conf
    assert f"!include {secret}\n" in conf
    st = secret.stat()
    assert oct(st.st_mode & 0o777) == "0o640" and st.st_uid == 0
    assert st.st_gid == grp.getgrnam("dovecot").gr_gid
    assert "doveadm_password" not in conf
    assert all("doveadm_password" not in text for text in files.values())
    _wait_listening(ADDRESSES["a"], two_nodes.doveadm_port)
    # node-a now has a password file of its own, unlike node-b: a move is refused by the
    # nodes, says why, and switches nothing
    assert two_nodes.node_of() == "node-a"
    with pytest.raises(MoveFailed, match=r"same doveadm-password\.conf\.ext"):
        move_domain(two_nodes.factory, lambda _s: OP, DOMAIN, "node-b", wait_seconds=0)
    assert two_nodes.node_of() == "node-a"
