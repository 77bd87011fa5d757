"""The per-domain mailbox counters (`services.counters`) always equal a fresh COUNT/SUM of the
rows: after every one of a random sequence of service operations on each backend, under
concurrent transactions on PostgreSQL and MariaDB, and again after `recount` when the rows
were edited by hand."""

from __future__ import annotations

import functools
import random
import threading
import typing as t
from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.errors import PermissionDenied
from mailadmin.hashing import hash_mailbox_password
from mailadmin.mailstack.usage import Usage
from mailadmin.models import Domain, Mailbox, Role
from mailadmin.services import accounts, counters, domains, limits, mailboxes, usage
from mailadmin.services.context import Actor

from . import factories
from .databases import throwaway_database

OP = Actor.operator()
PASSWORD = "Tr0ub4dor&3-horse"
MiB = 1024**2
DOMAINS = ("one.example", "two.example", "three.example")
QUOTAS = (0, 1 * MiB, 5 * MiB, 50 * MiB)


@functools.cache
def _hash() -> str:
    return hash_mailbox_password(PASSWORD)


def _world(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as s:
        accounts.create_panel_user(s, OP, "cara", "correct horse 9", Role.CUSTOMER)
        for name in DOMAINS:
            domains.add_domain(s, OP, name, customer="cara")


class RandomDovecot:
    """A usage reader that reports random usage for a random part of what it is asked."""

    def __init__(self, rng: random.Random, everyone: list[str]) -> None:
        self.rng, self.everyone = rng, everyone

    def __call__(self, _config_dir: str, addresses: list[str] | None) -> Mapping[str, Usage]:
        asked = self.everyone if addresses is None else addresses
        return {a: Usage(a, self.rng.randrange(0, 60) * MiB, self.rng.randrange(0, 500),
                         None, None)
                for a in asked if self.rng.random() < 0.7}


def _addresses(factory: sessionmaker[Session]) -> list[str]:
    with factory() as s:
        return sorted(f"{local}@{name}" for local, name in s.execute(
            select(Mailbox.local_part, Domain.name).join(Domain)))


def _check(factory: sessionmaker[Session], step: str) -> None:
    """The counters against the rows, and what the pages read from them."""
    with factory() as s:
        assert counters.differences(s) == {}, step
        cara = factories.actor(factory, "cara")
        assert cara.customer_id is not None
        rows = s.scalar(select(func.count(Mailbox.id))) or 0
        quotas = s.scalar(select(func.coalesce(func.sum(Mailbox.quota), 0))) or 0
        assert limits.count_mailboxes(s, cara.customer_id) == rows, step
        assert limits.total_quota(s, cara.customer_id) == quotas, step
        assert mailboxes.list_mailboxes(s, cara).total == rows, step
        used = {d.name: (d.mailboxes, d.usage_bytes) for d in usage.domain_usage(s, cara)}
        counted = {name: (n, int(b or 0)) for name, n, b in s.execute(
            select(Domain.name, func.count(Mailbox.id), func.sum(Mailbox.usage_bytes))
            .join(Mailbox).group_by(Domain.name))}
        assert used == counted, step


def _operation(factory: sessionmaker[Session], rng: random.Random, serial: int) -> str:
    existing = _addresses(factory)
    kind = rng.choice(["create", "create", "create many", "quota", "delete", "bulk quota",
                       "bulk remove", "refresh", "refresh one", "recalculate"])
    if not existing and kind not in ("create", "create many"):
        kind = "create"
    with transaction(factory) as s:
        if kind == "create":
            mailboxes.create_mailbox(s, OP, f"u{serial}@{rng.choice(DOMAINS)}", PASSWORD,
                                     quota=rng.choice(QUOTAS))
        elif kind == "create many":
            mailboxes.create_mailboxes(s, OP, rng.choice(DOMAINS), [
                mailboxes.NewMailbox(f"m{serial}x{i}", password_hash=_hash(),
                                     quota=rng.choice(QUOTAS))
                for i in range(rng.randrange(1, 6))])
        elif kind == "quota":
            mailboxes.update_mailbox(s, OP, rng.choice(existing), quota=rng.choice(QUOTAS))
        elif kind == "delete":
            address = rng.choice(existing)
            mailboxes.delete_mailbox(s, OP, address, confirm=address)
        elif kind in ("bulk quota", "bulk remove"):
            chosen = rng.sample(existing, min(len(existing), rng.randrange(1, 5)))
            if kind == "bulk quota":
                mailboxes.bulk_change(s, OP, chosen, "quota", quota=rng.choice(QUOTAS))
            else:
                mailboxes.bulk_change(s, OP, chosen, "remove")
        elif kind == "refresh":
            usage.refresh_usage(s, OP, reader=RandomDovecot(rng, existing))
        elif kind == "refresh one":
            address = rng.choice(existing)
            usage.refresh_usage(s, OP, address=address,
                                reader=RandomDovecot(random.Random(serial), [address]))
        else:
            address = rng.choice(existing)
            always = RandomDovecot(random.Random(serial), [address])
            always.rng = _Always(serial)  # type: ignore[assignment]
            usage.recalculate(s, OP, address, reader=always, recalc=lambda _d, _a: None)
    return f"{serial}: {kind}"


class _Always(random.Random):
    """Reports every address (recalculate needs the one it asked for)."""

    def random(self) -> float:
        return 0.0


def test_random_operations_keep_the_counters(
    backend_session_factory: sessionmaker[Session],
) -> None:
    factory = backend_session_factory
    _world(factory)
    rng = random.Random(19)
    for serial in range(60):
        step = _operation(factory, rng, serial)
        _check(factory, step)
    assert _addresses(factory), "the sequence left no mailbox: it tested little"


def test_recount_corrects_hand_edits(backend_session_factory: sessionmaker[Session]) -> None:
    factory = backend_session_factory
    _world(factory)
    with transaction(factory) as s:
        for i, quota in enumerate(QUOTAS):
            mailboxes.create_mailbox(s, OP, f"h{i}@one.example", PASSWORD, quota=quota)
    with transaction(factory) as s:
        s.execute(update(Mailbox).where(Mailbox.local_part == "h1")
                  .values(quota=7 * MiB, usage_bytes=3 * MiB, usage_messages=4,
                          usage_read_at=OP.now()))
        off = counters.differences(s)
        assert set(off) == {"one.example"}
        assert off["one.example"]["quota_total"] == (56 * MiB, 62 * MiB)
        with pytest.raises(PermissionDenied):
            counters.recount(s, factories.actor(factory, "cara"))
        report = counters.recount(s, OP)
        assert report.corrected == ("one.example",) and report.domains == 3
    _check(factory, "after recount")
    with transaction(factory) as s:
        assert counters.recount(s, OP).corrected == ()


def test_cli_recount(tmp_path: Path, sqlite_engine: t.Any,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from mailadmin.cli import main

    factory = make_session_factory(sqlite_engine)
    _world(factory)
    with transaction(factory) as s:
        mailboxes.create_mailbox(s, OP, "a@two.example", PASSWORD, quota=MiB)
        s.execute(update(Domain).where(Domain.name == "two.example").values(mailbox_count=9))
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()
    result = runner.invoke(main, ["--instance", str(tmp_path / "inst"), "db", "recount"])
    assert result.exit_code == 0, result.output
    assert "Corrected the counters of 1 of 3 domain(s): two.example" in result.output
    result = runner.invoke(main, ["--instance", str(tmp_path / "inst"), "db", "recount"])
    assert "were right" in result.output
    with factory() as s:
        assert counters.differences(s) == {}


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_concurrent_transactions_count_every_change(backend: str, tmp_path: Path) -> None:
    """Four transactions at once change mailboxes of one domain (creates, quota changes,
    deletes, usage stores): no change is lost or counted twice. SQLite lets one writer in at a
    time, so it has nothing to race."""
    with throwaway_database(backend, tmp_path) as url:
        engine = make_engine(url, pool_size=8)
        try:
            migrate.upgrade(engine)
            factory = make_session_factory(engine)
            _world(factory)
            with transaction(factory) as s:
                for i in range(8):
                    mailboxes.create_mailbox(s, OP, f"old{i}@one.example", PASSWORD,
                                             quota=MiB)
            barrier = threading.Barrier(4, timeout=60)
            errors: list[BaseException] = []

            def worker(n: int) -> None:
                try:
                    for round_ in range(4):
                        with transaction(factory) as s:
                            s.scalar(select(Domain.id).where(Domain.name == "one.example"))
                            barrier.wait()  # all four are inside a transaction now
                            mailboxes.create_mailbox(s, OP, f"w{n}r{round_}@one.example",
                                                     PASSWORD, quota=(n + 1) * MiB)
                            mine = f"old{n * 2 + round_ % 2}@one.example"
                            if round_ < 2:
                                mailboxes.update_mailbox(s, OP, mine,
                                                         quota=(round_ + 2) * MiB)
                            elif round_ == 2:
                                usage.refresh_usage(
                                    s, OP, address=mine,
                                    reader=lambda _d, a: {x: Usage(x, 5 * MiB, 9, None, None)
                                                          for x in a or []})
                            else:
                                mailboxes.delete_mailbox(s, OP, mine, confirm=mine)
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)
                    barrier.abort()

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not errors, errors
            with factory() as s:
                assert counters.differences(s) == {}
                assert s.scalar(select(Domain.mailbox_count)
                                .where(Domain.name == "one.example")) == 8 + 16 - 4
        finally:
            engine.dispose()


def test_migration_fills_the_counters_from_existing_rows(backend_url: str) -> None:
    """0017 on a database with mailboxes: every domain's counters equal its rows (made at head
    behind the services' back, then down to 0015, the revision before it, and up again)."""
    engine = make_engine(backend_url)
    try:
        migrate.upgrade(engine)
        factory = make_session_factory(engine)
        _world(factory)
        with transaction(factory) as s:
            ids = dict(s.execute(select(Domain.name, Domain.id)).all())
            for i, quota in enumerate(QUOTAS * 2):
                s.add(Mailbox(domain_id=ids[DOMAINS[i % 2]], local_part=f"x{i}",
                              password_hash=_hash(), quota=quota, usage_bytes=i * MiB,
                              usage_messages=i, usage_read_at=OP.now() if i % 3 else None))
        with factory() as s:
            assert set(counters.differences(s)) == {"one.example", "two.example"}
        migrate.downgrade(engine, "0015")
        migrate.upgrade(engine)
        with factory() as s:
            assert counters.differences(s) == {}
            counts = dict(s.execute(select(Domain.name, Domain.mailbox_count)).all())
        assert counts == {"one.example": 4, "two.example": 4, "three.example": 0}
    finally:
        engine.dispose()
