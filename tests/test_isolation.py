"""Tenant isolation: every rule here is attacked, and every attack must fail with nothing changed.

Two resellers (rita, rob), their customers (alice and bert under rita, carl under rob), each
with a package, a domain and a mailbox. Attacks go through the services, the panel (real forms,
real CSRF tokens, tampered URLs and ids) and the CLI with `--as`.
"""

from __future__ import annotations

import typing as t

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import LimitReached, NotFound, PermissionDenied
from mailadmin.models import AuditEvent, Package, PanelUser
from mailadmin.services import domains, mailboxes, packages, resellers
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec
from mailadmin.services.resellers import AllocationSpec

from .web import csrf_token, sign_in, submit

GiB = 1024**3
PASSWORD = "correct horse 9"
BOX_PASSWORD = "Tr0ub4dor&3-horse"
SPEC = PackageSpec(max_domains=2, max_mailboxes=5, max_forwarders=5,
                   max_quota_per_mailbox=GiB, max_total_quota=5 * GiB)
#: Tables whose content an attack must leave exactly as it was.
TENANT_TABLES = ("panel_users", "packages", "reseller_allocations", "domains", "mailboxes",
                 "forwarders", "forwarder_destinations", "api_tokens")


def run(factory: sessionmaker[Session], fn: t.Callable[..., t.Any], *args: t.Any,
        **kw: t.Any) -> t.Any:
    with transaction(factory) as s:
        return fn(s, *args, **kw)


def actor_of(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


def dump(factory: sessionmaker[Session]) -> dict[str, list[tuple[t.Any, ...]]]:
    """Every row of the tenant tables (sign-in times aside), to compare before and after."""
    with factory() as s:
        meta = MetaData()
        meta.reflect(bind=s.get_bind(), only=[n for n in TENANT_TABLES
                                              if n in _table_names(s)])
        out = {}
        for name, table in meta.tables.items():
            columns = [c for c in table.columns if c.name != "last_login_at"]
            out[name] = sorted(tuple(map(str, row)) for row in s.execute(select(*columns)))
        return out


def _table_names(session: Session) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(session.get_bind()).get_table_names())


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any) -> dict[str, t.Any]:
    make_user("root", "admin")
    admin = actor_of(session_factory, "root")
    ids: dict[str, t.Any] = {"admin": admin}
    for reseller, customers in (("rita", ("alice", "bert")), ("rob", ("carl",))):
        run(session_factory, resellers.create_reseller, admin, reseller, PASSWORD,
            AllocationSpec(max_customers=3, max_domains=6, max_mailboxes=15,
                           max_total_quota=15 * GiB))
        seller = actor_of(session_factory, reseller)
        package = run(session_factory, packages.create_package, seller, "Plan", SPEC)
        ids[f"{reseller}_package"] = package.id
        for name in customers:
            run(session_factory, resellers.create_customer, seller, name, PASSWORD,
                package_id=package.id)
            customer = actor_of(session_factory, name)
            run(session_factory, domains.add_domain, customer, f"{name}.example")
            run(session_factory, mailboxes.create_mailbox, customer, f"info@{name}.example",
                BOX_PASSWORD)
    for name in ("rita", "rob", "alice", "bert", "carl"):
        ids[name] = actor_of(session_factory, name)
    with session_factory() as s:
        ids["carl_id"] = s.scalars(select(PanelUser.id).where(PanelUser.username == "carl")).one()
    return ids


# --- services ---------------------------------------------------------------------------------


def test_customer_cannot_reach_another_customer(world: dict[str, t.Any],
                                                session_factory: t.Any) -> None:
    alice = world["alice"]
    before = dump(session_factory)
    for attempt in (
        lambda s: domains.set_catchall(s, alice, "carl.example", "discard"),
        lambda s: domains.remove_domain(s, alice, "bert.example"),
        lambda s: domains.add_domain(s, alice, "new.example", customer="carl"),
        lambda s: mailboxes.create_mailbox(s, alice, "x@carl.example", BOX_PASSWORD),
        lambda s: mailboxes.get_mailbox(s, alice, "info@bert.example"),
    ):
        with pytest.raises(NotFound), transaction(session_factory) as s:
            attempt(s)
    names = run(session_factory, domains.domain_names_for, alice)
    assert names == ["alice.example"]
    assert dump(session_factory) == before


def test_customer_cannot_use_reseller_services(world: dict[str, t.Any],
                                               session_factory: t.Any) -> None:
    alice = world["alice"]
    before = dump(session_factory)
    for attempt in (
        lambda s: resellers.list_customers(s, alice),
        lambda s: resellers.list_resellers(s, alice),
        lambda s: resellers.create_customer(s, alice, "eve", PASSWORD,
                                            package_id=world["rita_package"]),
        lambda s: resellers.set_customer_suspended(s, alice, "bert", True),
        lambda s: resellers.start_acting_as(s, alice, "bert"),
        lambda s: packages.list_packages(s, alice),
        lambda s: packages.get_package(s, alice, world["rita_package"]),
        lambda s: packages.create_package(s, alice, "Mine", PackageSpec()),
        lambda s: packages.assign_package(s, alice, "alice", world["rita_package"]),
        lambda s: resellers.set_allocation(s, alice, "rita", AllocationSpec()),
    ):
        with pytest.raises(PermissionDenied), transaction(session_factory) as s:
            attempt(s)
    assert dump(session_factory) == before


def test_reseller_cannot_reach_another_resellers_tenants(world: dict[str, t.Any],
                                                         session_factory: t.Any) -> None:
    rita, rob_package = world["rita"], world["rob_package"]
    before = dump(session_factory)
    for attempt in (
        lambda s: resellers.get_customer(s, rita, "carl"),
        lambda s: resellers.set_customer_suspended(s, rita, "carl", True),
        lambda s: resellers.delete_customer(s, rita, "carl"),
        lambda s: resellers.start_acting_as(s, rita, "carl"),
        lambda s: resellers.acting_actor(s, rita, world["carl_id"]),
        lambda s: packages.assign_package(s, rita, "carl", world["rita_package"]),
        lambda s: packages.assign_package(s, rita, "alice", rob_package),
        lambda s: packages.get_package(s, rita, rob_package),
        lambda s: packages.update_package(s, rita, rob_package, PackageSpec()),
        lambda s: packages.delete_package(s, rita, rob_package),
        lambda s: packages.find_package(s, rita, "Plan", owner="rob"),
        lambda s: resellers.create_customer(s, rita, "eve", PASSWORD, package_id=rob_package),
        lambda s: resellers.create_customer(s, rita, "eve", PASSWORD, package_name="Plan",
                                            reseller_name="rob"),
        lambda s: domains.set_catchall(s, rita, "carl.example", "discard"),
        lambda s: domains.add_domain(s, rita, "steal.example", customer="carl"),
        lambda s: mailboxes.get_mailbox(s, rita, "info@carl.example"),
        lambda s: mailboxes.create_mailbox(s, rita, "x@carl.example", BOX_PASSWORD),
    ):
        with pytest.raises(NotFound), transaction(session_factory) as s:
            attempt(s)
    with pytest.raises(PermissionDenied), transaction(session_factory) as s:
        resellers.list_resellers(s, rita)
    with pytest.raises(PermissionDenied), transaction(session_factory) as s:
        resellers.set_allocation(s, rita, "rita", AllocationSpec())
    assert [c.username for c in run(session_factory, resellers.list_customers, rita).items] == [
        "alice", "bert"]
    assert [p.owner for p in run(session_factory, packages.list_packages, rita)] == ["rita"]
    assert run(session_factory, domains.domain_names_for, rita) == ["alice.example",
                                                                    "bert.example"]
    assert dump(session_factory) == before


def test_acting_as_is_limited_to_that_customer(world: dict[str, t.Any],
                                               session_factory: t.Any) -> None:
    acting = run(session_factory, resellers.start_acting_as, world["rita"], "alice")
    before = dump(session_factory)
    for attempt in (
        lambda s: domains.add_domain(s, acting, "x.example", customer="bert"),
        lambda s: domains.set_catchall(s, acting, "bert.example", "discard"),
        lambda s: domains.set_catchall(s, acting, "carl.example", "discard"),
        lambda s: mailboxes.get_mailbox(s, acting, "info@bert.example"),
    ):
        with pytest.raises(NotFound), transaction(session_factory) as s:
            attempt(s)
    for attempt in (
        lambda s: resellers.list_customers(s, acting),
        lambda s: resellers.start_acting_as(s, acting, "bert"),
        lambda s: packages.assign_package(s, acting, "alice", world["rita_package"]),
    ):
        with pytest.raises(PermissionDenied), transaction(session_factory) as s:
            attempt(s)
    assert run(session_factory, domains.domain_names_for, acting) == ["alice.example"]
    assert dump(session_factory) == before
    with session_factory() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "customer.act_as")).one()
        assert (event.actor, event.acting_as, event.object_label) == ("rita", "alice", "alice")


def test_allocation_cannot_be_exceeded_in_any_order(world: dict[str, t.Any],
                                                    session_factory: t.Any) -> None:
    """rita: 3 customers, 6 domains, 15 mailboxes, 15 GiB; alice and bert hold 4/10/10 GiB."""
    rita = world["rita"]
    before = dump(session_factory)
    big = PackageSpec(max_domains=3, max_mailboxes=6, max_quota_per_mailbox=GiB,
                      max_total_quota=6 * GiB)
    # A bigger package is fine on its own ...
    run(session_factory, packages.create_package, rita, "Big", big)
    big_id = run(session_factory, packages.find_package, rita, "Big").id
    # ... but not for a third customer (6 + 3 domains > 6) ...
    with pytest.raises(LimitReached, match="allows 6 domains"):
        run(session_factory, resellers.create_customer, rita, "dora", PASSWORD,
            package_id=big_id)
    # ... nor for an existing one (4 - 2 + 3 > 6 is false, but 10 - 5 + 6 mailboxes ≤ 15, and
    # 10 - 5 + 6 GiB ≤ 15: allowed), then raising Plan for bert breaks it.
    run(session_factory, packages.assign_package, rita, "alice", big_id)
    with pytest.raises(LimitReached):
        run(session_factory, packages.update_package, rita, world["rita_package"],
            SPEC.replace(max_domains=4))
    with pytest.raises(LimitReached):
        run(session_factory, packages.update_package, rita, big_id,
            big.replace(max_mailboxes=11))
    after = dump(session_factory)
    assert after["panel_users"] != before["panel_users"]  # alice moved to Big, nothing else
    with session_factory() as s:
        assert s.scalars(select(Package.max_domains).where(
            Package.id == world["rita_package"])).one() == 2
        assert s.scalar(select(PanelUser.id).where(PanelUser.username == "dora")) is None


# --- panel ------------------------------------------------------------------------------------


@pytest.fixture
def web(app: t.Any, world: dict[str, t.Any]) -> t.Any:
    if "customers" not in app.blueprints:
        from panel.customers import bp as customers_bp
        from panel.packages import bp as packages_bp
        from panel.resellers import bp as resellers_bp

        for blueprint in (resellers_bp, customers_bp, packages_bp):
            app.register_blueprint(blueprint)
    return app


def client_for(app: t.Any, name: str) -> t.Any:
    client = app.test_client()
    assert sign_in(client, name, PASSWORD).status_code == 302
    return client


def token_of(client: t.Any) -> str:
    return csrf_token(client.get("/account/password").get_data(as_text=True))


def test_customer_gets_403_on_reseller_pages(web: t.Any, world: dict[str, t.Any],
                                             session_factory: t.Any) -> None:
    alice = client_for(web, "alice")
    before = dump(session_factory)
    token = token_of(alice)
    for url in ("/resellers/", "/resellers/rita", "/customers/", "/customers/bert",
                "/customers/alice", "/packages/", f"/packages/{world['rita_package']}"):
        assert alice.get(url).status_code in (403, 404), url
    posts = {
        "/resellers/": {"username": "eve", "password": "x" * 12},
        "/resellers/rita/suspension": {"suspend": "1"},
        "/customers/": {"username": "eve", "password": "x" * 12,
                        "package": world["rita_package"]},
        "/customers/bert/suspend": {}, "/customers/bert/delete": {"confirm": "bert"},
        "/customers/bert/act": {}, "/customers/alice/act": {},
        "/customers/alice/package": {"package": world["rita_package"]},
        "/packages/": {"name": "Mine", "default_quota": "1G"},
        f"/packages/{world['rita_package']}/delete": {},
    }
    for url, data in posts.items():
        response = alice.post(url, data={**data, "csrf_token": token})
        assert response.status_code in (403, 404), (url, response.status_code)
    assert dump(session_factory) == before


def test_reseller_url_tampering_is_not_found(web: t.Any, world: dict[str, t.Any],
                                             session_factory: t.Any) -> None:
    rita = client_for(web, "rita")
    before = dump(session_factory)
    token = token_of(rita)
    assert rita.get("/resellers/").status_code == 403
    assert rita.get("/resellers/rob").status_code == 403
    for url in ("/customers/carl", "/customers/rob", "/customers/root", "/customers/nobody",
                f"/packages/{world['rob_package']}", "/packages/99999", "/domains/carl.example",
                "/mailboxes/info@carl.example"):
        assert rita.get(url).status_code == 404, url
    for url, data in {
        "/customers/carl/suspend": {}, "/customers/carl/resume": {},
        "/customers/carl/delete": {"confirm": "carl"}, "/customers/carl/act": {},
        "/customers/carl/package": {"package": world["rita_package"]},
        f"/packages/{world['rob_package']}": {"name": "Mine", "default_quota": "1G"},
        f"/packages/{world['rob_package']}/delete": {},
    }.items():
        response = rita.post(url, data={**data, "csrf_token": token})
        assert response.status_code == 404, (url, response.status_code)
    # Another reseller's package id on one's own customer: refused beside the field.
    response = rita.post("/customers/alice/package",
                         data={"package": world["rob_package"], "csrf_token": token})
    assert response.status_code == 422
    assert "no such package" in response.get_data(as_text=True)
    response = rita.post("/customers/", data={"username": "eve", "password": "x" * 12 + "9",
                                              "package": world["rob_package"],
                                              "csrf_token": token})
    assert response.status_code == 422
    listing = rita.get("/customers/").get_data(as_text=True)
    assert 'data-customer="alice"' in listing and 'data-customer="carl"' not in listing
    assert "rob" not in rita.get("/packages/").get_data(as_text=True)
    assert dump(session_factory) == before


def test_forms_without_csrf_are_refused(web: t.Any, world: dict[str, t.Any],
                                        session_factory: t.Any) -> None:
    rita = client_for(web, "rita")
    before = dump(session_factory)
    for url in ("/customers/alice/suspend", "/customers/alice/act", "/packages/",
                f"/packages/{world['rita_package']}/delete", "/customers/-/acting/stop"):
        assert rita.post(url, data={"name": "x"}).status_code == 400, url
    assert dump(session_factory) == before


def test_acting_as_in_the_panel(web: t.Any, world: dict[str, t.Any],
                                session_factory: t.Any) -> None:
    rita = client_for(web, "rita")
    acted = submit(rita, "/customers/alice/act", {}, page="/customers/alice")
    assert acted.status_code == 302 and acted.location.endswith("/customers/-/acting")
    page = rita.get("/customers/-/acting").get_data(as_text=True)
    assert 'data-testid="acting-banner"' in page and "acting as customer" in page
    listing = rita.get("/domains/").get_data(as_text=True)
    assert "alice.example" in listing and "bert.example" not in listing
    assert rita.get("/domains/bert.example").status_code == 404
    assert rita.get("/domains/carl.example").status_code == 404
    # While acting, the reseller pages send the user back to the acting page.
    assert rita.get("/customers/").location.endswith("/customers/-/acting")
    assert rita.get("/packages/").location.endswith("/customers/-/acting")
    added = submit(rita, "/domains/", {"name": "shop.example"})
    assert added.status_code == 302
    back = submit(rita, "/customers/-/acting/stop", {}, page="/customers/-/acting")
    assert back.status_code == 302
    assert rita.get("/customers/").status_code == 200
    with session_factory() as s:
        events = s.execute(select(AuditEvent.action, AuditEvent.actor, AuditEvent.acting_as,
                                  AuditEvent.object_label)
                           .where(AuditEvent.action.in_(["customer.act_as", "domain.create",
                                                         "customer.act_as_end"]))
                           .where(AuditEvent.actor == "rita")
                           .order_by(AuditEvent.id)).all()
    assert events == [("customer.act_as", "rita", "alice", "alice"),
                      ("domain.create", "rita", "alice", "shop.example"),
                      ("customer.act_as_end", "rita", "alice", "alice")]


def test_acting_ends_when_the_customer_is_no_longer_the_resellers(
    web: t.Any, world: dict[str, t.Any], session_factory: t.Any
) -> None:
    rita = client_for(web, "rita")
    submit(rita, "/customers/alice/act", {}, page="/customers/alice")
    with transaction(session_factory) as s:
        s.scalars(select(PanelUser).where(PanelUser.username == "alice")).one().parent_id = (
            world["rob"].user_id)
    listing = rita.get("/domains/")
    # Back to rita's own rights: alice's domain is no longer hers to see.
    assert "alice.example" not in listing.get_data(as_text=True)


def test_suspended_customer_is_signed_out(web: t.Any, world: dict[str, t.Any]) -> None:
    alice = client_for(web, "alice")
    rita = client_for(web, "rita")
    assert submit(rita, "/customers/alice/suspend", {}, page="/customers/alice").status_code == 302
    assert alice.get("/domains/").status_code == 302  # to the sign-in page
    assert sign_in(web.test_client(), "alice", PASSWORD).status_code == 401


# --- command line -----------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: t.Any, sqlite_engine: t.Any, monkeypatch: pytest.MonkeyPatch) -> t.Any:
    from mailadmin.cli import main

    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()

    def _run(*args: str) -> t.Any:
        return runner.invoke(main, ["--instance", str(tmp_path / "inst"), *args])

    return _run


def test_cli_as_cannot_cross_tenants(cli: t.Any, world: dict[str, t.Any],
                                     session_factory: t.Any) -> None:
    before = dump(session_factory)
    refused = [
        ("--as", "alice", "customer", "list"),
        ("--as", "alice", "package", "list"),
        ("--as", "alice", "reseller", "list"),
        ("--as", "alice", "customer", "suspend", "bert"),
        ("--as", "alice", "mailbox", "suspend", "info@carl.example", "--login"),
        ("--as", "rita", "customer", "suspend", "carl"),
        ("--as", "rita", "customer", "remove", "carl"),
        ("--as", "rita", "customer", "set-package", "carl", "Plan"),
        ("--as", "rita", "package", "remove", "Plan", "--owner", "rob"),
        ("--as", "rita", "package", "set", "Plan", "--owner", "rob", "--mailboxes", "1"),
        ("--as", "rita", "reseller", "set-allocation", "rita", "--mailboxes", "100"),
        ("--as", "rita", "domain", "remove", "carl.example"),
        ("--as", "rob", "customer", "add", "eve", "--package", "Plan", "--reseller", "rita"),
    ]
    for args in refused:
        result = cli(*args)
        assert result.exit_code != 0, (args, result.output)
    listed = cli("--as", "rita", "customer", "list", "--json")
    assert "carl" not in listed.output and "alice" in listed.output
    assert dump(session_factory) == before
