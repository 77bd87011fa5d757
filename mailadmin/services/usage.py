"""Mailbox usage read back from Dovecot: refresh, recalculate, and sums per domain and customer.

Usage is stored on the mailbox (``usage_bytes``, ``usage_messages``) with the time it was read
(``usage_read_at``), so pages and the API show it without asking Dovecot. The server admin's
refresh reads every mailbox in one ``doveadm quota get -A``; a reseller or customer refresh
reads only their own domains, one ``doveadm quota get -u '*@domain'`` each. Mailboxes
Dovecot does not know yet (created since the last apply) keep what they had.

With several mail nodes a mailbox's usage is read from the node that holds its domain
(``domains.node_id``): the same doveadm command, run by that node's doveadm server
(`NodeReader`); mailboxes of domains on no node are read locally, as on a single server.

Every function takes the caller's Session and Actor and only flushes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t
from collections.abc import Callable, Mapping

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..errors import NotFound
from ..mailstack import usage as dovecot_usage
from ..mailstack.doveadm import Endpoint
from ..mailstack.usage import Usage
from ..models import Domain, Mailbox, MailNode, PanelUser, Role
from ..names import domain_of, shown_domain
from . import counters
from .audit import record_event
from .context import Actor
from .mailboxes import get_mailbox, scoped_domain_ids
from .scope import get_domain, require_mail_manager
from .server import get_server_settings

#: The mailbox list and the mailbox user's page warn from these percentages of the quota.
WARN_PERCENT = 80
CRITICAL_PERCENT = 95
#: The mailbox list shows a usage bar for this many domains at most (a customer with
#: thousands of domains filters by domain to see the others).
USAGE_BARS = 24

#: Called with (mailboxes stored so far, mailboxes to store).
Progress = Callable[[int, int], None]
#: (config_dir, addresses or None for all) -> usage per address; tests and odd setups swap it.
Reader = Callable[[str, "list[str] | None"], Mapping[str, Usage]]
#: The same, run on a node's doveadm server: (config_dir, node, addresses or None for all).
NodeReader = Callable[[str, Endpoint, "list[str] | None"], Mapping[str, Usage]]

_BATCH = 1000


def usage_level(percent: int | None) -> str | None:
    """"critical" from 95 %, "warning" from 80 %, else None."""
    if percent is None:
        return None
    if percent >= CRITICAL_PERCENT:
        return "critical"
    if percent >= WARN_PERCENT:
        return "warning"
    return None


def _default_reader(config_dir: str, addresses: list[str] | None) -> Mapping[str, Usage]:
    if addresses is None:
        return dovecot_usage.read_all(config_dir)
    return dovecot_usage.read_many(config_dir, addresses)


def _default_node_reader(config_dir: str, node: Endpoint,
                         addresses: list[str] | None) -> Mapping[str, Usage]:
    if addresses is None:
        return dovecot_usage.read_all(config_dir, node=node)
    return dovecot_usage.read_many(config_dir, addresses, node=node)


def _nodes_of(session: Session, addresses: list[str]) -> dict[str, Endpoint | None]:
    """The doveadm server of the node that holds each address's domain (None: local)."""
    port = get_server_settings(session).doveadm_port
    where: dict[str, Endpoint | None] = {}
    # every domain on a node: none on a single server, one row per domain at most
    for name, address in session.execute(
        select(Domain.name, MailNode.address).join(MailNode, MailNode.id == Domain.node_id)
    ):
        where[name] = Endpoint(address, port)
    return {a: where.get(domain_of(a)) for a in addresses}


def _read_by_node(session: Session, config_dir: str, addresses: list[str], *, every: bool,
                  read: Reader, read_node: NodeReader) -> dict[str, Usage]:
    """Usage of `addresses`, each asked of its domain's node (`every`: with one ``-A``
    per node instead of per-domain calls, as the admin's full refresh does)."""
    groups: dict[Endpoint | None, list[str]] = {}
    for address, node in _nodes_of(session, addresses).items():
        groups.setdefault(node, []).append(address)
    found: dict[str, Usage] = {}
    for node, wanted in groups.items():
        if node is None:
            got = read(config_dir, None if every else wanted)
        else:
            got = read_node(config_dir, node, None if every else wanted)
        keep = set(wanted)
        # a node may know users of other nodes' domains: only its own count
        found.update({a: u for a, u in got.items() if a in keep})
    return found


@dataclasses.dataclass(frozen=True)
class RefreshReport:
    read_at: dt.datetime
    #: Mailboxes whose usage was stored.
    updated: int
    #: Mailboxes in scope that Dovecot did not report (not applied yet).
    not_known: tuple[str, ...]


def _config_dir(session: Session) -> str:
    from ..mailstack import settings_from_server_settings

    return settings_from_server_settings(get_server_settings(session)).config_dir


def _scoped_mailboxes(session: Session, actor: Actor) -> list[tuple[int, str]]:
    query = (select(Mailbox.id, Mailbox.local_part, Domain.name)
             .join(Domain, Domain.id == Mailbox.domain_id)
             .order_by(Domain.name, Mailbox.local_part))
    if actor.role is not Role.ADMIN:
        query = query.where(Mailbox.domain_id.in_(scoped_domain_ids(session, actor)))
    return [(mid, f"{local}@{dom}") for mid, local, dom in session.execute(query)]


def _store(
    session: Session,
    boxes: list[tuple[int, str]],
    found: Mapping[str, Usage],
    now: dt.datetime,
    progress: Progress | None,
) -> RefreshReport:
    rows = []
    missing = []
    for mailbox_id, address in boxes:
        usage = found.get(address)
        if usage is None:
            missing.append(address)
            continue
        rows.append({"id": mailbox_id, "usage_bytes": usage.bytes,
                     "usage_messages": usage.messages, "usage_read_at": now})
    total = len(rows)
    if progress is not None:
        progress(0, total)
    for start in range(0, total, _BATCH):
        batch = rows[start:start + _BATCH]
        # The domains' usage counters move by the difference to the readings replaced (rows
        # locked until the transaction ends, so a concurrent store waits).
        before = counters.locked_rows(session, [t.cast(int, r["id"]) for r in batch])
        # bulk UPDATE by primary key: one statement per batch, not one per mailbox
        session.execute(update(Mailbox), batch)
        counters.apply(session, counters.readings_replaced(before, {
            t.cast(int, r["id"]): (t.cast(int, r["usage_bytes"]),
                                   t.cast(int, r["usage_messages"]), now)
            for r in batch}))
        if progress is not None:
            progress(start + len(batch), total)
    session.flush()
    return RefreshReport(now, total, tuple(missing))


def refresh_usage(
    session: Session,
    actor: Actor,
    *,
    address: str | None = None,
    progress: Progress | None = None,
    reader: Reader | None = None,
    node_reader: NodeReader | None = None,
) -> RefreshReport:
    """Read usage from Dovecot and store it for the actor's mailboxes (or one `address`).

    The server admin's full refresh is one ``doveadm quota get -A``; anyone else's reads
    their own domains, one call per domain. Raises UsageUnavailable when doveadm fails (nothing is
    stored then), NotFound for an address outside the actor's mailboxes.
    """
    require_mail_manager(actor)
    read = reader or _default_reader
    read_node = node_reader or _default_node_reader
    config_dir = _config_dir(session)
    now = actor.now()
    if address is not None:
        mailbox = get_mailbox(session, actor, address)
        boxes = [(mailbox.id, mailbox.address)]
    else:
        boxes = _scoped_mailboxes(session, actor)
    found = _read_by_node(session, config_dir, [a for _, a in boxes],
                          every=address is None and actor.role is Role.ADMIN,
                          read=read, read_node=read_node)
    return _store(session, boxes, found, now, progress)


def recalculate(
    session: Session, actor: Actor, address: str, *, reader: Reader | None = None,
    recalc: Callable[[str, str], None] | None = None,
) -> Mailbox:
    """Have Dovecot recount a mailbox from its files (``doveadm quota recalc``), then store the
    fresh usage. Raises NotFound (not the actor's, or not applied yet) or UsageUnavailable."""
    require_mail_manager(actor)
    mailbox = get_mailbox(session, actor, address)
    config_dir = _config_dir(session)
    node = _nodes_of(session, [mailbox.address])[mailbox.address]
    if recalc is not None:
        recalc(config_dir, mailbox.address)
    else:
        dovecot_usage.recalc(config_dir, mailbox.address, node=node)
    found = _read_by_node(session, config_dir, [mailbox.address], every=False,
                          read=reader or _default_reader, read_node=_default_node_reader)
    if mailbox.address not in found:
        raise NotFound(f"The mail server does not know {mailbox.address} yet; apply the "
                       "configuration first.", field="address")
    before = {"usage_bytes": mailbox.usage_bytes, "usage_messages": mailbox.usage_messages}
    _store(session, [(mailbox.id, mailbox.address)], found, actor.now(), None)
    session.refresh(mailbox)
    owner = session.get(PanelUser, mailbox.domain.owner_id)
    record_event(
        session, actor, "mailbox.usage_recalculate", object_type="mailbox",
        object_id=mailbox.id, object_label=mailbox.address,
        customer_id=owner.id if owner else None,
        reseller_id=owner.parent_id if owner else None,
        before=before,
        after={"usage_bytes": mailbox.usage_bytes, "usage_messages": mailbox.usage_messages},
    )
    return mailbox


# --------------------------------------------------------------------------- sums


@dataclasses.dataclass(frozen=True)
class UsageSum:
    name: str
    unicode_name: str
    mailboxes: int
    #: Mailboxes with a reading; the sums cover only those.
    read: int
    usage_bytes: int
    usage_messages: int
    #: Sum of the quotas; None when any mailbox is unlimited.
    quota: int | None
    #: The oldest reading in the sum (how stale it may be).
    oldest_read_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class MailboxUsage:
    address: str
    quota: int
    usage_bytes: int | None
    usage_messages: int | None
    usage_read_at: dt.datetime | None

    @property
    def usage_percent(self) -> int | None:
        if self.usage_bytes is None or not self.quota:
            return None
        return min(100, round(100 * self.usage_bytes / self.quota))

    @property
    def level(self) -> str | None:
        return usage_level(self.usage_percent)


@dataclasses.dataclass(frozen=True)
class UsageSummary:
    domains: tuple[UsageSum, ...]
    customers: tuple[UsageSum, ...]
    #: Only with a `domain` filter: that domain's mailboxes.
    mailboxes: tuple[MailboxUsage, ...]


def _sum_columns() -> tuple[object, ...]:
    """The usage sums over domains, from their counters (see `counters`)."""
    return (
        func.coalesce(func.sum(Domain.mailbox_count), 0),
        func.coalesce(func.sum(Domain.usage_read_count), 0),
        func.coalesce(func.sum(Domain.usage_bytes_total), 0),
        func.coalesce(func.sum(Domain.usage_messages_total), 0),
        func.coalesce(func.sum(Domain.quota_total), 0),
        func.coalesce(func.sum(Domain.unlimited_count), 0),
        func.min(Domain.usage_oldest_read_at),
    )


def _domain_columns() -> tuple[object, ...]:
    """`_sum_columns` of a single domain (no aggregation)."""
    return (Domain.mailbox_count, Domain.usage_read_count, Domain.usage_bytes_total,
            Domain.usage_messages_total, Domain.quota_total, Domain.unlimited_count,
            Domain.usage_oldest_read_at)


def _sum(name: str, unicode_name: str, row: tuple[object, ...]) -> UsageSum:
    count, read, used, messages, quota, unlimited, oldest = row
    return UsageSum(
        name=name, unicode_name=unicode_name, mailboxes=int(count or 0),  # type: ignore[call-overload]
        read=int(read or 0),  # type: ignore[call-overload]
        usage_bytes=int(used or 0), usage_messages=int(messages or 0),  # type: ignore[call-overload]
        quota=None if unlimited else int(quota or 0),  # type: ignore[call-overload]
        oldest_read_at=oldest if isinstance(oldest, dt.datetime) else None,
    )


def domain_usage(
    session: Session, actor: Actor, *, domain: str | None = None, limit: int | None = None
) -> tuple[UsageSum, ...]:
    """Stored usage summed per domain of the actor (or just `domain`), for the usage bars;
    domains without mailboxes are left out. Read from the domains' counters: one row per
    domain, however many mailboxes. With `limit`, only the first `limit` domains by name.
    """
    require_mail_manager(actor)
    if domain is not None:
        domain_ids: object = [get_domain(session, actor, domain).id]
    else:
        domain_ids = scoped_domain_ids(session, actor)
    # One row per domain, no GROUP BY: walking the name index stops after `limit` domains.
    query = (
        select(Domain.name, *_domain_columns())
        .where(Domain.id.in_(domain_ids), Domain.mailbox_count > 0)  # type: ignore[arg-type]
        .order_by(Domain.name)
    )
    if limit is not None:
        query = query.limit(limit)
    return tuple(_sum(r[0], shown_domain(r[0]), tuple(r[1:]))
                 for r in session.execute(query))


def largest_usage(session: Session, actor: Actor, limit: int) -> tuple[UsageSum, ...]:
    """The `limit` largest usage sums, largest first: per domain for a customer, per customer
    for a reseller or the server admin (the dashboard's table)."""
    require_mail_manager(actor)
    domain_ids = scoped_domain_ids(session, actor)
    if actor.role is Role.CUSTOMER:
        rows = session.execute(
            select(Domain.name, *_domain_columns())
            .where(Domain.id.in_(domain_ids), Domain.mailbox_count > 0)
            .order_by(Domain.usage_bytes_total.desc(), Domain.name).limit(limit)
        ).all()
        return tuple(_sum(r[0], shown_domain(r[0]), tuple(r[1:])) for r in rows)
    used = func.coalesce(func.sum(Domain.usage_bytes_total), 0)
    rows = session.execute(
        select(PanelUser.username, *_sum_columns())
        .join(Domain, Domain.owner_id == PanelUser.id)
        .where(Domain.id.in_(domain_ids), Domain.mailbox_count > 0)
        .group_by(PanelUser.username).order_by(used.desc(), PanelUser.username).limit(limit)
    ).all()
    return tuple(_sum(r[0], r[0], tuple(r[1:])) for r in rows)


def usage_summary(session: Session, actor: Actor, *, domain: str | None = None) -> UsageSummary:
    """Stored usage summed per domain and per customer, from the domains' counters."""
    require_mail_manager(actor)
    if domain is not None:
        domain_ids: object = [get_domain(session, actor, domain).id]
    else:
        domain_ids = scoped_domain_ids(session, actor)
    per_domain = session.execute(
        select(Domain.name, *_sum_columns())
        .where(Domain.id.in_(domain_ids), Domain.mailbox_count > 0)  # type: ignore[arg-type]
        .group_by(Domain.name).order_by(Domain.name)
    ).all()
    per_customer = session.execute(
        select(PanelUser.username, *_sum_columns())
        .join(Domain, Domain.owner_id == PanelUser.id)
        .where(Domain.id.in_(domain_ids), Domain.mailbox_count > 0)  # type: ignore[arg-type]
        .group_by(PanelUser.username).order_by(PanelUser.username)
    ).all()
    boxes: tuple[MailboxUsage, ...] = ()
    if domain is not None:
        boxes = tuple(
            MailboxUsage(f"{local}@{name}", quota, used, messages, read_at)
            for local, name, quota, used, messages, read_at in session.execute(
                select(Mailbox.local_part, Domain.name, Mailbox.quota, Mailbox.usage_bytes,
                       Mailbox.usage_messages, Mailbox.usage_read_at)
                .join(Domain, Domain.id == Mailbox.domain_id)
                .where(Domain.id.in_(domain_ids))  # type: ignore[arg-type]
                .order_by(Mailbox.local_part)
            )
        )
    return UsageSummary(
        domains=tuple(_sum(r[0], shown_domain(r[0]), tuple(r[1:])) for r in per_domain),
        customers=tuple(_sum(r[0], r[0], tuple(r[1:])) for r in per_customer),
        mailboxes=boxes,
    )
