"""Speed of the help centre's search on SQLite (FTS5), PostgreSQL and MariaDB.

Run from the repository root::

    .venv/bin/python bench/help_search_bench.py [--extra N] [--rounds R] [--backend NAME]

Each backend gets a throw-away database, migrated, with the shipped articles plus N extra
generated articles (default 2000, so that the index is larger than the starter set). Prints,
per backend, the median and 95th-percentile time of `services.help.search_articles` (one
transaction each, snippets and highlighting included) over the typical customer queries of
tests/test_help_search.py, and of `read_article`.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.services import help
from mailadmin.services.context import Actor

QUERIES = ["outlook pop", "mailbox full", "port 2082 blocked", "webmail", "503", "pop or imap",
           "thunderbird imap", "iphone mail setup", "android gmail app", "apple mail mac",
           "sender verification failed", "relay access denied", "wrong password",
           "message too large", "blacklisted ip", "spf dkim dmarc", "greylisted",
           "user unknown", "forgot panel password", "storage quota"]
ADMIN_URLS = {
    "postgresql": os.environ.get("MAILADMIN_TEST_POSTGRES_URL",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("MAILADMIN_TEST_MARIADB_URL",
                              "mysql+pymysql://root@127.0.0.1:3306/test"),
}
WORDS = ["mail", "server", "mailbox", "password", "quota", "folder", "message", "sending",
         "receiving", "account", "domain", "forward", "alias", "spam", "filter", "phone",
         "laptop", "browser", "settings", "port", "secure", "login", "limit", "archive",
         "backup", "calendar", "contact", "signature", "invoice", "support", "office",
         "holiday"]


def generated_article(n: int, rng: random.Random) -> help.ArticleInput:
    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."

    body = "\n\n".join(" ".join(sentence() for _ in range(4)) for _ in range(6))
    return help.ArticleInput(slug=f"local-note-{n}", title=sentence()[:80], summary=sentence(),
                             topic="Local notes", tags=" ".join(rng.sample(WORDS, 4)),
                             body=body)


def timed(fn: object, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000)
    return out


def run(name: str, url: str, extra: int, rounds: int) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    rng = random.Random(7)
    with transaction(factory) as s:
        help.sync_shipped_articles(s)
    print(f"{name}: adding {extra} generated articles ...", flush=True)
    for start in range(0, extra, 200):
        with transaction(factory) as s:
            for n in range(start, min(extra, start + 200)):
                help.create_article(s, Actor.operator(), generated_article(n, rng))
    reader = help.Reader.anonymous()

    def search_all() -> None:
        for query in QUERIES:
            with transaction(factory) as s:
                help.search_articles(s, reader, query)

    def read() -> None:
        with transaction(factory) as s:
            help.read_article(s, reader, "pop-vs-imap")

    search_all()  # warm: caches, the database's buffers
    per_query = [t / len(QUERIES) for t in timed(search_all, rounds)]
    reads = timed(read, rounds * 5)
    with factory() as s:
        total = s.scalar(sa.text("SELECT COUNT(*) FROM help_articles"))
    print(f"{name}: {total} articles; search median {statistics.median(per_query):.1f} ms, "
          f"p95 {sorted(per_query)[int(0.95 * (len(per_query) - 1))]:.1f} ms per query "
          f"({rounds} rounds x {len(QUERIES)} queries); read_article median "
          f"{statistics.median(reads):.1f} ms", flush=True)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--extra", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "mariadb"), action="append")
    args = parser.parse_args()
    for name in args.backend or ("sqlite", "postgresql", "mariadb"):
        if name == "sqlite":
            path = Path(tempfile.gettempdir()) / f"help-bench-{secrets.token_hex(4)}.db"
            try:
                run(name, f"sqlite:///{path}", args.extra, args.rounds)
            finally:
                path.unlink(missing_ok=True)
            continue
        database = f"help_bench_{secrets.token_hex(4)}"
        admin = sa.create_engine(ADMIN_URLS[name], isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{database}"' if name == "postgresql"
                                     else f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 "
                                          "COLLATE utf8mb4_bin"))
        except sa.exc.OperationalError as exc:
            print(f"{name}: not reachable ({exc.orig}); skipped")
            continue
        url = sa.engine.make_url(ADMIN_URLS[name]).set(database=database)
        try:
            run(name, url.render_as_string(hide_password=False), args.extra, args.rounds)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE "{database}" WITH (FORCE)'
                                     if name == "postgresql" else f"DROP DATABASE `{database}`"))
            admin.dispose()


if __name__ == "__main__":
    main()
