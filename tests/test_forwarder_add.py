"""A new forwarder for an address that forwards already adds destinations (as in cPanel);
replacing them is an explicit edit that shows, and asks about, what it removes.

The rule is in `services.forwarders` and every channel gets it: the service, the panel's
forms, the API (POST .../destinations adds, PUT replaces) and the CLI (`forwarder add` adds,
`forwarder set` replaces and asks before removing).
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.cli import main
from mailadmin.db import transaction
from mailadmin.errors import Conflict, LimitReached, ValidationError
from mailadmin.models import AuditEvent, Forwarder, PanelUser
from mailadmin.services import domains, forwarders, mailboxes, packages, tokens
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec

from .web import sign_in, submit

PASSWORD = "Tr0ub4dor&3-horse"


def _actor(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


@pytest.fixture
def alice(session_factory: sessionmaker[Session], make_user: t.Any) -> Actor:
    """alice with a.example, a mailbox info@ and a forwarder sales@ -> one@, two@remote."""
    make_user("rita", "reseller")
    make_user("alice", "customer", reseller="rita")
    with transaction(session_factory) as s:
        plan = packages.create_package(s, _actor(session_factory, "rita"), "Plan",
                                       PackageSpec(max_forwarders=2))
        packages.assign_package(s, _actor(session_factory, "rita"), "alice", plan.id)
    actor = _actor(session_factory, "alice")
    with transaction(session_factory) as s:
        domains.add_domain(s, actor, "a.example")
        mailboxes.create_mailbox(s, actor, "info@a.example", PASSWORD)
        forwarders.set_forwarder(s, actor, "sales@a.example",
                                 ["one@remote.example", "two@remote.example"])
    return actor


def destinations(factory: sessionmaker[Session], address: str) -> list[str]:
    with factory() as s:
        local, domain = address.split("@")
        found = [f for f in s.scalars(select(Forwarder)).all()
                 if f.local_part == local and f.domain.name == domain]
        return [d.address for d in found[0].destinations] if found else []


def events(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEvent)
                            .where(AuditEvent.action != "api.call")) or 0)


# --- service ----------------------------------------------------------------------------------


def test_adding_keeps_the_current_destinations(session_factory: t.Any, alice: Actor) -> None:
    with transaction(session_factory) as s:
        _, change = forwarders.add_destinations(
            s, alice, "sales@a.example", ["three@remote.example", "ONE@remote.example"])
    assert destinations(session_factory, "sales@a.example") == [
        "one@remote.example", "two@remote.example", "three@remote.example"]
    assert change.added == ["three@remote.example"] and change.removed == []
    assert not change.created
    assert change.summary() == ("Added 1 destination; this forwarder now delivers to "
                                "one@remote.example, two@remote.example, three@remote.example.")


def test_adding_what_is_there_changes_nothing(session_factory: t.Any, alice: Actor) -> None:
    before = events(session_factory)
    with transaction(session_factory) as s:
        _, change = forwarders.add_destinations(s, alice, "sales@a.example",
                                                ["two@remote.example"])
    assert change.added == [] and change.summary().startswith("Nothing new: sales@a.example")
    assert events(session_factory) == before


def test_adding_to_a_new_address_creates_it_within_the_package(
    session_factory: t.Any, alice: Actor,
) -> None:
    with transaction(session_factory) as s:
        _, change = forwarders.add_destinations(s, alice, "new@a.example", ["x@remote.example"])
    assert change.created and change.summary() == (
        "Forwarder new@a.example created; it delivers to x@remote.example.")
    with pytest.raises(LimitReached), transaction(session_factory) as s:
        forwarders.add_destinations(s, alice, "third@a.example", ["x@remote.example"])
    # More destinations for an existing forwarder are not a new forwarder.
    with transaction(session_factory) as s:
        forwarders.add_destinations(s, alice, "new@a.example", ["y@remote.example"])


def test_adding_checks_loops_and_the_total(session_factory: t.Any, alice: Actor) -> None:
    with transaction(session_factory) as s:
        forwarders.add_destinations(s, alice, "info@a.example", ["sales@a.example"])
    with pytest.raises(Conflict, match="forwarding loop"), transaction(session_factory) as s:
        forwarders.add_destinations(s, alice, "sales@a.example", ["info@a.example"])
    with pytest.raises(Conflict, match="cannot forward to itself"), \
            transaction(session_factory) as s:
        forwarders.add_destinations(s, alice, "sales@a.example", ["sales@a.example"])
    with pytest.raises(ValidationError, match="it has 2 already"), \
            transaction(session_factory) as s:
        forwarders.add_destinations(
            s, alice, "sales@a.example",
            [f"d{i}@remote.example" for i in range(forwarders.MAX_DESTINATIONS - 1)])
    assert destinations(session_factory, "sales@a.example") == [
        "one@remote.example", "two@remote.example"]


def test_keep_copy_is_left_alone_unless_given(session_factory: t.Any, alice: Actor) -> None:
    with transaction(session_factory) as s:
        forwarders.add_destinations(s, alice, "info@a.example", ["a@remote.example"],
                                    keep_copy=True)
        forwarder, _ = forwarders.add_destinations(s, alice, "info@a.example",
                                                   ["b@remote.example"])
        assert forwarder.keep_copy is True


def test_preview_says_what_a_replacement_removes_and_stores_nothing(
    session_factory: t.Any, alice: Actor,
) -> None:
    before = events(session_factory)
    with transaction(session_factory) as s:
        change = forwarders.preview_replacement(s, alice, "sales@a.example",
                                                ["two@remote.example", "new@remote.example"])
    assert change.removed == ["one@remote.example"] and change.added == ["new@remote.example"]
    assert destinations(session_factory, "sales@a.example") == [
        "one@remote.example", "two@remote.example"]
    assert events(session_factory) == before


# --- web --------------------------------------------------------------------------------------


@pytest.fixture
def web(client: t.Any, alice: Actor) -> t.Any:
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    return client


def test_new_forwarder_form_adds_and_says_so(web: t.Any, session_factory: t.Any) -> None:
    done = submit(web, "/forwarders/new", {"local_part": "sales", "domain": "a.example",
                                           "destinations": "three@remote.example"},
                  follow=True)
    assert done.status_code == 200
    assert ("Added 1 destination; this forwarder now delivers to one@remote.example, "
            "two@remote.example, three@remote.example.") in done.get_data(as_text=True)
    assert destinations(session_factory, "sales@a.example") == [
        "one@remote.example", "two@remote.example", "three@remote.example"]
    # The old URL of the form adds too.
    submit(web, "/forwarders/edit", {"local_part": "sales", "domain": "a.example",
                                     "destinations": "four@remote.example"})
    assert len(destinations(session_factory, "sales@a.example")) == 4


def test_edit_shows_what_it_removes_before_saving(web: t.Any, session_factory: t.Any) -> None:
    url = "/forwarders/edit?address=sales@a.example"
    page = web.get(url).get_data(as_text=True)
    assert "replaces" in page and "one@remote.example" in page
    asked = submit(web, url, {"destinations": "two@remote.example\nnew@remote.example"})
    text = asked.get_data(as_text=True)
    assert asked.status_code == 200 and 'data-testid="removal-warning"' in text
    assert "one@remote.example" in text.split('data-testid="removal-warning"')[1]
    assert "new@remote.example" in text  # what was typed is kept
    assert destinations(session_factory, "sales@a.example") == [
        "one@remote.example", "two@remote.example"]
    # A box ticked for another list than the one shown confirms nothing.
    other = submit(web, url, {"destinations": "new@remote.example", "confirm_removal": "y",
                              "removal_shown": "one@remote.example"})
    assert other.status_code == 200 and 'data-testid="removal-warning"' in \
        other.get_data(as_text=True)
    assert len(destinations(session_factory, "sales@a.example")) == 2
    done = submit(web, url, {"destinations": "two@remote.example\nnew@remote.example",
                             "confirm_removal": "y", "removal_shown": "one@remote.example"},
                  follow=True)
    assert "removed 1 (one@remote.example)" in done.get_data(as_text=True)
    assert destinations(session_factory, "sales@a.example") == [
        "two@remote.example", "new@remote.example"]
    # Only adding needs no confirmation.
    assert submit(web, url, {"destinations": "two@remote.example\nnew@remote.example\n"
                                             "more@remote.example"}).status_code == 302


def test_removing_a_forwarder_asks_first(web: t.Any, session_factory: t.Any) -> None:
    listing = web.get("/forwarders").get_data(as_text=True)
    assert 'href="/forwarders/sales@a.example/delete"' in listing
    page = web.get("/forwarders/sales@a.example/delete").get_data(as_text=True)
    assert "will no longer be delivered to one@remote.example, two@remote.example" in page
    unticked = submit(web, "/forwarders/sales@a.example/delete", {})
    assert unticked.status_code == 422
    assert "Tick the box" in unticked.get_data(as_text=True)
    assert destinations(session_factory, "sales@a.example")
    ticked = submit(web, "/forwarders/sales@a.example/delete", {"confirm": "y"})
    assert ticked.status_code == 302
    assert destinations(session_factory, "sales@a.example") == []


# --- API --------------------------------------------------------------------------------------


def test_api_post_adds_and_put_replaces(client: t.Any, session_factory: t.Any,
                                        alice: Actor) -> None:
    with transaction(session_factory) as s:
        _, secret = tokens.create_api_token(s, alice, "t")
    headers = {"Authorization": f"Bearer {secret}"}
    added = client.post("/api/v1/forwarders/sales@a.example/destinations", headers=headers,
                        json={"destinations": ["three@remote.example"]})
    assert added.status_code == 200, added.get_json()
    body = added.get_json()
    assert body["destinations"] == ["one@remote.example", "two@remote.example",
                                    "three@remote.example"]
    assert body["added"] == ["three@remote.example"] and body["created"] is False
    assert body["message"].startswith("Added 1 destination")
    replaced = client.put("/api/v1/forwarders/sales@a.example", headers=headers,
                          json={"destinations": ["only@remote.example"]})
    assert replaced.get_json()["destinations"] == ["only@remote.example"]
    loop = client.post("/api/v1/forwarders/sales@a.example/destinations", headers=headers,
                       json={"destinations": ["sales@a.example"]})
    assert loop.status_code == 409
    assert destinations(session_factory, "sales@a.example") == ["only@remote.example"]


# --- CLI --------------------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch,
        alice: Actor) -> t.Any:
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()

    def _run(*args: str, stdin: str | None = None) -> t.Any:
        return runner.invoke(main, ["--instance", str(tmp_path / "inst"), "--as", "alice",
                                    *args], input=stdin)

    return _run


def test_cli_add_adds_and_set_asks_before_removing(run: t.Any, session_factory: t.Any) -> None:
    added = run("forwarder", "add", "sales@a.example", "three@remote.example")
    assert added.exit_code == 0, added.output
    assert added.output.startswith("Added 1 destination; this forwarder now delivers to "
                                   "one@remote.example, two@remote.example")
    refused = run("forwarder", "set", "sales@a.example", "only@remote.example", stdin="n\n")
    assert refused.exit_code != 0
    assert "one@remote.example" in refused.output and "--yes" in refused.output
    assert len(destinations(session_factory, "sales@a.example")) == 3
    as_json = run("forwarder", "set", "sales@a.example", "only@remote.example", "--json")
    assert as_json.exit_code != 0 and "--yes" in as_json.output
    done = run("forwarder", "set", "sales@a.example", "only@remote.example", "--yes", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["removed"] == [
        "one@remote.example", "two@remote.example", "three@remote.example"]
    assert destinations(session_factory, "sales@a.example") == ["only@remote.example"]


def test_autoresponder_box_is_unticked_without_an_autoresponder(web: t.Any) -> None:
    from bs4 import BeautifulSoup

    page = BeautifulSoup(web.get("/mailboxes/info@a.example").get_data(as_text=True),
                         "html.parser")
    box = page.find("input", attrs={"name": "enabled"})
    assert box is not None and not box.has_attr("checked")
    submit(web, "/mailboxes/info@a.example/autoresponder",
           {"enabled": "y", "subject": "Away", "body": "Back soon", "interval_days": "1"},
           page="/mailboxes/info@a.example")
    page = BeautifulSoup(web.get("/mailboxes/info@a.example").get_data(as_text=True),
                         "html.parser")
    assert page.find("input", attrs={"name": "enabled"}).has_attr("checked")
