"""Time from a committed change until every node has applied it and a login with the new
password works through each node (issue 19, several mail nodes).

Run as root (the sandboxed nodes run Dovecot + Postfix as root):

    .venv/bin/python bench/nodes_bench.py [--nodes 3] [--rounds 5] [--backend postgresql]
                                          [--quiet-seconds 0] [--filler 300]

Sets up a throwaway panel database (PostgreSQL at MAILADMIN_TEST_POSTGRES_URL or
127.0.0.1:5432, or SQLite), starts N sandboxed nodes with `mailadmin sandbox start --nodes N`
(127.0.2.1..N, one port base), a domain with a mailbox on each node (plus `--filler`
mailboxes per node), and one `mailadmin node run --sandbox` process per node (LISTEN/NOTIFY
on PostgreSQL, polling every --interval seconds on SQLite). Each round changes the password
of the mailbox on the last node and measures, from the commit, the time until an IMAP login
with the new password succeeds on every node (proxied on all but the owner) and every node's
row says it is current. Prints each round and the median; setup time is not in the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import itertools
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailadmin import migrate
from mailadmin.cli import main as cli_main
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.models import Domain, Mailbox, Role
from mailadmin.services import accounts, domains, mailboxes, nodes
from mailadmin.services.context import Actor

OP = Actor.operator()
PASSWORD = "Bench-Password-0"
_sources = (f"127.{a}.{b}.{c}" for a in range(200, 250) for b in range(256)
            for c in range(1, 255))


class _SourcedIMAP(imaplib.IMAP4):
    def _create_socket(self, timeout: float | None) -> socket.socket:
        # a fresh source address per attempt: a failed login delays the next from its address
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(next(_sources), 0))


def logs_in(host: str, port: int, user: str, password: str) -> bool:
    try:
        c = _SourcedIMAP(host, port, timeout=10)
    except OSError:
        return False
    try:
        return c.login(user, password)[0] == "OK"
    except imaplib.IMAP4.error:
        return False
    finally:
        with contextlib.suppress(Exception):
            c.logout()


@contextlib.contextmanager
def database(backend: str, folder: Path):  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        yield f"sqlite:///{folder}/panel.db"
        return
    admin_url = os.environ.get("MAILADMIN_TEST_POSTGRES_URL",
                               "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"mailadmin_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--quiet-seconds", type=float, default=0.0,
                        help="the runners' debounce (node run's default is 1)")
    parser.add_argument("--interval", type=float, default=0.5,
                        help="the runners' polling interval on SQLite")
    parser.add_argument("--filler", type=int, default=300, help="extra mailboxes per node")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="nb-", dir="/tmp"))
    folder.chmod(0o755)
    instance = folder / "instance"
    instance.mkdir()
    sandbox = folder / "sbx"
    runners: list[subprocess.Popen[bytes]] = []
    with database(args.backend, folder) as url:
        env = {**os.environ, "MAILADMIN_DATABASE_URL": url}
        engine = make_engine(url)
        migrate.upgrade(engine)
        factory = make_session_factory(engine)
        cli = CliRunner()
        started = cli.invoke(cli_main, ["--instance", str(instance), "sandbox", "start",
                                        "--dir", str(sandbox), "--nodes", str(args.nodes),
                                        "--json"], env={"MAILADMIN_DATABASE_URL": url})
        if started.exit_code != 0:
            print(started.output, file=sys.stderr)
            return 1
        info = json.loads(started.output)
        try:
            t0 = time.perf_counter()
            with transaction(factory) as s:
                accounts.create_panel_user(s, OP, "bench", "correct horse 9", Role.CUSTOMER)
                for i, node in enumerate(info["nodes"], start=1):
                    domains.add_domain(s, OP, f"n{i}.test", customer="bench",
                                       node=node["name"])
                    mailboxes.create_mailbox(s, OP, f"user@n{i}.test", PASSWORD)
            if args.filler:
                with transaction(factory) as s:
                    ids = dict(s.execute(sa.select(Domain.name, Domain.id)).all())
                    hashed = s.scalar(sa.select(Mailbox.password_hash).limit(1))
                    s.execute(sa.insert(Mailbox), [
                        {"local_part": f"f{k}", "domain_id": ids[f"n{i}.test"],
                         "password_hash": hashed, "quota": 0}
                        for i in range(1, args.nodes + 1) for k in range(args.filler)])
            print(f"setup (data): {time.perf_counter() - t0:.2f}s; "
                  f"{args.nodes} nodes, {args.nodes * (args.filler + 1)} mailboxes, "
                  f"{args.backend}")
            mailadmin = str(Path(sys.executable).with_name("mailadmin"))
            for node in info["nodes"]:
                runners.append(subprocess.Popen(
                    [mailadmin, "--instance", str(instance), "node", "run",
                     "--name", node["name"], "--address", node["address"],
                     "--sandbox", node["dir"], "--quiet-seconds", str(args.quiet_seconds),
                     "--interval", str(args.interval)],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

            owner = args.nodes
            user = f"user@n{owner}.test"

            def all_current() -> bool:
                with transaction(factory) as s:
                    return all(n.current and n.online for n in nodes.list_nodes(s, OP))

            deadline = time.monotonic() + 120
            while not all_current():
                if time.monotonic() > deadline:
                    print("the runners did not catch up within 120 s", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            figures = []
            for round_ in range(1, args.rounds + 1):
                new = f"Bench-Password-{round_}"
                with transaction(factory) as s:
                    mailboxes.set_mailbox_password(s, OP, user, new)
                committed = time.perf_counter()
                pending = {n["name"]: n for n in info["nodes"]}
                first_ok: dict[str, float] = {}
                for _ in itertools.count():
                    for name, node in list(pending.items()):
                        if logs_in(node["address"], node["imap"], user, new):
                            first_ok[name] = time.perf_counter() - committed
                            del pending[name]
                    if not pending and all_current():
                        break
                    if time.perf_counter() - committed > 60:
                        print(f"round {round_}: no login on {sorted(pending)} within 60 s",
                              file=sys.stderr)
                        return 1
                    time.sleep(0.02)
                total = time.perf_counter() - committed
                figures.append(total)
                each = ", ".join(f"{k} {v:.2f}s" for k, v in sorted(first_ok.items()))
                print(f"round {round_}: all {args.nodes} nodes applied and log in with the new "
                      f"password after {total:.2f}s (first login ok: {each})")
            print(f"median {statistics.median(figures):.2f}s, max {max(figures):.2f}s over "
                  f"{args.rounds} rounds (quiet-seconds {args.quiet_seconds:g}; "
                  f"load average {os.getloadavg()[0]:.2f})")
            return 0
        finally:
            for proc in runners:
                proc.terminate()
            for proc in runners:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            cli.invoke(cli_main, ["--instance", str(instance), "sandbox", "stop", "--dir",
                                  str(sandbox)], env={"MAILADMIN_DATABASE_URL": url})
            engine.dispose()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
