"""Resellers, packages and allocations: the services, the CLI and the panel pages."""

from __future__ import annotations

import json
import typing as t

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import (
    AuthenticationFailed,
    Conflict,
    LimitReached,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from mailadmin.models import AuditEvent, Package, PanelUser, ResellerAllocation
from mailadmin.services import accounts, domains, mailboxes, packages, resellers
from mailadmin.services.context import Actor
from mailadmin.services.packages import PackageSpec
from mailadmin.services.resellers import AllocationSpec
from mailadmin.services.throttle import ThrottlePolicy

GiB = 1024**3
PASSWORD = "correct horse 9"
BOX_PASSWORD = "Tr0ub4dor&3-horse"


def run(factory: sessionmaker[Session], fn: t.Callable[..., t.Any], *args: t.Any,
        **kw: t.Any) -> t.Any:
    with transaction(factory) as s:
        return fn(s, *args, **kw)


def actor_of(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel", source="127.0.0.1")


SMALL = PackageSpec(max_domains=2, max_mailboxes=5, max_forwarders=5,
                    max_quota_per_mailbox=2 * GiB, max_total_quota=5 * GiB)


@pytest.fixture
def shop(session_factory: sessionmaker[Session], make_user: t.Any) -> dict[str, Actor]:
    """Admin; reseller rita with an allocation of 3 customers, 4 domains, 10 mailboxes, 10 GiB."""
    make_user("root", "admin")
    admin = actor_of(session_factory, "root")
    run(session_factory, resellers.create_reseller, admin, "rita", PASSWORD,
        AllocationSpec(max_customers=3, max_domains=4, max_mailboxes=10,
                       max_total_quota=10 * GiB, allow_pop3=False))
    return {"admin": admin, "rita": actor_of(session_factory, "rita")}


def pop3_off(spec: PackageSpec) -> PackageSpec:
    return spec.replace(allow_pop3=False, default_pop3=False)


def test_reseller_builds_its_shop(shop: dict[str, Actor], session_factory: t.Any) -> None:
    rita = shop["rita"]
    small = run(session_factory, packages.create_package, rita, "Small", pop3_off(SMALL))
    customer = run(session_factory, resellers.create_customer, rita, "alice", PASSWORD,
                   package_id=small.id)
    with session_factory() as s:
        alice = s.get(PanelUser, customer.id)
        assert alice is not None and alice.package_id == small.id
        assert alice.parent_id == rita.user_id
    page = run(session_factory, resellers.list_customers, rita)
    assert [(r.username, r.package, r.max_mailboxes) for r in page.items] == [
        ("alice", "Small", 5)]
    listed = run(session_factory, packages.list_packages, rita)
    assert [(p.name, p.customers, p.label("max_total_quota")) for p in listed] == [
        ("Small", 1, "5 GiB")]


def test_package_cannot_promise_more_than_the_allocation(
    shop: dict[str, Actor], session_factory: t.Any
) -> None:
    rita = shop["rita"]
    with pytest.raises(LimitReached, match="allocation allows 10 mailboxes; the package offers 11"):
        run(session_factory, packages.create_package, rita, "Big",
            pop3_off(SMALL.replace(max_mailboxes=11)))
    with pytest.raises(LimitReached, match="cannot offer unlimited mailboxes"):
        run(session_factory, packages.create_package, rita, "Open",
            pop3_off(SMALL.replace(max_mailboxes=None)))
    with pytest.raises(LimitReached, match="does not include POP3"):
        run(session_factory, packages.create_package, rita, "Pop", SMALL)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Package)) == 0


def test_customers_packages_add_up_to_the_allocation(
    shop: dict[str, Actor], session_factory: t.Any
) -> None:
    """Three customers of 5 mailboxes each would need 15; rita has 10."""
    rita = shop["rita"]
    small = run(session_factory, packages.create_package, rita, "Small", pop3_off(SMALL))
    run(session_factory, resellers.create_customer, rita, "alice", PASSWORD, package_id=small.id)
    with pytest.raises(LimitReached, match="total quota; your customers' packages already give "
                                           "out 5 GiB, and this would add 6 GiB"):
        run(session_factory, resellers.create_customer, rita, "bert", PASSWORD,
            package_id=run(session_factory, packages.create_package, rita, "Bigger",
                           pop3_off(SMALL.replace(max_total_quota=6 * GiB))).id)
    run(session_factory, resellers.create_customer, rita, "bert", PASSWORD, package_id=small.id)
    with pytest.raises(LimitReached, match="allows 4 domains; your customers' packages already "
                                           "give out 4"):
        run(session_factory, resellers.create_customer, rita, "carl", PASSWORD,
            package_id=small.id)
    # Raising the package everybody is on would break the allocation too.
    with pytest.raises(LimitReached, match="allows 10 mailboxes"):
        run(session_factory, packages.update_package, rita, small.id,
            pop3_off(SMALL.replace(max_mailboxes=6)))
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(PanelUser).where(
            PanelUser.parent_id == rita.user_id)) == 2
        assert s.get(Package, small.id).max_mailboxes == 5  # type: ignore[union-attr]


def test_customer_count_is_limited(shop: dict[str, Actor], session_factory: t.Any) -> None:
    rita = shop["rita"]
    tiny = run(session_factory, packages.create_package, rita, "Tiny",
               pop3_off(PackageSpec(max_domains=1, max_mailboxes=1, max_quota_per_mailbox=GiB)))
    for name in ("alice", "bert", "carl"):
        run(session_factory, resellers.create_customer, rita, name, PASSWORD,
            package_id=tiny.id)
    with pytest.raises(LimitReached, match="allows 3 customers; you have 3"):
        run(session_factory, resellers.create_customer, rita, "dora", PASSWORD,
            package_id=tiny.id)
    with pytest.raises(ValidationError, match="Choose a package"):
        run(session_factory, resellers.create_customer, rita, "dora", PASSWORD)


def test_assigning_a_smaller_package_is_refused_with_the_use(
    shop: dict[str, Actor], session_factory: t.Any
) -> None:
    rita = shop["rita"]
    small = run(session_factory, packages.create_package, rita, "Small", pop3_off(SMALL))
    tiny = run(session_factory, packages.create_package, rita, "Tiny",
               pop3_off(PackageSpec(max_domains=1, max_mailboxes=1, max_quota_per_mailbox=GiB)))
    run(session_factory, resellers.create_customer, rita, "alice", PASSWORD, package_id=small.id)
    alice = actor_of(session_factory, "alice")
    run(session_factory, domains.add_domain, alice, "alice.example")
    run(session_factory, mailboxes.create_mailbox, alice, "a@alice.example", BOX_PASSWORD)
    run(session_factory, mailboxes.create_mailbox, alice, "b@alice.example", BOX_PASSWORD)
    with pytest.raises(LimitReached, match="Package Tiny allows 1 mailboxes; alice has 2"):
        run(session_factory, packages.assign_package, rita, "alice", tiny.id)
    with pytest.raises(LimitReached, match="alice has 2"):
        run(session_factory, packages.update_package, rita, small.id,
            pop3_off(SMALL.replace(max_mailboxes=1)))
    run(session_factory, mailboxes.delete_mailbox, alice, "b@alice.example",
        confirm="b@alice.example")
    run(session_factory, packages.assign_package, rita, "alice", tiny.id)
    with session_factory() as s:
        assert s.scalars(select(PanelUser.package_id).where(
            PanelUser.username == "alice")).one() == tiny.id
        assert s.scalars(select(AuditEvent.action).where(
            AuditEvent.action == "customer.package")).all()


def test_lowering_an_allocation_below_what_is_given_out_is_refused(
    shop: dict[str, Actor], session_factory: t.Any
) -> None:
    rita, admin = shop["rita"], shop["admin"]
    small = run(session_factory, packages.create_package, rita, "Small", pop3_off(SMALL))
    run(session_factory, resellers.create_customer, rita, "alice", PASSWORD, package_id=small.id)
    with pytest.raises(LimitReached, match="rita has given out 5 mailboxes; the new limit of 4"):
        run(session_factory, resellers.set_allocation, admin, "rita",
            AllocationSpec(max_customers=3, max_mailboxes=4, allow_pop3=False))
    with pytest.raises(LimitReached, match="Package Small"):
        run(session_factory, resellers.set_allocation, admin, "rita",
            AllocationSpec(max_mailboxes=10, allow_smtp=False, allow_pop3=False))
    run(session_factory, resellers.set_allocation, admin, "rita",
        AllocationSpec(max_customers=1, max_mailboxes=5, allow_pop3=False))
    with session_factory() as s:
        allocation = s.get(ResellerAllocation, rita.user_id)
        assert allocation is not None and allocation.max_mailboxes == 5
    with pytest.raises(PermissionDenied):
        run(session_factory, resellers.set_allocation, rita, "rita", AllocationSpec())


def test_suspended_customer_cannot_sign_in_and_comes_back(
    shop: dict[str, Actor], session_factory: t.Any
) -> None:
    rita = shop["rita"]
    small = run(session_factory, packages.create_package, rita, "Small", pop3_off(SMALL))
    run(session_factory, resellers.create_customer, rita, "alice", PASSWORD, package_id=small.id)
    run(session_factory, resellers.set_customer_suspended, rita, "alice", True)
    policy = ThrottlePolicy(max_failures_per_account=100, max_failures_per_address=100)
    with pytest.raises(AuthenticationFailed, match="suspended"), transaction(
        session_factory
    ) as s:
        accounts.authenticate_panel_user(s, "alice", PASSWORD, client_address="1.2.3.4",
                                         policy=policy, actor=Actor.operator())
    run(session_factory, resellers.set_customer_suspended, rita, "alice", False)
    with transaction(session_factory) as s:
        accounts.authenticate_panel_user(s, "alice", PASSWORD, client_address="1.2.3.4",
                                         policy=policy, actor=Actor.operator())


def test_delete_customer_refused_while_it_has_domains(
    shop: dict[str, Actor], session_factory: t.Any
) -> None:
    rita = shop["rita"]
    small = run(session_factory, packages.create_package, rita, "Small", pop3_off(SMALL))
    run(session_factory, resellers.create_customer, rita, "alice", PASSWORD, package_id=small.id)
    run(session_factory, domains.add_domain, actor_of(session_factory, "alice"), "a.example")
    with pytest.raises(Conflict, match="still has 1 domain"):
        run(session_factory, resellers.delete_customer, rita, "alice")
    with pytest.raises(Conflict, match="1 customer"):
        run(session_factory, packages.delete_package, rita, small.id)
    run(session_factory, domains.remove_domain, actor_of(session_factory, "alice"), "a.example")
    run(session_factory, resellers.delete_customer, rita, "alice")
    run(session_factory, packages.delete_package, rita, small.id)
    with session_factory() as s:
        assert accounts.find_user(s, "alice") is None


def test_acting_as_a_customer_is_audited(shop: dict[str, Actor], session_factory: t.Any) -> None:
    rita = shop["rita"]
    small = run(session_factory, packages.create_package, rita, "Small", pop3_off(SMALL))
    run(session_factory, resellers.create_customer, rita, "alice", PASSWORD, package_id=small.id)
    acting = run(session_factory, resellers.start_acting_as, rita, "alice")
    assert (acting.name, acting.acting_as, acting.role.value) == ("rita", "alice", "customer")
    run(session_factory, domains.add_domain, acting, "alice.example")
    run(session_factory, domains.add_domain, acting, "alice2.example", customer="alice")
    run(session_factory, resellers.stop_acting_as, acting)
    with session_factory() as s:
        events = s.execute(select(AuditEvent.action, AuditEvent.actor, AuditEvent.acting_as)
                           .order_by(AuditEvent.id)).all()
    assert ("customer.act_as", "rita", "alice") in events
    assert ("domain.create", "rita", "alice") in events
    assert events[-1] == ("customer.act_as_end", "rita", "alice")
    # While acting, the reseller has the customer's rights only.
    with pytest.raises(PermissionDenied):
        run(session_factory, resellers.list_customers, acting)
    with pytest.raises(PermissionDenied):
        run(session_factory, packages.list_packages, acting)


def test_cpanel_names_map_to_plain_limits() -> None:
    assert packages.spec_from_cpanel({"MAXPOP": "10", "MAX_EMAILACCT_QUOTA": "1024",
                                      "MAXADDON": "unlimited"}) == {
        "max_mailboxes": 10, "max_quota_per_mailbox": GiB, "max_domains": None}
    with pytest.raises(ValidationError):
        packages.spec_from_cpanel({"MAXSQL": "3"})


def test_admin_customers_without_reseller(shop: dict[str, Actor], session_factory: t.Any) -> None:
    admin = shop["admin"]
    gold = run(session_factory, packages.create_package, admin, "Gold", PackageSpec())
    created = run(session_factory, resellers.create_customer, admin, "dora", PASSWORD,
                  package_name="Gold")
    assert created.parent_id is None and created.package_id == gold.id
    # The admin cannot put a reseller's customer on the admin's own package.
    small = run(session_factory, packages.create_package, shop["rita"], "Small", pop3_off(SMALL))
    run(session_factory, resellers.create_customer, shop["rita"], "alice", PASSWORD,
        package_id=small.id)
    with pytest.raises(NotFound):
        run(session_factory, packages.assign_package, admin, "alice", gold.id)
    run(session_factory, packages.assign_package, admin, "alice", small.id)


# --- command line -----------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: t.Any, sqlite_engine: t.Any, monkeypatch: pytest.MonkeyPatch) -> t.Any:
    from mailadmin.cli import main

    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()

    def _run(*args: str, stdin: str | None = None) -> t.Any:
        return runner.invoke(main, ["--instance", str(tmp_path / "inst"), *args], input=stdin)

    return _run


def test_cli_reseller_package_customer(cli: t.Any, make_user: t.Any,
                                       session_factory: t.Any) -> None:
    make_user("root", "admin")
    added = cli("--as", "root", "reseller", "add", "rita", "--customers", "2", "--mailboxes",
                "10", "--total-quota", "10G", "--domains", "unlimited", "--password-stdin",
                "--json", stdin=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["max_mailboxes"] == 10
    made = cli("--as", "rita", "package", "add", "Small", "--mailboxes", "5",
               "--quota-per-mailbox", "1G", "--cpanel", "MAXADDON=2", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["max_domains"] == 2
    assert cli("--as", "rita", "package", "add", "Huge", "--mailboxes", "11").exit_code == 1
    customer = cli("--as", "rita", "customer", "add", "alice", "--package", "Small",
                   "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert customer.exit_code == 0, customer.output
    second = cli("--as", "rita", "customer", "add", "bert", "--package", "Small",
                 "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert second.exit_code == 0, second.output
    third = cli("--as", "rita", "customer", "add", "carl", "--package", "Small",
                "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert third.exit_code == 1
    assert json.loads(third.output)["error"]["code"] == "limit_reached"
    listed = cli("--as", "rita", "customer", "list", "--json")
    assert [c["username"] for c in json.loads(listed.output)["items"]] == ["alice", "bert"]
    assert cli("--as", "rita", "customer", "suspend", "alice").exit_code == 0
    assert cli("--as", "alice", "domain", "list").exit_code == 1  # suspended: no --as
    assert cli("--as", "rita", "customer", "resume", "alice").exit_code == 0
    lowered = cli("--as", "root", "reseller", "set-allocation", "rita", "--mailboxes", "9",
                  "--json")
    assert lowered.exit_code == 1
    assert "given out 10 mailboxes" in json.loads(lowered.output)["error"]["message"]
    assert cli("--as", "root", "reseller", "set-allocation", "rita", "--customers",
               "3").exit_code == 0
    resellers_out = cli("--as", "root", "reseller", "list", "--json")
    assert json.loads(resellers_out.output)["items"][0]["allocation"]["max_customers"] == 3
    assert cli("--as", "rita", "customer", "remove", "bert").exit_code == 0
    assert "Small" in cli("--as", "rita", "package", "list").output
    assert cli("--as", "rita", "package", "set", "Small", "--mailboxes", "4").exit_code == 0
    with session_factory() as s:
        assert s.scalars(select(Package.max_mailboxes)).one() == 4
        assert accounts.find_user(s, "bert") is None
