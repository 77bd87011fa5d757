"""Issue 19, placement: a new domain goes to the least-loaded mail node (fewest mailboxes,
then fewest domains, then name); none without nodes; only the server admin may name one, and a
customer never sees where a domain lives."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.cli import main
from mailadmin.db import transaction
from mailadmin.errors import NotFound, PermissionDenied, ValidationError
from mailadmin.models import Domain, MailNode
from mailadmin.services import domains, mailboxes, nodes
from mailadmin.services.context import Actor

from .factories import actor, run, small_package_world

PASSWORD = "Tr0ub4dor&3-horse"
OP = Actor.operator()


def node_of(factory: sessionmaker[Session], name: str) -> str | None:
    with transaction(factory) as s:
        return s.scalar(select(MailNode.name).join(Domain, Domain.node_id == MailNode.id)
                        .where(Domain.name == name))


def test_least_loaded_node_gets_the_new_domain(session_factory: sessionmaker[Session],
                                               make_user: t.Any) -> None:
    small_package_world(session_factory, make_user)
    rita = actor(session_factory, "rita", source=None)
    run(session_factory, domains.add_domain, rita, "first.example", customer="bert")
    with transaction(session_factory) as s:
        assert s.scalar(select(Domain.node_id).where(Domain.name == "first.example")) is None
    run(session_factory, nodes.add_node, OP, "node-b", "127.0.2.2")
    run(session_factory, nodes.add_node, OP, "node-a", "127.0.2.1")
    # a tie: the first name
    run(session_factory, domains.add_domain, rita, "one.example", customer="bert")
    assert node_of(session_factory, "one.example") == "node-a"
    run(session_factory, mailboxes.create_mailbox, rita, "x@one.example", PASSWORD)
    # node-b has fewer mailboxes
    run(session_factory, domains.add_domain, rita, "two.example", customer="bert")
    assert node_of(session_factory, "two.example") == "node-b"
    # node-b has no mailbox yet (but a domain), node-a one: node-b again
    run(session_factory, domains.add_domain, OP, "three.example", customer="bert")
    assert node_of(session_factory, "three.example") == "node-b"
    run(session_factory, mailboxes.create_mailbox, rita, "x@two.example", PASSWORD)
    run(session_factory, mailboxes.create_mailbox, rita, "y@two.example", PASSWORD)
    # mailboxes first: node-a 1, node-b 2
    run(session_factory, domains.add_domain, OP, "four.example", customer="bert")
    assert node_of(session_factory, "four.example") == "node-a"


def test_admin_picks_a_node_others_cannot(session_factory: sessionmaker[Session],
                                          make_user: t.Any) -> None:
    small_package_world(session_factory, make_user)
    run(session_factory, nodes.add_node, OP, "node-a", "127.0.2.1")
    run(session_factory, nodes.add_node, OP, "node-b", "127.0.2.2")
    run(session_factory, domains.add_domain, OP, "picked.example", customer="bert",
        node="node-b")
    assert node_of(session_factory, "picked.example") == "node-b"
    with pytest.raises(NotFound):
        run(session_factory, domains.add_domain, OP, "nowhere.example", customer="bert",
            node="node-z")
    for who in ("rita", "bert"):
        someone = actor(session_factory, who, source=None)
        with pytest.raises(PermissionDenied):
            run(session_factory, domains.add_domain, someone, f"{who}-pick.example",
                customer="bert" if who == "rita" else None, node="node-b")
    with transaction(session_factory) as s:
        assert s.scalar(select(Domain.id).where(Domain.name.like("%-pick.example"))) is None
        assert s.scalar(select(Domain.id).where(Domain.name == "nowhere.example")) is None


def test_node_names_and_addresses_are_checked(session_factory: sessionmaker[Session]) -> None:
    for name, address in (("Bad Name", "127.0.2.1"), ("ok", "bad address\nx"),
                          ("ok", "host;rm")):
        with pytest.raises(ValidationError):
            run(session_factory, nodes.add_node, OP, name, address)


@pytest.fixture
def cli(tmp_path: Path, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> t.Any:
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()

    def _run(*args: str, stdin: str | None = None) -> t.Any:
        return runner.invoke(main, ["--instance", str(tmp_path / "inst"), *args], input=stdin)

    return _run


def test_cli_node_add_and_domain_add_node(cli: t.Any, sqlite_engine: Engine) -> None:
    assert cli("user", "add", "rita", "--role", "reseller").exit_code == 0
    assert cli("user", "add", "bert", "--role", "customer", "--reseller", "rita").exit_code == 0
    added = cli("node", "add", "node-a", "--address", "127.0.2.1")
    assert added.exit_code == 0, added.output
    assert cli("node", "add", "node-b", "--address", "127.0.2.2").exit_code == 0
    picked = cli("domain", "add", "pick.example", "--customer", "bert", "--node", "node-b",
                 "--json")
    assert picked.exit_code == 0, picked.output
    shown = json.loads(picked.output)
    assert not any("node" in key for key in shown)
    refused = cli("--as", "bert", "domain", "add", "mine.example", "--node", "node-a")
    assert refused.exit_code != 0
    assert "server admin" in refused.output
    own = cli("--as", "bert", "domain", "add", "mine.example", "--json")
    assert own.exit_code == 0, own.output
    assert not any("node" in key for key in json.loads(own.output))
    listed = cli("--as", "bert", "domain", "list", "--json")
    assert "node" not in listed.output
    with Session(sqlite_engine) as s:
        placed = dict(s.execute(select(Domain.name, MailNode.name)
                                .join(MailNode, Domain.node_id == MailNode.id)).all())
    assert placed == {"pick.example": "node-b", "mine.example": "node-a"}


def test_with_domains_on_nodes_only_the_node_runners_apply(
        session_factory: sessionmaker[Session], make_user: t.Any) -> None:
    from mailadmin.errors import Conflict
    from mailadmin.services import stack
    from mailadmin.workers import apply_watcher

    small_package_world(session_factory, make_user)
    run(session_factory, nodes.add_node, OP, "node-a", "127.0.2.1")
    run(session_factory, domains.add_domain, OP, "placed.example", customer="bert")
    # the panel's own apply would render every domain as local: refused before any file
    with pytest.raises(Conflict, match="node run"):
        run(session_factory, stack.apply_config_report, OP)
    with pytest.raises(Conflict):
        run(session_factory, nodes.apply_from_panel, OP)
    # the watcher leaves it to the runners (nothing applied, nothing raised)
    result = apply_watcher.watch(session_factory, quiet_seconds=0, once=True)
    assert result.applies == 0


def test_a_node_address_change_is_a_change_for_every_node(
        session_factory: sessionmaker[Session]) -> None:
    from mailadmin.models import ServerSettings

    def changed_at() -> object:
        with transaction(session_factory) as s:
            row = s.get(ServerSettings, 1)
            return row.config_changed_at if row is not None else None

    run(session_factory, nodes.add_node, OP, "node-a", "127.0.2.1")
    first = changed_at()
    assert first is not None  # a new node: the others' files name it
    run(session_factory, nodes.node_checkin, OP, "node-a", "127.0.2.1")
    assert changed_at() == first  # a runner's check-in changes nothing
    run(session_factory, nodes.node_checkin, OP, "node-a", "127.0.2.9")
    assert changed_at() != first  # proxies and routes must point at the new address


def test_the_node_list_says_what_each_node_holds(cli: t.Any) -> None:
    assert cli("user", "add", "rita", "--role", "reseller").exit_code == 0
    assert cli("user", "add", "bert", "--role", "customer", "--reseller", "rita").exit_code == 0
    assert cli("node", "add", "node-a", "--address", "127.0.2.1").exit_code == 0
    assert cli("node", "add", "node-b", "--address", "127.0.2.2").exit_code == 0
    assert cli("domain", "add", "a.example", "--customer", "bert").exit_code == 0
    added = cli("mailbox", "add", "x@a.example", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    listed = json.loads(cli("node", "list", "--json").output)
    assert {n["name"]: (n["domains"], n["mailboxes"]) for n in listed} == {
        "node-a": (1, 1), "node-b": (0, 0)}
    table = cli("node", "list").output
    assert "1/1" in table and "0/0" in table


def test_render_for_a_node(cli: t.Any, tmp_path: Path) -> None:
    assert cli("user", "add", "rita", "--role", "reseller").exit_code == 0
    assert cli("user", "add", "bert", "--role", "customer", "--reseller", "rita").exit_code == 0
    assert cli("node", "add", "node-a", "--address", "127.0.2.1").exit_code == 0
    assert cli("node", "add", "node-b", "--address", "127.0.2.2").exit_code == 0
    assert cli("domain", "add", "a.example", "--customer", "bert", "--node", "node-a") \
        .exit_code == 0
    assert cli("mailbox", "add", "x@a.example", "--password-stdin",
               stdin=PASSWORD + "\n").exit_code == 0
    for node, proxied in (("node-b", True), ("node-a", False)):
        out = tmp_path / node
        rendered = cli("render", "--out", str(out), "--node", node)
        assert rendered.exit_code == 0, rendered.output
        users = next(out.rglob("dovecot/users")).read_text()
        assert ("proxy=y host=127.0.2.1" in users) is proxied
    unknown = cli("render", "--out", str(tmp_path / "z"), "--node", "node-z")
    assert unknown.exit_code != 0
    assert "not registered" in unknown.output
