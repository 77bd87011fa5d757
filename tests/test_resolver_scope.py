"""The address resolver's tenant boundaries (fast: no mail servers).

A customer or reseller resolves only addresses in its own domains; anything else is answered
exactly like an address nobody hosts, in the service, on the page, in the API and the CLI.
"""

from __future__ import annotations

import json
import typing as t

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import transaction
from mailadmin.errors import InvalidName, NotFound
from mailadmin.models import PanelUser
from mailadmin.services import domains, forwarders, mailboxes, resellers, tokens
from mailadmin.services.context import Actor
from mailadmin.services.resolver import Resolution, resolve_address

from .web import sign_in

PASSWORD = "Tr0ub4dor&3-horse"
OP = Actor.operator()


def actor(factory: sessionmaker[Session], name: str) -> Actor:
    with factory() as s:
        user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
        return Actor.for_user(user, channel="panel")


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any) -> sessionmaker[Session]:
    """rita (reseller) sells to anne (anne.test) and bert (bert.test); carl is direct."""
    make_user("rita", "reseller")
    make_user("anne", "customer", reseller="rita")
    make_user("bert", "customer", reseller="rita")
    make_user("carl", "customer")
    with transaction(session_factory) as s:
        domains.add_domain(s, OP, "anne.test", customer="anne")
        domains.add_domain(s, OP, "bert.test", customer="bert")
        domains.add_domain(s, OP, "carl.test", customer="carl")
        for address in ("a1@anne.test", "b1@bert.test", "secret@bert.test", "c1@carl.test"):
            mailboxes.create_mailbox(s, OP, address, PASSWORD)
        forwarders.set_forwarder(s, OP, "team@anne.test", ["a1@anne.test", "b1@bert.test"])
        forwarders.set_forwarder(s, OP, "fw@bert.test", ["secret@bert.test"])
        domains.set_catchall(s, OP, "bert.test", "deliver", target="secret@bert.test")
        mailboxes.set_suspensions(s, OP, "secret@bert.test", login=True, outgoing=True)
    return session_factory


def resolve(factory: sessionmaker[Session], who: Actor, address: str) -> Resolution:
    with factory() as s:
        return resolve_address(s, who, address)


def test_customer_resolves_own_addresses(world: sessionmaker[Session]) -> None:
    anne = actor(world, "anne")
    box = resolve(world, anne, "A1@Anne.test")
    assert box.address == "a1@anne.test" and box.hosted and box.kind == "mailbox"
    assert box.accepted and [(d.address, d.how) for d in box.deliveries] == [
        ("a1@anne.test", "mailbox")]
    assert {lg.protocol: lg.allowed for lg in box.logins} == {
        "imap": True, "pop3": True, "smtp": True}
    unknown = resolve(world, anne, "nobody@anne.test")
    assert unknown.hosted and unknown.kind == "default_address" and not unknown.accepted
    assert "User unknown" in (unknown.rcpt_reply or "")


@pytest.mark.parametrize("address", ["b1@bert.test", "secret@bert.test", "fw@bert.test",
                                     "nobody@bert.test", "c1@carl.test"])
def test_other_customers_addresses_look_not_hosted(world: sessionmaker[Session],
                                                    address: str) -> None:
    anne = actor(world, "anne")
    with pytest.raises(NotFound) as theirs:
        resolve(world, anne, address)
    with pytest.raises(NotFound) as nobodys:
        resolve(world, anne, "x@not-hosted-anywhere.test")
    # the same refusal, naming nothing but the address asked about
    assert theirs.value.message == f"{address} is not hosted in your account."
    assert theirs.value.message.replace(address, "") == nobodys.value.message.replace(
        "x@not-hosted-anywhere.test", "")
    assert theirs.value.code == nobodys.value.code and theirs.value.field == "address"


def test_admin_gets_an_answer_for_unhosted_domains(world: sessionmaker[Session]) -> None:
    answer = resolve(world, OP, "x@not-hosted-anywhere.test")
    assert not answer.hosted and answer.kind == "not_hosted" and not answer.accepted
    assert answer.rcpt_reply == "554 5.7.1 <x@not-hosted-anywhere.test>: Relay access denied"


def test_forward_into_another_account_is_not_followed(world: sessionmaker[Session]) -> None:
    anne = actor(world, "anne")
    team = resolve(world, anne, "team@anne.test")
    assert team.kind == "forwarder" and team.accepted
    assert [(d.address, d.how) for d in team.deliveries] == [
        ("a1@anne.test", "mailbox"), ("b1@bert.test", "outside_account")]
    assert not any("LMTP" in step for step in team.steps if "b1@bert.test" in step)
    # the admin sees the whole path
    full = resolve(world, OP, "team@anne.test")
    assert [(d.address, d.how) for d in full.deliveries] == [
        ("a1@anne.test", "mailbox"), ("b1@bert.test", "mailbox")]


def test_reseller_resolves_its_customers_only(world: sessionmaker[Session]) -> None:
    rita = actor(world, "rita")
    secret = resolve(world, rita, "secret@bert.test")
    assert secret.hosted and secret.kind == "mailbox"
    assert {lg.reason for lg in secret.logins} == {"login_suspended"}
    assert secret.sending_reply and "Sending is suspended" in secret.sending_reply
    with pytest.raises(NotFound):
        resolve(world, rita, "c1@carl.test")
    admin_view = resolve(world, OP, "c1@carl.test")
    assert admin_view.hosted and admin_view.kind == "mailbox"


def test_default_address_and_suspended_customer(world: sessionmaker[Session]) -> None:
    bert = actor(world, "bert")
    caught = resolve(world, bert, "anything@bert.test")
    assert caught.kind == "default_address" and caught.default_applies and caught.accepted
    assert [(d.address, d.how) for d in caught.deliveries] == [("secret@bert.test", "mailbox")]
    with transaction(world) as s:
        resellers.set_customer_suspended(s, OP, "bert", True)
    box = resolve(world, OP, "b1@bert.test")
    assert box.customer_suspended and box.receiving_suspended and box.sending_suspended
    assert {lg.reason for lg in box.logins} == {"customer_suspended"}
    assert not box.accepted and "suspended" in (box.rcpt_reply or "")


def test_not_an_address_is_refused(world: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidName):
        resolve(world, OP, "no-at-sign")


# --- the page, the API and the CLI keep the same boundary ---------------------------------


@pytest.fixture
def web(app: t.Any, world: sessionmaker[Session]) -> t.Any:
    from panel.resolver import bp

    if "resolver" not in app.blueprints:
        app.register_blueprint(bp)
    return app.test_client()


def test_page_answers_own_and_hides_others(web: t.Any) -> None:
    sign_in(web, "anne", "correct horse 9")
    own = web.get("/resolve?address=team@anne.test").get_data(as_text=True)
    assert 'data-kind="forwarder"' in own and 'data-how="outside_account"' in own
    other = web.get("/resolve?address=secret@bert.test")
    html = other.get_data(as_text=True)
    assert other.status_code == 404 and 'data-testid="resolution"' not in html
    assert "secret@bert.test is not hosted in your account." in html
    assert "suspended" not in html.lower().replace("suspended@", "")
    nobody = web.get("/resolve?address=secret@nowhere.test")
    assert nobody.status_code == 404
    assert nobody.get_data(as_text=True).replace("nowhere.test", "bert.test") == html
    bad = web.get("/resolve?address=nonsense")
    assert bad.status_code == 422 and 'data-testid="resolve-error"' in bad.get_data(as_text=True)


def test_api_resolve_is_scoped(app: t.Any, world: sessionmaker[Session]) -> None:
    with transaction(world) as s:
        _, anne_token = tokens.create_api_token(s, actor(world, "anne"), "t", ["read"])
    api = app.test_client()
    headers = {"Authorization": f"Bearer {anne_token}"}
    own = api.get("/api/v1/resolve/a1@anne.test", headers=headers)
    assert own.status_code == 200, own.get_data(as_text=True)
    assert own.get_json()["kind"] == "mailbox"
    other = api.get("/api/v1/resolve/secret@bert.test", headers=headers)
    nobody = api.get("/api/v1/resolve/secret@nowhere.test", headers=headers)
    assert other.status_code == nobody.status_code == 404
    assert other.get_json()["error"]["message"] == "secret@bert.test is not hosted in your account."
    assert other.get_data(as_text=True).replace("bert.test", "nowhere.test") == nobody.get_data(
        as_text=True)
    spec = api.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/resolve/{address}" in spec["paths"]
    assert "/api/v1/mailboxes/{address}/usage/recalculate" in spec["paths"]


def test_cli_resolve_as_customer(session_factory: sessionmaker[Session],
                                 world: sessionmaker[Session], tmp_path: t.Any) -> None:
    from mailadmin.cli import main

    url = str(session_factory.kw["bind"].url)
    runner = CliRunner()
    env = {"MAILADMIN_DATABASE_URL": url}
    base = ["--instance", str(tmp_path / "inst")]
    own = runner.invoke(main, [*base, "--as", "anne", "resolve", "a1@anne.test", "--json"],
                        env=env)
    assert own.exit_code == 0, own.output
    assert json.loads(own.output)["kind"] == "mailbox"
    other = runner.invoke(main, [*base, "--as", "anne", "resolve", "secret@bert.test"], env=env)
    assert other.exit_code == 1 and "not hosted in your account" in other.output
    assert "suspended" not in other.output
    admin = runner.invoke(main, [*base, "resolve", "secret@bert.test"], env=env)
    assert "login_suspended" in admin.output and "Sending is suspended" in admin.output
