"""Mailbox list page at scale: seeds N mailboxes (default 100,000) and times the page.

    .venv/bin/python bench/mailbox_list_bench.py [--mailboxes 100000] [--domains 2]
        [--requests 40] [--database-url URL] [--reuse]

`--domains N` spreads the mailboxes over N domains (mailbox i in domain i % N), all owned by
one customer (or with `--customers K`, by K customers of a reseller who signs in); with the
default 2 (the old shape) nearly all are in one domain. Seeding uses
one precomputed hash and multi-row INSERTs (COPY on PostgreSQL), domains inserted as rows,
then `counters.recount` fills the per-domain counters, so 1,000,000 mailboxes take minutes.
`--reuse` skips seeding when the database already holds the bench customer (re-running
against the same PostgreSQL database). Each timed request is a full HTTP request through
the Flask app (session, query, count, template), signed in as that customer. Prints median
and 95th percentile per scenario.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import tempfile
import time
import typing as t
from pathlib import Path

import click
from sqlalchemy import Engine, event, insert, select, text

from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.hashing import hash_mailbox_password
from mailadmin.models import Domain, Mailbox, PanelUser, Role, utcnow
from mailadmin.services import accounts, counters, domains
from mailadmin.services.context import Actor
from panel import create_app

PASSWORD = "correct horse 42"


def _domain_name(i: int) -> str:
    return f"d{i:05d}.example"


def seed(url: str, count: int, domain_count: int, reuse: bool, customers: int) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        if reuse and session.scalar(select(PanelUser.id).where(PanelUser.username == "bench")):
            print("reusing the seeded database")
            engine.dispose()
            return
        if customers > 1:
            # a reseller ("bench") whose customers share the domains
            accounts.create_panel_user(session, Actor.operator(), "bench", PASSWORD,
                                       Role.RESELLER)
            owners = [accounts.create_panel_user(session, Actor.operator(), f"cust{c:03d}",
                                                 PASSWORD, Role.CUSTOMER,
                                                 reseller_name="bench").id
                      for c in range(customers)]
        else:
            accounts.create_panel_user(session, Actor.operator(), "bench", PASSWORD,
                                       Role.CUSTOMER)
            owners = [session.scalars(select(PanelUser.id)
                                      .where(PanelUser.username == "bench")).one()]
        if domain_count <= 2:
            domains.add_domain(session, Actor.operator(), "big.example", customer="bench")
            domains.add_domain(session, Actor.operator(), "small.example", customer="bench")
        else:
            now = utcnow()
            session.execute(insert(Domain), [
                {"name": _domain_name(i), "owner_id": owners[i % len(owners)], "created_at": now}
                for i in range(domain_count)])
    with transaction(factory) as session:
        if domain_count <= 2:
            domain_ids = [session.scalars(select(Domain.id).where(Domain.name == "big.example"))
                          .one()]
        else:
            domain_ids = list(session.scalars(select(Domain.id).order_by(Domain.name)))
    password_hash = hash_mailbox_password("seeded mailbox password 1")
    columns = ["domain_id", "local_part", "password_hash", "quota", "imap", "pop3", "smtp",
               "suspend_login", "suspend_incoming", "suspend_outgoing", "usage_bytes",
               "usage_messages", "usage_read_at", "created_at", "updated_at",
               "password_changed_at", "app_passwords_only"]
    now = utcnow()

    def row(i: int) -> tuple[object, ...]:
        return (domain_ids[i % len(domain_ids)], f"user{i:07d}", password_hash,
                (i % 50 + 1) * 1024**2, True, i % 3 != 0, True, False, False, i % 97 == 0,
                (i % 40) * 1024**2, i % 1000, now, now, now, now, False)

    batch = 10_000
    with click.progressbar(length=count, label=f"seeding {count:,} mailboxes") as bar:
        for start in range(0, count, batch):
            rows = [row(i) for i in range(start, min(start + batch, count))]
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                    with cursor.copy(f"COPY mailboxes ({', '.join(columns)}) FROM STDIN") as copy:
                        for one in rows:
                            copy.write_row(one)
                else:
                    conn.execute(insert(Mailbox), [dict(zip(columns, one, strict=True))
                                                   for one in rows])
            bar.update(len(rows))
    with transaction(factory) as session:
        counters.recount(session, Actor.operator())
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class SqlClock:
    """Time spent in the database per request (every engine's statements, summed)."""

    def __init__(self) -> None:
        self.spent = 0.0
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)

    def _before(self, conn: t.Any, *_args: t.Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: t.Any, *_args: t.Any) -> None:
        self.spent += time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())


def time_requests(client: object, urls: list[str], sql: SqlClock | None = None
                  ) -> tuple[list[float], list[float]]:
    """Milliseconds per request, and of them in SQL."""
    timings, in_sql = [], []
    for url in urls:
        if sql is not None:
            sql.spent = 0.0
        started = time.perf_counter()
        response = client.get(url)  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, (url, response.status_code)
        timings.append(elapsed * 1000)
        in_sql.append(sql.spent * 1000 if sql is not None else 0.0)
    return timings, in_sql


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--database-url")
    parser.add_argument("--domains", type=int, default=2)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--customers", type=int, default=1,
                        help="Above 1: a reseller signs in, its customers own the domains.")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mailadmin-bench-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    started = time.perf_counter()
    seed(url, args.mailboxes, args.domains, args.reuse, args.customers)
    print(
        f"seeded {args.mailboxes:,} mailboxes over {args.domains:,} domains in "
        f"{time.perf_counter() - started:.1f} s ({url.split(':')[0]})"
    )

    app = create_app({"INSTANCE_PATH": str(workdir / "instance"), "DATABASE_URL": url})
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    signed_in = client.post(
        "/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert signed_in.status_code == 302
    pages = args.mailboxes // 50
    deep = min(10_000, pages)
    rng = random.Random(42)
    one = "big.example" if args.domains <= 2 else _domain_name(args.domains // 2)
    scenarios = {
        "first page": ["/mailboxes"] * args.requests,
        f"page {deep:,}": [f"/mailboxes?page={deep}"] * args.requests,
        "random page": [f"/mailboxes?page={rng.randint(1, pages)}" for _ in range(args.requests)],
        "domain filter": [f"/mailboxes?domain={one}"] * args.requests,
        "prefix search": [
            f"/mailboxes?q=user{rng.randint(0, 9999):04d}" for _ in range(args.requests)
        ],
        "inner search": [f"/mailboxes?q={rng.randint(0, 99999):05d}" for _ in range(args.requests)],
        "search, page 3": [f"/mailboxes?q=user00{rng.randint(0, 9)}&page=3"
                           for _ in range(args.requests)],
        "sort by usage": ["/mailboxes?sort=usage&desc=1"] * args.requests,
        "usage, 1 domain": [f"/mailboxes?domain={one}&sort=usage&desc=1"] * args.requests,
        "sort by status": ["/mailboxes?sort=status&desc=1"] * args.requests,
        "200 per page": ["/mailboxes?per_page=200"] * args.requests,
        "sort by quota": ["/mailboxes?sort=quota&desc=1"] * args.requests,
        "quota, page 100": ["/mailboxes?sort=quota&desc=1&page=100"] * args.requests,
        "quota, 1 domain": [f"/mailboxes?domain={one}&sort=quota&desc=1"] * args.requests,
        "domain list": ["/domains/"] * args.requests,
        **({"customer list": ["/customers/"] * args.requests} if args.customers > 1 else {}),
        "dashboard": ["/dashboard"] * args.requests,
    }
    time_requests(client, ["/mailboxes"] * 3)  # warm caches and templates
    sql = SqlClock()
    print(f"{'scenario':<16} {'median ms':>10} {'p95 ms':>10} {'SQL median':>11} {'SQL p95':>8}"
          f"   (load {_load()})")
    for name, urls in scenarios.items():
        timings, in_sql = time_requests(client, urls, sql)
        print(f"{name:<16} {statistics.median(timings):>10.1f} {_p95(timings):>10.1f} "
              f"{statistics.median(in_sql):>11.1f} {_p95(in_sql):>8.1f}")
    print(f"(load {_load()})")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
