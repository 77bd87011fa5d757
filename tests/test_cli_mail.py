"""`mailadmin domain|mailbox|forwarder`: happy paths, --json, refusals, --as tenancy."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.cli import main
from mailadmin.db import transaction
from mailadmin.hashing import verify_mailbox_password
from mailadmin.models import AuditEvent, Domain, Forwarder, Mailbox, Package, PanelUser

PASSWORD = "Tr0ub4dor&3-horse"
GiB = 1024**3
MiB = 1024**2

Run = t.Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()

    def _run(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(main, ["--instance", str(tmp_path / "inst"), *args], input=stdin)

    return _run


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any) -> None:
    """Resellers rita and rob; alice (small package) and bert under rita, carl under rob."""
    make_user("rita", "reseller")
    make_user("rob", "reseller")
    alice = make_user("alice", "customer", reseller="rita")
    make_user("bert", "customer", reseller="rita")
    make_user("carl", "customer", reseller="rob")
    with transaction(session_factory) as s:
        package = Package(
            owner_id=s.scalars(select(PanelUser.id).where(PanelUser.username == "rita")).one(),
            name="Small", max_domains=2, max_mailboxes=3, max_forwarders=2,
            max_quota_per_mailbox=2 * GiB, max_total_quota=5 * GiB,
            allow_unlimited_quota=False, allow_imap=True, allow_pop3=True, allow_smtp=False,
            default_quota=GiB, default_imap=True, default_pop3=True, default_smtp=True,
        )
        s.add(package)
        s.flush()
        s.get(PanelUser, alice.id).package_id = package.id  # type: ignore[union-attr]


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def as_json(result: Result) -> t.Any:
    ok(result)
    return json.loads(result.stdout)


def refused(result: Result, message: str, *, code: int = 1) -> Result:
    """Non-zero exit with the message, and no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert message in result.output, result.output
    return result


def refused_json(result: Result, message: str, error_code: str, *,
                 code: int = 1) -> dict[str, t.Any]:
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    error: dict[str, t.Any] = json.loads(result.stdout)["error"]
    assert message in error["message"]
    assert error["code"] == error_code
    assert set(error) == {"code", "message", "field"}
    return error


def counts(session_factory: sessionmaker[Session]) -> tuple[int, ...]:
    with session_factory() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (Domain, Mailbox, Forwarder, AuditEvent)
        )


def mailbox(session_factory: sessionmaker[Session], address: str) -> Mailbox:
    local, domain = address.split("@")
    with session_factory() as s:
        return s.scalars(
            select(Mailbox).join(Domain, Domain.id == Mailbox.domain_id)
            .where(Mailbox.local_part == local, Domain.name == domain)
        ).one()


# --- domains ----------------------------------------------------------------------------------


def test_domain_commands(run: Run, world: None, session_factory: t.Any) -> None:
    added = ok(run("domain", "add", "Bücher.example", "--customer", "alice"))
    assert added.output == "Added domain bücher.example for alice.\n"
    data = as_json(run("domain", "add", "b.example", "--customer", "bert", "--json"))
    assert data["name"] == "b.example"
    assert data["owner"] == "bert"
    assert data["catchall_action"] == "reject"

    listing = ok(run("domain", "list")).output
    assert "DOMAIN" in listing and "bücher.example" in listing and "alice" in listing
    assert "Page 1 of 1 (2 domains in all)" in listing
    assert "(1 domain in all)" in ok(run("domain", "list", "--search", "b.example")).output
    page = as_json(run("domain", "list", "--json", "--search", "Bücher.example",
                       "--per-page", "10"))
    assert (page["total"], page["page"], page["per_page"], page["pages"]) == (1, 1, 10, 1)
    assert page["items"][0]["name"] == "xn--bcher-kva.example"
    assert page["items"][0]["unicode_name"] == "bücher.example"
    second = as_json(run("domain", "list", "--json", "--per-page", "1", "--page", "2"))
    assert [d["name"] for d in second["items"]] == ["xn--bcher-kva.example"]
    assert second["pages"] == 2

    rejected = ok(run("domain", "catchall", "bücher.example", "--reject", "--reason", "Gone away"))
    assert "reject (Gone away)" in rejected.output
    assert ok(run("domain", "catchall", "b.example", "--discard")).output.endswith("discard.\n")
    delivered = as_json(run("domain", "catchall", "b.example", "--deliver-to", "Post@B.example",
                            "--json"))
    assert (delivered["catchall_action"], delivered["catchall_target"]) == ("deliver",
                                                                           "post@b.example")
    refused(run("domain", "catchall", "b.example"), "Choose one of --reject", code=2)
    refused(run("domain", "catchall", "b.example", "--discard", "--deliver-to", "a@b.example"),
            "Choose one of", code=2)
    refused(run("domain", "catchall", "b.example", "--discard", "--reason", "x"),
            "--reason goes with --reject", code=2)
    refused_json(run("domain", "catchall", "b.example", "--json"), "Choose one of", "usage", code=2)
    bad_reason = run("domain", "catchall", "b.example", "--reject", "--reason", "a\nb", "--json")
    assert refused_json(bad_reason, "The reason is one line", "invalid")["field"] == "reject_reason"

    assert ok(run("domain", "remove", "xn--bcher-kva.example")).output == (
        "Removed domain bücher.example.\n"
    )
    removed = as_json(run("domain", "remove", "B.example", "--json"))
    assert removed == {"removed": True, "type": "domain", "name": "b.example",
                       "unicode_name": "b.example"}
    assert counts(session_factory)[0] == 0


def test_domain_refusals(run: Run, world: None, session_factory: t.Any) -> None:
    ok(run("domain", "add", "a.example", "--customer", "alice"))
    ok(run("domain", "add", "b.example", "--customer", "alice"))
    before = counts(session_factory)
    refused(run("domain", "add", "c.example", "--customer", "alice"),
            "Package allows 2 domains; you have 2")
    refused(run("domain", "add", "a.example", "--customer", "bert"),
            "The domain a.example is already hosted on this server.")
    error = refused_json(run("domain", "add", "c.example", "--json"),
                         "Name the customer the domain belongs to.", "invalid")
    assert error["field"] == "customer"
    refused(run("domain", "add", "a:b.example", "--customer", "bert"),
            "The domain may not contain ':'")
    refused_json(run("domain", "add", "x\ny.example", "--customer", "bert", "--json"),
                 "control characters are never accepted", "invalid_name")
    ok(run("mailbox", "add", "info@a.example", "--password-stdin", stdin=PASSWORD + "\n"))
    refused(run("domain", "remove", "a.example"), "still has 1 mailbox(es)")
    after = counts(session_factory)
    assert after[0] == before[0]
    assert after[1] == before[1] + 1


# --- mailboxes --------------------------------------------------------------------------------


def test_mailbox_lifecycle(run: Run, world: None, session_factory: t.Any) -> None:
    ok(run("domain", "add", "bücher.example", "--customer", "bert"))
    made = ok(run("mailbox", "add", "Info@bücher.example", "--password-stdin", "--quota", "500M",
                  "--no-pop3", stdin=PASSWORD + "\n"))
    assert made.output == (
        "Created mailbox info@bücher.example (quota 500 MiB; protocols imap, smtp; suspended -).\n"
    )
    assert PASSWORD not in made.output
    box = mailbox(session_factory, "info@xn--bcher-kva.example")
    assert (box.quota, box.imap, box.pop3, box.smtp) == (500 * MiB, True, False, True)
    assert verify_mailbox_password(PASSWORD, box.password_hash)

    data = as_json(run("mailbox", "add", "sales@bücher.example", "--password-stdin", "--json",
                       "--quota", "1073741824", "--no-smtp", stdin=PASSWORD + "\n"))
    assert data["address"] == "sales@xn--bcher-kva.example"
    assert data["unicode_address"] == "sales@bücher.example"
    assert (data["quota"], data["imap"], data["pop3"], data["smtp"]) == (GiB, True, True, False)
    assert "password_hash" not in data

    new_password = "An0ther-Gr3at-Horse"
    assert ok(run("mailbox", "passwd", "info@bücher.example", "--password-stdin",
                  stdin=new_password + "\n")).output == "Password of info@bücher.example changed.\n"
    stored = mailbox(session_factory, "info@xn--bcher-kva.example").password_hash
    assert verify_mailbox_password(new_password, stored)
    changed = as_json(run("mailbox", "passwd", "info@bücher.example", "--password-stdin", "--json",
                          stdin=PASSWORD + "\n"))
    assert changed["address"] == "info@xn--bcher-kva.example"
    refused(run("mailbox", "passwd", "info@bücher.example", "--password-stdin", stdin="\n"),
            "No password on standard input.")
    refused_json(run("mailbox", "passwd", "info@bücher.example", "--password-stdin", "--json",
                     stdin="short\n"), "The password must have at least", "weak_password")

    updated = ok(run("mailbox", "set", "info@bücher.example", "--quota", "2G", "--pop3",
                     "--no-imap"))
    assert updated.output == (
        "Updated info@bücher.example: quota 2 GiB; protocols pop3, smtp; suspended -.\n"
    )
    data = as_json(run("mailbox", "set", "info@bücher.example", "--no-smtp", "--json"))
    # What was not given stays as it was.
    assert (data["quota"], data["imap"], data["pop3"], data["smtp"]) == (
        2 * GiB, False, True, False)
    refused(run("mailbox", "set", "info@bücher.example"), "Nothing to change", code=2)

    suspended = ok(run("mailbox", "suspend", "info@bücher.example", "--login", "--outgoing"))
    assert suspended.output == (
        "info@bücher.example: login suspended, receiving active, sending suspended.\n"
    )
    data = as_json(run("mailbox", "resume", "info@bücher.example", "--login", "--json"))
    assert (data["suspend_login"], data["suspend_incoming"], data["suspend_outgoing"]) == (
        False, False, True)
    data = as_json(run("mailbox", "suspend", "info@bücher.example", "--incoming", "--json"))
    assert (data["suspend_login"], data["suspend_incoming"], data["suspend_outgoing"]) == (
        False, True, True)
    assert "login active, receiving active, sending active" in ok(
        run("mailbox", "resume", "info@bücher.example", "--incoming", "--outgoing")).output
    refused(run("mailbox", "suspend", "info@bücher.example"),
            "Name what to suspend: --login, --incoming and/or --outgoing.", code=2)
    refused_json(run("mailbox", "resume", "info@bücher.example", "--json"),
                 "Name what to resume", "usage", code=2)

    listing = ok(run("mailbox", "list")).output
    lines = listing.splitlines()
    assert lines[0].split() == ["ADDRESS", "QUOTA", "USED", "PROTOCOLS", "SUSPENDED"]
    assert lines[2].split() == ["info@bücher.example", "2", "GiB", "-", "pop3", "-"]
    assert lines[3].split() == ["sales@bücher.example", "1", "GiB", "-", "imap,", "pop3", "-"]
    assert lines[-1] == "Page 1 of 1 (2 mailboxes in all)"
    page = as_json(run("mailbox", "list", "--json", "--sort", "quota", "--desc", "--per-page", "1"))
    assert (page["total"], page["pages"], page["per_page"]) == (2, 2, 1)
    assert [m["address"] for m in page["items"]] == ["info@xn--bcher-kva.example"]
    page = as_json(run("mailbox", "list", "--json", "--sort", "created", "--page", "2",
                       "--per-page", "1", "--domain", "bücher.example"))
    assert [m["unicode_address"] for m in page["items"]] == ["sales@bücher.example"]
    page = as_json(run("mailbox", "list", "--json", "--search", "sa"))
    assert [m["address"] for m in page["items"]] == ["sales@xn--bcher-kva.example"]
    assert ok(run("mailbox", "list", "--search", "nobody")).output == "No mailboxes.\n"
    refused(run("mailbox", "list", "--sort", "size"), "Invalid value for '--sort'", code=2)

    before = counts(session_factory)
    refused(run("mailbox", "remove", "info@bücher.example"),
            "Confirm with --yes or --confirm ADDRESS.", code=2)
    refused(run("mailbox", "remove", "info@bücher.example", "--confirm", "sales@bücher.example"),
            "Type the address info@bücher.example to confirm.")
    assert counts(session_factory) == before
    gone = ok(run("mailbox", "remove", "info@bücher.example", "--yes"))
    assert "Removed mailbox info@bücher.example from the panel." in gone.output
    assert "The mail on disk is not touched" in gone.output
    data = as_json(run("mailbox", "remove", "sales@xn--bcher-kva.example", "--json",
                       "--confirm", "SALES@bücher.example"))
    assert data["removed"] is True
    assert data["unicode_address"] == "sales@bücher.example"
    assert data["mail_on_disk"] == "untouched"
    assert counts(session_factory)[1] == 0


def test_sizes_and_passwords_are_parsed_cleanly(run: Run, world: None,
                                                 session_factory: t.Any) -> None:
    ok(run("domain", "add", "b.example", "--customer", "bert"))
    before = counts(session_factory)
    bad = refused(run("mailbox", "add", "x@b.example", "--password-stdin", "--quota", "lots",
                      stdin=PASSWORD + "\n"), "'lots' is not a size", code=2)
    assert "Traceback" not in bad.output
    assert "--quota" in bad.output
    error = refused_json(run("mailbox", "add", "x@b.example", "--password-stdin", "--quota", "-1G",
                             "--json", stdin=PASSWORD + "\n"), "is not a size", "invalid", code=2)
    assert error["field"] == "quota"
    refused(run("mailbox", "add", "x@b.example", "--password-stdin"),
            "No password on standard input.")
    # The password never comes from the command line.
    refused(run("mailbox", "add", "x@b.example", "--password-stdin", PASSWORD),
            "Got unexpected extra argument", code=2)
    refused(run("mailbox", "add", "x@b.example"), "Missing option '--password-stdin'", code=2)
    assert counts(session_factory) == before
    made = as_json(run("mailbox", "add", "x@b.example", "--password-stdin", "--quota", "1.5G",
                       "--json", stdin=PASSWORD + "\r\n"))
    assert made["quota"] == int(1.5 * GiB)
    assert verify_mailbox_password(PASSWORD, mailbox(session_factory, "x@b.example").password_hash)


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_refusals_leave_the_database_unchanged(run: Run, world: None, session_factory: t.Any,
                                               json_flag: tuple[str, ...]) -> None:
    def expect(result: Result, message: str, code: str) -> None:
        if json_flag:
            refused_json(result, message, code)
        else:
            refused(result, message)

    ok(run("--as", "alice", "domain", "add", "x.example"))
    for name in ("one", "two", "three"):
        ok(run("--as", "alice", "mailbox", "add", f"{name}@x.example", "--password-stdin",
               stdin=PASSWORD + "\n"))
    ok(run("--as", "alice", "forwarder", "add", "a@x.example", "b@x.example"))
    ok(run("--as", "alice", "forwarder", "add", "b@x.example", "c@x.example"))
    before = counts(session_factory)

    expect(run("--as", "alice", "mailbox", "add", "four@x.example", "--password-stdin", *json_flag,
               stdin=PASSWORD + "\n"), "Package allows 3 mailboxes; you have 3", "limit_reached")
    expect(run("--as", "alice", "mailbox", "set", "one@x.example", "--smtp", *json_flag),
           "does not include SMTP", "limit_reached")
    expect(run("--as", "alice", "mailbox", "set", "one@x.example", "--quota", "3G", *json_flag),
           "at most 2 GiB per mailbox", "limit_reached")
    expect(run("--as", "alice", "mailbox", "add", "a:b@x.example", "--password-stdin", *json_flag,
               stdin=PASSWORD + "\n"), "passwd-file", "invalid_name")
    expect(run("--as", "alice", "mailbox", "add", "a\nb@x.example", "--password-stdin", *json_flag,
               stdin=PASSWORD + "\n"), "control characters are never accepted", "invalid_name")
    expect(run("--as", "alice", "forwarder", "add", "a:b@x.example", "c@x.example", *json_flag),
           "passwd-file", "invalid_name")
    expect(run("--as", "alice", "mailbox", "add", "One@x.example", "--password-stdin", *json_flag,
               stdin=PASSWORD + "\n"), "The mailbox one@x.example exists already.", "conflict")
    expect(run("--as", "alice", "mailbox", "passwd", "one@x.example", "--password-stdin",
               *json_flag, stdin="one@x.example\n"), "The password may not contain",
           "weak_password")
    expect(run("--as", "alice", "forwarder", "add", "c@x.example", "a@x.example", *json_flag),
           "That would make a forwarding loop: c@x.example → a@x.example → b@x.example → "
           "c@x.example.", "conflict")
    expect(run("--as", "alice", "forwarder", "add", "d@x.example", "e@remote.example", *json_flag),
           "Package allows 2 forwarders; you have 2", "limit_reached")
    assert counts(session_factory) == before


def test_hostile_name_message_is_the_services(run: Run, world: None) -> None:
    ok(run("domain", "add", "x.example", "--customer", "bert"))
    plain = refused(run("mailbox", "add", "a\nb@x.example", "--password-stdin",
                        stdin=PASSWORD + "\n"), "Error: ")
    error = refused_json(run("mailbox", "add", "a\nb@x.example", "--password-stdin", "--json",
                             stdin=PASSWORD + "\n"), "", "invalid_name")
    assert error["message"] in plain.output
    assert error["field"] == "address"


# --- forwarders -------------------------------------------------------------------------------


def test_forwarder_commands(run: Run, world: None, session_factory: t.Any) -> None:
    ok(run("domain", "add", "bücher.example", "--customer", "bert"))
    ok(run("mailbox", "add", "info@bücher.example", "--password-stdin", stdin=PASSWORD + "\n"))
    made = ok(run("forwarder", "add", "sales@bücher.example", "Anna@Remote.example",
                  "info@bücher.example"))
    assert made.output == (
        "sales@bücher.example forwards to anna@remote.example, info@bücher.example.\n"
    )
    data = as_json(run("forwarder", "add", "info@bücher.example", "x+tag@remote.example",
                       "--keep-copy", "--json"))
    assert data == {"id": data["id"], "address": "info@xn--bcher-kva.example",
                    "unicode_address": "info@bücher.example",
                    "destinations": ["x+tag@remote.example"], "keep_copy": True}
    refused(run("forwarder", "add", "other@bücher.example", "y@remote.example", "--keep-copy"),
            "Only a mailbox can keep a copy")
    refused(run("forwarder", "add", "other@bücher.example"), "Missing argument 'DEST...'", code=2)

    listing = ok(run("forwarder", "list")).output.splitlines()
    assert listing[0].split() == ["ADDRESS", "DESTINATIONS", "KEEP", "COPY"]
    assert listing[2].split() == ["info@bücher.example", "x+tag@remote.example", "yes"]
    assert listing[3].split() == ["sales@bücher.example", "anna@remote.example,",
                                  "info@bücher.example", "-"]
    page = as_json(run("forwarder", "list", "--json", "--domain", "bücher.example",
                       "--search", "s"))
    assert page["total"] == 1
    assert page["items"][0]["is_mailbox"] is False
    assert page["items"][0]["destinations"] == ["anna@remote.example", "info@bücher.example"]
    second = as_json(run("forwarder", "list", "--json", "--page", "2", "--per-page", "1"))
    assert [f["address"] for f in second["items"]] == ["sales@xn--bcher-kva.example"]

    assert ok(run("forwarder", "remove", "sales@bücher.example")).output == (
        "Removed forwarder sales@bücher.example.\n"
    )
    removed = as_json(run("forwarder", "remove", "info@xn--bcher-kva.example", "--json"))
    assert removed["unicode_address"] == "info@bücher.example"
    refused_json(run("forwarder", "remove", "info@bücher.example", "--json"),
                 "There is no forwarder", "not_found")
    assert ok(run("forwarder", "list")).output == "No forwarders.\n"
    assert counts(session_factory)[1:3] == (1, 0)


# --- who acts ---------------------------------------------------------------------------------


def test_as_limits_each_user_to_its_own_customers(run: Run, world: None,
                                                  session_factory: t.Any) -> None:
    ok(run("--as", "alice", "domain", "add", "alice.example"))
    ok(run("--as", "rita", "domain", "add", "bert.example", "--customer", "bert"))
    ok(run("--as", "rob", "domain", "add", "carl.example", "--customer", "carl"))
    for address in ("info@alice.example", "info@bert.example", "info@carl.example"):
        ok(run("mailbox", "add", address, "--password-stdin", stdin=PASSWORD + "\n"))
    before = counts(session_factory)

    # A customer cannot see or touch another customer's mailbox: it does not exist for it.
    refused(run("--as", "carl", "mailbox", "set", "info@alice.example", "--quota", "1G"),
            "There is no domain 'alice.example' in your account.")
    refused_json(run("--as", "carl", "mailbox", "remove", "info@alice.example", "--yes", "--json"),
                 "There is no domain", "not_found")
    refused(run("--as", "carl", "mailbox", "passwd", "info@alice.example", "--password-stdin",
                stdin="Some-0ther-Pass-99\n"), "There is no domain")
    refused(run("--as", "carl", "forwarder", "add", "info@alice.example", "me@carl.example"),
            "There is no domain")
    refused(run("--as", "carl", "domain", "add", "new.example", "--customer", "alice"),
            "There is no customer 'alice'.")
    refused(run("--as", "alice", "domain", "catchall", "carl.example", "--discard"),
            "There is no domain")
    refused(run("--as", "alice", "mailbox", "list", "--domain", "carl.example"),
            "There is no domain")
    # A reseller manages its own customers only.
    refused(run("--as", "rob", "mailbox", "suspend", "info@alice.example", "--login"),
            "There is no domain")
    refused(run("--as", "rob", "domain", "add", "new.example", "--customer", "bert"),
            "There is no customer 'bert'.")
    assert counts(session_factory) == before

    def addresses(*who: str) -> list[str]:
        page = as_json(run(*who, "mailbox", "list", "--json"))
        return [m["address"] for m in page["items"]]

    assert addresses("--as", "alice") == ["info@alice.example"]
    assert addresses("--as", "carl") == ["info@carl.example"]
    assert addresses("--as", "rita") == ["info@alice.example", "info@bert.example"]
    assert addresses("--as", "rob") == ["info@carl.example"]
    # Without --as: the machine's operator, with server-admin rights over everyone.
    assert addresses() == ["info@alice.example", "info@bert.example", "info@carl.example"]
    domains_seen = as_json(run("--as", "rita", "domain", "list", "--json"))["items"]
    assert [d["owner"] for d in domains_seen] == ["alice", "bert"]

    ok(run("--as", "rita", "mailbox", "set", "info@alice.example", "--no-pop3"))
    ok(run("mailbox", "suspend", "info@carl.example", "--incoming"))
    with session_factory() as s:
        events = s.execute(
            select(AuditEvent.actor, AuditEvent.channel, AuditEvent.action)
            .order_by(AuditEvent.id.desc()).limit(2)
        ).all()
    assert [tuple(e) for e in events] == [("operator", "cli", "mailbox.suspension"),
                                          ("rita", "cli", "mailbox.update")]

    refused(run("--as", "ghost", "mailbox", "list"), "--as: there is no panel user 'ghost'.")
    refused_json(run("--as", "ghost", "mailbox", "list", "--json"), "there is no panel user",
                 "not_found")
