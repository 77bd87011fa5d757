"""A domain belongs to whoever proves it: deny list, other tenants' domains, verification."""

from __future__ import annotations

import datetime as dt
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.domain_policy import (
    DEFAULT_ENTRIES,
    denied_by,
    format_deny_list,
    parse_deny_list,
    reserved_by_renderer,
)
from mailadmin.errors import Conflict, MailadminError, PermissionDenied, ValidationError
from mailadmin.lab.sandbox import sandbox_settings
from mailadmin.mailstack import build_snapshot
from mailadmin.models import AuditEvent, Domain, PanelUser
from mailadmin.names import DISCARD_DOMAIN, RESERVED_DOMAINS
from mailadmin.services import domain_ownership, domains, mailboxes
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings
from mailadmin.workers import domain_checker

from .dnsserver import LocalDns

PASSWORD = "Tr0ub4dor&3-horse"


# --------------------------------------------------------------------------- the list itself


@pytest.mark.parametrize("name", [
    "gmail.com", "mail.gmail.com", "googlemail.com", "outlook.com", "outlook.de", "hotmail.co.uk",
    "live.com", "msn.com", "yahoo.com", "yahoo.co.jp", "aol.com", "icloud.com", "me.com",
    "gmx.de", "gmx.net", "gmx.at", "mx.gmx.ch", "web.de", "yandex.ru", "yandex.com.tr",
    "mail.ru", "proton.me", "protonmail.com", "zoho.com", "qq.com", "163.com",
    "foo.invalid", "a.b.localhost", "printer.local", "x.onion", "1.0.0.127.in-addr.arpa",
    "router.home.arpa", "x.alt", "corp.internal",
])
def test_default_list_refuses(name: str) -> None:
    assert denied_by(name, DEFAULT_ENTRIES) is not None


@pytest.mark.parametrize("name", [
    "example.com", "shop.example", "lab.test", "gmailcom.de", "notgmail.com", "gmx.mycompany.de",
    "mygmx.de", "web.dev", "yandexfan.ru", "local.de", "invalid.example.org", "me.company.com",
])
def test_default_list_allows(name: str) -> None:
    assert denied_by(name, DEFAULT_ENTRIES) is None


def test_entries_normalise_and_round_trip() -> None:
    entries = parse_deny_list("  Gmail.COM # big one\n.Invalid, gmx.*\nbücher.de\n\n")
    assert format_deny_list(entries) == "gmail.com\n.invalid\ngmx.*\nxn--bcher-kva.de\n"
    assert parse_deny_list(format_deny_list(entries)) == entries


@pytest.mark.parametrize("bad", ["gm*il.com", "*.gmail.com", "exa mple..com", "x_y.com", "-a.de",
                                 "a.b.c:d", "ex\x07ample.com"])
def test_bad_entries_are_refused_with_their_line(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_deny_list(f"gmail.com\n{bad}")
    assert "Line 2" in info.value.message or "Line 3" in info.value.message


def test_renderer_names_are_reserved() -> None:
    """The service refuses every name the renderer refuses (one list), and the names below."""
    for name in RESERVED_DOMAINS:
        assert reserved_by_renderer(name) and reserved_by_renderer(f"x.{name}")
    assert DISCARD_DOMAIN in RESERVED_DOMAINS
    assert not reserved_by_renderer("mailadmin.example")


# --------------------------------------------------------------------------- the service


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any) -> dict[str, Actor]:
    make_user("rita", "reseller")
    make_user("rob", "reseller")
    make_user("alice", "customer", reseller="rita")
    make_user("bert", "customer", reseller="rita")
    make_user("carl", "customer", reseller="rob")
    actors = {}
    with session_factory() as s:
        for name in ("rita", "rob", "alice", "bert", "carl"):
            user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
            actors[name] = Actor.for_user(user, channel="panel", source="127.0.0.1")
    actors["operator"] = Actor.operator()
    return actors


def run(factory: sessionmaker[Session], fn: t.Callable[..., t.Any], *args: t.Any,
        **kw: t.Any) -> t.Any:
    with transaction(factory) as s:
        return fn(s, *args, **kw)


def snapshot_counts(factory: sessionmaker[Session]) -> tuple[int, int]:
    with factory() as s:
        return (s.scalar(select(func.count()).select_from(Domain)) or 0,
                s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def set_settings(factory: sessionmaker[Session], **values: t.Any) -> None:
    with transaction(factory) as s:
        row = get_server_settings(s)
        for key, value in values.items():
            setattr(row, key, value)


def refused(factory: sessionmaker[Session], kind: type[MailadminError], fn: t.Callable[..., t.Any],
            *args: t.Any, **kw: t.Any) -> str:
    """Run a service call that must fail with `kind`; nothing may change."""
    before = snapshot_counts(factory)
    with pytest.raises(kind) as info:
        run(factory, fn, *args, **kw)
    assert snapshot_counts(factory) == before
    return info.value.message


def test_customer_cannot_take_a_subdomain_or_parent_of_another_customers_domain(
        world: dict[str, Actor], session_factory: sessionmaker[Session]) -> None:
    run(session_factory, domains.add_domain, world["alice"], "alice-shop.example")
    message = refused(session_factory, Conflict, domains.add_domain, world["carl"],
                      "mail.alice-shop.example")
    assert "below alice-shop.example" in message and "another customer" in message
    # another customer of the same reseller is another customer too
    refused(session_factory, Conflict, domains.add_domain, world["bert"], "a.b.alice-shop.example")
    # and so is a reseller adding it for one of its customers
    refused(session_factory, Conflict, domains.add_domain, world["rob"], "x.alice-shop.example",
            customer="carl")
    # the parent of another customer's domain
    run(session_factory, domains.add_domain, world["carl"], "deep.sub.carl.example")
    message = refused(session_factory, Conflict, domains.add_domain, world["alice"], "carl.example")
    assert "above deep.sub.carl.example" in message
    # the owner itself may add its own subdomains; the server admin may add anything
    run(session_factory, domains.add_domain, world["alice"], "lists.alice-shop.example")
    run(session_factory, domains.add_domain, world["operator"], "x.alice-shop.example",
        customer="carl")
    # a look-alike is not a subdomain
    run(session_factory, domains.add_domain, world["carl"], "xalice-shop.example")


@pytest.mark.parametrize("name", ["gmail.com", "support.gmail.com", "gmx.de", "Outlook.COM",
                                  "yahoo.co.uk", "qq.com"])
def test_deny_listed_domains_are_refused_for_customers_and_resellers(
        world: dict[str, Actor], session_factory: sessionmaker[Session], name: str) -> None:
    message = refused(session_factory, ValidationError, domains.add_domain, world["alice"], name)
    assert "cannot be added here" in message
    refused(session_factory, ValidationError, domains.add_domain, world["rita"], name,
            customer="alice")


@pytest.mark.parametrize("name", ["printer.local", "x.invalid", "my.localhost", "x.onion",
                                  "1.168.192.in-addr.arpa", "co.uk", "com.br"])
def test_special_use_and_registry_names_are_refused(
        world: dict[str, Actor], session_factory: sessionmaker[Session], name: str) -> None:
    message = refused(session_factory, ValidationError, domains.add_domain, world["alice"], name)
    assert "cannot" in message or "registry" in message


def test_admin_may_add_listed_names_but_never_the_renderers_own(
        world: dict[str, Actor], session_factory: sessionmaker[Session]) -> None:
    run(session_factory, domains.add_domain, world["operator"], "gmail.com", customer="alice")
    message = refused(session_factory, ValidationError, domains.add_domain, world["operator"],
                      DISCARD_DOMAIN, customer="alice")
    assert "reserved" in message
    refused(session_factory, ValidationError, domains.add_domain, world["operator"],
            f"x.{DISCARD_DOMAIN}", customer="alice")


def test_admins_own_list_replaces_the_shipped_one(
        world: dict[str, Actor], session_factory: sessionmaker[Session]) -> None:
    set_settings(session_factory, domain_deny_list="test\nrival.example\n")
    refused(session_factory, ValidationError, domains.add_domain, world["alice"], "lab.test")
    refused(session_factory, ValidationError, domains.add_domain, world["alice"],
            "www.rival.example")
    # the shipped list no longer applies, the renderer's names always do
    run(session_factory, domains.add_domain, world["alice"], "gmail.com")
    refused(session_factory, ValidationError, domains.add_domain, world["operator"],
            DISCARD_DOMAIN, customer="alice")


def test_lab_names_stay_allowed_by_default(world: dict[str, Actor],
                                          session_factory: sessionmaker[Session]) -> None:
    run(session_factory, domains.add_domain, world["alice"], "lab.test")
    run(session_factory, domains.add_domain, world["alice"], "shop.example")


def _pending(factory: sessionmaker[Session], name: str) -> bool:
    with factory() as s:
        return s.scalars(select(Domain).where(Domain.name == name)).one().pending


def _snapshot_domains(factory: sessionmaker[Session], tmp_path: Path) -> set[str]:
    with factory() as s:
        snap = build_snapshot(s, sandbox_settings(tmp_path / "sb"))
    return {d.name for d in snap.domains} | {m.domain for m in snap.mailboxes}


def test_mode_none_keeps_domains_active(world: dict[str, Actor],
                                       session_factory: sessionmaker[Session],
                                       tmp_path: Path) -> None:
    run(session_factory, domains.add_domain, world["alice"], "alice.example")
    assert not _pending(session_factory, "alice.example")
    assert _snapshot_domains(session_factory, tmp_path) == {"alice.example"}


def test_admin_mode_reseller_or_admin_approves(world: dict[str, Actor],
                                              session_factory: sessionmaker[Session],
                                              tmp_path: Path) -> None:
    set_settings(session_factory, domain_verification="admin")
    run(session_factory, domains.add_domain, world["alice"], "alice.example")
    run(session_factory, mailboxes.create_mailbox, world["alice"], "anna@alice.example", PASSWORD)
    assert _pending(session_factory, "alice.example")
    assert _snapshot_domains(session_factory, tmp_path) == set()
    status = run(session_factory, domain_ownership.verify_domain, world["alice"], "alice.example")
    assert status.pending and "approve" in status.instructions
    # the customer cannot approve itself, another reseller cannot even see it
    refused(session_factory, PermissionDenied, domain_ownership.approve_domain, world["alice"],
            "alice.example")
    with pytest.raises(MailadminError):
        run(session_factory, domain_ownership.approve_domain, world["rob"], "alice.example")
    run(session_factory, domain_ownership.approve_domain, world["rita"], "alice.example")
    assert not _pending(session_factory, "alice.example")
    assert _snapshot_domains(session_factory, tmp_path) == {"alice.example"}
    # a reseller's own additions need no second approval
    run(session_factory, domains.add_domain, world["rita"], "bert.example", customer="bert")
    assert not _pending(session_factory, "bert.example")
    with session_factory() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(
            AuditEvent.action == "domain.verified")))
    assert actions == ["domain.verified"]


def test_in_dns_mode_a_reseller_cannot_approve(world: dict[str, Actor],
                                               session_factory: sessionmaker[Session]) -> None:
    set_settings(session_factory, domain_verification="dns", dns_resolvers="127.0.0.1:9")
    run(session_factory, domains.add_domain, world["alice"], "alice.example")
    refused(session_factory, PermissionDenied, domain_ownership.approve_domain, world["rita"],
            "alice.example")
    run(session_factory, domain_ownership.approve_domain, world["operator"], "alice.example")
    assert not _pending(session_factory, "alice.example")


@pytest.fixture
def dns(tmp_path: Path) -> Iterator[LocalDns]:
    server = LocalDns(tmp_path, zones=("test", "example"))
    server.serve()
    yield server
    server.stop()


def test_dns_mode_pending_until_the_token_is_served(
        world: dict[str, Actor], session_factory: sessionmaker[Session], dns: LocalDns,
        tmp_path: Path) -> None:
    set_settings(session_factory, domain_verification="dns", dns_resolvers=dns.resolver,
                 mail_hostname="mx.hoster.test")
    run(session_factory, domains.add_domain, world["alice"], "alice.test")
    run(session_factory, mailboxes.create_mailbox, world["alice"], "anna@alice.test", PASSWORD)
    status = run(session_factory, domain_ownership.verification_for, world["alice"], "alice.test")
    assert status.pending and status.token and status.token in status.instructions
    assert "_mailadmin-challenge.alice.test" in status.instructions
    assert _snapshot_domains(session_factory, tmp_path) == set()

    # nothing published yet; then a wrong token; then another customer's token
    status = run(session_factory, domain_ownership.verify_domain, world["alice"], "alice.test",
                 timeout=3)
    assert status.pending and "there is none" in (status.note or "")
    dns.serve(txt={"_mailadmin-challenge.alice.test": ["mailadmin-0000"]})
    status = run(session_factory, domain_ownership.verify_domain, world["alice"], "alice.test",
                 timeout=3)
    assert status.pending and "mailadmin-0000" in (status.note or "")
    assert _snapshot_domains(session_factory, tmp_path) == set()

    dns.serve(txt={"_mailadmin-challenge.alice.test": ["unrelated", status.token]})
    status = run(session_factory, domain_ownership.verify_domain, world["alice"], "alice.test",
                 timeout=3)
    assert not status.pending and "TXT" in (status.note or "")
    assert _snapshot_domains(session_factory, tmp_path) == {"alice.test"}


def test_dns_mode_mx_pointing_here_proves_it_and_the_loop_rechecks(
        world: dict[str, Actor], session_factory: sessionmaker[Session], dns: LocalDns) -> None:
    set_settings(session_factory, domain_verification="dns", dns_resolvers=dns.resolver,
                 mail_hostname="mx.hoster.test")
    run(session_factory, domains.add_domain, world["alice"], "alice.test")
    run(session_factory, domains.add_domain, world["carl"], "carl.example")
    now = dt.datetime.now(dt.UTC)
    assert domain_checker.recheck_pending(session_factory, now=now, timeout=3) == []
    dns.serve(mx={"alice.test": ["mx.elsewhere.test"], "carl.example": ["mx.hoster.test"]})
    # checked a moment ago: not again before the interval has passed
    assert domain_checker.recheck_pending(session_factory, now=now, timeout=3) == []
    later = now + dt.timedelta(seconds=domain_ownership.RECHECK_SECONDS + 1)
    assert domain_checker.recheck_pending(session_factory, now=later,
                                            timeout=3) == ["carl.example"]
    assert _pending(session_factory, "alice.test")
    with session_factory() as s:
        note = s.scalars(select(Domain.verification_note)
                         .where(Domain.name == "alice.test")).one()
    assert "no MX record pointing at mx.hoster.test" in (note or "")


def test_dead_resolver_keeps_pending_and_says_so(
        world: dict[str, Actor], session_factory: sessionmaker[Session]) -> None:
    set_settings(session_factory, domain_verification="dns", dns_resolvers="127.0.0.1:9")
    run(session_factory, domains.add_domain, world["alice"], "alice.test")
    status = run(session_factory, domain_ownership.verify_domain, world["alice"], "alice.test",
                 timeout=1)
    assert status.pending and "did not answer" in (status.note or "")


def test_other_tenants_cannot_verify_or_see_a_pending_domain(
        world: dict[str, Actor], session_factory: sessionmaker[Session]) -> None:
    set_settings(session_factory, domain_verification="dns", dns_resolvers="127.0.0.1:9")
    run(session_factory, domains.add_domain, world["alice"], "alice.test")
    for who in ("carl", "rob", "bert"):
        with pytest.raises(MailadminError):
            run(session_factory, domain_ownership.verification_for, world[who], "alice.test")
        with pytest.raises(MailadminError):
            run(session_factory, domain_ownership.verify_domain, world[who], "alice.test")


def test_sql_views_leave_pending_domains_out(
        world: dict[str, Actor], session_factory: sessionmaker[Session]) -> None:
    set_settings(session_factory, domain_verification="dns", dns_resolvers="127.0.0.1:9")
    run(session_factory, domains.add_domain, world["alice"], "alice.test")
    run(session_factory, mailboxes.create_mailbox, world["alice"], "anna@alice.test", PASSWORD)
    with session_factory() as s:
        def views() -> tuple[int, ...]:
            return tuple(
                s.scalar(text(f"SELECT count(*) FROM {view} WHERE domain = 'alice.test'"))  # noqa: S608
                or 0
                for view in ("mailsrv_domains", "mailsrv_users", "mailsrv_addresses"))
        assert views() == (0, 0, 0)
    run(session_factory, domain_ownership.approve_domain, world["operator"], "alice.test")
    with session_factory() as s:
        assert views() == (1, 1, 1)


def test_resolver_explains_a_pending_domain(
        world: dict[str, Actor], session_factory: sessionmaker[Session]) -> None:
    from mailadmin.services.resolver import resolve_address

    set_settings(session_factory, domain_verification="admin")
    run(session_factory, domains.add_domain, world["alice"], "alice.test")
    run(session_factory, mailboxes.create_mailbox, world["alice"], "anna@alice.test", PASSWORD)
    answer = run(session_factory, resolve_address, world["alice"], "anna@alice.test")
    assert answer.kind == "pending" and not answer.accepted


def test_domains_from_before_verification_count_as_verified(tmp_path: Path) -> None:
    """The migration marks existing rows verified: upgrading changes nothing that works."""
    from mailadmin import migrate
    from mailadmin.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        migrate.upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO panel_users (id, username, role, password_hash, is_suspended, "
                "created_at) VALUES (1, 'alice', 'customer', 'x', 0, '2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO domains (id, name, owner_id, default_imap, default_pop3, "
                "default_smtp, catchall_action, allow_self_forwarding, allow_self_autoresponder,"
                " created_at) VALUES (1, 'old.example', 1, 1, 1, 1, 'reject', 1, 1, "
                "'2026-01-01 00:00:00')"))
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pending FROM domains")).scalar() in (0, False)
            assert conn.execute(text("SELECT verified_at FROM domains")).scalar() is not None
            assert conn.execute(text("SELECT domain FROM mailsrv_domains")).scalar() == \
                "old.example"
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- panel and API


def test_panel_shows_refusals_and_what_to_do(app: t.Any, client: t.Any,
                                             world: dict[str, Actor],
                                             session_factory: sessionmaker[Session],
                                             dns: LocalDns) -> None:
    from .web import sign_in, submit

    set_settings(session_factory, domain_verification="dns", dns_resolvers=dns.resolver,
                 mail_hostname="mx.hoster.test")
    run(session_factory, domains.add_domain, world["carl"], "carl.test")
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    before = snapshot_counts(session_factory)
    for name, words in (("gmail.com", "cannot be added here"),
                        ("www.carl.test", "another customer hosts"),
                        ("x.localhost", "can never receive mail")):
        response = submit(client, "/domains/", {"name": name})
        assert response.status_code == 422
        assert words in response.get_data(as_text=True)
    assert snapshot_counts(session_factory) == before

    added = submit(client, "/domains/", {"name": "alice.test"}, follow=True)
    page = added.get_data(as_text=True)
    assert "waiting for verification" in page.lower()
    with session_factory() as s:
        token = s.scalars(select(Domain.verification_token)
                          .where(Domain.name == "alice.test")).one()
    assert token and token in page and "_mailadmin-challenge.alice.test" in page
    assert "Approve without proof" not in page  # a customer cannot approve itself

    checked = submit(client, "/domains/alice.test/verify", {}, page="/domains/alice.test",
                     follow=True)
    assert "Not verified yet" in checked.get_data(as_text=True)
    assert _pending(session_factory, "alice.test")
    dns.serve(txt={"_mailadmin-challenge.alice.test": [token]})
    checked = submit(client, "/domains/alice.test/verify", {}, page="/domains/alice.test",
                     follow=True)
    assert "is verified" in checked.get_data(as_text=True)
    assert not _pending(session_factory, "alice.test")
    listing = client.get("/domains/").get_data(as_text=True)
    assert 'data-testid="pending"' not in listing


def test_api_refuses_and_reports_verification(app: t.Any, world: dict[str, Actor],
                                              session_factory: sessionmaker[Session]) -> None:
    from mailadmin.services import tokens

    set_settings(session_factory, domain_verification="admin")
    with transaction(session_factory) as s:
        _, alice = tokens.create_api_token(s, world["alice"], "t", None)
        _, rita = tokens.create_api_token(s, world["rita"], "t", None)
    api = app.test_client()

    def call(method: str, path: str, token: str, body: t.Any = None) -> t.Any:
        return api.open(f"/api/v1{path}", method=method, json=body,
                         headers={"Authorization": f"Bearer {token}"})

    refused_call = call("POST", "/domains", alice, {"name": "mail.yahoo.co.jp"})
    assert refused_call.status_code in (409, 422)
    assert "cannot be added here" in refused_call.get_json()["error"]["message"]
    created = call("POST", "/domains", alice, {"name": "alice.test"})
    assert created.status_code == 201
    assert created.get_json()["pending"] is True
    assert "approve" in created.get_json()["verification"]["instructions"]
    listed = call("GET", "/domains", alice).get_json()
    assert listed["items"][0]["pending"] is True
    assert call("POST", "/domains/alice.test/approve", alice).status_code == 403
    approved = call("POST", "/domains/alice.test/approve", rita)
    assert approved.status_code == 200 and approved.get_json()["pending"] is False
    assert call("GET", "/domains/alice.test", alice).get_json()["pending"] is False


def test_the_watcher_loop_verifies_pending_domains(
        world: dict[str, Actor], session_factory: sessionmaker[Session], dns: LocalDns) -> None:
    """The panel's background loop (workers.apply_watcher.watch) re-checks by itself."""
    import threading

    from mailadmin.workers import apply_watcher

    set_settings(session_factory, domain_verification="dns", dns_resolvers=dns.resolver,
                 mail_hostname="mx.hoster.test")
    run(session_factory, domains.add_domain, world["alice"], "alice.test")
    dns.serve(mx={"alice.test": ["mx.hoster.test"]})
    stop = threading.Event()
    watcher = threading.Thread(target=apply_watcher.watch, args=(session_factory,), kwargs={
        "interval": 0.05, "only_when_automatic": True, "stop": stop, "recheck_seconds": 0.1})
    watcher.start()
    try:
        # The test's sessions share one connection (savepoints): asking the database from
        # this thread while the watcher works on it would race, so let it loop for a while
        # (a re-check every 0.1 s) and look once it has stopped.
        stop.wait(5)
    finally:
        stop.set()
        watcher.join(10)
    assert not watcher.is_alive()
    assert not _pending(session_factory, "alice.test")
    with session_factory() as s:
        changed = get_server_settings(s).config_changed_at
    assert changed is not None  # the verification is a change the next apply picks up


def test_cli_refuses_and_verifies(world: dict[str, Actor], session_factory: sessionmaker[Session],
                                  sqlite_engine: t.Any, tmp_path: Path, dns: LocalDns,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from mailadmin.cli import main

    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))

    def cli(*args: str) -> t.Any:
        return CliRunner().invoke(main, ["--instance", str(tmp_path / "inst"), *args])

    set_settings(session_factory, domain_verification="dns", dns_resolvers=dns.resolver,
                 mail_hostname="mx.hoster.test")
    before = snapshot_counts(session_factory)
    refused_add = cli("--as", "alice", "domain", "add", "hotmail.fr")
    assert refused_add.exit_code != 0 and "cannot be added here" in refused_add.output
    assert snapshot_counts(session_factory) == before

    added = cli("--as", "alice", "domain", "add", "alice.test")
    assert added.exit_code == 0, added.output
    assert "waiting for verification" in added.output
    assert "_mailadmin-challenge.alice.test" in added.output
    listed = cli("--as", "alice", "domain", "list")
    assert "alice.test (pending)" in listed.output
    still = cli("--as", "alice", "domain", "verify", "alice.test")
    assert still.exit_code == 1 and "waiting for verification" in still.output
    assert cli("--as", "alice", "domain", "approve", "alice.test").exit_code != 0
    with session_factory() as s:
        token = s.scalars(select(Domain.verification_token)
                          .where(Domain.name == "alice.test")).one()
    dns.serve(txt={"_mailadmin-challenge.alice.test": [token or ""]})
    done = cli("--as", "alice", "domain", "verify", "alice.test", "--json")
    assert done.exit_code == 0, done.output
    assert '"pending": false' in done.output


def test_sql_views_leave_pending_domains_out_on_every_backend(
    backend_session_factory: t.Any,
) -> None:
    """The SQL-mode views on SQLite, PostgreSQL and MariaDB skip a pending domain entirely."""
    from mailadmin.models import Role
    from mailadmin.services import accounts, forwarders

    factory = backend_session_factory
    op = Actor.operator()
    with transaction(factory) as s:
        accounts.create_panel_user(s, op, "alice", "correct horse 9", Role.CUSTOMER)
        get_server_settings(s).domain_verification = "admin"
    with factory() as s:
        alice = Actor.for_user(s.scalars(select(PanelUser)
                                         .where(PanelUser.username == "alice")).one(), "panel")
    with transaction(factory) as s:
        domains.add_domain(s, alice, "alice.test")
        domains.set_catchall(s, alice, "alice.test", "discard")
        mailboxes.create_mailbox(s, alice, "anna@alice.test", PASSWORD)
        forwarders.set_forwarder(s, alice, "team@alice.test", ["anna@alice.test"])
    views = ("mailsrv_domains", "mailsrv_users", "mailsrv_addresses", "mailsrv_aliases")

    def counts() -> tuple[int, ...]:
        with factory() as conn:
            return tuple(
                conn.execute(text(f"SELECT count(*) FROM {view} "  # noqa: S608
                                  "WHERE domain = 'alice.test'")).scalar() or 0
                for view in views)

    assert counts() == (0, 0, 0, 0)
    with transaction(factory) as s:
        domain_ownership.approve_domain(s, op, "alice.test")
    assert counts()[:3] == (1, 1, 2) and counts()[3] >= 1


# --------------------------------------------------------------------------- settings


def test_settings_are_validated_and_switching_off_activates_pending(
        world: dict[str, Actor], session_factory: sessionmaker[Session]) -> None:
    from mailadmin.services import server_settings as settings_service

    op = world["operator"]
    for name, bad in (("domain_verification", "maybe"), ("dns_resolvers", "dns.google:53"),
                      ("dns_resolvers", "127.0.0.1:70000"), ("domain_deny_list", "gm*il.com"),
                      ("domain_deny_list", "ex;ample..com")):
        refused(session_factory, ValidationError, settings_service.set_setting, op, name, bad)
    run(session_factory, settings_service.set_setting, op, "dns_resolvers",
        " 127.0.0.1:5353, [::1]:53 192.0.2.1")
    run(session_factory, settings_service.set_setting, op, "domain_deny_list",
        "Rival.example\n.corp # internal\n")
    with session_factory() as s:
        row = get_server_settings(s)
        assert row.dns_resolvers == "127.0.0.1:5353 [::1]:53 192.0.2.1:53"
        assert row.domain_deny_list == "rival.example\n.corp\n"
    # the shipped list, entered back as the settings page shows it, is stored as "shipped"
    run(session_factory, settings_service.set_setting, op, "domain_deny_list", "default")
    with session_factory() as s:
        assert get_server_settings(s).domain_deny_list is None
    text_shown = settings_service.deny_list_text(None)
    assert "gmail.com" in text_shown and "gmx.*" in text_shown
    run(session_factory, settings_service.set_setting, op, "domain_deny_list", text_shown)
    with session_factory() as s:
        assert get_server_settings(s).domain_deny_list is None
    # a list without entries switches it off (the renderer's names stay refused)
    run(session_factory, settings_service.set_setting, op, "domain_deny_list", "# nothing\n")
    run(session_factory, domains.add_domain, world["alice"], "gmail.com")
    run(session_factory, settings_service.set_setting, op, "domain_deny_list", "")
    with session_factory() as s:
        assert get_server_settings(s).domain_deny_list is None
    # customers may not touch them
    refused(session_factory, PermissionDenied, settings_service.set_setting, world["alice"],
            "domain_verification", "none")

    run(session_factory, settings_service.set_setting, op, "domain_verification", "admin")
    run(session_factory, domains.add_domain, world["alice"], "alice.test")
    assert _pending(session_factory, "alice.test")
    run(session_factory, settings_service.set_setting, op, "domain_verification", "none")
    assert not _pending(session_factory, "alice.test")


def test_settings_page_round_trips_the_shipped_list(client: t.Any, make_user: t.Any,
                                                    session_factory: sessionmaker[Session]
                                                    ) -> None:
    import html
    import re

    from .web import csrf_token, sign_in

    make_user("boss", "admin")
    assert sign_in(client, "boss", "correct horse 9").status_code == 302
    page = client.get("/admin/settings").get_data(as_text=True)
    shown = html.unescape(re.search(r'<textarea[^>]*name="domain_deny_list"[^>]*>(.*?)</textarea>',
                                    page, re.S).group(1))  # type: ignore[union-attr]
    assert "gmail.com\n" in shown and ".invalid\n" in shown
    fields = dict(re.findall(r'<input class="form-control[^"]*" id="(\w+)" name="\w+" value="([^"]*)"',
                             page))
    fields = {k: html.unescape(v) for k, v in fields.items()}
    saved = client.post("/admin/settings", data={
        **fields, "domain_deny_list": shown, "domain_verification": "dns",
        "csrf_token": csrf_token(page)})
    assert saved.status_code == 302, saved.get_data(as_text=True)[:2000]
    with session_factory() as s:
        row = get_server_settings(s)
        assert row.domain_deny_list is None and row.domain_verification == "dns"
    bad = client.post("/admin/settings", data={
        **fields, "domain_deny_list": shown + "bad*name.com\n", "csrf_token": csrf_token(page)})
    assert bad.status_code == 422 and "only stand for the top-level domain" in \
        html.unescape(bad.get_data(as_text=True))


def test_the_servers_own_names_are_refused(world: dict[str, Actor],
                                           session_factory: sessionmaker[Session]) -> None:
    set_settings(session_factory, mail_hostname="mx1.hoster.example",
                 postmaster_address="postmaster@hoster-ops.example",
                 imap_host="imap.hoster.example")
    for name in ("mx1.hoster.example", "hoster.example", "a.imap.hoster.example",
                 "hoster-ops.example", "lists.hoster-ops.example"):
        message = refused(session_factory, ValidationError, domains.add_domain, world["alice"],
                          name)
        assert "this server's own name" in message
    run(session_factory, domains.add_domain, world["alice"], "other-hoster.example")
    run(session_factory, domains.add_domain, world["operator"], "hoster.example",
        customer="alice")


def test_diagnosis_names_a_pending_domain(world: dict[str, Actor],
                                          session_factory: sessionmaker[Session]) -> None:
    from mailadmin.diagnostics import classify
    from mailadmin.diagnostics.account import check_account

    set_settings(session_factory, domain_verification="admin")
    run(session_factory, domains.add_domain, world["alice"], "alice.test")
    run(session_factory, mailboxes.create_mailbox, world["alice"], "anna@alice.test", PASSWORD)
    login = "a001 NO [AUTHENTICATIONFAILED] Authentication failed."
    with session_factory() as s:
        logged_in = check_account(s, world["alice"], classify(login), address="anna@alice.test")
    assert any(c.cause == "domain_pending" for c in logged_in.checks), logged_in
    assert not any(c.cause == "password_wrong" for c in logged_in.checks)
