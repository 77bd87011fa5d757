"""Counters per domain over its mailboxes, kept in the same transaction as the mailbox rows.

``domains`` holds each domain's mailbox count, quota total, mailboxes without a quota, usage
readings with their byte and message sums, and the oldest reading. The mailbox list, the
package limits and the usage bars read these (one row per domain) instead of counting and
summing a million mailbox rows per page view.

Every service path that adds or removes a mailbox, changes its quota or stores its usage calls
here. Changes are increments in SQL (``SET n = n + :delta``), so two transactions adding
mailboxes to one domain at once both count; the deltas come from the mailbox rows as locked
(``SELECT ... FOR UPDATE``) by the same transaction, so a concurrent change to the same mailbox
waits instead of being counted twice. `recount` rebuilds every counter from the rows (``mailadmin
db recount``), for a database edited by hand. Functions take a Session and only flush.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t
from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from ..models import Domain, Mailbox
from .audit import record_event
from .context import Actor
from .scope import require_admin

#: The counters that change by increments (the oldest reading is found again instead).
COUNTERS = ("mailbox_count", "quota_total", "unlimited_count", "usage_read_count",
            "usage_bytes_total", "usage_messages_total")


@dataclasses.dataclass
class Delta:
    """Changes to one domain's counters."""

    mailbox_count: int = 0
    quota_total: int = 0
    unlimited_count: int = 0
    usage_read_count: int = 0
    usage_bytes_total: int = 0
    usage_messages_total: int = 0
    #: A reading was removed or replaced: find the domain's oldest reading again.
    oldest_changed: bool = False

    def values(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS if getattr(self, name)}

    def add_mailbox(self, quota: int, sign: int = 1) -> None:
        self.mailbox_count += sign
        self.quota_total += sign * quota
        self.unlimited_count += sign * (quota == 0)

    def add_reading(self, read_at: dt.datetime | None, used: int | None, messages: int | None,
                    sign: int = 1) -> None:
        self.usage_bytes_total += sign * (used or 0)
        self.usage_messages_total += sign * (messages or 0)
        if read_at is not None:
            self.usage_read_count += sign
            self.oldest_changed = True


def apply(session: Session, deltas: t.Mapping[int, Delta]) -> None:
    """Add `deltas` ({domain id: Delta}) to the domains' counters, in SQL."""
    oldest: list[int] = []
    for domain_id, delta in sorted(deltas.items()):  # one lock order for every transaction
        values = delta.values()
        if values:
            session.execute(
                update(Domain).where(Domain.id == domain_id)
                .values({getattr(Domain, k): getattr(Domain, k) + v for k, v in values.items()})
                .execution_options(synchronize_session=False)
            )
        if delta.oldest_changed:
            oldest.append(domain_id)
    if oldest:
        find_oldest_reading(session, oldest)
    _expire(session, deltas)


def _expire(session: Session, domain_ids: Iterable[int]) -> None:
    """Loaded Domain objects read their counters again (the UPDATEs bypassed them)."""
    for domain_id in domain_ids:
        domain = session.identity_map.get((Domain, (domain_id,), None))
        if domain is not None:
            session.expire(domain, ["usage_oldest_read_at", *COUNTERS])


def find_oldest_reading(session: Session, domain_ids: Sequence[int]) -> None:
    """Set each domain's oldest usage reading from its mailboxes (an index probe each)."""
    oldest = (select(func.min(Mailbox.usage_read_at))
              .where(Mailbox.domain_id == Domain.id).correlate(Domain).scalar_subquery())
    for start in range(0, len(domain_ids), 500):
        session.execute(
            update(Domain).where(Domain.id.in_(domain_ids[start:start + 500]))
            .values(usage_oldest_read_at=oldest)
            .execution_options(synchronize_session=False)
        )


def lock_domains(session: Session, domain_ids: Iterable[int]) -> None:
    """Lock the domains' rows (in id order) before their mailboxes' rows: every path that
    changes counters takes the domain first, so two of them cannot wait for each other
    (MariaDB's foreign key check would otherwise hold a shared lock on the domain while an
    INSERT waits, and two such transactions deadlock on the counter UPDATE)."""
    ids = sorted(set(domain_ids))
    for start in range(0, len(ids), 1000):
        session.execute(select(Domain.id).where(Domain.id.in_(ids[start:start + 1000]))
                        .order_by(Domain.id).with_for_update())


def locked_rows(session: Session, mailbox_ids: Sequence[int]) -> list[t.Any]:
    """(id, domain id, quota, usage bytes, messages, read at) of the mailboxes, locked for the
    rest of the transaction where the database locks rows (the values the deltas start from);
    their domains are locked first (`lock_domains`)."""
    rows: list[t.Any] = []
    for start in range(0, len(mailbox_ids), 1000):
        some = mailbox_ids[start:start + 1000]
        lock_domains(session, session.scalars(
            select(Mailbox.domain_id).where(Mailbox.id.in_(some)).distinct()))
        rows.extend(session.execute(
            select(Mailbox.id, Mailbox.domain_id, Mailbox.quota, Mailbox.usage_bytes,
                   Mailbox.usage_messages, Mailbox.usage_read_at)
            .where(Mailbox.id.in_(some))
            .order_by(Mailbox.id)
            .with_for_update()
        ).all())
    return rows


def mailboxes_added(session: Session, domain_id: int, quotas: Iterable[int]) -> None:
    """New mailboxes (no usage reading yet) in one domain; called before their rows are
    inserted, so the domain's row is locked first (see `lock_domains`)."""
    delta = Delta()
    for quota in quotas:
        delta.add_mailbox(quota)
    apply(session, {domain_id: delta})


def remove_mailbox(session: Session, mailbox: Mailbox) -> None:
    """Delete `mailbox` and take it out of its domain's counters (its row locked first, so the
    values taken out are the ones deleted; the oldest reading is found after the delete)."""
    deltas: dict[int, Delta] = defaultdict(Delta)
    for _id, domain_id, quota, used, messages, read_at in locked_rows(session, [mailbox.id]):
        deltas[domain_id].add_mailbox(quota, -1)
        deltas[domain_id].add_reading(read_at, used, messages, -1)
    session.delete(mailbox)
    session.flush()
    apply(session, deltas)


def quota_changing(session: Session, mailbox_id: int, quota: int) -> None:
    """A mailbox's quota is about to become `quota` in this transaction: move its domain's
    quota counters (from the quota in its locked row)."""
    deltas: dict[int, Delta] = defaultdict(Delta)
    for _id, domain_id, old, *_ in locked_rows(session, [mailbox_id]):
        deltas[domain_id].add_mailbox(old, -1)
        deltas[domain_id].add_mailbox(quota)
    apply(session, deltas)


def readings_replaced(old_rows: Iterable[t.Any], new: t.Mapping[int, tuple[int, int, dt.datetime]]
                      ) -> dict[int, Delta]:
    """The deltas of storing `new` readings ({mailbox id: (bytes, messages, read at)}) over
    `old_rows` (from `locked_rows`)."""
    deltas: dict[int, Delta] = defaultdict(Delta)
    for mailbox_id, domain_id, _quota, used, messages, read_at in old_rows:
        if mailbox_id not in new:
            continue
        deltas[domain_id].add_reading(read_at, used, messages, -1)
        new_used, new_messages, new_read_at = new[mailbox_id]
        deltas[domain_id].add_reading(new_read_at, new_used, new_messages)
    return deltas


# --------------------------------------------------------------------------- recount


def _fresh() -> dict[str, ColumnElement[t.Any]]:
    """Each counter as a correlated subquery over the domain's mailboxes."""
    def of(expression: t.Any, *where: t.Any) -> ColumnElement[t.Any]:
        return (select(expression).where(Mailbox.domain_id == Domain.id, *where)
                .correlate(Domain).scalar_subquery())

    return {
        "mailbox_count": of(func.count(Mailbox.id)),
        "quota_total": of(func.coalesce(func.sum(Mailbox.quota), 0)),
        "unlimited_count": of(func.count(Mailbox.id), Mailbox.quota == 0),
        "usage_read_count": of(func.count(Mailbox.usage_read_at)),
        "usage_bytes_total": of(func.coalesce(func.sum(Mailbox.usage_bytes), 0)),
        "usage_messages_total": of(func.coalesce(func.sum(Mailbox.usage_messages), 0)),
        "usage_oldest_read_at": of(func.min(Mailbox.usage_read_at)),
    }


@dataclasses.dataclass(frozen=True)
class RecountReport:
    domains: int
    #: Domains whose stored counters differed from their rows, by name.
    corrected: tuple[str, ...]


def differences(session: Session) -> dict[str, dict[str, tuple[object, object]]]:
    """{domain name: {counter: (stored, counted from the rows)}} for every counter that is
    off; empty when all agree. Counts every mailbox (a check, not for page views)."""
    fresh = _fresh()
    names = ["usage_oldest_read_at", *COUNTERS]
    rows = session.execute(
        select(Domain.name, *[getattr(Domain, n) for n in names], *[fresh[n] for n in names])
    ).all()
    found: dict[str, dict[str, tuple[object, object]]] = {}
    for row in rows:
        stored, counted = row[1:1 + len(names)], row[1 + len(names):]
        off = {n: (s, c if c is not None or n == "usage_oldest_read_at" else 0)
               for n, s, c in zip(names, stored, counted, strict=True)
               if s != (c if c is not None or n == "usage_oldest_read_at" else 0)}
        if off:
            found[row[0]] = off
    return found


def recount(session: Session, actor: Actor) -> RecountReport:
    """Rebuild every domain's counters from its mailbox rows (one UPDATE), for the server
    admin after the database was edited by hand. Returns which domains were off; a correction
    is audited. Raises PermissionDenied for anyone else."""
    require_admin(actor, "recounts the mailbox counters")
    off = differences(session)
    session.execute(update(Domain).values(_fresh()).execution_options(synchronize_session=False))
    total = session.scalar(select(func.count(Domain.id))) or 0
    session.expire_all()
    if off:
        record_event(session, actor, "counters.recount", object_type="server",
                     object_label="mailbox counters",
                     before={name: {k: str(v[0]) for k, v in diff.items()}
                             for name, diff in sorted(off.items())[:50]},
                     after={name: {k: str(v[1]) for k, v in diff.items()}
                            for name, diff in sorted(off.items())[:50]})
    session.flush()
    return RecountReport(domains=total, corrected=tuple(sorted(off)))
