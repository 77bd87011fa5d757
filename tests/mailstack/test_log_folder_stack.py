"""The log folder against the real servers (issue 15): an apply creates a missing log folder,
both servers write there after the reload, the rotation the README documents works
(``postfix logrotate``, ``doveadm log reopen``) and the mail log reads old and new files."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailadmin.diagnostics.maillog import search_log
from mailadmin.services.context import Actor

from .conftest import (  # noqa: F401  (service_stack is a fixture used below)
    SERVICE_PASSWORD,
    ServiceStack,
    eventually,
    service_stack,
)

pytestmark = pytest.mark.mailstack
USER = "ben@svc.test"


@pytest.fixture
def fresh_log_dir(service_stack: ServiceStack) -> Iterator[Path]:  # noqa: F811
    svc = service_stack
    old = str(svc.log_dir)
    folder = Path(old).parent / "fresh-log"
    assert not folder.exists()
    svc.set_settings(log_dir=str(folder))
    report = svc.apply()
    assert report.revision.state == "applied", report.revision.validation_output
    try:
        yield folder
    finally:
        svc.set_settings(log_dir=old)
        assert svc.apply().revision.state == "applied"


def logged_in_lines(folder: Path) -> int:
    return sum(f.read_text(errors="replace").count(f"user=<{USER}>")
               for f in folder.glob("dovecot.log*") if f.suffix != ".gz")


def test_apply_makes_the_folder_and_both_servers_write_there(
    fresh_log_dir: Path, service_stack: ServiceStack,  # noqa: F811
) -> None:
    svc = service_stack
    assert stat.S_IMODE(fresh_log_dir.stat().st_mode) == 0o750
    assert eventually(lambda: svc.imap_login(USER, SERVICE_PASSWORD)[0])
    assert eventually(lambda: logged_in_lines(fresh_log_dir) >= 1)
    with svc.smtp() as client:
        client.sendmail("someone@remote.test", [USER], b"Subject: log\r\n\r\nhello\r\n")
    assert eventually(lambda: (fresh_log_dir / "postfix.log").exists()
                      and f"to=<{USER}>" in (fresh_log_dir / "postfix.log").read_text())

    # the rotation of the README, then a new login in the fresh files
    config = svc.settings.config_dir
    rotated = subprocess.run(["postfix", "-c", f"{config}/current/postfix", "logrotate"],
                             capture_output=True, text=True, check=False)
    assert rotated.returncode == 0, rotated.stderr
    assert list(fresh_log_dir.glob("postfix.log.*.gz"))
    os.rename(fresh_log_dir / "dovecot.log", fresh_log_dir / "dovecot.log.1")
    reopened = subprocess.run(
        ["doveadm", "-c", f"{config}/current/dovecot/dovecot.conf", "log", "reopen"],
        capture_output=True, text=True, check=False)
    assert reopened.returncode == 0, reopened.stderr
    assert svc.imap_login(USER, SERVICE_PASSWORD)[0]
    assert eventually(lambda: (fresh_log_dir / "dovecot.log").exists()
                      and f"user=<{USER}>" in (fresh_log_dir / "dovecot.log").read_text())

    with svc.factory() as s:
        found = search_log(s, Actor.operator(), USER, since=dt.timedelta(hours=1))
    files = {line.file for story in found.stories for line in story.lines}
    assert "dovecot.log" in files and "dovecot.log.1" in files
    assert any(name.startswith("postfix.log.") and name.endswith(".gz") for name in files)
    assert any(story.kind == "message" and story.outcome == "delivered"
               for story in found.stories)
