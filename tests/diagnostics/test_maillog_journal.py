"""The mail log from the journal (issue 15): when the servers log to syslog, the mail log page
reads ``journalctl -o json``.

journald is not running on the test machines, so the test starts a real journald of its own
in a private journal namespace, sends it the syslog datagrams Postfix and Dovecot send to
/dev/log (glibc's format), and reads them back with the real journalctl. Only the unit filter
is left off: datagrams sent from a test come from no unit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import time
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mailadmin.diagnostics.maillog import (
    JOURNAL_UNITS,
    journal_lines,
    journalctl_source,
    search_log,
)
from mailadmin.services.server import get_server_settings

from ..databases import unavailable
from .test_maillog import LIVE_DOVECOT, LIVE_POSTFIX, actors  # noqa: F401  (a fixture)

JOURNALD = "/lib/systemd/systemd-journald"
LEVELS = {"Info": 6, "Warning": 4, "Error": 3}


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    if not os.path.exists(JOURNALD) or shutil.which("journalctl") is None:
        unavailable("systemd-journald and journalctl are needed (package systemd)")
    if os.geteuid() != 0:
        unavailable("a private journald namespace needs root")
    name = f"mailadmin{uuid.uuid4().hex[:8]}"
    server = subprocess.Popen([JOURNALD, name], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    run = Path(f"/run/systemd/journal.{name}")
    try:
        deadline = time.monotonic() + 10
        while not (run / "dev-log").exists():
            assert time.monotonic() < deadline and server.poll() is None, "journald did not start"
            time.sleep(0.05)
        yield name
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(run, ignore_errors=True)
        machine = Path("/etc/machine-id").read_text().strip()
        for root in ("/var/log/journal", "/run/log/journal"):
            shutil.rmtree(f"{root}/{machine}.{name}", ignore_errors=True)


def syslog_datagrams(postfix: str, dovecot: str) -> list[bytes]:
    """The test's log-file lines as the servers send them to syslog instead (mail facility)."""
    out = []
    stamp = dt.datetime.now().strftime("%b %e %H:%M:%S")
    for line in postfix.splitlines():
        program_and_message = line.split(" ", 4)[4]  # drop "Nov 26 11:30:00 mail"
        out.append(f"<22>{stamp} {program_and_message}".encode())
    for line in dovecot.splitlines():
        rest = line.split(" ", 3)[3]  # "lmtp(...)<14><S>: Info: msgid=..."
        service, _, tail = rest.partition(": ")
        level, _, message = tail.partition(": ")
        out.append(f"<{16 + LEVELS[level]}>{stamp} dovecot: {service}: {message}".encode())
    return out


@pytest.fixture(scope="module")
def journal(namespace: str) -> str:
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for datagram in syslog_datagrams(LIVE_POSTFIX, LIVE_DOVECOT):
        sender.sendto(datagram, f"/run/systemd/journal.{namespace}/dev-log")
    sender.close()
    read = journalctl_source(units=(), extra_args=[f"--namespace={namespace}"])
    deadline = time.monotonic() + 10
    while "4D5E6F7A8B" not in "".join(read(dt.datetime.now() - dt.timedelta(hours=1))):
        assert time.monotonic() < deadline, "journald did not store the lines"
        time.sleep(0.1)
    return namespace


def test_the_journal_gives_the_same_lines_as_the_files(journal: str) -> None:
    now = dt.datetime.now()
    raw = list(journalctl_source(units=(), extra_args=[f"--namespace={journal}"])(
        now - dt.timedelta(hours=1)))
    lines = journal_lines(raw, now)
    assert {x.source for x in lines} == {"postfix", "dovecot"}
    assert {x.file for x in lines} == {"journal"}
    lmtp = [x for x in lines if x.program == "lmtp" and x.source == "dovecot"]
    assert [(x.user, x.session) for x in lmtp] == [("alice@one.test", "SeSsIoN2"),
                                                   ("bob@two.test", "SeSsIoN2:R2")]


def test_the_mail_log_page_reads_the_journal_when_servers_use_syslog(
    session: Session, actors: t.Any, journal: str,  # noqa: F811
) -> None:
    get_server_settings(session).log_dir = None  # the admin chose syslog
    found = search_log(session, actors["admin"], "4D5E6F7A8B", since=dt.timedelta(hours=1),
                       journal=journalctl_source(units=(),
                                                 extra_args=[f"--namespace={journal}"]))
    assert found.note is None
    story = found.stories[0]
    assert story.outcome == "delivered"
    assert sum("saved mail to INBOX" in x.text for x in story.lines) == 2
    # the customers' scopes hold as with the files
    mine = search_log(session, actors["c2"], "bob@two.test", since=dt.timedelta(hours=1),
                      journal=journalctl_source(units=(),
                                                extra_args=[f"--namespace={journal}"]))
    assert all("alice@one.test" not in x.text for s in mine.stories for x in s.lines)


def test_a_journal_that_cannot_be_read_is_said_plainly(session: Session, actors: t.Any,  # noqa: F811
                                                      tmp_path: Path) -> None:
    get_server_settings(session).log_dir = None
    found = search_log(session, actors["admin"], "alice@one.test",
                       journal=journalctl_source(extra_args=[f"--file={tmp_path}/none.journal"]))
    assert found.stories == []
    assert found.note is not None and "journal could not be read" in found.note


def test_the_default_reads_the_postfix_and_dovecot_units() -> None:
    assert {"postfix.service", "postfix@-.service", "dovecot.service"} == set(JOURNAL_UNITS)


def test_binary_messages_and_other_programs() -> None:
    now = dt.datetime.now()
    stamp = str(int(now.timestamp() * 1_000_000))
    text = [ord(c) for c in "ABCDEF7890: removed"]
    entries = [
        json.dumps({"__REALTIME_TIMESTAMP": stamp, "SYSLOG_IDENTIFIER": "postfix/qmgr",
                    "_PID": "7", "MESSAGE": text}),
        json.dumps({"__REALTIME_TIMESTAMP": stamp, "SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "x"}),
        "not json",
    ]
    lines = journal_lines(entries, now)
    assert len(lines) == 1 and lines[0].program == "postfix/qmgr"
