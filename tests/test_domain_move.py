"""Domain moves without the servers: the rules, the pass loop, the switch, and the render of
the doveadm server (tests/mailstack/test_domain_move.py moves mail between real nodes)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import typing as t

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.errors import Conflict, ValidationError
from mailadmin.mailstack.doveadm import DoveadmFailed, Endpoint, remote_args
from mailadmin.mailstack.names import UnsafeName
from mailadmin.mailstack.render import render
from mailadmin.mailstack.snapshot import StackSnapshot
from mailadmin.models import AuditEvent, Domain, MailNode, ServerSettings
from mailadmin.models.users import Role
from mailadmin.services import accounts, domains, mailboxes, nodes
from mailadmin.services.context import Actor
from mailadmin.services.domain_move import MoveFailed, plan_move
from mailadmin.workers.domain_mover import (
    MAX_PASSES,
    copy_until_settled,
    move_domain,
    wait_for_nodes,
)

from .mailstack.test_render import SETTINGS

OP = Actor.operator()
#: The operator with a clock that stands still: whether a runner counts as online (checked
#: in within 30 s) must not depend on how fast the test runs.
NOW = dt.datetime(2026, 12, 6, 5, 0, tzinfo=dt.UTC)
STILL = dataclasses.replace(OP, clock=lambda: NOW)
A = Endpoint("127.0.3.1", 12345)
B = Endpoint("127.0.3.2", 12345)


class FakeMover:
    """Copies nothing; the target's state changes for the first `busy` passes."""

    def __init__(self, busy: int = 1, fail: str | None = None) -> None:
        self.busy = busy
        self.fail = fail
        self.pulls: list[str] = []
        self.full: list[bool] = []

    def pull(self, address: str, source: Endpoint, target: Endpoint, *,
             full: bool = True) -> None:
        if address == self.fail:
            raise DoveadmFailed(f"copying {address} failed: connect refused")
        self.pulls.append(address)
        self.full.append(full)

    def state(self, address: str, node: Endpoint) -> tuple[tuple[str, ...], ...]:
        n = self.pulls.count(address)
        return (("INBOX", str(min(n, self.busy))),)


def test_a_pass_that_changes_nothing_ends_the_copy() -> None:
    assert copy_until_settled(FakeMover(busy=1), "a@x.test", A, B) == 2
    assert copy_until_settled(FakeMover(busy=3), "a@x.test", A, B) == 4
    assert copy_until_settled(FakeMover(busy=99), "a@x.test", A, B) == MAX_PASSES


def test_remote_args_put_the_node_after_the_command_words() -> None:
    assert remote_args(["-f", "tab", "quota", "get", "-u", "a@x.test"], B) == [
        "-f", "tab", "quota", "get", "-S", "127.0.3.2:12345", "-u", "a@x.test"]
    assert remote_args(["sync", "-1", "-R", "-u", "a@x.test", A.dsync], B) == [
        "sync", "-S", "127.0.3.2:12345", "-1", "-R", "-u", "a@x.test", "tcp:127.0.3.1:12345"]
    assert remote_args(["quota", "recalc", "-u", "a@x.test"], None) == [
        "quota", "recalc", "-u", "a@x.test"]


@pytest.mark.parametrize("address", ["127.0.3.1 -S x", "host\nname", "a:b", "", "-x"])
def test_endpoints_refuse_hostile_addresses(address: str) -> None:
    with pytest.raises(UnsafeName):
        Endpoint(address, 12345)


def _world(factory: sessionmaker[Session]) -> None:
    with factory() as s, s.begin():
        accounts.create_panel_user(s, OP, "mover", "correct horse 9", Role.CUSTOMER)
        domains.add_domain(s, OP, "move.test", customer="mover")
        domains.add_domain(s, OP, "single.test", customer="mover")
        for address in ("ann@move.test", "bob@move.test"):
            mailboxes.create_mailbox(s, OP, address, "correct horse 9")
        nodes.node_checkin(s, STILL, "node-a", "127.0.3.1")
        nodes.node_checkin(s, STILL, "node-b", "127.0.3.2")
        s.flush()
        node_a = s.scalars(select(MailNode).where(MailNode.name == "node-a")).one()
        s.scalars(select(Domain).where(Domain.name == "move.test")).one().node_id = node_a.id


def _node_of(factory: sessionmaker[Session], name: str) -> str | None:
    with factory() as s:
        row = s.scalars(select(Domain).where(Domain.name == name)).one()
        node = s.get(MailNode, row.node_id) if row.node_id else None
        return node.name if node else None


def test_move_switches_after_the_copy_and_records_it(
        session_factory: sessionmaker[Session]) -> None:
    _world(session_factory)
    with session_factory() as s:
        before = s.get(ServerSettings, 1)
        changed = before.config_changed_at if before else None
    mover = FakeMover()
    report = move_domain(session_factory, lambda _s: STILL, "move.test", "node-b", mover=mover,
                         wait_seconds=0)
    assert report.passes == 2 and report.final_errors == ()
    # both runners checked in just now and neither has applied the switch
    assert report.behind == ("node-a", "node-b")
    # two passes each, then one last pass each after the switch
    assert mover.pulls == ["ann@move.test"] * 2 + ["bob@move.test"] * 2 + [
        "ann@move.test", "bob@move.test"]
    # the first pass and the last are full (dsync's quick check can miss mail then)
    assert mover.full == [True, False, True, False, True, True]
    assert _node_of(session_factory, "move.test") == "node-b"
    with session_factory() as s:
        settings = s.get(ServerSettings, 1)
        assert settings is not None and settings.config_changed_at != changed
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "domain.move")).one()
        assert json.loads(event.after or "{}") == {"node": "node-b", "mailboxes": 2,
                                                   "passes": 2}


def test_a_failed_copy_names_the_mailbox_and_switches_nothing(
        session_factory: sessionmaker[Session]) -> None:
    _world(session_factory)
    with pytest.raises(MoveFailed, match=re.escape(
            "bob@move.test could not be copied to node-b, so nothing was switched: "
            "move.test stays on node-a")):
        move_domain(session_factory, lambda _s: OP, "move.test", "node-b",
                    mover=FakeMover(fail="bob@move.test"), wait_seconds=0)
    assert _node_of(session_factory, "move.test") == "node-a"


def test_a_domain_on_no_node_names_its_source(session_factory: sessionmaker[Session]) -> None:
    _world(session_factory)
    with session_factory() as s:
        with pytest.raises(ValidationError, match="say which node holds its mail"):
            plan_move(s, OP, "single.test", "node-b")
        with pytest.raises(Conflict, match="already on node-b"):
            plan_move(s, OP, "single.test", "node-b", source="node-b")
        with pytest.raises(ValidationError, match="is on node-a, not on node-b"):
            plan_move(s, OP, "move.test", "node-a", source="node-b")
    move_domain(session_factory, lambda _s: OP, "single.test", "node-b", source="node-a",
                mover=FakeMover(), wait_seconds=0)
    assert _node_of(session_factory, "single.test") == "node-b"


def test_mailboxes_added_during_the_copy_stop_the_switch(
        session_factory: sessionmaker[Session]) -> None:
    _world(session_factory)

    class Adding(FakeMover):
        def pull(self, address: str, source: Endpoint, target: Endpoint, *,
                 full: bool = True) -> None:
            if not self.pulls:
                with session_factory() as s, s.begin():
                    mailboxes.create_mailbox(s, OP, "new@move.test", "correct horse 9")
            super().pull(address, source, target, full=full)

    with pytest.raises(Conflict, match="changed during the copy"):
        move_domain(session_factory, lambda _s: OP, "move.test", "node-b", mover=Adding(),
                    wait_seconds=0)
    assert _node_of(session_factory, "move.test") == "node-a"


def test_the_last_pass_waits_only_for_online_nodes_behind(
        session_factory: sessionmaker[Session]) -> None:
    _world(session_factory)
    with session_factory() as s, s.begin():
        nodes.node_checkin(s, STILL, "node-c", "127.0.3.3")
    assert wait_for_nodes(session_factory, lambda _s: STILL, 0) == (
        "node-a", "node-b", "node-c")
    with session_factory() as s, s.begin():
        changed = s.get(ServerSettings, 1).config_changed_at  # type: ignore[union-attr]
        for node in s.scalars(select(MailNode)):
            if node.name == "node-a":  # its runner stopped a while ago
                node.last_seen_at = NOW - dt.timedelta(minutes=5)
            elif node.name == "node-b":  # it has applied everything
                node.applied_through = changed
    assert wait_for_nodes(session_factory, lambda _s: STILL, 0) == ("node-c",)


def _snapshot(**settings: t.Any) -> StackSnapshot:
    return StackSnapshot(dataclasses.replace(SETTINGS, **settings), (), (), (), ())


def test_single_server_render_has_no_doveadm_server() -> None:
    files = render(_snapshot(), "/etc/mailadmin/stack/releases/x")
    assert "doveadm" not in files["dovecot/dovecot.conf"]


def test_a_node_renders_its_doveadm_server_without_the_password() -> None:
    files = render(_snapshot(doveadm_address="10.0.0.7", doveadm_port=12345),
                          "/etc/mailadmin/stack/releases/x")
    conf = files["dovecot/dovecot.conf"]
    assert ("service doveadm {\n  inet_listener doveadm {\n    address = 10.0.0.7\n"
            "    port = 12345\n  }\n}\n") in conf
    assert "!include /etc/mailadmin/stack/doveadm/doveadm-password.conf.ext\n" in conf
    assert "doveadm_password =" not in "".join(files.values())
    assert "\ndoveadm_port =" not in conf  # see the template: it would break the server


@pytest.mark.parametrize("address", ["10.0.0.7\nprotocols = none", "a b", "*"])
def test_a_hostile_node_address_is_refused_by_the_renderer(address: str) -> None:
    with pytest.raises(UnsafeName):
        render(_snapshot(doveadm_address=address), "/etc/mailadmin/stack/releases/x")


def test_doveadm_password_file_that_someone_else_placed_is_refused(tmp_path: t.Any) -> None:
    """Dovecot includes the password file as root: a symlink planted there, or a file anyone
    can rewrite, is refused instead of trusted; a missing one is made 0600/0640."""
    import os

    from mailadmin.lab.sandbox import sandbox_settings
    from mailadmin.mailstack.doveadm import doveadm_secret_file, ensure_secret

    settings = sandbox_settings(tmp_path, 20000)
    path = tmp_path / "secret.conf"
    settings = dataclasses.replace(settings, doveadm_secret_file=str(path))
    assert doveadm_secret_file(settings) == str(path)
    target = tmp_path / "attacker.conf"
    target.write_text("doveadm_password = known\n")
    path.symlink_to(target)
    with pytest.raises(OSError, match="refusing"):
        ensure_secret(settings)
    path.unlink()
    target.chmod(0o666)
    os.replace(target, path)
    with pytest.raises(OSError, match="refusing"):
        ensure_secret(settings)
    path.unlink()
    made = ensure_secret(settings)
    assert made == path and path.stat().st_mode & 0o077 in (0, 0o040)
    assert "doveadm_password = " in path.read_text()
