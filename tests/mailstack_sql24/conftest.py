"""The files-mode mail-stack fixtures in SQL mode on Dovecot 2.4: Debian 13's real Dovecot
2.4.1 (the `chroot24` trixie chroot, with its SQL drivers) and the host's Postfix query the
panel's own migrated database on SQLite, PostgreSQL and MariaDB.

`stack` has the name and type the matrix expects (a `Stack24`, so `doveadm` runs the chroot's
2.4 tool) and is parametrized (session scope) over the three backends. The chroot shares the
host's network namespace, so its Dovecot reaches PostgreSQL and MariaDB on 127.0.0.1; the
scratch folder, which holds the SQLite file, the release and the ``sql-access`` credential
files, is bind-mounted into the chroot at the same absolute path. Nothing is applied after
the start: `SqlStack24.reapply` fails, so every change the tests make must reach the servers
through the database alone.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mailadmin import migrate
from mailadmin.db import make_engine
from mailadmin.lab.chroot24 import Chroot
from mailadmin.lab.sandbox import ensure_vmail_user, prepare_dirs, sandbox_settings
from mailadmin.lab.sandbox24 import sandbox24_apply, start_sandbox24, stop_sandbox24
from mailadmin.mailstack import build_snapshot
from mailadmin.mailstack.apply import ApplyResult
from mailadmin.mailstack.snapshot import StackPorts
from mailadmin.services import sql_access
from tests.databases import BACKENDS, throwaway_database
from tests.mailstack.conftest import MESSAGE_SIZE_LIMIT, populate
from tests.mailstack24.conftest import Stack24, chroot24  # noqa: F401  (fixture)

#: Port bases for this folder's stacks (each stack uses base+24 ... base+993): 45000-49999.
PORT_BASES = range(45000, 50000, 1000)


def port_base() -> int:
    """A base in PORT_BASES whose ports are all free on 127.0.0.1 now (parallel runs start at
    different places). `sandbox.free_port_base` may wander past its `stop`, so not used."""
    offsets = StackPorts.from_base(0).as_dict().values()
    first = os.getpid() % len(PORT_BASES)
    for base in [*PORT_BASES[first:], *PORT_BASES[:first]]:
        free = True
        for off in offsets:
            with socket.socket() as sock:
                # as the servers do: a TIME_WAIT left by an earlier stack does not count
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", base + off))
                except OSError:
                    free = False
                    break
        if free:
            return base
    raise RuntimeError(f"no free port base in {PORT_BASES}")


@dataclasses.dataclass
class SqlStack24(Stack24):
    backend: str = ""

    def reapply(self, *, restart: bool = False) -> ApplyResult:
        raise AssertionError("SQL mode: the servers must follow the database without an apply")


@pytest.fixture(scope="session", params=BACKENDS)
def stack(request: pytest.FixtureRequest, chroot24: Chroot) -> Iterator[SqlStack24]:  # noqa: F811
    backend: str = request.param
    # /tmp, not tmp_path: Postfix's master (user postfix) must traverse every parent
    directory = Path(tempfile.mkdtemp(prefix="mss24-", dir="/tmp"))
    directory.chmod(0o755)
    dovecot_pid: int | None = None
    shared = False
    try:
        with throwaway_database(backend, directory) as url:
            engine = make_engine(url)
            try:
                migrate.upgrade(engine)
                with Session(engine) as s:
                    populate(s)
                    s.commit()
                base = port_base()
                settings = sandbox_settings(directory, base,
                                            message_size_limit=MESSAGE_SIZE_LIMIT,
                                            mode="sql", dovecot_version="2.4")
                ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
                prepare_dirs(settings)
                sql_access.grant(engine, settings.config_dir)
                chroot24.share(directory)
                shared = True
                with Session(engine) as s:
                    snapshot = build_snapshot(s, settings)
                sandbox24_apply(snapshot, chroot24)
                info = start_sandbox24(directory, base, chroot24)
                dovecot_pid = info.dovecot_pid
                print(f"\n[{backend}] SQL-mode mail stack (Dovecot {chroot24.version()}) up "
                      f"in {info.startup_seconds:.2f}s on {info.ports.as_dict()}")
                yield SqlStack24(info, settings, engine, directory / "log", chroot=chroot24,
                                 backend=backend)
            finally:
                t0 = time.monotonic()
                if shared:
                    stop_sandbox24(directory, chroot24, dovecot_pid=dovecot_pid)
                print(f"\n[{backend}] mail stack (Dovecot 2.4) down in "
                      f"{time.monotonic() - t0:.2f}s")
                engine.dispose()
    finally:
        if os.environ.get("MAILSTACK_KEEP") is None:
            shutil.rmtree(directory, ignore_errors=True)
