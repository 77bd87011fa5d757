"""Time to move a domain of N messages between two mail nodes (`mailadmin domain move`).

Run as root (two sandboxed Dovecot + Postfix pairs, as in tests/mailstack/test_domain_move.py):

    .venv/bin/python bench/domain_move_bench.py [--mailboxes 5] [--messages 2000] [--size 4096]

node-a's doveadm server listens on 127.0.3.1, node-b's on 127.0.3.2 (same port). The
messages are written straight into node-a's Maildirs (setup, not timed), then the whole move
is timed: passes until a pass copies nothing new, the switch, the last pass (no node
runner runs here, so the move does not wait for the nodes to apply the switch). Printed:
the total, messages per second, the passes, and the seconds in full passes, quick passes
and folder reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from mailadmin import migrate
from mailadmin.db import make_engine, make_session_factory, transaction
from mailadmin.lab.sandbox import (
    ensure_vmail_user,
    free_port_base,
    sandbox_apply,
    start_sandbox,
    stop_sandbox,
)
from mailadmin.mailstack import build_snapshot, settings_from_server_settings
from mailadmin.mailstack.doveadm import DoveadmMover, Endpoint
from mailadmin.mailstack.snapshot import StackPorts
from mailadmin.models import Domain, MailNode
from mailadmin.models.users import Role
from mailadmin.services import accounts, domains, mailboxes, nodes
from mailadmin.services import server_settings as settings_service
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings
from mailadmin.workers.domain_mover import move_domain

OP = Actor.operator()
ADDRESSES = {"a": "127.0.3.1", "b": "127.0.3.2"}
DOMAIN = "bench-move.test"


def wait(address: str, port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((address, port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def fill(maildir: Path, count: int, size: int, uid: int, gid: int, start: int) -> None:
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    body = ("x" * 75 + "\r\n") * max(1, size // 77)
    for i in range(count):
        path = maildir / "new" / f"{1700000000 + start + i}.M{i}P1.bench"
        path.write_text(f"From: a@elsewhere.test\r\nSubject: message {i}\r\n\r\n{body}")
    for root, dirs, files in os.walk(maildir.parents[2]):
        for name in dirs + files:
            os.chown(Path(root) / name, uid, gid)
    os.chown(maildir.parents[2], uid, gid)


class TimedMover(DoveadmMover):
    """The doveadm mover, adding up the seconds of full passes, quick passes and reads."""

    seconds: dict[str, float]

    def pull(self, address: str, source: Endpoint, target: Endpoint, *,
             full: bool = True) -> None:
        t0 = time.perf_counter()
        super().pull(address, source, target, full=full)
        key = "full passes" if full else "quick passes"
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0

    def state(self, address: str, node: Endpoint) -> tuple[tuple[str, ...], ...]:
        t0 = time.perf_counter()
        try:
            return super().state(address, node)
        finally:
            self.seconds["state reads"] = (self.seconds.get("state reads", 0.0)
                                           + time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mailboxes", type=int, default=5)
    parser.add_argument("--messages", type=int, default=2000, help="in all, spread evenly")
    parser.add_argument("--size", type=int, default=4096, help="bytes per message")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="mvb-", dir="/tmp"))
    directory.chmod(0o755)
    instance = directory / "instance"
    instance.mkdir()
    engine = make_engine(f"sqlite:///{instance}/mailadmin.db")
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    base_a = free_port_base()
    doveadm_port = base_a + 345
    secret = directory / "doveadm" / "doveadm-password.conf.ext"
    dir_a, dir_b = directory / "a", directory / "b"
    addresses = [f"user{i}@{DOMAIN}" for i in range(args.mailboxes)]
    started: list[Path] = []
    try:
        with transaction(factory) as s:
            settings_service.update_settings(s, OP, {
                "mail_hostname": "mail.bench-move.test",
                "postmaster_address": f"postmaster@{DOMAIN}",
                "config_output_dir": f"{dir_a}/config", "run_dir": f"{dir_a}/run",
                "state_dir": f"{dir_a}/state", "queue_dir": f"{dir_a}/spool/postfix",
                "mail_root": f"{dir_a}/mail", "log_dir": f"{dir_a}/log",
                "listen_address": "127.0.0.1", "doveadm_port": str(doveadm_port),
            })
            accounts.create_panel_user(s, OP, "bench", "correct horse 9", Role.CUSTOMER)
            domains.add_domain(s, OP, DOMAIN, customer="bench")
            for address in addresses:
                mailboxes.create_mailbox(s, OP, address, "correct horse 9")
            for name, address in (("node-a", ADDRESSES["a"]), ("node-b", ADDRESSES["b"])):
                nodes.node_checkin(s, OP, name, address)
            s.flush()
            node_a = s.scalars(select(MailNode).where(MailNode.name == "node-a")).one()
            s.scalars(select(Domain).where(Domain.name == DOMAIN)).one().node_id = node_a.id
        with factory() as s:
            row = settings_from_server_settings(get_server_settings(s))
            ensure_vmail_user(row.vmail_uid, row.vmail_gid)
            for key, folder in (("a", dir_a), ("b", dir_b)):
                # node-b's base is chosen once node-a holds its ports
                base = base_a if key == "a" else free_port_base()
                folder.mkdir(mode=0o755)
                settings = dataclasses.replace(
                    row, config_dir=f"{folder}/config", run_dir=f"{folder}/run",
                    state_dir=f"{folder}/state", queue_dir=f"{folder}/spool/postfix",
                    mail_root=f"{folder}/mail", log_dir=f"{folder}/log",
                    ports=StackPorts.from_base(base), instance_name=f"mailadmin-{key}",
                    doveadm_address=ADDRESSES[key], doveadm_secret_file=str(secret))
                result = sandbox_apply(build_snapshot(s, settings))
                start_sandbox(folder, base, release=result.release_dir)
                started.append(folder)
                wait(ADDRESSES[key], doveadm_port)
        per = args.messages // len(addresses)
        for n, address in enumerate(addresses):
            local = address.split("@")[0]
            fill(dir_a / "mail" / DOMAIN / local / "Maildir", per, args.size,
                 row.vmail_uid, row.vmail_gid, n * per)
        timed = TimedMover(f"{dir_a}/config")
        object.__setattr__(timed, "seconds", {})
        t0 = time.perf_counter()
        report = move_domain(factory, lambda _s: OP, DOMAIN, "node-b", mover=timed,
                             wait_seconds=0)
        took = time.perf_counter() - t0
        total = per * len(addresses)
        mover = DoveadmMover(f"{dir_a}/config")
        on_b = sum(int(folder[1]) for a in addresses
                   for folder in mover.state(a, Endpoint(ADDRESSES["b"], doveadm_port)))
        assert on_b == total, f"node-b holds {on_b} of {total} messages"
        print(f"domain move: {len(addresses)} mailboxes, {total} messages of "
              f"~{args.size} bytes: {took:.2f} s ({total / took:.0f} messages/s), "
              f"at most {report.passes} passes per mailbox, "
              f"{len(report.final_errors)} failed last passes")
        print("  of which " + ", ".join(f"{k} {v:.2f} s" for k, v in timed.seconds.items()))
        print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
              f"{os.getloadavg()[2]:.2f}")
    finally:
        for folder in started:
            stop_sandbox(folder)
        engine.dispose()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
