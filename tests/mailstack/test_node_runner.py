"""`mailadmin node run`: the node's own runner applies, reports, catches up, and never
interleaves with another apply; the panel's watcher leaves applying to it.

Real Dovecot + Postfix from what the runner wrote, on a migrated panel database on SQLite
(polling) and PostgreSQL (LISTEN/NOTIFY).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

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
from mailadmin.models import ConfigRevision, MailNode, PanelUser, Role
from mailadmin.services import accounts, mailboxes, nodes
from mailadmin.services import server_settings as settings_service
from mailadmin.services.context import Actor
from mailadmin.services.server import get_server_settings
from mailadmin.workers import apply_watcher, node_runner
from panel import create_app
from tests.databases import throwaway_database
from tests.web import csrf_token

from .conftest import (
    SERVICE_PASSWORD,
    ServiceStack,
    eventually,
    imap_connection,
    require_stack,
    service_populate,
)

pytestmark = pytest.mark.mailstack
OP = Actor.operator()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def node_stack(request: pytest.FixtureRequest) -> Iterator[ServiceStack]:
    """Like `service_stack`, on the given backend, applied by the node runner."""
    require_stack()
    directory = Path(tempfile.mkdtemp(prefix="mnr-", dir="/tmp"))
    directory.chmod(0o755)
    instance = directory / "instance"
    instance.mkdir()
    try:
        with throwaway_database(request.param, instance) as url:
            engine = make_engine(url)
            migrate.upgrade(engine)
            factory = make_session_factory(engine)
            base = free_port_base()
            ports = {"imap": 143, "pop3": 110, "submission": 587, "smtp": 25, "lmtp": 24,
                     "reinject": 26}
            with transaction(factory) as s:
                settings_service.update_settings(s, OP, {
                    "mail_hostname": "mail.svc.test",
                    "postmaster_address": "postmaster@svc.test",
                    "config_output_dir": f"{directory}/config",
                    "run_dir": f"{directory}/run",
                    "state_dir": f"{directory}/state",
                    "queue_dir": f"{directory}/spool/postfix",
                    "mail_root": f"{directory}/mail",
                    "log_dir": f"{directory}/log",
                    "listen_address": "127.0.0.1",
                    **{f"{name}_listen_port": str(base + port) for name, port in ports.items()},
                })
            service_populate(factory)
            with factory() as s:
                settings = settings_from_server_settings(get_server_settings(s))
            ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
            prepare_dirs(settings)
            first = node_runner.run_node(factory, engine, "node-a", "127.0.0.1", once=True,
                                         quiet_seconds=0)
            assert first.applies == 1 and first.failures == 0
            info = start_sandbox(directory, base)
            try:
                yield ServiceStack(info, settings, engine, directory / "log", factory=factory,
                                   instance=instance, url=url, port_base=base)
            finally:
                stop_sandbox(directory)
                engine.dispose()
    finally:
        if os.environ.get("MAILSTACK_KEEP") is None:
            shutil.rmtree(directory, ignore_errors=True)


def _logs_in(stack: ServiceStack, address: str) -> bool:
    with imap_connection(stack.port_base + 143) as connection:
        try:
            return connection.login(address, SERVICE_PASSWORD)[0] == "OK"
        except Exception:
            return False


def _node(stack: ServiceStack, name: str = "node-a") -> MailNode:
    with stack.factory() as s:
        node = s.query(MailNode).filter_by(name=name).one()
        s.expunge(node)
        return node


@pytest.fixture
def runner(node_stack: ServiceStack) -> Iterator[threading.Event]:
    """`run_node` in a thread; polling every 30 s, so on PostgreSQL only NOTIFY is quick."""
    stop = threading.Event()
    interval = 30.0 if node_stack.engine.dialect.name == "postgresql" else 0.2
    thread = threading.Thread(target=node_runner.run_node, args=(
        node_stack.factory, node_stack.engine, "node-a", "127.0.0.1"),
        kwargs={"quiet_seconds": 0.2, "interval": interval, "stop": stop}, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive()


def test_a_change_is_applied_by_the_runner_and_reported(node_stack: ServiceStack,
                                                        runner: threading.Event) -> None:
    stack = node_stack
    started = time.monotonic()
    with stack.unit() as s:
        mailboxes.create_mailbox(s, OP, "noded@svc.test", SERVICE_PASSWORD)
    # on PostgreSQL the runner polls every 30 s: only the NOTIFY can make this quick
    assert eventually(lambda: _logs_in(stack, "noded@svc.test"), timeout=15)
    assert time.monotonic() - started < 15
    with stack.unit() as s:
        (status,) = nodes.list_nodes(s, OP)
    assert status.name == "node-a" and status.online and status.current
    assert status.applied_revision_id is not None and status.last_error is None
    listed = stack.cli("node", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["current"] is True


def test_a_node_that_was_down_catches_up(node_stack: ServiceStack) -> None:
    stack = node_stack
    for n in range(3):
        with stack.unit() as s:
            mailboxes.create_mailbox(s, OP, f"late{n}@svc.test", SERVICE_PASSWORD)
    with stack.unit() as s:
        (status,) = nodes.list_nodes(s, OP)
    assert not status.current and status.lag_seconds >= 0
    assert not _logs_in(stack, "late0@svc.test")
    result = CliRunner().invoke(
        __import__("mailadmin.cli", fromlist=["main"]).main,
        ["--instance", str(stack.instance), "node", "run", "--name", "node-a", "--once",
         "--quiet-seconds", "0"],
        env={"MAILADMIN_DATABASE_URL": stack.url}, catch_exceptions=False)
    assert result.exit_code == 0 and "applied revision" in result.output, result.output
    assert all(eventually(lambda n=n: _logs_in(stack, f"late{n}@svc.test")) for n in range(3))
    assert _node(stack).applied_through is not None


def test_the_panel_watcher_leaves_applying_to_a_live_runner(node_stack: ServiceStack) -> None:
    stack = node_stack
    with stack.unit() as s:
        settings_service.update_settings(s, OP, {"apply_automatically": "on"})
        nodes.node_checkin(s, OP, "node-a", "127.0.0.1")
        mailboxes.create_mailbox(s, OP, "panelnot@svc.test", SERVICE_PASSWORD)
    result = apply_watcher.watch(stack.factory, quiet_seconds=0, once=True,
                                 only_when_automatic=True, recheck_seconds=None, interval=0.05,
                                 stop=_stop_after(1.0))
    assert result.applies == 0
    node_runner.run_node(stack.factory, stack.engine, "node-a", "127.0.0.1", once=True,
                         quiet_seconds=0)
    assert eventually(lambda: _logs_in(stack, "panelnot@svc.test"))


def _stop_after(seconds: float) -> threading.Event:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    return stop


# SQLite serialises writing transactions by itself; the node's row lock is for the servers
@pytest.mark.parametrize("node_stack", ["postgresql"], indirect=True)
def test_two_applies_on_one_node_never_interleave(node_stack: ServiceStack) -> None:
    stack = node_stack
    with stack.unit() as s:
        mailboxes.create_mailbox(s, OP, "race@svc.test", SERVICE_PASSWORD)
    spans: dict[str, list[float]] = {}
    barrier = threading.Barrier(2)

    def apply(who: str) -> None:
        barrier.wait()
        with transaction(stack.factory) as s:
            def step(name: str) -> None:
                spans.setdefault(who, []).append(time.monotonic())
            nodes.apply_on_node(s, OP, "node-a", progress=step)
            spans[who].append(time.monotonic())

    threads = [threading.Thread(target=apply, args=(who,)) for who in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    (a_start, a_end), (b_start, b_end) = ((v[0], v[-1]) for v in spans.values())
    assert a_end <= b_start or b_end <= a_start, spans


def test_the_admin_sees_every_node_and_others_do_not(node_stack: ServiceStack) -> None:
    stack = node_stack
    with stack.unit() as s:
        nodes.node_checkin(s, OP, "node-a", "127.0.0.1")
        if s.query(PanelUser).filter_by(username="nodeadmin").first() is None:
            accounts.create_panel_user(s, OP, "nodeadmin", "correct horse 9", Role.ADMIN)
    app = create_app({"INSTANCE_PATH": str(stack.instance), "DATABASE_URL": stack.url,
                      "TESTING": True})
    for username, expected in (("nodeadmin", 200), ("svc-cust", 403)):
        client = app.test_client()
        token = csrf_token(client.get("/login").get_data(as_text=True))
        client.post("/login", data={"username": username, "password": "correct horse 9",
                                    "csrf_token": token})
        page = client.get("/admin/nodes")
        assert page.status_code == expected
        if expected == 200:
            text = page.get_data(as_text=True)
            assert "node-a" in text and "online" in text



def test_apply_now_in_the_panel_leaves_it_to_a_live_runner(node_stack: ServiceStack) -> None:
    stack = node_stack
    with stack.unit() as s:
        nodes.node_checkin(s, OP, "node-a", "127.0.0.1")
        if s.query(PanelUser).filter_by(username="nodeadmin").first() is None:
            accounts.create_panel_user(s, OP, "nodeadmin", "correct horse 9", Role.ADMIN)
        mailboxes.create_mailbox(s, OP, "notbypanel@svc.test", SERVICE_PASSWORD)
    app = create_app({"INSTANCE_PATH": str(stack.instance), "DATABASE_URL": stack.url,
                      "TESTING": True})
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "nodeadmin", "password": "correct horse 9",
                                "csrf_token": token})
    with stack.factory() as s:
        before = s.query(ConfigRevision).count()
    page = client.get("/admin/revisions").get_data(as_text=True)
    answer = client.post("/admin/config/apply", data={"csrf_token": csrf_token(page)},
                         follow_redirects=True)
    assert "the node runner on node-a applies every change" in answer.get_data(as_text=True)
    with stack.factory() as s:
        assert s.query(ConfigRevision).count() == before  # the panel applied nothing
    assert not _logs_in(stack, "notbypanel@svc.test")
    node_runner.run_node(stack.factory, stack.engine, "node-a", "127.0.0.1", once=True,
                         quiet_seconds=0)
    assert eventually(lambda: _logs_in(stack, "notbypanel@svc.test"))
