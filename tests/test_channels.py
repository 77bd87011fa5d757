"""One table of operations, run through the browser forms, the JSON API and the CLI.

Every channel must reach the same state and give the same refusals, because all three call
the same service functions.
"""

from __future__ import annotations

import html
import json
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.cli import main as cli_main
from mailadmin.db import transaction
from mailadmin.models import Domain, Forwarder, Mailbox, Package, PanelUser
from mailadmin.services import domains, tokens
from mailadmin.services.context import Actor
from mailadmin.sizes import size_for_input

from .web import sign_in, submit

PASSWORD = "Tr0ub4dor&3-horse"
G = 1024**3


class Outcome(t.NamedTuple):
    ok: bool
    text: str


class Channel(t.Protocol):
    def create(self, address: str, quota: str) -> Outcome: ...
    def update(self, address: str, **changes: t.Any) -> Outcome: ...
    def suspend(self, address: str) -> Outcome: ...
    def forward(self, address: str, destination: str) -> Outcome: ...


class Web:
    def __init__(self, client: t.Any, factory: sessionmaker[Session]) -> None:
        self.client, self.factory = client, factory
        assert sign_in(client, "alice", "correct horse 9").status_code == 302

    def _outcome(self, response: t.Any) -> Outcome:
        return Outcome(response.status_code == 302, html.unescape(response.get_data(as_text=True)))

    def create(self, address: str, quota: str) -> Outcome:
        local, domain = address.split("@")
        return self._outcome(submit(self.client, "/mailboxes/new", {
            "local_part": local, "domain": domain, "password": PASSWORD, "confirm": PASSWORD,
            "quota": quota, "imap": "y", "pop3": "y"}))

    def update(self, address: str, **changes: t.Any) -> Outcome:
        # The form posts the whole state; start from what the mailbox has now.
        with self.factory() as s:
            local, domain = address.split("@")
            box = s.scalars(select(Mailbox).join(Domain).where(
                Mailbox.local_part == local, Domain.name == domain)).one_or_none()
            current: dict[str, t.Any] = {"quota": "1G", "imap": True, "pop3": True, "smtp": False}
            if box is not None:
                current = {"quota": size_for_input(box.quota), "imap": box.imap,
                           "pop3": box.pop3, "smtp": box.smtp}
        current.update(changes)
        data = {"quota": current["quota"]}
        data.update({k: "y" for k in ("imap", "pop3", "smtp") if current[k]})
        return self._outcome(submit(self.client, f"/mailboxes/{address}/settings", data,
                                    page=f"/mailboxes/{address}"))

    def suspend(self, address: str) -> Outcome:
        return self._outcome(submit(self.client, f"/mailboxes/{address}/suspensions",
                                    {"suspend_login": "y"}, page=f"/mailboxes/{address}"))

    def forward(self, address: str, destination: str) -> Outcome:
        local, domain = address.split("@")
        return self._outcome(submit(self.client, "/forwarders/edit", {
            "local_part": local, "domain": domain, "destinations": destination}))


class Api:
    def __init__(self, client: t.Any, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def _outcome(self, response: t.Any) -> Outcome:
        return Outcome(response.status_code < 300, json.dumps(response.get_json(), ensure_ascii=False))

    def create(self, address: str, quota: str) -> Outcome:
        return self._outcome(self.client.post("/api/v1/mailboxes", headers=self.headers, json={
            "address": address, "password": PASSWORD, "quota": quota, "imap": True, "pop3": True,
            "smtp": False}))

    def update(self, address: str, **changes: t.Any) -> Outcome:
        return self._outcome(self.client.patch(f"/api/v1/mailboxes/{address}",
                                               headers=self.headers, json=changes))

    def suspend(self, address: str) -> Outcome:
        return self._outcome(self.client.post(f"/api/v1/mailboxes/{address}/suspend",
                                              headers=self.headers, json={"login": True}))

    def forward(self, address: str, destination: str) -> Outcome:
        return self._outcome(self.client.put(f"/api/v1/forwarders/{address}", headers=self.headers,
                                             json={"destinations": [destination]}))


class Cli:
    def __init__(self, instance: Path) -> None:
        self.runner, self.instance = CliRunner(), instance

    def _run(self, *args: str, stdin: str | None = None) -> Outcome:
        result = self.runner.invoke(cli_main, ["--instance", str(self.instance), "--as", "alice", *args],
                                    input=stdin)
        return Outcome(result.exit_code == 0, result.output)

    def create(self, address: str, quota: str) -> Outcome:
        return self._run("mailbox", "add", address, "--password-stdin", "--quota", quota,
                         "--imap", "--pop3", "--no-smtp", stdin=PASSWORD + "\n")

    def update(self, address: str, **changes: t.Any) -> Outcome:
        args = []
        for key, value in changes.items():
            args += ["--quota", value] if key == "quota" else [f"--{'' if value else 'no-'}{key}"]
        return self._run("mailbox", "set", address, *args)

    def suspend(self, address: str) -> Outcome:
        return self._run("mailbox", "suspend", address, "--login")

    def forward(self, address: str, destination: str) -> Outcome:
        return self._run("forwarder", "add", address, destination)


# (operation, arguments, None for success or the refusal every channel must give)
TABLE: list[tuple[str, tuple[t.Any, ...], dict[str, t.Any], str | None]] = [
    ("create", ("info@a.example", "500M"), {}, None),
    ("create", ("INFO@a.example", "500M"), {}, "The mailbox info@a.example exists already."),
    ("create", ("a:b@a.example", "500M"), {}, "may not contain ':'"),
    ("create", ("a\nb@a.example", "500M"), {}, "may not contain"),
    ("create", ("sales@a.example", "4G"), {}, "Package allows at most 3 GiB per mailbox"),
    ("create", ("sales@a.example", "1G"), {}, None),
    ("create", ("third@a.example", "1G"), {}, "Package allows 2 mailboxes; you have 2."),
    ("update", ("info@a.example",), {"pop3": False}, None),
    ("update", ("info@a.example",), {"quota": "2G"}, None),
    ("update", ("info@a.example",), {"smtp": True}, "Your package does not include SMTP (sending)."),
    ("update", ("ghost@a.example",), {"quota": "1G"}, "There is no mailbox"),
    ("suspend", ("sales@a.example",), {}, None),
    ("forward", ("x@a.example", "y@a.example"), {}, None),
    ("forward", ("y@a.example", "x@a.example"), {},
     "That would make a forwarding loop: y@a.example → x@a.example → y@a.example."),
    ("forward", ("z@b.example", "x@a.example"), {}, "There is no domain"),
]


@pytest.fixture
def customer(session_factory: sessionmaker[Session], make_user: t.Any) -> None:
    make_user("alice", "customer")
    make_user("bob", "customer")
    with transaction(session_factory) as s:
        package = Package(
            owner_id=s.scalars(select(PanelUser.id).where(PanelUser.username == "alice")).one(),
            name="Two boxes", max_mailboxes=2, max_quota_per_mailbox=3 * G, max_total_quota=10 * G,
            allow_smtp=False, default_quota=G,
        )
        s.add(package)
        s.flush()
        s.scalars(select(PanelUser).where(PanelUser.username == "alice")).one().package_id = package.id
        domains.add_domain(s, Actor.operator(), "a.example", customer="alice")
        domains.add_domain(s, Actor.operator(), "b.example", customer="bob")


def final_state(factory: sessionmaker[Session]) -> list[tuple[t.Any, ...]]:
    with factory() as s:
        boxes = s.execute(select(Mailbox.local_part, Mailbox.quota, Mailbox.imap, Mailbox.pop3,
                                 Mailbox.smtp, Mailbox.suspend_login).order_by(Mailbox.local_part)).all()
        forwards = s.execute(select(Forwarder.local_part).order_by(Forwarder.local_part)).all()
        return [tuple(b) for b in boxes] + [tuple(f) for f in forwards]


@pytest.mark.parametrize("channel_name", ["web", "api", "cli"])
def test_same_table_same_results(
    channel_name: str, customer: None, app: t.Any, session_factory: sessionmaker[Session],
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel: Channel
    if channel_name == "web":
        channel = Web(app.test_client(), session_factory)
    elif channel_name == "api":
        with transaction(session_factory) as s:
            alice = s.scalars(select(PanelUser).where(PanelUser.username == "alice")).one()
            _, token = tokens.create_api_token(s, Actor.for_user(alice, "panel"), "table")
        channel = Api(app.test_client(), token)
    else:
        monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
        channel = Cli(tmp_path / "cli-instance")
    for operation, args, kwargs, refusal in TABLE:
        before = final_state(session_factory)
        outcome = getattr(channel, operation)(*args, **kwargs)
        if refusal is None:
            assert outcome.ok, (operation, args, outcome.text[-2000:])
        else:
            assert not outcome.ok, (operation, args)
            assert refusal in outcome.text, (operation, args, refusal, outcome.text[-2000:])
            assert final_state(session_factory) == before
    assert final_state(session_factory) == [
        ("info", 2 * G, True, False, False, False),
        ("sales", G, True, True, False, True),
        ("x",),
    ]
