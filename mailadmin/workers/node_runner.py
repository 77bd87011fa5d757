"""`mailadmin node run`: keep this machine's Dovecot + Postfix current with the database.

The one process on a mail node that writes the servers' files and reloads them. Each loop it
checks in (`services.nodes.node_checkin`); when a change is pending and no other change came
for `quiet_seconds`, it applies (`services.nodes.apply_on_node`, under the node's row lock)
and records the outcome on the node's row. Between loops it sleeps until the next change: on
PostgreSQL it LISTENs for the NOTIFY every committed change sends, so a change is applied
within moments; on the other databases it polls every `interval` seconds. A node that was
down catches up at its first loop, since the watermark it applied through is kept in the
database. Like the apply watcher it owns its transactions, one per check-in and per apply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import typing as t
from collections.abc import Callable, Iterator

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..db import transaction
from ..mailstack.apply import Tools
from ..models import ConfigRevision, Role, utcnow
from ..services import nodes
from ..services.changes import NOTIFY_CHANNEL
from ..services.context import Actor
from ..services.stack import ApplyReport

log = logging.getLogger(__name__)

NODE_RUNNER = Actor(name="node-runner", role=Role.ADMIN, channel="system", source="node")


class ChangeWaiter(t.Protocol):
    def wait(self, timeout: float) -> bool:
        """Sleep until a change is announced (True) or `timeout` seconds pass (False)."""


@dataclasses.dataclass
class Polling:
    stop: threading.Event

    def wait(self, timeout: float) -> bool:
        self.stop.wait(timeout)
        return False


class PostgresListener:
    """LISTEN on the panel's change channel over a connection of its own (autocommit)."""

    def __init__(self, engine: Engine, stop: threading.Event) -> None:
        import psycopg

        url = engine.url.set(drivername="postgresql")
        self.stop = stop
        self.connection = psycopg.connect(url.render_as_string(hide_password=False),
                                          autocommit=True)
        self.connection.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(self, timeout: float) -> bool:
        # short slices, so a stop request is seen within a second
        remaining = timeout
        while remaining > 0 and not self.stop.is_set():
            slice_ = min(1.0, remaining)
            for _ in self.connection.notifies(timeout=slice_, stop_after=1):
                return True
            remaining -= slice_
        return False

    def close(self) -> None:
        self.connection.close()


@contextlib.contextmanager
def change_waiter(engine: Engine, stop: threading.Event) -> Iterator[ChangeWaiter]:
    if engine.dialect.name != "postgresql":
        yield Polling(stop)
        return
    listener = PostgresListener(engine, stop)
    try:
        yield listener
    finally:
        listener.close()


@dataclasses.dataclass
class RunResult:
    applies: int = 0
    failures: int = 0
    last: ConfigRevision | None = None


def run_node(
    factory: sessionmaker[Session],
    engine: Engine,
    name: str,
    address: str,
    *,
    quiet_seconds: float = 1.0,
    interval: float = 5.0,
    once: bool = False,
    stop: threading.Event | None = None,
    tools: Tools | None = None,
    on_apply: Callable[[ApplyReport], None] | None = None,
    actor: Actor = NODE_RUNNER,
    sandbox: nodes.NodeSandbox | None = None,
) -> RunResult:
    """Apply pending changes on this node until `stop` is set (`once`: one apply, or return
    at once when nothing is pending). A failed apply is not retried until something changes.
    `sandbox`: the node's servers run from a sandbox folder (`mailadmin sandbox start
    --nodes`), not from the server settings' paths."""
    stop = stop or threading.Event()
    outcome = RunResult()
    failed_at: dt.datetime | None = None
    with change_waiter(engine, stop) as waiter:
        while not stop.is_set():
            sleep = interval
            try:
                with transaction(factory) as session:
                    check = nodes.node_checkin(session, actor, name, address)
                pending = check.pending and check.changed_at != failed_at
                if once and not pending:
                    return outcome
                if pending and check.changed_at is not None:
                    settled = (utcnow() - check.changed_at).total_seconds()
                    if settled >= quiet_seconds:
                        with transaction(factory) as session:
                            report = nodes.apply_on_node(session, actor, name, tools=tools,
                                                         sandbox=sandbox)
                            session.expunge(report.revision)
                        outcome.applies += 1
                        outcome.last = report.revision
                        if report.revision.state == "failed":
                            outcome.failures += 1
                            failed_at = check.changed_at
                        if on_apply is not None:
                            on_apply(report)
                        if once:
                            return outcome
                        continue
                    sleep = max(0.05, quiet_seconds - settled)
            except Exception:  # a database restart or a full disk may pass: keep running
                log.exception("node %s: check-in or apply failed", name)
                if once:
                    raise
            waiter.wait(sleep)
    return outcome
