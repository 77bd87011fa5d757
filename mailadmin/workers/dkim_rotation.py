"""Move DKIM keys on in the background (run by the apply watcher's loop): a new key signs once
DNS serves it, a replaced key is removed once its grace period is over.

Like `domain_checker` it owns its transactions and looks DNS up outside them (a slow resolver
must not hold database locks). The rules are `services.dkim_keys`'.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from sqlalchemy.orm import Session, sessionmaker

from ..db import transaction
from ..dnscheck import DEFAULT_TIMEOUT
from ..errors import ValidationError
from ..models import Role
from ..services import dkim_keys
from ..services.context import Actor

log = logging.getLogger(__name__)
SYSTEM = Actor(name="dkim-rotation", role=Role.ADMIN, channel="system", source="watcher")


def advance_dkim_keys(factory: sessionmaker[Session], *, now: dt.datetime,
                      timeout: float = DEFAULT_TIMEOUT) -> int:
    """One round; returns how many domains' keys changed (each change makes an apply
    pending, which the watcher then applies)."""
    with transaction(factory) as session:
        names = dkim_keys.waiting_records(session)
        try:
            lookup = dkim_keys.lookup_for(session, timeout)
        except ValidationError:
            log.warning("dkim rotation: the dns_resolvers setting is invalid; not checking")
            return 0
    found = {name: lookup(name, "TXT") for name in names}

    def answered(name: str, rdtype: str) -> list[str] | None:
        return found.get(name, []) if rdtype == "TXT" else []

    with transaction(factory) as session:
        return dkim_keys.advance_all(session, dataclasses.replace(SYSTEM, clock=lambda: now),
                                     lookup=answered)
