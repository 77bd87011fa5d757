"""DKIM keys per domain: generated with `cryptography`, private halves in files only the
signer reads, rotation (publish, switch once DNS shows it, retire after the grace period),
removal, tenant isolation, and the `mailadmin dkim` commands. DNS is a real dnsmasq."""

from __future__ import annotations

import base64
import datetime as dt
import grp
import json
import os
import stat
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin import dkim
from mailadmin.cli import main
from mailadmin.db import transaction
from mailadmin.errors import Conflict, NotFound, ValidationError
from mailadmin.lab.sandbox import sandbox_settings
from mailadmin.mailstack import build_snapshot
from mailadmin.models import AuditEvent, DkimKey, PanelUser
from mailadmin.services import dkim_keys, domains
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings

from .dnsserver import LocalDns


@pytest.fixture
def dns(tmp_path: Path) -> Iterator[LocalDns]:
    server = LocalDns(tmp_path, zones=("test",))
    server.serve()
    yield server
    server.stop()


@pytest.fixture
def world(session_factory: sessionmaker[Session], make_user: t.Any, tmp_path: Path,
          dns: LocalDns) -> dict[str, Actor]:
    make_user("rita", "reseller")
    make_user("rob", "reseller")
    make_user("alice", "customer", reseller="rita")
    make_user("carl", "customer", reseller="rob")
    actors = {}
    with session_factory() as s:
        for name in ("rita", "rob", "alice", "carl"):
            user = s.scalars(select(PanelUser).where(PanelUser.username == name)).one()
            actors[name] = Actor.for_user(user, channel="panel", source="127.0.0.1")
    actors["operator"] = Actor.operator()
    with transaction(session_factory) as s:
        row = get_server_settings(s)
        row.dkim_key_dir = str(tmp_path / "dkim")
        row.dns_resolvers = dns.resolver
        domains.add_domain(s, actors["alice"], "alice.test")
        domains.add_domain(s, actors["carl"], "carl.test")
    return actors


def run(factory: sessionmaker[Session], fn: t.Callable[..., t.Any], *args: t.Any,
        **kw: t.Any) -> t.Any:
    with transaction(factory) as s:
        return fn(s, *args, **kw)


def at(actor: Actor, when: dt.datetime) -> Actor:
    return Actor(actor.name, actor.role, actor.channel, actor.user_id, actor.source,
                 actor.acting_as, actor.customer_id, clock=lambda: when)


def serve_keys(dns: LocalDns, domain: str, keys: list[dkim_keys.KeyInfo]) -> None:
    dns.serve(txt={k.record_name: [k.record_value] for k in keys})


def test_a_key_is_made_in_a_file_only_the_signer_reads(
        world: dict[str, Actor], session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    day = dt.datetime(2026, 12, 6, 9, tzinfo=dt.UTC)
    key = run(session_factory, dkim_keys.rotate_key, at(world["alice"], day), "alice.test")
    assert key.selector == "s20261206" and key.state == "published" and key.algorithm == "rsa"
    path = tmp_path / "dkim" / "alice.test" / "s20261206.private"
    private = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    published = dkim.parse_tags(key.record_value)
    assert published["k"] == "rsa"
    spki = private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64decode(published["p"]) == spki
    mode = stat.S_IMODE(path.stat().st_mode)
    try:
        signer = grp.getgrnam("opendkim").gr_gid
    except KeyError:
        signer = None
    if os.geteuid() == 0 and signer is not None:
        assert (mode, path.stat().st_gid) == (0o640, signer)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
    else:
        assert mode == 0o600
    # the database holds the public half only
    with session_factory() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "dkim.create")).all()
        assert len(events) == 1 and "PRIVATE" not in (events[0].after or "")
    # a second key the same day gets its own selector; a second waiting one is refused
    with pytest.raises(Conflict, match="waits for DNS"):
        run(session_factory, dkim_keys.rotate_key, at(world["alice"], day), "alice.test")
    ed = run(session_factory, dkim_keys.rotate_key, at(world["alice"], day), "alice.test",
             algorithm="ed25519")
    assert ed.selector == "s20261206-2"
    ed_private = serialization.load_pem_private_key(
        (tmp_path / "dkim" / "alice.test" / "s20261206-2.private").read_bytes(), None)
    assert isinstance(ed_private, ed25519.Ed25519PrivateKey)
    assert dkim.parse_tags(ed.record_value)["k"] == "ed25519"
    with pytest.raises(ValidationError):
        run(session_factory, dkim_keys.rotate_key, world["alice"], "alice.test", algorithm="dsa")


def test_rotation_switches_when_dns_shows_the_key_and_retires_the_old_one_on_schedule(
        world: dict[str, Actor], session_factory: sessionmaker[Session], tmp_path: Path,
        dns: LocalDns) -> None:
    alice = world["alice"]
    day1 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    first = run(session_factory, dkim_keys.rotate_key, at(alice, day1), "alice.test")

    def states(when: dt.datetime) -> dict[str, str]:
        keys = run(session_factory, dkim_keys.advance_keys, at(alice, when), "alice.test")
        return {k.selector: k.state for k in keys}

    def signing() -> list[str]:
        with session_factory() as s:
            snap = build_snapshot(s, sandbox_settings(tmp_path / "sb"))
        return [k.selector for k in snap.dkim_keys]

    # not in DNS: it waits, nothing signs
    assert states(day1) == {first.selector: "published"} and signing() == []
    # another key in DNS under its name is not this one
    dns.serve(txt={first.record_name: ["v=DKIM1; k=rsa; p=AAAA"]})
    assert states(day1) == {first.selector: "published"}
    serve_keys(dns, "alice.test", [first])
    assert states(day1) == {first.selector: "active"} and signing() == [first.selector]

    day2 = dt.datetime(2026, 12, 20, tzinfo=dt.UTC)
    second = run(session_factory, dkim_keys.rotate_key, at(alice, day2), "alice.test")
    assert second.selector == "s20261220"
    # until DNS serves the new key the old one keeps signing
    assert states(day2) == {first.selector: "active", second.selector: "published"}
    assert signing() == [first.selector]
    serve_keys(dns, "alice.test", [first, second])
    assert states(day2) == {first.selector: "retiring", second.selector: "active"}
    assert signing() == [second.selector]
    keys = run(session_factory, dkim_keys.list_keys, alice, "alice.test")
    assert [k.retire_at for k in keys if k.selector == first.selector] == [
        day2 + dkim_keys.RETIRE_AFTER]
    old_file = tmp_path / "dkim" / "alice.test" / f"{first.selector}.private"
    assert old_file.exists()
    # a day before the grace period ends it stays; after it, row and file are gone
    assert states(day2 + dkim_keys.RETIRE_AFTER - dt.timedelta(days=1))[first.selector] == \
        "retiring"
    assert states(day2 + dkim_keys.RETIRE_AFTER) == {second.selector: "active"}
    assert not old_file.exists()

    # an Ed25519 key is published and turns active, but OpenDKIM only gets RSA keys
    ed = run(session_factory, dkim_keys.rotate_key, at(alice, day2), "alice.test",
             algorithm="ed25519")
    serve_keys(dns, "alice.test", [second, ed])
    assert states(day2)[ed.selector] == "active"
    assert signing() == [second.selector]


def test_remove_takes_rows_and_files(world: dict[str, Actor], tmp_path: Path,
                                     session_factory: sessionmaker[Session]) -> None:
    key = run(session_factory, dkim_keys.rotate_key, world["alice"], "alice.test")
    path = tmp_path / "dkim" / "alice.test" / f"{key.selector}.private"
    assert path.exists()
    with pytest.raises(NotFound):
        run(session_factory, dkim_keys.remove_keys, world["alice"], "alice.test", "s19990101")
    assert run(session_factory, dkim_keys.remove_keys, world["alice"], "alice.test") == 1
    assert not path.exists()
    assert run(session_factory, dkim_keys.list_keys, world["alice"], "alice.test") == []


def test_removing_the_domain_removes_its_key_files(
        world: dict[str, Actor], session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    key = run(session_factory, dkim_keys.rotate_key, world["alice"], "alice.test")
    path = tmp_path / "dkim" / "alice.test" / f"{key.selector}.private"
    assert path.exists()
    run(session_factory, domains.remove_domain, world["alice"], "alice.test")
    assert not path.exists()
    with session_factory() as s:
        assert s.scalars(select(DkimKey)).all() == []


def test_tenants_cannot_touch_each_others_keys(
        world: dict[str, Actor], session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    run(session_factory, dkim_keys.rotate_key, world["alice"], "alice.test")
    for intruder in ("carl", "rob"):  # another customer; a reseller of another customer
        for fn in (dkim_keys.list_keys, dkim_keys.rotate_key, dkim_keys.advance_keys,
                   dkim_keys.remove_keys):
            with pytest.raises(NotFound):
                run(session_factory, fn, world[intruder], "alice.test")
    assert len(run(session_factory, dkim_keys.list_keys, world["alice"], "alice.test")) == 1
    assert not (tmp_path / "dkim" / "carl.test").exists()
    # alice's reseller and the admin may
    assert len(run(session_factory, dkim_keys.list_keys, world["rita"], "alice.test")) == 1
    run(session_factory, dkim_keys.remove_keys, world["operator"], "alice.test")


def test_cli_rotate_list_update_remove(world: dict[str, Actor], sqlite_engine: Engine,
                                      tmp_path: Path, dns: LocalDns) -> None:
    runner = CliRunner()
    env = {"MAILADMIN_DATABASE_URL": str(sqlite_engine.url)}

    def cli(*args: str) -> t.Any:
        return runner.invoke(main, ["--instance", str(tmp_path / "inst"), *args], env=env)

    made = cli("dkim", "rotate", "alice.test", "--json")
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)
    assert key["state"] == "published" and key["record_value"].startswith("v=DKIM1; k=rsa; p=")
    text = cli("dkim", "rotate", "alice.test")
    assert text.exit_code == 1 and "waits for DNS" in text.output
    dns.serve(txt={key["record_name"]: [key["record_value"]]})
    updated = cli("dkim", "update", "--json")
    assert updated.exit_code == 0 and json.loads(updated.output) == {"domains_changed": 1}
    listed = cli("dkim", "list", "alice.test", "--json")
    assert [k["state"] for k in json.loads(listed.output)] == ["active"]
    refused = cli("--as", "carl", "dkim", "list", "alice.test")
    assert refused.exit_code == 1 and "no domain" in refused.output
    removed = cli("dkim", "remove", "alice.test", "--json")
    assert json.loads(removed.output) == {"removed": 1}


def test_the_background_round_switches_and_retires(
        world: dict[str, Actor], session_factory: sessionmaker[Session], dns: LocalDns,
        tmp_path: Path) -> None:
    from mailadmin.workers.dkim_rotation import advance_dkim_keys

    day1 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    first = run(session_factory, dkim_keys.rotate_key, at(world["alice"], day1), "alice.test")
    assert advance_dkim_keys(session_factory, now=day1, timeout=3) == 0
    serve_keys(dns, "alice.test", [first])
    assert advance_dkim_keys(session_factory, now=day1, timeout=3) == 1
    second = run(session_factory, dkim_keys.rotate_key, at(world["alice"], day1), "alice.test")
    serve_keys(dns, "alice.test", [first, second])
    assert advance_dkim_keys(session_factory, now=day1, timeout=3) == 1
    later = day1 + dkim_keys.RETIRE_AFTER
    assert advance_dkim_keys(session_factory, now=later, timeout=3) == 1
    keys = run(session_factory, dkim_keys.list_keys, world["alice"], "alice.test")
    assert [(k.selector, k.state) for k in keys] == [(second.selector, "active")]
    with session_factory() as s:
        actions = s.scalars(select(AuditEvent.action).where(
            AuditEvent.action.like("dkim.%")).order_by(AuditEvent.id)).all()
    assert actions == ["dkim.create", "dkim.activate", "dkim.create", "dkim.retire",
                       "dkim.activate", "dkim.retired"]
