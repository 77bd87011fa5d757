"""The files-mode mail-stack fixtures, in SQL mode: real Dovecot + Postfix querying the panel's
own (migrated) database on SQLite, PostgreSQL and MariaDB.

`stack` has the same name and type as the files-mode fixture, so the matrix runs unchanged
against it; it is parametrized (session scope) over the three backends. The servers read the
``mailsrv_*`` views as the database user `mailadmin sql-access grant` creates, so nothing is
re-rendered or applied when the data changes; `SqlStack.reapply` refuses to run to keep it so.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mailadmin import migrate
from mailadmin.db import make_engine
from mailadmin.lab.sandbox import (
    ensure_vmail_user,
    free_port_base,
    prepare_dirs,
    sandbox_apply,
    sandbox_settings,
    start_sandbox,
    stop_sandbox,
)
from mailadmin.mailstack import build_snapshot
from mailadmin.mailstack.apply import ApplyResult
from mailadmin.services import sql_access
from tests.databases import BACKENDS, throwaway_database
from tests.mailstack.conftest import MESSAGE_SIZE_LIMIT, Stack, populate, require_stack


@dataclasses.dataclass
class SqlStack(Stack):
    backend: str = ""

    def reapply(self, *, restart: bool = False) -> ApplyResult:
        raise AssertionError("SQL mode: the servers must follow the database without an apply")


@pytest.fixture(scope="session", params=BACKENDS)
def stack(request: pytest.FixtureRequest) -> Iterator[SqlStack]:
    require_stack()
    backend: str = request.param
    directory = Path(tempfile.mkdtemp(prefix="mss-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        with throwaway_database(backend, directory) as url:
            engine = make_engine(url)
            migrate.upgrade(engine)
            with Session(engine) as s:
                populate(s)
                s.commit()
            settings = sandbox_settings(directory, free_port_base(start=30000, stop=40000),
                                        message_size_limit=MESSAGE_SIZE_LIMIT, mode="sql")
            ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
            prepare_dirs(settings)
            sql_access.grant(engine, settings.config_dir)
            with Session(engine) as s:
                snapshot = build_snapshot(s, settings)
            sandbox_apply(snapshot)
            info = start_sandbox(directory, settings.ports.smtp - 25)
            print(f"\n[{backend}] SQL-mode mail stack up in {info.startup_seconds:.2f}s")
            try:
                yield SqlStack(info, settings, engine, directory / "log", backend=backend)
            finally:
                t0 = time.monotonic()
                stop_sandbox(directory)
                print(f"\n[{backend}] mail stack down in {time.monotonic() - t0:.2f}s")
                engine.dispose()
    finally:
        if os.environ.get("MAILSTACK_KEEP") is None:
            shutil.rmtree(directory, ignore_errors=True)
