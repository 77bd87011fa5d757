"""Issue 19: several mail nodes, one panel, with real servers.

Two sandboxed nodes started by `mailadmin sandbox start --nodes 2` (node-1 on 127.0.2.1,
node-2 on 127.0.2.2, the same ports), each applied for itself by its own runner
(`node_runner.run_node(sandbox=...)`) from one shared panel database: PostgreSQL, and SQLite
as an extra variant. alpha.test lives on node-1, beta.test on node-2. Through node-1, a
beta.test mailbox logs in over IMAP and POP3 (proxied to node-2) and sends through submission
(SASL checked on node-1); mail for it sent to node-1's SMTP port lands in node-2's Maildir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.message
import imaplib
import json
import os
import poplib
import re
import shutil
import smtplib
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailadmin import migrate
from mailadmin.cli import main
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.lab.chroot24 import ensure_chroot
from mailadmin.mailstack.apply import Tools
from mailadmin.models import Role
from mailadmin.services import accounts, domains, mailboxes, nodes
from mailadmin.services import server_settings as settings_service
from mailadmin.services.context import Actor
from mailadmin.workers import node_runner
from tests.databases import throwaway_database

from .conftest import eventually, fresh_ip, require_stack

pytestmark = pytest.mark.mailstack
OP = Actor.operator()
PASSWORD = "Tr0ub4dor&3-horse"


@dataclasses.dataclass
class Node:
    name: str
    address: str
    folder: Path
    imap: int
    pop3: int
    submission: int
    smtp: int

    def log(self, server: str = "dovecot") -> str:
        return (self.folder / "log" / f"{server}.log").read_text(errors="replace")

    def maildir_files(self, address: str) -> list[Path]:
        local, _, domain = address.partition("@")
        box = self.folder / "mail" / domain / local / "Maildir"
        return [p for sub in ("new", "cur") if (box / sub).is_dir()
                for p in (box / sub).iterdir()]


@dataclasses.dataclass
class Cluster:
    factory: sessionmaker[Session]
    engine: Engine
    port_base: int
    nodes: tuple[Node, ...]
    instance: Path
    url: str
    tools: Tools | None = None
    mode: str = "files"

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def run_all_cli(self) -> None:
        """`mailadmin node run --once --sandbox` for each node, as an operator would."""
        for n in self.nodes:
            ran = CliRunner().invoke(main, [
                "--instance", str(self.instance), "node", "run", "--name", n.name,
                "--address", n.address, "--sandbox", str(n.folder), "--once"],
                env={"MAILADMIN_DATABASE_URL": self.url})
            assert ran.exit_code == 0, ran.output
            assert "applied revision" in ran.output, ran.output

    def run_all(self) -> None:
        """Each node's runner applies what is pending, once (as `node run --once` does)."""
        for n in self.nodes:
            result = node_runner.run_node(
                self.factory, self.engine, n.name, n.address, once=True, quiet_seconds=0,
                sandbox=nodes.NodeSandbox(str(n.folder), self.port_base), tools=self.tools)
            assert result.failures == 0, result.last.validation_output if result.last else ""


@pytest.fixture(scope="module", params=[
    ("postgresql", "2.3", "files"), ("sqlite", "2.3", "files"), ("sqlite", "2.4", "files"),
    ("sqlite", "2.3", "sql")], ids=lambda p: "-".join(p))
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Dovecot 2.4 runs from the Debian 13 chroot (`mailadmin.lab.chroot24`), Postfix from
    the host, as `sandbox start` does for 2.4. In SQL mode both nodes' servers read the
    panel's SQLite database (the proxy fields and LMTP routes from the view of 0015)."""
    require_stack()
    backend, version, mode = request.param
    directory = Path(tempfile.mkdtemp(prefix="mn-", dir="/tmp"))
    directory.chmod(0o755)
    instance = directory / "instance"
    instance.mkdir()
    sandbox = directory / "sbx"
    try:
        with throwaway_database(backend, instance) as url:
            engine = make_engine(url)
            migrate.upgrade(engine)
            factory = make_session_factory(engine)
            with transaction(factory) as s:
                settings_service.update_settings(s, OP, {"dovecot_version": version,
                                                         "stack_mode": mode})
            cli = CliRunner()
            env = {"MAILADMIN_DATABASE_URL": url}
            started = cli.invoke(main, ["--instance", str(instance), "sandbox", "start",
                                        "--dir", str(sandbox), "--nodes", "2", "--json"],
                                 env=env)
            assert started.exit_code == 0, started.output
            info = json.loads(started.output)
            try:
                found = tuple(Node(n["name"], n["address"], Path(n["dir"]), n["imap"],
                                   n["pop3"], n["submission"], n["smtp"])
                              for n in info["nodes"])
                assert [(n.name, n.address) for n in found] == [
                    ("node-1", "127.0.2.1"), ("node-2", "127.0.2.2")]
                with transaction(factory) as s:
                    accounts.create_panel_user(s, OP, "multi", "correct horse 9",
                                               Role.CUSTOMER)
                    domains.add_domain(s, OP, "alpha.test", customer="multi", node="node-1")
                    domains.add_domain(s, OP, "beta.test", customer="multi", node="node-2")
                    for address in ("anna@alpha.test", "bea@beta.test", "bob@beta.test"):
                        mailboxes.create_mailbox(s, OP, address, PASSWORD)
                result = Cluster(factory, engine, int(info["port_base"]), found, instance,
                                 url, ensure_chroot().tools() if version == "2.4" else None,
                                 mode)
                result.run_all()
                yield result
            finally:
                stopped = cli.invoke(main, ["--instance", str(instance), "sandbox", "stop",
                                            "--dir", str(sandbox)], env=env)
                assert stopped.exit_code == 0, stopped.output
                engine.dispose()
    finally:
        if os.environ.get("MAILSTACK_KEEP") is None:
            shutil.rmtree(directory, ignore_errors=True)


# ------------------------------------------------------------------ clients on a node address


def _connect(host: str, port: int, timeout: float | None) -> socket.socket:
    # a fresh 127.x source per connection: Dovecot's auth penalty is per client address
    return socket.create_connection((host, port), timeout, source_address=(fresh_ip(), 0))


class IMAP(imaplib.IMAP4):
    def _create_socket(self, timeout: float | None) -> socket.socket:
        return _connect(self.host, self.port, timeout)


class POP3(poplib.POP3):
    def _create_socket(self, timeout: float | None) -> socket.socket:
        return _connect(self.host, self.port, timeout)


def imap_subjects(node: Node, user: str, password: str = PASSWORD) -> list[str] | None:
    """The INBOX subjects through `node`'s IMAP port, or None when the login is refused."""
    c = IMAP(node.address, node.imap, timeout=10)
    try:
        try:
            c.login(user, password)
        except imaplib.IMAP4.error:
            return None
        c.select("INBOX", readonly=True)
        _, data = c.search(None, "ALL")
        subjects = []
        for num in data[0].split():
            _, parts = c.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            raw = parts[0][1] if isinstance(parts[0], tuple) else b""
            subjects.append(raw.decode().strip().removeprefix("Subject: "))
        c.logout()
        return subjects
    finally:
        with contextlib.suppress(Exception):
            c.shutdown()


def pop3_count(node: Node, user: str, password: str = PASSWORD) -> int | None:
    c = POP3(node.address, node.pop3, timeout=10)
    try:
        c.user(user)
        try:
            c.pass_(password)
        except poplib.error_proto:
            return None
        return int(c.stat()[0])
    finally:
        with contextlib.suppress(Exception):
            c.quit()


def smtp(node: Node, port: int) -> smtplib.SMTP:
    s = smtplib.SMTP(node.address, port, timeout=15, source_address=(fresh_ip(), 0),
                     local_hostname="client.test")
    s.ehlo()
    return s


def message(sender: str, rcpt: str, subject: str) -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, rcpt, subject
    msg.set_content("hello across nodes")
    return msg


def proxied(node: Node, user: str, protocol: str = "imap") -> bool:
    return f"{protocol}-login: Info: proxy({user}," in node.log()


# ------------------------------------------------------------------------------------ tests


def test_imap_and_pop3_through_another_node_are_proxied_to_the_owner(
        cluster: Cluster) -> None:
    one, two = cluster.node("node-1"), cluster.node("node-2")
    assert imap_subjects(one, "bea@beta.test") is not None
    assert eventually(lambda: proxied(one, "bea@beta.test", "imap"))
    assert pop3_count(one, "bea@beta.test") is not None
    assert eventually(lambda: proxied(one, "bea@beta.test", "pop3"))
    # node-2 saw the logins (coming from node-1), and serves the mailbox itself
    # (a session's lines are written as it ends, which can be after the client has gone)
    assert eventually(lambda: "imap(bea@beta.test)" in two.log()
                      and "pop3(bea@beta.test)" in two.log())
    assert imap_subjects(two, "bea@beta.test") is not None
    assert not proxied(two, "bea@beta.test")
    # node-2 trusts node-1 (login_trusted_networks) to pass on the client's own address
    # (2.3 says "Login:", 2.4 "Logged in:"; the direct logins come from 127.10.x.x too)
    rips = re.findall(r"(?:Login|Logged in): user=<bea@beta\.test>.*? rip=([0-9.]+),",
                      two.log())
    assert rips and not {"127.0.0.1", "127.0.2.1"} & set(rips), rips


def test_a_mailbox_on_the_node_itself_is_served_locally(cluster: Cluster) -> None:
    one = cluster.node("node-1")
    assert imap_subjects(one, "anna@alpha.test") is not None
    assert pop3_count(one, "anna@alpha.test") is not None
    assert not proxied(one, "anna@alpha.test", "imap")
    assert eventually(lambda: "imap(anna@alpha.test)" in one.log())


def test_a_wrong_password_through_another_node_is_refused(cluster: Cluster) -> None:
    one = cluster.node("node-1")
    assert imap_subjects(one, "bea@beta.test", "not the password") is None
    assert pop3_count(one, "bea@beta.test", "not the password") is None
    with (contextlib.closing(smtp(one, one.submission)) as s,
          pytest.raises(smtplib.SMTPAuthenticationError)):
        s.login("bea@beta.test", "not the password")


def test_mail_sent_to_any_node_lands_in_the_owners_maildir(cluster: Cluster) -> None:
    one, two = cluster.node("node-1"), cluster.node("node-2")
    with contextlib.closing(smtp(one, one.smtp)) as s:
        s.send_message(message("someone@example.net", "bob@beta.test", "to bob via node-1"))
        s.quit()
    got = eventually(lambda: imap_subjects(two, "bob@beta.test"))
    assert got == ["to bob via node-1"]
    assert len(two.maildir_files("bob@beta.test")) == 1
    assert one.maildir_files("bob@beta.test") == []
    if cluster.mode == "files":  # (in SQL mode node-1's quota check still opens a Maildir)
        assert not (one.folder / "mail" / "beta.test").exists()  # nothing of it on node-1
    # logged once node-2's LMTP has answered, which can be after the message is visible
    assert eventually(lambda: f"relay={two.address}[{two.address}]:" in one.log("postfix"))
    # and read through node-1, proxied
    assert imap_subjects(one, "bob@beta.test") == ["to bob via node-1"]


def test_submission_through_another_node_is_accepted_and_delivered(cluster: Cluster) -> None:
    one, two = cluster.node("node-1"), cluster.node("node-2")
    with contextlib.closing(smtp(one, one.submission)) as s:
        s.login("bea@beta.test", PASSWORD)
        s.send_message(message("bea@beta.test", "anna@alpha.test", "from bea via node-1"))
        s.send_message(message("bea@beta.test", "bob@beta.test", "bea to bob via node-1"))
        s.quit()
    assert "from bea via node-1" in (
        eventually(lambda: imap_subjects(one, "anna@alpha.test")) or [])
    assert eventually(lambda: "bea to bob via node-1" in (
        imap_subjects(two, "bob@beta.test") or []))


def test_a_new_password_works_through_every_node_after_the_runners_apply(
        cluster: Cluster) -> None:
    one, two = cluster.node("node-1"), cluster.node("node-2")
    new = "Correct-Battery-Staple-42"
    with transaction(cluster.factory) as s:
        mailboxes.set_mailbox_password(s, OP, "bea@beta.test", new)
    cluster.run_all_cli()
    try:
        for node in (one, two):
            assert eventually(lambda n=node: imap_subjects(n, "bea@beta.test", new)) \
                is not None, node.name
            assert imap_subjects(node, "bea@beta.test") is None
    finally:
        with transaction(cluster.factory) as s:
            mailboxes.set_mailbox_password(s, OP, "bea@beta.test", PASSWORD)
        # `sandbox apply` applies each node's own files to every node of the sandbox
        applied = CliRunner().invoke(main, [
            "--instance", str(cluster.instance), "sandbox", "apply",
            "--dir", str(one.folder.parent)], env={"MAILADMIN_DATABASE_URL": cluster.url})
        assert applied.exit_code == 0, applied.output
        assert "node-1: applied" in applied.output and "node-2: applied" in applied.output
    assert eventually(lambda: imap_subjects(one, "bea@beta.test")) is not None


def test_every_node_reports_its_own_apply(cluster: Cluster) -> None:
    with transaction(cluster.factory) as s:
        found = {n.name: n for n in nodes.list_nodes(s, OP)}
    assert set(found) == {"node-1", "node-2"}
    assert all(n.current and n.last_error is None for n in found.values())
    # each node runs files of its own: the checksums differ
    assert found["node-1"].applied_checksum != found["node-2"].applied_checksum



def test_an_unknown_address_of_a_remote_domain_is_refused_at_once(cluster: Cluster) -> None:
    one = cluster.node("node-1")
    with (contextlib.closing(smtp(one, one.smtp)) as s,
          pytest.raises(smtplib.SMTPRecipientsRefused) as refused):
        s.send_message(message("someone@example.net", "nobody@beta.test", "lost"))
    code, _ = refused.value.recipients["nobody@beta.test"]
    assert code == 550
