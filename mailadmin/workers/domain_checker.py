"""Re-check pending domains' DNS proof in the background (run by the apply watcher's loop).

Like the apply watcher it owns its transactions: one short read for the domains due, the DNS
lookups outside any transaction (a slow resolver must not hold database locks), then one short
transaction per result. The rules are `services.domain_ownership`'s.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from ..db import transaction
from ..dnscheck import DEFAULT_TIMEOUT
from ..services import domain_ownership


def recheck_pending(
    factory: sessionmaker[Session],
    *,
    now: dt.datetime,
    every_seconds: float = domain_ownership.RECHECK_SECONDS,
    batch: int = domain_ownership.RECHECK_BATCH,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[str]:
    """One round; returns the names verified in it."""
    with transaction(factory) as session:
        setup, due = domain_ownership.due_checks(session, now=now, every_seconds=every_seconds,
                                                 batch=batch)
    verified = []
    for check in due if setup is not None else ():
        assert setup is not None
        proof = domain_ownership.lookup(setup, check, timeout=timeout)
        with transaction(factory) as session:
            if domain_ownership.record_check(session, check, proof, now=now):
                verified.append(check.name)
    return verified
