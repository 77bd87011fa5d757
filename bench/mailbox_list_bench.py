"""Mailbox list page at scale: seeds N mailboxes (default 100,000) and times the page.

    .venv/bin/python bench/mailbox_list_bench.py [--mailboxes 100000] [--requests 40]
        [--database-url URL]

Seeding uses one precomputed hash so it takes seconds, not hours. Each timed request is a
full HTTP request through the Flask app (session, query, count, template), signed in as the
customer who owns every mailbox. Prints median and 95th percentile per scenario.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

import click
from sqlalchemy import insert, select

from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.hashing import hash_mailbox_password
from mailadmin.models import Domain, Mailbox, Role
from mailadmin.services import accounts, domains
from mailadmin.services.context import Actor
from panel import create_app

PASSWORD = "correct horse 42"


def seed(url: str, count: int) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        accounts.create_panel_user(session, Actor.operator(), "bench", PASSWORD, Role.CUSTOMER)
        domains.add_domain(session, Actor.operator(), "big.example", customer="bench")
        domains.add_domain(session, Actor.operator(), "small.example", customer="bench")
    with transaction(factory) as session:
        domain_id = session.scalars(select(Domain.id).where(Domain.name == "big.example")).one()
    password_hash = hash_mailbox_password("seeded mailbox password 1")
    batch = 5000
    with click.progressbar(length=count, label=f"seeding {count:,} mailboxes") as bar:
        for start in range(0, count, batch):
            rows = [
                {
                    "domain_id": domain_id,
                    "local_part": f"user{i:07d}",
                    "password_hash": password_hash,
                    "quota": (i % 50 + 1) * 1024**2,
                    "imap": True,
                    "pop3": i % 3 != 0,
                    "smtp": True,
                    "suspend_login": False,
                    "suspend_incoming": False,
                    "suspend_outgoing": i % 97 == 0,
                    "usage_bytes": (i % 40) * 1024**2,
                }
                for i in range(start, min(start + batch, count))
            ]
            with transaction(factory) as session:
                session.execute(insert(Mailbox), rows)
            bar.update(len(rows))
    engine.dispose()


def time_requests(client: object, urls: list[str]) -> list[float]:
    timings = []
    for url in urls:
        started = time.perf_counter()
        response = client.get(url)  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, (url, response.status_code)
        timings.append(elapsed * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mailadmin-bench-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    started = time.perf_counter()
    seed(url, args.mailboxes)
    print(
        f"seeded {args.mailboxes:,} mailboxes in {time.perf_counter() - started:.1f} s "
        f"({url.split(':')[0]})"
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
    rng = random.Random(42)
    scenarios = {
        "first page": ["/mailboxes"] * args.requests,
        "random page": [f"/mailboxes?page={rng.randint(1, pages)}" for _ in range(args.requests)],
        "domain filter": ["/mailboxes?domain=big.example"] * args.requests,
        "prefix search": [
            f"/mailboxes?q=user{rng.randint(0, 9999):04d}" for _ in range(args.requests)
        ],
        "inner search": [f"/mailboxes?q={rng.randint(0, 99999):05d}" for _ in range(args.requests)],
        "sort by usage": ["/mailboxes?sort=usage&desc=1"] * args.requests,
        "usage, 1 domain": ["/mailboxes?domain=big.example&sort=usage&desc=1"] * args.requests,
        "sort by status": ["/mailboxes?sort=status&desc=1"] * args.requests,
        "200 per page": ["/mailboxes?per_page=200"] * args.requests,
        "sort by quota": ["/mailboxes?sort=quota&desc=1"] * args.requests,
        "quota, 1 domain": ["/mailboxes?domain=big.example&sort=quota&desc=1"] * args.requests,
    }
    time_requests(client, ["/mailboxes"] * 3)  # warm caches and templates
    print(f"{'scenario':<16} {'median ms':>10} {'p95 ms':>10}")
    for name, urls in scenarios.items():
        timings = sorted(time_requests(client, urls))
        p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
        print(f"{name:<16} {statistics.median(timings):>10.1f} {p95:>10.1f}")


if __name__ == "__main__":
    main()
