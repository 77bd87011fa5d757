"""`mailadmin sandbox` runs what the server settings say: SQL mode and Dovecot 2.4 included."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailadmin.services import mailboxes
from mailadmin.services.context import Actor

from .conftest import SERVICE_PASSWORD, ServiceStack, imap_connection

pytestmark = pytest.mark.mailstack
OP = Actor.operator()


@pytest.fixture
def scratch() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="msm-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _logs_in(port: int, address: str) -> bool:
    with imap_connection(port) as connection:
        try:
            return connection.login(address, SERVICE_PASSWORD)[0] == "OK"
        except Exception:
            return False


def test_sql_mode_sandbox_reads_the_panel_database(service_stack: ServiceStack,
                                                   scratch: Path) -> None:
    svc = service_stack
    svc.set_settings(stack_mode="sql")
    try:
        start = svc.cli("sandbox", "start", "--dir", str(scratch))
        assert start.exit_code == 0, start.output
        assert "Dovecot 2.3 + Postfix, SQL mode" in start.output
        imap = json.loads((scratch / "sandbox.json").read_text())["port_base"] + 143
        assert (scratch / "config" / "current" / "dovecot" / "dovecot-sql.conf.ext").exists()
        # a mailbox created after the start logs in with no apply: the views are read live
        with svc.unit() as s:
            mailboxes.create_mailbox(s, OP, "sqlsand@svc.test", SERVICE_PASSWORD)
        assert _logs_in(imap, "sqlsand@svc.test")
        applied = svc.cli("sandbox", "apply", "--dir", str(scratch))
        assert applied.exit_code == 0 and "SQL mode" in applied.output, applied.output
    finally:
        svc.cli("sandbox", "stop", "--dir", str(scratch))
        svc.set_settings(stack_mode="files")
        with svc.unit() as s:
            mailboxes.delete_mailbox(s, OP, "sqlsand@svc.test", confirm="sqlsand@svc.test")


def test_dovecot_24_sandbox_runs_in_the_chroot(service_stack: ServiceStack,
                                               scratch: Path) -> None:
    from tests.mailstack24.conftest import require_stack24

    require_stack24()
    svc = service_stack
    svc.set_settings(dovecot_version="2.4")
    try:
        start = svc.cli("sandbox", "start", "--dir", str(scratch))
        assert start.exit_code == 0, start.output
        assert "Dovecot 2.4 (Debian 13 chroot) + Postfix, files mode" in start.output
        conf = (scratch / "config" / "current" / "dovecot" / "dovecot.conf").read_text()
        assert "dovecot_config_version" in conf
        imap = json.loads((scratch / "sandbox.json").read_text())["port_base"] + 143
        assert _logs_in(imap, "anna@svc.test")
        stop = svc.cli("sandbox", "stop", "--dir", str(scratch))
        assert stop.exit_code == 0, stop.output
        assert not _port_answers(imap)
    finally:
        svc.cli("sandbox", "stop", "--dir", str(scratch))
        svc.set_settings(dovecot_version="2.3")


def _port_answers(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False
