"""One change live at 100,000 mailboxes through the path production takes (files mode).

    .venv/bin/python bench/apply_path_bench.py [--mailboxes 100000] [--changes 5]
        [--database-url URL]

`bench/mailstack_bench.py` times the mailstack functions themselves; this one goes through
what runs in production: the password is changed with the mail service and committed, then
`mailadmin node run` applies it (`node_runner.run_node(once=True)`: check-in, the row lock,
`services.stack.apply_config_report` with its incremental render and its revision record),
and the time runs until an IMAP login with the new password succeeds against the real
Dovecot started from the applied release. Run as root (the servers and the apply need it).

The runner's quiet period (default 1 s: a burst of changes becomes one apply) is not counted:
the figure starts when the runner wakes (``--quiet`` sets it; 0 here), as it would be the
NOTIFY on PostgreSQL that wakes it. Prints each change's figure and the apply's own stages.
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mailstack_bench import _SourcedIMAP, dovecot_hash
from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.lab.sandbox import (
    ensure_vmail_user,
    free_port_base,
    prepare_dirs,
    start_sandbox,
    stop_sandbox,
)
from mailadmin.mailstack import settings_from_server_settings
from mailadmin.models import Domain, Mailbox, PanelUser
from mailadmin.services import mailboxes
from mailadmin.services import server_settings as settings_service
from mailadmin.services import stack as stack_service
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings
from mailadmin.workers.node_runner import run_node

OP = Actor.operator()
PORTS = {"imap": 143, "pop3": 110, "submission": 587, "smtp": 25, "lmtp": 24, "reinject": 26}


def fill(factory: object, count: int, per_domain: int) -> None:
    password_hash = dovecot_hash("bench-password")
    with transaction(factory) as s:  # type: ignore[arg-type]
        s.execute(insert(PanelUser), [{"id": 1000, "username": "bench", "role": "customer",
                                       "password_hash": "x"}])
        n_domains = max(1, count // per_domain)
        s.execute(insert(Domain), [{"id": d + 1, "name": f"d{d}.example", "owner_id": 1000}
                                   for d in range(n_domains)])
        s.execute(insert(Mailbox), [
            {"domain_id": i // per_domain + 1, "local_part": f"u{i % per_domain}",
             "password_hash": password_hash, "quota": 0}
            for i in range(count)
        ])


def login_works(port: int, address: str, password: str, first_source: int) -> int:
    """Try until the login succeeds; returns the next unused source address number."""
    n = first_source
    deadline = time.monotonic() + 30
    while True:
        n += 1
        # a fresh source address per try: Dovecot delays the next login from an address
        # that just failed one
        client = _SourcedIMAP(f"127.9.{n // 250 % 250}.{n % 250 + 1}", port)
        try:
            client.login(address, password)
            client.logout()
            return n
        except imaplib.IMAP4.error:
            if time.monotonic() > deadline:
                raise SystemExit("the change never reached IMAP") from None
            time.sleep(0.02)
        finally:
            with contextlib.suppress(OSError):
                client.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    parser.add_argument("--per-domain", type=int, default=100)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quiet", type=float, default=0.0,
                        help="the runner's quiet period in seconds (production default 1)")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="apb-", dir="/tmp"))
    directory.chmod(0o755)
    url = args.database_url or f"sqlite:///{directory}/panel.sqlite"
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    base = free_port_base()
    try:
        with transaction(factory) as s:
            settings_service.update_settings(s, OP, {
                "mail_hostname": "mail.bench.test", "postmaster_address": "pm@d0.example",
                "config_output_dir": f"{directory}/config", "run_dir": f"{directory}/run",
                "state_dir": f"{directory}/state", "queue_dir": f"{directory}/spool/postfix",
                "mail_root": f"{directory}/mail", "log_dir": f"{directory}/log",
                "listen_address": "127.0.0.1",
                **{f"{name}_listen_port": str(base + port) for name, port in PORTS.items()},
            })
        t0 = time.perf_counter()
        fill(factory, args.mailboxes, args.per_domain)
        print(f"setup: {args.mailboxes} mailboxes in {time.perf_counter() - t0:.1f} s")
        with factory() as s:
            settings = settings_from_server_settings(get_server_settings(s))
        ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
        prepare_dirs(settings)
        t0 = time.perf_counter()
        with transaction(factory) as s:
            first = stack_service.apply_config(s, OP)
        assert first.state == "applied", first.validation_output
        print(f"setup: first (full) apply {time.perf_counter() - t0:.1f} s")
        start_sandbox(directory, base)

        figures: list[float] = []
        source = 0
        for n in range(args.changes):
            with factory() as s:
                address = s.execute(
                    select(Mailbox.local_part, Domain.name).join(Domain)
                    .where(Mailbox.id == 1 + (n * 7919) % args.mailboxes)).one()
            target = f"{address[0]}@{address[1]}"
            password = f"changed password {n}"
            with transaction(factory) as s:
                mailboxes.set_mailbox_password(s, OP, target, password)
            committed = time.perf_counter()
            reports: list[stack_service.ApplyReport] = []
            run_node(factory, engine, "bench-node", "127.0.0.1", once=True,
                     quiet_seconds=args.quiet, on_apply=reports.append)
            applied = time.perf_counter()
            source = login_works(base + 143, target, password, source)
            live = time.perf_counter() - committed
            figures.append(live)
            stages = ", ".join(f"{k} {v:.2f}" for k, v in reports[0].timings.items())
            print(f"change {n + 1}: commit -> login works {live:.2f} s "
                  f"(runner {applied - committed:.2f} s: {stages})", flush=True)
        print(f"commit -> IMAP login works, {len(figures)} changes at {args.mailboxes} "
              f"mailboxes on {engine.dialect.name}: median {statistics.median(figures):.2f} s, "
              f"max {max(figures):.2f} s")
    finally:
        stop_sandbox(directory)
        engine.dispose()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
