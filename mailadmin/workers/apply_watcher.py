"""The apply watcher: apply the mail servers' configuration once a burst of changes is over.

`mailadmin apply --watch` runs it in the foreground and `mailadmin serve` in a daemon thread
(where it acts only while the ``apply_automatically`` setting is on). Unlike a service it owns
its transactions: each check and each apply is one, through
`services.stack.apply_config_report`, which holds every rule. The watermark that makes the
coalescing lossless is described in `mailadmin.services.stack`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from ..db import transaction
from ..mailstack.apply import Tools
from ..models import ConfigRevision, Role, ServerSettings, utcnow
from ..services.context import Actor
from ..services.nodes import runner_active
from ..services.placement import domains_on_nodes
from ..services.stack import (
    AUTO_APPLY_INTERVAL_SECONDS,
    AUTO_APPLY_QUIET_SECONDS,
    ApplyReport,
    Progress,
    apply_config_report,
    changes_pending,
)
from .dkim_rotation import advance_dkim_keys
from .domain_checker import recheck_pending

log = logging.getLogger(__name__)

WATCHER = Actor(name="auto-apply", role=Role.ADMIN, channel="system", source="watcher")


@dataclasses.dataclass
class WatchResult:
    applies: int = 0
    failures: int = 0
    last: ConfigRevision | None = None


def watch(
    factory: sessionmaker[Session],
    *,
    quiet_seconds: float = AUTO_APPLY_QUIET_SECONDS,
    interval: float = 1.0,
    once: bool = False,
    stop: threading.Event | None = None,
    only_when_automatic: bool = False,
    actor: Actor = WATCHER,
    on_apply: Callable[[ApplyReport], None] | None = None,
    progress: Progress | None = None,
    tools: Tools | None = None,
    recheck_seconds: float | None = 60.0,
) -> WatchResult:
    """Apply whenever changes are pending and none came for `quiet_seconds`.

    Every `recheck_seconds` (not with `once`; None: never) it also re-checks the DNS proof of
    pending domains (`workers.domain_checker`) and moves DKIM keys on
    (`workers.dkim_rotation`); a domain verified or a key switched there is a change like
    any other, applied by this same loop.

    Each check and each apply is its own transaction. A failed apply is not retried until
    something changes again. `once`: return after one apply, or at once when nothing is
    pending. `only_when_automatic`: do nothing while the ``apply_automatically`` setting is
    off (the panel's background thread; the setting can be switched at any time).
    """
    stop = stop or threading.Event()
    outcome = WatchResult()
    failed_at: dt.datetime | None = None
    last_recheck = -math.inf
    while not stop.is_set():
        if (recheck_seconds is not None and not once
                and time.monotonic() - last_recheck >= recheck_seconds):
            last_recheck = time.monotonic()
            try:
                verified = recheck_pending(factory, now=utcnow())
                if verified:
                    log.info("domain verification: verified %s", ", ".join(verified))
            except Exception:  # DNS or database trouble passes; try again next round
                log.exception("domain verification: re-check failed")
            try:
                if advance_dkim_keys(factory, now=utcnow()):
                    log.info("dkim rotation: keys switched or retired")
            except Exception:  # the same: next round
                log.exception("dkim rotation: round failed")
        try:
            with transaction(factory) as session:
                row = session.get(ServerSettings, 1)
                changed = row.config_changed_at if row is not None else None
                applied = row.config_applied_at if row is not None else None
                automatic = bool(row is not None and row.apply_automatically)
                if only_when_automatic and automatic and runner_active(session):
                    automatic = False  # `mailadmin node run` applies; the panel never does
                # domains on several nodes: only each node's runner can render its files
                on_nodes = domains_on_nodes(session)
            pending = (changes_pending(changed, applied) and changed != failed_at
                       and not on_nodes)
            if once and not pending:
                return outcome
            quiet = changed is not None and (
                (utcnow() - changed).total_seconds() >= quiet_seconds)
            if pending and quiet and (automatic or not only_when_automatic):
                with transaction(factory) as session:
                    report = apply_config_report(session, actor, progress=progress,
                                                 tools=tools)
                    session.expunge(report.revision)
                outcome.applies += 1
                outcome.last = report.revision
                if report.revision.state == "failed":
                    outcome.failures += 1
                    failed_at = changed
                if on_apply is not None:
                    on_apply(report)
                if once:
                    return outcome
                continue
        except Exception:  # keep watching: a locked database or a full disk may pass
            log.exception("auto-apply: check or apply failed")
            if once:
                raise
        stop.wait(interval)
    return outcome


def start_auto_apply(
    factory: sessionmaker[Session],
    *,
    quiet_seconds: float = AUTO_APPLY_QUIET_SECONDS,
    interval: float = AUTO_APPLY_INTERVAL_SECONDS,
) -> tuple[threading.Thread, threading.Event]:
    """Run `watch` in a daemon thread (``mailadmin serve``); it acts only while the
    ``apply_automatically`` setting is on. Set the returned event to stop it."""
    stop = threading.Event()

    def run() -> None:
        def logged(report: ApplyReport) -> None:
            log.info("auto-apply: revision %s %s", report.revision.id, report.revision.state)

        watch(factory, quiet_seconds=quiet_seconds, interval=interval, stop=stop,
              only_when_automatic=True, on_apply=logged)

    thread = threading.Thread(target=run, name="mailadmin-auto-apply", daemon=True)
    thread.start()
    return thread, stop
