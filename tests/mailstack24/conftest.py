"""The `stack` fixture of tests/mailstack, with Dovecot 2.4 instead of 2.3.

Same database, same accounts (`populate`), same client helpers; the difference is that the
snapshot is rendered with ``dovecot_version="2.4"``, applied with the chroot's doveconf /
sievec / doveadm, and served by Debian 13's real Dovecot 2.4.1 running in a trixie chroot
(`mailadmin.lab.chroot24`) next to the host's Postfix 3.7. The chroot is built in this
session when missing (about 40 s from nothing, 2-3 s from the cached tarball), so with
CI=true these tests run, never skip.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from mailadmin.lab.chroot24 import Chroot, ensure_chroot
from mailadmin.lab.sandbox import free_port_base, sandbox_settings
from mailadmin.lab.sandbox24 import sandbox24_apply, start_sandbox24, stop_sandbox24
from mailadmin.mailstack import build_snapshot
from mailadmin.mailstack.apply import ApplyResult
from mailadmin.models import Base
from tests.mailstack.conftest import IN_CI, MESSAGE_SIZE_LIMIT, Stack, populate

HOST_TOOLS = ("postfix", "postmap", "postconf", "chroot", "mount", "tar")


def stack24_unavailable() -> str | None:
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"not installed: {', '.join(missing)}"
    if os.geteuid() != 0:
        return "the Dovecot 2.4 chroot needs root"
    return None


def require_stack24() -> None:
    """In CI a missing prerequisite is a failure, never a skip."""
    why = stack24_unavailable()
    if why is None:
        return
    if IN_CI:
        pytest.fail(f"Dovecot 2.4 mail stack needed in CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def chroot24() -> Chroot:
    require_stack24()
    c = ensure_chroot()
    print(f"\nDovecot 2.4 chroot {c.how} in {c.seconds:.1f}s: {c.version()}")
    return c


@dataclasses.dataclass
class Stack24(Stack):
    chroot: Chroot | None = None

    @property
    def dovecot_conf(self) -> str:
        return f"{self.settings.config_dir}/current/dovecot/dovecot.conf"

    def doveadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The chroot's doveadm (the host's 2.3 one cannot read a 2.4 config)."""
        assert self.chroot is not None
        return self.chroot.run("doveadm", "-c", self.dovecot_conf, *args)

    def reapply(self, *, restart: bool = False) -> ApplyResult:
        assert self.chroot is not None
        with self.session() as s:
            snapshot = build_snapshot(s, self.settings)
        return sandbox24_apply(snapshot, self.chroot, restart=restart)


@pytest.fixture(scope="session")
def stack(chroot24: Chroot) -> Iterator[Stack24]:
    # /tmp, not tmp_path: Postfix's master (user postfix) must traverse every parent
    directory = Path(tempfile.mkdtemp(prefix="mst24-", dir="/tmp"))
    directory.chmod(0o755)
    settings = sandbox_settings(directory, free_port_base(start=40000, stop=50000),
                                message_size_limit=MESSAGE_SIZE_LIMIT, dovecot_version="2.4")
    engine = create_engine(f"sqlite:///{directory}/panel.sqlite")
    Base.metadata.create_all(engine)
    chroot24.share(directory)
    dovecot_pid: int | None = None
    try:
        with Session(engine) as s:
            populate(s)
            s.commit()
            snapshot = build_snapshot(s, settings)
        sandbox24_apply(snapshot, chroot24)
        info = start_sandbox24(directory, settings.ports.smtp - 25, chroot24)
        dovecot_pid = info.dovecot_pid
        print(f"\nmail stack (Dovecot 2.4) up in {info.startup_seconds:.2f}s "
              f"on {info.ports.as_dict()}")
        yield Stack24(info, settings, engine, directory / "log", chroot=chroot24)
    finally:
        t0 = time.monotonic()
        stop_sandbox24(directory, chroot24, dovecot_pid=dovecot_pid)
        print(f"\nmail stack (Dovecot 2.4) down in {time.monotonic() - t0:.2f}s")
        engine.dispose()
        if os.environ.get("MAILSTACK_KEEP") is None:
            shutil.rmtree(directory, ignore_errors=True)
